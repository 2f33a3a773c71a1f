/* test_sn_codec.c - unit tests for the MQTT-SN codec (adapters/mqttsn/sn_codec.h).
 *
 * Round trips (encode -> decode -> compare) of every message type and its variants;
 * byte vectors written by hand from the message figures of the MQTT-SN v1.2 spec
 * (section 5.4 and 5.5), checked in both directions; the 3-octet length form; a table
 * of malformed datagrams, each with the SN_E_* code it must get; and the flags
 * helpers, the names, and what the encoder refuses. Decoding always reads from a heap
 * copy of exactly the datagram's size, so the sanitizer build sees any overread.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/mqttsn/sn_codec.h"

#define S(lit)   ((sn_str){(const uint8_t *)(lit), sizeof(lit) - 1})
#define N_OF(a)  (sizeof(a) / sizeof((a)[0]))
#define MSG(...) ((struct sn_msg){__VA_ARGS__})

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

/* A heap copy of exactly n bytes (at least 1, so malloc never returns NULL). */
static uint8_t *exact_copy(const uint8_t *p, size_t n) {
    uint8_t *c = malloc(n ? n : 1);
    assert_non_null(c);
    if (n)
        memcpy(c, p, n);
    return c;
}

static void assert_str(sn_str got, sn_str want) {
    assert_int_equal(got.len, want.len);
    if (want.len)
        assert_memory_equal(got.p, want.p, want.len);
}

static void assert_flags(const struct sn_flags *got, const struct sn_flags *want) {
    assert_int_equal(got->dup, want->dup);
    assert_int_equal(got->qos, want->qos);
    assert_int_equal(got->retain, want->retain);
    assert_int_equal(got->will, want->will);
    assert_int_equal(got->clean_session, want->clean_session);
    assert_int_equal(got->topic_id_type, want->topic_id_type);
}

static void assert_id_rc(uint16_t topic_id, uint16_t msg_id, uint8_t rc, uint16_t want_topic_id,
                         uint16_t want_msg_id, uint8_t want_rc) {
    assert_int_equal(topic_id, want_topic_id);
    assert_int_equal(msg_id, want_msg_id);
    assert_int_equal(rc, want_rc);
}

static void assert_subscribe(const struct sn_msg *got, const struct sn_msg *want) {
    assert_flags(&got->u.subscribe.flags, &want->u.subscribe.flags);
    assert_int_equal(got->u.subscribe.msg_id, want->u.subscribe.msg_id);
    if (want->u.subscribe.flags.topic_id_type == SN_TOPIC_NORMAL)
        assert_str(got->u.subscribe.topic_name, want->u.subscribe.topic_name);
    else
        assert_int_equal(got->u.subscribe.topic_id, want->u.subscribe.topic_id);
}

static void assert_willtopic(const struct sn_msg *got, const struct sn_msg *want) {
    assert_int_equal(got->u.willtopic.empty, want->u.willtopic.empty);
    if (want->u.willtopic.empty)
        return;
    assert_flags(&got->u.willtopic.flags, &want->u.willtopic.flags);
    assert_str(got->u.willtopic.topic, want->u.willtopic.topic);
}

/* Compares the fields the message's type carries. */
static void assert_msg(const struct sn_msg *got, const struct sn_msg *want) {
    assert_int_equal(got->type, want->type);
    const typeof(want->u) *w = &want->u, *g = &got->u;
    switch (want->type) {
    case SN_ADVERTISE:
        assert_int_equal(g->advertise.gw_id, w->advertise.gw_id);
        assert_int_equal(g->advertise.duration, w->advertise.duration);
        break;
    case SN_SEARCHGW:
        assert_int_equal(g->searchgw.radius, w->searchgw.radius);
        break;
    case SN_GWINFO:
        assert_int_equal(g->gwinfo.gw_id, w->gwinfo.gw_id);
        assert_str(g->gwinfo.gw_add, w->gwinfo.gw_add);
        break;
    case SN_CONNECT:
        assert_flags(&g->connect.flags, &w->connect.flags);
        assert_int_equal(g->connect.protocol_id, w->connect.protocol_id);
        assert_int_equal(g->connect.duration, w->connect.duration);
        assert_str(g->connect.client_id, w->connect.client_id);
        break;
    case SN_CONNACK:
    case SN_WILLTOPICRESP:
    case SN_WILLMSGRESP:
        assert_int_equal(g->resp.rc, w->resp.rc);
        break;
    case SN_WILLTOPICREQ:
    case SN_WILLMSGREQ:
    case SN_PINGRESP:
        break;
    case SN_WILLTOPIC:
    case SN_WILLTOPICUPD:
        assert_willtopic(got, want);
        break;
    case SN_WILLMSG:
    case SN_WILLMSGUPD:
        assert_str(g->willmsg.msg, w->willmsg.msg);
        break;
    case SN_REGISTER:
        assert_int_equal(g->reg.topic_id, w->reg.topic_id);
        assert_int_equal(g->reg.msg_id, w->reg.msg_id);
        assert_str(g->reg.topic, w->reg.topic);
        break;
    case SN_REGACK:
        assert_id_rc(g->regack.topic_id, g->regack.msg_id, g->regack.rc, w->regack.topic_id,
                     w->regack.msg_id, w->regack.rc);
        break;
    case SN_PUBLISH:
        assert_flags(&g->publish.flags, &w->publish.flags);
        assert_int_equal(g->publish.topic_id, w->publish.topic_id);
        assert_int_equal(g->publish.msg_id, w->publish.msg_id);
        assert_str(g->publish.data, w->publish.data);
        break;
    case SN_PUBACK:
        assert_id_rc(g->puback.topic_id, g->puback.msg_id, g->puback.rc, w->puback.topic_id,
                     w->puback.msg_id, w->puback.rc);
        break;
    case SN_PUBREC:
    case SN_PUBREL:
    case SN_PUBCOMP:
    case SN_UNSUBACK:
        assert_int_equal(g->ack.msg_id, w->ack.msg_id);
        break;
    case SN_SUBSCRIBE:
    case SN_UNSUBSCRIBE:
        assert_subscribe(got, want);
        break;
    case SN_SUBACK:
        assert_flags(&g->suback.flags, &w->suback.flags);
        assert_id_rc(g->suback.topic_id, g->suback.msg_id, g->suback.rc, w->suback.topic_id,
                     w->suback.msg_id, w->suback.rc);
        break;
    case SN_PINGREQ:
        assert_str(g->pingreq.client_id, w->pingreq.client_id);
        break;
    case SN_DISCONNECT:
        assert_int_equal(g->disconnect.has_duration, w->disconnect.has_duration);
        if (w->disconnect.has_duration)
            assert_int_equal(g->disconnect.duration, w->disconnect.duration);
        break;
    case SN_ENCAPSULATED:
        assert_int_equal(g->encap.radius, w->encap.radius);
        assert_str(g->encap.wireless_node_id, w->encap.wireless_node_id);
        assert_str(g->encap.inner, w->encap.inner);
        break;
    default:
        fail_msg("no such type 0x%02x", want->type);
    }
}

