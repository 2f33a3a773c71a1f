/* codec_props.c - MQTT 5.0 properties (section 2.2.2) for the codec.
 *
 * One descriptor per property identifier says how the value is typed on the wire,
 * where in struct mqtt_props it lives, which packets may carry it (table 2-4) and
 * whether 0 is a Protocol Error. Decoding, sizing and encoding are all driven by
 * that table, so adding a property is one line. User Properties and Subscription
 * Identifiers are the two that may repeat and are handled beside the table.
 */
#include "adapters/mqtt/codec_internal.h"

#include <stddef.h>

enum prop_type { PT_NONE, PT_BYTE, PT_U16, PT_U32, PT_VARINT, PT_STR, PT_BIN, PT_PAIR };

struct prop_desc {
    uint8_t type;
    uint8_t nonzero; /* a value of 0 is a Protocol Error */
    uint16_t where;  /* bit per context (packet type, or MQTT_CTX_WILL) allowed to carry it */
    uint16_t field;  /* offset of the value in struct mqtt_props */
};

#define IN(t) (1u << (t))
#define WILL  IN(MQTT_CTX_WILL)
#define PUB   IN(MQTT_PUBLISH)
#define CONN  IN(MQTT_CONNECT)
#define CACK  IN(MQTT_CONNACK)
#define DISC  IN(MQTT_DISCONNECT)
#define AUTH  IN(MQTT_AUTH)
#define ACKS                                                                                       \
    (IN(MQTT_PUBACK) | IN(MQTT_PUBREC) | IN(MQTT_PUBREL) | IN(MQTT_PUBCOMP) | IN(MQTT_SUBACK) |    \
     IN(MQTT_UNSUBACK))
#define ANY_USER                                                                                   \
    (WILL | CONN | CACK | PUB | ACKS | IN(MQTT_SUBSCRIBE) | IN(MQTT_UNSUBSCRIBE) | DISC | AUTH)

#define P(id, ty, nz, wh, fld) [id] = {ty, nz, wh, offsetof(struct mqtt_props, fld)}

static const struct prop_desc props_table[MQTT_PROP_SHARED_SUB_AVAILABLE + 1] = {
    P(MQTT_PROP_PAYLOAD_FORMAT, PT_BYTE, 0, PUB | WILL, payload_format),
    P(MQTT_PROP_MESSAGE_EXPIRY, PT_U32, 0, PUB | WILL, message_expiry),
    P(MQTT_PROP_CONTENT_TYPE, PT_STR, 0, PUB | WILL, content_type),
    P(MQTT_PROP_RESPONSE_TOPIC, PT_STR, 0, PUB | WILL, response_topic),
    P(MQTT_PROP_CORRELATION_DATA, PT_BIN, 0, PUB | WILL, correlation_data),
    P(MQTT_PROP_SUBSCRIPTION_ID, PT_VARINT, 1, PUB | IN(MQTT_SUBSCRIBE), sub_ids),
    P(MQTT_PROP_SESSION_EXPIRY, PT_U32, 0, CONN | CACK | DISC, session_expiry),
    P(MQTT_PROP_ASSIGNED_CLIENT_ID, PT_STR, 0, CACK, assigned_client_id),
    P(MQTT_PROP_SERVER_KEEP_ALIVE, PT_U16, 0, CACK, server_keep_alive),
    P(MQTT_PROP_AUTH_METHOD, PT_STR, 0, CONN | CACK | AUTH, auth_method),
    P(MQTT_PROP_AUTH_DATA, PT_BIN, 0, CONN | CACK | AUTH, auth_data),
    P(MQTT_PROP_REQUEST_PROBLEM_INFO, PT_BYTE, 0, CONN, request_problem_info),
    P(MQTT_PROP_WILL_DELAY, PT_U32, 0, WILL, will_delay),
    P(MQTT_PROP_REQUEST_RESPONSE_INFO, PT_BYTE, 0, CONN, request_response_info),
    P(MQTT_PROP_RESPONSE_INFO, PT_STR, 0, CACK, response_info),
    P(MQTT_PROP_SERVER_REFERENCE, PT_STR, 0, CACK | DISC, server_reference),
    P(MQTT_PROP_REASON_STRING, PT_STR, 0, CACK | ACKS | DISC | AUTH, reason_string),
    P(MQTT_PROP_RECEIVE_MAXIMUM, PT_U16, 1, CONN | CACK, receive_maximum),
    P(MQTT_PROP_TOPIC_ALIAS_MAXIMUM, PT_U16, 0, CONN | CACK, topic_alias_maximum),
    P(MQTT_PROP_TOPIC_ALIAS, PT_U16, 1, PUB, topic_alias),
    P(MQTT_PROP_MAXIMUM_QOS, PT_BYTE, 0, CACK, maximum_qos),
    P(MQTT_PROP_RETAIN_AVAILABLE, PT_BYTE, 0, CACK, retain_available),
    P(MQTT_PROP_USER_PROPERTY, PT_PAIR, 0, ANY_USER, n_user),
    P(MQTT_PROP_MAXIMUM_PACKET_SIZE, PT_U32, 1, CONN | CACK, maximum_packet_size),
    P(MQTT_PROP_WILDCARD_SUB_AVAILABLE, PT_BYTE, 0, CACK, wildcard_sub_available),
    P(MQTT_PROP_SUB_ID_AVAILABLE, PT_BYTE, 0, CACK, sub_id_available),
    P(MQTT_PROP_SHARED_SUB_AVAILABLE, PT_BYTE, 0, CACK, shared_sub_available),
};

