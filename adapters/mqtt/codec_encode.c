/* codec_encode.c - MQTT 3.1 / 3.1.1 / 5.0 packet encoding.
 *
 * mqtt_encode() runs once per delivered message, so it allocates nothing and
 * touches the input twice at most: a sizing pass (which also caches the property
 * block sizes) and a writing pass into the caller's buffer. Each packet shape has a
 * size and a write function. The encoder derives the fixed-header flags itself and
 * drops whatever the target version or packet type cannot carry (v5 properties for
 * v3, a property the packet type does not allow), so its output is always valid.
 */
#include "adapters/mqtt/codec_internal.h"

/* What sizing learns and writing reuses. */
struct enc {
    uint8_t first;       /* fixed header byte */
    uint8_t has_reason;  /* v5 ack/DISCONNECT/AUTH: the reason byte is written */
    uint8_t has_props;   /* ... and so is the property block */
    uint32_t props;      /* property block contents, without the length */
    uint32_t will_props; /* the same for the CONNECT will */
};

typedef uint64_t (*size_fn)(const struct mqtt_packet *p, uint8_t v, struct enc *e);
typedef uint8_t *(*write_fn)(const struct mqtt_packet *p, uint8_t v, const struct enc *e,
                             uint8_t *w);

/* Size of a v5 property block with its length (1 when empty); 0 for v3. */
static uint64_t props_block(const struct mqtt_props *pr, uint8_t v, int ctx, uint32_t *inner) {
    *inner = 0;
    if (v != MQTT_V5)
        return 0;
    if (!pr->present && !pr->n_sub_ids && !pr->user_pairs_len) /* the common delivery */
        return 1;
    uint64_t n = mqtt_props_size(pr, ctx);
    if (n > MQTT_MAX_REMAINING)
        return MQTT_UNENCODABLE;
    *inner = (uint32_t)n;
    return mqtt_varint_size(*inner) + n;
}

static uint8_t *write_props(uint8_t *w, const struct mqtt_props *pr, uint8_t v, int ctx,
                            uint32_t inner) {
    if (v != MQTT_V5)
        return w;
    return inner ? mqtt_props_write(w, pr, ctx, inner) : wr_u8(w, 0);
}

/* ---- CONNECT ---- */

static const uint8_t name_v31[] = {0, 6, 'M', 'Q', 'I', 's', 'd', 'p'};
static const uint8_t name_mqtt[] = {0, 4, 'M', 'Q', 'T', 'T'};

static uint64_t connect_size(const struct mqtt_packet *p, uint8_t v, struct enc *e) {
    const struct mqtt_connect *c = &p->u.connect;
    if (v < MQTT_V31 || v > MQTT_V5 || c->will_qos > 2)
        return MQTT_UNENCODABLE;
    uint64_t n = (v == MQTT_V31 ? sizeof name_v31 : sizeof name_mqtt) + 1 + 1 + 2;
    n += props_block(&c->props, v, MQTT_CONNECT, &e->props) + str_size(c->client_id);
    if (c->will_flag) {
        n += props_block(&c->will_props, v, MQTT_CTX_WILL, &e->will_props);
        n += str_size(c->will_topic) + str_size(c->will_payload);
    }
    if (c->has_username)
        n += str_size(c->username);
    if (c->has_password)
        n += str_size(c->password);
    return n;
}

static uint8_t connect_flags_byte(const struct mqtt_connect *c) {
    uint8_t f = (uint8_t)((c->has_username ? 0x80 : 0) | (c->has_password ? 0x40 : 0) |
                          (c->clean_start ? 0x02 : 0));
    if (c->will_flag)
        f |= (uint8_t)(0x04 | c->will_qos << 3 | (c->will_retain ? 0x20 : 0));
    return f;
}

static uint8_t *connect_write(const struct mqtt_packet *p, uint8_t v, const struct enc *e,
                              uint8_t *w) {
    const struct mqtt_connect *c = &p->u.connect;
    w = v == MQTT_V31 ? wr_bytes(w, name_v31, sizeof name_v31)
                      : wr_bytes(w, name_mqtt, sizeof name_mqtt);
    w = wr_u8(w, v);
    w = wr_u8(w, connect_flags_byte(c));
    w = wr_u16(w, c->keepalive);
    w = write_props(w, &c->props, v, MQTT_CONNECT, e->props);
    w = wr_str(w, c->client_id);
    if (c->will_flag) {
        w = write_props(w, &c->will_props, v, MQTT_CTX_WILL, e->will_props);
        w = wr_str(wr_str(w, c->will_topic), c->will_payload);
    }
    if (c->has_username)
        w = wr_str(w, c->username);
    if (c->has_password)
        w = wr_str(w, c->password);
    return w;
}

