/* sn_subscribe.c - MQTT-SN SUBSCRIBE and UNSUBSCRIBE, by topic name (wildcards
 * allowed), predefined id or short name.
 *
 * A subscription to one exact topic name registers it at once, so the SUBACK
 * carries its id; a wildcard's SUBACK carries 0 and each matching topic is
 * registered when its first message goes out (sn_publish.c). Retained messages a
 * subscription brings are held back until the SUBACK has gone.
 */
#include <string.h>

#include "adapters/mqttsn/sn_internal.h"
#include "gateway/log.h"

/* The filter a SUBSCRIBE/UNSUBSCRIBE names (mountpoint applied) into buf, and the
 * topic id its SUBACK reports. Returns the length, or -1 for an unknown id. */
static int filter_of(struct sn_client *c, const struct sn_msg *m, char *buf, size_t n,
                     uint16_t *topic_id) {
    const typeof(m->u.subscribe) *s = &m->u.subscribe;
    *topic_id = 0;
    if (s->flags.topic_id_type != SN_TOPIC_NORMAL) {
        if (s->flags.topic_id_type == SN_TOPIC_PREDEFINED)
            *topic_id = s->topic_id;
        return sn_topic_of(c, s->flags.topic_id_type, s->topic_id, buf, n);
    }
    const char *name = (const char *)s->topic_name.p;
    size_t len = s->topic_name.len;
    if (!len || memchr(name, 0, len))
        return -1;
    return sn_mount(c->gw, name, len, buf, n);
}

/* The id a SUBACK for a topic name reports: a plain topic that deliveries will
 * send by registered id is registered now; a wildcard, a short name or a
 * predefined topic report 0 or the id they are delivered with (spec 5.4.16). */
static uint16_t suback_topic_id(struct sn_client *c, const struct sn_msg *m) {
    const char *name = (const char *)m->u.subscribe.topic_name.p;
    size_t len = m->u.subscribe.topic_name.len;
    uint16_t pre;
    if (memchr(name, '+', len) || memchr(name, '#', len) || len == 2)
        return 0;
    if ((pre = sn_predefined_id(c->gw, name, len)))
        return pre;
    return sn_reg_add(c, name, len);
}

static void send_suback(struct sn_client *c, const struct sn_msg *m, int granted, uint16_t topic_id,
                        uint8_t rc) {
    struct sn_msg r = {.type = SN_SUBACK};
    r.u.suback.flags.qos = (int8_t)(granted < 0 ? 0 : granted);
    r.u.suback.topic_id = rc ? 0 : topic_id;
    r.u.suback.msg_id = m->u.subscribe.msg_id;
    r.u.suback.rc = rc;
    sn_send_client(c, &r);
}

void sn_on_subscribe(struct sn_client *c, const struct sn_msg *m) {
    char filter[1024];
    uint16_t topic_id;
    int n = filter_of(c, m, filter, sizeof filter, &topic_id);
    if (n < 0) {
        send_suback(c, m, 0, 0, SN_RC_INVALID_TOPIC_ID);
        return;
    }
    struct pg_sub_opts o = {
        .qos = (uint8_t)(m->u.subscribe.flags.qos < 0 ? 0 : m->u.subscribe.flags.qos)};
    c->hold_pump = 1;
    int rc = pg_subscribe(c->session, filter, (size_t)n, &o);
    c->hold_pump = 0;
    if (rc == PG_RC_PENDING) {
        c->waiting = 1;
        return;
    }
    if (rc >= 0x80) {
        sn_log(c, PG_LOG_INFO, "subscribe to '%s' refused (0x%02X)", filter, rc);
        send_suback(c, m, 0, 0,
                    rc == PG_RC_TOPIC_FILTER_INVALID ? SN_RC_INVALID_TOPIC_ID
                                                     : SN_RC_NOT_SUPPORTED);
    } else {
        if (m->u.subscribe.flags.topic_id_type == SN_TOPIC_NORMAL)
            topic_id = suback_topic_id(c, m);
        send_suback(c, m, rc, topic_id, SN_RC_ACCEPTED);
    }
    if (c->pump_later) {
        c->pump_later = 0;
        sn_pump(c);
    }
}

void sn_on_unsubscribe(struct sn_client *c, const struct sn_msg *m) {
    char filter[1024];
    uint16_t topic_id;
    int n = filter_of(c, m, filter, sizeof filter, &topic_id);
    if (n >= 0)
        pg_unsubscribe(c->session, filter, (size_t)n);
    struct sn_msg r = {.type = SN_UNSUBACK};
    r.u.ack.msg_id = m->u.subscribe.msg_id;
    sn_send_client(c, &r);
}
