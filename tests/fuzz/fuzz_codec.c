/* fuzz_codec.c - libFuzzer target for the MQTT codec (adapters/mqtt/codec.h).
 *
 * Frames and decodes the input as each protocol level; whatever decodes must
 * re-encode, decode again, and re-encode to the same bytes (encoding is canonical,
 * so a second round trip is a fixed point). The iterators must agree with the
 * counts decode reported. Buffers are sized exactly so ASan sees any overrun.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. adapters/mqtt/codec*.c \
 *       tests/fuzz/fuzz_codec.c -o fuzz_codec && ./fuzz_codec -max_total_time=60
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/mqtt/codec.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

/* Decoded user properties -> the encoder's (u16 len, bytes) pair format. */
static uint8_t *user_pairs(struct mqtt_props *p, size_t cap) {
    uint8_t *buf = malloc(cap ? cap : 1);
    uint32_t cur = 0, at = 0, n = 0;
    mqtt_str k, v;
    while (mqtt_user_prop_next(p, &cur, &k, &v)) {
        mqtt_str kv[2] = {k, v};
        for (int i = 0; i < 2; i++) {
            CHECK(at + 2 + kv[i].len <= cap);
            buf[at++] = (uint8_t)(kv[i].len >> 8);
            buf[at++] = (uint8_t)kv[i].len;
            memcpy(buf + at, kv[i].p, kv[i].len);
            at += kv[i].len;
        }
        n++;
    }
    CHECK(n == p->n_user);
    p->user_pairs = buf;
    p->user_pairs_len = at;
    return buf;
}

static struct mqtt_props *props_of(struct mqtt_packet *p) {
    switch (p->type) {
    case MQTT_CONNECT:
        return &p->u.connect.props;
    case MQTT_CONNACK:
        return &p->u.connack.props;
    case MQTT_PUBLISH:
        return &p->u.publish.props;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return &p->u.ack.props;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return &p->u.subscribe.props;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        return &p->u.suback.props;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        return &p->u.disconnect.props;
    }
    return NULL;
}

static void check_entries(const struct mqtt_packet *p) {
    if (p->type != MQTT_SUBSCRIBE && p->type != MQTT_UNSUBSCRIBE)
        return;
    uint32_t cur = 0, n = 0;
    mqtt_str f;
    uint8_t o;
    while (p->type == MQTT_SUBSCRIBE ? mqtt_sub_next(&p->u.subscribe, &cur, &f, &o)
                                     : mqtt_unsub_next(&p->u.subscribe, &cur, &f)) {
        (void)mqtt_topic_filter_valid(f.p, f.len);
        n++;
    }
    CHECK(n == p->u.subscribe.count);
}

/* Encodes into an exactly sized buffer, after checking a short cap writes nothing. */
static uint8_t *encode(const struct mqtt_packet *p, uint8_t v, size_t *len) {
    size_t need = mqtt_encode(p, v, NULL, 0);
    CHECK(need >= 2);
    uint8_t *buf = malloc(need);
    CHECK(mqtt_encode(p, v, buf, need - 1) == need);
    CHECK(mqtt_encode(p, v, buf, need) == need);
    *len = need;
    return buf;
}

/* Makes a decoded packet encodable: user properties move to the pair format. */
static void prepare(struct mqtt_packet *p, size_t size, uint8_t **a, uint8_t **b) {
    struct mqtt_props *pr = props_of(p);
    *a = pr ? user_pairs(pr, size) : NULL;
    *b = p->type == MQTT_CONNECT ? user_pairs(&p->u.connect.will_props, size) : NULL;
}

static void roundtrip(struct mqtt_packet *p, uint8_t v, size_t size) {
    uint8_t *pa, *pb, *qa, *qb;
    size_t n1, n2;
    uint8_t ver = p->type == MQTT_CONNECT ? p->u.connect.version : v;
    prepare(p, size, &pa, &pb);
    uint8_t *e1 = encode(p, ver, &n1);
    uint32_t flen = 0;
    CHECK(mqtt_frame(e1, n1, 0, &flen) == 1 && flen == n1);
    struct mqtt_packet q;
    CHECK(mqtt_decode(e1, (uint32_t)n1, ver, &q) == 0);
    CHECK(q.type == p->type);
    prepare(&q, n1, &qa, &qb);
    uint8_t *e2 = encode(&q, ver, &n2);
    CHECK(n1 == n2 && memcmp(e1, e2, n1) == 0);
    free(e1);
    free(e2);
    free(pa);
    free(pb);
    free(qa);
    free(qb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint32_t len = 0;
    int fr = mqtt_frame(data, size, size > 8 ? (uint32_t)(size / 2) : 0, &len);
    CHECK(fr <= 1);
    fr = mqtt_frame(data, size, 0, &len);
    if (fr != 1)
        return 0;
    /* the framed packet alone, in a buffer of its own so reads past it are caught */
    uint8_t *pkt = malloc(len);
    memcpy(pkt, data, len);
    for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++) {
        struct mqtt_packet p;
        int rc = mqtt_decode(pkt, len, v, &p);
        CHECK(rc >= 0 && rc <= 0xFF);
        if (rc)
            continue;
        check_entries(&p);
        struct mqtt_props *pr = props_of(&p);
        CHECK(!pr || pr->n_sub_ids <= MQTT_MAX_SUB_IDS);
        roundtrip(&p, v, len);
    }
    free(pkt);
    (void)mqtt_utf8_valid(data, size);
    (void)mqtt_topic_name_valid(data, size);
    (void)mqtt_topic_filter_valid(data, size);
    return 0;
}