/* Decodes bytes from an exactly sized copy, compares with want, and frees. */
static void assert_decodes_to(const uint8_t *bytes, size_t n, const struct sn_msg *want) {
    uint8_t *copy = exact_copy(bytes, n);
    struct sn_msg got;
    assert_int_equal(sn_decode(copy, n, &got), 0);
    assert_msg(&got, want);
    free(copy);
}

static int decode_status(const uint8_t *bytes, size_t n) {
    uint8_t *copy = exact_copy(bytes, n);
    struct sn_msg m;
    int rc = sn_decode(copy, n, &m);
    free(copy);
    return rc;
}

/* Encodes into `wire` (checking one byte less of room is refused), decodes, compares. */
static size_t roundtrip(const struct sn_msg *in) {
    size_t n = sn_encode(in, wire, sizeof wire);
    assert_true(n >= 2);
    assert_int_equal(sn_encode(in, wire, n - 1), 0);
    assert_int_equal(sn_encode(in, wire, n), n);
    assert_decodes_to(wire, n, in);
    return n;
}

/* ---- round trips ---- */

/* A PUBLISH as a forwarder would wrap it: QoS 1, retain, topic id 1, msg id 2, "x". */
static const uint8_t inner_publish[] = {0x08, 0x0C, 0x30, 0x00, 0x01, 0x00, 0x02, 'x'};

