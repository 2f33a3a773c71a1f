/* topic_tree.c - the level tree shared by the subscription trie and the retained store.
 *
 * See topic_tree.h. The interesting part is the children container: a plain array
 * while a node has at most PG_TT_SMALL_MAX children, then an open-addressing hash
 * table (power-of-two size, load <= 3/4, linear probing). Deletion shifts later
 * entries of the probe run back instead of leaving tombstones, so churn never
 * degrades lookups and the table can shrink again.
 */
#include "broker/topic_tree.h"

#include <stdlib.h>
#include <string.h>

#define HASH_MIN_CAP 16   /* first table size when a node outgrows its small array */
#define TT_DENSE     0x80 /* flags: hash slots compacted for teardown (see pop_child_for_destroy) */

static uint64_t rotl64(uint64_t x, int r) {
    return (x << r) | (x >> (64 - r));
}

static uint64_t fmix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* murmur3-style: 8 bytes per step (levels are short, this is on the match path). */
static uint32_t hash_level(uint64_t seed, const char *s, size_t len) {
    uint64_t h = seed ^ ((uint64_t)len * 0x9e3779b97f4a7c15ULL);
    uint64_t k;
    for (; len >= 8; s += 8, len -= 8) {
        memcpy(&k, s, 8);
        k *= 0x87c37b91114253d5ULL;
        k = rotl64(k, 31) * 0x4cf5ad432745937fULL;
        h = rotl64(h ^ k, 27) * 5 + 0x52dce729;
    }
    if (len) {
        k = 0;
        memcpy(&k, s, len);
        k *= 0x87c37b91114253d5ULL;
        h ^= rotl64(k, 31) * 0x4cf5ad432745937fULL;
    }
    return (uint32_t)fmix64(h);
}

static int is_hashed(const struct pg_tnode *n) {
    return n->kcap > PG_TT_SMALL_MAX;
}

static int level_equals(const struct pg_tnode *c, const char *s, size_t len) {
    return c->len == len && memcmp(c->level, s, len) == 0;
}

static uint8_t wildcard_flag(const struct pg_tnode *c) {
    if (pg_level_is(c->level, c->len, '+'))
        return PG_TT_HAS_PLUS;
    if (pg_level_is(c->level, c->len, '#'))
        return PG_TT_HAS_MULTI;
    return 0;
}

/* ---- hash table slots ---- */

static size_t slot_of(const struct pg_tnode *n, const struct pg_tnode *c) {
    size_t mask = n->kcap - 1, i = c->hash & mask;
    while (n->kids[i] != c)
        i = (i + 1) & mask;
    return i;
}

static void slots_put(struct pg_tnode **slots, size_t cap, struct pg_tnode *c) {
    size_t mask = cap - 1, i = c->hash & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = c;
}

/* Moves all children into a fresh table of newcap slots (or a small array when newcap
 * <= SMALL_MAX). On allocation failure nothing changes. */
static int kids_resize(struct pg_tnode *n, size_t newcap) {
    struct pg_tnode **nk = calloc(newcap, sizeof(*nk));
    if (!nk)
        return -1;
    size_t used = 0, oldlen = is_hashed(n) ? n->kcap : n->nkids;
    for (size_t i = 0; i < oldlen; i++) {
        struct pg_tnode *c = n->kids[i];
        if (!c)
            continue;
        if (newcap > PG_TT_SMALL_MAX)
            slots_put(nk, newcap, c);
        else
            nk[used++] = c;
    }
    free(n->kids);
    n->kids = nk;
    n->kcap = (uint32_t)newcap;
    return 0;
}

/* Removes slot i from a probe run, shifting back later entries whose home slot is not
 * between i and their position (Knuth's algorithm R), so no tombstones are needed. */
