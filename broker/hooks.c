/* hooks.c - the hook chain, and hooks that answer later.
 *
 * Hooks are an ordered list; for authentication and authorization the first hook
 * with an opinion decides, and with none the defaults apply (anonymous per config,
 * all access allowed).
 *
 * A hook that has to ask a remote service defers (pg_hook_defer): the question is
 * remembered with the connection that asked it and the index of the hook, and the
 * adapter is told PG_RC_PENDING. When the answer comes, the adapter is resumed and
 * asks the same question again; the chain then starts from the deferred hook with
 * its answer instead of calling it. One packet may ask several questions (a CONNECT
 * asks about the password and then the will's topic), each of which may defer, so
 * answers are kept until the adapter's call completes (pg_defers_settle) rather
 * than used once. Adapters stop reading a waiting client, so a connection has at
 * most one question outstanding and the list stays as short as the number of
 * clients waiting.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"

struct pg_defer {
    pg_broker *b;
    const struct pg_conn_ops *ops;
    void *conn; /* NULL once the connection has gone: the answer is dropped */
    int hook;
    int access; /* PG_ACCESS_*, 0 for authentication */
    char *topic;
    size_t topic_len;
    int answered;
    int verdict;
    struct pg_defer *next;
};

/* The question being put to the hooks, for pg_hook_defer. */
struct pg_ask {
    const struct pg_waiter *w;
    int hook;
    int access;
    const char *topic;
    size_t topic_len;
    int deferred;
};

int pg_broker_add_hooks(pg_broker *b, const struct pg_hooks *h) {
    struct pg_hooks *n = realloc(b->hooks, (size_t)(b->n_hooks + 1) * sizeof *n);
    if (!n)
        return -1;
    b->hooks = n;
    b->hooks[b->n_hooks++] = *h;
    if (h->authorize)
        b->has_authorize = 1;
    if (h->event)
        b->has_events = 1;
    return 0;
}

void pg_emit(pg_broker *b, enum pg_event_type t, const struct pg_identity *id, const pg_msg *m,
             const char *filter, size_t flen, uint8_t qos, uint8_t reason) {
    if (!b->has_events)
        return;
    struct pg_event ev = {.type = t,
                          .id = id,
                          .msg = m,
                          .filter = filter,
                          .filter_len = flen,
                          .qos = qos,
                          .reason = reason};
    for (int i = 0; i < b->n_hooks; i++)
        if (b->hooks[i].event)
            b->hooks[i].event(b->hooks[i].ud, &ev);
}

/* ---- deferred answers ---- */

static void unlink_defer(pg_broker *b, pg_defer *d) {
    pg_defer **pp = &b->defers;
    while (*pp && *pp != d)
        pp = &(*pp)->next;
    if (*pp)
        *pp = d->next;
    free(d->topic);
    free(d);
}

pg_defer *pg_hook_defer(pg_broker *b) {
    struct pg_ask *a = b->asking;
    if (!a || !a->w || !a->w->conn || a->deferred)
        return NULL;
    pg_defer *d = calloc(1, sizeof *d);
    if (!d || (a->topic_len && !(d->topic = malloc(a->topic_len)))) {
        free(d);
        return NULL;
    }
    d->b = b;
    d->ops = a->w->ops;
    d->conn = a->w->conn;
    d->hook = a->hook;
    d->access = a->access;
    if (a->topic_len)
        memcpy(d->topic, a->topic, a->topic_len);
    d->topic_len = a->topic_len;
    d->next = b->defers;
    b->defers = d;
    a->deferred = 1;
    return d;
}

void pg_defer_answer(pg_defer *d, int verdict) {
    if (!d->conn) {
        unlink_defer(d->b, d);
        return;
    }
    d->answered = 1;
    d->verdict = verdict;
    /* The adapter may ask again, settle or forget at once: d is not ours now. */
    d->ops->resume(d->conn);
}

void pg_forget_conn(pg_broker *b, void *conn) {
    for (pg_defer *d = b->defers, *next; d; d = next) {
        next = d->next;
        if (d->conn != conn)
            continue;
        if (d->answered)
            unlink_defer(b, d);
        else
            d->conn = NULL; /* the hook still holds it: freed when it answers */
    }
}