static void test_rt_every_type(void **state) {
    const struct sn_msg all[] = {
        MSG(.type = SN_ADVERTISE, .u.advertise = {.gw_id = 7, .duration = 900}),
        MSG(.type = SN_SEARCHGW, .u.searchgw = {.radius = 2}),
        MSG(.type = SN_GWINFO, .u.gwinfo = {.gw_id = 7}),
        MSG(.type = SN_GWINFO, .u.gwinfo = {.gw_id = 7, .gw_add = S("\xc0\xa8\x00\x01")}),
        MSG(.type = SN_CONNECT, .u.connect = {.flags = {.will = 1, .clean_session = 1},
                                              .protocol_id = 1,
                                              .duration = 60,
                                              .client_id = S("sensor-17")}),
        MSG(.type = SN_CONNECT, .u.connect = {.protocol_id = 1, .client_id = S("x")}),
        MSG(.type = SN_CONNACK, .u.resp = {.rc = SN_RC_CONGESTION}),
        MSG(.type = SN_WILLTOPICREQ),
        MSG(.type = SN_WILLTOPIC,
            .u.willtopic = {.flags = {.qos = 2, .retain = 1}, .topic = S("dead/sensor-17")}),
        MSG(.type = SN_WILLTOPIC, .u.willtopic = {.empty = 1}),
        MSG(.type = SN_WILLMSGREQ),
        MSG(.type = SN_WILLMSG, .u.willmsg = {.msg = S("gone")}),
        MSG(.type = SN_WILLMSG),
        MSG(.type = SN_REGISTER, .u.reg = {.topic_id = 0, .msg_id = 3, .topic = S("a/b/c")}),
        MSG(.type = SN_REGISTER, .u.reg = {.topic_id = 0x1234, .msg_id = 4, .topic = S("x")}),
        MSG(.type = SN_REGACK, .u.regack = {.topic_id = 0x1234, .msg_id = 3, .rc = 0}),
        MSG(.type = SN_PUBLISH, .u.publish = {.flags = {.dup = 1, .qos = 2, .retain = 1},
                                              .topic_id = 0x1234,
                                              .msg_id = 0xFFFF,
                                              .data = S("\x00\x01\xff payload")}),
        MSG(.type = SN_PUBLISH,
            .u.publish = {.flags = {.qos = -1, .topic_id_type = SN_TOPIC_PREDEFINED},
                          .topic_id = 9}),
        MSG(.type = SN_PUBLISH, .u.publish = {.flags = {.qos = 0, .topic_id_type = SN_TOPIC_SHORT},
                                              .topic_id = 'a' << 8 | 'b',
                                              .data = S("hi")}),
        MSG(.type = SN_PUBACK,
            .u.puback = {.topic_id = 9, .msg_id = 10, .rc = SN_RC_INVALID_TOPIC_ID}),
        MSG(.type = SN_PUBCOMP, .u.ack = {.msg_id = 11}),
        MSG(.type = SN_PUBREC, .u.ack = {.msg_id = 12}),
        MSG(.type = SN_PUBREL, .u.ack = {.msg_id = 13}),
        MSG(.type = SN_SUBSCRIBE,
            .u.subscribe = {.flags = {.dup = 1, .qos = 1}, .msg_id = 14, .topic_name = S("a/+/#")}),
        MSG(.type = SN_SUBSCRIBE,
            .u.subscribe = {.flags = {.qos = 2, .topic_id_type = SN_TOPIC_PREDEFINED},
                            .msg_id = 15,
                            .topic_id = 0x0102}),
        MSG(.type = SN_SUBSCRIBE, .u.subscribe = {.flags = {.topic_id_type = SN_TOPIC_SHORT},
                                                  .msg_id = 16,
                                                  .topic_id = 'x' << 8 | 'y'}),
        MSG(.type = SN_SUBACK,
            .u.suback = {.flags = {.qos = 1}, .topic_id = 0x22, .msg_id = 14, .rc = 0}),
        MSG(.type = SN_UNSUBSCRIBE, .u.subscribe = {.msg_id = 17, .topic_name = S("a/+/#")}),
        MSG(.type = SN_UNSUBSCRIBE, .u.subscribe = {.flags = {.topic_id_type = SN_TOPIC_PREDEFINED},
                                                    .msg_id = 18,
                                                    .topic_id = 0x0102}),
        MSG(.type = SN_UNSUBSCRIBE, .u.subscribe = {.flags = {.topic_id_type = SN_TOPIC_SHORT},
                                                    .msg_id = 19,
                                                    .topic_id = 'x' << 8 | 'y'}),
        MSG(.type = SN_UNSUBACK, .u.ack = {.msg_id = 19}),
        MSG(.type = SN_PINGREQ),
        MSG(.type = SN_PINGREQ, .u.pingreq = {.client_id = S("sensor-17")}),
        MSG(.type = SN_PINGRESP),
        MSG(.type = SN_DISCONNECT),
        MSG(.type = SN_DISCONNECT, .u.disconnect = {.has_duration = 1, .duration = 3600}),
        MSG(.type = SN_WILLTOPICUPD,
            .u.willtopic = {.flags = {.qos = 1}, .topic = S("dead/sensor-17")}),
        MSG(.type = SN_WILLTOPICUPD, .u.willtopic = {.empty = 1}),
        MSG(.type = SN_WILLTOPICRESP, .u.resp = {.rc = SN_RC_NOT_SUPPORTED}),
        MSG(.type = SN_WILLMSGUPD, .u.willmsg = {.msg = S("gone again")}),
        MSG(.type = SN_WILLMSGRESP, .u.resp = {.rc = SN_RC_ACCEPTED}),
        MSG(.type = SN_ENCAPSULATED, .u.encap = {.radius = 3,
                                                 .wireless_node_id = S("\x12\x34"),
                                                 .inner = {inner_publish, sizeof inner_publish}}),
        MSG(.type = SN_ENCAPSULATED, .u.encap = {.inner = {inner_publish, sizeof inner_publish}}),
    };
    uint8_t seen[256] = {0};
    for (size_t i = 0; i < N_OF(all); i++) {
        roundtrip(&all[i]);
        seen[all[i].type] = 1;
    }
    int types = 0;
    for (int t = 0; t < 256; t++)
        types += seen[t];
    assert_int_equal(types, 28); /* every v1.2 type, and the encapsulation */
}

/* ---- byte vectors from the spec's figures ---- */

struct vector {
    const char *what;
    const char *hex;
    struct sn_msg msg;
};

/* Each vector must decode to msg, and msg must encode to exactly these bytes. */
static void check_vectors(const struct vector *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        static uint8_t want[512];
        size_t len = unhex(v[i].hex, want);
        uint8_t *copy = exact_copy(want, len);
        struct sn_msg got;
        int rc = sn_decode(copy, len, &got);
        if (rc)
            fail_msg("%s: %s", v[i].what, sn_strerror(rc));
        assert_msg(&got, &v[i].msg);
        free(copy);
        if (sn_encode(&v[i].msg, wire, sizeof wire) != len || memcmp(wire, want, len) != 0)
            fail_msg("%s: encodes to other bytes", v[i].what);
    }
}