static void slots_delete(struct pg_tnode *n, size_t i) {
    size_t mask = n->kcap - 1, j = i;
    n->kids[i] = NULL;
    for (;;) {
        j = (j + 1) & mask;
        struct pg_tnode *c = n->kids[j];
        if (!c)
            return;
        size_t home = c->hash & mask;
        int stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        n->kids[i] = c;
        n->kids[j] = NULL;
        i = j;
    }
}

/* ---- children container ---- */

static int kids_insert(struct pg_tnode *n, struct pg_tnode *c) {
    if (!is_hashed(n) && n->nkids == n->kcap) {
        size_t cap = n->kcap ? n->kcap * 2u : 2u;
        if (n->kcap == PG_TT_SMALL_MAX) {
            if (kids_resize(n, HASH_MIN_CAP) < 0)
                return -1;
        } else {
            struct pg_tnode **nk = realloc(n->kids, cap * sizeof(*nk));
            if (!nk)
                return -1;
            n->kids = nk;
            n->kcap = (uint32_t)cap;
        }
    } else if (is_hashed(n) && (n->nkids + 1u) * 4u > n->kcap * 3u) {
        if (kids_resize(n, (size_t)n->kcap * 2) < 0)
            return -1;
    }
    if (is_hashed(n))
        slots_put(n->kids, n->kcap, c);
    else
        n->kids[n->nkids] = c;
    n->nkids++;
    n->flags |= wildcard_flag(c);
    return 0;
}

/* Shrinks a hash table that churn has left mostly empty (iteration scans every slot).
 * Failing to shrink is harmless, so errors are ignored. */
static void kids_maybe_shrink(struct pg_tnode *n) {
    if (n->nkids <= PG_TT_SMALL_MAX / 2)
        (void)kids_resize(n, PG_TT_SMALL_MAX);
    else if (n->kcap > HASH_MIN_CAP && (size_t)n->nkids * 8 < n->kcap)
        (void)kids_resize(n, n->kcap / 2);
}

static void kids_remove(struct pg_tnode *n, struct pg_tnode *c) {
    n->flags &= (uint8_t)~wildcard_flag(c);
    if (is_hashed(n)) {
        slots_delete(n, slot_of(n, c));
        n->nkids--;
        kids_maybe_shrink(n);
        return;
    }
    for (uint32_t i = 0; i < n->nkids; i++) {
        if (n->kids[i] == c) {
            n->kids[i] = n->kids[--n->nkids];
            break;
        }
    }
    if (n->nkids == 0) {
        free(n->kids);
        n->kids = NULL;
        n->kcap = 0;
    }
}

/* ---- nodes ---- */

static struct pg_tnode *node_new(pg_tree *tr, struct pg_tnode *parent, const char *s, size_t len) {
    /* Never less than sizeof(*n): the compiler may access the tail padding. */
    size_t size = offsetof(struct pg_tnode, level) + len;
    struct pg_tnode *n = malloc(size < sizeof(*n) ? sizeof(*n) : size);
    if (!n)
        return NULL;
    memset(n, 0, offsetof(struct pg_tnode, level));
    n->parent = parent;
    n->len = (uint32_t)len;
    n->hash = hash_level(tr->seed, s, len);
    if (len)
        memcpy(n->level, s, len);
    tr->nnodes++;
    return n;
}

static void node_free(pg_tree *tr, struct pg_tnode *n) {
    free(n->kids);
    free(n);
    tr->nnodes--;
}

static struct pg_tnode *add_child(pg_tree *tr, struct pg_tnode *n, const char *s, size_t len) {
    if ((uint64_t)len > UINT32_MAX)
        return NULL;
    struct pg_tnode *c = node_new(tr, n, s, len);
    if (!c)
        return NULL;
    if (kids_insert(n, c) < 0) {
        node_free(tr, c);
        return NULL;
    }
    return c;
}

