/* sn_codec.c - MQTT-SN v1.2 message decoding and encoding.
 *
 * A datagram carries exactly one message (spec 5.1), so there is no framing:
 * sn_decode() checks the header against the datagram's size and hands the rest to
 * the message type's decode function, which reads through a bounded reader and, for
 * messages of fixed size, ends by checking that nothing is left over. sn_encode()
 * runs the type's encode function twice, first only counting bytes (which is also
 * where it refuses whatever the decoder would reject, so its output always decodes),
 * then writing. Both directions share one table of types below.
 *
 * Where the spec leaves room, this codec chooses:
 *  - The 3-octet length form (5.2.1) is accepted for any length. The spec needs it
 *    only from 256 bytes up but does not forbid it below, and some clients always
 *    use one form; the encoder always picks the shorter one.
 *  - Flags a message type does not use are ignored, not rejected: the spec calls
 *    them "not used", not reserved. They are kept in the decoded struct, so a
 *    re-encode reproduces the byte. The reserved values of the flags a type does use
 *    are rejected: topic id type 0b11, and QoS 0b11 (-1) anywhere but PUBLISH.
 *  - Return codes 0x04..0xFF are reserved (5.3.10) and rejected.
 *  - Topic names in REGISTER and (UN)SUBSCRIBE and the client id in CONNECT must
 *    not be empty; a WILLTOPIC(UPD) with Flags but no topic is neither the empty
 *    (delete) form nor a will, so it is rejected too.
 *  - The Forwarder Encapsulation's Length covers its own header only (5.5); the
 *    encapsulated message follows with a length field of its own and must decode
 *    too. Nesting encapsulations is refused (a forwarder wraps client messages),
 *    which also bounds the recursion. Ctrl's reserved bits (7..2) must be 0; the
 *    Wireless Node Id may be empty, since the spec gives it no minimum.
 */
#include "adapters/mqttsn/sn_codec.h"

#include <string.h>

#define SN_PROTOCOL_ID 0x01
#define SN_LONG_FORM   0x01   /* a first octet announcing the 3-octet length form */
#define SN_SHORT_MAX   255u   /* the largest length the 1-octet form can hold */
#define SN_MAX_LEN     65535u /* the largest the 3-octet form can hold */
#define SN_CTRL_RADIUS 0x03   /* Ctrl's radius bits; the others are reserved */

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_)                                                                                   \
            return rc_;                                                                            \
    } while (0)

/* ---- flags (5.3.4) ---- */

uint8_t sn_flags_byte(const struct sn_flags *f) {
    return (uint8_t)((f->dup ? 0x80 : 0) | (f->qos & 0x03) << 5 | (f->retain ? 0x10 : 0) |
                     (f->will ? 0x08 : 0) | (f->clean_session ? 0x04 : 0) |
                     (f->topic_id_type & 0x03));
}

void sn_flags_parse(uint8_t b, struct sn_flags *f) {
    uint8_t qos = (b >> 5) & 0x03;
    f->dup = b >> 7;
    f->qos = qos == 3 ? -1 : (int8_t)qos;
    f->retain = (b >> 4) & 1;
    f->will = (b >> 3) & 1;
    f->clean_session = (b >> 2) & 1;
    f->topic_id_type = b & 0x03;
}

/* The types whose figures in 5.4 give QoS, or TopicIdType, a meaning. */
static int uses_qos(uint8_t type) {
    return type == SN_PUBLISH || type == SN_SUBSCRIBE || type == SN_SUBACK ||
           type == SN_WILLTOPIC || type == SN_WILLTOPICUPD;
}

static int uses_topic_id_type(uint8_t type) {
    return type == SN_PUBLISH || type == SN_SUBSCRIBE || type == SN_UNSUBSCRIBE;
}

/* QoS -1 only exists for publishing without a connection (6.8), and topic id
 * type 0b11 is reserved. */
static int flags_check(uint8_t type, const struct sn_flags *f) {
    if (uses_qos(type) && f->qos == -1 && type != SN_PUBLISH)
        return SN_E_FLAGS;
    if (uses_topic_id_type(type) && f->topic_id_type == 3)
        return SN_E_FLAGS;
    return 0;
}

