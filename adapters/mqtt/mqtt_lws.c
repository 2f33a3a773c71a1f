/* mqtt_lws.c - MQTT over raw TCP and TLS listeners: the lws "raw-skt" protocol
 * that feeds each accepted socket's bytes to an mqtt_conn and writes its output;
 * and the glue the WebSocket transport (mqtt_ws.c) shares with it.
 *
 * Every writable callback makes one lws_write() of everything ready, encoded into
 * one shared buffer (the loop is single-threaded, so one buffer serves all
 * connections; lws keeps whatever the socket does not take).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <libwebsockets.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "adapters/mqtt/mqtt.h"
#include "adapters/mqtt/mqtt_lws.h"
#include "gateway/log.h"

#define WRITE_LIMIT  (64 * 1024)  /* bytes encoded per writable callback */
#define BACKLOG_HIGH (256 * 1024) /* stop reading a client with this much unsent */

static struct pg_buf out_buf = {.headroom = LWS_PRE};

static void tr_request_write(void *t) {
    lws_callback_on_writable(t);
}

static void tr_close(void *t) {
    lws_set_timeout(t, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static void tr_set_timeout(void *t, int secs) {
    lws_set_timeout(t, secs ? PENDING_TIMEOUT_USER_OK : NO_PENDING_TIMEOUT, secs);
}

static void tr_wake_after(void *t, uint32_t ms) {
    lws_set_timer_usecs(t, (lws_usec_t)ms * 1000);
}

static int tr_peer_cn(void *t, char *buf, size_t n) {
    SSL *ssl = lws_is_ssl(t) ? lws_get_ssl(t) : NULL;
    X509 *cert = ssl ? SSL_get1_peer_certificate(ssl) : NULL;
    int len = -1;
    if (cert && SSL_get_verify_result(ssl) == X509_V_OK)
        len = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, (int)n);
    X509_free(cert);
    return len > 0 && (size_t)len < n ? 0 : -1;
}

static const struct mqtt_transport lws_transport = {tr_request_write, tr_close, tr_set_timeout,
                                                    tr_wake_after, tr_peer_cn};

/* "address:port" of the peer, IPv4 or IPv6. */
void pg_peer_name(int fd, char *out, size_t n) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
            port = ntohs(a->sin6_port);
            snprintf(out, n, "[%s]:%d", host, port);
            return;
        }
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
    }
    snprintf(out, n, "%s:%d", host, port);
}

int mqtt_lws_open(struct lws *wsi, struct mqtt_lws_pss *pss, const char *peer) {
    struct mqtt_listener *l = lws_get_vhost_user(lws_get_vhost(wsi));
    if (l->tls && !lws_is_ssl(wsi)) {
        pg_error("%s: TLS listener accepted a plain connection; refusing", l->name);
        return -1;
    }
    if (l->max_connections && l->n_connections >= l->max_connections) {
        pg_notice("%s %s: refused, %s has its maximum of %d connections", l->protocol, peer,
                  l->name, l->max_connections);
        return -1;
    }
    if (l->total_max && *l->total_connections >= l->total_max) {
        pg_notice("%s %s: refused, the gateway has its maximum of %d connections", l->protocol,
                  peer, l->total_max);
        return -1;
    }
    struct mqtt_conn_info info = {.peer = peer, .listener = l->name, .protocol = l->protocol};
    pss->c = mqtt_conn_new(l->broker, &l->settings, &lws_transport, wsi, &info);
    if (!pss->c)
        return -1;
    l->n_connections++;
    (*l->total_connections)++;
    return 0;
}

int mqtt_lws_input(struct lws *wsi, struct mqtt_lws_pss *pss, const void *in, size_t len) {
    if (!pss->c || mqtt_conn_input(pss->c, in, len) < 0)
        return -1;
    if ((mqtt_conn_backlog(pss->c) > BACKLOG_HIGH || mqtt_conn_held_input(pss->c) > BACKLOG_HIGH) &&
        !pss->rx_paused) {
        lws_rx_flow_control(wsi, 0);
        pss->rx_paused = 1;
    }
    return 0;
}

int mqtt_lws_output(struct lws *wsi, struct mqtt_lws_pss *pss, int how) {
    if (!pss->c)
        return -1;
    if (pss->rx_paused && mqtt_conn_held_input(pss->c) <= BACKLOG_HIGH) {
        lws_rx_flow_control(wsi, 1); /* everything pending is about to be written */
        pss->rx_paused = 0;
    }
    out_buf.len = 0;
    int r = mqtt_conn_output(pss->c, &out_buf, WRITE_LIMIT);
    if (out_buf.len && lws_write(wsi, pg_buf_data(&out_buf), out_buf.len,
                                 (enum lws_write_protocol)how) < (int)out_buf.len)
        return -1;
    if (out_buf.cap > 4 * WRITE_LIMIT)
        pg_buf_free(&out_buf); /* one huge message should not pin memory */
    if (r < 0) {
        pss->server_close = 1;
        return -1;
    }
    if (r > 0)
        lws_callback_on_writable(wsi);
    return 0;
}

void mqtt_lws_closed(struct lws *wsi, struct mqtt_lws_pss *pss) {
    struct mqtt_listener *l = lws_get_vhost_user(lws_get_vhost(wsi));
    if (!pss->c)
        return;
    /* lws skips close_notify on a server-side close; OpenSSL 3 clients then
     * report an unexpected EOF. */
    if (pss->server_close && lws_is_ssl(wsi) && lws_get_ssl(wsi))
        SSL_shutdown(lws_get_ssl(wsi));
    mqtt_conn_closed(pss->c);
    pss->c = NULL;
    l->n_connections--;
    (*l->total_connections)--;
}

static int on_adopt(struct lws *wsi, struct mqtt_lws_pss *pss) {
    char peer[64];
    pg_peer_name(lws_get_socket_fd(wsi), peer, sizeof peer);
    return mqtt_lws_open(wsi, pss, peer);
}

static int mqtt_raw_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                             void *in, size_t len) {
    struct mqtt_lws_pss *pss = user;
    switch (reason) {
    case LWS_CALLBACK_RAW_ADOPT:
        return on_adopt(wsi, pss);
    case LWS_CALLBACK_RAW_RX:
        return mqtt_lws_input(wsi, pss, in, len);
    case LWS_CALLBACK_RAW_WRITEABLE:
        return mqtt_lws_output(wsi, pss, LWS_WRITE_RAW);
    case LWS_CALLBACK_OPENSSL_PERFORM_CLIENT_CERT_VERIFICATION:
        /* lws accepts the certificate unless we object: pass on OpenSSL's verdict
         * (len is preverify_ok), or a certificate from any CA would do. The wsi
         * and user are not real here. */
        return len ? 0 : 1;
    case LWS_CALLBACK_TIMER:
        if (pss->c)
            mqtt_conn_wake(pss->c);
        return 0;
    case LWS_CALLBACK_RAW_CLOSE:
        mqtt_lws_closed(wsi, pss);
        return 0;
    default:
        return 0;
    }
}

const struct lws_protocols mqtt_raw_protocols[] = {
    {"mqtt", mqtt_raw_callback, sizeof(struct mqtt_lws_pss), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};
