/* subscribe.c - subscriptions: the trie entry plus the session's own record.
 *
 * The trie answers routing; the session keeps the list of what it subscribed to
 * so the subscriptions can be undone when the session ends and persisted while it
 * lives. Retained messages are queued per retain handling, never for shared
 * subscriptions (MQTT 5.0 4.8.2).
 */
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"

/* Wildcard placement (MQTT 5.0 4.7.1): '#' only as the whole last level, '+' only
 * as a whole level; no NUL characters. */
static int filter_valid(const char *f, size_t len) {
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        int level_start = i == 0 || f[i - 1] == '/';
        int level_end = i + 1 == len || f[i + 1] == '/';
        if (f[i] == 0)
            return 0;
        if (f[i] == '+' && !(level_start && level_end))
            return 0;
        if (f[i] == '#' && !(level_start && i + 1 == len))
            return 0;
    }
    return 1;
}

static struct pg_sess_sub *find_sub(pg_session *s, const char *f, size_t len) {
    for (uint32_t i = 0; i < s->n_subs; i++)
        if (s->subs[i].len == len && !memcmp(s->subs[i].filter, f, len))
            return &s->subs[i];
    return NULL;
}

/* existed: the trie already had it, so only the options change (the scan is
 * paid only then, never for a new filter). */
static int remember_sub(pg_session *s, const char *f, size_t len, const struct pg_sub_opts *o,
                        int existed) {
    struct pg_sess_sub *e = existed ? find_sub(s, f, len) : NULL;
    if (e) {
        e->opts = *o;
        return 0;
    }
    if (s->n_subs == s->cap_subs) {
        uint32_t cap = s->cap_subs ? s->cap_subs * 2 : 2;
        struct pg_sess_sub *n = realloc(s->subs, cap * sizeof *n);
        if (!n)
            return -1;
        s->subs = n;
        s->cap_subs = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, f, len);
    copy[len] = 0;
    s->subs[s->n_subs++] = (struct pg_sess_sub){copy, (uint16_t)len, *o};
    return 0;
}

/* Splits a filter into the trie's (filter, group) form. Returns -1 if invalid. */
static int split(const char *f, size_t len, const char **tf, size_t *tlen, const char **g,
                 size_t *glen) {
    int shared = pg_share_split(f, len, g, glen, tf, tlen);
    if (shared < 0)
        return -1;
    if (!shared) {
        *tf = f;
        *tlen = len;
        *g = NULL;
        *glen = 0;
    }
    return filter_valid(*tf, *tlen) ? shared : -1;
}

static int may_subscribe(pg_broker *b, pg_session *s, const char *f, size_t len) {
    if (!b->has_authorize)
        return PG_HOOK_ALLOW;
    struct pg_waiter w = {s->ops, s->conn};
    int rc = pg_hooks_authorize(b, &s->id, PG_ACCESS_SUBSCRIBE, f, len, s->conn ? &w : NULL);
    if (rc != PG_RC_PENDING && s->conn)
        pg_defers_settle(b, s->conn);
    return rc == PG_HOOK_ALLOW || rc == PG_RC_PENDING ? rc : PG_RC_NOT_AUTHORIZED;
}

int pg_subscribe(pg_session *s, const char *f, size_t len, const struct pg_sub_opts *o) {
    pg_broker *b = s->broker;
    const char *tf, *g;
    size_t tlen, glen;
    int shared = split(f, len, &tf, &tlen, &g, &glen);
    if (shared < 0 || len > 65535)
        return PG_RC_TOPIC_FILTER_INVALID;
    int rc = may_subscribe(b, s, f, len);
    if (rc != PG_HOOK_ALLOW)
        return rc;
    if (b->cfg.max_subscriptions && s->n_subs >= b->cfg.max_subscriptions && !find_sub(s, f, len))
        return PG_RC_QUOTA_EXCEEDED;
    struct pg_sub sub = {.owner = s, .sub_id = o->sub_id, .qos = o->qos > 2 ? 2 : o->qos};
    if (o->no_local)
        sub.options |= PG_SUBOPT_NO_LOCAL;
    if (o->retain_as_published)
        sub.options |= PG_SUBOPT_RAP;
    int existed = pg_trie_subscribe(b->subs, tf, tlen, g, glen, &sub);
    if (existed < 0 || remember_sub(s, f, len, o, existed) < 0) {
        if (existed == 0)
            pg_trie_unsubscribe(b->subs, tf, tlen, g, glen, s);
        return PG_RC_UNSPECIFIED;
    }
    pg_emit(b, PG_EV_SUBSCRIBED, &s->id, NULL, f, len, sub.qos, 0);
    if (b->store && b->store->session_changed && s->expiry_s)
        b->store->session_changed(b->store_ud, s);
    if (!shared && (o->retain_handling == 0 || (o->retain_handling == 1 && existed == 0)))
        pg_send_retained(s, tf, tlen, o);
    return sub.qos;
}

int pg_unsubscribe(pg_session *s, const char *f, size_t len) {
    pg_broker *b = s->broker;
    const char *tf, *g;
    size_t tlen, glen;
    if (split(f, len, &tf, &tlen, &g, &glen) < 0 ||
        pg_trie_unsubscribe(b->subs, tf, tlen, g, glen, s) != 0)
        return PG_RC_NO_SUBSCRIPTION_EXISTED; /* answered by the trie, without a scan */
    struct pg_sess_sub *e = find_sub(s, f, len);
    if (e) {
        free(e->filter);
        *e = s->subs[--s->n_subs];
    }
    pg_emit(b, PG_EV_UNSUBSCRIBED, &s->id, NULL, f, len, 0, 0);
    if (b->store && b->store->session_changed && s->expiry_s)
        b->store->session_changed(b->store_ud, s);
    return 0;
}

void pg_session_unsubscribe_all(pg_session *s) {
    const char *tf, *g;
    size_t tlen, glen;
    for (uint32_t i = 0; i < s->n_subs; i++) {
        struct pg_sess_sub *e = &s->subs[i];
        if (split(e->filter, e->len, &tf, &tlen, &g, &glen) >= 0)
            pg_trie_unsubscribe(s->broker->subs, tf, tlen, g, glen, s);
        free(e->filter);
    }
    s->n_subs = 0;
}