static int rc_check(uint8_t rc) {
    return rc <= SN_RC_NOT_SUPPORTED ? 0 : SN_E_FIELD;
}

static int nonempty(sn_str s) {
    return s.len ? 0 : SN_E_FIELD;
}

/* Empty strings carry no pointer, so decoded structs compare field by field. */
static sn_str str_at(const uint8_t *p, size_t len) {
    return (sn_str){len ? p : NULL, len};
}

/* ---- decoding ---- */

/* Every read checks the bound: a message shorter than its type needs is
 * SN_E_SHORT, and nothing past the datagram is ever read. */
struct rd {
    const uint8_t *p;
    const uint8_t *end;
};

static size_t rd_left(const struct rd *r) {
    return (size_t)(r->end - r->p);
}

static int rd_u8(struct rd *r, uint8_t *v) {
    if (r->p >= r->end)
        return SN_E_SHORT;
    *v = *r->p++;
    return 0;
}

static int rd_u16(struct rd *r, uint16_t *v) {
    if (rd_left(r) < 2)
        return SN_E_SHORT;
    *v = (uint16_t)(r->p[0] << 8 | r->p[1]);
    r->p += 2;
    return 0;
}

static int rd_flags(struct rd *r, uint8_t type, struct sn_flags *f) {
    uint8_t b;
    TRY(rd_u8(r, &b));
    sn_flags_parse(b, f);
    return flags_check(type, f);
}

/* The last field of a variable-size message: whatever is left. */
static sn_str rd_rest(struct rd *r) {
    sn_str s = str_at(r->p, rd_left(r));
    r->p = r->end;
    return s;
}

/* Messages of fixed size end here. */
static int rd_end(const struct rd *r) {
    return r->p == r->end ? 0 : SN_E_TRAILING;
}

typedef int (*decode_fn)(struct rd *r, struct sn_msg *m);

static int dec_advertise(struct rd *r, struct sn_msg *m) {
    TRY(rd_u8(r, &m->u.advertise.gw_id));
    TRY(rd_u16(r, &m->u.advertise.duration));
    return rd_end(r);
}

static int dec_searchgw(struct rd *r, struct sn_msg *m) {
    TRY(rd_u8(r, &m->u.searchgw.radius));
    return rd_end(r);
}

static int dec_gwinfo(struct rd *r, struct sn_msg *m) {
    TRY(rd_u8(r, &m->u.gwinfo.gw_id));
    m->u.gwinfo.gw_add = rd_rest(r);
    return 0;
}

static int dec_connect(struct rd *r, struct sn_msg *m) {
    TRY(rd_flags(r, m->type, &m->u.connect.flags));
    TRY(rd_u8(r, &m->u.connect.protocol_id));
    TRY(rd_u16(r, &m->u.connect.duration));
    m->u.connect.client_id = rd_rest(r);
    if (m->u.connect.protocol_id != SN_PROTOCOL_ID)
        return SN_E_FIELD;
    return nonempty(m->u.connect.client_id);
}

static int dec_resp(struct rd *r, struct sn_msg *m) {
    TRY(rd_u8(r, &m->u.resp.rc));
    TRY(rd_end(r));
    return rc_check(m->u.resp.rc);
}

static int dec_header_only(struct rd *r, struct sn_msg *m) {
    (void)m;
    return rd_end(r);
}

/* Exactly 2 bytes (no Flags, no topic) is the empty form that deletes the will. */
static int dec_willtopic(struct rd *r, struct sn_msg *m) {
    if (!rd_left(r)) {
        m->u.willtopic.empty = 1;
        return 0;
    }
    TRY(rd_flags(r, m->type, &m->u.willtopic.flags));
    m->u.willtopic.topic = rd_rest(r);
    return nonempty(m->u.willtopic.topic);
}

static int dec_willmsg(struct rd *r, struct sn_msg *m) {
    m->u.willmsg.msg = rd_rest(r);
    return 0;
}

