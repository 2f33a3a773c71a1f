/* test_codec.c - unit tests for the MQTT codec (adapters/mqtt/codec.h).
 *
 * Round trips (encode -> frame -> decode -> compare) for every packet type in
 * v3.1.1 and v5 and every property; byte vectors captured from mosquitto_pub 2.0;
 * a table of malformed inputs, each with the reason code the spec calls for; and
 * the framing, UTF-8 and topic helpers. The allowed-property sets below are written
 * from the spec's table 2-4, independently of the codec's own table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "adapters/mqtt/codec.h"

#define S(lit) ((mqtt_str){(const uint8_t *)(lit), sizeof(lit) - 1})
#define B(id)  (1ull << (id))

static uint8_t wire[1 << 17];

static size_t unhex(const char *s, uint8_t *out) {
    size_t n = 0;
    unsigned v;
    for (; *s; s++) {
        if (*s == ' ')
            continue;
        assert_int_equal(sscanf(s, "%2x", &v), 1);
        out[n++] = (uint8_t)v;
        s++;
    }
    return n;
}

static void assert_str(mqtt_str got, mqtt_str want) {
    assert_int_equal(got.len, want.len);
    if (want.len)
        assert_memory_equal(got.p, want.p, want.len);
}

/* Encodes into `wire` and checks the framer agrees on the size. */
static size_t encode_ok(const struct mqtt_packet *p, uint8_t v) {
    size_t need = mqtt_encode(p, v, NULL, 0);
    assert_true(need > 0 && need <= sizeof wire);
    assert_int_equal(mqtt_encode(p, v, wire, sizeof wire), need);
    uint32_t plen = 0;
    assert_int_equal(mqtt_frame(wire, need, 0, &plen), 1);
    assert_int_equal(plen, need);
    return need;
}

static size_t roundtrip(const struct mqtt_packet *in, uint8_t v, struct mqtt_packet *out) {
    size_t n = encode_ok(in, v);
    assert_int_equal(mqtt_decode(wire, (uint32_t)n, v, out), 0);
    assert_int_equal(out->type, in->type);
    return n;
}

static int decode_hex(const char *hex, uint8_t v, struct mqtt_packet *out) {
    static uint8_t buf[512];
    size_t n = unhex(hex, buf);
    return mqtt_decode(buf, (uint32_t)n, v, out);
}

/* ---- a props struct with every property set ---- */

static const uint8_t all_ids[] = {0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x11, 0x12, 0x13,
                                  0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1C, 0x1F, 0x21,
                                  0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A};

static const char *const user_kv[] = {"k1", "v1", "empty", "", "k1", "repeated key \xc3\xbc"};
#define N_USER 3
static uint8_t user_buf[256];

static uint32_t pack_pairs(uint8_t *dst, const char *const *kv, int n) {
    uint32_t at = 0;
    for (int i = 0; i < 2 * n; i++) {
        size_t l = strlen(kv[i]);
        dst[at++] = (uint8_t)(l >> 8);
        dst[at++] = (uint8_t)l;
        memcpy(dst + at, kv[i], l);
        at += (uint32_t)l;
    }
    return at;
}

/* Converts decoded user properties to the encoder's storage format. */
static uint32_t pairs_from_decoded(const struct mqtt_props *p, uint8_t *dst) {
    uint32_t cur = 0, at = 0;
    mqtt_str k, v;
    while (mqtt_user_prop_next(p, &cur, &k, &v)) {
        mqtt_str kv[2] = {k, v};
        for (int i = 0; i < 2; i++) {
            dst[at++] = (uint8_t)(kv[i].len >> 8);
            dst[at++] = (uint8_t)kv[i].len;
            memcpy(dst + at, kv[i].p, kv[i].len);
            at += kv[i].len;
        }
    }
    return at;
}

static const uint8_t bin_data[] = {0x00, 0xFF, 0x00, 0x80};

static void fill_all_props(struct mqtt_props *p) {
    memset(p, 0, sizeof *p);
    p->payload_format = 1;
    p->request_problem_info = 0;
    p->request_response_info = 1;
    p->maximum_qos = 1;
    p->retain_available = 0;
    p->wildcard_sub_available = 1;
    p->sub_id_available = 0;
    p->shared_sub_available = 1;
    p->server_keep_alive = 0x1234;
    p->receive_maximum = 0xFFFF;
    p->topic_alias_maximum = 10;
    p->topic_alias = 7;
    p->message_expiry = 0xDEADBEEF;
    p->session_expiry = 0xFFFFFFFF;
    p->will_delay = 5;
    p->maximum_packet_size = 1u << 20;
    p->content_type = S("text/plain");
    p->response_topic = S("resp/t");
    p->correlation_data = (mqtt_str){bin_data, sizeof bin_data};
    p->assigned_client_id = S("auto-1");
    p->auth_method = S("SCRAM-SHA-1");
    p->auth_data = (mqtt_str){bin_data, 2};
    p->response_info = S("info");
    p->server_reference = S("other:1883");
    p->reason_string = S("because \xc3\xbc");
    p->n_sub_ids = 3;
    p->sub_ids[0] = 1;
    p->sub_ids[1] = 16384;
    p->sub_ids[2] = MQTT_MAX_SUB_ID;
    p->user_pairs = user_buf;
    p->user_pairs_len = pack_pairs(user_buf, user_kv, N_USER);
    for (size_t i = 0; i < sizeof all_ids; i++)
        MQTT_SET(p, all_ids[i]);
}

/* MQTT 5.0 table 2-4, by context (0 = will properties). */
static uint64_t allowed(int ctx) {
    const uint64_t user = B(0x26), reason = B(0x1F) | user;
    switch (ctx) {
    case 0:
        return B(0x01) | B(0x02) | B(0x03) | B(0x08) | B(0x09) | B(0x18) | user;
    case MQTT_CONNECT:
        return B(0x11) | B(0x15) | B(0x16) | B(0x17) | B(0x19) | B(0x21) | B(0x22) | B(0x27) | user;
    case MQTT_CONNACK:
        return B(0x11) | B(0x12) | B(0x13) | B(0x15) | B(0x16) | B(0x1A) | B(0x1C) | B(0x21) |
               B(0x22) | B(0x24) | B(0x25) | B(0x27) | B(0x28) | B(0x29) | B(0x2A) | reason;
    case MQTT_PUBLISH:
        return B(0x01) | B(0x02) | B(0x03) | B(0x08) | B(0x09) | B(0x0B) | B(0x23) | user;
    case MQTT_SUBSCRIBE:
        return B(0x0B) | user;
    case MQTT_UNSUBSCRIBE:
        return user;
    case MQTT_DISCONNECT:
        return B(0x11) | B(0x1C) | reason;
    case MQTT_AUTH:
        return B(0x15) | B(0x16) | reason;
    default: /* PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK */
        return reason;
    }
}

#define CHK(id, f)                                                                                 \
    if (mask & B(id))                                                                              \
    assert_int_equal(got->f, want->f)
#define CHKS(id, f)                                                                                \
    if (mask & B(id))                                                                              \
    assert_str(got->f, want->f)