static void test_vectors(void **state) {
    const struct vector v[] = {
        {"CONNECT, will + clean session, keep alive 60, \"cli1\"", "0A 04 0C 01 00 3C 63 6C 69 31",
         MSG(.type = SN_CONNECT, .u.connect = {.flags = {.will = 1, .clean_session = 1},
                                               .protocol_id = 1,
                                               .duration = 60,
                                               .client_id = S("cli1")})},
        {"PUBLISH QoS -1, short topic \"ab\", \"hi\"", "09 0C 62 61 62 00 00 68 69",
         MSG(.type = SN_PUBLISH,
             .u.publish = {.flags = {.qos = -1, .topic_id_type = SN_TOPIC_SHORT},
                           .topic_id = 0x6162,
                           .data = S("hi")})},
        {"SUBSCRIBE QoS 1 by name \"a/b\"", "08 12 20 00 01 61 2F 62",
         MSG(.type = SN_SUBSCRIBE,
             .u.subscribe = {.flags = {.qos = 1}, .msg_id = 1, .topic_name = S("a/b")})},
        {"SUBSCRIBE QoS 1, predefined id 5", "07 12 21 00 02 00 05",
         MSG(.type = SN_SUBSCRIBE,
             .u.subscribe = {.flags = {.qos = 1, .topic_id_type = SN_TOPIC_PREDEFINED},
                             .msg_id = 2,
                             .topic_id = 5})},
        {"SUBSCRIBE QoS 0, DUP, short name \"xy\"", "07 12 82 00 03 78 79",
         MSG(.type = SN_SUBSCRIBE,
             .u.subscribe = {.flags = {.dup = 1, .topic_id_type = SN_TOPIC_SHORT},
                             .msg_id = 3,
                             .topic_id = 0x7879})},
        {"UNSUBSCRIBE by name \"a/b\"", "08 14 00 00 04 61 2F 62",
         MSG(.type = SN_UNSUBSCRIBE, .u.subscribe = {.msg_id = 4, .topic_name = S("a/b")})},
        {"REGISTER from a client, \"t/1\"", "09 0A 00 00 00 07 74 2F 31",
         MSG(.type = SN_REGISTER, .u.reg = {.topic_id = 0, .msg_id = 7, .topic = S("t/1")})},
        {"REGACK, topic id 1, accepted", "07 0B 00 01 00 07 00",
         MSG(.type = SN_REGACK, .u.regack = {.topic_id = 1, .msg_id = 7, .rc = 0})},
        {"GWINFO from a client, GwAdd 192.168.0.1", "07 02 05 C0 A8 00 01",
         MSG(.type = SN_GWINFO, .u.gwinfo = {.gw_id = 5, .gw_add = S("\xc0\xa8\x00\x01")})},
        {"GWINFO from a gateway", "03 02 05", MSG(.type = SN_GWINFO, .u.gwinfo = {.gw_id = 5})},
        {"ADVERTISE, gateway 7, every 900 s", "05 00 07 03 84",
         MSG(.type = SN_ADVERTISE, .u.advertise = {.gw_id = 7, .duration = 900})},
        {"SEARCHGW, radius 1", "03 01 01", MSG(.type = SN_SEARCHGW, .u.searchgw = {.radius = 1})},
        {"CONNACK accepted", "03 05 00", MSG(.type = SN_CONNACK, .u.resp = {.rc = 0})},
        {"WILLTOPIC QoS 1, retain, \"w/t\"", "06 07 30 77 2F 74",
         MSG(.type = SN_WILLTOPIC,
             .u.willtopic = {.flags = {.qos = 1, .retain = 1}, .topic = S("w/t")})},
        {"empty WILLTOPIC (delete the will)", "02 07",
         MSG(.type = SN_WILLTOPIC, .u.willtopic = {.empty = 1})},
        {"PUBACK, invalid topic id", "07 0D 00 09 00 02 02",
         MSG(.type = SN_PUBACK,
             .u.puback = {.topic_id = 9, .msg_id = 2, .rc = SN_RC_INVALID_TOPIC_ID})},
        {"SUBACK, granted QoS 1, topic id 5", "08 13 20 00 05 00 01 00",
         MSG(.type = SN_SUBACK,
             .u.suback = {.flags = {.qos = 1}, .topic_id = 5, .msg_id = 1, .rc = 0})},
        {"PUBREL", "04 10 00 02", MSG(.type = SN_PUBREL, .u.ack = {.msg_id = 2})},
        {"DISCONNECT, sleep 300 s", "04 18 01 2C",
         MSG(.type = SN_DISCONNECT, .u.disconnect = {.has_duration = 1, .duration = 300})},
        {"DISCONNECT", "02 18", MSG(.type = SN_DISCONNECT)},
        {"PINGREQ from a waking client \"cli1\"", "06 16 63 6C 69 31",
         MSG(.type = SN_PINGREQ, .u.pingreq = {.client_id = S("cli1")})},
        {"PINGRESP", "02 17", MSG(.type = SN_PINGRESP)},
        {"encapsulated PUBLISH, radius 1, node 0x1234", "05 FE 01 12 34 08 0C 30 00 01 00 02 78",
         MSG(.type = SN_ENCAPSULATED, .u.encap = {.radius = 1,
                                                  .wireless_node_id = S("\x12\x34"),
                                                  .inner = {inner_publish, sizeof inner_publish}})},
    };
    check_vectors(v, N_OF(v));
}