static int dec_register(struct rd *r, struct sn_msg *m) {
    TRY(rd_u16(r, &m->u.reg.topic_id));
    TRY(rd_u16(r, &m->u.reg.msg_id));
    m->u.reg.topic = rd_rest(r);
    return nonempty(m->u.reg.topic);
}

/* REGACK and PUBACK: TopicId, MsgId, ReturnCode. */
static int dec_id_rc(struct rd *r, uint16_t *topic_id, uint16_t *msg_id, uint8_t *rc) {
    TRY(rd_u16(r, topic_id));
    TRY(rd_u16(r, msg_id));
    TRY(rd_u8(r, rc));
    TRY(rd_end(r));
    return rc_check(*rc);
}

static int dec_regack(struct rd *r, struct sn_msg *m) {
    return dec_id_rc(r, &m->u.regack.topic_id, &m->u.regack.msg_id, &m->u.regack.rc);
}

static int dec_puback(struct rd *r, struct sn_msg *m) {
    return dec_id_rc(r, &m->u.puback.topic_id, &m->u.puback.msg_id, &m->u.puback.rc);
}

static int dec_publish(struct rd *r, struct sn_msg *m) {
    TRY(rd_flags(r, m->type, &m->u.publish.flags));
    TRY(rd_u16(r, &m->u.publish.topic_id));
    TRY(rd_u16(r, &m->u.publish.msg_id));
    m->u.publish.data = rd_rest(r);
    return 0;
}

static int dec_ack(struct rd *r, struct sn_msg *m) {
    TRY(rd_u16(r, &m->u.ack.msg_id));
    return rd_end(r);
}

/* SUBSCRIBE and UNSUBSCRIBE: a topic name, or a 2-byte predefined id or short name. */
static int dec_subscribe(struct rd *r, struct sn_msg *m) {
    TRY(rd_flags(r, m->type, &m->u.subscribe.flags));
    TRY(rd_u16(r, &m->u.subscribe.msg_id));
    if (m->u.subscribe.flags.topic_id_type == SN_TOPIC_NORMAL) {
        m->u.subscribe.topic_name = rd_rest(r);
        return nonempty(m->u.subscribe.topic_name);
    }
    TRY(rd_u16(r, &m->u.subscribe.topic_id));
    return rd_end(r);
}

static int dec_suback(struct rd *r, struct sn_msg *m) {
    TRY(rd_flags(r, m->type, &m->u.suback.flags));
    TRY(rd_u16(r, &m->u.suback.topic_id));
    TRY(rd_u16(r, &m->u.suback.msg_id));
    TRY(rd_u8(r, &m->u.suback.rc));
    TRY(rd_end(r));
    return rc_check(m->u.suback.rc);
}

static int dec_pingreq(struct rd *r, struct sn_msg *m) {
    m->u.pingreq.client_id = rd_rest(r);
    return 0;
}

static int dec_disconnect(struct rd *r, struct sn_msg *m) {
    if (!rd_left(r))
        return 0;
    m->u.disconnect.has_duration = 1;
    TRY(rd_u16(r, &m->u.disconnect.duration));
    return rd_end(r);
}

/* ---- encoding ---- */

/* With p == NULL the writer only counts, which is how sn_encode sizes a message
 * with the same code that writes it. */
struct wr {
    uint8_t *p;
    size_t n;
};

static void put_u8(struct wr *w, uint8_t v) {
    if (w->p)
        w->p[w->n] = v;
    w->n++;
}

static void put_u16(struct wr *w, uint16_t v) {
    put_u8(w, (uint8_t)(v >> 8));
    put_u8(w, (uint8_t)v);
}

static void put_str(struct wr *w, sn_str s) {
    if (w->p && s.len)
        memcpy(w->p + w->n, s.p, s.len);
    w->n += s.len;
}

/* Refuses strings without bytes behind them and strings no message can hold (which
 * also keeps the size sums from overflowing). */
static int str_check(sn_str s) {
    return (s.len && !s.p) || s.len > SN_MAX_LEN ? SN_E_FIELD : 0;
}

static int put_rest(struct wr *w, sn_str s) {
    TRY(str_check(s));
    put_str(w, s);
    return 0;
}