#define N_PROPS (sizeof props_table / sizeof props_table[0])

/* The single-valued properties, which the encoder takes from `present`; the two
 * repeatable ones are driven by their counts instead. */
#define MULTI_BITS  ((1ull << MQTT_PROP_USER_PROPERTY) | (1ull << MQTT_PROP_SUBSCRIPTION_ID))
#define SINGLE_BITS (((1ull << N_PROPS) - 1) & ~MULTI_BITS)

static const struct prop_desc *desc_of(uint8_t id) {
    return id < N_PROPS && props_table[id].type != PT_NONE ? &props_table[id] : NULL;
}

/* Field accessors: the table stores offsets, the declared field types match. */
#define FIELD(props, d, T)  ((T *)((char *)(props) + (d)->field))
#define CFIELD(props, d, T) ((const T *)((const char *)(props) + (d)->field))

/* ---- decode ---- */

static int read_sub_id(struct mqtt_rd *r, struct mqtt_props *out) {
    uint32_t v;
    MQTT_TRY(rd_varint(r, &v));
    if (v == 0)
        return MQTT_RC_PROTOCOL_ERROR;
    /* A server PUBLISH carries one id per matching subscription; beyond what the
     * struct keeps they are dropped rather than failing a valid packet. */
    if (out->n_sub_ids < MQTT_MAX_SUB_IDS)
        out->sub_ids[out->n_sub_ids++] = v;
    return 0;
}

static int read_value(struct mqtt_rd *r, const struct prop_desc *d, struct mqtt_props *out) {
    uint8_t b;
    uint16_t h;
    uint32_t w;
    mqtt_str k, v;
    switch (d->type) {
    case PT_BYTE: /* every byte property in 5.0 is a 0/1 flag */
        MQTT_TRY(rd_u8(r, &b));
        *FIELD(out, d, uint8_t) = b;
        return b > 1 ? MQTT_RC_PROTOCOL_ERROR : 0;
    case PT_U16:
        MQTT_TRY(rd_u16(r, &h));
        *FIELD(out, d, uint16_t) = h;
        return d->nonzero && !h ? MQTT_RC_PROTOCOL_ERROR : 0;
    case PT_U32:
        MQTT_TRY(rd_u32(r, &w));
        *FIELD(out, d, uint32_t) = w;
        return d->nonzero && !w ? MQTT_RC_PROTOCOL_ERROR : 0;
    case PT_VARINT:
        return read_sub_id(r, out);
    case PT_STR:
        return rd_str(r, FIELD(out, d, mqtt_str));
    case PT_BIN:
        return rd_bin(r, FIELD(out, d, mqtt_str));
    case PT_PAIR:
        MQTT_TRY(rd_str(r, &k));
        MQTT_TRY(rd_str(r, &v));
        out->n_user++;
        return 0;
    }
    return MQTT_RC_MALFORMED;
}

