/* broker.h - the protocol-neutral broker core: the one header adapters and
 * embedding programs use.
 *
 * An adapter turns its wire protocol into these calls: pg_connect() when a client
 * has identified itself, pg_publish() for each message it sends, pg_subscribe() /
 * pg_unsubscribe(), the ack calls for QoS 1/2, and pg_disconnect() when the
 * connection ends. The core routes every message through one topic trie into the
 * subscribers' sessions and then asks their adapters to pull deliveries
 * (pg_session_next) when they can write. Reason codes are MQTT 5's numbers, used as
 * a neutral vocabulary; other adapters map them onto their own errors.
 *
 * Everything here runs on one thread (the event loop); nothing blocks.
 */
#ifndef PG_BROKER_H
#define PG_BROKER_H

#include <stddef.h>
#include <stdint.h>

typedef struct pg_broker pg_broker;
typedef struct pg_session pg_session;

/* ---- Reason codes (MQTT 5 values) ---- */
#define PG_RC_SUCCESS                  0x00
#define PG_RC_NO_MATCHING_SUBSCRIBERS  0x10
#define PG_RC_NO_SUBSCRIPTION_EXISTED  0x11
#define PG_RC_UNSPECIFIED              0x80
#define PG_RC_IMPL_SPECIFIC            0x83
#define PG_RC_CLIENT_ID_NOT_VALID      0x85
#define PG_RC_BAD_USERNAME_OR_PASSWORD 0x86
#define PG_RC_NOT_AUTHORIZED           0x87
#define PG_RC_SERVER_UNAVAILABLE       0x88
#define PG_RC_SERVER_BUSY              0x89
#define PG_RC_SERVER_SHUTTING_DOWN     0x8B
#define PG_RC_KEEP_ALIVE_TIMEOUT       0x8D
#define PG_RC_SESSION_TAKEN_OVER       0x8E
#define PG_RC_TOPIC_FILTER_INVALID     0x8F
#define PG_RC_TOPIC_NAME_INVALID       0x90
#define PG_RC_PACKET_ID_IN_USE         0x91
#define PG_RC_PACKET_ID_NOT_FOUND      0x92
#define PG_RC_RECEIVE_MAX_EXCEEDED     0x93
#define PG_RC_QUOTA_EXCEEDED           0x97
#define PG_RC_ADMIN_ACTION             0x98
#define PG_RC_RETAIN_NOT_SUPPORTED     0x9A
#define PG_RC_QOS_NOT_SUPPORTED        0x9B
#define PG_RC_SHARED_SUB_NOT_SUPPORTED 0x9E
/* Not a wire code: a hook is waiting for a remote answer (see pg_hook_defer). */
#define PG_RC_PENDING 0x100

/* ---- Messages: refcounted, immutable once created ---- */

/* Optional properties of a message (MQTT 5 names; other protocols map theirs). */
struct pg_msg_props {
    int has_payload_format;
    uint8_t payload_format; /* 0 bytes, 1 UTF-8 */
    int has_expiry;
    uint32_t expiry_s; /* message expiry interval */
    const char *content_type;
    size_t content_type_len;
    const char *response_topic;
    size_t response_topic_len;
    const void *correlation;
    size_t correlation_len;
    /* User properties as (uint16 BE length, bytes) key, value, key, value... */
    const void *user_props;
    size_t user_props_len;
};

/* Read-only to everyone but msg.c. Topic and payload live in the same allocation;
 * one message is shared by all its subscribers. */
typedef struct pg_msg {
    uint32_t refs;
    uint8_t qos;
    uint8_t retain;
    uint8_t has_payload_format;
    uint8_t payload_format;
    uint64_t origin;    /* session uid of the publisher, 0 for none (no-local) */
    int64_t expires_at; /* monotonic ms, 0 = never */
    uint32_t expiry_s;  /* the interval as published */
    uint16_t topic_len;
    uint16_t content_type_len;
    uint16_t response_topic_len;
    uint16_t correlation_len;
    uint32_t user_props_len;
    uint32_t payload_len;
    const char *topic; /* NUL-terminated too */
    const char *content_type;
    const char *response_topic;
    const uint8_t *correlation;
    const uint8_t *user_props;
    const uint8_t *payload;
} pg_msg;

