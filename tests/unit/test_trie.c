/* test_trie.c - unit tests for the subscription trie (broker/trie.c).
 *
 * Covers MQTT 5.0 section 4.7 matching (wildcards at every position, empty levels,
 * the '$' rule), subscription bookkeeping (replace, unsubscribe, pruning), shared
 * subscriptions (round robin, offline members, several groups) and the helpers
 * pg_share_split and pg_topic_matches. Every topic and filter handed to the trie is
 * copied into a heap buffer of exactly its length, so ASan catches any read past len.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "broker/trie.h"

#define NOWNERS 16
static int owner_objs[NOWNERS];
static int owner_online[NOWNERS];
#define OWNER(i) ((void *)&owner_objs[i])

static int owner_index(const void *owner) {
    return (int)((const int *)owner - owner_objs);
}

static int is_online(void *owner) {
    return owner_online[owner_index(owner)];
}

/* What one pg_trie_match reported. */
struct hits {
    int n;
    struct {
        int owner;
        uint32_t sub_id;
        uint8_t qos;
        int shared;
    } h[64];
    int stop_after; /* 0 = never stop */
};

static int record(void *ctx, const struct pg_sub *s, int shared) {
    struct hits *hs = ctx;
    assert_true(hs->n < 64);
    hs->h[hs->n].owner = owner_index(s->owner);
    hs->h[hs->n].sub_id = s->sub_id;
    hs->h[hs->n].qos = s->qos;
    hs->h[hs->n].shared = shared;
    hs->n++;
    return hs->stop_after && hs->n >= hs->stop_after;
}

/* An exact-length, non-NUL-terminated heap copy of s. */
static char *exact(const char *s, size_t *len) {
    *len = strlen(s);
    char *p = malloc(*len ? *len : 1);
    assert_non_null(p);
    memcpy(p, s, *len);
    return p;
}

/* Subscribes (sub != NULL) or unsubscribes, splitting "$share/G/F" like the broker. */
static int sub_or_unsub(pg_trie *t, const char *filter, int owner, const struct pg_sub *sub) {
    size_t len, glen = 0, flen;
    char *f = exact(filter, &len);
    const char *g = NULL, *ff = f;
    flen = len;
    assert_true(pg_share_split(f, len, &g, &glen, &ff, &flen) >= 0);
    int rc = sub ? pg_trie_subscribe(t, ff, flen, g, glen, sub)
                 : pg_trie_unsubscribe(t, ff, flen, g, glen, OWNER(owner));
    free(f);
    return rc;
}

static int sub_opts(pg_trie *t, const char *filter, int owner, uint32_t id, uint8_t qos) {
    struct pg_sub s = {.owner = OWNER(owner), .sub_id = id, .qos = qos, .options = 0};
    return sub_or_unsub(t, filter, owner, &s);
}

static int sub(pg_trie *t, const char *filter, int owner, uint32_t id) {
    return sub_opts(t, filter, owner, id, 1);
}

static int unsub(pg_trie *t, const char *filter, int owner) {
    return sub_or_unsub(t, filter, owner, NULL);
}

static struct hits match_len(pg_trie *t, const char *topic, size_t len, int stop_after) {
    struct hits hs;
    memset(&hs, 0, sizeof(hs));
    hs.stop_after = stop_after;
    pg_trie_match(t, topic, len, record, &hs);
    return hs;
}

static struct hits match(pg_trie *t, const char *topic) {
    size_t len;
    char *p = exact(topic, &len);
    struct hits hs = match_len(t, p, len, 0);
    free(p);
    return hs;
}

static int count_id(const struct hits *hs, uint32_t id) {
    int c = 0;
    for (int i = 0; i < hs->n; i++)
        c += hs->h[i].sub_id == id;
    return c;
}

/* hs contains exactly the sub ids listed (0-terminated), each once. */
static void assert_ids(struct hits hs, const uint32_t *ids) {
    int n = 0;
    for (; ids[n]; n++)
        assert_int_equal(count_id(&hs, ids[n]), 1);
    assert_int_equal(hs.n, n);
}
#define ASSERT_IDS(hs, ...) assert_ids((hs), (const uint32_t[]){__VA_ARGS__, 0})

