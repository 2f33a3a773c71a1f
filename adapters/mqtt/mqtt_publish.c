/* mqtt_publish.c - PUBLISH both ways, the QoS 1/2 acks, and topic aliases.
 *
 * Inbound: resolve the topic alias, check the payload format, build one broker
 * message and publish it; QoS 2 uses "deliver on PUBLISH, remember the packet id
 * until PUBREL" (MQTT 5.0 4.3.3 method B). Outbound: encode a delivery pulled
 * from the session straight into the write buffer, assigning a server topic alias
 * when the client allows them, and skipping messages larger than the client's
 * Maximum Packet Size (4.13 says to discard them).
 */
#include <stdlib.h>
#include <string.h>

#include "adapters/mqtt/conn.h"
#include "gateway/log.h"

/* ---- inbound topic aliases (client -> server) ---- */

static int resolve_alias(struct mqtt_conn *c, struct mqtt_publish *pub) {
    if (!MQTT_HAS(&pub->props, MQTT_PROP_TOPIC_ALIAS)) {
        if (pub->topic.len == 0)
            return mqtt_fail(c, MQTT_RC_PROTOCOL_ERROR, "empty topic without alias");
        return 0;
    }
    uint16_t a = pub->props.topic_alias;
    if (a == 0 || a > c->alias_in_max)
        return mqtt_fail(c, MQTT_RC_TOPIC_ALIAS_INVALID, "topic alias out of range");
    if (!c->alias_in && !(c->alias_in = calloc((size_t)c->alias_in_max + 1, sizeof(char *))))
        return mqtt_fail(c, MQTT_RC_UNSPECIFIED, "out of memory");
    if (pub->topic.len) {
        char *t = malloc(pub->topic.len + 1);
        if (!t)
            return mqtt_fail(c, MQTT_RC_UNSPECIFIED, "out of memory");
        memcpy(t, pub->topic.p, pub->topic.len);
        t[pub->topic.len] = 0;
        free(c->alias_in[a]);
        c->alias_in[a] = t;
        return 0;
    }
    if (!c->alias_in[a])
        return mqtt_fail(c, MQTT_RC_PROTOCOL_ERROR, "unknown topic alias");
    pub->topic = (mqtt_str){(const uint8_t *)c->alias_in[a], (uint32_t)strlen(c->alias_in[a])};
    return 0;
}

void mqtt_aliases_free(struct mqtt_conn *c) {
    if (c->alias_in)
        for (unsigned i = 0; i <= c->alias_in_max; i++)
            free(c->alias_in[i]);
    free(c->alias_in);
    c->alias_in = NULL;
    for (unsigned i = 0; c->alias_out && i < c->n_alias_out; i++)
        free(c->alias_out[i].topic);
    free(c->alias_out);
    c->alias_out = NULL;
}

/* ---- inbound PUBLISH ---- */

/* Copies the v5 user properties of a decoded packet into the broker's pairs
 * format. *out is either stack (fits) or heap, freed by the caller when != stack. */
static size_t user_pairs(const struct mqtt_props *p, uint8_t *stack, size_t stack_len,
                         uint8_t **out) {
    *out = stack;
    if (!p->n_user)
        return 0;
    if (p->user_raw_len > stack_len && !(*out = malloc(p->user_raw_len)))
        return 0;
    size_t n = 0;
    uint32_t cur = 0;
    mqtt_str k, v;
    while (mqtt_user_prop_next(p, &cur, &k, &v)) {
        (*out)[n++] = (uint8_t)(k.len >> 8);
        (*out)[n++] = (uint8_t)k.len;
        memcpy(*out + n, k.p, k.len);
        n += k.len;
        (*out)[n++] = (uint8_t)(v.len >> 8);
        (*out)[n++] = (uint8_t)v.len;
        memcpy(*out + n, v.p, v.len);
        n += v.len;
    }
    return n;
}