static int may_repeat(uint8_t id, int ctx) {
    return id == MQTT_PROP_USER_PROPERTY ||
           (id == MQTT_PROP_SUBSCRIPTION_ID && ctx == MQTT_PUBLISH);
}

static int read_one(struct mqtt_rd *r, int ctx, struct mqtt_props *out) {
    uint8_t id;
    MQTT_TRY(rd_u8(r, &id));
    /* The identifier is a VBI, but every 5.0 identifier fits in one byte, so any
     * byte with the continuation bit set is an unknown identifier anyway. */
    const struct prop_desc *d = desc_of(id);
    if (!d)
        return MQTT_RC_MALFORMED;
    if (!(d->where & IN(ctx)))
        return MQTT_RC_PROTOCOL_ERROR;
    if (MQTT_HAS(out, id) && !may_repeat(id, ctx))
        return MQTT_RC_PROTOCOL_ERROR;
    MQTT_TRY(read_value(r, d, out));
    MQTT_SET(out, id);
    return 0;
}

int mqtt_props_read(struct mqtt_rd *r, int ctx, struct mqtt_props *out) {
    uint32_t len;
    MQTT_TRY(rd_varint(r, &len));
    if (len > rd_left(r))
        return MQTT_RC_MALFORMED;
    struct mqtt_rd block = {r->p, r->p + len};
    r->p += len;
    out->user_raw = block.p;
    out->user_raw_len = len;
    while (block.p < block.end)
        MQTT_TRY(read_one(&block, ctx, out));
    return 0;
}

/* Skips one value of a property block that decode has already validated. */
static int skip_value(struct mqtt_rd *r, const struct prop_desc *d) {
    size_t n = d->type == PT_BYTE ? 1 : d->type == PT_U16 ? 2 : d->type == PT_U32 ? 4 : 0;
    uint32_t v;
    mqtt_str s;
    if (n) {
        if (rd_left(r) < n)
            return MQTT_RC_MALFORMED;
        r->p += n;
        return 0;
    }
    if (d->type == PT_VARINT)
        return rd_varint(r, &v);
    if (d->type == PT_PAIR)
        MQTT_TRY(rd_bin(r, &s));
    return rd_bin(r, &s);
}

int mqtt_user_prop_next(const struct mqtt_props *props, uint32_t *cursor, mqtt_str *key,
                        mqtt_str *val) {
    if (!props->user_raw || *cursor >= props->user_raw_len)
        return 0;
    struct mqtt_rd r = {props->user_raw + *cursor, props->user_raw + props->user_raw_len};
    while (r.p < r.end) {
        uint8_t id = *r.p++;
        const struct prop_desc *d = desc_of(id);
        if (!d)
            break;
        if (id == MQTT_PROP_USER_PROPERTY) {
            if (rd_bin(&r, key) || rd_bin(&r, val))
                break;
            *cursor = (uint32_t)(r.p - props->user_raw);
            return 1;
        }
        if (skip_value(&r, d))
            break;
    }
    *cursor = props->user_raw_len;
    return 0;
}

/* ---- encode ---- */

static uint64_t value_size(const struct prop_desc *d, const struct mqtt_props *p) {
    switch (d->type) {
    case PT_BYTE:
        return 1;
    case PT_U16:
        return 2;
    case PT_U32:
        return 4;
    case PT_STR:
    case PT_BIN:
        return str_size(*CFIELD(p, d, mqtt_str));
    }
    return MQTT_UNENCODABLE;
}

static uint8_t *write_value(uint8_t *w, const struct prop_desc *d, const struct mqtt_props *p) {
    switch (d->type) {
    case PT_BYTE:
        return wr_u8(w, *CFIELD(p, d, uint8_t));
    case PT_U16:
        return wr_u16(w, *CFIELD(p, d, uint16_t));
    case PT_U32:
        return wr_u32(w, *CFIELD(p, d, uint32_t));
    default:
        return wr_str(w, *CFIELD(p, d, mqtt_str));
    }
}

