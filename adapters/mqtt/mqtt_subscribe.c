/* mqtt_subscribe.c - SUBSCRIBE and UNSUBSCRIBE: one broker call per filter, one
 * reason code per filter in the SUBACK / UNSUBACK (v3 SUBACK uses 0x80 for any
 * failure; v3.1.1 UNSUBACK carries no codes).
 */
#include <stdlib.h>
#include <string.h>

#include "adapters/mqtt/conn.h"
#include "gateway/log.h"

static int send_suback(struct mqtt_conn *c, int type, uint16_t id, const uint8_t *codes,
                       uint32_t n) {
    struct mqtt_packet p;
    memset(&p.u.suback, 0, sizeof p.u.suback);
    p.type = (uint8_t)type;
    p.flags = 0;
    p.u.suback.packet_id = id;
    p.u.suback.reasons = codes;
    p.u.suback.count = n;
    return mqtt_send(c, &p);
}

/* The SUBACK code for one filter, or PG_RC_PENDING. */
static int subscribe_one(struct mqtt_conn *c, const mqtt_str *f, uint8_t opt, uint32_t sub_id) {
    struct pg_sub_opts o = {
        .qos = MQTT_SUBOPT_QOS(opt),
        .sub_id = sub_id,
    };
    if (c->version == MQTT_V5) {
        o.no_local = (opt & MQTT_SUBOPT_NO_LOCAL) != 0;
        o.retain_as_published = (opt & MQTT_SUBOPT_RAP) != 0;
        o.retain_handling = MQTT_SUBOPT_RH(opt);
    }
    mqtt_str mf = *f;
    int rc = mqtt_mount(c, &mf) < 0 ? PG_RC_TOPIC_FILTER_INVALID
                                    : pg_subscribe(c->session, (const char *)mf.p, mf.len, &o);
    if (rc == PG_RC_PENDING)
        return rc;
    if (rc >= 0x80) {
        mqtt_log_peer(c, PG_LOG_INFO, "subscribe to '%.*s' refused (0x%02X)", (int)f->len,
                      (const char *)f->p, rc);
        return c->version == MQTT_V5 ? (uint8_t)rc : 0x80;
    }
    return (uint8_t)rc;
}

int mqtt_on_subscribe(struct mqtt_conn *c, struct mqtt_packet *p) {
    struct mqtt_subscribe *s = &p->u.subscribe;
    uint32_t sub_id = s->props.n_sub_ids ? s->props.sub_ids[0] : 0;
    /* Handled again after waiting: the filters done before keep their codes. */
    uint8_t *codes = c->sub_codes ? c->sub_codes : malloc(s->count); /* bounded by the packet */
    c->sub_codes = NULL;
    if (!codes)
        return mqtt_fail(c, MQTT_RC_UNSPECIFIED, "out of memory");
    uint32_t n = 0, cur = 0;
    mqtt_str f;
    uint8_t opt;
    while (mqtt_sub_next(s, &cur, &f, &opt)) {
        if (n < c->sub_done) {
            n++;
            continue;
        }
        if (c->version == MQTT_V5 && (opt & MQTT_SUBOPT_NO_LOCAL) && f.len >= 7 &&
            !memcmp(f.p, "$share/", 7)) {
            free(codes);
            return mqtt_fail(c, MQTT_RC_PROTOCOL_ERROR, "no local on a shared subscription");
        }
        int code = subscribe_one(c, &f, opt, sub_id);
        if (code == PG_RC_PENDING) {
            c->sub_codes = codes;
            c->sub_done = n;
            return MQTT_WAIT;
        }
        codes[n++] = (uint8_t)code;
    }
    c->sub_done = 0;
    int rc = send_suback(c, MQTT_SUBACK, s->packet_id, codes, n);
    free(codes);
    return rc;
}

int mqtt_on_unsubscribe(struct mqtt_conn *c, struct mqtt_packet *p) {
    struct mqtt_subscribe *s = &p->u.subscribe;
    uint8_t *codes = malloc(s->count);
    if (!codes)
        return mqtt_fail(c, MQTT_RC_UNSPECIFIED, "out of memory");
    uint32_t n = 0, cur = 0;
    mqtt_str f;
    while (mqtt_unsub_next(s, &cur, &f))
        codes[n++] = mqtt_mount(c, &f) < 0
                         ? PG_RC_NO_SUBSCRIPTION_EXISTED
                         : (uint8_t)pg_unsubscribe(c->session, (const char *)f.p, f.len);
    int rc = send_suback(c, MQTT_UNSUBACK, s->packet_id, codes, n);
    free(codes);
    return rc;
}
