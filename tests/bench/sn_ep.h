/* sn_ep.h - loadgen's MQTT-SN clients ("endpoints") over UDP.
 *
 * Each endpoint is one connected, non-blocking UDP socket (its own source
 * port, so the gateway sees a separate device), served by net.c's loop.
 * It runs the set-up dialogue itself:
 *
 *   CONNECT (clean session, keep alive `duration`) -> CONNACK
 *   then, if asked: REGISTER topic -> REGACK   (a publisher's topic id)
 *               or: SUBSCRIBE topic name -> SUBACK (a subscriber's topic id)
 *   -> on_ready
 *
 * resending the pending step after `retry_secs` (counted in stats.retries, with
 * the same MsgId, as the spec's Tretry/Nretry) and reporting on_failed after
 * max_retries resends or a refusal. A REGISTER from the gateway is answered with
 * REGACK (accepted) and its topic id remembered (sn_ep_knows). Everything else
 * that arrives (PUBLISH, PUBACK, PINGRESP, ...) goes to on_packet.
 *
 * I/O: the socket is on net.c's epoll; input is read with recvmmsg (up to 128
 * datagrams per event). sn_ep_reserve/sn_ep_commit queue one datagram each and
 * sn_ep_flush sends them with sendmmsg, runs of equal-size ones (a publisher's
 * window of PUBLISHes) as one UDP GSO send that the kernel cuts into the same
 * individual datagrams in loadgen's own context (EPOLLOUT when the socket is
 * full); whatever the handlers queued while input was handled (PUBACKs) is
 * flushed after it. (io_uring with multishot receives was tried: it saves
 * loadgen syscalls, but its completion wake-ups run in the sender's, i.e. the
 * gateway's, sendto path and made the gateway slower: not used.)
 */
#ifndef LG_SN_EP_H
#define LG_SN_EP_H

#include "mqttsn_codec.h"
#include "net.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sn_ep_state {
    SN_EP_NEW,
    SN_EP_CONNECTING,
    SN_EP_REGISTERING,
    SN_EP_SUBSCRIBING,
    SN_EP_READY,
    SN_EP_FAILED,
};

#define SN_EP_MAX_KNOWN 8 /* topic ids the gateway may REGISTER with one endpoint */

struct sn_ep {
    struct net_watch w; /* first member: the epoll pointer converts back */
    uint8_t kind;       /* owner's tag */
    uint32_t index;     /* owner's index */
    uint8_t state;      /* enum sn_ep_state */
    bool open;          /* the socket exists */
    bool out_armed;     /* EPOLLOUT registered: the socket was full */
    uint8_t tries;      /* resends of the pending set-up step */
    uint8_t granted_qos;
    bool subscribe;       /* SUBSCRIBE topic (else REGISTER it, if set) */
    uint8_t sub_qos;      /* requested in SUBSCRIBE */
    uint16_t topic_id;    /* from REGACK or SUBACK */
    uint16_t step_msg_id; /* MsgId of the pending REGISTER/SUBSCRIBE */
    uint16_t next_msg_id; /* owner's PUBLISHes may use sn_ep_msg_id */
    uint8_t n_known;
    uint16_t known[SN_EP_MAX_KNOWN]; /* ids the gateway registered with us */
    double sent_at;                  /* when the pending step was (re)sent */
    char client_id[24];              /* 1..23 characters (5.3.1) */
    const char *topic;               /* NULL: CONNECT only */
    /* Queued datagrams: data[dg_off[i], dg_off[i+1]) for i in [dg_sent, dg_n). */
    uint8_t *data;
    size_t len, cap;
    uint32_t *dg_off; /* dg_n + 1 offsets */
    unsigned dg_n, dg_sent, dg_cap;
};

struct sn_ep_handlers {
    void (*on_ready)(struct sn_ep *ep);
    void (*on_packet)(struct sn_ep *ep, const struct mqttsn_pkt *pk);
    /* A refusal, a socket error, or no answer after max_retries resends. The
     * endpoint is closed (state SN_EP_FAILED) before this is called. */
    void (*on_failed)(struct sn_ep *ep, const char *why);
};

struct sn_ep_stats {
    uint64_t dg_out, dg_in, sendmmsg, gso_sends, recvmmsg, eagain;
    uint64_t retries;    /* set-up steps resent */
    uint64_t registered; /* REGISTERs from the gateway answered */
    uint64_t malformed;  /* datagrams from the gateway that did not parse */
};

/* The gateway's address and the dialogue's parameters; gso: send runs of
 * equal-size datagrams as one UDP GSO buffer (UDP_SEGMENT, Linux >= 4.18),
 * which the kernel cuts into ordinary datagrams. Returns 0 or -1. */
int sn_ep_init(const char *host, uint16_t port, const struct sn_ep_handlers *h, double retry_secs,
               unsigned max_retries, uint16_t duration, bool gso);

/* Creates ep's socket (connected to the gateway, on the epoll loop) without
 * sending anything. Returns NULL, or why it failed. */
const char *sn_ep_open(struct sn_ep *ep);

/* Opens ep's socket unless sn_ep_open did, and sends CONNECT. Set kind, index,
 * client_id and (for REGISTER/SUBSCRIBE) topic, subscribe, sub_qos first.
 * Failure goes to on_failed. */
void sn_ep_start(struct sn_ep *ep, double now);

/* Resends the pending set-up step if it waited retry_secs. */
void sn_ep_tick(struct sn_ep *ep, double now);

/* A MsgId for the owner's next message (1..65535, wrapping). */
uint16_t sn_ep_msg_id(struct sn_ep *ep);

/* Whether the gateway registered topic id with this endpoint (or it is the
 * endpoint's own topic id from REGACK/SUBACK). */
bool sn_ep_knows(const struct sn_ep *ep, uint16_t topic_id);

/* Room for one datagram of at most n bytes; sn_ep_commit(ep, len) queues it. */
uint8_t *sn_ep_reserve(struct sn_ep *ep, size_t n);
void sn_ep_commit(struct sn_ep *ep, size_t len);
/* Sends every queued datagram it can; arms EPOLLOUT for the rest. */
void sn_ep_flush(struct sn_ep *ep);
size_t sn_ep_pending(const struct sn_ep *ep);

void sn_ep_close(struct sn_ep *ep);

const struct sn_ep_stats *sn_ep_get_stats(void);
/* The receive buffer the last socket got (bytes, as the kernel reports it). */
int sn_ep_rcvbuf(void);

#endif