/* SUBSCRIBE may carry one id; a 0 entry means "no id" (as in the trie) and is skipped. */
static uint32_t sub_ids_to_write(const struct mqtt_props *p, int ctx) {
    uint32_t n = p->n_sub_ids < MQTT_MAX_SUB_IDS ? p->n_sub_ids : MQTT_MAX_SUB_IDS;
    if (ctx == MQTT_SUBSCRIBE && n > 1)
        n = 1;
    return props_table[MQTT_PROP_SUBSCRIPTION_ID].where & IN(ctx) ? n : 0;
}

static uint64_t sub_ids_size(const struct mqtt_props *p, int ctx) {
    uint32_t n = sub_ids_to_write(p, ctx);
    uint64_t size = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t v = p->sub_ids[i];
        if (v > MQTT_MAX_SUB_ID)
            return MQTT_UNENCODABLE;
        size += v ? 1 + mqtt_varint_size(v) : 0;
    }
    return size;
}

/* Length of the pair at `off` in the user_pairs storage format, 0 if truncated. */
static uint32_t pair_len(const uint8_t *pairs, uint32_t len, uint32_t off) {
    uint32_t at = off;
    for (int i = 0; i < 2; i++) {
        if (len - at < 2)
            return 0;
        uint32_t n = (uint32_t)pairs[at] << 8 | pairs[at + 1];
        if (len - at - 2 < n)
            return 0;
        at += 2 + n;
    }
    return at - off;
}

/* On the wire each stored pair just gains the 0x26 identifier in front. */
static uint64_t user_size(const struct mqtt_props *p, int ctx) {
    uint64_t n = 0;
    if (!(props_table[MQTT_PROP_USER_PROPERTY].where & IN(ctx)) || !p->user_pairs)
        return 0;
    for (uint32_t off = 0; off < p->user_pairs_len; n++) {
        uint32_t l = pair_len(p->user_pairs, p->user_pairs_len, off);
        if (!l)
            return MQTT_UNENCODABLE;
        off += l;
    }
    return p->user_pairs_len + n;
}

uint64_t mqtt_props_size(const struct mqtt_props *p, int ctx) {
    uint64_t size = 0;
    for (uint64_t bits = p->present & SINGLE_BITS; bits; bits &= bits - 1) {
        const struct prop_desc *d = &props_table[__builtin_ctzll(bits)];
        if (d->where & IN(ctx)) /* a property the packet may not carry is left out */
            size += 1 + value_size(d, p);
    }
    return size + sub_ids_size(p, ctx) + user_size(p, ctx);
}

uint8_t *mqtt_props_write(uint8_t *w, const struct mqtt_props *p, int ctx, uint32_t size) {
    w += mqtt_varint_write(w, size);
    for (uint64_t bits = p->present & SINGLE_BITS; bits; bits &= bits - 1) {
        uint8_t id = (uint8_t)__builtin_ctzll(bits);
        const struct prop_desc *d = &props_table[id];
        if (d->where & IN(ctx))
            w = write_value(wr_u8(w, id), d, p);
    }
    uint32_t n = sub_ids_to_write(p, ctx);
    for (uint32_t i = 0; i < n; i++) {
        if (p->sub_ids[i]) {
            w = wr_u8(w, MQTT_PROP_SUBSCRIPTION_ID);
            w += mqtt_varint_write(w, p->sub_ids[i]);
        }
    }
    if (!(props_table[MQTT_PROP_USER_PROPERTY].where & IN(ctx)) || !p->user_pairs)
        return w;
    for (uint32_t off = 0; off < p->user_pairs_len;) {
        uint32_t l = pair_len(p->user_pairs, p->user_pairs_len, off);
        w = wr_bytes(wr_u8(w, MQTT_PROP_USER_PROPERTY), p->user_pairs + off, l);
        off += l;
    }
    return w;
}