pg_msg *mqtt_msg_from(const mqtt_str *topic, const mqtt_str *payload, int qos, int retain,
                      const struct mqtt_props *pp, int v5) {
    struct pg_msg_props props = {0};
    uint8_t stack[512], *pairs = stack;
    if (v5) {
        props.has_payload_format = MQTT_HAS(pp, MQTT_PROP_PAYLOAD_FORMAT);
        props.payload_format = pp->payload_format;
        props.has_expiry = MQTT_HAS(pp, MQTT_PROP_MESSAGE_EXPIRY);
        props.expiry_s = pp->message_expiry;
        props.content_type = (const char *)pp->content_type.p;
        props.content_type_len = pp->content_type.len;
        props.response_topic = (const char *)pp->response_topic.p;
        props.response_topic_len = pp->response_topic.len;
        props.correlation = pp->correlation_data.p;
        props.correlation_len = pp->correlation_data.len;
        props.user_props_len = user_pairs(pp, stack, sizeof stack, &pairs);
        props.user_props = pairs;
    }
    pg_msg *m = pg_msg_new((const char *)topic->p, topic->len, payload->p, payload->len, qos,
                           retain, &props);
    if (pairs != stack)
        free(pairs);
    return m;
}

static int ack_type(int qos) {
    return qos == 1 ? MQTT_PUBACK : MQTT_PUBREC;
}

/* v3 has no negative acks: a refused message is acknowledged and dropped. */
static uint8_t ack_reason(struct mqtt_conn *c, int rc) {
    if (c->version != MQTT_V5)
        return 0;
    return (uint8_t)rc;
}

static int publish_checks(struct mqtt_conn *c, struct mqtt_publish *pub) {
    if (pub->retain && !pg_broker_config(c->broker)->retain_available)
        return mqtt_fail(c, MQTT_RC_RETAIN_NOT_SUPPORTED, "retain not supported");
    if (pub->props.n_sub_ids)
        return mqtt_fail(c, MQTT_RC_PROTOCOL_ERROR, "subscription identifier in PUBLISH");
    return resolve_alias(c, pub);
}

int mqtt_on_publish(struct mqtt_conn *c, struct mqtt_packet *p) {
    struct mqtt_publish *pub = &p->u.publish;
    if (c->version != MQTT_V5)
        memset(&pub->props, 0, sizeof pub->props);
    int r = publish_checks(c, pub);
    if (r < 0 || c->closing)
        return r;
    if (c->version == MQTT_V5 && MQTT_HAS(&pub->props, MQTT_PROP_PAYLOAD_FORMAT) &&
        pub->props.payload_format == 1 && !mqtt_utf8_valid(pub->payload.p, pub->payload.len)) {
        if (pub->qos)
            return mqtt_send_ack(c, ack_type(pub->qos), pub->packet_id,
                                 MQTT_RC_PAYLOAD_FORMAT_INVALID);
        return mqtt_fail(c, MQTT_RC_PAYLOAD_FORMAT_INVALID, "payload is not UTF-8");
    }
    if (pub->qos == 2) {
        int fresh = pg_qos2_received(c->session, pub->packet_id);
        if (fresh < 0)
            return mqtt_fail(c, MQTT_RC_RECEIVE_MAX_EXCEEDED, "receive maximum exceeded");
        if (!fresh) /* a resend of one already routed */
            return mqtt_send_ack(c, MQTT_PUBREC, pub->packet_id, 0);
    }
    mqtt_str topic = pub->topic;
    if (mqtt_mount(c, &topic) < 0)
        return mqtt_fail(c, MQTT_RC_TOPIC_NAME_INVALID, "topic too long with the mountpoint");
    pg_msg *m = mqtt_msg_from(&topic, &pub->payload, pub->qos, pub->retain, &pub->props,
                              c->version == MQTT_V5);
    if (!m)
        return mqtt_fail(c, MQTT_RC_UNSPECIFIED, "out of memory");
    int rc = pg_publish(c->broker, c->session, m);
    pg_msg_unref(m);
    if (rc == PG_RC_PENDING) {
        if (pub->qos == 2) /* not routed yet: the id is new again on resume */
            pg_qos2_released(c->session, pub->packet_id);
        return MQTT_WAIT;
    }
    if (rc >= 0x80)
        mqtt_log_peer(c, PG_LOG_INFO, "publish to '%.*s' refused (0x%02X)", (int)pub->topic.len,
                      (const char *)pub->topic.p, rc);
    if (pub->qos == 2 && rc >= 0x80)
        pg_qos2_released(c->session, pub->packet_id); /* the exchange ends here */
    if (pub->qos)
        return mqtt_send_ack(c, ack_type(pub->qos), pub->packet_id, ack_reason(c, rc));
    return 0;
}