static void assert_props(const struct mqtt_props *got, const struct mqtt_props *want, int ctx,
                         uint32_t max_sub_ids) {
    uint64_t mask = allowed(ctx);
    assert_int_equal(got->present, want->present & mask);
    CHK(0x01, payload_format);
    CHK(0x02, message_expiry);
    CHKS(0x03, content_type);
    CHKS(0x08, response_topic);
    CHKS(0x09, correlation_data);
    CHK(0x11, session_expiry);
    CHKS(0x12, assigned_client_id);
    CHK(0x13, server_keep_alive);
    CHKS(0x15, auth_method);
    CHKS(0x16, auth_data);
    CHK(0x17, request_problem_info);
    CHK(0x18, will_delay);
    CHK(0x19, request_response_info);
    CHKS(0x1A, response_info);
    CHKS(0x1C, server_reference);
    CHKS(0x1F, reason_string);
    CHK(0x21, receive_maximum);
    CHK(0x22, topic_alias_maximum);
    CHK(0x23, topic_alias);
    CHK(0x24, maximum_qos);
    CHK(0x25, retain_available);
    CHK(0x27, maximum_packet_size);
    CHK(0x28, wildcard_sub_available);
    CHK(0x29, sub_id_available);
    CHK(0x2A, shared_sub_available);
    if (mask & B(0x0B)) {
        uint32_t n = want->n_sub_ids < max_sub_ids ? want->n_sub_ids : max_sub_ids;
        assert_int_equal(got->n_sub_ids, n);
        assert_memory_equal(got->sub_ids, want->sub_ids, n * sizeof(uint32_t));
    }
    /* User properties keep their order and repeats. */
    assert_int_equal(got->n_user, N_USER);
    uint32_t cur = 0;
    mqtt_str k, v;
    for (int i = 0; i < N_USER; i++) {
        assert_true(mqtt_user_prop_next(got, &cur, &k, &v));
        assert_int_equal(k.len, strlen(user_kv[2 * i]));
        assert_memory_equal(k.p, user_kv[2 * i], k.len);
        assert_int_equal(v.len, strlen(user_kv[2 * i + 1]));
        assert_memory_equal(v.p, user_kv[2 * i + 1], v.len);
    }
    assert_false(mqtt_user_prop_next(got, &cur, &k, &v));
}

/* ---- round trips ---- */

static void connect_fill(struct mqtt_packet *in, int will, int user, int pass) {
    struct mqtt_connect *c = &in->u.connect;
    memset(in, 0, sizeof *in);
    in->type = MQTT_CONNECT;
    c->clean_start = 1;
    c->keepalive = 65535;
    c->client_id = S("client-\xc3\xa9");
    if (will) {
        c->will_flag = 1;
        c->will_qos = 2;
        c->will_retain = 1;
        c->will_topic = S("will/topic");
        c->will_payload = (mqtt_str){bin_data, sizeof bin_data};
    }
    c->has_username = (uint8_t)user;
    c->username = user ? S("user") : (mqtt_str){0};
    c->has_password = (uint8_t)pass;
    c->password = pass ? (mqtt_str){bin_data, 3} : (mqtt_str){0};
}

static void assert_connect(const struct mqtt_connect *got, const struct mqtt_connect *want,
                           uint8_t v) {
    assert_int_equal(got->version, v);
    assert_int_equal(got->clean_start, want->clean_start);
    assert_int_equal(got->will_flag, want->will_flag);
    assert_int_equal(got->will_qos, want->will_qos);
    assert_int_equal(got->will_retain, want->will_retain);
    assert_int_equal(got->has_username, want->has_username);
    assert_int_equal(got->has_password, want->has_password);
    assert_int_equal(got->keepalive, want->keepalive);
    assert_str(got->client_id, want->client_id);
    assert_str(got->will_topic, want->will_topic);
    assert_str(got->will_payload, want->will_payload);
    assert_str(got->username, want->username);
    assert_str(got->password, want->password);
}

static void test_rt_connect(void **state) {
    struct mqtt_packet in, out;
    for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++) {
        for (int shape = 0; shape < 3; shape++) {
            connect_fill(&in, shape == 0, shape != 1, shape == 0);
            if (v == MQTT_V5) {
                fill_all_props(&in.u.connect.props);
                fill_all_props(&in.u.connect.will_props);
            }
            roundtrip(&in, v, &out);
            assert_connect(&out.u.connect, &in.u.connect, v);
            if (v == MQTT_V5) {
                assert_props(&out.u.connect.props, &in.u.connect.props, MQTT_CONNECT, 0);
                if (shape == 0)
                    assert_props(&out.u.connect.will_props, &in.u.connect.will_props, 0, 0);
            } else {
                assert_int_equal(out.u.connect.props.present, 0);
            }
        }
        /* the protocol name each level is spoken with */
        encode_ok(&in, v);
        assert_memory_equal(wire + 2, v == MQTT_V31 ? "\0\6MQIsdp\3" : "\0\4MQTT", v == 3 ? 9 : 6);
    }
    /* v5 allows a password without a user name */
    connect_fill(&in, 0, 0, 1);
    roundtrip(&in, MQTT_V5, &out);
    assert_connect(&out.u.connect, &in.u.connect, MQTT_V5);
    /* an empty client id is a valid string */
    connect_fill(&in, 0, 0, 0);
    in.u.connect.client_id = S("");
    roundtrip(&in, MQTT_V311, &out);
    assert_non_null(out.u.connect.client_id.p);
    assert_int_equal(out.u.connect.client_id.len, 0);
}

static void test_rt_connack(void **state) {
    struct mqtt_packet in = {.type = MQTT_CONNACK}, out;
    in.u.connack.session_present = 1;
    in.u.connack.reason = MQTT_V3_ACCEPTED;
    assert_int_equal(roundtrip(&in, MQTT_V311, &out), 4);
    assert_memory_equal(wire, "\x20\x02\x01\x00", 4);
    assert_int_equal(out.u.connack.session_present, 1);
    /* 3.1 has no session present flag */
    in.u.connack.reason = MQTT_V3_NOT_AUTHORIZED;
    roundtrip(&in, MQTT_V31, &out);
    assert_int_equal(out.u.connack.session_present, 0);
    assert_int_equal(out.u.connack.reason, MQTT_V3_NOT_AUTHORIZED);

    in.u.connack.reason = 0;
    fill_all_props(&in.u.connack.props);
    roundtrip(&in, MQTT_V5, &out);
    assert_int_equal(out.u.connack.session_present, 1);
    assert_props(&out.u.connack.props, &in.u.connack.props, MQTT_CONNACK, 0);
    in.u.connack.session_present = 0;
    in.u.connack.reason = MQTT_RC_BAD_AUTH_METHOD;
    roundtrip(&in, MQTT_V5, &out);
    assert_int_equal(out.u.connack.reason, MQTT_RC_BAD_AUTH_METHOD);
}

