/* codec.c - MQTT 3.1 / 3.1.1 / 5.0 framing, decoding and the shared helpers.
 *
 * The adapter calls mqtt_frame() on its receive buffer until a whole packet is
 * there, then mqtt_decode() on exactly that packet. Decode is zero-copy and strict:
 * every rule the specs phrase as MUST for a receiver yields a reason code here, so
 * the adapter only has to check what needs session state (topic alias mappings,
 * packet id use, authorization). Encoding lives in codec_encode.c and the v5
 * property table in codec_props.c.
 *
 * Error classes: v5 distinguishes Malformed Packet from Protocol Error; v3.1.1 has
 * neither code and calls both "close the connection", so rules that v5 classes as
 * protocol errors are reported as MQTT_RC_MALFORMED for v3 connections.
 */
#include "adapters/mqtt/codec_internal.h"

/* ---- framing and Variable Byte Integers ---- */

/* Reads the fixed header. Returns 1 with *hdr (header bytes) and *rem set, 0 when
 * the Variable Byte Integer is not all there yet, or -MQTT_RC_MALFORMED. */
static int fixed_header(const uint8_t *buf, size_t len, uint32_t *hdr, uint32_t *rem) {
    uint32_t v = 0;
    for (uint32_t i = 1;; i++) {
        if (i > 4) /* the 4th byte had its continuation bit set */
            return -MQTT_RC_MALFORMED;
        if (i >= len)
            return 0;
        v |= (uint32_t)(buf[i] & 0x7F) << (7 * (i - 1));
        if (!(buf[i] & 0x80)) {
            *hdr = i + 1;
            *rem = v;
            return 1;
        }
    }
}

int mqtt_frame(const uint8_t *buf, size_t len, uint32_t max_packet, uint32_t *pkt_len) {
    uint32_t hdr, rem;
    int rc = fixed_header(buf, len, &hdr, &rem);
    if (rc <= 0)
        return rc;
    uint32_t total = hdr + rem; /* at most 5 + MQTT_MAX_REMAINING: no overflow */
    if (max_packet && total > max_packet)
        return -MQTT_RC_PACKET_TOO_LARGE;
    *pkt_len = total;
    return len >= total;
}

size_t mqtt_varint_size(uint32_t v) {
    return v < 128u ? 1 : v < 16384u ? 2 : v < 2097152u ? 3 : 4;
}

size_t mqtt_varint_write(uint8_t *dst, uint32_t v) {
    size_t n = 0;
    do {
        uint8_t b = v & 0x7F;
        v >>= 7;
        dst[n++] = v ? b | 0x80 : b;
    } while (v && n < 4);
    return n;
}

/* ---- UTF-8 and topics ---- */

/* Length of the leading run of whole 8-byte blocks of NUL-free ASCII: topics are
 * nearly always ASCII, so this is the common path. */
static size_t ascii_run(const uint8_t *s, size_t len) {
    const uint64_t hi = 0x8080808080808080ull, lo = 0x0101010101010101ull;
    size_t i = 0;
    for (; len - i >= 8; i += 8) {
        uint64_t v;
        memcpy(&v, s + i, 8);
        if ((v & hi) | ((v - lo) & ~v & hi)) /* a high bit, or a zero byte */
            break;
    }
    return i;
}

/* Length of the multi-byte sequence at s, or 0 if it is not well-formed: a bad
 * lead or continuation byte, truncation, an overlong form, a surrogate or a code
 * point past U+10FFFF (RFC 3629, MQTT 1.5.4). */
static size_t utf8_seq(const uint8_t *s, size_t left) {
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    uint8_t c = s[0];
    size_t n = c >= 0xC2 && c <= 0xDF ? 2 : (c & 0xF0) == 0xE0 ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!n || left < n)
        return 0;
    uint32_t cp = c & (0x7F >> n);
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3F);
    }
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

int mqtt_utf8_valid(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        i += ascii_run(s + i, len - i);
        if (i == len)
            break;
        if (s[i] < 0x80) {
            if (s[i] == 0) /* U+0000 is forbidden (MQTT-1.5.4-2) */
                return 0;
            i++;
            continue;
        }
        size_t n = utf8_seq(s + i, len - i);
        if (!n)
            return 0;
        i += n;
    }
    return 1;
}

static int has_wildcard(const uint8_t *s, size_t len) {
    return memchr(s, '+', len) || memchr(s, '#', len);
}

int mqtt_topic_name_valid(const uint8_t *s, size_t len) {
    return len > 0 && !has_wildcard(s, len) && mqtt_utf8_valid(s, len);
}