/* The encapsulated message decodes on its own, with its own length field. */
static void test_encapsulated_inner(void **state) {
    uint8_t buf[64];
    size_t n = unhex("05 FE 01 12 34 08 0C 30 00 01 00 02 78", buf);
    struct sn_msg outer, inner;
    assert_int_equal(sn_decode(buf, n, &outer), 0);
    assert_ptr_equal(outer.u.encap.inner.p, buf + 5);
    assert_int_equal(sn_decode(outer.u.encap.inner.p, outer.u.encap.inner.len, &inner), 0);
    assert_msg(&inner, &MSG(.type = SN_PUBLISH, .u.publish = {.flags = {.qos = 1, .retain = 1},
                                                              .topic_id = 1,
                                                              .msg_id = 2,
                                                              .data = S("x")}));
    /* an empty Wireless Node Id and the 3-octet form of the Length are accepted too */
    n = unhex("01 00 05 FE 00 02 17", buf);
    assert_decodes_to(buf, n, &MSG(.type = SN_ENCAPSULATED, .u.encap = {.inner = S("\x02\x17")}));
}

/* Decoding is zero-copy: strings point into the datagram. */
static void test_zero_copy(void **state) {
    uint8_t buf[64];
    size_t n = unhex("09 0C 62 61 62 00 00 68 69", buf);
    struct sn_msg m;
    assert_int_equal(sn_decode(buf, n, &m), 0);
    assert_ptr_equal(m.u.publish.data.p, buf + 7);
    n = unhex("02 18", buf);
    assert_int_equal(sn_decode(buf, n, &m), 0);
    assert_int_equal(m.u.disconnect.has_duration, 0);
}

/* ---- the 3-octet length form ---- */

static struct sn_msg publish_of(const uint8_t *data, size_t len) {
    return MSG(.type = SN_PUBLISH,
               .u.publish = {.flags = {.qos = 1}, .topic_id = 1, .msg_id = 2, .data = {data, len}});
}

static void test_long_form(void **state) {
    static uint8_t data[70000];
    memset(data, 'd', sizeof data);
    /* 300 bytes of data: 3 + 1 + 5 + 300 = 309 = 0x0135 */
    struct sn_msg m = publish_of(data, 300);
    assert_int_equal(roundtrip(&m), 309);
    uint8_t want[309];
    size_t h = unhex("01 01 35 0C 20 00 01 00 02", want);
    memcpy(want + h, data, 300);
    assert_memory_equal(wire, want, sizeof want);
    assert_decodes_to(want, sizeof want, &m);
    /* the boundary: 255 bytes in the short form, then 258 in the long one */
    m = publish_of(data, 248);
    assert_int_equal(roundtrip(&m), 255);
    assert_int_equal(wire[0], 0xFF);
    m = publish_of(data, 249);
    assert_int_equal(roundtrip(&m), 258);
    assert_memory_equal(wire, "\x01\x01\x02\x0C", 4);
    /* the largest message, and one byte more */
    m = publish_of(data, 65535 - 9);
    assert_int_equal(roundtrip(&m), 65535);
    assert_memory_equal(wire, "\x01\xFF\xFF\x0C", 4);
    m = publish_of(data, 65535 - 8);
    assert_int_equal(sn_encode(&m, wire, sizeof wire), 0);
}

/* The spec only requires the long form from 256 bytes on; shorter messages in it are
 * accepted, and re-encode in the short form. */
static void test_long_form_short_message(void **state) {
    uint8_t buf[16];
    size_t n = unhex("01 00 04 17", buf);
    assert_decodes_to(buf, n, &MSG(.type = SN_PINGRESP));
    n = unhex("01 00 06 10 00 02", buf);
    struct sn_msg m = MSG(.type = SN_PUBREL, .u.ack = {.msg_id = 2});
    assert_decodes_to(buf, n, &m);
    assert_int_equal(sn_encode(&m, wire, sizeof wire), 4);
    assert_memory_equal(wire, "\x04\x10\x00\x02", 4);
}

/* ---- malformed datagrams ---- */

struct bad {
    const char *what;
    const char *hex;
    int err;
};