static void test_rt_publish(void **state) {
    static uint8_t payload[300];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)i;
    struct mqtt_packet in = {.type = MQTT_PUBLISH}, out;
    struct mqtt_publish *m = &in.u.publish;
    m->topic = S("sensors/\xe2\x82\xac/temp");
    m->payload = (mqtt_str){payload, sizeof payload};
    for (uint8_t v = MQTT_V311; v <= MQTT_V5; v++) {
        for (int bits = 0; bits < 12; bits++) {
            m->qos = (uint8_t)(bits % 3);
            m->dup = m->qos && (bits & 4);
            m->retain = (bits >> 3) & 1;
            m->packet_id = m->qos ? (uint16_t)(0xFFFF - bits) : 0;
            memset(&m->props, 0, sizeof m->props);
            if (v == MQTT_V5)
                fill_all_props(&m->props);
            roundtrip(&in, v, &out);
            const struct mqtt_publish *g = &out.u.publish;
            assert_int_equal(out.flags, m->dup << 3 | m->qos << 1 | m->retain);
            assert_int_equal(g->qos, m->qos);
            assert_int_equal(g->dup, m->dup);
            assert_int_equal(g->retain, m->retain);
            assert_int_equal(g->packet_id, m->packet_id);
            assert_str(g->topic, m->topic);
            assert_str(g->payload, m->payload);
            if (v == MQTT_V5)
                assert_props(&g->props, &m->props, MQTT_PUBLISH, MQTT_MAX_SUB_IDS);
            else
                assert_int_equal(g->props.present, 0);
        }
    }
    /* an empty payload, and an empty topic carried by an alias (v5) */
    memset(m, 0, sizeof *m);
    m->topic = S("");
    m->props.topic_alias = 3;
    MQTT_SET(&m->props, MQTT_PROP_TOPIC_ALIAS);
    roundtrip(&in, MQTT_V5, &out);
    assert_int_equal(out.u.publish.topic.len, 0);
    assert_int_equal(out.u.publish.payload.len, 0);
    assert_int_equal(out.u.publish.props.topic_alias, 3);
}

/* The exact bytes mosquitto_pub 2.0.11 sends, re-encoded from fields. */
static void test_encode_matches_mosquitto(void **state) {
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    p.u.publish.qos = 1;
    p.u.publish.packet_id = 1;
    p.u.publish.topic = S("a/b");
    p.u.publish.payload = S("hello");
    uint8_t want[64];
    size_t n = unhex("320c0003612f62000168656c6c6f", want);
    assert_int_equal(encode_ok(&p, MQTT_V311), n);
    assert_memory_equal(wire, want, n);

    connect_fill(&p, 0, 0, 0);
    p.u.connect.client_id = S("pg-test");
    p.u.connect.keepalive = 30;
    n = unhex("101300044d5154540402001e000770672d74657374", want);
    assert_int_equal(encode_ok(&p, MQTT_V311), n);
    assert_memory_equal(wire, want, n);

    memset(&p, 0, sizeof p);
    p.type = MQTT_DISCONNECT;
    assert_int_equal(encode_ok(&p, MQTT_V5), 2);
    assert_memory_equal(wire, "\xe0\x00", 2);
}

static void test_rt_acks(void **state) {
    struct mqtt_packet in, out;
    for (uint8_t t = MQTT_PUBACK; t <= MQTT_PUBCOMP; t++) {
        memset(&in, 0, sizeof in);
        in.type = t;
        in.u.ack.packet_id = 0xBEEF;
        assert_int_equal(roundtrip(&in, MQTT_V311, &out), 4);
        assert_int_equal(wire[0], t << 4 | (t == MQTT_PUBREL ? 2 : 0));
        assert_int_equal(out.u.ack.packet_id, 0xBEEF);
        /* v5 success without properties takes the short form */
        assert_int_equal(roundtrip(&in, MQTT_V5, &out), 4);
        /* a reason alone: remaining length 3 */
        in.u.ack.reason = t == MQTT_PUBREL || t == MQTT_PUBCOMP ? MQTT_RC_PACKET_ID_NOT_FOUND
                                                                : MQTT_RC_NO_MATCHING_SUBSCRIBERS;
        assert_int_equal(roundtrip(&in, MQTT_V5, &out), 5);
        assert_int_equal(out.u.ack.reason, in.u.ack.reason);
        /* reason and properties */
        fill_all_props(&in.u.ack.props);
        assert_true(roundtrip(&in, MQTT_V5, &out) > 5);
        assert_int_equal(out.u.ack.reason, in.u.ack.reason);
        assert_props(&out.u.ack.props, &in.u.ack.props, t, 0);
        /* success with properties still writes the reason byte */
        in.u.ack.reason = 0;
        roundtrip(&in, MQTT_V5, &out);
        assert_int_equal(wire[4], 0);
        assert_props(&out.u.ack.props, &in.u.ack.props, t, 0);
    }
}

static uint32_t add_entry(uint8_t *dst, uint32_t at, const char *filter, int opts) {
    size_t l = strlen(filter);
    dst[at++] = (uint8_t)(l >> 8);
    dst[at++] = (uint8_t)l;
    memcpy(dst + at, filter, l);
    at += (uint32_t)l;
    if (opts >= 0)
        dst[at++] = (uint8_t)opts;
    return at;
}

static void test_rt_subscribe(void **state) {
    static const char *const filters[] = {"a/b", "c/#", "+/x/+", "$share/g/d"};
    static const uint8_t opts5[] = {0x01, 0x2E, 0x1C, 0x02}; /* NL, RAP, RH 1 and 2 */
    uint8_t entries[128];
    struct mqtt_packet in, out;
    for (uint8_t v = MQTT_V311; v <= MQTT_V5; v++) {
        for (int unsub = 0; unsub < 2; unsub++) {
            uint32_t len = 0;
            for (int i = 0; i < 4; i++)
                len = add_entry(entries, len, filters[i],
                                unsub          ? -1
                                : v == MQTT_V5 ? opts5[i]
                                               : i % 3);
            memset(&in, 0, sizeof in);
            in.type = unsub ? MQTT_UNSUBSCRIBE : MQTT_SUBSCRIBE;
            in.u.subscribe.packet_id = 42;
            in.u.subscribe.entries = entries;
            in.u.subscribe.entries_len = len;
            if (v == MQTT_V5)
                fill_all_props(&in.u.subscribe.props);
            roundtrip(&in, v, &out);
            assert_int_equal(wire[0] & 0x0F, 2);
            const struct mqtt_subscribe *s = &out.u.subscribe;
            assert_int_equal(s->packet_id, 42);
            assert_int_equal(s->count, 4);
            if (v == MQTT_V5) /* SUBSCRIBE may carry one sub id only */
                assert_props(&s->props, &in.u.subscribe.props, in.type, 1);
            uint32_t cur = 0;
            mqtt_str f;
            uint8_t o;
            for (int i = 0; i < 4; i++) {
                assert_true(unsub ? mqtt_unsub_next(s, &cur, &f) : mqtt_sub_next(s, &cur, &f, &o));
                assert_int_equal(f.len, strlen(filters[i]));
                assert_memory_equal(f.p, filters[i], f.len);
                if (!unsub)
                    assert_int_equal(o, v == MQTT_V5 ? opts5[i] : i % 3);
            }
            assert_false(unsub ? mqtt_unsub_next(s, &cur, &f) : mqtt_sub_next(s, &cur, &f, &o));
        }
    }
}

static void test_rt_suback(void **state) {
    static const uint8_t codes[] = {0x00, 0x01, 0x02, 0x87, 0x8F, 0xA2};
    static const uint8_t v3codes[] = {0x00, 0x01, 0x02, 0x80, 0x80, 0x80};
    static const uint8_t uncodes[] = {0x00, 0x11, 0x87};
    struct mqtt_packet in = {.type = MQTT_SUBACK}, out;
    in.u.suback.packet_id = 7;
    in.u.suback.reasons = codes;
    in.u.suback.count = sizeof codes;
    roundtrip(&in, MQTT_V311, &out);
    assert_int_equal(out.u.suback.count, sizeof codes);
    assert_memory_equal(out.u.suback.reasons, v3codes, sizeof codes);
    fill_all_props(&in.u.suback.props);
    roundtrip(&in, MQTT_V5, &out);
    assert_int_equal(out.u.suback.packet_id, 7);
    assert_memory_equal(out.u.suback.reasons, codes, sizeof codes);
    assert_props(&out.u.suback.props, &in.u.suback.props, MQTT_SUBACK, 0);

    in.type = MQTT_UNSUBACK;
    in.u.suback.reasons = uncodes;
    in.u.suback.count = sizeof uncodes;
    assert_int_equal(roundtrip(&in, MQTT_V311, &out), 4); /* no payload in 3.1.1 */
    assert_int_equal(out.u.suback.count, 0);
    assert_int_equal(out.u.suback.packet_id, 7);
    roundtrip(&in, MQTT_V5, &out);
    assert_int_equal(out.u.suback.count, sizeof uncodes);
    assert_memory_equal(out.u.suback.reasons, uncodes, sizeof uncodes);
    assert_props(&out.u.suback.props, &in.u.suback.props, MQTT_UNSUBACK, 0);
}

