/* route.c - publishing: from one message to every matching session's queue.
 *
 * One pass over the subscription trie per message. A session matched by several
 * of its subscriptions gets one delivery at the highest granted QoS carrying all
 * their subscription identifiers (the routing generation stamp on the session
 * finds its entry at the queue's tail). Sessions that got something are woken
 * once, after the pass. The message itself is never copied: queues hold references.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"

struct route_ctx {
    pg_broker *b;
    pg_msg *m;
    uint64_t gen;
    int matched;
};

static void touch(pg_broker *b, pg_session *s) {
    if (b->n_touched == b->cap_touched) {
        uint32_t cap = b->cap_touched ? b->cap_touched * 2 : 64;
        pg_session **n = realloc(b->touched, cap * sizeof *n);
        if (!n)
            return; /* it will be woken by its next packet or tick */
        b->touched = n;
        b->cap_touched = cap;
    }
    b->touched[b->n_touched++] = s;
}

void pg_wakeup_touched(pg_broker *b) {
    for (uint32_t i = 0; i < b->n_touched; i++) {
        pg_session *s = b->touched[i];
        if (s->conn)
            s->ops->wakeup(s->conn);
    }
    b->n_touched = 0;
}

static int may_read(pg_broker *b, pg_session *s, const pg_msg *m) {
    return !b->has_authorize || pg_hooks_authorize(b, &s->id, PG_ACCESS_READ, m->topic,
                                                   m->topic_len, NULL) == PG_HOOK_ALLOW;
}

static int route_one(void *vctx, const struct pg_sub *sub, int shared) {
    struct route_ctx *c = vctx;
    pg_session *s = sub->owner;
    pg_msg *m = c->m;
    if ((sub->options & PG_SUBOPT_NO_LOCAL) && s->uid == m->origin)
        return 0;
    uint8_t qos = sub->qos < m->qos ? sub->qos : m->qos;
    uint8_t retain = (sub->options & PG_SUBOPT_RAP) ? m->retain : 0;
    if (s->route_gen == c->gen) {
        if (s->route_queued)
            pg_queue_merge_tail(s, qos, retain, sub->sub_id);
        return 0;
    }
    s->route_gen = c->gen;
    s->route_queued = 0;
    if (!may_read(c->b, s, m))
        return 0;
    c->matched = 1;
    s->route_queued = pg_queue_push(s, m, qos, retain, sub->sub_id, 1);
    if (s->route_queued && s->conn)
        touch(c->b, s);
    return 0;
}

static int store_retained(pg_broker *b, pg_msg *m) {
    if (!b->cfg.retain_available)
        return PG_RC_RETAIN_NOT_SUPPORTED;
    void *value = m->payload_len ? m : NULL; /* an empty payload clears */
    if (pg_retain_set(b->retained, m->topic, m->topic_len, value) < 0)
        return PG_RC_UNSPECIFIED;
    if (b->store && b->store->retain_changed)
        b->store->retain_changed(b->store_ud, m->topic, m->topic_len, value);
    return 0;
}

/* A topic name has no wildcards and no NUL (MQTT 5.0 4.7.3); it is not empty. */
static int topic_name_valid(const char *t, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (t[i] == '+' || t[i] == '#' || t[i] == 0)
            return 0;
    return len > 0;
}

/* May `from` publish m? A client that is connected can wait for a remote answer. */
static int may_write(pg_broker *b, pg_session *from, const pg_msg *m, int can_wait) {
    /* $SYS belongs to the broker: clients may read it, never write it. */
    if (m->topic_len >= 4 && !memcmp(m->topic, "$SYS", 4) &&
        (m->topic_len == 4 || m->topic[4] == '/'))
        return PG_RC_NOT_AUTHORIZED;
    if (!b->has_authorize)
        return PG_HOOK_ALLOW;
    struct pg_waiter w = {from->ops, from->conn};
    int rc = pg_hooks_authorize(b, &from->id, PG_ACCESS_WRITE, m->topic, m->topic_len,
                                can_wait && from->conn ? &w : NULL);
    if (rc != PG_RC_PENDING && from->conn)
        pg_defers_settle(b, from->conn);
    return rc == PG_HOOK_ALLOW || rc == PG_RC_PENDING ? rc : PG_RC_NOT_AUTHORIZED;
}

int pg_publish(pg_broker *b, pg_session *from, pg_msg *m) {
    return pg_publish_as(b, from, m, 1);
}

int pg_publish_as(pg_broker *b, pg_session *from, pg_msg *m, int can_wait) {
    if (!topic_name_valid(m->topic, m->topic_len))
        return PG_RC_TOPIC_NAME_INVALID;
    int rc = from ? may_write(b, from, m, can_wait) : PG_HOOK_ALLOW;
    if (rc != PG_HOOK_ALLOW)
        return rc;
    m->origin = from ? from->uid : 0;
    if (m->expiry_s && !m->expires_at)
        m->expires_at = b->now + (int64_t)m->expiry_s * 1000;
    if (m->retain) {
        rc = store_retained(b, m);
        if (rc)
            return rc;
    }
    b->stats.msgs_received++;
    pg_emit(b, PG_EV_PUBLISHED, from ? &from->id : NULL, m, NULL, 0, m->qos, 0);
    struct route_ctx c = {.b = b, .m = m, .gen = ++b->route_gen};
    pg_trie_match(b->subs, m->topic, m->topic_len, route_one, &c);
    pg_wakeup_touched(b);
    return c.matched ? PG_RC_SUCCESS : PG_RC_NO_MATCHING_SUBSCRIBERS;
}

struct retained_ctx {
    pg_session *s;
    const struct pg_sub_opts *o;
    int queued;
};

static int queue_retained(void *vctx, const char *topic, size_t len, void *value) {
    struct retained_ctx *c = vctx;
    pg_msg *m = value;
    pg_session *s = c->s;
    if (m->expires_at && m->expires_at <= s->broker->now)
        return 0;
    if (!may_read(s->broker, s, m))
        return 0;
    uint8_t qos = c->o->qos < m->qos ? c->o->qos : m->qos;
    c->queued |= pg_queue_push(s, m, qos, 1, c->o->sub_id, 0);
    return 0;
}

void pg_send_retained(pg_session *s, const char *filter, size_t len, const struct pg_sub_opts *o) {
    struct retained_ctx c = {.s = s, .o = o};
    pg_retain_match(s->broker->retained, filter, len, queue_retained, &c);
    if (c.queued && s->conn)
        s->ops->wakeup(s->conn);
}