void pg_defers_settle(pg_broker *b, void *conn) {
    for (pg_defer *d = b->defers, *next; d; d = next) {
        next = d->next;
        if (d->conn == conn && d->answered)
            unlink_defer(b, d);
    }
}

void pg_defers_free(pg_broker *b) {
    while (b->defers)
        unlink_defer(b, b->defers);
}

/* The answer this connection was given to this question, if any. */
static const pg_defer *find_answer(pg_broker *b, const struct pg_waiter *w, int access,
                                   const char *topic, size_t len) {
    if (!w || !b->defers)
        return NULL;
    for (const pg_defer *d = b->defers; d; d = d->next)
        if (d->conn == w->conn && d->answered && d->access == access && d->topic_len == len &&
            (!len || !memcmp(d->topic, topic, len)))
            return d;
    return NULL;
}

/* Where the chain starts: after a deferred hook's answer, or at the top. Returns -1
 * when that answer already decides (*verdict). */
static int resume_point(pg_broker *b, struct pg_ask *a, int *verdict) {
    const pg_defer *d = find_answer(b, a->w, a->access, a->topic, a->topic_len);
    if (!d)
        return 0;
    *verdict = d->verdict;
    return d->verdict == PG_HOOK_PASS ? d->hook + 1 : -1;
}

/* One hook's answer, turned into the chain's vocabulary. */
static int settle_pending(struct pg_ask *a, int rc) {
    if (rc != PG_HOOK_PENDING)
        return rc;
    /* A hook that defers without a ticket broke the contract: refuse safely. */
    return a->deferred ? PG_RC_PENDING : PG_RC_SERVER_UNAVAILABLE;
}

/* ---- the chain ---- */

/* Puts one question to hook h: PG_HOOK_PASS when h does not answer its kind. */
typedef int (*ask_fn)(const struct pg_hooks *h, const void *question);

/* The first opinion down the chain (from a deferred hook's answer on), or
 * PG_HOOK_PASS when no hook has one. */
static int run_chain(pg_broker *b, struct pg_ask *a, ask_fn ask, const void *question) {
    int rc = PG_HOOK_PASS;
    int i = resume_point(b, a, &rc);
    if (i < 0)
        return rc;
    for (; i < b->n_hooks; i++) {
        a->hook = i;
        b->asking = a;
        rc = settle_pending(a, ask(&b->hooks[i], question));
        b->asking = NULL;
        if (rc != PG_HOOK_PASS)
            return rc;
    }
    return PG_HOOK_PASS;
}

struct authorize_q {
    const struct pg_identity *id;
    int access;
    const char *topic;
    size_t len;
};

static int ask_authorize(const struct pg_hooks *h, const void *question) {
    const struct authorize_q *q = question;
    return h->authorize ? h->authorize(h->ud, q->id, q->access, q->topic, q->len) : PG_HOOK_PASS;
}

static int ask_authenticate(const struct pg_hooks *h, const void *question) {
    const struct pg_connect_req *req = question;
    return h->authenticate ? h->authenticate(h->ud, &req->id, req->password, req->password_len,
                                             req->has_password)
                           : PG_HOOK_PASS;
}

int pg_hooks_authorize(pg_broker *b, const struct pg_identity *id, int access, const char *topic,
                       size_t len, const struct pg_waiter *w) {
    struct pg_ask a = {.w = w, .access = access, .topic = topic, .topic_len = len};
    struct authorize_q q = {id, access, topic, len};
    int rc = run_chain(b, &a, ask_authorize, &q);
    return rc == PG_HOOK_PASS ? PG_HOOK_ALLOW : rc;
}

int pg_hooks_authenticate(pg_broker *b, const struct pg_connect_req *req,
                          const struct pg_waiter *w) {
    struct pg_ask a = {.w = w};
    int rc = run_chain(b, &a, ask_authenticate, req);
    if (rc != PG_HOOK_PASS)
        return rc;
    if (!req->id.username && !b->cfg.allow_anonymous)
        return PG_RC_NOT_AUTHORIZED;
    return PG_HOOK_ALLOW;
}
