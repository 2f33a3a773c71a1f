/* mqtt_conn.c - one MQTT connection: framing input, dispatching packets, and
 * draining output.
 *
 * Input is parsed in place from the transport's read buffer; only the tail of a
 * packet that is not complete yet is copied into c->in. Replies produced while
 * handling input go to c->ctl; deliveries are pulled from the broker session only
 * when the transport is writable, so a slow client leaves its messages in the
 * broker's bounded queue instead of in our buffers, and each writable callback
 * becomes one write.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/mqtt/conn.h"
#include "gateway/log.h"

static const char *const packet_names[16] = {"RESERVED",  "CONNECT",  "CONNACK",     "PUBLISH",
                                             "PUBACK",    "PUBREC",   "PUBREL",      "PUBCOMP",
                                             "SUBSCRIBE", "SUBACK",   "UNSUBSCRIBE", "UNSUBACK",
                                             "PINGREQ",   "PINGRESP", "DISCONNECT",  "AUTH"};

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

struct mqtt_conn *mqtt_conn_new(pg_broker *b, const struct mqtt_settings *set,
                                const struct mqtt_transport *tr, void *t,
                                const struct mqtt_conn_info *info) {
    struct mqtt_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->broker = b;
    c->set = set;
    c->tr = tr;
    c->t = t;
    c->peer = dup_or_null(info->peer);
    c->listener = dup_or_null(info->listener);
    c->cert_cn = dup_or_null(info->cert_cn);
    c->protocol = dup_or_null(info->protocol ? info->protocol : "mqtt");
    if (set->connect_timeout_s)
        tr->set_timeout(t, set->connect_timeout_s);
    return c;
}

void mqtt_log_peer(struct mqtt_conn *c, int level, const char *fmt, ...) {
    if (!pg_log_enabled(level))
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const struct pg_identity *id = c->session ? pg_session_identity(c->session) : NULL;
    pg_log(level, "%s %s%s%s: %s", c->protocol, c->peer ? c->peer : "?", id ? " " : "",
           id ? id->client_id : "", msg);
}

int mqtt_send(struct mqtt_conn *c, const struct mqtt_packet *p) {
    size_t n = mqtt_encode(p, c->version ? c->version : MQTT_V311, NULL, 0);
    uint8_t *dst = n ? pg_buf_reserve(&c->ctl, n) : NULL;
    if (!dst)
        return -1;
    mqtt_encode(p, c->version ? c->version : MQTT_V311, dst, n);
    c->ctl.len += n;
    c->tr->request_write(c->t);
    return 0;
}

int mqtt_send_ack(struct mqtt_conn *c, int type, uint16_t packet_id, uint8_t reason) {
    struct mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = (uint8_t)type;
    p.u.ack.packet_id = packet_id;
    p.u.ack.reason = reason;
    return mqtt_send(c, &p);
}

int mqtt_close_with(struct mqtt_conn *c, uint8_t reason) {
    int told = c->version == MQTT_V5 && c->connected && !c->closing;
    if (told) {
        struct mqtt_packet p;
        memset(&p, 0, sizeof p);
        p.type = MQTT_DISCONNECT;
        p.u.disconnect.reason = reason;
        mqtt_send(c, &p);
    }
    c->closing = 1;
    c->close_reason = reason;
    return told;
}

int mqtt_fail(struct mqtt_conn *c, uint8_t reason, const char *why) {
    mqtt_log_peer(c, PG_LOG_NOTICE, "closing: %s (reason 0x%02X)", why, reason);
    return mqtt_close_with(c, reason) ? 0 : -1; /* 0: closes once DISCONNECT is written */
}

static int dispatch(struct mqtt_conn *c, struct mqtt_packet *p) {
    if (!c->connected && p->type != MQTT_CONNECT)
        return mqtt_fail(c, MQTT_RC_PROTOCOL_ERROR, "first packet is not CONNECT");
    if (c->session)
        pg_session_touch(c->session);
    switch (p->type) {
    case MQTT_CONNECT:
        if (c->connected)
            return mqtt_fail(c, MQTT_RC_PROTOCOL_ERROR, "second CONNECT");
        return mqtt_on_connect(c, p);
    case MQTT_PUBLISH:
        return mqtt_on_publish(c, p);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return mqtt_on_ack(c, p);
    case MQTT_SUBSCRIBE:
        return mqtt_on_subscribe(c, p);
    case MQTT_UNSUBSCRIBE:
        return mqtt_on_unsubscribe(c, p);
    case MQTT_PINGREQ: {
        struct mqtt_packet r = {.type = MQTT_PINGRESP};
        return mqtt_send(c, &r);
    }
    case MQTT_DISCONNECT:
        return mqtt_on_disconnect(c, p);
    case MQTT_AUTH:
        return mqtt_fail(c, MQTT_RC_PROTOCOL_ERROR, "AUTH without an authentication method");
    default:
        return mqtt_fail(c, MQTT_RC_PROTOCOL_ERROR, "packet type a client must not send");
    }
}

static int handle_packet(struct mqtt_conn *c, const uint8_t *pkt, uint32_t len) {
    struct mqtt_packet p;
    int rc = mqtt_decode(pkt, len, c->version, &p);
    if (rc == MQTT_RC_UNSUPPORTED_VERSION)
        return c->connected ? mqtt_fail(c, MQTT_RC_PROTOCOL_ERROR, "second CONNECT")
                            : mqtt_refuse_version(c, p.u.connect.version);
    if (rc) {
        char why[64];
        snprintf(why, sizeof why, "bad %s packet", packet_names[pkt[0] >> 4]);
        /* Before CONNECT there is no protocol level to answer in. */
        return mqtt_fail(c, (uint8_t)rc, why);
    }
    return dispatch(c, &p);
}