/* Creates a message with one reference. Returns NULL on allocation failure or
 * when topic_len > 65535. */
pg_msg *pg_msg_new(const char *topic, size_t topic_len, const void *payload, size_t payload_len,
                   int qos, int retain, const struct pg_msg_props *props);
static inline pg_msg *pg_msg_ref(pg_msg *m) {
    m->refs++;
    return m;
}
void pg_msg_unref(pg_msg *m);
/* A copy with a different retain flag or QoS (wills, retained re-delivery). */
pg_msg *pg_msg_copy(const pg_msg *m, int qos, int retain);

/* ---- The broker ---- */

struct pg_broker_config {
    uint32_t max_packet_size;     /* largest message an adapter accepts */
    uint16_t max_inflight;        /* QoS 1/2 window per session, both ways */
    uint32_t max_queued_messages; /* per session; 0 = unlimited */
    uint16_t max_keepalive;       /* seconds */
    int retain_available;
    uint32_t sys_interval;       /* seconds, 0 = no $SYS */
    uint32_t session_expiry_max; /* seconds, 0 = no cap */
    uint32_t max_subscriptions;  /* per session, 0 = unlimited */
    int allow_anonymous;
    uint32_t auth_failure_threshold; /* failures per address before delays */
    uint32_t auth_failure_delay_ms;  /* first delay; doubles; 0 = never delay */
    uint32_t auth_failure_delay_max_ms;
    const char *version; /* for $SYS/broker/version */
};

void pg_broker_config_defaults(struct pg_broker_config *c);
pg_broker *pg_broker_new(const struct pg_broker_config *c);
/* Ends every session (no wills: call pg_broker_shutdown first for those). */
void pg_broker_free(pg_broker *b);
/* Closes every connection as the server shutting down; wills are published. */
void pg_broker_shutdown(pg_broker *b);
/* Drives time: keepalive, will delay, session and message expiry, $SYS. The event
 * loop calls it a few times a second with a monotonic clock in ms. */
void pg_broker_tick(pg_broker *b, int64_t now_ms);
/* Moves the clock without the sweeps: the event loop calls it after each poll, so
 * keepalive and expiry times are exact rather than one tick stale. */
void pg_broker_clock(pg_broker *b, int64_t now_ms);
int64_t pg_broker_now(const pg_broker *b);
const struct pg_broker_config *pg_broker_config(const pg_broker *b);

/* Inline publish from the embedding program (no network client). Returns a reason
 * code as pg_publish. */
int pg_broker_publish(pg_broker *b, const char *topic, const void *payload, size_t len, int qos,
                      int retain);

/* Byte counters for $SYS, fed by adapters. */
void pg_broker_count_bytes(pg_broker *b, size_t in, size_t out);

/* ---- Identity and hooks ---- */

struct pg_identity {
    const char *client_id;
    const char *username; /* NULL when none */
    const char *peer;     /* "address:port" */
    const char *protocol; /* "mqtt", "mqtt-sn", "coap", "stomp", ... */
    const char *listener; /* listener name, e.g. "mqtt:0.0.0.0:1883" */
    const char *cert_cn;  /* TLS client certificate CN or NULL */
};

#define PG_ACCESS_READ      1 /* a message is about to be delivered */
#define PG_ACCESS_WRITE     2 /* a client publishes */
#define PG_ACCESS_SUBSCRIBE 4 /* a client subscribes */

#define PG_HOOK_PASS    -1 /* no opinion: ask the next hook, then the default */
#define PG_HOOK_ALLOW   0
#define PG_HOOK_PENDING -2 /* the answer comes later: see pg_hook_defer */

enum pg_event_type {
    PG_EV_CONNECTED,
    PG_EV_DISCONNECTED,
    PG_EV_SUBSCRIBED,
    PG_EV_UNSUBSCRIBED,
    PG_EV_PUBLISHED, /* a message entered the broker */
    PG_EV_DELIVERED, /* handed to a subscriber's adapter */
    PG_EV_ACKED,     /* a subscriber acknowledged a QoS 1/2 delivery */
    PG_EV_DROPPED,   /* a queued message was dropped (queue full, expiry, size) */
};