static const struct bad bad_rows[] = {
    /* the header */
    {"empty datagram", "", SN_E_SHORT},
    {"one byte", "02", SN_E_SHORT},
    {"one byte, the long-form marker", "01", SN_E_SHORT},
    {"long form cut after 2 bytes", "01 00", SN_E_SHORT},
    {"long form without a type", "01 00 04", SN_E_SHORT},
    {"length 0", "00 17", SN_E_LENGTH},
    {"length larger than the datagram", "03 17", SN_E_LENGTH},
    {"length smaller than the datagram", "02 17 00", SN_E_LENGTH},
    {"length 255 on a 3-byte datagram", "FF 0C 00", SN_E_LENGTH},
    {"long form larger than the datagram", "01 00 05 17", SN_E_LENGTH},
    {"long form smaller than the datagram", "01 00 04 17 00", SN_E_LENGTH},
    {"long form length 0", "01 00 00 17", SN_E_LENGTH},
    {"long form length 3", "01 00 03 17", SN_E_LENGTH},
    /* types */
    {"reserved type 0x03", "02 03", SN_E_TYPE},
    {"reserved type 0x11", "02 11", SN_E_TYPE},
    {"reserved type 0x19", "02 19", SN_E_TYPE},
    {"reserved type 0x1E", "02 1E", SN_E_TYPE},
    {"reserved type 0x80", "02 80", SN_E_TYPE},
    {"reserved type 0xFD", "02 FD", SN_E_TYPE},
    {"reserved type 0xFF", "02 FF", SN_E_TYPE},
    {"reserved type in the long form", "01 00 04 03", SN_E_TYPE},
    /* flags */
    {"PUBLISH, topic id type 0b11", "07 0C 03 00 01 00 00", SN_E_FLAGS},
    {"SUBSCRIBE, topic id type 0b11", "07 12 03 00 01 00 05", SN_E_FLAGS},
    {"UNSUBSCRIBE, topic id type 0b11", "07 14 03 00 01 00 05", SN_E_FLAGS},
    {"SUBSCRIBE, QoS -1", "06 12 60 00 01 61", SN_E_FLAGS},
    {"SUBACK, QoS -1", "08 13 60 00 01 00 01 00", SN_E_FLAGS},
    {"WILLTOPIC, QoS -1", "04 07 60 61", SN_E_FLAGS},
    {"WILLTOPICUPD, QoS -1", "04 1A 60 61", SN_E_FLAGS},
    /* CONNECT */
    {"CONNECT, protocol id 2", "07 04 04 02 00 3C 61", SN_E_FIELD},
    {"CONNECT, protocol id 0", "07 04 04 00 00 3C 61", SN_E_FIELD},
    {"CONNECT without a client id", "06 04 04 01 00 3C", SN_E_FIELD},
    {"CONNECT cut in Duration", "05 04 04 01 00", SN_E_SHORT},
    {"CONNECT without fields", "02 04", SN_E_SHORT},
    /* return codes and fixed sizes */
    {"CONNACK without a return code", "02 05", SN_E_SHORT},
    {"CONNACK, reserved return code", "03 05 04", SN_E_FIELD},
    {"CONNACK with an extra byte", "04 05 00 00", SN_E_TRAILING},
    {"WILLTOPICRESP, return code 0xFF", "03 1B FF", SN_E_FIELD},
    {"WILLMSGRESP with an extra byte", "04 1D 00 00", SN_E_TRAILING},
    {"REGACK too short", "06 0B 00 01 00 01", SN_E_SHORT},
    {"REGACK too long", "08 0B 00 01 00 01 00 00", SN_E_TRAILING},
    {"REGACK, reserved return code", "07 0B 00 01 00 01 04", SN_E_FIELD},
    {"PUBACK too short", "04 0D 00 01", SN_E_SHORT},
    {"PUBACK too long", "08 0D 00 01 00 01 00 00", SN_E_TRAILING},
    {"SUBACK too long", "09 13 00 00 01 00 01 00 00", SN_E_TRAILING},
    {"SUBACK, reserved return code", "08 13 00 00 01 00 01 80", SN_E_FIELD},
    {"ADVERTISE cut in Duration", "04 00 01 00", SN_E_SHORT},
    {"ADVERTISE too long", "06 00 01 00 3C 00", SN_E_TRAILING},
    {"SEARCHGW too long", "04 01 00 00", SN_E_TRAILING},
    {"SEARCHGW without a radius", "02 01", SN_E_SHORT},
    {"GWINFO without a GwId", "02 02", SN_E_SHORT},
    {"WILLTOPICREQ with a byte", "03 06 00", SN_E_TRAILING},
    {"PINGRESP with a byte", "03 17 00", SN_E_TRAILING},
    {"PUBREL too short", "03 10 00", SN_E_SHORT},
    {"PUBCOMP without a MsgId", "02 0E", SN_E_SHORT},
    {"UNSUBACK too long", "05 15 00 01 00", SN_E_TRAILING},
    {"DISCONNECT, 1-byte duration", "03 18 01", SN_E_SHORT},
    {"DISCONNECT, 3-byte duration", "05 18 00 01 00", SN_E_TRAILING},
    /* topics */
    {"REGISTER without a topic name", "06 0A 00 00 00 01", SN_E_FIELD},
    {"REGISTER cut in MsgId", "05 0A 00 00 00", SN_E_SHORT},
    {"PUBLISH without a MsgId", "05 0C 00 00 01", SN_E_SHORT},
    {"PUBLISH without flags", "02 0C", SN_E_SHORT},
    {"SUBSCRIBE by name, empty name", "05 12 00 00 01", SN_E_FIELD},
    {"SUBSCRIBE, predefined id of 1 byte", "06 12 01 00 01 00", SN_E_SHORT},
    {"SUBSCRIBE, predefined id of 3 bytes", "08 12 01 00 01 00 05 00", SN_E_TRAILING},
    {"UNSUBSCRIBE, short name of 3 bytes", "08 14 02 00 01 61 62 63", SN_E_TRAILING},
    {"UNSUBSCRIBE without a MsgId", "03 14 00", SN_E_SHORT},
    {"WILLTOPIC with flags but no topic", "03 07 00", SN_E_FIELD},
    {"WILLTOPICUPD with flags but no topic", "03 1A 00", SN_E_FIELD},
    /* the Forwarder Encapsulation */
    {"encapsulation, header only", "02 FE", SN_E_LENGTH},
    {"encapsulation without an inner message", "05 FE 00 12 34", SN_E_SHORT},
    {"encapsulation, inner header truncated", "05 FE 00 12 34 08", SN_E_SHORT},
    {"encapsulation, inner long form truncated", "05 FE 00 12 34 01 00", SN_E_SHORT},
    {"encapsulation, Length past the datagram", "09 FE 00 12 34 02 17", SN_E_LENGTH},
    {"encapsulation, Length without Ctrl", "02 FE 00 02 17", SN_E_LENGTH},
    {"encapsulation, Length 0", "00 FE 00 02 17", SN_E_LENGTH},
    {"encapsulation, inner length disagrees", "03 FE 00 03 17", SN_E_LENGTH},
    {"encapsulation, reserved Ctrl bits", "03 FE 04 02 17", SN_E_FLAGS},
    {"encapsulation inside an encapsulation", "03 FE 00 03 FE 00 02 17", SN_E_TYPE},
    {"encapsulation, inner type reserved", "03 FE 00 02 03", SN_E_TYPE},
    {"encapsulation, inner CONNACK malformed", "03 FE 00 03 05 09", SN_E_FIELD},
};

