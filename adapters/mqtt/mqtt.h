/* mqtt.h - the MQTT adapter as its transports see it.
 *
 * One mqtt_conn per client connection, whatever carries its bytes (raw TCP, TLS,
 * WebSocket): the transport feeds received bytes to mqtt_conn_input() and, when
 * the socket is writable, drains mqtt_conn_output() with one write. The adapter
 * speaks MQTT to the client and the broker core's API to the broker.
 */
#ifndef PG_MQTT_H
#define PG_MQTT_H

#include <stddef.h>
#include <stdint.h>

#include "adapters/buf.h"
#include "broker/broker.h"

struct mqtt_conn;

/* What the adapter needs from the transport that carries a connection. */
struct mqtt_transport {
    void (*request_write)(void *t);           /* call mqtt_conn_output() when writable */
    void (*close)(void *t);                   /* close soon, from outside a callback */
    void (*set_timeout)(void *t, int secs);   /* 0 cancels */
    void (*wake_after)(void *t, uint32_t ms); /* call mqtt_conn_wake() after ms */
    /* The verified TLS client certificate's CN; returns -1 when there is none. */
    int (*peer_cn)(void *t, char *buf, size_t n);
};

/* Per-listener MQTT settings. */
struct mqtt_settings {
    uint16_t max_topic_alias;     /* aliases accepted from and assigned to a client */
    int connect_timeout_s;        /* time allowed between accept and CONNECT */
    const char *mountpoint;       /* topic prefix for this listener's clients, "" = none */
    int use_identity_as_username; /* TLS client certificate CN is the username */
};

struct mqtt_conn_info {
    const char *peer;     /* "address:port" */
    const char *listener; /* "mqtt:0.0.0.0:1883" */
    const char *cert_cn;  /* TLS client certificate CN, or NULL */
    const char *protocol; /* "mqtt", "mqtt-ws" */
};

struct mqtt_conn *mqtt_conn_new(pg_broker *b, const struct mqtt_settings *set,
                                const struct mqtt_transport *tr, void *t,
                                const struct mqtt_conn_info *info);
/* Bytes from the client. Returns 0, or -1 when the connection must close now. */
int mqtt_conn_input(struct mqtt_conn *c, const uint8_t *data, size_t len);
/* Appends what is ready to send to out, stopping once out->len passes `limit`.
 * Returns 1 if more is waiting (ask for another writable callback), 0 if not, and
 * -1 when the connection should close once out has been written. */
int mqtt_conn_output(struct mqtt_conn *c, struct pg_buf *out, size_t limit);
/* Bytes of replies waiting to be written: a transport stops reading while this is
 * high, so a client that sends without reading cannot grow it without bound. */
size_t mqtt_conn_backlog(const struct mqtt_conn *c);
/* Bytes of input held while a packet waits for a remote auth answer. A transport
 * keeps reading (so it sees the client go away) until this is high, and reads
 * again once it has called mqtt_conn_output. */
size_t mqtt_conn_held_input(const struct mqtt_conn *c);
/* Why the connection is closing, as an MQTT 5 reason code: 0 for a normal end
 * (the client's DISCONNECT, a refused CONNECT), a protocol error code (0x81,
 * 0x82...), 0x8B for a server shutdown... Framing transports map it onto theirs. */
uint8_t mqtt_conn_close_reason(const struct mqtt_conn *c);
/* The transport's wake_after timer fired: a held refusal may now be sent. */
void mqtt_conn_wake(struct mqtt_conn *c);
/* The transport is gone: ends the broker session's connection and frees c. */
void mqtt_conn_closed(struct mqtt_conn *c);

#endif