/* None of the topics listed (NULL-terminated) matches anything. */
static void assert_none(pg_trie *t, const char *const *topics) {
    for (; *topics; topics++)
        if (match(t, *topics).n != 0)
            fail_msg("\"%s\" matched", *topics);
}
#define ASSERT_NONE(t, ...) assert_none((t), (const char *const[]){__VA_ARGS__, NULL})

static int setup(void **state) {
    for (int i = 0; i < NOWNERS; i++)
        owner_online[i] = 1;
    *state = pg_trie_new(is_online);
    return *state ? 0 : -1;
}

static int teardown(void **state) {
    pg_trie_free(*state);
    return 0;
}

static void test_exact_match(void **state) {
    pg_trie *t = *state;
    assert_int_equal(sub(t, "a/b/c", 0, 1), 0);
    struct hits hs = match(t, "a/b/c");
    ASSERT_IDS(hs, 1);
    assert_int_equal(hs.h[0].owner, 0);
    assert_int_equal(hs.h[0].shared, 0);
    ASSERT_NONE(t, "a/b", "a/b/c/d", "a/b/x", "A/b/c", "a/b/c/");
    assert_int_equal(pg_trie_count(t), 1);
}

static void test_plus_every_position(void **state) {
    pg_trie *t = *state;
    sub(t, "+/b/c", 0, 1);
    sub(t, "a/+/c", 1, 2);
    sub(t, "a/b/+", 2, 3);
    sub(t, "+/+/+", 3, 4);
    sub(t, "+", 4, 5);
    struct hits hs = match(t, "a/b/c");
    ASSERT_IDS(hs, 1, 2, 3, 4);
    hs = match(t, "x/b/c");
    ASSERT_IDS(hs, 1, 4);
    hs = match(t, "a/x/c");
    ASSERT_IDS(hs, 2, 4);
    hs = match(t, "a/b/x");
    ASSERT_IDS(hs, 3, 4);
    hs = match(t, "a");
    ASSERT_IDS(hs, 5);
    ASSERT_NONE(t, "a/b", "a/b/c/d");
}

static void test_multi_every_position(void **state) {
    pg_trie *t = *state;
    sub(t, "#", 0, 1);
    sub(t, "a/#", 1, 2);
    sub(t, "a/b/#", 2, 3);
    sub(t, "a/b/c/#", 3, 4);
    sub(t, "+/b/#", 4, 5);
    struct hits hs = match(t, "a/b/c");
    ASSERT_IDS(hs, 1, 2, 3, 4, 5);
    hs = match(t, "a/b/c/d/e");
    ASSERT_IDS(hs, 1, 2, 3, 4, 5);
    hs = match(t, "a");
    ASSERT_IDS(hs, 1, 2);
    hs = match(t, "b");
    ASSERT_IDS(hs, 1);
    hs = match(t, "x/b");
    ASSERT_IDS(hs, 1, 5);
}

static void test_multi_matches_parent(void **state) {
    pg_trie *t = *state;
    sub(t, "sport/#", 0, 1);
    sub(t, "sport/tennis/#", 1, 2);
    ASSERT_IDS(match(t, "sport"), 1);
    ASSERT_IDS(match(t, "sport/"), 1);
    ASSERT_IDS(match(t, "sport/tennis"), 1, 2);
    ASSERT_IDS(match(t, "sport/tennis/player1/ranking"), 1, 2);
    ASSERT_NONE(t, "sports", "/sport");
}

static void test_empty_levels(void **state) {
    pg_trie *t = *state;
    sub(t, "a//b", 0, 1);
    sub(t, "/a", 1, 2);
    sub(t, "+/a", 2, 3);
    sub(t, "a/+/b", 3, 4);
    sub(t, "a/+", 4, 5);
    sub(t, "+/+", 5, 6);
    sub(t, "/", 6, 7);
    ASSERT_IDS(match(t, "a//b"), 1, 4);
    ASSERT_IDS(match(t, "a/b"), 5, 6);
    ASSERT_IDS(match(t, "/a"), 2, 3, 6);
    ASSERT_IDS(match(t, "a/"), 5, 6);
    ASSERT_IDS(match(t, "/"), 6, 7);
    ASSERT_NONE(t, "a", "//");
}

