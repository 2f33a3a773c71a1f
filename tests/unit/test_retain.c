/* test_retain.c - unit tests for the retained message store (broker/retain.c).
 *
 * Values are small test objects with a reference count; every test checks at the
 * end that the store's ref and unref calls balanced out. Topics and filters are
 * passed as exact-length heap copies so ASan catches any read past len.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "broker/retain.h"

struct val {
    int refs;
    int id;
};

static long total_refs, total_unrefs;

static void val_ref(void *v) {
    ((struct val *)v)->refs++;
    total_refs++;
}

static void val_unref(void *v) {
    struct val *x = v;
    assert_true(x->refs > 0);
    x->refs--;
    total_unrefs++;
}

static char *exact(const char *s, size_t *len) {
    *len = strlen(s);
    char *p = malloc(*len ? *len : 1);
    assert_non_null(p);
    memcpy(p, s, *len);
    return p;
}

static int set(pg_retain *r, const char *topic, struct val *v) {
    size_t len;
    char *p = exact(topic, &len);
    int rc = pg_retain_set(r, p, len, v);
    free(p);
    return rc;
}

static struct val *get(pg_retain *r, const char *topic) {
    size_t len;
    char *p = exact(topic, &len);
    struct val *v = pg_retain_get(r, p, len);
    free(p);
    return v;
}

/* Topics reported by one walk, as a sorted, '|'-joined string for easy comparison. */
struct seen {
    int n;
    char topics[64][64];
    int stop_after;
    pg_retain *clear_in; /* clear each topic from inside the callback */
};

static int on_hit(void *ctx, const char *topic, size_t tlen, void *value) {
    struct seen *s = ctx;
    assert_non_null(value);
    assert_true(((struct val *)value)->refs > 0);
    if (s->n < 64 && tlen < 64) {
        memcpy(s->topics[s->n], topic, tlen);
        s->topics[s->n][tlen] = 0;
    }
    s->n++;
    if (s->clear_in)
        assert_int_equal(pg_retain_set(s->clear_in, topic, tlen, NULL), 0);
    return s->stop_after && s->n >= s->stop_after;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(a, b);
}

static const char *joined(struct seen *s) {
    static char out[4096];
    int n = s->n < 64 ? s->n : 64;
    qsort(s->topics, (size_t)n, sizeof(s->topics[0]), cmp_str);
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        if (i)
            strcat(out, "|");
        strcat(out, s->topics[i]);
    }
    return out;
}

static const char *match(pg_retain *r, const char *filter) {
    struct seen s;
    memset(&s, 0, sizeof(s));
    size_t len;
    char *p = exact(filter, &len);
    pg_retain_match(r, p, len, on_hit, &s);
    free(p);
    return joined(&s);
}

static struct val vals[16];

static int setup(void **state) {
    memset(vals, 0, sizeof(vals));
    for (int i = 0; i < 16; i++)
        vals[i].id = i;
    total_refs = total_unrefs = 0;
    *state = pg_retain_new(val_ref, val_unref);
    return *state ? 0 : -1;
}

/* Freeing the store drops every reference it held. */
static int teardown(void **state) {
    pg_retain_free(*state);
    assert_int_equal(total_refs, total_unrefs);
    for (int i = 0; i < 16; i++)
        assert_int_equal(vals[i].refs, 0);
    return 0;
}

static void test_set_get_replace_clear(void **state) {
    pg_retain *r = *state;
    assert_null(get(r, "a/b"));
    assert_int_equal(set(r, "a/b", &vals[1]), 1);
    assert_ptr_equal(get(r, "a/b"), &vals[1]);
    assert_int_equal(vals[1].refs, 1);
    assert_null(get(r, "a"));
    assert_null(get(r, "a/b/c"));
    assert_int_equal(pg_retain_count(r), 1);

    assert_int_equal(set(r, "a/b", &vals[2]), 0); /* replace */
    assert_ptr_equal(get(r, "a/b"), &vals[2]);
    assert_int_equal(vals[1].refs, 0);
    assert_int_equal(vals[2].refs, 1);
    assert_int_equal(pg_retain_count(r), 1);

    assert_int_equal(set(r, "a/b", &vals[2]), 0); /* same value again */
    assert_int_equal(vals[2].refs, 1);

    assert_int_equal(set(r, "a/b", NULL), 0); /* clear */
    assert_null(get(r, "a/b"));
    assert_int_equal(vals[2].refs, 0);
    assert_int_equal(pg_retain_count(r), 0);
    assert_int_equal(set(r, "a/b", NULL), 0); /* clear nothing */
    assert_int_equal(set(r, "never/set", NULL), 0);
    assert_int_equal(pg_retain_count(r), 0);
    assert_int_equal(total_refs, total_unrefs);
}

static void test_same_value_many_topics(void **state) {
    pg_retain *r = *state;
    assert_int_equal(set(r, "x/1", &vals[3]), 1);
    assert_int_equal(set(r, "x/2", &vals[3]), 1);
    assert_int_equal(set(r, "x/3", &vals[3]), 1);
    assert_int_equal(vals[3].refs, 3);
    assert_string_equal(match(r, "x/#"), "x/1|x/2|x/3");
    assert_int_equal(vals[3].refs, 3); /* walks give their references back */
    set(r, "x/2", NULL);
    assert_int_equal(vals[3].refs, 2);
}

