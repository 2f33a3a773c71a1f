/* test_sn_topics.c - cmocka tests of the MQTT-SN topic-id registry: ids a client
 * registers (bounded by max_registrations, stable, never reused), predefined ids,
 * short names, and the mountpoint both ways.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <netinet/in.h>

#include "adapters/mqttsn/sn_internal.h"

static void no_send(void *ud, const struct sockaddr *to, socklen_t tolen, const uint8_t *buf,
                    size_t len) {}

static const struct sn_predefined predefined[] = {{1, "sensors/+/temp"}, {42, "home/status"}};

struct fixture {
    pg_broker *b;
    struct sn_gw *gw;
    struct sn_client *c;
};

static struct fixture start(const char *mountpoint, int max_registrations) {
    struct fixture f;
    struct pg_broker_config bc;
    pg_broker_config_defaults(&bc);
    bc.sys_interval = 0;
    f.b = pg_broker_new(&bc);
    struct sn_gw_config c = {.broker = f.b,
                             .listener = "test",
                             .mountpoint = mountpoint,
                             .predefined = predefined,
                             .n_predefined = 2,
                             .max_registrations = max_registrations,
                             .retry_interval_s = 10,
                             .max_retries = 3};
    f.gw = sn_gw_new(&c, no_send, NULL);
    assert_non_null(f.gw);
    struct sn_addr a;
    memset(&a, 0, sizeof a);
    a.u.in.sin_family = AF_INET;
    a.u.in.sin_port = htons(4000);
    a.len = sizeof a.u.in;
    f.c = sn_client_new(f.gw, &a, "dev1");
    assert_non_null(f.c);
    return f;
}

static void stop(struct fixture *f) {
    sn_gw_free(f->gw);
    pg_broker_free(f->b);
}

static void test_register_gives_stable_ids(void **state) {
    struct fixture f = start("", 10);
    uint16_t a = sn_reg_add(f.c, "a/b", 3), b = sn_reg_add(f.c, "a/c", 3);
    assert_true(a != 0 && b != 0 && a != b);
    assert_int_equal(sn_reg_add(f.c, "a/b", 3), a); /* the same topic, the same id */
    assert_int_equal(sn_reg_find(f.c, "a/c", 3), b);
    assert_int_equal(sn_reg_find(f.c, "a/d", 3), 0);
    assert_string_equal(sn_reg_topic(f.c, a), "a/b");
    assert_null(sn_reg_topic(f.c, 999));
    /* Prefixes and lengths do not confuse lookups. */
    assert_int_equal(sn_reg_find(f.c, "a/bc", 4), 0);
    assert_int_equal(sn_reg_find(f.c, "a/", 2), 0);
    stop(&f);
}

static void test_registrations_are_bounded(void **state) {
    struct fixture f = start("", 3);
    assert_true(sn_reg_add(f.c, "t/1", 3));
    assert_true(sn_reg_add(f.c, "t/2", 3));
    uint16_t third = sn_reg_add(f.c, "t/3", 3);
    assert_true(third);
    assert_int_equal(sn_reg_add(f.c, "t/4", 3), 0);     /* full: congestion */
    assert_int_equal(sn_reg_add(f.c, "t/3", 3), third); /* known ones still answer */
    sn_regs_clear(f.c);
    assert_true(sn_reg_add(f.c, "t/4", 3));
    stop(&f);
}

static void test_ids_are_not_reused_while_registered(void **state) {
    struct fixture f = start("", 100);
    uint16_t seen[50];
    for (int i = 0; i < 50; i++) {
        char t[16];
        int n = snprintf(t, sizeof t, "x/%d", i);
        seen[i] = sn_reg_add(f.c, t, (size_t)n);
        for (int j = 0; j < i; j++)
            assert_int_not_equal(seen[i], seen[j]);
    }
    stop(&f);
}

static void test_topic_of_each_id_type(void **state) {
    struct fixture f = start("", 10);
    char buf[128];
    uint16_t id = sn_reg_add(f.c, "room/1", 6);
    assert_int_equal(sn_topic_of(f.c, SN_TOPIC_NORMAL, id, buf, sizeof buf), 6);
    assert_string_equal(buf, "room/1");
    assert_int_equal(sn_topic_of(f.c, SN_TOPIC_NORMAL, (uint16_t)(id + 1), buf, sizeof buf), -1);
    assert_int_equal(sn_topic_of(f.c, SN_TOPIC_PREDEFINED, 42, buf, sizeof buf), 11);
    assert_string_equal(buf, "home/status");
    assert_int_equal(sn_topic_of(f.c, SN_TOPIC_PREDEFINED, 43, buf, sizeof buf), -1);
    assert_int_equal(sn_topic_of(f.c, SN_TOPIC_SHORT, ('a' << 8) | 'b', buf, sizeof buf), 2);
    assert_string_equal(buf, "ab");
    /* A short name is two characters: a NUL in it is no topic. */
    assert_int_equal(sn_topic_of(f.c, SN_TOPIC_SHORT, 'a' << 8, buf, sizeof buf), -1);
    /* Too small a buffer is an error, not a cut topic. */
    assert_int_equal(sn_topic_of(f.c, SN_TOPIC_PREDEFINED, 42, buf, 5), -1);
    stop(&f);
}

static void test_predefined_lookup(void **state) {
    struct fixture f = start("", 10);
    assert_int_equal(sn_predefined_id(f.gw, "home/status", 11), 42);
    assert_int_equal(sn_predefined_id(f.gw, "sensors/+/temp", 14), 1);
    assert_int_equal(sn_predefined_id(f.gw, "home/statu", 10), 0);
    assert_int_equal(sn_predefined_id(f.gw, "home/status/x", 13), 0);
    stop(&f);
}

static void test_mountpoint_both_ways(void **state) {
    struct fixture f = start("site1/", 10);
    char buf[64];
    uint16_t id = sn_reg_add(f.c, "t", 1);
    assert_int_equal(sn_topic_of(f.c, SN_TOPIC_NORMAL, id, buf, sizeof buf), 7);
    assert_string_equal(buf, "site1/t");
    assert_int_equal(sn_topic_of(f.c, SN_TOPIC_PREDEFINED, 42, buf, sizeof buf), 17);
    assert_string_equal(buf, "site1/home/status");
    size_t len = 17;
    const char *t = sn_unmount(f.gw, "site1/home/status", &len);
    assert_int_equal(len, 11);
    assert_memory_equal(t, "home/status", 11);
    const char *other = "other"; /* not under the mountpoint: unchanged */
    len = 5;
    assert_ptr_equal(sn_unmount(f.gw, other, &len), other);
    assert_int_equal(len, 5);
    stop(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_gives_stable_ids),
        cmocka_unit_test(test_registrations_are_bounded),
        cmocka_unit_test(test_ids_are_not_reused_while_registered),
        cmocka_unit_test(test_topic_of_each_id_type),
        cmocka_unit_test(test_predefined_lookup),
        cmocka_unit_test(test_mountpoint_both_ways),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
