/* fuzz_sn_codec.c - libFuzzer target for the MQTT-SN codec (adapters/mqttsn/sn_codec.h).
 *
 * Decodes the input as one datagram. Whatever decodes must re-encode to the input's
 * own bytes (the decoder keeps every bit, so only the length field may change: a
 * short message sent in the 3-octet form comes back in the 1-octet form), decode
 * again to the same fields, and re-encode to the same bytes. An encapsulation's
 * inner message must decode on its own and survive the same round trip. Every
 * buffer is sized exactly so ASan sees any overrun.
 *
 *   clang -std=gnu11 -g -O1 -I. -fsanitize=fuzzer,address,undefined \
 *       -o build-fuzz/fuzz_sn_codec tests/fuzz/fuzz_sn_codec.c adapters/mqttsn/sn_codec.c
 *   build-fuzz/fuzz_sn_codec tests/fuzz/corpus/sn_codec -max_total_time=60
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/mqttsn/sn_codec.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static uint8_t *copy_of(const uint8_t *p, size_t n) {
    uint8_t *c = malloc(n ? n : 1);
    if (n)
        memcpy(c, p, n);
    return c;
}

static int same_str(sn_str a, sn_str b) {
    return a.len == b.len && (!a.len || memcmp(a.p, b.p, a.len) == 0);
}

static int same_flags(const struct sn_flags *a, const struct sn_flags *b) {
    return a->dup == b->dup && a->qos == b->qos && a->retain == b->retain && a->will == b->will &&
           a->clean_session == b->clean_session && a->topic_id_type == b->topic_id_type;
}

/* Decoded strings point into the datagram (zero-copy), or are empty without a pointer. */
static int inside(sn_str s, const uint8_t *buf, size_t len) {
    if (!s.len)
        return s.p == NULL;
    return s.p >= buf && s.len <= len && (size_t)(s.p - buf) <= len - s.len;
}

static int same_subscribe(const struct sn_msg *a, const struct sn_msg *b) {
    const typeof(a->u.subscribe) *x = &a->u.subscribe, *y = &b->u.subscribe;
    return same_flags(&x->flags, &y->flags) && x->msg_id == y->msg_id &&
           same_str(x->topic_name, y->topic_name) && x->topic_id == y->topic_id;
}

/* Field by field; decode zeroes what a message does not carry, so all fields compare. */
static int same_msg(const struct sn_msg *a, const struct sn_msg *b) {
    const typeof(a->u) *x = &a->u, *y = &b->u;
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case SN_ADVERTISE:
        return x->advertise.gw_id == y->advertise.gw_id &&
               x->advertise.duration == y->advertise.duration;
    case SN_SEARCHGW:
        return x->searchgw.radius == y->searchgw.radius;
    case SN_GWINFO:
        return x->gwinfo.gw_id == y->gwinfo.gw_id && same_str(x->gwinfo.gw_add, y->gwinfo.gw_add);
    case SN_CONNECT:
        return same_flags(&x->connect.flags, &y->connect.flags) &&
               x->connect.protocol_id == y->connect.protocol_id &&
               x->connect.duration == y->connect.duration &&
               same_str(x->connect.client_id, y->connect.client_id);
    case SN_CONNACK:
    case SN_WILLTOPICRESP:
    case SN_WILLMSGRESP:
        return x->resp.rc == y->resp.rc;
    case SN_WILLTOPIC:
    case SN_WILLTOPICUPD:
        return x->willtopic.empty == y->willtopic.empty &&
               same_flags(&x->willtopic.flags, &y->willtopic.flags) &&
               same_str(x->willtopic.topic, y->willtopic.topic);
    case SN_WILLMSG:
    case SN_WILLMSGUPD:
        return same_str(x->willmsg.msg, y->willmsg.msg);
    case SN_REGISTER:
        return x->reg.topic_id == y->reg.topic_id && x->reg.msg_id == y->reg.msg_id &&
               same_str(x->reg.topic, y->reg.topic);
    case SN_REGACK:
        return x->regack.topic_id == y->regack.topic_id && x->regack.msg_id == y->regack.msg_id &&
               x->regack.rc == y->regack.rc;
    case SN_PUBLISH:
        return same_flags(&x->publish.flags, &y->publish.flags) &&
               x->publish.topic_id == y->publish.topic_id &&
               x->publish.msg_id == y->publish.msg_id && same_str(x->publish.data, y->publish.data);
    case SN_PUBACK:
        return x->puback.topic_id == y->puback.topic_id && x->puback.msg_id == y->puback.msg_id &&
               x->puback.rc == y->puback.rc;
    case SN_PUBREC:
    case SN_PUBREL:
    case SN_PUBCOMP:
    case SN_UNSUBACK:
        return x->ack.msg_id == y->ack.msg_id;
    case SN_SUBSCRIBE:
    case SN_UNSUBSCRIBE:
        return same_subscribe(a, b);
    case SN_SUBACK:
        return same_flags(&x->suback.flags, &y->suback.flags) &&
               x->suback.topic_id == y->suback.topic_id && x->suback.msg_id == y->suback.msg_id &&
               x->suback.rc == y->suback.rc;
    case SN_PINGREQ:
        return same_str(x->pingreq.client_id, y->pingreq.client_id);
    case SN_DISCONNECT:
        return x->disconnect.has_duration == y->disconnect.has_duration &&
               x->disconnect.duration == y->disconnect.duration;
    case SN_ENCAPSULATED:
        return x->encap.radius == y->encap.radius &&
               same_str(x->encap.wireless_node_id, y->encap.wireless_node_id) &&
               same_str(x->encap.inner, y->encap.inner);
    case SN_WILLTOPICREQ:
    case SN_WILLMSGREQ:
    case SN_PINGRESP:
        return 1;
    }
    return 0; /* decode never returns a type it does not know */
}

