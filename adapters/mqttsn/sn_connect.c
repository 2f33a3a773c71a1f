/* sn_connect.c - an MQTT-SN client's life: CONNECT and the will dialogue, keep
 * alive, DISCONNECT and sleeping, waking with PINGREQ, will updates, and the
 * broker core's callbacks (deliveries waiting, the connection ended, an auth
 * answer arrived).
 *
 * The gateway keeps time for its clients itself (the core is told keepalive 0):
 * a client is lost when 1.5 x its keep alive passes without a message while
 * active, or 1.5 x its sleep duration without a PINGREQ while asleep. An asleep
 * client stays attached to its broker session, so messages for it queue there
 * (bounded by broker.max_queued_messages) until it wakes.
 */
#include <stdlib.h>
#include <string.h>

#include "adapters/mqttsn/sn_internal.h"
#include "gateway/log.h"

#define DIALOGUE_TIMEOUT_S 10 /* for WILLTOPIC / WILLMSG answers */

/* ---- the broker's callbacks ---- */

static void on_wakeup(void *conn) {
    struct sn_client *c = conn;
    if (c->hold_pump) /* a SUBACK goes out before the retained messages it brings */
        c->pump_later = 1;
    else if (c->state == SN_ACTIVE || c->state == SN_AWAKE)
        sn_pump(c);
}

static int finish_connect(struct sn_client *c);

void sn_detach(struct sn_client *c, int how, int core_knows) {
    if (!c->session)
        return;
    if (!core_knows)
        pg_disconnect(c->session, how, NULL);
    c->session = NULL;
    c->gw->n_connected--;
    if (c->gw->c.total_connections)
        (*c->gw->c.total_connections)--;
}

static void on_kick(void *conn, uint8_t reason) {
    struct sn_client *c = conn;
    sn_detach(c, PG_DISC_NORMAL, 1);
    sn_log(c, PG_LOG_INFO, "disconnected by the server (reason 0x%02X)", reason);
    sn_send_simple(c, SN_DISCONNECT);
    sn_out_clear(c);
    c->state = SN_DISCONNECTED;
    c->deadline = 0;
    if (c->clean) /* nothing to come back to */
        sn_client_free(c);
}

static void on_resume(void *conn) {
    struct sn_client *c = conn;
    c->waiting = 0;
    sn_pin(c);
    if (c->state == SN_CONNECTING)
        finish_connect(c);
    if (!c->dead)
        sn_release_held(c);
    sn_unpin(c);
}

const struct pg_conn_ops sn_conn_ops = {on_wakeup, on_kick, on_resume};

/* ---- deadlines and endings ---- */

void sn_refresh_deadline(struct sn_client *c) {
    c->deadline = c->duration_s ? sn_now(c->gw) + (int64_t)c->duration_s * 1500 : 0;
}

void sn_client_end(struct sn_client *c, int how) {
    sn_detach(c, how, 0);
    sn_out_clear(c);
    c->state = SN_DISCONNECTED;
    c->deadline = 0;
    if (c->clean)
        sn_client_free(c);
}

void sn_client_lost(struct sn_client *c, const char *why) {
    sn_log(c, PG_LOG_INFO, "lost: %s", why);
    sn_client_end(c, PG_DISC_WITH_WILL);
}

/* ---- CONNECT ---- */

static void will_clear(struct sn_client *c) {
    free(c->will_topic);
    free(c->will_msg);
    c->will_topic = NULL;
    c->will_msg = NULL;
    c->will_msg_len = 0;
    c->has_will = 0;
}

/* The will as a broker message (mountpoint applied), or NULL. */
static pg_msg *will_message(struct sn_client *c) {
    char topic[1024];
    if (!c->has_will || !c->will_topic)
        return NULL;
    int n = sn_mount(c->gw, c->will_topic, strlen(c->will_topic), topic, sizeof topic);
    if (n < 0)
        return NULL;
    return pg_msg_new(topic, (size_t)n, c->will_msg, c->will_msg_len, c->will_qos, c->will_retain,
                      NULL);
}

