/* retain.c - the retained message store (see retain.h).
 *
 * A level tree (topic_tree.c) keyed by topic levels; the node of topic "a/b" holds
 * the retained value for exactly "a/b" as its data pointer, other nodes hold NULL.
 * Lookups by filter walk the filter over the tree, visiting only branches the filter
 * can match: an exact level is one child lookup, '+' visits the children of one node,
 * '#' visits one subtree. The walks use parent pointers instead of recursion, so
 * stack use is constant however deep a topic is.
 *
 * Walks first collect the hits (topic copy + a reference on the value) and only then
 * call the callback, so the callback may do anything with the store, in particular
 * clear the topic it is given (the expiry sweep does exactly that) or start another
 * walk. Matching is on SUBSCRIBE, not per message, so the allocation is acceptable.
 */
#include "broker/retain.h"

#include "broker/topic_tree.h"

#include <stdlib.h>
#include <string.h>

struct pg_retain {
    pg_tree tree;
    pg_retain_ref_fn ref;
    pg_retain_unref_fn unref;
    size_t count;
    size_t max_tlen; /* longest topic ever stored: bounds the path a walk builds */
};

/* One collected match: the topic is names[off .. off + len). */
struct hit {
    void *value;
    size_t off, len;
};

/* State of one walk: the path of the current node and the hits collected so far. */
struct walk {
    const pg_retain *r;
    pg_retain_unref_fn unref; /* copied: fn might even free the store */
    const struct pg_tnode *root;
    char *path; /* topic of the current node, built level by level */
    size_t plen;
    struct hit *hits;
    size_t nhits, hcap;
    char *names; /* the hits' topics, back to back */
    size_t nlen, ncap;
    int oom; /* collection stopped early: deliver what we have */
};

static void value_ref(const pg_retain *r, void *v) {
    if (r->ref)
        r->ref(v);
}

static void value_unref(const pg_retain *r, void *v) {
    if (r->unref)
        r->unref(v);
}

pg_retain *pg_retain_new(pg_retain_ref_fn ref, pg_retain_unref_fn unref) {
    pg_retain *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    if (pg_tree_init(&r->tree) < 0) {
        free(r);
        return NULL;
    }
    r->ref = ref;
    r->unref = unref;
    return r;
}

static void unref_data(void *ctx, void *data) {
    value_unref(ctx, data);
}

void pg_retain_free(pg_retain *r) {
    if (!r)
        return;
    pg_tree_destroy(&r->tree, unref_data, r);
    free(r);
}

size_t pg_retain_count(const pg_retain *r) {
    return r->count;
}

size_t pg_retain_node_count(const pg_retain *r) {
    return r->tree.nnodes;
}

static int retain_clear(pg_retain *r, const char *topic, size_t tlen) {
    struct pg_tnode *n = pg_tree_find(&r->tree, topic, tlen);
    if (!n || !n->data)
        return 0;
    void *old = n->data;
    n->data = NULL;
    r->count--;
    pg_tree_prune(&r->tree, n);
    value_unref(r, old); /* last: it may free the message */
    return 0;
}

int pg_retain_set(pg_retain *r, const char *topic, size_t tlen, void *value) {
    if (!value)
        return retain_clear(r, topic, tlen);
    struct pg_tnode *n = pg_tree_make(&r->tree, topic, tlen);
    if (!n)
        return -1;
    if (tlen > r->max_tlen)
        r->max_tlen = tlen;
    void *old = n->data;
    value_ref(r, value); /* before the unref, in case old == value */
    n->data = value;
    if (old) {
        value_unref(r, old);
        return 0;
    }
    r->count++;
    return 1;
}

void *pg_retain_get(pg_retain *r, const char *topic, size_t tlen) {
    struct pg_tnode *n = pg_tree_find(&r->tree, topic, tlen);
    return n ? n->data : NULL;
}

/* ---- walks ---- */

/* Extends the path by c's level. The path never outgrows max_tlen + 1 bytes: every
 * node lies on the path of some topic stored at some time, and max_tlen never drops. */
static void path_push(struct walk *w, const struct pg_tnode *c) {
    if (c->parent != w->root)
        w->path[w->plen++] = '/';
    memcpy(w->path + w->plen, c->level, c->len);
    w->plen += c->len;
}

static void path_pop(struct walk *w, const struct pg_tnode *c) {
    w->plen -= c->len + (c->parent != w->root);
}

static int hits_reserve(struct walk *w) {
    if (w->nhits == w->hcap) {
        size_t ncap = w->hcap ? w->hcap * 2 : 16;
        struct hit *nh = realloc(w->hits, ncap * sizeof(*nh));
        if (!nh)
            return -1;
        w->hits = nh;
        w->hcap = ncap;
    }
    if (w->ncap - w->nlen < w->plen + 1) {
        size_t ncap = w->ncap ? w->ncap : 256;
        while (ncap - w->nlen < w->plen + 1)
            ncap *= 2;
        char *nn = realloc(w->names, ncap);
        if (!nn)
            return -1;
        w->names = nn;
        w->ncap = ncap;
    }
    return 0;
}