/* Values the two wire bits cannot hold, then what the decoder would refuse. */
static int put_flags(struct wr *w, uint8_t type, const struct sn_flags *f) {
    if (f->qos < -1 || f->qos > 2 || f->topic_id_type > 3)
        return SN_E_FLAGS;
    TRY(flags_check(type, f));
    put_u8(w, sn_flags_byte(f));
    return 0;
}

/* The length field's form for a message whose type and fields take `rest` bytes. */
static size_t length_size(size_t rest) {
    return rest + 1 <= SN_SHORT_MAX ? 1 : 3;
}

static void put_length(struct wr *w, size_t length) {
    if (length <= SN_SHORT_MAX) {
        put_u8(w, (uint8_t)length);
        return;
    }
    put_u8(w, SN_LONG_FORM);
    put_u16(w, (uint16_t)length);
}

typedef int (*encode_fn)(const struct sn_msg *m, struct wr *w);

static int enc_advertise(const struct sn_msg *m, struct wr *w) {
    put_u8(w, m->u.advertise.gw_id);
    put_u16(w, m->u.advertise.duration);
    return 0;
}

static int enc_searchgw(const struct sn_msg *m, struct wr *w) {
    put_u8(w, m->u.searchgw.radius);
    return 0;
}

static int enc_gwinfo(const struct sn_msg *m, struct wr *w) {
    put_u8(w, m->u.gwinfo.gw_id);
    return put_rest(w, m->u.gwinfo.gw_add);
}

static int enc_connect(const struct sn_msg *m, struct wr *w) {
    if (m->u.connect.protocol_id != SN_PROTOCOL_ID)
        return SN_E_FIELD;
    TRY(nonempty(m->u.connect.client_id));
    TRY(put_flags(w, m->type, &m->u.connect.flags));
    put_u8(w, m->u.connect.protocol_id);
    put_u16(w, m->u.connect.duration);
    return put_rest(w, m->u.connect.client_id);
}

static int enc_resp(const struct sn_msg *m, struct wr *w) {
    TRY(rc_check(m->u.resp.rc));
    put_u8(w, m->u.resp.rc);
    return 0;
}

static int enc_header_only(const struct sn_msg *m, struct wr *w) {
    (void)m;
    (void)w;
    return 0;
}

static int enc_willtopic(const struct sn_msg *m, struct wr *w) {
    if (m->u.willtopic.empty)
        return 0;
    TRY(nonempty(m->u.willtopic.topic));
    TRY(put_flags(w, m->type, &m->u.willtopic.flags));
    return put_rest(w, m->u.willtopic.topic);
}

static int enc_willmsg(const struct sn_msg *m, struct wr *w) {
    return put_rest(w, m->u.willmsg.msg);
}

static int enc_register(const struct sn_msg *m, struct wr *w) {
    TRY(nonempty(m->u.reg.topic));
    put_u16(w, m->u.reg.topic_id);
    put_u16(w, m->u.reg.msg_id);
    return put_rest(w, m->u.reg.topic);
}

static int enc_id_rc(struct wr *w, uint16_t topic_id, uint16_t msg_id, uint8_t rc) {
    TRY(rc_check(rc));
    put_u16(w, topic_id);
    put_u16(w, msg_id);
    put_u8(w, rc);
    return 0;
}

static int enc_regack(const struct sn_msg *m, struct wr *w) {
    return enc_id_rc(w, m->u.regack.topic_id, m->u.regack.msg_id, m->u.regack.rc);
}

static int enc_puback(const struct sn_msg *m, struct wr *w) {
    return enc_id_rc(w, m->u.puback.topic_id, m->u.puback.msg_id, m->u.puback.rc);
}

static int enc_publish(const struct sn_msg *m, struct wr *w) {
    TRY(put_flags(w, m->type, &m->u.publish.flags));
    put_u16(w, m->u.publish.topic_id);
    put_u16(w, m->u.publish.msg_id);
    return put_rest(w, m->u.publish.data);
}

static int enc_ack(const struct sn_msg *m, struct wr *w) {
    put_u16(w, m->u.ack.msg_id);
    return 0;
}