static int listed(const char *list, const char *id) {
    size_t n = strlen(id);
    for (const char *p = list; *p;) {
        p += strspn(p, ", \t");
        size_t k = strcspn(p, ",");
        size_t e = k;
        while (e && (p[e - 1] == ' ' || p[e - 1] == '\t'))
            e--;
        if (e == n && n && !memcmp(p, id, n))
            return 1;
        p += k;
    }
    return 0;
}

static uint8_t sn_refusal(int rc) {
    return rc == PG_RC_SERVER_BUSY || rc == PG_RC_SERVER_UNAVAILABLE ? SN_RC_CONGESTION
                                                                     : SN_RC_NOT_SUPPORTED;
}

/* A client whose broker session is still attached (it woke, or reconnected
 * without clean session) carries on with it: only the will may be new. */
static int resume_session(struct sn_client *c) {
    if (c->will_asked && pg_session_set_will(c->session, c->has_will ? will_message(c) : NULL)) {
        sn_log(c, PG_LOG_NOTICE, "connection refused: may not publish its will");
        sn_send_rc(c, SN_CONNACK, SN_RC_NOT_SUPPORTED);
        sn_client_end(c, PG_DISC_NORMAL);
        return -1;
    }
    c->state = SN_ACTIVE;
    sn_refresh_deadline(c);
    pg_session_touch(c->session);
    for (uint16_t i = 0; i < c->n_out; i++) /* a sleep is not a missed ack */
        c->out[i].tries = 0;
    sn_send_rc(c, SN_CONNACK, SN_RC_ACCEPTED);
    sn_log(c, PG_LOG_INFO, "connected again (keep alive %u, session kept)", c->duration_s);
    sn_pump(c);
    return 0;
}

/* Whether another client may attach: the listener's limit counts connected clients
 * (kept sessions of clients that left do not lock new ones out), and the process
 * has broker.max_connections over every protocol. */
static int full(struct sn_gw *gw) {
    int over =
        (gw->c.max_clients && (int)gw->n_connected >= gw->c.max_clients) ||
        (gw->c.total_max && gw->c.total_connections && *gw->c.total_connections >= gw->c.total_max);
    if (over)
        pg_notice("mqtt-sn: connection refused: %s has its maximum of clients",
                  gw->c.max_clients && (int)gw->n_connected >= gw->c.max_clients ? gw->c.listener
                                                                                 : "the gateway");
    return over;
}

/* Asks the broker: attaches the client to its session, or refuses it. Returns -1
 * when refused (c is freed then). */
static int finish_connect(struct sn_client *c) {
    struct sn_gw *gw = c->gw;
    if (c->session)
        return resume_session(c);
    const char *pw = gw->c.password;
    struct pg_connect_req req = {
        .id = {c->client_id, gw->c.username, c->peer, "mqtt-sn", gw->c.listener, NULL},
        .password = pw,
        .password_len = strlen(pw),
        .has_password = *pw != 0,
        .clean_start = c->clean,
        .session_expiry_s = c->clean ? 0 : UINT32_MAX,
        .receive_max = 1, /* devices handle one unacknowledged message at a time */
        .will = will_message(c),
    };
    if (full(gw)) {
        sn_send_rc(c, SN_CONNACK, SN_RC_CONGESTION);
        sn_client_free(c);
        return -1;
    }
    c->state = SN_CONNECTING;
    pg_session *s = NULL;
    int present = 0;
    int rc = pg_connect(gw->c.broker, &req, &sn_conn_ops, c, &s, &present);
    if (rc == PG_RC_PENDING) {
        c->waiting = 1;
        return 0;
    }
    if (rc) {
        sn_log(c, PG_LOG_NOTICE, "connection refused (reason 0x%02X)", rc);
        sn_send_rc(c, SN_CONNACK, sn_refusal(rc));
        sn_client_free(c);
        return -1;
    }
    c->session = s;
    gw->n_connected++;
    if (gw->c.total_connections)
        (*gw->c.total_connections)++;
    c->state = SN_ACTIVE;
    sn_refresh_deadline(c);
    sn_send_rc(c, SN_CONNACK, SN_RC_ACCEPTED);
    sn_log(c, PG_LOG_INFO, "connected (keep alive %u, %s session)", c->duration_s,
           present ? "resumed" : "new");
    sn_pump(c);
    return 0;
}

/* The client for a CONNECT: the one with this id (moved here if it was
 * elsewhere), or a new one. NULL when refused (already answered). */