/* ---- CONNACK ---- */

static uint64_t connack_size(const struct mqtt_packet *p, uint8_t v, struct enc *e) {
    return 2 + props_block(&p->u.connack.props, v, MQTT_CONNACK, &e->props);
}

static uint8_t *connack_write(const struct mqtt_packet *p, uint8_t v, const struct enc *e,
                              uint8_t *w) {
    const struct mqtt_connack *a = &p->u.connack;
    /* 3.1 had no session present flag: the whole byte is reserved there. */
    w = wr_u8(w, v == MQTT_V31 ? 0 : a->session_present & 1);
    w = wr_u8(w, a->reason);
    return write_props(w, &a->props, v, MQTT_CONNACK, e->props);
}

/* ---- PUBLISH (the hot path) ---- */

static uint64_t publish_size(const struct mqtt_packet *p, uint8_t v, struct enc *e) {
    const struct mqtt_publish *m = &p->u.publish;
    if (m->qos > 2)
        return MQTT_UNENCODABLE;
    /* DUP is meaningless, and Malformed, on QoS 0 (MQTT-3.3.1-2). */
    e->first |= (uint8_t)((m->qos && m->dup ? 0x08 : 0) | m->qos << 1 | (m->retain & 1));
    return str_size(m->topic) + (m->qos ? 2 : 0) +
           props_block(&m->props, v, MQTT_PUBLISH, &e->props) + m->payload.len;
}

static uint8_t *publish_write(const struct mqtt_packet *p, uint8_t v, const struct enc *e,
                              uint8_t *w) {
    const struct mqtt_publish *m = &p->u.publish;
    w = wr_str(w, m->topic);
    if (m->qos)
        w = wr_u16(w, m->packet_id);
    w = write_props(w, &m->props, v, MQTT_PUBLISH, e->props);
    return wr_bytes(w, m->payload.p, m->payload.len);
}

/* ---- the reason-code tails of acks, DISCONNECT and AUTH ---- */

/* v5 lets the end be cut off: no properties and then a success reason may be
 * omitted (3.4.2.1, 3.14.2.1). Returns the size of what is kept. */
static uint64_t reason_tail_size(const struct mqtt_props *pr, uint8_t reason, uint8_t v, int ctx,
                                 struct enc *e) {
    uint64_t block = props_block(pr, v, ctx, &e->props);
    if (v != MQTT_V5)
        return 0;
    e->has_props = block > 1;
    e->has_reason = reason || e->has_props;
    return e->has_reason + (e->has_props ? block : 0);
}

