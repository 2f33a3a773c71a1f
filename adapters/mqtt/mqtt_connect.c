/* mqtt_connect.c - CONNECT, CONNACK and DISCONNECT: from an MQTT CONNECT to the
 * broker core's pg_connect() and back.
 *
 * Maps MQTT's session flags onto the core's (v3 clean session = expiry 0 or
 * never; v5 session expiry), builds the will message, negotiates keepalive,
 * receive maximum, maximum packet size and topic alias maximum, and answers with
 * a CONNACK in the client's protocol level.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "adapters/mqtt/conn.h"
#include "gateway/log.h"

static void on_wakeup(void *conn) {
    struct mqtt_conn *c = conn;
    c->tr->request_write(c->t);
}

static void on_kick(void *conn, uint8_t reason) {
    struct mqtt_conn *c = conn;
    c->session = NULL;
    mqtt_log_peer(c, PG_LOG_INFO, "disconnected by the server (reason 0x%02X)", reason);
    mqtt_close_with(c, reason);
    c->tr->request_write(c->t);
}

static void on_resume(void *conn) {
    mqtt_conn_resume(conn);
}

const struct pg_conn_ops mqtt_conn_ops = {on_wakeup, on_kick, on_resume};

static uint8_t v3_code(uint8_t reason) {
    switch (reason) {
    case MQTT_RC_SUCCESS:
        return MQTT_V3_ACCEPTED;
    case MQTT_RC_UNSUPPORTED_VERSION:
        return MQTT_V3_BAD_VERSION;
    case MQTT_RC_CLIENT_ID_NOT_VALID:
        return MQTT_V3_ID_REJECTED;
    case MQTT_RC_BAD_USERNAME_OR_PASSWORD:
        return MQTT_V3_BAD_USERNAME_OR_PASSWORD;
    case MQTT_RC_SERVER_UNAVAILABLE:
    case MQTT_RC_SERVER_BUSY:
        return MQTT_V3_SERVER_UNAVAILABLE;
    default:
        return MQTT_V3_NOT_AUTHORIZED;
    }
}

/* Refuses the CONNECT: CONNACK with the reason, then close. */
static int refuse(struct mqtt_conn *c, uint8_t reason, const char *why) {
    mqtt_log_peer(c, PG_LOG_NOTICE, "connection refused: %s (reason 0x%02X)", why, reason);
    struct mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_CONNACK;
    p.u.connack.reason = c->version == MQTT_V5 ? reason : v3_code(reason);
    mqtt_send(c, &p);
    c->closing = 1;
    return 0;
}

/* A refused login: after repeated failures from this address the answer waits,
 * so guessing passwords is slow; other clients are served meanwhile. */
static int refuse_after_delay(struct mqtt_conn *c, uint8_t reason, const struct pg_identity *id) {
    uint32_t delay = pg_auth_delay_ms(c->broker, c->peer);
    char why[320];
    snprintf(why, sizeof why, "authentication failed for client '%s', user '%s'%s", id->client_id,
             id->username ? id->username : "(anonymous)", delay ? " (answer held)" : "");
    refuse(c, reason, why);
    if (delay) {
        c->held = 1;
        c->tr->set_timeout(c->t, (int)(delay / 1000) + 10);
        c->tr->wake_after(c->t, delay);
    }
    return 0;
}

static void random_client_id(char *out, size_t n) {
    unsigned char r[12];
    if (RAND_bytes(r, sizeof r) != 1)
        memset(r, 0x5a, sizeof r);
    int k = snprintf(out, n, "auto-");
    for (size_t i = 0; i < sizeof r && (size_t)k + 2 < n; i++)
        k += snprintf(out + k, n - (size_t)k, "%02x", r[i]);
}

static int check_will(struct mqtt_conn *c, const struct mqtt_connect *k) {
    if (!k->will_flag)
        return 0;
    if (!mqtt_topic_name_valid(k->will_topic.p, k->will_topic.len))
        return MQTT_RC_TOPIC_NAME_INVALID;
    if (k->will_retain && !pg_broker_config(c->broker)->retain_available)
        return MQTT_RC_RETAIN_NOT_SUPPORTED;
    if (k->version == MQTT_V5 && MQTT_HAS(&k->will_props, MQTT_PROP_PAYLOAD_FORMAT) &&
        k->will_props.payload_format == 1 &&
        !mqtt_utf8_valid(k->will_payload.p, k->will_payload.len))
        return MQTT_RC_PAYLOAD_FORMAT_INVALID;
    return 0;
}

/* The client id to use, or NULL when the CONNECT's must be refused. An assigned
 * id stays the same when the CONNECT is handled again after waiting. */