static struct sn_client *claim(struct sn_gw *gw, struct sn_client *here, const struct sn_addr *from,
                               const char *id, int *moved) {
    struct sn_client *c = sn_client_by_id(gw, id);
    *moved = c && c != here;
    if (here && here != c) /* this address now belongs to another client id */
        sn_client_lost(here, "its address connected with another client id");
    if (c) {
        if (c->waiting) { /* a new CONNECT replaces whatever waited for an answer */
            pg_forget_conn(gw->c.broker, c);
            sn_held_clear(c);
            c->waiting = 0;
        }
        sn_client_move(c, from);
        return c;
    }
    return sn_client_new(gw, from, id);
}

void sn_on_connect(struct sn_gw *gw, struct sn_client *here, const struct sn_addr *where,
                   const struct sn_msg *m) {
    struct sn_addr copy = *where; /* where may be `here`'s, and `here` may be ended */
    const struct sn_addr *from = &copy;
    char id[256];
    const sn_str *cid = &m->u.connect.client_id;
    if (cid->len >= sizeof id || memchr(cid->p, 0, cid->len))
        return;
    memcpy(id, cid->p, cid->len);
    id[cid->len] = 0;
    if (*gw->c.allowed_clients && !listed(gw->c.allowed_clients, id)) {
        struct sn_msg r = {.type = SN_CONNACK};
        r.u.resp.rc = SN_RC_NOT_SUPPORTED;
        sn_send(gw, from, &r);
        pg_notice("mqtt-sn: client '%s' refused: not in mqttsn.allowed_clients", id);
        return;
    }
    int moved = 0;
    struct sn_client *c = claim(gw, here, from, id, &moved);
    if (!c)
        return;
    const struct sn_flags *f = &m->u.connect.flags;
    /* Back with a session still attached: a sleeping device becomes active with all
     * it had (spec 6.14), a reconnect without clean session keeps everything stored,
     * the will too unless a new one comes (6.3). A clean session, or the client id
     * from another address (which must log in again), starts afresh. */
    int sleeping = c->state == SN_ASLEEP || c->state == SN_AWAKE;
    if (c->session && (moved || (f->clean_session && !sleeping))) {
        sn_detach(c, PG_DISC_NORMAL, 0);
        sn_out_clear(c);
    }
    if (!c->session) {
        c->clean = f->clean_session;
        if (c->clean)
            sn_regs_clear(c);
    }
    c->duration_s = m->u.connect.duration;
    c->will_asked = f->will;
    if (!c->session || f->will)
        will_clear(c);
    if (f->will) {
        c->state = SN_WAIT_WILLTOPIC;
        c->deadline = sn_now(gw) + DIALOGUE_TIMEOUT_S * 1000;
        sn_send_simple(c, SN_WILLTOPICREQ);
        return;
    }
    finish_connect(c);
}

/* ---- the will dialogue and updates ---- */

static int take_will_topic(struct sn_client *c, const struct sn_msg *m) {
    const struct sn_msg *w = m;
    free(c->will_topic);
    c->will_topic = NULL;
    c->has_will = 0;
    if (w->u.willtopic.empty || !w->u.willtopic.topic.len)
        return 0;
    if (!(c->will_topic = malloc(w->u.willtopic.topic.len + 1)))
        return -1;
    memcpy(c->will_topic, w->u.willtopic.topic.p, w->u.willtopic.topic.len);
    c->will_topic[w->u.willtopic.topic.len] = 0;
    c->will_qos = (uint8_t)(w->u.willtopic.flags.qos < 0 ? 0 : w->u.willtopic.flags.qos);
    c->will_retain = w->u.willtopic.flags.retain;
    c->has_will = 1;
    return 0;
}

static int take_will_msg(struct sn_client *c, const struct sn_msg *m) {
    free(c->will_msg);
    c->will_msg_len = 0;
    c->will_msg = malloc(m->u.willmsg.msg.len + 1);
    if (!c->will_msg)
        return -1;
    memcpy(c->will_msg, m->u.willmsg.msg.p, m->u.willmsg.msg.len);
    c->will_msg_len = m->u.willmsg.msg.len;
    return 0;
}

