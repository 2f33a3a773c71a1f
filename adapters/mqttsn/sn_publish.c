/* sn_publish.c - MQTT-SN PUBLISH both ways, its acks, REGISTER both ways, QoS -1,
 * and resending what a client has not acknowledged.
 *
 * Inbound, a topic id becomes the broker topic through the client's
 * registrations, the predefined table or the short name itself; QoS 2 uses the
 * core's "deliver on PUBLISH, remember the id until PUBREL". Outbound, deliveries
 * are pulled from the broker session: a topic that is predefined goes by that id,
 * a two-character one as a short name, any other needs a registration, so the
 * gateway sends REGISTER and holds the delivery until the client's REGACK. QoS 1/2
 * deliveries are kept until acknowledged and resent every retry_interval, at most
 * max_retries times; then the client is lost.
 */
#include <stdlib.h>
#include <string.h>

#include "adapters/mqttsn/sn_internal.h"
#include "gateway/log.h"

#define MAX_TOPIC 1024

/* ---- inbound ---- */

static void send_puback(struct sn_client *c, uint16_t topic_id, uint16_t msg_id, uint8_t rc) {
    struct sn_msg m = {.type = SN_PUBACK};
    m.u.puback.topic_id = topic_id;
    m.u.puback.msg_id = msg_id;
    m.u.puback.rc = rc;
    sn_send_client(c, &m);
}

static void send_ack(struct sn_client *c, uint8_t type, uint16_t msg_id) {
    struct sn_msg m = {.type = type};
    m.u.ack.msg_id = msg_id;
    sn_send_client(c, &m);
}

/* MQTT-SN has three refusal codes: an unknown topic, congestion, and the rest. */
static uint8_t sn_rc(int rc) {
    if (rc == PG_RC_TOPIC_NAME_INVALID)
        return SN_RC_INVALID_TOPIC_ID;
    if (rc == PG_RC_QUOTA_EXCEEDED || rc == PG_RC_SERVER_BUSY)
        return SN_RC_CONGESTION;
    return SN_RC_NOT_SUPPORTED;
}

/* Publishes for the client; returns the core's code. */
static int publish(struct sn_client *c, const char *topic, int n, const struct sn_msg *m, int qos) {
    pg_msg *msg = pg_msg_new(topic, (size_t)n, m->u.publish.data.p, m->u.publish.data.len, qos,
                             m->u.publish.flags.retain, NULL);
    if (!msg)
        return PG_RC_UNSPECIFIED;
    int rc = pg_publish(c->gw->c.broker, c->session, msg);
    pg_msg_unref(msg);
    return rc;
}

void sn_on_publish(struct sn_client *c, const struct sn_msg *m) {
    const typeof(m->u.publish) *p = &m->u.publish;
    int qos = p->flags.qos < 0 ? 0 : p->flags.qos;
    char topic[MAX_TOPIC];
    int n = sn_topic_of(c, p->flags.topic_id_type, p->topic_id, topic, sizeof topic);
    if (n < 0) {
        sn_log(c, PG_LOG_INFO, "PUBLISH to unknown topic id %u", p->topic_id);
        send_puback(c, p->topic_id, p->msg_id, SN_RC_INVALID_TOPIC_ID);
        return;
    }
    if (qos == 2) {
        int fresh = pg_qos2_received(c->session, p->msg_id);
        if (fresh <= 0) { /* a resend of one already routed, or too many pending */
            if (fresh == 0)
                send_ack(c, SN_PUBREC, p->msg_id);
            else
                send_puback(c, p->topic_id, p->msg_id, SN_RC_CONGESTION);
            return;
        }
    }
    int rc = publish(c, topic, n, m, qos);
    if (rc == PG_RC_PENDING) {
        if (qos == 2) /* not routed yet: the id is new again when handled again */
            pg_qos2_released(c->session, p->msg_id);
        c->waiting = 1;
        return;
    }
    if (rc >= 0x80) {
        sn_log(c, PG_LOG_INFO, "publish to '%s' refused (0x%02X)", topic, rc);
        if (qos == 2)
            pg_qos2_released(c->session, p->msg_id);
        if (qos)
            send_puback(c, p->topic_id, p->msg_id, sn_rc(rc));
        return;
    }
    if (qos == 1)
        send_puback(c, p->topic_id, p->msg_id, SN_RC_ACCEPTED);
    else if (qos == 2)
        send_ack(c, SN_PUBREC, p->msg_id);
}

