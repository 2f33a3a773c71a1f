/* topic_tree.h - the level tree shared by the subscription trie and the retained store.
 *
 * A tree of nodes, one per topic level ("a/b" is root -> "a" -> "b"), each holding
 * an opaque data pointer that its user (trie.c, retain.c) owns. This file only does
 * the structural work both users need: find/create children by level, find/create
 * a whole path, prune empty nodes, and iterate children in a way that survives
 * walking the tree without a stack (every node knows its parent).
 *
 * Children of a node live in a small array while there are few of them and in an
 * open-addressing hash table (linear probing, backward-shift deletion) beyond
 * PG_TT_SMALL_MAX, so a level with 10,000 siblings stays O(1) to search. A node's
 * level string is stored inline after the node (flexible array member).
 *
 * Not thread-safe; the broker runs on one event loop.
 */
#ifndef PG_TOPIC_TREE_H
#define PG_TOPIC_TREE_H

#include <stddef.h>
#include <stdint.h>

/* At most this many children are kept in a plain array (linear scan beats hashing). */
#define PG_TT_SMALL_MAX 8

/* pg_tnode.flags: which wildcard children exist, so the matcher can skip the lookup. */
#define PG_TT_HAS_PLUS  0x01
#define PG_TT_HAS_MULTI 0x02

struct pg_tnode {
    struct pg_tnode *parent; /* NULL for the root */
    void *data;              /* the user's payload; NULL = nothing stored here */
    struct pg_tnode **kids;  /* array (kcap <= SMALL_MAX) or hash slots (kcap > SMALL_MAX) */
    uint32_t nkids;
    uint32_t kcap;
    uint32_t hash; /* hash of level, cached for rehashing and quick compares */
    uint32_t len;  /* length of level */
    uint8_t flags; /* PG_TT_HAS_* */
    char level[];  /* not NUL-terminated */
};

typedef struct pg_tree {
    struct pg_tnode *root;
    uint64_t seed; /* per-tree hash seed, so colliding level names are harder to plan */
    size_t nnodes; /* nodes allocated, root included */
} pg_tree;

int pg_tree_init(pg_tree *tr); /* 0, or -1 on allocation failure */
/* Frees every node; free_data (if not NULL) is called for each non-NULL data. */
void pg_tree_destroy(pg_tree *tr, void (*free_data)(void *ctx, void *data), void *ctx);

/* The child of n whose level is exactly s[0..len), or NULL. */
struct pg_tnode *pg_tree_child(const pg_tree *tr, const struct pg_tnode *n, const char *s,
                               size_t len);
/* The node for the whole '/'-separated path, or NULL if it does not exist. */
struct pg_tnode *pg_tree_find(const pg_tree *tr, const char *path, size_t len);
/* The node for path, creating missing nodes; NULL on allocation failure (nothing leaks). */
struct pg_tnode *pg_tree_make(pg_tree *tr, const char *path, size_t len);
/* Frees n and then its ancestors as long as they hold no data and no children. */
void pg_tree_prune(pg_tree *tr, struct pg_tnode *n);

/* The child of n after `after` in n's (unspecified) child order; after == NULL gives the
 * first child; NULL at the end. Works by looking `after` up again, so it is valid
 * across calls as long as children are not removed from n in between. */
struct pg_tnode *pg_tree_next_child(const pg_tree *tr, const struct pg_tnode *n,
                                    const struct pg_tnode *after);

/* Level helpers for '/'-separated strings. pos is the start of a level; the level ends
 * at the returned index (the '/' or len). */
static inline size_t pg_level_end(const char *s, size_t len, size_t pos) {
    while (pos < len && s[pos] != '/')
        pos++;
    return pos;
}

/* Given `next`, the start of the level after some level L (or len + 1 when L was the
 * last level), returns the start of L. Used to walk back up without a stack. */
static inline size_t pg_level_start_before(const char *s, size_t next) {
    size_t pos = next - 1; /* end of L: its '/' or len */
    while (pos > 0 && s[pos - 1] != '/')
        pos--;
    return pos;
}

static inline int pg_level_is(const char *s, size_t len, char c) {
    return len == 1 && s[0] == c;
}

/* The wildcard children, found without a lookup when the node has none. */
static inline struct pg_tnode *pg_tree_plus(const pg_tree *tr, const struct pg_tnode *n) {
    return (n->flags & PG_TT_HAS_PLUS) ? pg_tree_child(tr, n, "+", 1) : NULL;
}
static inline struct pg_tnode *pg_tree_multi(const pg_tree *tr, const struct pg_tnode *n) {
    return (n->flags & PG_TT_HAS_MULTI) ? pg_tree_child(tr, n, "#", 1) : NULL;
}

#endif
