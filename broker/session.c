/* session.c - sessions keyed by client id: connect, takeover, disconnect, expiry.
 *
 * A session outlives its connections when it has an expiry interval. pg_connect()
 * authenticates, takes over any connection holding the same client id (the old one
 * is kicked with 0x8E and handled as an abnormal end, so its will follows the will
 * delay rules), then resumes or replaces the session per clean start. Going
 * offline starts the expiry clock; the tick sweep ends expired sessions, fires
 * delayed wills and enforces keepalive (1.5 x the client's interval).
 */
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"

static uint32_t hash_str(const char *s) {
    uint32_t h = 2166136261u;
    while (*s)
        h = (h ^ (uint8_t)*s++) * 16777619u;
    return h;
}

pg_session *pg_session_find(pg_broker *b, const char *client_id) {
    pg_session *s = b->table[hash_str(client_id) & (b->table_cap - 1)];
    while (s && strcmp(s->id.client_id, client_id))
        s = s->hnext;
    return s;
}

static void table_grow(pg_broker *b) {
    uint32_t cap = b->table_cap * 2;
    pg_session **t = calloc(cap, sizeof *t);
    if (!t)
        return; /* chains just get longer */
    for (uint32_t i = 0; i < b->table_cap; i++) {
        pg_session *s = b->table[i];
        while (s) {
            pg_session *next = s->hnext;
            uint32_t h = hash_str(s->id.client_id) & (cap - 1);
            s->hnext = t[h];
            t[h] = s;
            s = next;
        }
    }
    free(b->table);
    b->table = t;
    b->table_cap = cap;
}

static void table_remove(pg_broker *b, pg_session *s) {
    pg_session **pp = &b->table[hash_str(s->id.client_id) & (b->table_cap - 1)];
    while (*pp && *pp != s)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = s->hnext;
    b->n_sessions--;
}

/* Copies the identity's strings into one allocation owned by the session. */
static int set_identity(pg_session *s, const struct pg_identity *id) {
    const char *src[6] = {id->client_id, id->username, id->peer,
                          id->protocol,  id->listener, id->cert_cn};
    size_t total = 0;
    for (int i = 0; i < 6; i++)
        total += src[i] ? strlen(src[i]) + 1 : 0;
    char *buf = malloc(total ? total : 1);
    if (!buf)
        return -1;
    const char *dst[6];
    char *c = buf;
    for (int i = 0; i < 6; i++) {
        dst[i] = NULL;
        if (src[i]) {
            size_t n = strlen(src[i]) + 1;
            memcpy(c, src[i], n);
            dst[i] = c;
            c += n;
        }
    }
    free(s->strings);
    s->strings = buf;
    s->id = (struct pg_identity){dst[0], dst[1], dst[2], dst[3], dst[4], dst[5]};
    return 0;
}

static pg_session *session_create(pg_broker *b, const struct pg_identity *id) {
    pg_session *s = calloc(1, sizeof *s);
    if (!s || set_identity(s, id) < 0) {
        free(s);
        return NULL;
    }
    s->broker = b;
    s->uid = b->next_uid++;
    s->next_packet_id = 1;
    if (b->n_sessions >= b->table_cap)
        table_grow(b);
    uint32_t h = hash_str(s->id.client_id) & (b->table_cap - 1);
    s->hnext = b->table[h];
    b->table[h] = s;
    b->n_sessions++;
    return s;
}

void pg_session_destroy(pg_session *s) {
    pg_broker *b = s->broker;
    pg_session_unsubscribe_all(s);
    pg_queue_clear(s);
    pg_will_cancel(s);
    table_remove(b, s);
    if (b->store && b->store->session_removed && s->expiry_s)
        b->store->session_removed(b->store_ud, s->id.client_id);
    free(s->subs);
    free(s->qos2_in);
    free(s->strings);
    free(s);
}

/* The session ends for good: a will still waiting for its delay goes out now. */
static void session_end(pg_session *s) {
    if (s->will_at)
        pg_will_publish(s);
    pg_session_destroy(s);
}

static void go_offline(pg_session *s, int how) {
    pg_broker *b = s->broker;
    s->conn = NULL;
    s->ops = NULL;
    b->stats.clients_connected--;
    pg_emit(b, PG_EV_DISCONNECTED, &s->id, NULL, NULL, 0, 0, (uint8_t)how);
    pg_will_on_disconnect(s, how);
    if (s->expiry_s == 0) {
        session_end(s);
        return;
    }
    s->expires_at = s->expiry_s == UINT32_MAX ? 0 : b->now + (int64_t)s->expiry_s * 1000;
    if (b->store && b->store->session_changed)
        b->store->session_changed(b->store_ud, s);
}

void pg_session_detach(pg_session *s, int how, uint8_t kick_reason) {
    const struct pg_conn_ops *ops = s->ops;
    void *conn = s->conn;
    if (!conn)
        return;
    s->conn = NULL; /* the adapter must see it detached during kick */
    if (ops && ops->kick)
        ops->kick(conn, kick_reason);
    s->conn = conn;
    go_offline(s, how);
}

