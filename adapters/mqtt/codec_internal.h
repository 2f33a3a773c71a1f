/* codec_internal.h - private pieces shared by the MQTT codec's source files.
 *
 * codec.c (framing, helpers, decode), codec_encode.c and codec_props.c (the v5
 * property table) all read packets through the bounded reader below and write
 * them through the unchecked writers, so every bounds decision lives here. Not part
 * of the adapter's contract: include codec.h instead.
 */
#ifndef PG_MQTT_CODEC_INTERNAL_H
#define PG_MQTT_CODEC_INTERNAL_H

#include "adapters/mqtt/codec.h"

#include <string.h>

/* Property contexts are packet types (1..15) plus the CONNECT will properties,
 * which have an allowed set of their own. */
#define MQTT_CTX_WILL 0

/* A size that cannot go on the wire (a string over 65535 bytes, a sub id over the
 * VBI range). It exceeds MQTT_MAX_REMAINING, so adding it to any packet size makes
 * the encoder refuse the packet, and sums of a few of them cannot overflow. */
#define MQTT_UNENCODABLE ((uint64_t)MQTT_MAX_REMAINING + 1)

#define MQTT_TRY(expr)                                                                             \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_)                                                                                   \
            return rc_;                                                                            \
    } while (0)

/* Every read checks the bound, so a short packet is always Malformed and decode
 * never looks past the packet the framer delimited. */
struct mqtt_rd {
    const uint8_t *p;
    const uint8_t *end;
};

static inline size_t rd_left(const struct mqtt_rd *r) {
    return (size_t)(r->end - r->p);
}

static inline int rd_u8(struct mqtt_rd *r, uint8_t *v) {
    if (r->p >= r->end)
        return MQTT_RC_MALFORMED;
    *v = *r->p++;
    return 0;
}

static inline int rd_u16(struct mqtt_rd *r, uint16_t *v) {
    if (rd_left(r) < 2)
        return MQTT_RC_MALFORMED;
    *v = (uint16_t)(r->p[0] << 8 | r->p[1]);
    r->p += 2;
    return 0;
}

static inline int rd_u32(struct mqtt_rd *r, uint32_t *v) {
    if (rd_left(r) < 4)
        return MQTT_RC_MALFORMED;
    *v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
    r->p += 4;
    return 0;
}

/* Non-minimal encodings are accepted, as most brokers do; only a 5th byte is not. */
static inline int rd_varint(struct mqtt_rd *r, uint32_t *v) {
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t b;
        MQTT_TRY(rd_u8(r, &b));
        x |= (uint32_t)(b & 0x7F) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return MQTT_RC_MALFORMED;
}

/* Binary Data: 2-byte length then bytes. */
static inline int rd_bin(struct mqtt_rd *r, mqtt_str *s) {
    uint16_t n;
    MQTT_TRY(rd_u16(r, &n));
    if (rd_left(r) < n)
        return MQTT_RC_MALFORMED;
    s->p = r->p;
    s->len = n;
    r->p += n;
    return 0;
}

/* UTF-8 Encoded String: Binary Data that must also be well-formed (1.5.4). */
static inline int rd_str(struct mqtt_rd *r, mqtt_str *s) {
    MQTT_TRY(rd_bin(r, s));
    return mqtt_utf8_valid(s->p, s->len) ? 0 : MQTT_RC_MALFORMED;
}

/* Writers do no bounds checks: the encoder sizes the packet before writing. */
static inline uint8_t *wr_u8(uint8_t *w, uint8_t v) {
    *w = v;
    return w + 1;
}

static inline uint8_t *wr_u16(uint8_t *w, uint16_t v) {
    w[0] = (uint8_t)(v >> 8);
    w[1] = (uint8_t)v;
    return w + 2;
}

static inline uint8_t *wr_u32(uint8_t *w, uint32_t v) {
    w[0] = (uint8_t)(v >> 24);
    w[1] = (uint8_t)(v >> 16);
    w[2] = (uint8_t)(v >> 8);
    w[3] = (uint8_t)v;
    return w + 4;
}

static inline uint8_t *wr_bytes(uint8_t *w, const uint8_t *p, size_t n) {
    if (n) /* p may be NULL for an absent field, and memcpy(NULL) is undefined */
        memcpy(w, p, n);
    return w + n;
}

static inline uint8_t *wr_str(uint8_t *w, mqtt_str s) {
    return wr_bytes(wr_u16(w, (uint16_t)s.len), s.p, s.len);
}

static inline uint64_t str_size(mqtt_str s) {
    return s.len > 0xFFFF ? MQTT_UNENCODABLE : 2 + (uint64_t)s.len;
}

/* codec_props.c. A property block on the wire is a VBI length then the properties;
 * mqtt_props_size() is the size of the properties alone, mqtt_props_write() writes
 * the length too. */
int mqtt_props_read(struct mqtt_rd *r, int ctx, struct mqtt_props *out);
uint64_t mqtt_props_size(const struct mqtt_props *p, int ctx);
uint8_t *mqtt_props_write(uint8_t *w, const struct mqtt_props *p, int ctx, uint32_t size);

#endif