static uint8_t *reason_tail_write(uint8_t *w, const struct mqtt_props *pr, uint8_t reason, int ctx,
                                  const struct enc *e) {
    if (e->has_reason)
        w = wr_u8(w, reason);
    return e->has_props ? mqtt_props_write(w, pr, ctx, e->props) : w;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
static uint64_t ack_size(const struct mqtt_packet *p, uint8_t v, struct enc *e) {
    return 2 + reason_tail_size(&p->u.ack.props, p->u.ack.reason, v, p->type, e);
}

static uint8_t *ack_write(const struct mqtt_packet *p, uint8_t v, const struct enc *e, uint8_t *w) {
    w = wr_u16(w, p->u.ack.packet_id);
    return reason_tail_write(w, &p->u.ack.props, p->u.ack.reason, p->type, e);
}

/* DISCONNECT and AUTH; AUTH does not exist before v5. */
static uint64_t reason_only_size(const struct mqtt_packet *p, uint8_t v, struct enc *e) {
    if (p->type == MQTT_AUTH && v != MQTT_V5)
        return MQTT_UNENCODABLE;
    return reason_tail_size(&p->u.disconnect.props, p->u.disconnect.reason, v, p->type, e);
}

static uint8_t *reason_only_write(const struct mqtt_packet *p, uint8_t v, const struct enc *e,
                                  uint8_t *w) {
    return reason_tail_write(w, &p->u.disconnect.props, p->u.disconnect.reason, p->type, e);
}

/* ---- SUBSCRIBE / UNSUBSCRIBE, SUBACK / UNSUBACK ---- */

static uint64_t subscribe_size(const struct mqtt_packet *p, uint8_t v, struct enc *e) {
    const struct mqtt_subscribe *s = &p->u.subscribe;
    return 2 + props_block(&s->props, v, p->type, &e->props) + s->entries_len;
}

static uint8_t *subscribe_write(const struct mqtt_packet *p, uint8_t v, const struct enc *e,
                                uint8_t *w) {
    const struct mqtt_subscribe *s = &p->u.subscribe;
    w = wr_u16(w, s->packet_id);
    w = write_props(w, &s->props, v, p->type, e->props);
    return wr_bytes(w, s->entries, s->entries_len);
}

static uint64_t suback_size(const struct mqtt_packet *p, uint8_t v, struct enc *e) {
    const struct mqtt_suback *s = &p->u.suback;
    if (v != MQTT_V5 && p->type == MQTT_UNSUBACK) /* no payload before v5 */
        return 2;
    return 2 + props_block(&s->props, v, p->type, &e->props) + s->count;
}

/* v3 SUBACK knows only the granted QoS and 0x80, which stands for any refusal. */
static uint8_t v3_suback_code(uint8_t rc) {
    return rc <= MQTT_RC_GRANTED_QOS2 ? rc : 0x80;
}

static uint8_t *suback_write(const struct mqtt_packet *p, uint8_t v, const struct enc *e,
                             uint8_t *w) {
    const struct mqtt_suback *s = &p->u.suback;
    w = wr_u16(w, s->packet_id);
    if (v != MQTT_V5 && p->type == MQTT_UNSUBACK)
        return w;
    w = write_props(w, &s->props, v, p->type, e->props);
    if (v == MQTT_V5)
        return wr_bytes(w, s->reasons, s->count);
    for (uint32_t i = 0; i < s->count; i++)
        w = wr_u8(w, v3_suback_code(s->reasons[i]));
    return w;
}

/* ---- PINGREQ / PINGRESP ---- */

static uint64_t empty_size(const struct mqtt_packet *p, uint8_t v, struct enc *e) {
    return 0;
}

static uint8_t *empty_write(const struct mqtt_packet *p, uint8_t v, const struct enc *e,
                            uint8_t *w) {
    return w;
}

static const struct {
    size_fn size;
    write_fn write;
} encoders[16] = {
    [MQTT_CONNECT] = {connect_size, connect_write},
    [MQTT_CONNACK] = {connack_size, connack_write},
    [MQTT_PUBLISH] = {publish_size, publish_write},
    [MQTT_PUBACK] = {ack_size, ack_write},
    [MQTT_PUBREC] = {ack_size, ack_write},
    [MQTT_PUBREL] = {ack_size, ack_write},
    [MQTT_PUBCOMP] = {ack_size, ack_write},
    [MQTT_SUBSCRIBE] = {subscribe_size, subscribe_write},
    [MQTT_SUBACK] = {suback_size, suback_write},
    [MQTT_UNSUBSCRIBE] = {subscribe_size, subscribe_write},
    [MQTT_UNSUBACK] = {suback_size, suback_write},
    [MQTT_PINGREQ] = {empty_size, empty_write},
    [MQTT_PINGRESP] = {empty_size, empty_write},
    [MQTT_DISCONNECT] = {reason_only_size, reason_only_write},
    [MQTT_AUTH] = {reason_only_size, reason_only_write},
};

size_t mqtt_encode(const struct mqtt_packet *p, uint8_t version, uint8_t *dst, size_t cap) {
    if (p->type >= 16 || !encoders[p->type].size)
        return 0;
    struct enc e = {.first = (uint8_t)(p->type << 4)};
    if (p->type == MQTT_PUBREL || p->type == MQTT_SUBSCRIBE || p->type == MQTT_UNSUBSCRIBE)
        e.first |= 0x02; /* reserved bits fixed by 2.1.3 */
    uint64_t rem = encoders[p->type].size(p, version, &e);
    if (rem > MQTT_MAX_REMAINING)
        return 0;
    size_t total = 1 + mqtt_varint_size((uint32_t)rem) + (size_t)rem;
    if (total > cap)
        return total;
    dst[0] = e.first;
    uint8_t *w = dst + 1 + mqtt_varint_write(dst + 1, (uint32_t)rem);
    encoders[p->type].write(p, version, &e, w);
    return total;
}