static void test_rt_ping(void **state) {
    struct mqtt_packet in = {.type = MQTT_PINGREQ}, out;
    for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++) {
        in.type = MQTT_PINGREQ;
        assert_int_equal(roundtrip(&in, v, &out), 2);
        assert_memory_equal(wire, "\xc0\x00", 2);
        in.type = MQTT_PINGRESP;
        assert_int_equal(roundtrip(&in, v, &out), 2);
        assert_memory_equal(wire, "\xd0\x00", 2);
    }
}

static void test_rt_disconnect_auth(void **state) {
    struct mqtt_packet in = {.type = MQTT_DISCONNECT}, out;
    assert_int_equal(roundtrip(&in, MQTT_V311, &out), 2);
    assert_int_equal(roundtrip(&in, MQTT_V5, &out), 2);
    in.u.disconnect.reason = MQTT_RC_DISCONNECT_WITH_WILL;
    assert_int_equal(roundtrip(&in, MQTT_V5, &out), 3);
    assert_int_equal(out.u.disconnect.reason, MQTT_RC_DISCONNECT_WITH_WILL);
    assert_int_equal(roundtrip(&in, MQTT_V311, &out), 2); /* v3 has no reason */
    in.u.disconnect.reason = MQTT_RC_SERVER_SHUTTING_DOWN;
    fill_all_props(&in.u.disconnect.props);
    roundtrip(&in, MQTT_V5, &out);
    assert_int_equal(out.u.disconnect.reason, MQTT_RC_SERVER_SHUTTING_DOWN);
    assert_props(&out.u.disconnect.props, &in.u.disconnect.props, MQTT_DISCONNECT, 0);

    memset(&in, 0, sizeof in);
    in.type = MQTT_AUTH;
    assert_int_equal(roundtrip(&in, MQTT_V5, &out), 2);
    in.u.disconnect.reason = MQTT_RC_CONTINUE_AUTH;
    fill_all_props(&in.u.disconnect.props);
    roundtrip(&in, MQTT_V5, &out);
    assert_int_equal(out.u.disconnect.reason, MQTT_RC_CONTINUE_AUTH);
    assert_props(&out.u.disconnect.props, &in.u.disconnect.props, MQTT_AUTH, 0);
    assert_int_equal(mqtt_encode(&in, MQTT_V311, wire, sizeof wire), 0); /* no AUTH in v3 */
}

/* ---- encoder edges ---- */

static void test_encode_cap(void **state) {
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    p.u.publish.topic = S("a/b");
    p.u.publish.payload = S("hello");
    size_t need = mqtt_encode(&p, MQTT_V5, NULL, 0);
    assert_int_equal(need, 2 + 5 + 1 + 5);
    memset(wire, 0xAA, 64);
    assert_int_equal(mqtt_encode(&p, MQTT_V5, wire, need - 1), need);
    for (int i = 0; i < 64; i++)
        assert_int_equal(wire[i], 0xAA);
    assert_int_equal(mqtt_encode(&p, MQTT_V5, wire, need), need);
    assert_int_equal(wire[need], 0xAA);
}

static void test_encode_drops_what_cannot_be_carried(void **state) {
    struct mqtt_packet in = {.type = MQTT_PUBLISH}, out;
    in.u.publish.topic = S("t");
    in.u.publish.dup = 1; /* with QoS 0: must not reach the wire */
    in.u.publish.props.session_expiry = 9;
    MQTT_SET(&in.u.publish.props, MQTT_PROP_SESSION_EXPIRY); /* not a PUBLISH property */
    assert_int_equal(roundtrip(&in, MQTT_V5, &out), 2 + 3 + 1);
    assert_int_equal(wire[0], 0x30);
    assert_int_equal(out.u.publish.props.present, 0);
    fill_all_props(&in.u.publish.props);
    assert_int_equal(roundtrip(&in, MQTT_V311, &out), 2 + 3); /* v3 gets no properties */
    /* sub ids of 0 mean "none" and are skipped */
    memset(&in.u.publish.props, 0, sizeof in.u.publish.props);
    in.u.publish.props.n_sub_ids = 2;
    in.u.publish.props.sub_ids[1] = 5;
    roundtrip(&in, MQTT_V5, &out);
    assert_int_equal(out.u.publish.props.n_sub_ids, 1);
    assert_int_equal(out.u.publish.props.sub_ids[0], 5);
}

static void test_encode_refuses_unencodable(void **state) {
    static uint8_t big[70000];
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    p.u.publish.topic = (mqtt_str){big, sizeof big};
    assert_int_equal(mqtt_encode(&p, MQTT_V311, wire, sizeof wire), 0);
    p.u.publish.topic = S("t");
    p.u.publish.qos = 3;
    assert_int_equal(mqtt_encode(&p, MQTT_V311, wire, sizeof wire), 0);
    p.u.publish.qos = 0;
    p.u.publish.payload = (mqtt_str){big, MQTT_MAX_REMAINING};
    assert_int_equal(mqtt_encode(&p, MQTT_V311, wire, sizeof wire), 0);
    p.u.publish.payload = (mqtt_str){big, 10};
    p.u.publish.props.n_sub_ids = 1;
    p.u.publish.props.sub_ids[0] = MQTT_MAX_SUB_ID + 1;
    assert_int_equal(mqtt_encode(&p, MQTT_V5, wire, sizeof wire), 0);
    p.u.publish.props.n_sub_ids = 0;
    p.u.publish.props.content_type = (mqtt_str){big, sizeof big};
    MQTT_SET(&p.u.publish.props, MQTT_PROP_CONTENT_TYPE);
    assert_int_equal(mqtt_encode(&p, MQTT_V5, wire, sizeof wire), 0);
    p.u.publish.props.present = 0;
    p.u.publish.props.user_pairs = (const uint8_t *)"\0\2k"; /* truncated pair */
    p.u.publish.props.user_pairs_len = 3;
    assert_int_equal(mqtt_encode(&p, MQTT_V5, wire, sizeof wire), 0);
    p.type = 0;
    assert_int_equal(mqtt_encode(&p, MQTT_V5, wire, sizeof wire), 0);
}

/* ---- captured and hand-written vectors ---- */

/* mosquitto_pub -V 5 -i pg-test -k 30 -u user -P pass -q 1 -t a/b -m hello
 *   -D connect session-expiry-interval 60 -D connect user-property ck cv
 *   --will-topic will/t --will-payload bye --will-qos 1 --will-retain */
static const char mosq_connect_v5[] =
    "103f00044d51545405ee001e11110000003c260002636b00026376210014000770672d746573740000067769"
    "6c6c2f740003627965000475736572000470617373";