static void check_zero_copy(const struct sn_msg *m, const uint8_t *buf, size_t len) {
    const typeof(m->u) *u = &m->u;
    switch (m->type) {
    case SN_GWINFO:
        CHECK(inside(u->gwinfo.gw_add, buf, len));
        break;
    case SN_CONNECT:
        CHECK(inside(u->connect.client_id, buf, len) && u->connect.client_id.len > 0);
        CHECK(u->connect.protocol_id == 0x01);
        break;
    case SN_WILLTOPIC:
    case SN_WILLTOPICUPD:
        CHECK(inside(u->willtopic.topic, buf, len));
        CHECK((u->willtopic.topic.len > 0) != u->willtopic.empty);
        break;
    case SN_WILLMSG:
    case SN_WILLMSGUPD:
        CHECK(inside(u->willmsg.msg, buf, len));
        break;
    case SN_REGISTER:
        CHECK(inside(u->reg.topic, buf, len) && u->reg.topic.len > 0);
        break;
    case SN_PUBLISH:
        CHECK(inside(u->publish.data, buf, len) && u->publish.flags.topic_id_type != 3);
        break;
    case SN_SUBSCRIBE:
    case SN_UNSUBSCRIBE:
        CHECK(inside(u->subscribe.topic_name, buf, len));
        CHECK((u->subscribe.topic_name.len > 0) ==
              (u->subscribe.flags.topic_id_type == SN_TOPIC_NORMAL));
        break;
    case SN_PINGREQ:
        CHECK(inside(u->pingreq.client_id, buf, len));
        break;
    case SN_ENCAPSULATED:
        CHECK(inside(u->encap.wireless_node_id, buf, len) && inside(u->encap.inner, buf, len));
        CHECK(u->encap.inner.len >= 2 && u->encap.radius <= 3);
        break;
    }
}

/* Re-encodes a decoded message: the input's own bytes, up to the length form. */
static uint8_t *reencode(const struct sn_msg *m, const uint8_t *in, size_t len, size_t *out_len) {
    uint8_t *tmp = malloc(len);
    size_t n = sn_encode(m, tmp, len);
    CHECK(n == len || (in[0] == 0x01 && n + 2 == len));
    if (n == len)
        CHECK(memcmp(tmp, in, len) == 0);
    else /* the 1-octet length field replaced the 3-octet one */
        CHECK(tmp[0] != 0x01 && memcmp(tmp + 1, in + 3, n - 1) == 0);
    uint8_t *out = malloc(n);
    CHECK(sn_encode(m, out, n - 1) == 0);
    CHECK(sn_encode(m, out, n) == n);
    CHECK(memcmp(out, tmp, n) == 0);
    free(tmp);
    *out_len = n;
    return out;
}

static void roundtrip(const struct sn_msg *m, const uint8_t *in, size_t len) {
    size_t n1, n2;
    uint8_t *e1 = reencode(m, in, len, &n1);
    struct sn_msg q;
    CHECK(sn_decode(e1, n1, &q) == 0);
    CHECK(same_msg(m, &q));
    uint8_t *e2 = reencode(&q, e1, n1, &n2);
    CHECK(n2 == n1 && memcmp(e1, e2, n1) == 0);
    free(e1);
    free(e2);
}

static void check_inner(const struct sn_msg *outer) {
    uint8_t *buf = copy_of(outer->u.encap.inner.p, outer->u.encap.inner.len);
    size_t len = outer->u.encap.inner.len;
    struct sn_msg m;
    CHECK(sn_decode(buf, len, &m) == 0);
    CHECK(m.type != SN_ENCAPSULATED);
    check_zero_copy(&m, buf, len);
    roundtrip(&m, buf, len);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = copy_of(data, size);
    struct sn_msg m;
    int rc = sn_decode(buf, size, &m);
    CHECK(rc <= 0 && rc >= SN_E_TRAILING);
    CHECK(sn_strerror(rc) != NULL && sn_type_name(m.type) != NULL);
    if (rc == 0) {
        check_zero_copy(&m, buf, size);
        roundtrip(&m, buf, size);
        if (m.type == SN_ENCAPSULATED)
            check_inner(&m);
    }
    free(buf);
    if (size) {
        struct sn_flags f;
        sn_flags_parse(data[0], &f);
        CHECK(sn_flags_byte(&f) == data[0]);
    }
    return 0;
}