static void test_rejections(void **state) {
    assert_true(N_OF(bad_rows) >= 30);
    for (size_t i = 0; i < N_OF(bad_rows); i++) {
        const struct bad *b = &bad_rows[i];
        uint8_t buf[64];
        size_t n = unhex(b->hex, buf);
        int rc = decode_status(buf, n);
        if (rc != b->err)
            fail_msg("%s: got %d (%s), want %d (%s)", b->what, rc, sn_strerror(rc), b->err,
                     sn_strerror(b->err));
    }
}

/* Every proper prefix of a valid message is rejected (and read within bounds). */
static void test_truncations(void **state) {
    const char *valid[] = {
        "0A 04 0C 01 00 3C 63 6C 69 31",
        "09 0C 62 61 62 00 00 68 69",
        "07 12 21 00 02 00 05",
        "08 13 20 00 05 00 01 00",
        "04 18 01 2C",
        "01 00 06 10 00 02",
        "05 FE 01 12 34 08 0C 30 00 01 00 02 78",
    };
    for (size_t i = 0; i < N_OF(valid); i++) {
        uint8_t buf[64];
        size_t n = unhex(valid[i], buf);
        assert_int_equal(decode_status(buf, n), 0);
        for (size_t k = 0; k < n; k++)
            assert_true(decode_status(buf, k) < 0);
    }
}

/* Flags a type does not use are kept, not checked; a re-encode reproduces them. */
static void test_unused_flags_kept(void **state) {
    const char *hex[] = {
        "07 04 EF 01 00 3C 61",    /* CONNECT: DUP, QoS -1 and topic id type 0b11 */
        "06 14 60 00 01 61",       /* UNSUBSCRIBE: QoS -1 */
        "08 13 33 00 01 00 01 00", /* SUBACK: retain, topic id type 0b11 */
        "04 07 8F 61",             /* WILLTOPIC: DUP, will, clean session, type 0b11 */
    };
    for (size_t i = 0; i < N_OF(hex); i++) {
        uint8_t buf[16];
        size_t n = unhex(hex[i], buf);
        struct sn_msg m;
        assert_int_equal(sn_decode(buf, n, &m), 0);
        assert_int_equal(sn_encode(&m, wire, sizeof wire), n);
        assert_memory_equal(wire, buf, n);
    }
    uint8_t buf[16];
    struct sn_msg m;
    size_t n = unhex("07 04 EF 01 00 3C 61", buf);
    assert_int_equal(sn_decode(buf, n, &m), 0);
    assert_flags(&m.u.connect.flags,
                 &(struct sn_flags){1, -1, 0, 1, 1, 3}); /* dup qos retain will clean type */
}

/* ---- flags, names, encoder refusals ---- */

static void test_flags(void **state) {
    for (int b = 0; b < 256; b++) {
        struct sn_flags f;
        sn_flags_parse((uint8_t)b, &f);
        assert_int_equal(sn_flags_byte(&f), b);
        assert_true(f.qos >= -1 && f.qos <= 2);
    }
    struct sn_flags f;
    sn_flags_parse(0x60, &f);
    assert_int_equal(f.qos, -1);
    sn_flags_parse(0x40, &f);
    assert_int_equal(f.qos, 2);
    assert_int_equal(sn_flags_byte(&(struct sn_flags){.dup = 1}), 0x80);
    assert_int_equal(sn_flags_byte(&(struct sn_flags){.retain = 1}), 0x10);
    assert_int_equal(sn_flags_byte(&(struct sn_flags){.will = 1}), 0x08);
    assert_int_equal(sn_flags_byte(&(struct sn_flags){.clean_session = 1}), 0x04);
    assert_int_equal(sn_flags_byte(&(struct sn_flags){.qos = -1, .topic_id_type = 2}), 0x62);
}