void sn_on_pubrel(struct sn_client *c, const struct sn_msg *m) {
    pg_qos2_released(c->session, m->u.ack.msg_id);
    send_ack(c, SN_PUBCOMP, m->u.ack.msg_id);
}

/* QoS -1: a device that never connects publishes to a predefined or short topic.
 * There is no session, so it is published as the gateway's own. */
void sn_on_qos_neg1(struct sn_gw *gw, const struct sn_msg *m) {
    const typeof(m->u.publish) *p = &m->u.publish;
    if (!gw->c.qos_neg1)
        return;
    char name[MAX_TOPIC];
    const char *t = NULL;
    if (p->flags.topic_id_type == SN_TOPIC_SHORT) {
        name[0] = (char)(p->topic_id >> 8);
        name[1] = (char)(p->topic_id & 0xFF);
        name[2] = 0;
        t = memchr(name, 0, 2) ? NULL : name;
    } else if (p->flags.topic_id_type == SN_TOPIC_PREDEFINED) {
        for (int i = 0; i < gw->c.n_predefined && !t; i++)
            if (gw->predefined[i].id == p->topic_id)
                t = gw->predefined[i].topic;
    }
    char topic[MAX_TOPIC];
    if (!t || sn_mount(gw, t, strlen(t), topic, sizeof topic) < 0)
        return;
    pg_broker_publish(gw->c.broker, topic, p->data.p, p->data.len, 0, p->flags.retain);
}

void sn_on_register(struct sn_client *c, const struct sn_msg *m) {
    const sn_str *t = &m->u.reg.topic;
    struct sn_msg r = {.type = SN_REGACK};
    r.u.regack.msg_id = m->u.reg.msg_id;
    /* A wildcard cannot be published to, a topic too long for the mountpoint
     * could never be used, and a full registry will not empty by waiting: all three
     * are "not supported" (congestion would make clients retry for ever). */
    if (!t->len || memchr(t->p, '+', t->len) || memchr(t->p, '#', t->len) ||
        memchr(t->p, 0, t->len) || t->len + strlen(c->gw->c.mountpoint) >= MAX_TOPIC) {
        r.u.regack.rc = SN_RC_NOT_SUPPORTED;
    } else {
        r.u.regack.topic_id = sn_reg_add(c, (const char *)t->p, t->len);
        r.u.regack.rc = r.u.regack.topic_id ? SN_RC_ACCEPTED : SN_RC_NOT_SUPPORTED;
    }
    sn_send_client(c, &r);
}

/* ---- outbound ---- */

static struct sn_out *find_out(struct sn_client *c, uint16_t msg_id, uint8_t wait) {
    for (uint16_t i = 0; i < c->n_out; i++)
        if (c->out[i].msg_id == msg_id && c->out[i].wait == wait)
            return &c->out[i];
    return NULL;
}

static void remove_out(struct sn_client *c, struct sn_out *o) {
    pg_msg_unref(o->msg);
    *o = c->out[--c->n_out];
}

static struct sn_out *add_out(struct sn_client *c) {
    if (c->n_out == c->cap_out) {
        uint16_t cap = c->cap_out ? c->cap_out * 2 : 2;
        struct sn_out *o = realloc(c->out, cap * sizeof *o);
        if (!o)
            return NULL;
        c->out = o;
        c->cap_out = cap;
    }
    struct sn_out *o = &c->out[c->n_out++];
    memset(o, 0, sizeof *o);
    o->sent_at = sn_now(c->gw);
    return o;
}

static void send_publish(struct sn_client *c, const struct sn_out *o, const pg_msg *msg, int dup) {
    struct sn_msg m = {.type = SN_PUBLISH};
    m.u.publish.flags = (struct sn_flags){.dup = (uint8_t)dup,
                                          .qos = (int8_t)o->qos,
                                          .retain = o->retain,
                                          .topic_id_type = o->id_type};
    m.u.publish.topic_id = o->topic_id;
    m.u.publish.msg_id = o->qos ? o->msg_id : 0;
    m.u.publish.data = (sn_str){msg->payload, msg->payload_len};
    sn_send_client(c, &m);
}

/* Sends a delivery whose topic id the client knows; keeps QoS 1/2 ones. */
static void deliver(struct sn_client *c, struct pg_delivery *d, uint8_t id_type,
                    uint16_t topic_id) {
    struct sn_out tmp = {.msg_id = d->packet_id,
                         .topic_id = topic_id,
                         .id_type = id_type,
                         .qos = d->qos,
                         .retain = d->retain,
                         .wait = d->qos == 1 ? SN_PUBACK : SN_PUBREC,
                         .sent_at = sn_now(c->gw)};
    send_publish(c, &tmp, d->msg, d->dup);
    struct sn_out *o = d->qos ? add_out(c) : NULL;
    if (!o) {
        if (d->qos) /* out of memory: completed as if acknowledged */
            pg_session_discard(c->session, d->packet_id);
        pg_msg_unref(d->msg);
        return;
    }
    *o = tmp;
    o->msg = d->msg; /* the delivery's reference */
}