static void test_dollar_topics(void **state) {
    pg_trie *t = *state;
    sub(t, "#", 0, 1);
    sub(t, "+/x", 1, 2);
    sub(t, "+/+/x", 2, 3);
    sub(t, "$SYS/#", 3, 4);
    sub(t, "$SYS/+/x", 4, 5);
    sub(t, "+", 5, 6);
    sub(t, "$SYS", 6, 7);
    ASSERT_IDS(match(t, "$SYS/a/x"), 4, 5);
    ASSERT_IDS(match(t, "$SYS"), 4, 7);
    ASSERT_IDS(match(t, "$SYS/x"), 4);
    ASSERT_NONE(t, "$other");
    ASSERT_IDS(match(t, "a/x"), 1, 2);
    ASSERT_IDS(match(t, "b/a/x"), 1, 3);
    ASSERT_IDS(match(t, "SYS"), 1, 6);
}

static void test_overlapping_one_owner(void **state) {
    pg_trie *t = *state;
    assert_int_equal(sub(t, "a/+", 0, 1), 0);
    assert_int_equal(sub(t, "a/#", 0, 2), 0);
    assert_int_equal(sub(t, "a/b", 0, 3), 0);
    assert_int_equal(sub(t, "#", 0, 4), 0);
    struct hits hs = match(t, "a/b");
    ASSERT_IDS(hs, 1, 2, 3, 4);
    for (int i = 0; i < hs.n; i++)
        assert_int_equal(hs.h[i].owner, 0);
    assert_int_equal(pg_trie_count(t), 4);
}

