/* retain.h - the retained message store.
 *
 * One retained message per topic name, found by exact topic or by topic filter
 * (wildcards, with the same `$` rule as the subscription trie). Values are opaque
 * refcounted pointers: the store takes a reference with the retain callbacks given
 * at creation, so it works with any message type and is unit-testable alone.
 */
#ifndef PG_RETAIN_H
#define PG_RETAIN_H

#include <stddef.h>

typedef struct pg_retain pg_retain;

typedef void (*pg_retain_ref_fn)(void *value);
typedef void (*pg_retain_unref_fn)(void *value);
/* Called per match; return nonzero to stop. */
typedef int (*pg_retain_each_fn)(void *ctx, const char *topic, size_t tlen, void *value);

pg_retain *pg_retain_new(pg_retain_ref_fn ref, pg_retain_unref_fn unref);
void pg_retain_free(pg_retain *r);

/* Stores value for topic (taking a reference), replacing and unreferencing any old
 * one. value == NULL clears the topic. Returns 1 if the topic had no value before,
 * 0 if it replaced or cleared one (or cleared nothing), -1 on allocation failure. */
int pg_retain_set(pg_retain *r, const char *topic, size_t tlen, void *value);
/* The value stored for exactly this topic, or NULL. No reference is taken. */
void *pg_retain_get(pg_retain *r, const char *topic, size_t tlen);
/* Calls fn for every stored topic that matches the filter. */
void pg_retain_match(pg_retain *r, const char *filter, size_t flen, pg_retain_each_fn fn,
                     void *ctx);
/* Calls fn for every stored topic (for persistence and expiry sweeps). */
void pg_retain_each(pg_retain *r, pg_retain_each_fn fn, void *ctx);
/* (added) pg_retain_match and pg_retain_each collect the matches first (taking a
 * reference on each value) and then call fn, so fn may change the store, e.g. clear
 * the topic it was given. The topic pointer passed to fn is valid during the call. */
size_t pg_retain_count(const pg_retain *r);
/* (added) Number of tree nodes allocated, root included (1 when empty): for tests and
 * diagnostics, e.g. to check that clearing prunes empty nodes. */
size_t pg_retain_node_count(const pg_retain *r);

#endif