struct pg_event {
    enum pg_event_type type;
    const struct pg_identity *id; /* the client concerned, NULL for inline publishes */
    const pg_msg *msg;            /* PUBLISHED, DELIVERED, ACKED, DROPPED */
    const char *filter;           /* SUBSCRIBED, UNSUBSCRIBED */
    size_t filter_len;
    uint8_t qos;
    uint8_t reason;
};

struct pg_hooks {
    /* Return PG_HOOK_ALLOW, PG_HOOK_PASS, or a refusing reason code
     * (PG_RC_BAD_USERNAME_OR_PASSWORD, PG_RC_NOT_AUTHORIZED...). */
    int (*authenticate)(void *ud, const struct pg_identity *id, const void *password,
                        size_t password_len, int has_password);
    /* access is one PG_ACCESS_*; same return convention. */
    int (*authorize)(void *ud, const struct pg_identity *id, int access, const char *topic,
                     size_t topic_len);
    void (*event)(void *ud, const struct pg_event *ev);
    void *ud;
};

/* ---- Hooks that answer later ----
 *
 * A hook that must ask a remote service (an HTTP auth backend) calls
 * pg_hook_defer() and returns PG_HOOK_PENDING. The adapter then gets PG_RC_PENDING
 * from pg_connect, pg_publish or pg_subscribe, with nothing done: it stops reading
 * that client, keeps the packet, and when the core calls ops->resume(conn) it
 * handles the same packet again; this time the core answers with the hook's
 * verdict. So a client's packets stay in order and other clients are served while
 * it waits. Questions with no client to wait (delivery READ checks, wills, inline
 * publishes) get NULL from pg_hook_defer: the hook must answer at once. */
typedef struct pg_defer pg_defer;
pg_defer *pg_hook_defer(pg_broker *b);
/* The deferred hook's verdict (PG_HOOK_ALLOW, PG_HOOK_PASS or a reason code).
 * d is finished with: the hook must not use it again. */
void pg_defer_answer(pg_defer *d, int verdict);
/* An adapter's connection has ended: forget its questions (a late answer to one is
 * dropped). Adapters call it on every close, connected or not. */
void pg_forget_conn(pg_broker *b, void *conn);

/* How long an adapter should hold a refused authentication from this peer
 * ("address:port") before answering, in ms: 0 until the address has failed more
 * than auth_failure_threshold times. */
uint32_t pg_auth_delay_ms(pg_broker *b, const char *peer);

/* Registers a hook set; hooks are asked in registration order. Returns 0 or -1. */
int pg_broker_add_hooks(pg_broker *b, const struct pg_hooks *h);

/* ---- Sessions: what an adapter calls ---- */

/* How the core reaches back into the adapter that owns a connection. */
struct pg_conn_ops {
    /* Deliveries are waiting: arrange to call pg_session_next() when writable. */
    void (*wakeup)(void *conn);
    /* The core has ended this connection (takeover 0x8E, keepalive 0x8D, server
     * shutdown 0x8B). The session is already detached: the adapter must not use it
     * again nor call pg_disconnect; it should tell the client `reason` if its
     * protocol can, and close. */
    void (*kick)(void *conn, uint8_t reason);
    /* A hook that made this connection wait (PG_RC_PENDING) has its answer: handle
     * the waiting packet again. */
    void (*resume)(void *conn);
};

struct pg_connect_req {
    struct pg_identity id; /* strings are copied */
    const void *password;
    size_t password_len;
    int has_password;
    int clean_start;
    uint32_t session_expiry_s; /* 0 = ends with the connection, UINT32_MAX = never */
    uint16_t keepalive_s;      /* 0 = none; the core enforces 1.5x */
    uint16_t receive_max;      /* client's window for QoS 1/2 deliveries */
    uint16_t inbound_max;      /* inbound QoS 2 awaiting release; 0 = max_inflight */
    pg_msg *will;              /* NULL or a message whose reference passes to the core */
    uint32_t will_delay_s;
};

/* Authenticates (and checks that the will's topic may be written), then attaches a
 * connection to its session (taking over an existing connection with the same
 * client id). On success returns 0 and sets *out and *session_present; otherwise a
 * reason code or PG_RC_PENDING, and the will (if any) is released. */
int pg_connect(pg_broker *b, const struct pg_connect_req *req, const struct pg_conn_ops *ops,
               void *conn, pg_session **out, int *session_present);