static const char *pick_client_id(struct mqtt_conn *c, const struct mqtt_connect *k, char *buf,
                                  size_t n, int *assigned) {
    *assigned = 0;
    if (k->client_id.len) {
        if (k->client_id.len >= n || memchr(k->client_id.p, 0, k->client_id.len))
            return NULL;
        memcpy(buf, k->client_id.p, k->client_id.len);
        buf[k->client_id.len] = 0;
        return buf;
    }
    /* v3.1.1 allows an empty id only with a clean session; v3.1 not at all. */
    if (k->version == MQTT_V31 || (k->version == MQTT_V311 && !k->clean_start))
        return NULL;
    if (!c->auto_id[0])
        random_client_id(c->auto_id, sizeof c->auto_id);
    *assigned = 1;
    return c->auto_id;
}

/* With a cap below 65535, a client asking for more (or for none) is told the cap
 * in v5 (Server Keep Alive). v3 cannot be told, so it is refused, as mosquitto
 * does: returns -1. */
static int negotiate_keepalive(struct mqtt_conn *c, uint16_t asked, int *server_says) {
    uint16_t max = pg_broker_config(c->broker)->max_keepalive;
    *server_says = 0;
    if (max == 65535 || (asked && asked <= max))
        return asked;
    if (c->version != MQTT_V5)
        return -1;
    *server_says = 1;
    return max;
}

static void send_connack(struct mqtt_conn *c, int present, const char *assigned_id, int server_ka,
                         uint16_t keepalive, uint32_t expiry_asked, uint32_t expiry_given) {
    const struct pg_broker_config *bc = pg_broker_config(c->broker);
    struct mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_CONNACK;
    p.u.connack.session_present = (uint8_t)present;
    struct mqtt_props *pr = &p.u.connack.props;
    if (c->version == MQTT_V5) {
        MQTT_SET(pr, MQTT_PROP_RECEIVE_MAXIMUM);
        pr->receive_maximum = bc->max_inflight;
        MQTT_SET(pr, MQTT_PROP_MAXIMUM_PACKET_SIZE);
        pr->maximum_packet_size = bc->max_packet_size;
        MQTT_SET(pr, MQTT_PROP_TOPIC_ALIAS_MAXIMUM);
        pr->topic_alias_maximum = c->alias_in_max;
        if (!bc->retain_available) {
            MQTT_SET(pr, MQTT_PROP_RETAIN_AVAILABLE);
            pr->retain_available = 0;
        }
        if (assigned_id) {
            MQTT_SET(pr, MQTT_PROP_ASSIGNED_CLIENT_ID);
            pr->assigned_client_id =
                (mqtt_str){(const uint8_t *)assigned_id, (uint32_t)strlen(assigned_id)};
        }
        if (server_ka) {
            MQTT_SET(pr, MQTT_PROP_SERVER_KEEP_ALIVE);
            pr->server_keep_alive = keepalive;
        }
        if (expiry_given != expiry_asked) {
            MQTT_SET(pr, MQTT_PROP_SESSION_EXPIRY);
            pr->session_expiry = expiry_given;
        }
    }
    mqtt_send(c, &p);
}

static void take_client_limits(struct mqtt_conn *c, const struct mqtt_props *pr) {
    c->alias_in_max = c->set->max_topic_alias;
    if (c->version != MQTT_V5)
        return;
    c->request_problem_info =
        MQTT_HAS(pr, MQTT_PROP_REQUEST_PROBLEM_INFO) ? pr->request_problem_info : 1;
    if (MQTT_HAS(pr, MQTT_PROP_MAXIMUM_PACKET_SIZE))
        c->max_out_packet = pr->maximum_packet_size;
    if (MQTT_HAS(pr, MQTT_PROP_TOPIC_ALIAS_MAXIMUM))
        c->alias_out_max = pr->topic_alias_maximum < c->set->max_topic_alias
                               ? pr->topic_alias_maximum
                               : c->set->max_topic_alias;
}

static void fill_request(struct mqtt_conn *c, const struct mqtt_connect *k,
                         struct pg_connect_req *req, const char *client_id, char *username) {
    req->id = (struct pg_identity){client_id,   k->has_username ? username : NULL,
                                   c->peer,     c->protocol,
                                   c->listener, c->cert_cn};
    req->password = k->password.p;
    req->password_len = k->password.len;
    req->has_password = k->has_password;
    req->clean_start = k->clean_start;
    if (c->version == MQTT_V5)
        req->session_expiry_s =
            MQTT_HAS(&k->props, MQTT_PROP_SESSION_EXPIRY) ? k->props.session_expiry : 0;
    else
        req->session_expiry_s = k->clean_start ? 0 : UINT32_MAX;
    req->receive_max =
        MQTT_HAS(&k->props, MQTT_PROP_RECEIVE_MAXIMUM) ? k->props.receive_maximum : 65535;
    mqtt_str will_topic = k->will_topic;
    if (k->will_flag && mqtt_mount(c, &will_topic) == 0) {
        req->will = mqtt_msg_from(&will_topic, &k->will_payload, k->will_qos, k->will_retain,
                                  &k->will_props, c->version == MQTT_V5);
        req->will_delay_s = c->version == MQTT_V5 && MQTT_HAS(&k->will_props, MQTT_PROP_WILL_DELAY)
                                ? k->will_props.will_delay
                                : 0;
    }
}

