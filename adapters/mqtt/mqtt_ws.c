/* mqtt_ws.c - MQTT over WebSocket (and the static files served on the same port).
 *
 * WebSocket only frames bytes here: every binary chunk lws hands over goes into
 * the same mqtt_conn as a TCP connection's bytes, so an MQTT packet may span
 * frames and messages and a frame may hold several packets; each writable
 * callback sends everything ready as one binary message. What is WebSocket's own
 * is here: subprotocol names, the Origin check, X-Forwarded-For, frame limits, and
 * close codes.
 *
 * Protocol [0] is bound by lws to HTTP requests and to upgrades that name no
 * subprotocol (accepted as MQTT, as mosquitto does); every other MQTT subprotocol
 * name needs its own entry, because lws picks the first name of the client's list
 * that matches an entry, and echoes it.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <libwebsockets.h>

#include "adapters/mqtt/mqtt_lws.h"
#include "gateway/log.h"

/* A header's value, or "" when absent or too long. */
static const char *header(struct lws *wsi, enum lws_token_indexes h, char *buf, int n) {
    if (lws_hdr_copy(wsi, buf, n, h) < 0)
        buf[0] = 0;
    return buf;
}

/* Whether `origin` is one of the comma-separated `list` (case-insensitive). */
static int origin_listed(const char *list, const char *origin) {
    size_t n = strlen(origin);
    for (const char *p = list; *p;) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *end = e;
        while (end > p && isspace((unsigned char)end[-1]))
            end--;
        if ((size_t)(end - p) == n && n && !strncasecmp(p, origin, n))
            return 1;
        p = e;
    }
    return 0;
}

/* Browsers always send Origin; other clients mostly do not, and are let in (as
 * EMQX does), so the list protects browser users from other sites' pages. */
static int origin_allowed(struct lws *wsi, const struct mqtt_listener *l) {
    const char *list = l->ws.allowed_origins;
    char origin[256];
    if (!list || !*list || !*header(wsi, WSI_TOKEN_ORIGIN, origin, sizeof origin))
        return 1;
    if (origin_listed(list, origin))
        return 1;
    char peer[64];
    pg_peer_name(lws_get_socket_fd(wsi), peer, sizeof peer);
    pg_notice("%s %s: refused, origin '%s' is not in websocket.allowed_origins", l->protocol, peer,
              origin);
    return 0;
}

/* The client's address: the socket's, or behind a trusted proxy the address that
 * proxy added to X-Forwarded-For: the last one (earlier ones came from the client
 * and prove nothing), kept with the socket's port. Anything but an IP address
 * there is ignored. */
static void ws_peer(struct lws *wsi, const struct mqtt_listener *l, char *out, size_t n) {
    pg_peer_name(lws_get_socket_fd(wsi), out, n);
    char xff[256];
    if (!l->ws.trust_x_forwarded_for || !*header(wsi, WSI_TOKEN_X_FORWARDED_FOR, xff, sizeof xff))
        return;
    char *last = strrchr(xff, ',');
    char *a = last ? last + 1 : xff;
    a += strspn(a, " \t");
    a[strcspn(a, " \t")] = 0;
    unsigned char bin[sizeof(struct in6_addr)];
    int v6 = inet_pton(AF_INET6, a, bin) == 1;
    if (!v6 && inet_pton(AF_INET, a, bin) != 1) {
        pg_notice("%s %s: X-Forwarded-For '%s' is not an address; ignored", l->protocol, out, a);
        return;
    }
    const char *port = strrchr(out, ':');
    char buf[96];
    snprintf(buf, sizeof buf, v6 ? "[%s]%s" : "%s%s", a, port ? port : ":0");
    snprintf(out, n, "%s", buf);
}

static int close_with(struct lws *wsi, enum lws_close_status status, const char *why) {
    lws_close_reason(wsi, status, (unsigned char *)why, strlen(why));
    return -1;
}

/* The close code (and its text) for the MQTT reason the connection ends with. */
static enum lws_close_status close_status(uint8_t reason, const char **why) {
    switch (reason) {
    case 0x81: /* malformed packet */
    case 0x82: /* protocol error */
    case 0x93: /* receive maximum exceeded */
    case 0x94: /* topic alias invalid */
        *why = "MQTT protocol error";
        return LWS_CLOSE_STATUS_PROTOCOL_ERR;
    case 0x95:
        *why = "MQTT packet too large";
        return LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE;
    case 0x8B:
        *why = "server shutting down";
        return LWS_CLOSE_STATUS_GOINGAWAY;
    default:
        *why = "";
        return LWS_CLOSE_STATUS_NORMAL;
    }
}

