/* broker.c - the broker's lifetime, its clock, and the hook chain.
 *
 * The event loop owns time: it calls pg_broker_tick() a few times a second, which
 * sweeps sessions (keepalive, will delay, expiry) and publishes $SYS. The hook
 * chain is in hooks.c.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"

void pg_broker_config_defaults(struct pg_broker_config *c) {
    memset(c, 0, sizeof *c);
    c->max_packet_size = 1048576;
    c->max_inflight = 32;
    c->max_queued_messages = 1000;
    c->max_keepalive = 65535;
    c->retain_available = 1;
    c->sys_interval = 10;
    c->allow_anonymous = 1;
    c->auth_failure_threshold = 3;
    c->auth_failure_delay_ms = 1000;
    c->auth_failure_delay_max_ms = 30000;
    c->version = "polygate";
}

static void retain_ref(void *v) {
    pg_msg_ref(v);
}

static void retain_unref(void *v) {
    pg_msg_unref(v);
}

static int session_online(void *owner) {
    return ((pg_session *)owner)->conn != NULL;
}

pg_broker *pg_broker_new(const struct pg_broker_config *c) {
    pg_broker *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->cfg = *c;
    b->version = strdup(c->version ? c->version : "polygate");
    b->cfg.version = b->version;
    if (b->cfg.max_inflight == 0)
        b->cfg.max_inflight = 1;
    b->subs = pg_trie_new(session_online);
    b->retained = pg_retain_new(retain_ref, retain_unref);
    b->table_cap = 1024;
    b->table = calloc(b->table_cap, sizeof *b->table);
    if (!b->version || !b->subs || !b->retained || !b->table) {
        pg_broker_free(b);
        return NULL;
    }
    b->next_uid = 1;
    return b;
}

void pg_broker_shutdown(pg_broker *b) {
    for (uint32_t i = 0; i < b->table_cap; i++)
        for (pg_session *s = b->table[i], *next; s; s = next) {
            next = s->hnext; /* detaching may end the session */
            if (s->conn)
                pg_session_detach(s, PG_DISC_WITH_WILL, PG_RC_SERVER_SHUTTING_DOWN);
        }
    /* Wills waiting for their delay are due now: the server is going away. */
    for (uint32_t i = 0; i < b->table_cap; i++)
        for (pg_session *s = b->table[i]; s; s = s->hnext)
            if (s->will_at)
                pg_will_publish(s);
    if (b->store && b->store->flush)
        b->store->flush(b->store_ud);
}

void pg_broker_free(pg_broker *b) {
    if (!b)
        return;
    if (b->table) {
        for (uint32_t i = 0; i < b->table_cap; i++)
            while (b->table[i])
                pg_session_destroy(b->table[i]);
        free(b->table);
    }
    if (b->retained)
        pg_retain_free(b->retained);
    if (b->subs)
        pg_trie_free(b->subs);
    pg_defers_free(b);
    free(b->hooks);
    free(b->touched);
    free(b->authfail);
    free(b->version);
    free(b);
}

void pg_broker_tick(pg_broker *b, int64_t now_ms) {
    b->now = now_ms;
    if (!b->started) {
        b->started = now_ms;
        b->next_sys = now_ms;
    }
    pg_sessions_tick(b);
    if (b->cfg.sys_interval && now_ms >= b->next_sys) {
        b->next_sys = now_ms + (int64_t)b->cfg.sys_interval * 1000;
        pg_sys_publish(b);
    }
}

void pg_broker_clock(pg_broker *b, int64_t now_ms) {
    if (now_ms > b->now)
        b->now = now_ms;
}

int64_t pg_broker_now(const pg_broker *b) {
    return b->now;
}

const struct pg_broker_config *pg_broker_config(const pg_broker *b) {
    return &b->cfg;
}

int pg_broker_publish(pg_broker *b, const char *topic, const void *payload, size_t len, int qos,
                      int retain) {
    pg_msg *m = pg_msg_new(topic, strlen(topic), payload, len, qos, retain, NULL);
    if (!m)
        return PG_RC_UNSPECIFIED;
    int rc = pg_publish(b, NULL, m);
    pg_msg_unref(m);
    return rc;
}

void pg_broker_count_bytes(pg_broker *b, size_t in, size_t out) {
    b->stats.bytes_received += in;
    b->stats.bytes_sent += out;
}

void pg_broker_set_store(pg_broker *b, const struct pg_store_ops *ops, void *ud) {
    b->store = ops;
    b->store_ud = ud;
}

int pg_broker_restore_retained(pg_broker *b, pg_msg *m) {
    return pg_retain_set(b->retained, m->topic, m->topic_len, m) < 0 ? -1 : 0;
}
