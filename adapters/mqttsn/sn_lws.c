/* sn_lws.c - MQTT-SN over UDP on the lws loop: a bound UDP socket adopted by lws
 * (see shared/notes/lws-libcoap.md, "UDP"), each datagram handed to the gateway
 * with its sender, replies sent with sendto() to the address the gateway names
 * (lws_write would answer whoever sent the last datagram).
 *
 * The socket buffers are raised: a burst of sensor datagrams must queue in the
 * kernel rather than be dropped while the loop is busy.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libwebsockets.h>

#include "adapters/mqttsn/sn_lws.h"
#include "gateway/log.h"

#define SOCKET_BUFFER (4 * 1024 * 1024)

struct sn_lws {
    struct sn_gw *gw;
    struct lws_vhost *vh;
    struct lws *wsi;
    int port;
    uint64_t send_failures;
};

static void send_datagram(void *ud, const struct sockaddr *to, socklen_t tolen, const uint8_t *buf,
                          size_t len) {
    struct sn_lws *l = ud;
    if (!l->wsi)
        return;
    if (sendto(lws_get_socket_fd(l->wsi), buf, len, 0, to, tolen) < 0 &&
        l->send_failures++ % 1000 == 0) /* UDP may drop; QoS 1/2 are resent */
        pg_warn("mqtt-sn: sendto failed: %s (%llu so far)", strerror(errno),
                (unsigned long long)l->send_failures);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
    struct sn_lws *l = wsi ? lws_get_opaque_user_data(wsi) : NULL;
    switch (reason) {
    case LWS_CALLBACK_RAW_RX: {
        const struct lws_udp *u = lws_get_udp(wsi);
        if (l && u && l->gw)
            sn_gw_input(l->gw, &u->sa, u->salen, in, len);
        return 0;
    }
    case LWS_CALLBACK_RAW_CLOSE:
        if (l)
            l->wsi = NULL;
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {"mqtt-sn", callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void raise_buffers(int fd) {
    int size = SOCKET_BUFFER;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
}

struct sn_lws *sn_lws_open(struct lws_context *cx, const char *bind_addr, int port, int broadcast,
                           char *err, size_t errlen) {
    struct sn_lws *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct lws_context_creation_info vi;
    memset(&vi, 0, sizeof vi);
    char name[48];
    snprintf(name, sizeof name, "mqttsn-%s-%d", bind_addr, port);
    vi.vhost_name = name;
    vi.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    vi.protocols = protocols;
    l->vh = lws_create_vhost(cx, &vi);
    if (l->vh) {
        int flags = LWS_CAUDP_BIND | (broadcast ? LWS_CAUDP_BROADCAST : 0);
        l->wsi = lws_create_adopt_udp(l->vh, strcmp(bind_addr, "0.0.0.0") ? bind_addr : NULL, port,
                                      flags, protocols[0].name, NULL, NULL, l, NULL);
    }
    if (!l->wsi) {
        snprintf(err, errlen, "cannot listen for mqttsn on UDP %s:%d: %s", bind_addr, port,
                 strchr(bind_addr, ':') ? "IPv6 is not supported for UDP yet"
                                        : "address in use or not available");
        free(l);
        return NULL;
    }
    int fd = lws_get_socket_fd(l->wsi);
    raise_buffers(fd);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        l->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return l;
}

void sn_lws_attach(struct sn_lws *l, struct sn_gw *gw) {
    l->gw = gw;
}

sn_send_fn sn_lws_sender(void) {
    return send_datagram;
}

int sn_lws_port(const struct sn_lws *l) {
    return l->port;
}

void sn_lws_free(struct sn_lws *l) {
    free(l); /* the wsi and vhost go with the lws context */
}