int pg_tree_init(pg_tree *tr) {
    memset(tr, 0, sizeof(*tr));
    tr->root = node_new(tr, NULL, "", 0);
    if (!tr->root)
        return -1;
    /* Heap and code addresses are randomized (ASLR): a cheap per-tree seed. */
    tr->seed = fmix64((uint64_t)(uintptr_t)tr->root ^ rotl64((uintptr_t)&pg_tree_init, 32));
    tr->root->hash = hash_level(tr->seed, "", 0);
    return 0;
}

/* Takes a child out of n for teardown only: a hash table is first compacted so the
 * children can be popped off the end in O(1) (lookups on n are invalid afterwards). */
static struct pg_tnode *pop_child_for_destroy(struct pg_tnode *n) {
    if (is_hashed(n) && !(n->flags & TT_DENSE)) {
        uint32_t used = 0;
        for (uint32_t i = 0; i < n->kcap; i++)
            if (n->kids[i])
                n->kids[used++] = n->kids[i];
        n->flags |= TT_DENSE;
    }
    return n->kids[--n->nkids];
}

/* Post-order teardown without recursion, walking back up through parent pointers. */
void pg_tree_destroy(pg_tree *tr, void (*free_data)(void *ctx, void *data), void *ctx) {
    struct pg_tnode *n = tr->root;
    while (n) {
        if (n->nkids) {
            n = pop_child_for_destroy(n);
            continue;
        }
        struct pg_tnode *parent = n->parent;
        if (n->data && free_data)
            free_data(ctx, n->data);
        node_free(tr, n);
        n = parent;
    }
    tr->root = NULL;
}

struct pg_tnode *pg_tree_child(const pg_tree *tr, const struct pg_tnode *n, const char *s,
                               size_t len) {
    if (!is_hashed(n)) {
        for (uint32_t i = 0; i < n->nkids; i++)
            if (level_equals(n->kids[i], s, len))
                return n->kids[i];
        return NULL;
    }
    uint32_t h = hash_level(tr->seed, s, len);
    size_t mask = n->kcap - 1;
    for (size_t i = h & mask; n->kids[i]; i = (i + 1) & mask) {
        struct pg_tnode *c = n->kids[i];
        if (c->hash == h && level_equals(c, s, len))
            return c;
    }
    return NULL;
}

struct pg_tnode *pg_tree_find(const pg_tree *tr, const char *path, size_t len) {
    struct pg_tnode *n = tr->root;
    size_t pos = 0;
    for (;;) {
        size_t end = pg_level_end(path, len, pos);
        n = pg_tree_child(tr, n, path + pos, end - pos);
        if (!n || end == len)
            return n;
        pos = end + 1;
    }
}

struct pg_tnode *pg_tree_make(pg_tree *tr, const char *path, size_t len) {
    struct pg_tnode *n = tr->root;
    size_t pos = 0;
    for (;;) {
        size_t end = pg_level_end(path, len, pos);
        struct pg_tnode *c = pg_tree_child(tr, n, path + pos, end - pos);
        if (!c)
            c = add_child(tr, n, path + pos, end - pos);
        if (!c) {
            pg_tree_prune(tr, n); /* undo the part of the path created so far */
            return NULL;
        }
        n = c;
        if (end == len)
            return n;
        pos = end + 1;
    }
}

void pg_tree_prune(pg_tree *tr, struct pg_tnode *n) {
    while (n->parent && !n->data && !n->nkids) {
        struct pg_tnode *parent = n->parent;
        kids_remove(parent, n);
        node_free(tr, n);
        n = parent;
    }
}

struct pg_tnode *pg_tree_next_child(const pg_tree *tr, const struct pg_tnode *n,
                                    const struct pg_tnode *after) {
    if (!is_hashed(n)) {
        uint32_t i = 0;
        if (after) {
            while (i < n->nkids && n->kids[i] != after)
                i++;
            i++;
        }
        return i < n->nkids ? n->kids[i] : NULL;
    }
    for (size_t i = after ? slot_of(n, after) + 1 : 0; i < n->kcap; i++)
        if (n->kids[i])
            return n->kids[i];
    return NULL;
}
