/* trie.h - subscription topic trie.
 *
 * Maps topic filters to subscribers and answers "who matches this topic name" with
 * MQTT's rules: `+` one level, `#` this level and all below (also the parent:
 * "a/#" matches "a"), and a topic starting with '$' is not matched by a filter
 * whose first level is `+` or `#`. Shared subscriptions ($share/GROUP/FILTER) are
 * stored at FILTER's node in a group; a match yields one member of each group,
 * round robin, preferring members the online callback reports as online.
 *
 * The trie knows nothing about sessions: a subscriber is an opaque owner pointer
 * plus its options. Topics and filters are (pointer, length), not NUL-terminated.
 */
#ifndef PG_TRIE_H
#define PG_TRIE_H

#include <stddef.h>
#include <stdint.h>

typedef struct pg_trie pg_trie;

/* One subscription as stored in the trie. */
struct pg_sub {
    void *owner;     /* the subscriber (a session); compared by pointer */
    uint32_t sub_id; /* v5 subscription identifier, 0 = none */
    uint8_t qos;     /* maximum QoS granted */
    uint8_t options; /* PG_SUBOPT_* bits */
};

#define PG_SUBOPT_NO_LOCAL 0x01
#define PG_SUBOPT_RAP      0x02 /* retain as published */

/* Called once per matching subscription. `shared` is 1 for the member picked from a
 * shared group. Return nonzero to stop the walk. */
typedef int (*pg_trie_match_fn)(void *ctx, const struct pg_sub *sub, int shared);
/* Whether an owner can take a delivery now (used to pick shared group members). */
typedef int (*pg_trie_online_fn)(void *owner);

pg_trie *pg_trie_new(pg_trie_online_fn online);
void pg_trie_free(pg_trie *t);

/* Adds or replaces (same owner, same filter, same group) a subscription. group is
 * NULL for a normal subscription. Returns 0 when added, 1 when it replaced an
 * existing one, -1 on allocation failure. */
int pg_trie_subscribe(pg_trie *t, const char *filter, size_t flen, const char *group, size_t glen,
                      const struct pg_sub *sub);
/* Removes owner's subscription. Returns 0 when removed, 1 when there was none.
 * Empty nodes are freed. */
int pg_trie_unsubscribe(pg_trie *t, const char *filter, size_t flen, const char *group, size_t glen,
                        void *owner);
/* Calls fn for every subscription matching the topic name. */
void pg_trie_match(pg_trie *t, const char *topic, size_t tlen, pg_trie_match_fn fn, void *ctx);
/* (added) fn must not subscribe or unsubscribe on the same trie while the walk runs;
 * defer such changes until pg_trie_match returns. Nested matches are fine. */
/* Number of subscriptions stored (normal and shared members). */
size_t pg_trie_count(const pg_trie *t);
/* (added) Number of tree nodes allocated, root included (1 when empty): for tests and
 * diagnostics, e.g. to check that unsubscribing prunes empty nodes. */
size_t pg_trie_node_count(const pg_trie *t);

/* Splits "$share/GROUP/FILTER" into group and filter. Returns 1 if it is a shared
 * subscription (and sets the out pointers), 0 if not, -1 if it is malformed
 * (empty group, group with a wildcard, missing filter). */
int pg_share_split(const char *s, size_t len, const char **group, size_t *glen, const char **filter,
                   size_t *flen);

/* Does topic name match filter? The same rules as the trie, for one pair. */
int pg_topic_matches(const char *filter, size_t flen, const char *topic, size_t tlen);

#endif