/* ---- acks from the client ---- */

int mqtt_on_ack(struct mqtt_conn *c, struct mqtt_packet *p) {
    uint16_t id = p->u.ack.packet_id;
    int rc;
    switch (p->type) {
    case MQTT_PUBACK:
        pg_session_puback(c->session, id);
        return 0;
    case MQTT_PUBCOMP:
        pg_session_pubcomp(c->session, id);
        return 0;
    case MQTT_PUBREC:
        if (c->version == MQTT_V5 && p->u.ack.reason >= 0x80) {
            pg_session_discard(c->session, id); /* refused: no PUBREL follows */
            return 0;
        }
        rc = pg_session_pubrec(c->session, id);
        return mqtt_send_ack(c, MQTT_PUBREL, id, ack_reason(c, rc));
    default: /* PUBREL */
        rc = pg_qos2_released(c->session, id);
        return mqtt_send_ack(c, MQTT_PUBCOMP, id, ack_reason(c, rc));
    }
}

/* ---- outbound ---- */

static uint32_t hash_topic(const char *t, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)t[i]) * 16777619u;
    return h;
}

/* Finds the alias the client already knows for a topic (*known = 1), or the slot
 * a new one would take. Returns the alias, 0 when aliases are off. Nothing is
 * recorded: alias_record() does that once the packet is really sent. */
static uint16_t alias_lookup(struct mqtt_conn *c, const pg_msg *m, int *known) {
    *known = 0;
    if (!c->alias_out_max)
        return 0;
    if (!c->alias_out && !(c->alias_out = calloc(c->alias_out_max, sizeof *c->alias_out)))
        return 0;
    uint32_t h = hash_topic(m->topic, m->topic_len);
    for (uint16_t i = 0; i < c->n_alias_out; i++) {
        struct alias_out *a = &c->alias_out[i];
        if (a->hash == h && a->len == m->topic_len && !memcmp(a->topic, m->topic, a->len)) {
            *known = 1;
            return (uint16_t)(i + 1);
        }
    }
    uint16_t slot = c->n_alias_out < c->alias_out_max ? c->n_alias_out : c->alias_out_next;
    return (uint16_t)(slot + 1);
}

/* The client learns topic -> alias from the packet being sent. */
static int alias_record(struct mqtt_conn *c, const pg_msg *m, uint16_t alias) {
    char *copy = strdup(m->topic);
    if (!copy)
        return -1;
    uint16_t slot = (uint16_t)(alias - 1);
    if (slot == c->n_alias_out)
        c->n_alias_out++;
    c->alias_out_next = (uint16_t)((slot + 1) % c->alias_out_max);
    free(c->alias_out[slot].topic);
    c->alias_out[slot] = (struct alias_out){hash_topic(m->topic, m->topic_len), m->topic_len, copy};
    return 0;
}

/* Takes the mountpoint off a delivered topic (every topic a mounted client can
 * subscribe to starts with it). */
static void unmount(struct mqtt_conn *c, mqtt_str *t) {
    size_t mp = c->set->mountpoint ? strlen(c->set->mountpoint) : 0;
    if (mp && t->len > mp && !memcmp(t->p, c->set->mountpoint, mp)) {
        t->p += mp;
        t->len -= (uint32_t)mp;
    }
}

