/* conn.h - the MQTT adapter's per-connection state, private to adapters/mqtt/.
 *
 * mqtt_conn.c frames input and drains output; the packet families are handled in
 * mqtt_connect.c (CONNECT, DISCONNECT, AUTH), mqtt_publish.c (PUBLISH and its
 * acks, topic aliases) and mqtt_subscribe.c (SUBSCRIBE, UNSUBSCRIBE).
 */
#ifndef PG_MQTT_CONN_H
#define PG_MQTT_CONN_H

#include "adapters/mqtt/codec.h"
#include "adapters/mqtt/mqtt.h"

/* A server-assigned outbound topic alias. */
struct alias_out {
    uint32_t hash;
    uint16_t len;
    char *topic;
};

struct mqtt_conn {
    pg_broker *broker;
    const struct mqtt_settings *set;
    const struct mqtt_transport *tr;
    void *t;
    pg_session *session; /* NULL before CONNECT and once detached */
    char *peer, *listener, *cert_cn, *protocol;
    uint8_t version;     /* 0 until CONNECT */
    uint8_t connected;   /* CONNECT accepted */
    uint8_t closing;     /* no more input; close once ctl is written */
    uint8_t clean_close; /* DISCONNECT received: no will */
    uint8_t request_problem_info;
    uint8_t zero_expiry;     /* session expiry was 0 at CONNECT */
    uint8_t held;            /* a refusal waits out the failed-authentication delay */
    uint8_t waiting;         /* a packet waits for a remote auth answer (PG_RC_PENDING) */
    uint8_t close_reason;    /* why the server closes (MQTT 5 code, 0 = normally) */
    struct pg_buf in;        /* a partial packet carried over between reads */
    struct pg_buf ctl;       /* replies queued until writable */
    uint32_t max_out_packet; /* client's Maximum Packet Size, 0 = none */
    uint16_t alias_in_max;
    uint16_t alias_out_max;
    char **alias_in;             /* [alias_in_max + 1], lazily allocated */
    struct alias_out *alias_out; /* [alias_out_max], lazily allocated */
    uint16_t n_alias_out, alias_out_next;
    uint8_t *sub_codes; /* a SUBSCRIBE that waits: the codes of the filters done */
    uint32_t sub_done;
    char auto_id[32]; /* an assigned client id, kept while its CONNECT waits */
};

/* What a packet handler returns besides 0 (handled) and -1 (close now): the packet
 * waits for a remote answer and is handled again on resume. */
#define MQTT_WAIT 1

/* mqtt_conn.c */
int mqtt_send(struct mqtt_conn *c, const struct mqtt_packet *p);
int mqtt_send_ack(struct mqtt_conn *c, int type, uint16_t packet_id, uint8_t reason);
/* A remote auth answer came: handle the packet that waited, and what followed. */
void mqtt_conn_resume(struct mqtt_conn *c);
/* Marks the connection closing; a connected v5 client is told `reason` with a
 * DISCONNECT first. Returns 1 when a DISCONNECT was queued. */
int mqtt_close_with(struct mqtt_conn *c, uint8_t reason);
/* Ends the connection for a protocol violation: v5 gets DISCONNECT(reason) first.
 * Always returns -1 so handlers can `return mqtt_fail(...)`. */
int mqtt_fail(struct mqtt_conn *c, uint8_t reason, const char *why);
void mqtt_log_peer(struct mqtt_conn *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Puts the listener's mountpoint in front of a topic or filter (after any
 * $share/GROUP/ part). Returns 0, or -1 when the result would be too long. The
 * result may point into a buffer reused by the next call. */
int mqtt_mount(struct mqtt_conn *c, mqtt_str *topic);

/* mqtt_connect.c */
int mqtt_on_connect(struct mqtt_conn *c, struct mqtt_packet *p);
/* A CONNECT with an unknown protocol name or level: CONNACK 0x84 (v5) / 0x01. */
int mqtt_refuse_version(struct mqtt_conn *c, uint8_t level);
int mqtt_on_disconnect(struct mqtt_conn *c, struct mqtt_packet *p);
extern const struct pg_conn_ops mqtt_conn_ops;

/* mqtt_publish.c */
/* A broker message from MQTT fields (v5 properties only when v5). */
pg_msg *mqtt_msg_from(const mqtt_str *topic, const mqtt_str *payload, int qos, int retain,
                      const struct mqtt_props *pp, int v5);
int mqtt_on_publish(struct mqtt_conn *c, struct mqtt_packet *p);
int mqtt_on_ack(struct mqtt_conn *c, struct mqtt_packet *p);
int mqtt_encode_delivery(struct mqtt_conn *c, struct pg_buf *out, struct pg_delivery *d);
void mqtt_aliases_free(struct mqtt_conn *c);

/* mqtt_subscribe.c */
int mqtt_on_subscribe(struct mqtt_conn *c, struct mqtt_packet *p);
int mqtt_on_unsubscribe(struct mqtt_conn *c, struct mqtt_packet *p);

#endif