static int enc_subscribe(const struct sn_msg *m, struct wr *w) {
    TRY(put_flags(w, m->type, &m->u.subscribe.flags));
    put_u16(w, m->u.subscribe.msg_id);
    if (m->u.subscribe.flags.topic_id_type != SN_TOPIC_NORMAL) {
        put_u16(w, m->u.subscribe.topic_id);
        return 0;
    }
    TRY(nonempty(m->u.subscribe.topic_name));
    return put_rest(w, m->u.subscribe.topic_name);
}

static int enc_suback(const struct sn_msg *m, struct wr *w) {
    TRY(rc_check(m->u.suback.rc));
    TRY(put_flags(w, m->type, &m->u.suback.flags));
    put_u16(w, m->u.suback.topic_id);
    put_u16(w, m->u.suback.msg_id);
    put_u8(w, m->u.suback.rc);
    return 0;
}

static int enc_pingreq(const struct sn_msg *m, struct wr *w) {
    return put_rest(w, m->u.pingreq.client_id);
}

static int enc_disconnect(const struct sn_msg *m, struct wr *w) {
    if (m->u.disconnect.has_duration)
        put_u16(w, m->u.disconnect.duration);
    return 0;
}

/* ---- the type table (5.2.2); gaps are the reserved types ---- */

struct sn_type_info {
    const char *name;
    decode_fn decode;
    encode_fn encode;
};

#define TYPE(t, dec, enc) [SN_##t] = {#t, dec_##dec, enc_##enc}

static const struct sn_type_info types[SN_WILLMSGRESP + 1] = {
    TYPE(ADVERTISE, advertise, advertise),
    TYPE(SEARCHGW, searchgw, searchgw),
    TYPE(GWINFO, gwinfo, gwinfo),
    TYPE(CONNECT, connect, connect),
    TYPE(CONNACK, resp, resp),
    TYPE(WILLTOPICREQ, header_only, header_only),
    TYPE(WILLTOPIC, willtopic, willtopic),
    TYPE(WILLMSGREQ, header_only, header_only),
    TYPE(WILLMSG, willmsg, willmsg),
    TYPE(REGISTER, register, register),
    TYPE(REGACK, regack, regack),
    TYPE(PUBLISH, publish, publish),
    TYPE(PUBACK, puback, puback),
    TYPE(PUBCOMP, ack, ack),
    TYPE(PUBREC, ack, ack),
    TYPE(PUBREL, ack, ack),
    TYPE(SUBSCRIBE, subscribe, subscribe),
    TYPE(SUBACK, suback, suback),
    TYPE(UNSUBSCRIBE, subscribe, subscribe),
    TYPE(UNSUBACK, ack, ack),
    TYPE(PINGREQ, pingreq, pingreq),
    TYPE(PINGRESP, header_only, header_only),
    TYPE(DISCONNECT, disconnect, disconnect),
    TYPE(WILLTOPICUPD, willtopic, willtopic),
    TYPE(WILLTOPICRESP, resp, resp),
    TYPE(WILLMSGUPD, willmsg, willmsg),
    TYPE(WILLMSGRESP, resp, resp),
};

/* NULL for the reserved types and for ENCAPSULATED, which has a header of its own. */
static const struct sn_type_info *type_info(uint8_t type) {
    if (type >= sizeof types / sizeof types[0] || !types[type].name)
        return NULL;
    return &types[type];
}

const char *sn_type_name(uint8_t type) {
    const struct sn_type_info *t = type_info(type);
    if (t)
        return t->name;
    return type == SN_ENCAPSULATED ? "ENCAPSULATED" : "UNKNOWN";
}

const char *sn_strerror(int err) {
    switch (err) {
    case 0:
        return "ok";
    case SN_E_SHORT:
        return "truncated message";
    case SN_E_LENGTH:
        return "length field disagrees with the datagram size";
    case SN_E_TYPE:
        return "unknown or reserved message type";
    case SN_E_FLAGS:
        return "reserved flag value";
    case SN_E_FIELD:
        return "field out of range";
    case SN_E_TRAILING:
        return "bytes after a fixed-size message";
    }
    return "unknown error";
}