/* '+' must fill a whole level; '#' must fill the whole last level. */
static int wildcards_placed(const uint8_t *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '+' && s[i] != '#')
            continue;
        if (i > 0 && s[i - 1] != '/')
            return 0;
        if (s[i] == '#')
            return i + 1 == len;
        if (i + 1 < len && s[i + 1] != '/')
            return 0;
    }
    return 1;
}

/* $share/NAME/FILTER (4.8.2): NAME is non-empty without '/', '+' or '#', and
 * FILTER is a valid non-shared filter. Otherwise the trie would store a group under
 * a filter it can never match correctly. */
static int shared_filter_valid(const uint8_t *s, size_t len) {
    const uint8_t *name = s + 7, *end = s + len;
    const uint8_t *slash = memchr(name, '/', (size_t)(end - name));
    if (!slash || slash == name || has_wildcard(name, (size_t)(slash - name)))
        return 0;
    size_t flen = (size_t)(end - slash - 1);
    return flen > 0 && wildcards_placed(slash + 1, flen);
}

int mqtt_topic_filter_valid(const uint8_t *s, size_t len) {
    if (len == 0 || !mqtt_utf8_valid(s, len))
        return 0;
    if (len >= 7 && memcmp(s, "$share/", 7) == 0)
        return shared_filter_valid(s, len);
    return wildcards_placed(s, len);
}

/* ---- reason codes ---- */

static int proto_err(uint8_t version) {
    return version == MQTT_V5 ? MQTT_RC_PROTOCOL_ERROR : MQTT_RC_MALFORMED;
}

/* The reason codes each v5 packet may carry (section 2.4 and each packet's
 * reason code table); anything else is a Protocol Error. */