static void test_names(void **state) {
    assert_string_equal(sn_type_name(SN_ADVERTISE), "ADVERTISE");
    assert_string_equal(sn_type_name(SN_PUBLISH), "PUBLISH");
    assert_string_equal(sn_type_name(SN_WILLMSGRESP), "WILLMSGRESP");
    assert_string_equal(sn_type_name(SN_ENCAPSULATED), "ENCAPSULATED");
    assert_string_equal(sn_type_name(0x03), "UNKNOWN");
    assert_string_equal(sn_type_name(0x1E), "UNKNOWN");
    assert_string_equal(sn_type_name(0xFF), "UNKNOWN");
    int named = 0;
    for (int t = 0; t < 256; t++)
        named += strcmp(sn_type_name((uint8_t)t), "UNKNOWN") != 0;
    assert_int_equal(named, 28);
    const char *seen[8] = {0};
    for (int e = SN_E_TRAILING; e <= SN_E_SHORT; e++) {
        const char *s = sn_strerror(e);
        assert_non_null(s);
        for (int k = 0; k < 8; k++)
            assert_true(!seen[k] || strcmp(seen[k], s) != 0); /* all distinct */
        seen[-e] = s;
    }
    assert_non_null(sn_strerror(-99));
}

/* What the decoder would reject, the encoder refuses to write. */
static void test_encode_refuses(void **state) {
    static const uint8_t nested[] = {0x03, 0xFE, 0x00, 0x02, 0x17};
    const struct sn_msg no[] = {
        MSG(.type = 0x03),
        MSG(.type = 0xFF),
        MSG(.type = SN_CONNECT, .u.connect = {.protocol_id = 0, .client_id = S("x")}),
        MSG(.type = SN_CONNECT, .u.connect = {.protocol_id = 1}),
        MSG(.type = SN_CONNECT, .u.connect = {.protocol_id = 1, .client_id = {NULL, 3}}),
        MSG(.type = SN_CONNACK, .u.resp = {.rc = 4}),
        MSG(.type = SN_REGACK, .u.regack = {.rc = 0x80}),
        MSG(.type = SN_PUBACK, .u.puback = {.rc = 0xFF}),
        MSG(.type = SN_SUBACK, .u.suback = {.rc = 4}),
        MSG(.type = SN_SUBACK, .u.suback = {.flags = {.qos = -1}}),
        MSG(.type = SN_PUBLISH, .u.publish = {.flags = {.qos = 3}}),
        MSG(.type = SN_PUBLISH, .u.publish = {.flags = {.qos = -2}}),
        MSG(.type = SN_PUBLISH, .u.publish = {.flags = {.topic_id_type = 3}}),
        MSG(.type = SN_PUBLISH, .u.publish = {.flags = {.topic_id_type = 4}}),
        MSG(.type = SN_SUBSCRIBE, .u.subscribe = {.flags = {.qos = -1}, .topic_name = S("a")}),
        MSG(.type = SN_SUBSCRIBE, .u.subscribe = {.msg_id = 1}),
        MSG(.type = SN_UNSUBSCRIBE, .u.subscribe = {.flags = {.topic_id_type = 3}}),
        MSG(.type = SN_REGISTER, .u.reg = {.msg_id = 1}),
        MSG(.type = SN_WILLTOPIC, .u.willtopic = {.flags = {.qos = 1}}),
        MSG(.type = SN_WILLTOPICUPD, .u.willtopic = {.flags = {.qos = -1}, .topic = S("t")}),
        MSG(.type = SN_ENCAPSULATED, .u.encap = {.radius = 4, .inner = S("\x02\x17")}),
        MSG(.type = SN_ENCAPSULATED),
        MSG(.type = SN_ENCAPSULATED, .u.encap = {.inner = S("\x03\x17")}),
        MSG(.type = SN_ENCAPSULATED, .u.encap = {.inner = {nested, sizeof nested}}),
        MSG(.type = SN_ENCAPSULATED, .u.encap = {.inner = {NULL, 2}}),
    };
    for (size_t i = 0; i < N_OF(no); i++)
        if (sn_encode(&no[i], wire, sizeof wire) != 0)
            fail_msg("row %zu (%s) was encoded", i, sn_type_name(no[i].type));
}

static void test_encode_cap(void **state) {
    struct sn_msg m = MSG(.type = SN_PINGRESP);
    assert_int_equal(sn_encode(&m, NULL, 0), 0);
    assert_int_equal(sn_encode(&m, wire, 1), 0);
    assert_int_equal(sn_encode(&m, wire, 2), 2);
    m = MSG(.type = SN_ENCAPSULATED,
            .u.encap = {.wireless_node_id = S("\x01"), .inner = S("\x02\x17")});
    assert_int_equal(sn_encode(&m, wire, 5), 0);
    assert_int_equal(sn_encode(&m, wire, 6), 6);
    assert_memory_equal(wire, "\x04\xFE\x00\x01\x02\x17", 6);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rt_every_type),
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_encapsulated_inner),
        cmocka_unit_test(test_zero_copy),
        cmocka_unit_test(test_long_form),
        cmocka_unit_test(test_long_form_short_message),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_unused_flags_kept),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_encode_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