static void fill_v5_props(struct mqtt_props *pr, const struct pg_delivery *d) {
    const pg_msg *m = d->msg;
    if (m->has_payload_format) {
        MQTT_SET(pr, MQTT_PROP_PAYLOAD_FORMAT);
        pr->payload_format = m->payload_format;
    }
    if (m->expires_at) {
        MQTT_SET(pr, MQTT_PROP_MESSAGE_EXPIRY);
        pr->message_expiry = d->expiry_left_s;
    }
    if (m->content_type) {
        MQTT_SET(pr, MQTT_PROP_CONTENT_TYPE);
        pr->content_type = (mqtt_str){(const uint8_t *)m->content_type, m->content_type_len};
    }
    if (m->response_topic) {
        MQTT_SET(pr, MQTT_PROP_RESPONSE_TOPIC);
        pr->response_topic = (mqtt_str){(const uint8_t *)m->response_topic, m->response_topic_len};
    }
    if (m->correlation) {
        MQTT_SET(pr, MQTT_PROP_CORRELATION_DATA);
        pr->correlation_data = (mqtt_str){m->correlation, m->correlation_len};
    }
    if (m->user_props_len) {
        MQTT_SET(pr, MQTT_PROP_USER_PROPERTY);
        pr->user_pairs = m->user_props;
        pr->user_pairs_len = m->user_props_len;
    }
    uint32_t n = d->n_sub_ids < MQTT_MAX_SUB_IDS ? d->n_sub_ids : MQTT_MAX_SUB_IDS;
    if (n) {
        MQTT_SET(pr, MQTT_PROP_SUBSCRIPTION_ID);
        memcpy(pr->sub_ids, d->sub_ids, n * sizeof *d->sub_ids);
        pr->n_sub_ids = n;
    }
}

static int append_packet(struct mqtt_conn *c, struct pg_buf *out, const struct mqtt_packet *p,
                         size_t size) {
    uint8_t *dst = size ? pg_buf_reserve(out, size) : NULL;
    if (!dst)
        return -1; /* unencodable (e.g. too large) or out of memory */
    mqtt_encode(p, c->version, dst, size);
    out->len += size;
    return 0;
}

int mqtt_encode_delivery(struct mqtt_conn *c, struct pg_buf *out, struct pg_delivery *d) {
    struct mqtt_packet p;
    if (d->kind == PG_DELIVER_PUBREL) {
        memset(&p.u.ack, 0, sizeof p.u.ack);
        p.type = MQTT_PUBREL;
        p.flags = 0;
        p.u.ack.packet_id = d->packet_id;
        return append_packet(c, out, &p, mqtt_encode(&p, c->version, NULL, 0));
    }
    struct mqtt_publish *pub = &p.u.publish;
    memset(pub, 0, sizeof *pub);
    p.type = MQTT_PUBLISH;
    p.flags = 0;
    pub->dup = d->dup;
    pub->qos = d->qos;
    pub->retain = d->retain;
    pub->packet_id = d->packet_id;
    pub->topic = (mqtt_str){(const uint8_t *)d->msg->topic, d->msg->topic_len};
    unmount(c, &pub->topic);
    pub->payload = (mqtt_str){d->msg->payload, d->msg->payload_len};
    int known = 0;
    uint16_t alias = 0;
    if (c->version == MQTT_V5) {
        fill_v5_props(&pub->props, d);
        alias = alias_lookup(c, d->msg, &known);
    }
    if (alias) {
        MQTT_SET(&pub->props, MQTT_PROP_TOPIC_ALIAS);
        pub->props.topic_alias = alias;
        if (known)
            pub->topic.len = 0;
    }
    size_t size = mqtt_encode(&p, c->version, NULL, 0);
    int rc = 0;
    if (c->max_out_packet && size > c->max_out_packet) {
        mqtt_log_peer(c, PG_LOG_INFO, "message on '%s' too large for the client: dropped",
                      d->msg->topic);
        if (d->qos)
            pg_session_discard(c->session, d->packet_id);
    } else if (alias && !known && alias_record(c, d->msg, alias) < 0) {
        rc = -1;
    } else {
        rc = append_packet(c, out, &p, size);
    }
    pg_msg_unref(d->msg);
    return rc;
}