static void test_several_owners(void **state) {
    pg_trie *t = *state;
    for (int i = 0; i < 10; i++)
        assert_int_equal(sub(t, "a/b", i, (uint32_t)i + 1), 0);
    struct hits hs = match(t, "a/b");
    ASSERT_IDS(hs, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10);
    int seen[NOWNERS] = {0};
    for (int i = 0; i < hs.n; i++)
        seen[hs.h[i].owner]++;
    for (int i = 0; i < 10; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(pg_trie_count(t), 10);
}

static void test_replace_on_resubscribe(void **state) {
    pg_trie *t = *state;
    assert_int_equal(sub_opts(t, "a/b", 0, 1, 0), 0);
    assert_int_equal(sub_opts(t, "a/b", 1, 2, 0), 0);
    assert_int_equal(sub_opts(t, "a/b", 0, 7, 2), 1);
    assert_int_equal(pg_trie_count(t), 2);
    struct hits hs = match(t, "a/b");
    ASSERT_IDS(hs, 7, 2);
    for (int i = 0; i < hs.n; i++)
        if (hs.h[i].owner == 0)
            assert_int_equal(hs.h[i].qos, 2);
    /* Same in a shared group. */
    assert_int_equal(sub_opts(t, "$share/g/a/b", 0, 8, 0), 0);
    assert_int_equal(sub_opts(t, "$share/g/a/b", 0, 9, 1), 1);
    assert_int_equal(pg_trie_count(t), 3);
    hs = match(t, "a/b");
    ASSERT_IDS(hs, 7, 2, 9);
}

static void test_unsubscribe(void **state) {
    pg_trie *t = *state;
    sub(t, "a/b", 0, 1);
    sub(t, "a/b", 1, 2);
    sub(t, "$share/g/a/b", 0, 3);
    assert_int_equal(unsub(t, "a/c", 0), 1);          /* no such filter */
    assert_int_equal(unsub(t, "a", 0), 1);            /* inner node, no subscribers */
    assert_int_equal(unsub(t, "a/b", 2), 1);          /* filter exists, owner does not */
    assert_int_equal(unsub(t, "$share/h/a/b", 0), 1); /* no such group */
    assert_int_equal(unsub(t, "a/b", 0), 0);
    assert_int_equal(unsub(t, "a/b", 0), 1);
    assert_int_equal(pg_trie_count(t), 2);
    ASSERT_IDS(match(t, "a/b"), 2, 3); /* the shared one survives */
    assert_int_equal(unsub(t, "$share/g/a/b", 0), 0);
    assert_int_equal(unsub(t, "$share/g/a/b", 0), 1);
    ASSERT_IDS(match(t, "a/b"), 2);
    assert_int_equal(pg_trie_count(t), 1);
}

static void test_pruning(void **state) {
    pg_trie *t = *state;
    assert_int_equal(pg_trie_node_count(t), 1);
    static const char *filters[] = {"a/b/c/d", "a/b", "a/+/c",          "#",           "a/#",
                                    "x//y",    "",    "$share/g/a/b/c", "$share/h/q/#"};
    const int nf = (int)(sizeof(filters) / sizeof(filters[0]));
    for (int round = 0; round < 100; round++) {
        for (int i = 0; i < nf; i++)
            for (int o = 0; o < 3; o++)
                assert_int_equal(sub(t, filters[i], o, 1), 0);
        assert_int_equal(pg_trie_count(t), (size_t)nf * 3);
        /* Unsubscribe in another order than subscribed. */
        for (int i = nf - 1; i >= 0; i--)
            for (int o = 0; o < 3; o++)
                assert_int_equal(unsub(t, filters[(i * 5) % nf], o), 0);
        assert_int_equal(pg_trie_count(t), 0);
        assert_int_equal(pg_trie_node_count(t), 1);
    }
    /* Removing a leaf keeps the inner node that still has subscribers. */
    sub(t, "a", 0, 1);
    sub(t, "a/b/c", 0, 2);
    assert_int_equal(pg_trie_node_count(t), 4);
    unsub(t, "a/b/c", 0);
    assert_int_equal(pg_trie_node_count(t), 2);
    ASSERT_IDS(match(t, "a"), 1);
    /* And removing the inner node keeps its children. */
    sub(t, "a/b/c", 0, 2);
    unsub(t, "a", 0);
    assert_int_equal(pg_trie_node_count(t), 4);
    ASSERT_IDS(match(t, "a/b/c"), 2);
}

static void test_shared_round_robin(void **state) {
    pg_trie *t = *state;
    for (int i = 0; i < 3; i++)
        assert_int_equal(sub(t, "$share/g/s/+", i, (uint32_t)i + 1), 0);
    int seen[3] = {0};
    int prev = -1;
    for (int m = 0; m < 9; m++) {
        struct hits hs = match(t, "s/x");
        assert_int_equal(hs.n, 1);
        assert_int_equal(hs.h[0].shared, 1);
        assert_int_not_equal(hs.h[0].owner, prev);
        prev = hs.h[0].owner;
        seen[prev]++;
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(seen[i], 3);
    assert_int_equal(pg_trie_count(t), 3);
    ASSERT_NONE(t, "s");
}

static void test_shared_skips_offline(void **state) {
    pg_trie *t = *state;
    for (int i = 0; i < 3; i++)
        sub(t, "$share/g/s", i, (uint32_t)i + 1);
    owner_online[1] = 0;
    int seen[3] = {0};
    for (int m = 0; m < 10; m++) {
        struct hits hs = match(t, "s");
        assert_int_equal(hs.n, 1);
        seen[hs.h[0].owner]++;
    }
    assert_int_equal(seen[0], 5);
    assert_int_equal(seen[1], 0);
    assert_int_equal(seen[2], 5);
    /* Nobody online: still one member per message, round robin over all. */
    owner_online[0] = owner_online[2] = 0;
    memset(seen, 0, sizeof(seen));
    for (int m = 0; m < 9; m++) {
        struct hits hs = match(t, "s");
        assert_int_equal(hs.n, 1);
        assert_int_equal(hs.h[0].shared, 1);
        seen[hs.h[0].owner]++;
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(seen[i], 3);
}

static void test_shared_two_groups(void **state) {
    pg_trie *t = *state;
    sub(t, "$share/g1/a/b", 0, 1);
    sub(t, "$share/g1/a/b", 1, 2);
    sub(t, "$share/g2/a/b", 2, 3);
    sub(t, "$share/g2/a/b", 3, 4);
    sub(t, "$share/g2/a/+", 4, 5); /* another filter: a group of its own */
    for (int m = 0; m < 4; m++) {
        struct hits hs = match(t, "a/b");
        assert_int_equal(hs.n, 3);
        assert_int_equal(count_id(&hs, 1) + count_id(&hs, 2), 1);
        assert_int_equal(count_id(&hs, 3) + count_id(&hs, 4), 1);
        assert_int_equal(count_id(&hs, 5), 1);
        for (int i = 0; i < hs.n; i++)
            assert_int_equal(hs.h[i].shared, 1);
    }
}

static void test_shared_and_normal_same_owner(void **state) {
    pg_trie *t = *state;
    assert_int_equal(sub(t, "$share/g1/a/b", 0, 1), 0);
    assert_int_equal(sub(t, "$share/g2/a/b", 0, 2), 0);
    assert_int_equal(sub(t, "a/b", 0, 3), 0);
    assert_int_equal(pg_trie_count(t), 3);
    struct hits hs = match(t, "a/b");
    ASSERT_IDS(hs, 1, 2, 3);
    for (int i = 0; i < hs.n; i++)
        assert_int_equal(hs.h[i].shared, hs.h[i].sub_id != 3);
    assert_int_equal(unsub(t, "$share/g1/a/b", 0), 0);
    ASSERT_IDS(match(t, "a/b"), 2, 3);
    assert_int_equal(unsub(t, "a/b", 0), 0);
    ASSERT_IDS(match(t, "a/b"), 2);
}

static void test_shared_member_removal_keeps_rotation(void **state) {
    pg_trie *t = *state;
    for (int i = 0; i < 4; i++)
        sub(t, "$share/g/q", i, (uint32_t)i + 1);
    assert_int_equal(match(t, "q").h[0].owner, 0);
    assert_int_equal(match(t, "q").h[0].owner, 1);
    assert_int_equal(unsub(t, "$share/g/q", 0), 0); /* before the cursor */
    assert_int_equal(match(t, "q").h[0].owner, 2);
    assert_int_equal(unsub(t, "$share/g/q", 3), 0); /* the next one */
    assert_int_equal(match(t, "q").h[0].owner, 1);
    assert_int_equal(match(t, "q").h[0].owner, 2);
}

static void test_stop_walk(void **state) {
    pg_trie *t = *state;
    sub(t, "a", 0, 1);
    sub(t, "#", 1, 2);
    sub(t, "+", 2, 3);
    sub(t, "$share/g/a", 3, 4);
    assert_int_equal(match_len(t, "a", 1, 1).n, 1);
    assert_int_equal(match_len(t, "a", 1, 3).n, 3);
    assert_int_equal(match_len(t, "a", 1, 0).n, 4);
}

static void test_not_nul_terminated(void **state) {
    pg_trie *t = *state;
    const char buf[] = "a/b/c/d";
    struct pg_sub s = {.owner = OWNER(0), .sub_id = 1, .qos = 0};
    assert_int_equal(pg_trie_subscribe(t, buf, 3, NULL, 0, &s), 0); /* "a/b" */
    ASSERT_IDS(match_len(t, buf, 3, 0), 1);
    assert_int_equal(match_len(t, buf, 2, 0).n, 0); /* "a/" */
    assert_int_equal(pg_trie_unsubscribe(t, buf, 3, NULL, 0, OWNER(0)), 0);
}

static void test_many_children(void **state) {
    pg_trie *t = *state;
    char f[64];
    enum { N = 10000 };
    for (int i = 0; i < N; i++) {
        snprintf(f, sizeof(f), "clients/c%d/in", i);
        assert_int_equal(sub(t, f, i % NOWNERS, (uint32_t)i + 1), 0);
    }
    sub(t, "clients/+/in", 0, N + 1);
    assert_int_equal(pg_trie_count(t), N + 1);
    for (int i = 0; i < N; i++) {
        snprintf(f, sizeof(f), "clients/c%d/in", i);
        struct hits hs = match(t, f);
        ASSERT_IDS(hs, (uint32_t)i + 1, N + 1);
    }
    ASSERT_IDS(match(t, "clients/nobody/in"), N + 1);
    for (int i = 0; i < N; i++) {
        snprintf(f, sizeof(f), "clients/c%d/in", i);
        assert_int_equal(unsub(t, f, i % NOWNERS), 0);
        if (i % 1000 == 0) { /* the table shrinks correctly under removal */
            snprintf(f, sizeof(f), "clients/c%d/in", N - 1);
            ASSERT_IDS(match(t, f), N, N + 1);
        }
    }
    assert_int_equal(unsub(t, "clients/+/in", 0), 0);
    assert_int_equal(pg_trie_node_count(t), 1);
}

static void test_deep_topic(void **state) {
    pg_trie *t = *state;
    enum { LEVELS = 30000 };
    size_t len = LEVELS * 2 - 1;
    char *s = malloc(len);
    assert_non_null(s);
    for (size_t i = 0; i < len; i++)
        s[i] = (i % 2) ? '/' : 'a';
    struct pg_sub sb = {.owner = OWNER(0), .sub_id = 1};
    assert_int_equal(pg_trie_subscribe(t, s, len, NULL, 0, &sb), 0);
    sb.sub_id = 2;
    assert_int_equal(pg_trie_subscribe(t, s, len - 2, NULL, 0, &sb), 0);
    s[len - 1] = '#';
    sb.sub_id = 3;
    assert_int_equal(pg_trie_subscribe(t, s, len, NULL, 0, &sb), 0);
    s[len - 1] = 'a';
    ASSERT_IDS(match_len(t, s, len, 0), 1, 3);
    assert_true(pg_topic_matches(s, len, s, len));
    free(s);
}

static void test_invalid_filters_are_consistent(void **state) {
    pg_trie *t = *state;
    sub(t, "a/#/b", 0, 1);
    sub(t, "a+/b", 1, 2); /* wildcard chars inside a level are plain characters */
    ASSERT_NONE(t, "a/x/b", "a/#/b");
    ASSERT_IDS(match(t, "a+/b"), 2);
    ASSERT_NONE(t, "ax/b");
}

static void test_share_split(void **state) {
    const char *g, *f;
    size_t gl, fl;
    static const struct {
        const char *s;
        int rc;
        const char *group, *filter;
    } cases[] = {
        // clang-format off
        {"$share/g/a/b", 1, "g", "a/b"},              {"$share/group1/#", 1, "group1", "#"},
        {"$share/g/+/x", 1, "g", "+/x"},              {"$share/g//", 1, "g", "/"},
        {"$share/g/$SYS/#", 1, "g", "$SYS/#"},        {"a/b", 0, NULL, NULL},
        {"$share", 0, NULL, NULL},                    {"$shar/g/a", 0, NULL, NULL},
        {"$SHARE/g/a", 0, NULL, NULL},                {"$SYS/share/x", 0, NULL, NULL},
        {"share/g/a", 0, NULL, NULL},                 {"$share/", -1, NULL, NULL},
        {"$share//a", -1, NULL, NULL},                {"$share/g", -1, NULL, NULL},
        {"$share/g/", -1, NULL, NULL},                {"$share/g+/a", -1, NULL, NULL},
        {"$share/+/a", -1, NULL, NULL},               {"$share/#/a", -1, NULL, NULL},
        {"$share/a#b/x", -1, NULL, NULL},
        // clang-format on
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        char *s = exact(cases[i].s, &len);
        int rc = pg_share_split(s, len, &g, &gl, &f, &fl);
        if (rc != cases[i].rc)
            fail_msg("pg_share_split(\"%s\") = %d, want %d", cases[i].s, rc, cases[i].rc);
        if (rc == 1) {
            assert_int_equal(gl, strlen(cases[i].group));
            assert_memory_equal(g, cases[i].group, gl);
            assert_int_equal(fl, strlen(cases[i].filter));
            assert_memory_equal(f, cases[i].filter, fl);
        }
        free(s);
    }
    /* The length bounds the string: "$share/g/abc" cut after "$share/g". */
    assert_int_equal(pg_share_split("$share/g/abc", 8, &g, &gl, &f, &fl), -1);
    assert_int_equal(pg_share_split("$share/g/abc", 9, &g, &gl, &f, &fl), -1);
    assert_int_equal(pg_share_split("$share/g/abc", 10, &g, &gl, &f, &fl), 1);
    assert_int_equal(fl, 1);
}

static void test_topic_matches_table(void **state) {
    static const struct {
        const char *filter, *topic;
        int want;
    } cases[] = {
        // clang-format off
        {"a/b/c", "a/b/c", 1},        {"a/b/c", "a/b", 0},          {"a/b", "a/b/c", 0},
        {"a/b/c", "a/b/d", 0},        {"a", "A", 0},                {"+", "a", 1},
        {"+", "", 1},                 {"+", "a/b", 0},              {"+", "/", 0},
        {"+/+", "/", 1},              {"+/b", "a/b", 1},            {"a/+", "a/b", 1},
        {"a/+", "a", 0},              {"a/+", "a/", 1},             {"a/+/c", "a//c", 1},
        {"a/+/c", "a/b/d", 0},        {"+/+/+", "a/b/c", 1},        {"#", "a", 1},
        {"#", "a/b/c", 1},            {"#", "/", 1},                {"#", "", 1},
        {"a/#", "a", 1},              {"a/#", "a/b", 1},            {"a/#", "a/b/c", 1},
        {"a/#", "ab", 0},             {"a/#", "b/a", 0},            {"sport/#", "sport", 1},
        {"sport/tennis/#", "sport", 0}, {"+/#", "a", 1},             {"+/+/#", "a", 0},
        {"a//b", "a//b", 1},          {"a//b", "a/b", 0},           {"/a", "/a", 1},
        {"/a", "a", 0},               {"+/a", "/a", 1},             {"/+", "/a", 1},
        {"#", "$SYS", 0},             {"#", "$SYS/a", 0},           {"+/a", "$SYS/a", 0},
        {"+", "$", 0},                {"$SYS/#", "$SYS", 1},        {"$SYS/#", "$SYS/a/b", 1},
        {"$SYS/+/x", "$SYS/a/x", 1},  {"$SYS/+", "$SYS/a/x", 0},    {"a/$x/#", "a/$x/y", 1},
        {"a/+", "a/$x", 1},           {"a/#/b", "a/x/b", 0},        {"a/#/b", "a/#/b", 0},
        {"a+", "ab", 0},              {"a+", "a+", 1},
        // clang-format on
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t fl, tl;
        char *f = exact(cases[i].filter, &fl), *tp = exact(cases[i].topic, &tl);
        int got = pg_topic_matches(f, fl, tp, tl);
        if (got != cases[i].want)
            fail_msg("pg_topic_matches(\"%s\", \"%s\") = %d, want %d", cases[i].filter,
                     cases[i].topic, got, cases[i].want);
        /* The trie must agree with the pairwise function. */
        pg_trie *t = pg_trie_new(NULL);
        assert_non_null(t);
        assert_int_equal(sub(t, cases[i].filter, 0, 1), 0);
        struct hits hs = match(t, cases[i].topic);
        if (hs.n != cases[i].want)
            fail_msg("trie: \"%s\" vs \"%s\" gave %d hits, want %d", cases[i].filter,
                     cases[i].topic, hs.n, cases[i].want);
        pg_trie_free(t);
        free(f);
        free(tp);
    }
}

static void test_no_online_callback(void **state) {
    pg_trie *t = pg_trie_new(NULL);
    assert_non_null(t);
    sub(t, "$share/g/a", 0, 1);
    sub(t, "$share/g/a", 1, 2);
    assert_int_equal(match(t, "a").h[0].owner, 0);
    assert_int_equal(match(t, "a").h[0].owner, 1);
    assert_int_equal(match(t, "a").h[0].owner, 0);
    pg_trie_free(t);
    pg_trie_free(NULL);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_exact_match),
        T(test_plus_every_position),
        T(test_multi_every_position),
        T(test_multi_matches_parent),
        T(test_empty_levels),
        T(test_dollar_topics),
        T(test_overlapping_one_owner),
        T(test_several_owners),
        T(test_replace_on_resubscribe),
        T(test_unsubscribe),
        T(test_pruning),
        T(test_shared_round_robin),
        T(test_shared_skips_offline),
        T(test_shared_two_groups),
        T(test_shared_and_normal_same_owner),
        T(test_shared_member_removal_keeps_rotation),
        T(test_stop_walk),
        T(test_not_nul_terminated),
        T(test_many_children),
        T(test_deep_topic),
        T(test_invalid_filters_are_consistent),
        cmocka_unit_test(test_share_split),
        cmocka_unit_test(test_topic_matches_table),
        cmocka_unit_test(test_no_online_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