#define PG_DISC_NORMAL    0 /* client said goodbye: no will */
#define PG_DISC_WITH_WILL 1 /* abnormal end, or v5 DISCONNECT 0x04 */
/* The connection ended. session_expiry_s replaces the session's expiry when not
 * NULL (v5 DISCONNECT may change it). */
void pg_disconnect(pg_session *s, int how, const uint32_t *session_expiry_s);

/* Replaces the connection's will (NULL removes it; the reference passes to the
 * core), as MQTT-SN's WILLTOPICUPD/WILLMSGUPD do. Returns 0, or
 * PG_RC_NOT_AUTHORIZED when the client may not publish to its topic (the old will
 * stays). Remote hooks answer from what they know at once. */
int pg_session_set_will(pg_session *s, pg_msg *will);

const struct pg_identity *pg_session_identity(const pg_session *s);
pg_broker *pg_session_broker(const pg_session *s);
/* Any packet from the client: keeps the keepalive timer happy. */
void pg_session_touch(pg_session *s);

/* Publishes m (the caller keeps its reference). from is NULL for inline publishes.
 * Returns 0, PG_RC_NO_MATCHING_SUBSCRIBERS, PG_RC_NOT_AUTHORIZED,
 * PG_RC_RETAIN_NOT_SUPPORTED, PG_RC_TOPIC_NAME_INVALID, or PG_RC_PENDING. */
int pg_publish(pg_broker *b, pg_session *from, pg_msg *m);

/* Inbound QoS 2 (method: deliver on PUBLISH, remember the packet id until PUBREL).
 * pg_qos2_received returns 1 if the id is new (route the message), 0 if it is a
 * duplicate (don't), -1 if more than the connection's inbound_max are pending. */
int pg_qos2_received(pg_session *s, uint16_t packet_id);
/* Returns 0, or PG_RC_PACKET_ID_NOT_FOUND. */
int pg_qos2_released(pg_session *s, uint16_t packet_id);

struct pg_sub_opts {
    uint8_t qos; /* maximum QoS requested */
    uint8_t no_local;
    uint8_t retain_as_published;
    uint8_t retain_handling; /* 0 send retained, 1 only if new, 2 never */
    uint32_t sub_id;         /* 0 = none */
};

/* Subscribes (filter may be $share/GROUP/FILTER). Returns the granted QoS (0..2), a
 * reason code >= 0x80 (PG_RC_NOT_AUTHORIZED, PG_RC_TOPIC_FILTER_INVALID...) or
 * PG_RC_PENDING.
 * Matching retained messages are queued per retain_handling. */
int pg_subscribe(pg_session *s, const char *filter, size_t len, const struct pg_sub_opts *o);
/* Returns 0 or PG_RC_NO_SUBSCRIPTION_EXISTED. */
int pg_unsubscribe(pg_session *s, const char *filter, size_t len);

/* ---- Deliveries: the adapter pulls when it can write ---- */

#define PG_DELIVER_PUBLISH 0
#define PG_DELIVER_PUBREL  1 /* resend after reconnect: a PUBREL for packet_id */

struct pg_delivery {
    int kind;
    pg_msg *msg; /* PUBLISH: a reference the adapter drops with pg_msg_unref */
    uint16_t packet_id;
    uint8_t qos;
    uint8_t retain;
    uint8_t dup;
    uint32_t expiry_left_s; /* when msg->expires_at != 0 */
    uint32_t n_sub_ids;
    const uint32_t *sub_ids; /* valid until the next call on this session */
};

/* Produces the next delivery if one may be sent now (the QoS 1/2 window has room).
 * Returns 1 when *d was filled, 0 when nothing can be sent. */
int pg_session_next(pg_session *s, struct pg_delivery *d);
/* The adapter could not send a delivery it pulled (too large for the client): the
 * QoS 1/2 state is completed as if acknowledged, and the drop counted. */
void pg_session_discard(pg_session *s, uint16_t packet_id);
/* Client acks. Each returns 0 or PG_RC_PACKET_ID_NOT_FOUND. */
int pg_session_puback(pg_session *s, uint16_t packet_id);
int pg_session_pubrec(pg_session *s, uint16_t packet_id); /* adapter then sends PUBREL */
int pg_session_pubcomp(pg_session *s, uint16_t packet_id);

#endif