void sn_on_willtopic(struct sn_client *c, const struct sn_msg *m) {
    if (c->state == SN_WAIT_WILLMSG) { /* our WILLMSGREQ was lost: the client repeats */
        take_will_topic(c, m);
        sn_send_simple(c, SN_WILLMSGREQ);
        return;
    }
    if (c->state != SN_WAIT_WILLTOPIC)
        return; /* out of sequence: ignored */
    take_will_topic(c, m);
    if (!c->has_will) { /* an empty WILLTOPIC: no will after all */
        finish_connect(c);
        return;
    }
    c->state = SN_WAIT_WILLMSG;
    sn_send_simple(c, SN_WILLMSGREQ);
}

void sn_on_willmsg(struct sn_client *c, const struct sn_msg *m) {
    if (c->state == SN_ACTIVE && c->will_asked) { /* our CONNACK was lost */
        sn_send_rc(c, SN_CONNACK, SN_RC_ACCEPTED);
        return;
    }
    if (c->state != SN_WAIT_WILLMSG)
        return;
    take_will_msg(c, m);
    finish_connect(c);
}

/* The will as it would be after an update; committed only when the core takes it
 * (a refused update leaves the old will, here and in the core). */
static uint8_t update_will(struct sn_client *c, const struct sn_msg *m, int topic) {
    struct sn_client next = *c;
    next.will_topic = c->will_topic ? strdup(c->will_topic) : NULL;
    next.will_msg = c->will_msg ? malloc(c->will_msg_len + 1) : NULL;
    if (next.will_msg)
        memcpy(next.will_msg, c->will_msg, c->will_msg_len);
    if ((c->will_topic && !next.will_topic) || (c->will_msg && !next.will_msg) ||
        (topic ? take_will_topic(&next, m) : take_will_msg(&next, m)) < 0) {
        free(next.will_topic);
        free(next.will_msg);
        return SN_RC_CONGESTION;
    }
    if (pg_session_set_will(c->session, next.has_will ? will_message(&next) : NULL)) {
        free(next.will_topic);
        free(next.will_msg);
        return SN_RC_NOT_SUPPORTED;
    }
    free(c->will_topic);
    free(c->will_msg);
    c->will_topic = next.will_topic;
    c->will_msg = next.will_msg;
    c->will_msg_len = next.will_msg_len;
    c->will_qos = next.will_qos;
    c->will_retain = next.will_retain;
    c->has_will = next.has_will;
    return SN_RC_ACCEPTED;
}

void sn_on_willtopicupd(struct sn_client *c, const struct sn_msg *m) {
    sn_send_rc(c, SN_WILLTOPICRESP, update_will(c, m, 1));
}

void sn_on_willmsgupd(struct sn_client *c, const struct sn_msg *m) {
    sn_send_rc(c, SN_WILLMSGRESP, update_will(c, m, 0));
}

/* ---- DISCONNECT, sleep, PINGREQ ---- */

void sn_on_disconnect(struct sn_client *c, const struct sn_msg *m) {
    if (m->u.disconnect.has_duration && m->u.disconnect.duration && c->session &&
        (c->state == SN_ACTIVE || c->state == SN_AWAKE || c->state == SN_ASLEEP)) {
        c->state = SN_ASLEEP;
        c->duration_s = m->u.disconnect.duration;
        sn_refresh_deadline(c);
        sn_send_simple(c, SN_DISCONNECT);
        sn_log(c, PG_LOG_INFO, "asleep for %u s", c->duration_s);
        return;
    }
    sn_send_simple(c, SN_DISCONNECT);
    sn_log(c, PG_LOG_INFO, "disconnected");
    sn_client_end(c, PG_DISC_NORMAL);
}

void sn_on_pingreq(struct sn_client *c, const struct sn_msg *m) {
    if (c->state == SN_ASLEEP || c->state == SN_AWAKE) {
        c->state = SN_AWAKE;
        sn_refresh_deadline(c);
        pg_session_touch(c->session);
        sn_pump(c); /* ends with PINGRESP once everything queued went out */
        return;
    }
    if (c->state == SN_ACTIVE) {
        pg_session_touch(c->session);
        sn_send_simple(c, SN_PINGRESP);
        return;
    }
    sn_send_simple(c, SN_DISCONNECT); /* not connected: it should CONNECT */
}