/* ---- the header (5.2) and the Forwarder Encapsulation (5.5) ---- */

struct sn_header {
    size_t size;   /* bytes of the length field: 1 or 3 */
    size_t length; /* its value */
    uint8_t type;
};

static int read_header(const uint8_t *buf, size_t len, struct sn_header *h) {
    if (len < 2)
        return SN_E_SHORT;
    if (buf[0] != SN_LONG_FORM) {
        h->size = 1;
        h->length = buf[0];
    } else {
        if (len < 4)
            return SN_E_SHORT;
        h->size = 3;
        h->length = (size_t)buf[1] << 8 | buf[2];
    }
    h->type = buf[h->size];
    return 0;
}

/* The encapsulated message must be a whole message of its own; its type is
 * checked before decoding it so nested frames never recurse. */
static int inner_check(sn_str inner) {
    struct sn_header h;
    struct sn_msg m;
    TRY(read_header(inner.p, inner.len, &h));
    if (h.type == SN_ENCAPSULATED)
        return SN_E_TYPE;
    return sn_decode(inner.p, inner.len, &m);
}

/* Length covers Length, MsgType, Ctrl and the Wireless Node Id; the encapsulated
 * message is everything after it. */
static int decode_encap(const uint8_t *buf, size_t len, const struct sn_header *h,
                        struct sn_msg *m) {
    size_t ctrl_at = h->size + 1;
    if (h->length <= ctrl_at || h->length > len)
        return SN_E_LENGTH;
    uint8_t ctrl = buf[ctrl_at];
    if (ctrl & ~SN_CTRL_RADIUS)
        return SN_E_FLAGS;
    m->u.encap.radius = ctrl & SN_CTRL_RADIUS;
    m->u.encap.wireless_node_id = str_at(buf + ctrl_at + 1, h->length - ctrl_at - 1);
    m->u.encap.inner = str_at(buf + h->length, len - h->length);
    return inner_check(m->u.encap.inner);
}

static size_t encode_encap(const struct sn_msg *m, uint8_t *out, size_t cap) {
    sn_str node = m->u.encap.wireless_node_id, inner = m->u.encap.inner;
    if ((m->u.encap.radius & ~SN_CTRL_RADIUS) || str_check(node) || str_check(inner) ||
        inner_check(inner))
        return 0;
    size_t rest = 2 + node.len; /* MsgType, Ctrl, Wireless Node Id */
    size_t length = length_size(rest) + rest;
    if (length > SN_MAX_LEN || length + inner.len > cap)
        return 0;
    struct wr w = {out, 0};
    put_length(&w, length);
    put_u8(&w, SN_ENCAPSULATED);
    put_u8(&w, m->u.encap.radius);
    put_str(&w, node);
    put_str(&w, inner);
    return w.n;
}

/* ---- entry points ---- */

int sn_decode(const uint8_t *buf, size_t len, struct sn_msg *m) {
    struct sn_header h;
    memset(m, 0, sizeof *m);
    TRY(read_header(buf, len, &h));
    m->type = h.type;
    if (h.type == SN_ENCAPSULATED)
        return decode_encap(buf, len, &h, m);
    const struct sn_type_info *t = type_info(h.type);
    if (!t)
        return SN_E_TYPE;
    if (h.length != len)
        return SN_E_LENGTH;
    struct rd r = {buf + h.size + 1, buf + len};
    return t->decode(&r, m);
}

size_t sn_encode(const struct sn_msg *m, uint8_t *out, size_t cap) {
    if (m->type == SN_ENCAPSULATED)
        return encode_encap(m, out, cap);
    const struct sn_type_info *t = type_info(m->type);
    struct wr count = {NULL, 0};
    if (!t || t->encode(m, &count))
        return 0;
    size_t rest = 1 + count.n; /* MsgType and the fields */
    size_t length = length_size(rest) + rest;
    if (length > SN_MAX_LEN || length > cap)
        return 0;
    struct wr w = {out, 0};
    put_length(&w, length);
    put_u8(&w, m->type);
    t->encode(m, &w);
    return w.n;
}