static void test_plus(void **state) {
    pg_retain *r = *state;
    set(r, "a/b", &vals[1]);
    set(r, "a/c", &vals[2]);
    set(r, "a/b/c", &vals[3]);
    set(r, "b/x", &vals[4]);
    set(r, "a", &vals[5]);
    assert_string_equal(match(r, "a/+"), "a/b|a/c");
    assert_string_equal(match(r, "+/x"), "b/x");
    assert_string_equal(match(r, "+/+/c"), "a/b/c");
    assert_string_equal(match(r, "+/+"), "a/b|a/c|b/x");
    assert_string_equal(match(r, "+"), "a");
    assert_string_equal(match(r, "a/+/+"), "a/b/c");
    assert_string_equal(match(r, "a/+/d"), "");
    assert_string_equal(match(r, "a/b"), "a/b");
    assert_string_equal(match(r, "a/d"), "");
}

static void test_multi(void **state) {
    pg_retain *r = *state;
    set(r, "a", &vals[1]);
    set(r, "a/b", &vals[2]);
    set(r, "a/b/c", &vals[3]);
    set(r, "a/c", &vals[4]);
    set(r, "ab", &vals[5]);
    set(r, "b/a", &vals[6]);
    assert_string_equal(match(r, "a/#"), "a|a/b|a/b/c|a/c");
    assert_string_equal(match(r, "a/b/#"), "a/b|a/b/c");
    assert_string_equal(match(r, "#"), "a|a/b|a/b/c|a/c|ab|b/a");
    assert_string_equal(match(r, "+/#"), "a|a/b|a/b/c|a/c|ab|b/a");
    assert_string_equal(match(r, "+/b/#"), "a/b|a/b/c");
    assert_string_equal(match(r, "a/b/c/#"), "a/b/c");
    assert_string_equal(match(r, "a/x/#"), "");
    assert_string_equal(match(r, "a/#/c"), ""); /* invalid: '#' not last */
}

static void test_multi_parent_only_when_stored(void **state) {
    pg_retain *r = *state;
    set(r, "sport/tennis", &vals[1]);
    assert_string_equal(match(r, "sport/#"), "sport/tennis");
    set(r, "sport", &vals[2]);
    assert_string_equal(match(r, "sport/#"), "sport|sport/tennis");
}

static void test_dollar_rule(void **state) {
    pg_retain *r = *state;
    set(r, "$SYS/uptime", &vals[1]);
    set(r, "$SYS", &vals[2]);
    set(r, "sys/uptime", &vals[3]);
    set(r, "a/$b", &vals[4]);
    assert_string_equal(match(r, "#"), "a/$b|sys/uptime");
    assert_string_equal(match(r, "+/uptime"), "sys/uptime");
    assert_string_equal(match(r, "+"), "");
    assert_string_equal(match(r, "$SYS/#"), "$SYS|$SYS/uptime");
    assert_string_equal(match(r, "$SYS/+"), "$SYS/uptime");
    assert_string_equal(match(r, "$SYS"), "$SYS");
    assert_string_equal(match(r, "a/+"), "a/$b");
}

static void test_empty_levels(void **state) {
    pg_retain *r = *state;
    set(r, "/a", &vals[1]);
    set(r, "a//b", &vals[2]);
    set(r, "a/", &vals[3]);
    set(r, "/", &vals[4]);
    assert_string_equal(match(r, "+/a"), "/a");
    assert_string_equal(match(r, "a/+/b"), "a//b");
    assert_string_equal(match(r, "a/+"), "a/");
    assert_string_equal(match(r, "+/+"), "/|/a|a/");
    assert_string_equal(match(r, "/#"), "/|/a");
    assert_ptr_equal(get(r, "a/"), &vals[3]);
    assert_null(get(r, "a"));
    assert_ptr_equal(get(r, "/"), &vals[4]);
}

static void test_each(void **state) {
    pg_retain *r = *state;
    set(r, "$SYS/x", &vals[1]);
    set(r, "a", &vals[2]);
    set(r, "a/b/c", &vals[3]);
    struct seen s;
    memset(&s, 0, sizeof(s));
    pg_retain_each(r, on_hit, &s);
    assert_string_equal(joined(&s), "$SYS/x|a|a/b/c");
}

static void test_stop_early(void **state) {
    pg_retain *r = *state;
    for (int i = 0; i < 10; i++) {
        char t[16];
        snprintf(t, sizeof(t), "s/%d", i);
        set(r, t, &vals[i]);
    }
    struct seen s;
    memset(&s, 0, sizeof(s));
    s.stop_after = 3;
    pg_retain_match(r, "s/+", 3, on_hit, &s);
    assert_int_equal(s.n, 3);
    memset(&s, 0, sizeof(s));
    s.stop_after = 1;
    pg_retain_each(r, on_hit, &s);
    assert_int_equal(s.n, 1);
    for (int i = 0; i < 10; i++)
        assert_int_equal(vals[i].refs, 1);
}