/* ... -D publish user-property pk pv -D publish message-expiry-interval 120
 *   -D publish content-type text/plain */
static const char mosq_publish_v5[] =
    "32280003612f6200011b260002706b00027076020000007803000a746578742f706c61696e68656c6c6f";

static void test_vector_mosquitto_connect_v5(void **state) {
    struct mqtt_packet p;
    assert_int_equal(decode_hex(mosq_connect_v5, 0, &p), 0);
    const struct mqtt_connect *c = &p.u.connect;
    assert_int_equal(p.type, MQTT_CONNECT);
    assert_int_equal(c->version, MQTT_V5);
    assert_int_equal(c->clean_start, 1);
    assert_int_equal(c->will_flag, 1);
    assert_int_equal(c->will_qos, 1);
    assert_int_equal(c->will_retain, 1);
    assert_int_equal(c->keepalive, 30);
    assert_str(c->client_id, S("pg-test"));
    assert_str(c->will_topic, S("will/t"));
    assert_str(c->will_payload, S("bye"));
    assert_str(c->username, S("user"));
    assert_str(c->password, S("pass"));
    assert_int_equal(c->props.present, B(MQTT_PROP_SESSION_EXPIRY) | B(MQTT_PROP_USER_PROPERTY) |
                                           B(MQTT_PROP_RECEIVE_MAXIMUM));
    assert_int_equal(c->props.session_expiry, 60);
    assert_int_equal(c->props.receive_maximum, 20);
    assert_int_equal(c->props.n_user, 1);
    assert_int_equal(c->will_props.present, 0);
    uint32_t cur = 0;
    mqtt_str k, v;
    assert_true(mqtt_user_prop_next(&c->props, &cur, &k, &v));
    assert_str(k, S("ck"));
    assert_str(v, S("cv"));
    assert_false(mqtt_user_prop_next(&c->props, &cur, &k, &v));

    /* re-encoding gives the same size (properties may come out in another order) */
    uint8_t pairs[64];
    struct mqtt_packet again = p;
    again.u.connect.props.user_pairs = pairs;
    again.u.connect.props.user_pairs_len = pairs_from_decoded(&c->props, pairs);
    assert_int_equal(mqtt_encode(&again, MQTT_V5, NULL, 0), (sizeof mosq_connect_v5 - 1) / 2);
}

static void test_vector_mosquitto_publish_v5(void **state) {
    struct mqtt_packet p;
    assert_int_equal(decode_hex(mosq_publish_v5, MQTT_V5, &p), 0);
    const struct mqtt_publish *m = &p.u.publish;
    assert_int_equal(m->qos, 1);
    assert_int_equal(m->packet_id, 1);
    assert_str(m->topic, S("a/b"));
    assert_str(m->payload, S("hello"));
    assert_int_equal(m->props.message_expiry, 120);
    assert_str(m->props.content_type, S("text/plain"));
    uint32_t cur = 0;
    mqtt_str k, v;
    assert_true(mqtt_user_prop_next(&m->props, &cur, &k, &v));
    assert_str(k, S("pk"));
    assert_str(v, S("pv"));
}

static void test_vector_mosquitto_v311(void **state) {
    struct mqtt_packet p;
    assert_int_equal(decode_hex("101300044d5154540402001e000770672d74657374", 0, &p), 0);
    assert_int_equal(p.u.connect.version, MQTT_V311);
    assert_str(p.u.connect.client_id, S("pg-test"));
    assert_int_equal(p.u.connect.has_username, 0);
    assert_int_equal(decode_hex("320c0003612f62000168656c6c6f", MQTT_V311, &p), 0);
    assert_str(p.u.publish.payload, S("hello"));
    assert_int_equal(decode_hex("e000", MQTT_V311, &p), 0);
    assert_int_equal(p.type, MQTT_DISCONNECT);
}

/* User properties interleaved with one property of every wire type, so the
 * iterator has to skip each kind of value. */
static void test_vector_user_props_interleaved(void **state) {
    struct mqtt_packet p;
    assert_int_equal(decode_hex("3031 0003612f62 29"
                                "26 0001 61 0001 62   02 0000000a   0b 8101   03 0001 63"
                                "26 0000 0000         09 0002 ff00  01 01     23 0005"
                                "26 0001 64 0001 65   6869",
                                MQTT_V5, &p),
                     0);
    const struct mqtt_props *pr = &p.u.publish.props;
    assert_int_equal(pr->n_user, 3);
    assert_int_equal(pr->message_expiry, 10);
    assert_int_equal(pr->n_sub_ids, 1);
    assert_int_equal(pr->sub_ids[0], 129);
    assert_str(pr->content_type, S("c"));
    assert_str(pr->correlation_data, S("\xff\x00"));
    assert_int_equal(pr->payload_format, 1);
    assert_int_equal(pr->topic_alias, 5);
    assert_str(p.u.publish.payload, S("hi"));
    static const char *const want[] = {"a", "b", "", "", "d", "e"};
    uint32_t cur = 0;
    mqtt_str k, v;
    for (int i = 0; i < 3; i++) {
        assert_true(mqtt_user_prop_next(pr, &cur, &k, &v));
        assert_int_equal(k.len, strlen(want[2 * i]));
        assert_memory_equal(k.p, want[2 * i], k.len);
        assert_int_equal(v.len, strlen(want[2 * i + 1]));
        assert_memory_equal(v.p, want[2 * i + 1], v.len);
    }
    assert_false(mqtt_user_prop_next(pr, &cur, &k, &v));
}

/* A server PUBLISH matching many subscriptions: ids beyond MQTT_MAX_SUB_IDS are
 * dropped, the packet is still valid. */
static void test_publish_many_sub_ids(void **state) {
    uint8_t pkt[256];
    uint32_t n = 0, props = 40 * 2;
    pkt[n++] = 0x30;
    pkt[n++] = (uint8_t)(3 + 1 + props);
    pkt[n++] = 0;
    pkt[n++] = 1;
    pkt[n++] = 't';
    pkt[n++] = (uint8_t)props;
    for (int i = 1; i <= 40; i++) {
        pkt[n++] = MQTT_PROP_SUBSCRIPTION_ID;
        pkt[n++] = (uint8_t)i;
    }
    struct mqtt_packet p;
    assert_int_equal(mqtt_decode(pkt, n, MQTT_V5, &p), 0);
    assert_int_equal(p.u.publish.props.n_sub_ids, MQTT_MAX_SUB_IDS);
    for (int i = 0; i < MQTT_MAX_SUB_IDS; i++)
        assert_int_equal(p.u.publish.props.sub_ids[i], i + 1);
}

/* ---- rejections ---- */

struct bad {
    const char *name;
    uint8_t version;
    const char *hex;
    int rc;
};

#define MAL   MQTT_RC_MALFORMED
#define PROTO MQTT_RC_PROTOCOL_ERROR
#define TNI   MQTT_RC_TOPIC_NAME_INVALID
#define UNSUP MQTT_RC_UNSUPPORTED_VERSION

