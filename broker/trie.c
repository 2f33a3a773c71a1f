/* trie.c - the subscription trie: topic filters -> subscribers (see trie.h).
 *
 * Built on the level tree of topic_tree.c: a filter "a/+/#" is the path
 * root -> "a" -> "+" -> "#", and the node at the end of the path holds a sub_set
 * with the normal subscriptions (a contiguous array of struct pg_sub) and the
 * shared groups subscribed to exactly that filter (each with its member array).
 *
 * pg_trie_match is the broker's hot path. It walks the tree along the topic without
 * recursion and without allocating: at each node it may follow the exact level, the
 * '+' child and report the '#' child, and it backtracks through parent pointers,
 * recomputing the topic position by scanning back one level. That keeps stack use
 * constant however deep a topic is (a 64 KiB topic can have 32k levels) and makes the
 * walk reentrant.
 */
#include "broker/trie.h"

#include "broker/topic_tree.h"

#include <stdlib.h>
#include <string.h>

struct share_group {
    struct pg_sub *members; /* in subscription order: round robin follows it */
    uint32_t n, cap;
    uint32_t next; /* round-robin cursor: index of the next member to try */
    uint32_t nlen;
    char name[];
};

/* What a node holds; allocated only for nodes at the end of some filter. */
struct sub_set {
    struct pg_sub *subs; /* normal subscriptions, unordered */
    struct share_group **groups;
    uint32_t nsubs, scap;
    uint32_t ngroups, gcap;
};

struct pg_trie {
    pg_tree tree;
    pg_trie_online_fn online;
    size_t count;
};

/* ---- growable arrays of struct pg_sub ---- */

static long subs_find(const struct pg_sub *subs, uint32_t n, const void *owner) {
    for (uint32_t i = 0; i < n; i++)
        if (subs[i].owner == owner)
            return (long)i;
    return -1;
}

static int subs_append(struct pg_sub **subs, uint32_t *n, uint32_t *cap, const struct pg_sub *s) {
    if (*n == *cap) {
        uint32_t ncap = *cap ? *cap * 2 : 1; /* most filters have one subscriber */
        struct pg_sub *ns = realloc(*subs, ncap * sizeof(*ns));
        if (!ns)
            return -1;
        *subs = ns;
        *cap = ncap;
    }
    (*subs)[(*n)++] = *s;
    return 0;
}

/* Gives memory back after mass unsubscribes; failing to shrink is harmless. */
static void subs_maybe_shrink(struct pg_sub **subs, uint32_t n, uint32_t *cap) {
    if (n == 0) {
        free(*subs);
        *subs = NULL;
        *cap = 0;
    } else if (*cap >= 8 && n < *cap / 4) {
        struct pg_sub *ns = realloc(*subs, (*cap / 2) * sizeof(*ns));
        if (ns) {
            *subs = ns;
            *cap /= 2;
        }
    }
}

/* ---- shared groups ---- */

static struct share_group *group_find(const struct sub_set *set, const char *name, size_t len) {
    for (uint32_t i = 0; i < set->ngroups; i++) {
        struct share_group *g = set->groups[i];
        if (g->nlen == len && memcmp(g->name, name, len) == 0)
            return g;
    }
    return NULL;
}

static struct share_group *group_add(struct sub_set *set, const char *name, size_t len) {
    if ((uint64_t)len > UINT32_MAX)
        return NULL;
    if (set->ngroups == set->gcap) {
        uint32_t ncap = set->gcap ? set->gcap * 2 : 1;
        struct share_group **ng = realloc(set->groups, ncap * sizeof(*ng));
        if (!ng)
            return NULL;
        set->groups = ng;
        set->gcap = ncap;
    }
    struct share_group *g = calloc(1, sizeof(*g) + len);
    if (!g)
        return NULL;
    g->nlen = (uint32_t)len;
    if (len)
        memcpy(g->name, name, len);
    set->groups[set->ngroups++] = g;
    return g;
}

static void group_remove(struct sub_set *set, struct share_group *g) {
    for (uint32_t i = 0; i < set->ngroups; i++) {
        if (set->groups[i] == g) {
            set->groups[i] = set->groups[--set->ngroups];
            break;
        }
    }
    free(g->members);
    free(g);
    if (set->ngroups == 0) {
        free(set->groups);
        set->groups = NULL;
        set->gcap = 0;
    }
}

/* Removes member i keeping the order, so the round robin stays fair. */
static void group_remove_member(struct share_group *g, uint32_t i) {
    memmove(&g->members[i], &g->members[i + 1], (g->n - i - 1) * sizeof(g->members[0]));
    g->n--;
    if (i < g->next)
        g->next--;
    if (g->next >= g->n)
        g->next = 0;
    subs_maybe_shrink(&g->members, g->n, &g->cap);
}