/* Records n's value (if any) under the current path, taking a reference. */
static void collect(struct walk *w, const struct pg_tnode *n) {
    if (!n->data || w->oom)
        return;
    if (hits_reserve(w) < 0) {
        w->oom = 1;
        return;
    }
    struct hit *h = &w->hits[w->nhits++];
    h->value = n->data;
    h->off = w->nlen;
    h->len = w->plen;
    memcpy(w->names + w->nlen, w->path, w->plen);
    w->nlen += w->plen;
    value_ref(w->r, h->value);
}

/* The '$' rule: at the top level, wildcards do not reach topics starting with '$'. */
static int skipped(const struct walk *w, const struct pg_tnode *parent, const struct pg_tnode *c,
                   int dollar_rule) {
    return dollar_rule && parent == w->root && c->len > 0 && c->level[0] == '$';
}

/* Like pg_tree_next_child, leaving out the children the '$' rule hides. */
static struct pg_tnode *next_visible(const struct walk *w, const struct pg_tnode *parent,
                                     const struct pg_tnode *after, int dollar_rule) {
    struct pg_tnode *c = pg_tree_next_child(&w->r->tree, parent, after);
    while (c && skipped(w, parent, c, dollar_rule))
        c = pg_tree_next_child(&w->r->tree, parent, c);
    return c;
}

/* Collects every value strictly below top (pre-order, stackless). */
static void collect_subtree(struct walk *w, const struct pg_tnode *top, int dollar_rule) {
    const struct pg_tnode *n = next_visible(w, top, NULL, dollar_rule);
    if (!n)
        return;
    path_push(w, n);
    for (;;) {
        collect(w, n);
        const struct pg_tnode *down = pg_tree_next_child(&w->r->tree, n, NULL);
        if (down) {
            path_push(w, down);
            n = down;
            continue;
        }
        /* Leaf: climb until some ancestor (below top) has a next sibling. */
        for (;;) {
            const struct pg_tnode *parent = n->parent;
            path_pop(w, n);
            const struct pg_tnode *sib = next_visible(w, parent, n, dollar_rule);
            if (sib) {
                path_push(w, sib);
                n = sib;
                break;
            }
            if (parent == top)
                return;
            n = parent;
        }
    }
}

/* The filter walk. For node n, fpos is where the filter level matched by n's children
 * starts (flen + 1 once the filter is used up). On the way back up, a node reached
 * through '+' continues with its next sibling. */
static void collect_match(struct walk *w, const char *f, size_t flen) {
    const struct pg_tnode *n = w->root;
    size_t fpos = 0;
    int up = 0;
    for (;;) {
        if (!up) {
            if (fpos > flen) {
                collect(w, n);
                up = 1;
                continue;
            }
            size_t fend = pg_level_end(f, flen, fpos);
            const struct pg_tnode *c = NULL;
            if (pg_level_is(f + fpos, fend - fpos, '#')) {
                if (fend == flen) { /* else an invalid filter: matches nothing */
                    collect(w, n);  /* "a/#" matches "a" too (root holds nothing) */
                    collect_subtree(w, n, 1);
                }
            } else if (pg_level_is(f + fpos, fend - fpos, '+')) {
                c = next_visible(w, n, NULL, 1);
            } else {
                c = pg_tree_child(&w->r->tree, n, f + fpos, fend - fpos);
            }
            if (c) {
                path_push(w, c);
                n = c;
                fpos = fend + 1;
            } else {
                up = 1;
            }
            continue;
        }
        if (n == w->root)
            return;
        const struct pg_tnode *parent = n->parent;
        size_t next = fpos;
        fpos = pg_level_start_before(f, next);
        path_pop(w, n);
        const struct pg_tnode *sib = NULL;
        if (pg_level_is(f + fpos, next - 1 - fpos, '+'))
            sib = next_visible(w, parent, n, 1);
        if (sib) {
            path_push(w, sib);
            n = sib;
            fpos = next;
            up = 0;
        } else {
            n = parent;
        }
    }
}

static int walk_begin(struct walk *w, const pg_retain *r) {
    memset(w, 0, sizeof(*w));
    w->r = r;
    w->unref = r->unref;
    w->root = r->tree.root;
    w->path = malloc(r->max_tlen + 1);
    return w->path ? 0 : -1;
}

/* Calls fn for each hit until it asks to stop, then drops the walk's references. */
static void walk_deliver(struct walk *w, pg_retain_each_fn fn, void *ctx) {
    int stop = 0;
    for (size_t i = 0; i < w->nhits; i++) {
        struct hit *h = &w->hits[i];
        if (!stop)
            stop = fn(ctx, w->names + h->off, h->len, h->value);
        if (w->unref)
            w->unref(h->value);
    }
    free(w->hits);
    free(w->names);
    free(w->path);
}

void pg_retain_match(pg_retain *r, const char *filter, size_t flen, pg_retain_each_fn fn,
                     void *ctx) {
    struct walk w;
    if (r->count == 0 || walk_begin(&w, r) < 0)
        return;
    collect_match(&w, filter, flen);
    walk_deliver(&w, fn, ctx);
}

void pg_retain_each(pg_retain *r, pg_retain_each_fn fn, void *ctx) {
    struct walk w;
    if (r->count == 0 || walk_begin(&w, r) < 0)
        return;
    collect_subtree(&w, w.root, 0);
    walk_deliver(&w, fn, ctx);
}