/* Handles every whole packet in buf; returns bytes consumed, or -1 to close. */
static long process(struct mqtt_conn *c, const uint8_t *buf, size_t len) {
    size_t off = 0;
    uint32_t max = pg_broker_config(c->broker)->max_packet_size;
    while (off < len && !c->closing) {
        /* Anything else first (an HTTP request, a port scan) is refused at once,
         * without waiting for the length its first bytes seem to announce. */
        if (!c->connected && buf[off] >> 4 != MQTT_CONNECT)
            return mqtt_fail(c, MQTT_RC_PROTOCOL_ERROR, "first packet is not CONNECT");
        uint32_t plen = 0;
        int r = mqtt_frame(buf + off, len - off, max, &plen);
        if (r < 0)
            return mqtt_fail(c, (uint8_t)-r,
                             r == -MQTT_RC_PACKET_TOO_LARGE ? "packet too large"
                                                            : "bad remaining length");
        if (r == 0)
            break;
        r = handle_packet(c, buf + off, plen);
        if (r < 0)
            return -1;
        if (r == MQTT_WAIT) { /* this packet is handled again on resume */
            c->waiting = 1;
            break;
        }
        off += plen;
    }
    return (long)off;
}

/* Handles what c->in holds. Returns 0, or -1 to close. */
static int process_held(struct mqtt_conn *c) {
    long used = process(c, pg_buf_data(&c->in), c->in.len);
    if (used < 0)
        return -1;
    pg_buf_consume(&c->in, (size_t)used);
    if (c->in.len == 0)
        pg_buf_free(&c->in); /* idle connections keep no buffer */
    return 0;
}

int mqtt_conn_input(struct mqtt_conn *c, const uint8_t *data, size_t len) {
    if (c->closing)
        return 0;
    pg_broker_count_bytes(c->broker, len, 0);
    if (c->waiting) /* kept in order for after the answer */
        return pg_buf_append(&c->in, data, len);
    if (c->in.len == 0) {
        long used = process(c, data, len);
        if (used < 0)
            return -1;
        if ((size_t)used < len && !c->closing)
            return pg_buf_append(&c->in, data + used, len - (size_t)used);
        return 0;
    }
    if (pg_buf_append(&c->in, data, len) < 0)
        return -1;
    return process_held(c);
}

void mqtt_conn_resume(struct mqtt_conn *c) {
    c->waiting = 0;
    if (!c->closing && c->in.len && process_held(c) < 0) {
        c->tr->close(c->t);
        return;
    }
    c->tr->request_write(c->t); /* the transport reads again once writable */
}

size_t mqtt_conn_held_input(const struct mqtt_conn *c) {
    return c->waiting ? c->in.len : 0;
}

void mqtt_conn_wake(struct mqtt_conn *c) {
    c->held = 0;
    c->tr->request_write(c->t);
}

int mqtt_conn_output(struct mqtt_conn *c, struct pg_buf *out, size_t limit) {
    if (c->held)
        return 0;
    size_t start = out->len;
    if (c->ctl.len) {
        if (pg_buf_append(out, pg_buf_data(&c->ctl), c->ctl.len) < 0)
            return -1;
        pg_buf_free(&c->ctl);
    }
    if (c->closing)
        return -1;
    int more = 0;
    if (c->session) {
        struct pg_delivery d;
        while (!(more = out->len >= limit) && pg_session_next(c->session, &d))
            if (mqtt_encode_delivery(c, out, &d) < 0)
                return -1;
    }
    pg_broker_count_bytes(c->broker, 0, out->len - start);
    return more;
}

int mqtt_mount(struct mqtt_conn *c, mqtt_str *t) {
    static uint8_t buf[65536];
    size_t mp = c->set->mountpoint ? strlen(c->set->mountpoint) : 0;
    if (!mp)
        return 0;
    if (mp + t->len > 65535)
        return -1;
    size_t head = 0; /* "$share/GROUP/" stays in front */
    if (t->len > 7 && !memcmp(t->p, "$share/", 7)) {
        const uint8_t *slash = memchr(t->p + 7, '/', t->len - 7);
        head = slash ? (size_t)(slash - t->p) + 1 : 0;
    }
    memcpy(buf, t->p, head);
    memcpy(buf + head, c->set->mountpoint, mp);
    memcpy(buf + head + mp, t->p + head, t->len - head);
    t->p = buf;
    t->len += (uint32_t)mp;
    return 0;
}

uint8_t mqtt_conn_close_reason(const struct mqtt_conn *c) {
    return c->close_reason;
}

size_t mqtt_conn_backlog(const struct mqtt_conn *c) {
    return c->ctl.len;
}

void mqtt_conn_closed(struct mqtt_conn *c) {
    pg_forget_conn(c->broker, c);
    if (c->session) {
        if (!c->clean_close)
            mqtt_log_peer(c, PG_LOG_INFO, "connection lost");
        pg_disconnect(c->session, c->clean_close ? PG_DISC_NORMAL : PG_DISC_WITH_WILL, NULL);
    }
    mqtt_aliases_free(c);
    free(c->sub_codes);
    pg_buf_free(&c->in);
    pg_buf_free(&c->ctl);
    free(c->peer);
    free(c->listener);
    free(c->cert_cn);
    free(c->protocol);
    free(c);
}