static void drop_delivery(struct sn_client *c, struct pg_delivery *d, const char *why) {
    sn_log(c, PG_LOG_NOTICE, "message on '%s' not delivered: %s", d->msg->topic, why);
    if (d->qos)
        pg_session_discard(c->session, d->packet_id);
    pg_msg_unref(d->msg);
}

static void send_register(struct sn_client *c, const struct sn_pending_reg *r) {
    struct sn_msg m = {.type = SN_REGISTER};
    m.u.reg.topic_id = r->topic_id;
    m.u.reg.msg_id = r->msg_id;
    const char *t = sn_reg_topic(c, r->topic_id);
    m.u.reg.topic = (sn_str){(const uint8_t *)t, strlen(t)};
    sn_send_client(c, &m);
}

/* Returns 1 when the delivery waits for a REGACK. */
static int route_delivery(struct sn_client *c, struct pg_delivery *d) {
    size_t len = d->msg->topic_len;
    const char *t = sn_unmount(c->gw, d->msg->topic, &len);
    if (d->msg->payload_len > 65000) {
        drop_delivery(c, d, "too large for a datagram");
        return 0;
    }
    uint16_t id = sn_predefined_id(c->gw, t, len);
    if (id) {
        deliver(c, d, SN_TOPIC_PREDEFINED, id);
        return 0;
    }
    if (len == 2) {
        deliver(c, d, SN_TOPIC_SHORT, (uint16_t)((uint8_t)t[0] << 8 | (uint8_t)t[1]));
        return 0;
    }
    if ((id = sn_reg_find(c, t, len))) {
        deliver(c, d, SN_TOPIC_NORMAL, id);
        return 0;
    }
    if (!(id = sn_reg_add(c, t, len)) || !(c->pending_reg = malloc(sizeof *c->pending_reg))) {
        drop_delivery(c, d, "no topic id left for this client (max_registrations)");
        return 0;
    }
    if (++c->next_msg_id == 0)
        c->next_msg_id = 1;
    *c->pending_reg = (struct sn_pending_reg){*d, id, c->next_msg_id, 0, sn_now(c->gw)};
    send_register(c, c->pending_reg);
    return 1;
}

/* One pass over what the session has now. Returns 1 when all of it went out. */
static int pump_once(struct sn_client *c) {
    struct pg_delivery d;
    int more = 1;
    while (c->session && !c->pending_reg && (more = pg_session_next(c->session, &d))) {
        if (d.kind == PG_DELIVER_PUBREL) {
            struct sn_out *o = add_out(c);
            if (o) {
                o->msg_id = d.packet_id;
                o->wait = SN_PUBCOMP;
            }
            send_ack(c, SN_PUBREL, d.packet_id);
            continue;
        }
        route_delivery(c, &d);
    }
    return !more;
}

/* The core calls back into wakeup from inside calls made here (a discarded
 * delivery frees window space): those become another pass of this loop rather
 * than a recursion as deep as the queue. */
void sn_pump(struct sn_client *c) {
    if (c->pumping) {
        c->pump_again = 1;
        return;
    }
    c->pumping = 1;
    int drained;
    do {
        c->pump_again = 0;
        drained = pump_once(c);
    } while (c->pump_again);
    c->pumping = 0;
    if (c->state == SN_AWAKE && drained && !c->pending_reg && !c->n_out) {
        sn_send_simple(c, SN_PINGRESP);
        c->state = SN_ASLEEP;
        sn_refresh_deadline(c);
    }
}

/* Takes a delivery back out of the registration wait or an ack wait and routes it
 * again (its topic needs a new registration). */
static void reroute(struct sn_client *c, struct pg_delivery *d) {
    if (c->pending_reg) { /* one registration at a time: this one cannot wait too */
        drop_delivery(c, d, "its topic must be registered again");
        return;
    }
    route_delivery(c, d);
}