static const uint8_t rc_connack[] = {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
                                     0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
                                     0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
static const uint8_t rc_puback[] = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
static const uint8_t rc_pubrel[] = {0x00, 0x92};
static const uint8_t rc_suback[] = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87,
                                    0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
static const uint8_t rc_unsuback[] = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
static const uint8_t rc_disconnect[] = {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D,
                                        0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
                                        0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2};
static const uint8_t rc_auth[] = {0x00, 0x18, 0x19};
static const uint8_t rc_v3_connack[] = {0, 1, 2, 3, 4, 5};
static const uint8_t rc_v3_suback[] = {0x00, 0x01, 0x02, 0x80};

struct rc_set {
    const uint8_t *codes;
    uint8_t n;
};
#define RC_SET(a)                                                                                  \
    { a, sizeof a }

static const struct rc_set v5_reasons[16] = {
    [MQTT_CONNACK] = RC_SET(rc_connack),   [MQTT_PUBACK] = RC_SET(rc_puback),
    [MQTT_PUBREC] = RC_SET(rc_puback),     [MQTT_PUBREL] = RC_SET(rc_pubrel),
    [MQTT_PUBCOMP] = RC_SET(rc_pubrel),    [MQTT_SUBACK] = RC_SET(rc_suback),
    [MQTT_UNSUBACK] = RC_SET(rc_unsuback), [MQTT_DISCONNECT] = RC_SET(rc_disconnect),
    [MQTT_AUTH] = RC_SET(rc_auth),
};
static const struct rc_set v3_reasons[16] = {
    [MQTT_CONNACK] = RC_SET(rc_v3_connack),
    [MQTT_SUBACK] = RC_SET(rc_v3_suback),
};

static int reason_check(uint8_t type, uint8_t version, uint8_t rc) {
    const struct rc_set *set = version == MQTT_V5 ? &v5_reasons[type] : &v3_reasons[type];
    if (rc == 0 || !set->codes || memchr(set->codes, rc, set->n))
        return 0;
    return proto_err(version);
}

/* ---- decode, one function per packet shape ---- */

typedef int (*decode_fn)(struct mqtt_rd *r, uint8_t version, struct mqtt_packet *pk);

static int protocol_known(mqtt_str name, uint8_t level) {
    if (name.len == 4 && memcmp(name.p, "MQTT", 4) == 0)
        return level == MQTT_V311 || level == MQTT_V5;
    return name.len == 6 && memcmp(name.p, "MQIsdp", 6) == 0 && level == MQTT_V31;
}

static int connect_flags(struct mqtt_connect *c, uint8_t f) {
    c->clean_start = (f >> 1) & 1;
    c->will_flag = (f >> 2) & 1;
    c->will_qos = (f >> 3) & 3;
    c->will_retain = (f >> 5) & 1;
    c->has_password = (f >> 6) & 1;
    c->has_username = (f >> 7) & 1;
    if (f & 0x01) /* reserved (MQTT-3.1.2-3) */
        return MQTT_RC_MALFORMED;
    if (c->will_qos == 3 || (!c->will_flag && (c->will_qos || c->will_retain)))
        return MQTT_RC_MALFORMED;
    /* 3.1.1 requires a user name with a password (MQTT-3.1.2-22); 5.0 dropped that */
    if (c->version != MQTT_V5 && c->has_password && !c->has_username)
        return MQTT_RC_MALFORMED;
    return 0;
}

/* Receivers publish their reply to the Response Topic, so it must be a usable
 * topic name (MQTT-3.3.2-14, 3.1.3.2.5). The spec names no code: it is data the
 * protocol does not allow, hence a Protocol Error. */
static int response_topic_check(const struct mqtt_props *p) {
    if (MQTT_HAS(p, MQTT_PROP_RESPONSE_TOPIC) &&
        !mqtt_topic_name_valid(p->response_topic.p, p->response_topic.len))
        return MQTT_RC_PROTOCOL_ERROR;
    return 0;
}

static int connect_will(struct mqtt_rd *r, struct mqtt_connect *c) {
    if (c->version == MQTT_V5) {
        MQTT_TRY(mqtt_props_read(r, MQTT_CTX_WILL, &c->will_props));
        MQTT_TRY(response_topic_check(&c->will_props));
    }
    MQTT_TRY(rd_str(r, &c->will_topic));
    MQTT_TRY(rd_bin(r, &c->will_payload));
    /* The will is published under this name, so it obeys the PUBLISH rules. */
    if (c->will_topic.len == 0 || has_wildcard(c->will_topic.p, c->will_topic.len))
        return MQTT_RC_TOPIC_NAME_INVALID;
    return 0;
}

static int decode_connect(struct mqtt_rd *r, uint8_t unused, struct mqtt_packet *pk) {
    struct mqtt_connect *c = &pk->u.connect;
    mqtt_str name;
    uint8_t flags;
    MQTT_TRY(rd_bin(r, &name));
    MQTT_TRY(rd_u8(r, &c->version));
    if (!protocol_known(name, c->version))
        return MQTT_RC_UNSUPPORTED_VERSION;
    MQTT_TRY(rd_u8(r, &flags));
    MQTT_TRY(connect_flags(c, flags));
    MQTT_TRY(rd_u16(r, &c->keepalive));
    if (c->version == MQTT_V5) {
        MQTT_TRY(mqtt_props_read(r, MQTT_CONNECT, &c->props));
        if (MQTT_HAS(&c->props, MQTT_PROP_AUTH_DATA) && !MQTT_HAS(&c->props, MQTT_PROP_AUTH_METHOD))
            return MQTT_RC_PROTOCOL_ERROR;
    }
    MQTT_TRY(rd_str(r, &c->client_id));
    if (c->will_flag)
        MQTT_TRY(connect_will(r, c));
    if (c->has_username)
        MQTT_TRY(rd_str(r, &c->username));
    if (c->has_password)
        MQTT_TRY(rd_bin(r, &c->password));
    return 0;
}

static int decode_connack(struct mqtt_rd *r, uint8_t version, struct mqtt_packet *pk) {
    struct mqtt_connack *a = &pk->u.connack;
    uint8_t flags;
    MQTT_TRY(rd_u8(r, &flags));
    MQTT_TRY(rd_u8(r, &a->reason));
    if (flags & 0xFE)
        return MQTT_RC_MALFORMED;
    a->session_present = flags;
    if (version == MQTT_V5) {
        MQTT_TRY(mqtt_props_read(r, MQTT_CONNACK, &a->props));
        if (a->session_present && a->reason) /* MQTT-3.2.2-6 */
            return MQTT_RC_PROTOCOL_ERROR;
    }
    return reason_check(MQTT_CONNACK, version, a->reason);
}

static int decode_publish(struct mqtt_rd *r, uint8_t version, struct mqtt_packet *pk) {
    struct mqtt_publish *m = &pk->u.publish;
    m->dup = (pk->flags >> 3) & 1;
    m->qos = (pk->flags >> 1) & 3;
    m->retain = pk->flags & 1;
    if (m->qos == 3 || (m->dup && m->qos == 0))
        return MQTT_RC_MALFORMED;
    MQTT_TRY(rd_str(r, &m->topic));
    if (m->qos) {
        MQTT_TRY(rd_u16(r, &m->packet_id));
        if (!m->packet_id)
            return proto_err(version);
    }
    if (version == MQTT_V5) {
        MQTT_TRY(mqtt_props_read(r, MQTT_PUBLISH, &m->props));
        MQTT_TRY(response_topic_check(&m->props));
    }
    m->payload.p = r->p;
    m->payload.len = (uint32_t)rd_left(r);
    r->p = r->end;
    /* An empty name is only meaningful with a v5 topic alias (MQTT-3.3.2-8). */
    if (m->topic.len == 0)
        return MQTT_HAS(&m->props, MQTT_PROP_TOPIC_ALIAS) ? 0 : proto_err(version);
    return has_wildcard(m->topic.p, m->topic.len) ? MQTT_RC_TOPIC_NAME_INVALID : 0;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP. In v5 the reason and properties may be cut
 * off from the end (3.4.2.1): 2 bytes = success, 3 = reason only. */
static int decode_ack(struct mqtt_rd *r, uint8_t version, struct mqtt_packet *pk) {
    struct mqtt_ack *a = &pk->u.ack;
    MQTT_TRY(rd_u16(r, &a->packet_id));
    if (!a->packet_id)
        return proto_err(version);
    if (version == MQTT_V5 && rd_left(r)) {
        MQTT_TRY(rd_u8(r, &a->reason));
        if (rd_left(r))
            MQTT_TRY(mqtt_props_read(r, pk->type, &a->props));
    }
    return reason_check(pk->type, version, a->reason);
}

static int sub_options_check(mqtt_str filter, uint8_t o, uint8_t version) {
    if (version != MQTT_V5) /* 3.1.1 has only the QoS bits (MQTT-3-8.3-4) */
        return (o & 0xFC) || MQTT_SUBOPT_QOS(o) == 3 ? MQTT_RC_MALFORMED : 0;
    if (o & 0xC0)
        return MQTT_RC_MALFORMED;
    if (MQTT_SUBOPT_QOS(o) == 3 || MQTT_SUBOPT_RH(o) == 3)
        return MQTT_RC_PROTOCOL_ERROR;
    /* No Local on a shared subscription is a Protocol Error (MQTT-3.8.3-4). */
    if ((o & MQTT_SUBOPT_NO_LOCAL) && filter.len >= 7 && memcmp(filter.p, "$share/", 7) == 0)
        return MQTT_RC_PROTOCOL_ERROR;
    return 0;
}

/* Filters are checked for UTF-8 only: whether each one is an acceptable filter is
 * answered per filter in the SUBACK/UNSUBACK, by the adapter. */
static int decode_entries(struct mqtt_rd *r, uint8_t version, struct mqtt_packet *pk) {
    struct mqtt_subscribe *s = &pk->u.subscribe;
    s->entries = r->p;
    s->entries_len = (uint32_t)rd_left(r);
    while (rd_left(r)) {
        mqtt_str filter;
        uint8_t opts;
        MQTT_TRY(rd_str(r, &filter));
        if (pk->type == MQTT_SUBSCRIBE) {
            MQTT_TRY(rd_u8(r, &opts));
            MQTT_TRY(sub_options_check(filter, opts, version));
        }
        s->count++;
    }
    return s->count ? 0 : proto_err(version); /* MQTT-3.8.3-2, MQTT-3.10.3-2 */
}

/* SUBSCRIBE and UNSUBSCRIBE. */
static int decode_subscribe(struct mqtt_rd *r, uint8_t version, struct mqtt_packet *pk) {
    struct mqtt_subscribe *s = &pk->u.subscribe;
    MQTT_TRY(rd_u16(r, &s->packet_id));
    if (version == MQTT_V5)
        MQTT_TRY(mqtt_props_read(r, pk->type, &s->props));
    int rc = decode_entries(r, version, pk);
    /* A Malformed entry outranks a zero packet id, which only needs a parse. */
    return rc ? rc : s->packet_id ? 0 : proto_err(version);
}

/* SUBACK and UNSUBACK. A 3.1.1 UNSUBACK is just the packet id. */
static int decode_suback(struct mqtt_rd *r, uint8_t version, struct mqtt_packet *pk) {
    struct mqtt_suback *s = &pk->u.suback;
    MQTT_TRY(rd_u16(r, &s->packet_id));
    if (!s->packet_id)
        return proto_err(version);
    if (version != MQTT_V5 && pk->type == MQTT_UNSUBACK)
        return 0;
    if (version == MQTT_V5)
        MQTT_TRY(mqtt_props_read(r, pk->type, &s->props));
    s->reasons = r->p;
    s->count = (uint32_t)rd_left(r);
    r->p = r->end;
    if (!s->count)
        return proto_err(version);
    for (uint32_t i = 0; i < s->count; i++)
        MQTT_TRY(reason_check(pk->type, version, s->reasons[i]));
    return 0;
}

static int decode_empty(struct mqtt_rd *r, uint8_t version, struct mqtt_packet *pk) {
    return 0; /* PINGREQ, PINGRESP, v3 DISCONNECT: the trailing check does the work */
}

/* DISCONNECT and AUTH: in v5 an empty body means success (3.14.2.1, 3.15.2.1). */
static int decode_reason_only(struct mqtt_rd *r, uint8_t version, struct mqtt_packet *pk) {
    struct mqtt_reason_only *d = &pk->u.disconnect;
    if (version != MQTT_V5 || !rd_left(r))
        return 0;
    MQTT_TRY(rd_u8(r, &d->reason));
    if (rd_left(r))
        MQTT_TRY(mqtt_props_read(r, pk->type, &d->props));
    return reason_check(pk->type, version, d->reason);
}

static const decode_fn decoders[16] = {
    [MQTT_CONNECT] = decode_connect,  [MQTT_CONNACK] = decode_connack,
    [MQTT_PUBLISH] = decode_publish,  [MQTT_PUBACK] = decode_ack,
    [MQTT_PUBREC] = decode_ack,       [MQTT_PUBREL] = decode_ack,
    [MQTT_PUBCOMP] = decode_ack,      [MQTT_SUBSCRIBE] = decode_subscribe,
    [MQTT_SUBACK] = decode_suback,    [MQTT_UNSUBSCRIBE] = decode_subscribe,
    [MQTT_UNSUBACK] = decode_suback,  [MQTT_PINGREQ] = decode_empty,
    [MQTT_PINGRESP] = decode_empty,   [MQTT_DISCONNECT] = decode_reason_only,
    [MQTT_AUTH] = decode_reason_only,
};

/* Fixed-header flags (2.1.3): PUBREL, SUBSCRIBE and UNSUBSCRIBE carry 0b0010,
 * PUBLISH its own bits, everything else 0. */
static int flags_ok(uint8_t type, uint8_t flags) {
    if (type == MQTT_PUBLISH)
        return 1;
    if (type == MQTT_PUBREL || type == MQTT_SUBSCRIBE || type == MQTT_UNSUBSCRIBE)
        return flags == 0x2;
    return flags == 0;
}

int mqtt_decode(const uint8_t *pkt, uint32_t len, uint8_t version, struct mqtt_packet *out) {
    uint32_t hdr, rem;
    memset(out, 0, sizeof *out);
    if (fixed_header(pkt, len, &hdr, &rem) != 1 || (uint64_t)hdr + rem != len)
        return MQTT_RC_MALFORMED;
    out->type = pkt[0] >> 4;
    out->flags = pkt[0] & 0x0F;
    if (!decoders[out->type] || !flags_ok(out->type, out->flags))
        return MQTT_RC_MALFORMED;
    if (out->type == MQTT_AUTH && version != MQTT_V5)
        return MQTT_RC_MALFORMED;
    struct mqtt_rd r = {pkt + hdr, pkt + len};
    MQTT_TRY(decoders[out->type](&r, version, out));
    return r.p == r.end ? 0 : MQTT_RC_MALFORMED;
}

/* ---- iterators over decoded SUBSCRIBE / UNSUBSCRIBE entries ---- */

static int entry_next(const struct mqtt_subscribe *s, uint32_t *cursor, mqtt_str *filter,
                      uint8_t *options) {
    if (!s->entries || *cursor >= s->entries_len)
        return 0;
    struct mqtt_rd r = {s->entries + *cursor, s->entries + s->entries_len};
    if (rd_bin(&r, filter) || (options && rd_u8(&r, options))) {
        *cursor = s->entries_len;
        return 0;
    }
    *cursor = (uint32_t)(r.p - s->entries);
    return 1;
}

int mqtt_sub_next(const struct mqtt_subscribe *s, uint32_t *cursor, mqtt_str *filter,
                  uint8_t *options) {
    uint8_t scratch;
    return entry_next(s, cursor, filter, options ? options : &scratch);
}

int mqtt_unsub_next(const struct mqtt_subscribe *s, uint32_t *cursor, mqtt_str *filter) {
    return entry_next(s, cursor, filter, NULL);
}