static const struct bad bad_rows[] = {
    /* framing and lengths */
    {"5-byte remaining length", 4, "30 ffffffff01", MAL},
    {"truncated remaining length", 4, "30 80", MAL},
    {"remaining length longer than data", 4, "30 07 0003612f62 78", MAL},
    {"remaining length shorter than data", 4, "30 05 0003612f62 78", MAL},
    {"string past the packet", 4, "30 03 0005 61", MAL},
    {"PUBACK too long", 4, "40 03 0001 00", MAL},
    {"PUBACK too short", 4, "40 01 00", MAL},
    {"packet type 0", 4, "00 00", MAL},
    {"CONNECT cut before the flags", 4, "10 07 00044d515454 04", MAL},
    {"CONNECT trailing byte", 4, "10 0e 00044d515454 04 02 001e 000161 ff", MAL},
    {"CONNECT user name flag, no name", 4, "10 0c 00044d515454 04 82 001e 0000", MAL},
    /* PUBLISH */
    {"QoS 3", 4, "36 08 0003612f62 0001 78", MAL},
    {"DUP on QoS 0", 4, "38 06 0003612f62 78", MAL},
    {"packet id 0, QoS 1 (v4)", 4, "32 08 0003612f62 0000 78", MAL},
    {"packet id 0, QoS 2 (v5)", 5, "34 09 0003612f62 0000 00 78", PROTO},
    {"'+' in topic name", 4, "30 06 0003612f2b 78", TNI},
    {"'#' in topic name (v5)", 5, "30 07 0003612f23 00 78", TNI},
    {"empty topic (v4)", 4, "30 03 0000 78", MAL},
    {"empty topic without alias (v5)", 5, "30 04 0000 00 78", PROTO},
    /* UTF-8 */
    {"overlong 2-byte", 4, "30 05 0002c0af 78", MAL},
    {"overlong 3-byte", 4, "30 06 0003e080af 78", MAL},
    {"overlong 4-byte", 4, "30 07 0004f08080af 78", MAL},
    {"surrogate D800", 4, "30 06 0003eda080 78", MAL},
    {"surrogate DFFF", 4, "30 06 0003edbfbf 78", MAL},
    {"U+0000", 4, "30 06 0003610062 78", MAL},
    {"truncated sequence", 4, "30 05 0002e282 78", MAL},
    {"code point > U+10FFFF", 4, "30 07 0004f4908080 78", MAL},
    {"lone continuation byte", 4, "30 04 000180 78", MAL},
    {"invalid lead byte F8", 4, "30 04 0001f8 78", MAL},
    {"bad UTF-8 in client id", 4, "10 0e 00044d515454 04 02 001e 0002c080", MAL},
    {"bad UTF-8 in user property", 5, "30 0d 0003612f62 06 26 0001ff 0000 78", MAL},
    {"bad UTF-8 in filter", 4, "82 08 0001 0003eda080 01", MAL},
    {"bad UTF-8 in protocol name is just unknown", 4, "10 0c 0004ff515454 04 02 001e 0000", UNSUP},
    /* properties */
    {"property twice", 5, "30 0b 0003612f62 04 0101 0101 78", PROTO},
    {"topic alias twice", 5, "30 0d 0003612f62 06 230001 230002 78", PROTO},
    {"sub id twice in SUBSCRIBE", 5, "82 0b 0001 04 0b01 0b02 000161 01", PROTO},
    {"session expiry in PUBLISH", 5, "30 0c 0003612f62 05 1100000001 78", PROTO},
    {"will delay in CONNECT", 5, "10 13 00044d515454 05 02 001e 05 1800000001 000161", PROTO},
    {"session expiry in will", 5,
     "10 19 00044d515454 05 06 001e 00 000161 05 1100000001 000174 0000", PROTO},
    {"reason string in SUBSCRIBE", 5, "82 0b 0001 04 1f000178 000161 01", PROTO},
    {"topic alias in PUBACK", 5, "40 07 0001 00 03 230001", PROTO},
    {"topic alias in DISCONNECT", 5, "e0 05 00 03 230001", PROTO},
    {"session expiry in AUTH", 5, "f0 07 18 05 1100000001", PROTO},
    {"unknown property 0x04", 5, "30 09 0003612f62 02 0400 78", MAL},
    {"unknown property 0x00", 5, "30 08 0003612f62 01 00 78", MAL},
    {"unknown property 0x2B", 5, "30 09 0003612f62 02 2b00 78", MAL},
    {"unknown property 0x80", 5, "30 09 0003612f62 02 8000 78", MAL},
    {"property length past the packet", 5, "30 07 0003612f62 0a 78", MAL},
    {"property value past its block", 5, "30 0b 0003612f62 02 0200 0000 78", MAL},
    {"property length 5-byte varint", 5, "30 0b 0003612f62 ffffffff01 78", MAL},
    {"PUBACK property length past packet", 5, "40 05 0001 00 05 1f", MAL},
    {"payload format 2", 5, "30 09 0003612f62 02 0102 78", PROTO},
    {"topic alias 0", 5, "30 0a 0003612f62 03 230000 78", PROTO},
    {"sub id 0", 5, "82 09 0001 02 0b00 000161 01", PROTO},
    {"sub id 5-byte varint", 5, "82 0c 0001 05 0bffffffff 000161 01", MAL},
    {"receive maximum 0", 5, "10 11 00044d515454 05 02 001e 03 210000 000161", PROTO},
    {"maximum packet size 0", 5, "10 13 00044d515454 05 02 001e 05 2700000000 000161", PROTO},
    {"request problem info 2", 5, "10 10 00044d515454 05 02 001e 02 1702 000161", PROTO},
    {"request response info 2", 5, "10 10 00044d515454 05 02 001e 02 1902 000161", PROTO},
    {"auth data without method", 5, "10 12 00044d515454 05 02 001e 04 16000178 000161", PROTO},
    {"wildcard in response topic", 5, "30 0d 0003612f62 06 0800032b2f61 78", PROTO},
    {"empty response topic in will", 5,
     "10 17 00044d515454 05 06 001e 00 000161 03 080000 000174 0000", PROTO},
    {"maximum QoS 2", 5, "20 05 00 00 02 2402", PROTO},
    {"retain available 2", 5, "20 05 00 00 02 2502", PROTO},
    /* CONNECT */
    {"protocol name MQTX", 4, "10 0c 00044d515458 04 02 001e 0000", UNSUP},
    {"MQTT level 6", 4, "10 0c 00044d515454 06 02 001e 0000", UNSUP},
    {"MQTT level 3", 4, "10 0c 00044d515454 03 02 001e 0000", UNSUP},
    {"MQIsdp level 4", 4, "10 0e 00064d5149736470 04 02 001e 0000", UNSUP},
    {"reserved connect flag", 4, "10 0c 00044d515454 04 03 001e 0000", MAL},
    {"will QoS 3", 4, "10 0c 00044d515454 04 1e 001e 0000", MAL},
    {"will QoS without will flag", 4, "10 0c 00044d515454 04 0a 001e 0000", MAL},
    {"will retain without will flag", 4, "10 0c 00044d515454 04 22 001e 0000", MAL},
    {"password without user name (v4)", 4, "10 0f 00044d515454 04 42 001e 0000 000170", MAL},
    {"password without user name (v3.1)", 3, "10 11 00064d5149736470 03 42 001e 0000 000170", MAL},
    {"wildcard in will topic", 4, "10 13 00044d515454 04 06 001e 0000 0003612f2b 0000", TNI},
    {"empty will topic", 4, "10 10 00044d515454 04 06 001e 0000 0000 0000", TNI},
    /* SUBSCRIBE / UNSUBSCRIBE */
    {"empty SUBSCRIBE (v4)", 4, "82 02 0001", MAL},
    {"empty SUBSCRIBE (v5)", 5, "82 03 0001 00", PROTO},
    {"SUBSCRIBE packet id 0 (v4)", 4, "82 06 0000 000161 01", MAL},
    {"SUBSCRIBE packet id 0 (v5)", 5, "82 07 0000 00 000161 01", PROTO},
    {"options reserved bit 6", 5, "82 07 0001 00 000161 41", MAL},
    {"options reserved bit 7", 5, "82 07 0001 00 000161 81", MAL},
    {"retain handling 3", 5, "82 07 0001 00 000161 30", PROTO},
    {"options QoS 3 (v5)", 5, "82 07 0001 00 000161 03", PROTO},
    {"options QoS 3 (v4)", 4, "82 06 0001 000161 03", MAL},
    {"options upper bits (v4)", 4, "82 06 0001 000161 04", MAL},
    {"missing options byte", 4, "82 05 0001 000161", MAL},
    {"no local on a shared subscription", 5, "82 10 0001 00 000a247368617265 2f672f61 04", PROTO},
    {"empty UNSUBSCRIBE (v4)", 4, "a2 02 0001", MAL},
    {"empty UNSUBSCRIBE (v5)", 5, "a2 03 0001 00", PROTO},
    {"UNSUBSCRIBE packet id 0", 4, "a2 05 0000 000161", MAL},
    /* acks */
    {"PUBACK packet id 0 (v4)", 4, "40 02 0000", MAL},
    {"PUBACK packet id 0 (v5)", 5, "40 02 0000", PROTO},
    {"PUBREC packet id 0", 5, "50 02 0000", PROTO},
    {"PUBREL packet id 0", 4, "62 02 0000", MAL},
    {"PUBCOMP packet id 0", 5, "70 02 0000", PROTO},
    {"SUBACK packet id 0", 5, "90 04 0000 00 00", PROTO},
    {"UNSUBACK packet id 0", 4, "b0 02 0000", MAL},
    {"PUBACK reason 0x05", 5, "40 03 0001 05", PROTO},
    {"PUBREL reason 0x10", 5, "62 03 0001 10", PROTO},
    {"SUBACK v3 code 3", 4, "90 03 0001 03", MAL},
    {"SUBACK v5 reason 0x92", 5, "90 04 0001 00 92", PROTO},
    {"SUBACK without codes", 5, "90 03 0001 00", PROTO},
    {"UNSUBACK v4 with payload", 4, "b0 03 0001 00", MAL},
    /* CONNACK */
    {"CONNACK reserved flags", 4, "20 02 02 00", MAL},
    {"CONNACK v3 return code 6", 4, "20 02 00 06", MAL},
    {"CONNACK v5 without properties", 5, "20 02 00 00", MAL},
    {"CONNACK session present with error", 5, "20 03 01 80 00", PROTO},
    {"CONNACK v5 reason 0x04", 5, "20 03 00 04 00", PROTO},
    /* PING, DISCONNECT, AUTH */
    {"PINGREQ with payload", 4, "c0 01 00", MAL},
    {"PINGRESP with payload", 5, "d0 01 00", MAL},
    {"DISCONNECT v4 with payload", 4, "e0 01 00", MAL},
    {"DISCONNECT reason 0x01", 5, "e0 01 01", PROTO},
    {"AUTH in v3.1.1", 4, "f0 00", MAL},
    {"AUTH in v3.1", 3, "f0 00", MAL},
    {"AUTH reason 0x01", 5, "f0 01 01", PROTO},
    /* accepted: the rules above must not overreach */
    {"user property twice", 5, "30 13 0003612f62 0c 26000161000162 26000000 00 78", 0},
    {"sub ids repeat in PUBLISH", 5, "30 0b 0003612f62 04 0b01 0b02 78", 0},
    {"empty topic with alias", 5, "30 07 0000 03 230001 78", 0},
    {"password without user name (v5)", 5, "10 10 00044d515454 05 42 001e 00 0000 000170", 0},
    {"non-minimal remaining length", 4, "c0 80 00", 0},
    {"v5 DISCONNECT, empty", 5, "e0 00", 0},
    {"v5 AUTH, empty", 5, "f0 00", 0},
    {"v5 PUBACK, reason only", 5, "40 03 0001 10", 0},
    {"v5 PUBACK, empty properties", 5, "40 04 0001 00 00", 0},
    {"U+10FFFF and U+FEFF in topic", 4, "30 0a 0007f48fbfbfefbbbf 78", 0},
};