static void test_clear_inside_callback(void **state) {
    pg_retain *r = *state;
    set(r, "e/1", &vals[1]);
    set(r, "e/2/x", &vals[2]);
    set(r, "e/2", &vals[3]);
    set(r, "f", &vals[4]);
    struct seen s;
    memset(&s, 0, sizeof(s));
    s.clear_in = r;
    pg_retain_match(r, "e/#", 3, on_hit, &s);
    assert_int_equal(s.n, 3);
    assert_int_equal(pg_retain_count(r), 1);
    memset(&s, 0, sizeof(s));
    s.clear_in = r;
    pg_retain_each(r, on_hit, &s); /* the expiry sweep pattern */
    assert_int_equal(s.n, 1);
    assert_int_equal(pg_retain_count(r), 0);
    assert_int_equal(pg_retain_node_count(r), 1);
}

static void test_pruning(void **state) {
    pg_retain *r = *state;
    assert_int_equal(pg_retain_node_count(r), 1);
    set(r, "a/b/c/d", &vals[1]);
    set(r, "a/b", &vals[2]);
    assert_int_equal(pg_retain_node_count(r), 5);
    set(r, "a/b/c/d", NULL);
    assert_int_equal(pg_retain_node_count(r), 3); /* a/b still holds a value */
    set(r, "a/b/c/d", &vals[1]);
    set(r, "a/b", NULL);
    assert_int_equal(pg_retain_node_count(r), 5); /* a/b/c/d still below it */
    assert_string_equal(match(r, "a/#"), "a/b/c/d");
    set(r, "a/b/c/d", NULL);
    assert_int_equal(pg_retain_node_count(r), 1);
    for (int i = 0; i < 1000; i++) { /* churn does not grow the tree */
        char t[32];
        snprintf(t, sizeof(t), "churn/%d/x", i);
        assert_int_equal(set(r, t, &vals[i % 16]), 1);
        assert_int_equal(set(r, t, NULL), 0);
    }
    assert_int_equal(pg_retain_node_count(r), 1);
}

static void test_not_nul_terminated(void **state) {
    pg_retain *r = *state;
    const char buf[] = "a/b/c";
    assert_int_equal(pg_retain_set(r, buf, 3, &vals[1]), 1); /* "a/b" */
    assert_ptr_equal(pg_retain_get(r, buf, 3), &vals[1]);
    assert_null(pg_retain_get(r, buf, 1));
    struct seen s;
    memset(&s, 0, sizeof(s));
    pg_retain_match(r, "a/+/c", 3, on_hit, &s); /* "a/+" */
    assert_string_equal(joined(&s), "a/b");
}

static void test_many_topics(void **state) {
    pg_retain *r = *state;
    enum { N = 100000 };
    char t[64];
    for (int i = 0; i < N; i++) {
        snprintf(t, sizeof(t), "dev/%d/temp", i);
        assert_int_equal(pg_retain_set(r, t, strlen(t), &vals[i % 16]), 1);
    }
    assert_int_equal(pg_retain_count(r), N);
    assert_string_equal(match(r, "dev/4242/temp"), "dev/4242/temp");
    assert_string_equal(match(r, "dev/4242/+"), "dev/4242/temp");
    assert_string_equal(match(r, "dev/99999/#"), "dev/99999/temp");
    struct seen s;
    memset(&s, 0, sizeof(s));
    pg_retain_match(r, "dev/+/temp", 10, on_hit, &s);
    assert_int_equal(s.n, N);
    memset(&s, 0, sizeof(s));
    pg_retain_match(r, "#", 1, on_hit, &s);
    assert_int_equal(s.n, N);
    for (int i = 0; i < N; i++) {
        snprintf(t, sizeof(t), "dev/%d/temp", i);
        assert_int_equal(pg_retain_set(r, t, strlen(t), NULL), 0);
    }
    assert_int_equal(pg_retain_count(r), 0);
    assert_int_equal(pg_retain_node_count(r), 1);
}

static int count_hit(void *ctx, const char *topic, size_t tlen, void *value) {
    (*(int *)ctx)++;
    return 0;
}

static void test_no_callbacks(void **state) {
    pg_retain *r = pg_retain_new(NULL, NULL);
    assert_non_null(r);
    assert_int_equal(set(r, "a", &vals[0]), 1);
    int n = 0;
    pg_retain_match(r, "#", 1, count_hit, &n);
    assert_int_equal(n, 1);
    assert_int_equal(vals[0].refs, 0);
    pg_retain_free(r);
    pg_retain_free(NULL);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_set_get_replace_clear),
        T(test_same_value_many_topics),
        T(test_plus),
        T(test_multi),
        T(test_multi_parent_only_when_stored),
        T(test_dollar_rule),
        T(test_empty_levels),
        T(test_each),
        T(test_stop_early),
        T(test_clear_inside_callback),
        T(test_pruning),
        T(test_not_nul_terminated),
        T(test_many_topics),
        T(test_no_callbacks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