/* The member to deliver to: the next online one from the cursor; if nobody is online,
 * the one at the cursor anyway (its session queues the message). */
static const struct pg_sub *group_pick(struct share_group *g, pg_trie_online_fn online) {
    uint32_t start = g->next < g->n ? g->next : 0, pick = start;
    if (online) {
        for (uint32_t k = 0; k < g->n; k++) {
            uint32_t i = start + k < g->n ? start + k : start + k - g->n;
            if (online(g->members[i].owner)) {
                pick = i;
                break;
            }
        }
    }
    g->next = pick + 1 < g->n ? pick + 1 : 0;
    return &g->members[pick];
}

/* ---- per-node subscriber sets ---- */

static int set_is_empty(const struct sub_set *set) {
    return set->nsubs == 0 && set->ngroups == 0;
}

static void set_free(void *ctx, void *data) {
    struct sub_set *set = data;
    while (set->ngroups)
        group_remove(set, set->groups[set->ngroups - 1]);
    free(set->subs);
    free(set);
}

/* Frees the node's set if it became empty, then prunes empty nodes up the path. */
static void node_release(pg_trie *t, struct pg_tnode *n) {
    struct sub_set *set = n->data;
    if (set && set_is_empty(set)) {
        set_free(NULL, set);
        n->data = NULL;
    }
    pg_tree_prune(&t->tree, n);
}

/* Reports every normal subscription and one member per group. Nonzero = stop. */
static int set_report(const pg_trie *t, struct sub_set *set, pg_trie_match_fn fn, void *ctx) {
    if (!set)
        return 0;
    for (uint32_t i = 0; i < set->nsubs; i++)
        if (fn(ctx, &set->subs[i], 0))
            return 1;
    for (uint32_t i = 0; i < set->ngroups; i++)
        if (fn(ctx, group_pick(set->groups[i], t->online), 1))
            return 1;
    return 0;
}

/* ---- public API ---- */

pg_trie *pg_trie_new(pg_trie_online_fn online) {
    pg_trie *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    if (pg_tree_init(&t->tree) < 0) {
        free(t);
        return NULL;
    }
    t->online = online;
    return t;
}

void pg_trie_free(pg_trie *t) {
    if (!t)
        return;
    pg_tree_destroy(&t->tree, set_free, NULL);
    free(t);
}

size_t pg_trie_count(const pg_trie *t) {
    return t->count;
}

size_t pg_trie_node_count(const pg_trie *t) {
    return t->tree.nnodes;
}

/* Stores sub in the array (normal or a group's members): 0 added, 1 replaced. */
static int entries_put(struct pg_sub **subs, uint32_t *n, uint32_t *cap, const struct pg_sub *s) {
    long i = subs_find(*subs, *n, s->owner);
    if (i >= 0) {
        (*subs)[i] = *s;
        return 1;
    }
    return subs_append(subs, n, cap, s) < 0 ? -1 : 0;
}

static int set_put(struct sub_set *set, const char *group, size_t glen, const struct pg_sub *s) {
    if (!group)
        return entries_put(&set->subs, &set->nsubs, &set->scap, s);
    struct share_group *g = group_find(set, group, glen);
    if (!g && !(g = group_add(set, group, glen)))
        return -1;
    int rc = entries_put(&g->members, &g->n, &g->cap, s);
    if (g->n == 0)
        group_remove(set, g); /* just created and the append failed */
    return rc;
}

int pg_trie_subscribe(pg_trie *t, const char *filter, size_t flen, const char *group, size_t glen,
                      const struct pg_sub *sub) {
    struct pg_tnode *n = pg_tree_make(&t->tree, filter, flen);
    if (!n)
        return -1;
    if (!n->data && !(n->data = calloc(1, sizeof(struct sub_set)))) {
        pg_tree_prune(&t->tree, n);
        return -1;
    }
    int rc = set_put(n->data, group, glen, sub);
    if (rc == 0)
        t->count++;
    else if (rc < 0)
        node_release(t, n);
    return rc;
}

/* Removes owner from the set: 0 removed, 1 not there. */
static int set_remove(struct sub_set *set, const char *group, size_t glen, const void *owner) {
    if (!group) {
        long i = subs_find(set->subs, set->nsubs, owner);
        if (i < 0)
            return 1;
        set->subs[i] = set->subs[--set->nsubs]; /* order does not matter */
        subs_maybe_shrink(&set->subs, set->nsubs, &set->scap);
        return 0;
    }
    struct share_group *g = group_find(set, group, glen);
    long i = g ? subs_find(g->members, g->n, owner) : -1;
    if (i < 0)
        return 1;
    group_remove_member(g, (uint32_t)i);
    if (g->n == 0)
        group_remove(set, g);
    return 0;
}

