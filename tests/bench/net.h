/* net.h - loadgen's connection layer.
 *
 * Non-blocking TCP client sockets on one epoll instance, single-threaded.
 * Each connection has an output buffer (written with one send() per flush,
 * so many packets go out per syscall) and keeps only the bytes of an
 * incomplete packet between reads; all reads go into one large shared buffer
 * and every complete MQTT packet in it is handed to the owner's on_packet.
 * Connects are throttled (at most max_connecting waiting for CONNACK) so the
 * broker's listen backlog never overflows when opening 10,000 connections.
 * The owner (bench.c or idle.c) embeds struct conn in its own structs.
 * Other descriptors (sn_ep.c's UDP sockets) join the same loop as net_watch.
 *
 * WebSocket transport (net_use_websocket): each connection first does the
 * RFC 6455 opening handshake (GET path, subprotocol mqtt, Sec-WebSocket-Accept
 * checked) and only then sends what the owner queued. The owner still writes
 * plain MQTT bytes into c->out; every flush wraps all of them in one masked
 * binary message (split into continuation frames above frame_max bytes), so a
 * publisher's batch of PUBLISHes costs one frame and one send() as over TCP.
 * Incoming frames are unwrapped in place in the read buffer into the MQTT
 * stream (packets may span frames, frames may hold several packets; fragmented
 * messages are reassembled), pings are answered with pongs, and a close, a
 * text, masked or otherwise invalid frame from the broker ends the connection
 * through on_closed with the reason.
 */
#ifndef LG_NET_H
#define LG_NET_H

#include "mqtt_codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data;
    size_t off, len, cap; /* pending bytes are data[off, len) */
};

struct ws_conn; /* net.c's WebSocket state */

/* Both struct conn and struct net_watch start with this tag, so that one epoll
 * loop serves either (net_poll tells them apart). */
enum { NET_TAG_CONN = 0, NET_TAG_WATCH = 1 };

struct conn {
    uint8_t tag; /* NET_TAG_CONN, set by net_queue_connect; must stay first */
    int fd;
    uint8_t kind;          /* owner's tag */
    bool connecting;       /* TCP handshake still in progress */
    bool awaiting_connack; /* holds one of the max_connecting slots */
    bool out_armed;        /* EPOLLOUT registered because send() would block */
    bool closed;
    uint32_t index; /* owner's index */
    struct buf out;
    struct buf pend;    /* incomplete packet left over from the last read */
    struct ws_conn *ws; /* WebSocket transport only */
};

struct net_handlers {
    void (*on_packet)(struct conn *c, const struct mqtt_pkt *pk);
    void (*on_closed)(struct conn *c, const char *why);
};

/* Sets up epoll and the broker address. Returns 0 or -1 (message printed). */
int net_init(const char *host, uint16_t port, unsigned max_connecting,
             const struct net_handlers *h);

/* Switches every later connection to MQTT over WebSocket on path (e.g.
 * "/mqtt"); client frames carry at most frame_max payload bytes each. */
void net_use_websocket(const char *path, size_t frame_max);

/* Raises RLIMIT_NOFILE to at least need descriptors. Returns 0 or -1. */
int net_raise_nofile(size_t need);

/* Queues c for connecting; its CONNECT should already be in c->out. */
void net_queue_connect(struct conn *c);

/* Call on CONNACK: releases c's connect slot. */
void net_connect_done(struct conn *c);

/* One epoll_wait (at most timeout_ms) and dispatch of everything ready. */
void net_poll(int timeout_ms);

/* Room for n more output bytes; net_commit(c, n) after writing them. */
uint8_t *net_reserve(struct conn *c, size_t n);
void net_commit(struct conn *c, size_t n);

/* Sends as much of c->out as the socket takes; arms EPOLLOUT for the rest. */
void net_flush(struct conn *c);

/* Bytes queued in c->out and not yet sent. */
size_t net_pending(const struct conn *c);

void net_close(struct conn *c);

/* Any other descriptor on the same epoll loop (loadgen's MQTT-SN UDP sockets):
 * on_event gets the epoll events. The owner embeds it; it must stay valid until
 * net_watch_del. */
struct net_watch {
    uint8_t tag; /* NET_TAG_WATCH, set by net_watch_add; must stay first */
    int fd;
    void (*on_event)(struct net_watch *w, uint32_t events);
};
/* Returns 0, or -1 (errno set). */
int net_watch_add(struct net_watch *w, uint32_t events);
int net_watch_mod(struct net_watch *w, uint32_t events);
void net_watch_del(struct net_watch *w);

/* Syscall counters, for --verbose. */
struct net_stats {
    uint64_t polls, recvs, sends;
    uint64_t ws_frames_in, ws_frames_out, ws_pings; /* WebSocket only */
};
const struct net_stats *net_get_stats(void);

#endif