static void test_rejections(void **state) {
    int failures = 0;
    struct mqtt_packet p;
    for (size_t i = 0; i < sizeof bad_rows / sizeof bad_rows[0]; i++) {
        const struct bad *b = &bad_rows[i];
        int rc = decode_hex(b->hex, b->version, &p);
        if (rc != b->rc) {
            print_error("%s: got 0x%02x, want 0x%02x\n", b->name, rc, b->rc);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

static void test_unsupported_version_reports_level(void **state) {
    struct mqtt_packet p;
    assert_int_equal(decode_hex("10 0c 00044d515454 06 02 001e 0000", 0, &p), UNSUP);
    assert_int_equal(p.type, MQTT_CONNECT);
    assert_int_equal(p.u.connect.version, 6);
    assert_int_equal(decode_hex("10 0c 00044d515458 04 02 001e 0000", 0, &p), UNSUP);
    assert_int_equal(p.u.connect.version, 4);
}

/* Every fixed-header flag value for every type except PUBLISH: only the one
 * the spec lists is accepted. */
static void test_reserved_flags_every_type(void **state) {
    static const char *const valid[16] = {
        [MQTT_CONNECT] = "10 0d 00044d515454 05 02 001e 00 0000",
        [MQTT_CONNACK] = "20 03 00 00 00",
        [MQTT_PUBACK] = "40 02 0001",
        [MQTT_PUBREC] = "50 02 0001",
        [MQTT_PUBREL] = "62 02 0001",
        [MQTT_PUBCOMP] = "70 02 0001",
        [MQTT_SUBSCRIBE] = "82 07 0001 00 000161 00",
        [MQTT_SUBACK] = "90 04 0001 00 00",
        [MQTT_UNSUBSCRIBE] = "a2 06 0001 00 000161",
        [MQTT_UNSUBACK] = "b0 04 0001 00 00",
        [MQTT_PINGREQ] = "c0 00",
        [MQTT_PINGRESP] = "d0 00",
        [MQTT_DISCONNECT] = "e0 00",
        [MQTT_AUTH] = "f0 00",
    };
    uint8_t pkt[64];
    struct mqtt_packet p;
    for (int t = 1; t < 16; t++) {
        if (!valid[t])
            continue;
        size_t n = unhex(valid[t], pkt);
        uint8_t good = pkt[0] & 0x0F;
        for (uint8_t f = 0; f < 16; f++) {
            pkt[0] = (uint8_t)(t << 4 | f);
            int rc = mqtt_decode(pkt, (uint32_t)n, MQTT_V5, &p);
            assert_int_equal(rc, f == good ? 0 : MQTT_RC_MALFORMED);
        }
    }
    /* PUBLISH: QoS 3 and DUP on QoS 0 are the invalid combinations */
    for (uint8_t f = 0; f < 16; f++) {
        uint8_t qos = (f >> 1) & 3;
        size_t n = unhex(qos ? "30 08 0003612f62 0001 00" : "30 06 0003612f62 00", pkt);
        pkt[0] = 0x30 | f;
        int want = qos == 3 || ((f & 8) && !qos) ? MQTT_RC_MALFORMED : 0;
        assert_int_equal(mqtt_decode(pkt, (uint32_t)n, MQTT_V5, &p), want);
    }
}

/* ---- framing ---- */

static void test_frame(void **state) {
    uint32_t len = 12345;
    const uint8_t pub[] = {0x30, 0x03, 0x00, 0x01, 't'};
    assert_int_equal(mqtt_frame(pub, 0, 0, &len), 0);
    assert_int_equal(mqtt_frame(pub, 1, 0, &len), 0);
    assert_int_equal(len, 12345); /* not known yet */
    assert_int_equal(mqtt_frame(pub, 3, 0, &len), 0);
    assert_int_equal(len, 5); /* known before the body is there */
    assert_int_equal(mqtt_frame(pub, 5, 0, &len), 1);
    assert_int_equal(mqtt_frame(pub, 5, 5, &len), 1);
    assert_int_equal(mqtt_frame(pub, 5, 4, &len), -MQTT_RC_PACKET_TOO_LARGE);

    /* oversize is reported from the header alone */
    const uint8_t big[] = {0x30, 0xFF, 0xFF, 0x03};
    assert_int_equal(mqtt_frame(big, sizeof big, 1 << 16, &len), -MQTT_RC_PACKET_TOO_LARGE);
    assert_int_equal(mqtt_frame(big, sizeof big, 0, &len), 0);
    assert_int_equal(len, 4 + 65535);

    /* a 4th byte with the continuation bit is malformed without waiting for a 5th */
    const uint8_t five[] = {0x30, 0x80, 0x80, 0x80, 0x80, 0x01};
    assert_int_equal(mqtt_frame(five, 5, 0, &len), -MQTT_RC_MALFORMED);
    assert_int_equal(mqtt_frame(five, 6, 0, &len), -MQTT_RC_MALFORMED);
    assert_int_equal(mqtt_frame(five, 4, 0, &len), 0); /* still could end at byte 4 */

    const uint8_t max[] = {0x30, 0xFF, 0xFF, 0xFF, 0x7F};
    assert_int_equal(mqtt_frame(max, sizeof max, 0, &len), 0);
    assert_int_equal(len, 5 + MQTT_MAX_REMAINING);
    const uint8_t nonmin[] = {0xC0, 0x80, 0x80, 0x00};
    assert_int_equal(mqtt_frame(nonmin, sizeof nonmin, 0, &len), 1);
    assert_int_equal(len, 4);
}

static void test_varint(void **state) {
    static const struct {
        uint32_t v;
        const char *hex;
    } rows[] = {
        {0, "00"},         {127, "7f"},         {128, "8001"},         {16383, "ff7f"},
        {16384, "808001"}, {2097151, "ffff7f"}, {2097152, "80808001"}, {268435455, "ffffff7f"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        uint8_t want[4], got[4];
        size_t n = unhex(rows[i].hex, want);
        assert_int_equal(mqtt_varint_size(rows[i].v), n);
        assert_int_equal(mqtt_varint_write(got, rows[i].v), n);
        assert_memory_equal(got, want, n);
    }
}

/* ---- helpers ---- */

static int valid_utf8(const char *s) {
    return mqtt_utf8_valid((const uint8_t *)s, strlen(s));
}

static void test_utf8(void **state) {
    assert_true(valid_utf8(""));
    assert_true(valid_utf8("plain ascii that is longer than eight bytes"));
    assert_true(valid_utf8("\xc2\x80 \xdf\xbf \xe0\xa0\x80 \xef\xbf\xbf \xf0\x90\x80\x80"));
    assert_true(valid_utf8("\xf4\x8f\xbf\xbf"));                     /* U+10FFFF */
    assert_true(valid_utf8("\xed\x9f\xbf \xee\x80\x80"));            /* around surrogates */
    assert_true(valid_utf8("long ascii run then \xf0\x9f\x98\x80")); /* emoji after fast path */
    assert_false(valid_utf8("\xc1\xbf"));
    assert_false(valid_utf8("\xe0\x9f\xbf"));
    assert_false(valid_utf8("\xf0\x8f\xbf\xbf"));
    assert_false(valid_utf8("\xed\xa0\x80"));
    assert_false(valid_utf8("\xf4\x90\x80\x80"));
    assert_false(valid_utf8("\xf5\x80\x80\x80"));
    assert_false(valid_utf8("\xe2\x82"));
    assert_false(valid_utf8("abc\xe2\x82"));
    assert_false(valid_utf8("\xe2\x28\xa1"));
    assert_false(valid_utf8("\xbf"));
    uint8_t buf[100];
    memset(buf, 'a', sizeof buf);
    assert_true(mqtt_utf8_valid(buf, sizeof buf));
    for (size_t at = 0; at < sizeof buf; at += 7) { /* a NUL anywhere, fast path or not */
        buf[at] = 0;
        assert_false(mqtt_utf8_valid(buf, sizeof buf));
        buf[at] = 0x80;
        assert_false(mqtt_utf8_valid(buf, sizeof buf));
        buf[at] = 'a';
    }
}

static int filter_ok(const char *s) {
    return mqtt_topic_filter_valid((const uint8_t *)s, strlen(s));
}

static int name_ok(const char *s) {
    return mqtt_topic_name_valid((const uint8_t *)s, strlen(s));
}

static void test_topic_helpers(void **state) {
    static const char *const good[] = {
        "a",  "a/b", "#",   "+",      "a/+/b", "a/#",          "+/+",        "/",
        "//", "/+/", "+/#", "$SYS/#", "a b",   "$share/g/a/#", "$share/g/+", "$share/g//"};
    static const char *const bad[] = {
        "",   "a+",       "a/b+",      "+a",          "#/a",        "a#",        "a/#/b",
        "##", "$share/g", "$share//a", "$share/g+/a", "$share/#/a", "$share/g/", "$share/g/a#"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(filter_ok(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(filter_ok(bad[i]));
    assert_false(filter_ok("a/\xed\xa0\x80"));

    assert_true(name_ok("a/b"));
    assert_true(name_ok("/"));
    assert_true(name_ok("$SYS/x"));
    assert_false(name_ok(""));
    assert_false(name_ok("a/+"));
    assert_false(name_ok("#"));
    assert_false(name_ok("a\xc0\x80"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rt_connect),
        cmocka_unit_test(test_rt_connack),
        cmocka_unit_test(test_rt_publish),
        cmocka_unit_test(test_rt_acks),
        cmocka_unit_test(test_rt_subscribe),
        cmocka_unit_test(test_rt_suback),
        cmocka_unit_test(test_rt_ping),
        cmocka_unit_test(test_rt_disconnect_auth),
        cmocka_unit_test(test_encode_matches_mosquitto),
        cmocka_unit_test(test_encode_cap),
        cmocka_unit_test(test_encode_drops_what_cannot_be_carried),
        cmocka_unit_test(test_encode_refuses_unencodable),
        cmocka_unit_test(test_vector_mosquitto_connect_v5),
        cmocka_unit_test(test_vector_mosquitto_publish_v5),
        cmocka_unit_test(test_vector_mosquitto_v311),
        cmocka_unit_test(test_vector_user_props_interleaved),
        cmocka_unit_test(test_publish_many_sub_ids),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_unsupported_version_reports_level),
        cmocka_unit_test(test_reserved_flags_every_type),
        cmocka_unit_test(test_frame),
        cmocka_unit_test(test_varint),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_topic_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