int pg_trie_unsubscribe(pg_trie *t, const char *filter, size_t flen, const char *group, size_t glen,
                        void *owner) {
    struct pg_tnode *n = pg_tree_find(&t->tree, filter, flen);
    if (!n || !n->data || set_remove(n->data, group, glen, owner))
        return 1;
    t->count--;
    node_release(t, n);
    return 0;
}

/* A topic level that is itself "+" or "#" (not a valid topic name, but possible input)
 * must not be looked up as an exact child: that child is the wildcard, visited anyway. */
static int is_wildcard_level(const char *s, size_t len) {
    return pg_level_is(s, len, '+') || pg_level_is(s, len, '#');
}

/* Stackless depth-first walk. For node n, pos is where the topic level matched by n's
 * children starts (tlen + 1 once the topic is used up) and next is where the level
 * after it starts. Each node is entered once per path: report its '#' child, then
 * descend to the exact child, then (after coming back up) to the '+' child. */
void pg_trie_match(pg_trie *t, const char *topic, size_t tlen, pg_trie_match_fn fn, void *ctx) {
    const pg_tree *tr = &t->tree;
    const struct pg_tnode *root = tr->root;
    struct pg_tnode *n = tr->root;
    const int dollar = tlen > 0 && topic[0] == '$'; /* '+'/'#' at level 1 skip it */
    size_t pos = 0, next = 0;
    enum { ENTER, PLUS, ASCEND } step = ENTER;
    for (;;) {
        if (step == ENTER) {
            struct pg_tnode *multi = (n != root || !dollar) ? pg_tree_multi(tr, n) : NULL;
            if (multi && set_report(t, multi->data, fn, ctx))
                return;
            if (pos > tlen) {
                if (set_report(t, n->data, fn, ctx))
                    return;
                step = ASCEND;
                continue;
            }
            size_t end = pg_level_end(topic, tlen, pos);
            next = end + 1;
            struct pg_tnode *c = NULL;
            if (!is_wildcard_level(topic + pos, end - pos))
                c = pg_tree_child(tr, n, topic + pos, end - pos);
            if (c) {
                n = c;
                pos = next;
            } else {
                step = PLUS;
            }
        } else if (step == PLUS) {
            struct pg_tnode *plus = (n != root || !dollar) ? pg_tree_plus(tr, n) : NULL;
            if (plus) {
                n = plus;
                pos = next;
                step = ENTER;
            } else {
                step = ASCEND;
            }
        } else {
            if (n == root)
                return;
            /* Coming back from n: if n was the exact child, the '+' sibling is next. */
            step = pg_level_is(n->level, n->len, '+') ? ASCEND : PLUS;
            next = pos;
            pos = pg_level_start_before(topic, next);
            n = n->parent;
        }
    }
}

int pg_share_split(const char *s, size_t len, const char **group, size_t *glen, const char **filter,
                   size_t *flen) {
    static const char prefix[] = "$share/";
    const size_t plen = sizeof(prefix) - 1;
    if (len < plen || memcmp(s, prefix, plen) != 0)
        return 0;
    size_t end = pg_level_end(s, len, plen);
    if (end == plen || end + 1 >= len) /* empty group, or no/empty filter */
        return -1;
    for (size_t i = plen; i < end; i++)
        if (s[i] == '+' || s[i] == '#')
            return -1;
    *group = s + plen;
    *glen = end - plen;
    *filter = s + end + 1;
    *flen = len - end - 1;
    return 1;
}

/* The same rules as pg_trie_match, level by level. A '#' that is not the last level
 * (an invalid filter) matches nothing, exactly as in the trie. */
int pg_topic_matches(const char *filter, size_t flen, const char *topic, size_t tlen) {
    const int dollar = tlen > 0 && topic[0] == '$';
    size_t fpos = 0, tpos = 0; /* tpos == tlen + 1: topic used up */
    for (int first = 1;; first = 0) {
        size_t fend = pg_level_end(filter, flen, fpos);
        const char *f = filter + fpos;
        size_t fl = fend - fpos;
        int wild_ok = !(first && dollar);
        if (pg_level_is(f, fl, '#'))
            return wild_ok && fend == flen;
        if (tpos > tlen)
            return 0;
        size_t tend = pg_level_end(topic, tlen, tpos);
        if (pg_level_is(f, fl, '+')) {
            if (!wild_ok)
                return 0;
        } else if (fl != tend - tpos || memcmp(f, topic + tpos, fl) != 0) {
            return 0;
        }
        tpos = tend + 1;
        if (fend == flen)
            return tpos > tlen;
        fpos = fend + 1;
    }
}