void pg_disconnect(pg_session *s, int how, const uint32_t *session_expiry_s) {
    if (!s->conn)
        return;
    if (session_expiry_s) {
        uint32_t cap = s->broker->cfg.session_expiry_max;
        s->expiry_s = cap && *session_expiry_s > cap ? cap : *session_expiry_s;
    }
    go_offline(s, how);
}

static uint32_t capped_expiry(pg_broker *b, uint32_t e) {
    uint32_t cap = b->cfg.session_expiry_max;
    return cap && e > cap ? cap : e;
}

/* Finds the session to attach to, ending what clean start or takeover ends. */
static pg_session *claim_session(pg_broker *b, const struct pg_connect_req *req, int *present) {
    pg_session *s = pg_session_find(b, req->id.client_id);
    if (s && s->conn)
        pg_session_detach(s, PG_DISC_WITH_WILL, PG_RC_SESSION_TAKEN_OVER);
    s = pg_session_find(b, req->id.client_id); /* detach may have ended it */
    if (s && req->clean_start) {
        session_end(s);
        s = NULL;
    }
    *present = s != NULL;
    if (s) {
        pg_will_cancel(s); /* back before the will delay passed: no will */
        if (set_identity(s, &req->id) < 0)
            return NULL;
        s->resend = s->n_inflight;
        return s;
    }
    return session_create(b, &req->id);
}

/* The hooks' verdict on a connection: its credentials, then its will's topic (as
 * mosquitto does, so a will cannot go where the client may not publish). */
static int admit(pg_broker *b, const struct pg_connect_req *req, const struct pg_waiter *w) {
    int rc = pg_hooks_authenticate(b, req, w);
    if (rc != PG_HOOK_ALLOW) {
        /* A backend that is down or waited for is not the client's failure. */
        if (rc != PG_RC_PENDING && rc != PG_RC_SERVER_UNAVAILABLE)
            pg_authfail_record(b, req->id.peer);
        return rc;
    }
    if (req->will && b->has_authorize) {
        rc = pg_hooks_authorize(b, &req->id, PG_ACCESS_WRITE, req->will->topic,
                                req->will->topic_len, w);
        if (rc != PG_HOOK_ALLOW)
            return rc == PG_RC_PENDING ? rc : PG_RC_NOT_AUTHORIZED;
    }
    return PG_HOOK_ALLOW;
}

int pg_connect(pg_broker *b, const struct pg_connect_req *req, const struct pg_conn_ops *ops,
               void *conn, pg_session **out, int *session_present) {
    struct pg_waiter w = {ops, conn};
    int rc = admit(b, req, &w);
    if (rc != PG_RC_PENDING)
        pg_defers_settle(b, conn);
    if (rc != PG_HOOK_ALLOW) {
        pg_msg_unref(req->will);
        return rc;
    }
    pg_session *s = claim_session(b, req, session_present);
    if (!s) {
        pg_msg_unref(req->will);
        return PG_RC_SERVER_UNAVAILABLE;
    }
    s->ops = ops;
    s->conn = conn;
    s->expiry_s = capped_expiry(b, req->session_expiry_s);
    s->expires_at = 0;
    s->keepalive_s = req->keepalive_s;
    s->receive_max = req->receive_max ? req->receive_max : 65535;
    s->qos2_in_max = req->inbound_max ? req->inbound_max : b->cfg.max_inflight;
    s->last_seen = b->now;
    if (req->will)
        pg_will_set(s, req->will, req->will_delay_s);
    b->stats.clients_connected++;
    b->stats.clients_total++;
    if (b->stats.clients_connected > b->stats.clients_maximum)
        b->stats.clients_maximum = b->stats.clients_connected;
    pg_emit(b, PG_EV_CONNECTED, &s->id, NULL, NULL, 0, 0, 0);
    *out = s;
    if (s->queue.len || s->n_inflight)
        ops->wakeup(conn);
    return PG_RC_SUCCESS;
}

const struct pg_identity *pg_session_identity(const pg_session *s) {
    return &s->id;
}

pg_broker *pg_session_broker(const pg_session *s) {
    return s->broker;
}

void pg_session_touch(pg_session *s) {
    s->last_seen = s->broker->now;
}

static void tick_one(pg_broker *b, pg_session *s) {
    if (s->conn) {
        int64_t limit = (int64_t)s->keepalive_s * 1500;
        if (s->keepalive_s && b->now - s->last_seen > limit)
            pg_session_detach(s, PG_DISC_WITH_WILL, PG_RC_KEEP_ALIVE_TIMEOUT);
        return;
    }
    if (s->will_at && b->now >= s->will_at)
        pg_will_publish(s);
    if (s->expires_at && b->now >= s->expires_at)
        session_end(s);
}

void pg_sessions_tick(pg_broker *b) {
    for (uint32_t i = 0; i < b->table_cap; i++) {
        pg_session *s = b->table[i];
        while (s) {
            pg_session *next = s->hnext;
            tick_one(b, s);
            s = next;
        }
    }
}
