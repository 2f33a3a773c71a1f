/* internal.h - the broker core's private structures, shared by the broker's .c files only.
 *
 * Layout: broker.c (lifetime, tick), hooks.c (the hook chain, deferred answers), msg.c (messages),
 * session.c (the session table, connect/takeover/expiry), will.c (wills), queue.c (per-session
 * delivery queue and QoS 1/2 state), route.c (publish routing and retained),
 * subscribe.c (subscriptions), sys.c ($SYS statistics).
 */
#ifndef PG_BROKER_INTERNAL_H
#define PG_BROKER_INTERNAL_H

#include "broker/broker.h"
#include "broker/retain.h"
#include "broker/store.h"
#include "broker/trie.h"

/* One queued delivery: a message on its way to a session. */
struct pg_qentry {
    pg_msg *msg;
    uint8_t qos;
    uint8_t retain;
    uint16_t n_sub_ids;
    uint32_t sub_id;   /* the only one when n_sub_ids == 1 */
    uint32_t *sub_ids; /* heap array when n_sub_ids > 1 */
};

/* A ring of queued deliveries that grows on demand (idle sessions hold none). */
struct pg_queue {
    struct pg_qentry *e;
    uint32_t cap, head, len;
};

enum pg_inflight_state { WAIT_PUBACK, WAIT_PUBREC, WAIT_PUBCOMP };

/* An outbound QoS 1/2 delivery sent (or about to be) and not yet acknowledged. */
struct pg_inflight {
    struct pg_qentry q;
    uint16_t packet_id;
    uint8_t state;
};

/* A subscription as the session remembers it (to undo and persist it). */
struct pg_sess_sub {
    char *filter; /* as given, including any $share/GROUP/ prefix */
    uint16_t len;
    struct pg_sub_opts opts;
};

struct pg_session {
    pg_broker *broker;
    uint64_t uid; /* unique per session lifetime (no-local, dedupe) */
    struct pg_identity id;
    char *strings; /* one allocation behind id's strings */
    const struct pg_conn_ops *ops;
    void *conn;               /* NULL while offline */
    struct pg_session *hnext; /* session table chain */

    uint32_t expiry_s;
    int64_t expires_at; /* offline: when the session ends (0 = never) */
    uint16_t keepalive_s;
    int64_t last_seen;
    uint16_t receive_max;

    struct pg_queue queue;
    struct pg_inflight *inflight; /* in send order */
    uint16_t n_inflight, cap_inflight;
    uint16_t resend; /* the last `resend` inflight entries are still to resend */
    uint16_t next_packet_id;
    uint16_t *qos2_in; /* inbound QoS 2 ids awaiting PUBREL */
    uint16_t n_qos2_in, cap_qos2_in, qos2_in_max;

    struct pg_sess_sub *subs;
    uint32_t n_subs, cap_subs;

    pg_msg *will;
    uint32_t will_delay_s;
    int64_t will_at; /* a will waiting for its delay, 0 = none */

    uint64_t route_gen; /* last routing pass that queued for this session */
    int route_queued;   /* whether that pass's entry is the queue's tail */
    uint32_t scratch_ids[1];
    uint32_t *spent_ids; /* see queue.c release_keeping_ids */
    uint64_t dropped;
};

struct pg_stats {
    uint64_t msgs_received, msgs_sent, msgs_dropped;
    uint64_t bytes_received, bytes_sent;
    uint64_t clients_total, clients_connected, clients_maximum;
    uint64_t publish_retained;
};

struct pg_broker {
    struct pg_broker_config cfg;
    char *version;
    pg_trie *subs;
    pg_retain *retained;
    struct pg_session **table; /* by client id, chained */
    uint32_t table_cap, n_sessions;
    struct pg_hooks *hooks;
    int n_hooks;
    struct pg_defer *defers; /* hooks.c: questions waiting for, or holding, answers */
    struct pg_ask *asking;   /* the question the hooks are answering now */
    int has_authorize;       /* any hook wants per-delivery READ checks */
    int has_events;
    int64_t now;
    int64_t started;
    int64_t next_sys;
    uint64_t route_gen;
    uint64_t next_uid;
    pg_session **touched; /* sessions a routing pass queued for */
    uint32_t n_touched, cap_touched;
    struct pg_stats stats;
    struct pg_authfail *authfail; /* authfail.c */
    uint32_t n_authfail;
    const struct pg_store_ops *store;
    void *store_ud;
};

/* The connection that waits if a hook defers its answer (NULL: nobody can wait). */
struct pg_waiter {
    const struct pg_conn_ops *ops;
    void *conn;
};

/* hooks.c */
void pg_emit(pg_broker *b, enum pg_event_type t, const struct pg_identity *id, const pg_msg *m,
             const char *filter, size_t flen, uint8_t qos, uint8_t reason);
/* Both return PG_HOOK_ALLOW, a refusing reason code, or PG_RC_PENDING (only with a
 * waiter). */
int pg_hooks_authorize(pg_broker *b, const struct pg_identity *id, int access, const char *topic,
                       size_t len, const struct pg_waiter *w);
int pg_hooks_authenticate(pg_broker *b, const struct pg_connect_req *req,
                          const struct pg_waiter *w);
/* The waiter's question is settled (its call returned something other than
 * PG_RC_PENDING): drop the answers it was holding. */
void pg_defers_settle(pg_broker *b, void *conn);
void pg_defers_free(pg_broker *b);

/* session.c */
pg_session *pg_session_find(pg_broker *b, const char *client_id);
void pg_session_destroy(pg_session *s);
void pg_sessions_tick(pg_broker *b);
void pg_session_detach(pg_session *s, int how, uint8_t kick_reason);

/* will.c */
void pg_will_set(pg_session *s, pg_msg *will, uint32_t delay_s);
void pg_will_on_disconnect(pg_session *s, int how);
void pg_will_cancel(pg_session *s);
void pg_will_publish(pg_session *s);

/* queue.c */
/* bounded: apply max_queued_messages (retained messages sent on subscribe are not) */
int pg_queue_push(pg_session *s, pg_msg *m, uint8_t qos, uint8_t retain, uint32_t sub_id,
                  int bounded);
void pg_queue_merge_tail(pg_session *s, uint8_t qos, uint8_t retain, uint32_t sub_id);
void pg_queue_clear(pg_session *s);
void pg_qentry_release(struct pg_qentry *q);

/* route.c */
/* pg_publish; can_wait = 0 for wills: nobody is left to wait for a remote answer. */
int pg_publish_as(pg_broker *b, pg_session *from, pg_msg *m, int can_wait);
void pg_wakeup_touched(pg_broker *b);
void pg_send_retained(pg_session *s, const char *filter, size_t len, const struct pg_sub_opts *o);

/* subscribe.c */
void pg_session_unsubscribe_all(pg_session *s);

/* authfail.c */
void pg_authfail_record(pg_broker *b, const char *peer);

/* sys.c */
void pg_sys_publish(pg_broker *b);

#endif