static int close_after_mqtt(struct lws *wsi, struct mqtt_lws_pss *pss) {
    const char *why;
    enum lws_close_status st = close_status(pss->c ? mqtt_conn_close_reason(pss->c) : 0, &why);
    return close_with(wsi, st, why);
}

static int on_established(struct lws *wsi, struct mqtt_lws_pss *pss) {
    const struct mqtt_listener *l = lws_get_vhost_user(lws_get_vhost(wsi));
    char peer[96];
    ws_peer(wsi, l, peer, sizeof peer);
    if (mqtt_lws_open(wsi, pss, peer) < 0)
        return close_with(wsi, (enum lws_close_status)1013, "try again later");
    return 0;
}

/* A frame longer than max_frame_size is refused when its first bytes arrive: lws
 * then knows its length. */
static int frame_too_big(struct lws *wsi, struct mqtt_lws_pss *pss, size_t len) {
    const struct mqtt_listener *l = lws_get_vhost_user(lws_get_vhost(wsi));
    size_t left = lws_remaining_packet_payload(wsi);
    int starts = !pss->in_frame;
    pss->in_frame = left > 0;
    return starts && l->ws.max_frame_size && len + left > (size_t)l->ws.max_frame_size;
}

static int on_receive(struct lws *wsi, struct mqtt_lws_pss *pss, const void *in, size_t len) {
    if (!pss->c)
        return -1;
    if (!lws_frame_is_binary(wsi))
        return close_with(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, "binary frames only");
    if (frame_too_big(wsi, pss, len))
        return close_with(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "frame too large");
    if (mqtt_lws_input(wsi, pss, in, len) < 0)
        return close_after_mqtt(wsi, pss);
    return 0;
}

static int on_http(struct lws *wsi) {
    /* Reached when no file mount answered: no such file, or no www_dir. */
    if (lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL))
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int mqtt_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                            size_t len) {
    struct mqtt_lws_pss *pss = user;
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return origin_allowed(wsi, lws_get_vhost_user(lws_get_vhost(wsi))) ? 0 : 1;
    case LWS_CALLBACK_ESTABLISHED:
        return on_established(wsi, pss);
    case LWS_CALLBACK_RECEIVE:
        return on_receive(wsi, pss, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (mqtt_lws_output(wsi, pss, LWS_WRITE_BINARY) < 0)
            return close_after_mqtt(wsi, pss);
        return 0;
    case LWS_CALLBACK_TIMER:
        if (pss && pss->c)
            mqtt_conn_wake(pss->c);
        return 0;
    case LWS_CALLBACK_CLOSED:
        mqtt_lws_closed(wsi, pss);
        return 0;
    case LWS_CALLBACK_OPENSSL_PERFORM_CLIENT_CERT_VERIFICATION:
        return len ? 0 : 1; /* OpenSSL's verdict: see mqtt_lws.c */
    case LWS_CALLBACK_HTTP:
        return on_http(wsi);
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* Bytes lws reads per RECEIVE callback, and so the buffer each connection keeps:
 * 2 KB keeps an idle connection near 4 KB in all (4 KB here would cost 6 KB, more
 * than mosquitto); large incoming messages pay a read call per 2 KB. */
#define RX_CHUNK 2048
/* The most one write hands the socket; lws keeps any rest. Left at 0, lws cuts
 * each write to RX_CHUNK, which costs a system call per chunk. */
#define TX_CHUNK (64 * 1024 + 1024)

#define MQTT_WS_PROTOCOL(name)                                                                     \
    { name, mqtt_ws_callback, sizeof(struct mqtt_lws_pss), RX_CHUNK, 0, NULL, TX_CHUNK }

const struct lws_protocols mqtt_ws_protocols[] = {
    MQTT_WS_PROTOCOL("mqtt"),        MQTT_WS_PROTOCOL("mqttv3.1"), MQTT_WS_PROTOCOL("mqtt-v3"),
    MQTT_WS_PROTOCOL("mqtt-v3.1.1"), MQTT_WS_PROTOCOL("mqtt-v5"),  {NULL, NULL, 0, 0, 0, NULL, 0},
};