void sn_on_regack(struct sn_client *c, const struct sn_msg *m) {
    struct sn_pending_reg *r = c->pending_reg;
    if (!r || r->msg_id != m->u.regack.msg_id)
        return;
    c->pending_reg = NULL;
    if (m->u.regack.rc == SN_RC_ACCEPTED) {
        deliver(c, &r->d, SN_TOPIC_NORMAL, r->topic_id);
    } else {
        sn_reg_remove(c, r->topic_id); /* the client does not know this id */
        drop_delivery(c, &r->d, "the client refused the topic's registration");
    }
    free(r);
    sn_pump(c);
}

void sn_on_puback(struct sn_client *c, const struct sn_msg *m) {
    uint16_t id = m->u.puback.msg_id;
    uint8_t rc = m->u.puback.rc;
    struct sn_out *o = find_out(c, id, SN_PUBACK);
    if (!o && (o = find_out(c, id, SN_PUBREC)) && rc == SN_RC_ACCEPTED)
        return; /* a QoS 2 delivery is not acknowledged by PUBACK */
    if (!o) {
        if (rc == SN_RC_INVALID_TOPIC_ID && m->u.puback.topic_id)
            sn_reg_remove(c, m->u.puback.topic_id); /* a QoS 0 one: register it next time */
        return;
    }
    if (rc == SN_RC_CONGESTION)
        return; /* kept: sent again after retry_interval */
    struct sn_out gone = *o;
    *o = c->out[--c->n_out]; /* out of the list before the core calls back */
    if (rc == SN_RC_INVALID_TOPIC_ID && gone.id_type == SN_TOPIC_NORMAL && gone.msg) {
        /* The client forgot the id (it restarted): register it again and resend. */
        sn_log(c, PG_LOG_INFO, "client does not know topic id %u; registering it again",
               gone.topic_id);
        sn_reg_remove(c, gone.topic_id);
        struct pg_delivery d = {.kind = PG_DELIVER_PUBLISH,
                                .msg = gone.msg,
                                .packet_id = gone.msg_id,
                                .qos = gone.qos,
                                .retain = gone.retain,
                                .dup = 1};
        reroute(c, &d);
        sn_pump(c);
        return;
    }
    pg_msg_unref(gone.msg);
    if (rc == SN_RC_ACCEPTED)
        pg_session_puback(c->session, id);
    else
        pg_session_discard(c->session, id);
    sn_pump(c);
}

void sn_on_pubrec(struct sn_client *c, const struct sn_msg *m) {
    uint16_t id = m->u.ack.msg_id;
    struct sn_out *o = find_out(c, id, SN_PUBREC);
    if (!o) {
        if (find_out(c, id, SN_PUBCOMP)) /* our PUBREL was lost: send it again */
            send_ack(c, SN_PUBREL, id);
        return;
    }
    pg_msg_unref(o->msg);
    o->msg = NULL;
    o->wait = SN_PUBCOMP;
    o->tries = 0;
    o->sent_at = sn_now(c->gw);
    send_ack(c, SN_PUBREL, id);
    pg_session_pubrec(c->session, id); /* last: it may call back */
}

void sn_on_pubcomp(struct sn_client *c, const struct sn_msg *m) {
    struct sn_out *o = find_out(c, m->u.ack.msg_id, SN_PUBCOMP);
    if (!o)
        return;
    remove_out(c, o);
    pg_session_pubcomp(c->session, m->u.ack.msg_id);
    sn_pump(c);
}

/* ---- retries ---- */

int sn_retry(struct sn_client *c) {
    int64_t now = sn_now(c->gw), after = (int64_t)c->gw->c.retry_interval_s * 1000;
    for (uint16_t i = 0; i < c->n_out; i++) {
        struct sn_out *o = &c->out[i];
        if (now - o->sent_at < after)
            continue;
        if (o->tries >= c->gw->c.max_retries)
            return -1;
        o->tries++;
        o->sent_at = now;
        if (o->msg)
            send_publish(c, o, o->msg, 1);
        else
            send_ack(c, SN_PUBREL, o->msg_id);
    }
    struct sn_pending_reg *r = c->pending_reg;
    if (r && now - r->sent_at >= after) {
        if (r->tries >= c->gw->c.max_retries)
            return -1;
        r->tries++;
        r->sent_at = now;
        send_register(c, r);
    }
    return 0;
}

void sn_out_clear(struct sn_client *c) {
    for (uint16_t i = 0; i < c->n_out; i++)
        pg_msg_unref(c->out[i].msg);
    free(c->out);
    c->out = NULL;
    c->n_out = c->cap_out = 0;
    if (c->pending_reg) {
        pg_msg_unref(c->pending_reg->d.msg);
        free(c->pending_reg);
        c->pending_reg = NULL;
    }
}