int mqtt_refuse_version(struct mqtt_conn *c, uint8_t level) {
    /* Answer in the form the client will understand best. */
    c->version = level >= MQTT_V5 ? MQTT_V5 : MQTT_V311;
    return refuse(c, MQTT_RC_UNSUPPORTED_VERSION, "unsupported protocol name or level");
}

int mqtt_on_connect(struct mqtt_conn *c, struct mqtt_packet *p) {
    struct mqtt_connect *k = &p->u.connect;
    c->version = k->version;
    char id_buf[256];
    char username[256] = "";
    int assigned;
    const char *client_id = pick_client_id(c, k, id_buf, sizeof id_buf, &assigned);
    if (!client_id)
        return refuse(c, MQTT_RC_CLIENT_ID_NOT_VALID, "client identifier not valid");
    if (k->version == MQTT_V5 && MQTT_HAS(&k->props, MQTT_PROP_AUTH_METHOD))
        return refuse(c, MQTT_RC_BAD_AUTH_METHOD, "enhanced authentication not supported");
    int bad_will = check_will(c, k);
    if (bad_will)
        return refuse(c, (uint8_t)bad_will, "bad will");
    if (c->set->use_identity_as_username) {
        /* The certificate is the credential: its CN replaces any username and the
         * password is not used (mosquitto's use_identity_as_username). */
        if (c->tr->peer_cn(c->t, username, sizeof username) < 0)
            return refuse(c, MQTT_RC_NOT_AUTHORIZED, "no client certificate identity");
        free(c->cert_cn);
        c->cert_cn = strdup(username);
        k->has_username = 1;
        k->has_password = 0;
    } else if (k->has_username) {
        if (k->username.len >= sizeof username || memchr(k->username.p, 0, k->username.len))
            return refuse(c, MQTT_RC_BAD_USERNAME_OR_PASSWORD, "username too long");
        memcpy(username, k->username.p, k->username.len);
        username[k->username.len] = 0;
    }
    take_client_limits(c, &k->props);
    int server_ka;
    int keepalive = negotiate_keepalive(c, k->keepalive, &server_ka);
    if (keepalive < 0)
        return refuse(c, MQTT_RC_CLIENT_ID_NOT_VALID, "keepalive above broker.max_keepalive");
    struct pg_connect_req req = {0};
    fill_request(c, k, &req, client_id, username);
    req.keepalive_s = (uint16_t)keepalive;
    /* v5 clients were told our Receive Maximum; v3 ones were not, so they are held
     * only to the protocol's own limit. */
    req.inbound_max = c->version == MQTT_V5 ? 0 : 65535;
    int present = 0;
    pg_session *s = NULL;
    int rc = pg_connect(c->broker, &req, &mqtt_conn_ops, c, &s, &present);
    if (rc == PG_RC_PENDING)
        return MQTT_WAIT;
    if (rc)
        return refuse_after_delay(c, (uint8_t)rc, &req.id);
    c->session = s;
    c->connected = 1;
    c->zero_expiry = req.session_expiry_s == 0;
    c->tr->set_timeout(c->t, 0);
    uint32_t cap = pg_broker_config(c->broker)->session_expiry_max;
    uint32_t given = cap && req.session_expiry_s > cap ? cap : req.session_expiry_s;
    send_connack(c, present, assigned ? client_id : NULL, server_ka, (uint16_t)keepalive,
                 req.session_expiry_s, given);
    mqtt_log_peer(c, PG_LOG_INFO, "connected (v%s, keepalive %u, %s session%s%s)",
                  c->version == MQTT_V5     ? "5"
                  : c->version == MQTT_V311 ? "3.1.1"
                                            : "3.1",
                  keepalive, present ? "resumed" : "new", k->has_username ? ", user " : "",
                  k->has_username ? username : "");
    return 0;
}

int mqtt_on_disconnect(struct mqtt_conn *c, struct mqtt_packet *p) {
    struct mqtt_reason_only *d = &p->u.disconnect;
    const uint32_t *expiry = NULL;
    if (c->version == MQTT_V5 && MQTT_HAS(&d->props, MQTT_PROP_SESSION_EXPIRY)) {
        if (c->zero_expiry && d->props.session_expiry)
            return mqtt_fail(c, MQTT_RC_PROTOCOL_ERROR, "session expiry set after 0");
        expiry = &d->props.session_expiry;
    }
    int how = d->reason == MQTT_RC_DISCONNECT_WITH_WILL ? PG_DISC_WITH_WILL : PG_DISC_NORMAL;
    mqtt_log_peer(c, PG_LOG_INFO, "disconnected (reason 0x%02X)", d->reason);
    pg_disconnect(c->session, how, expiry);
    c->session = NULL;
    c->clean_close = 1;
    c->closing = 1;
    return -1;
}
