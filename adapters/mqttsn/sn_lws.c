/* sn_lws.c - MQTT-SN over UDP on the lws loop: our own bound UDP socket (IPv4 or
 * IPv6), adopted by lws only to say when it is readable; each datagram is read
 * with recvfrom() and handed to the gateway with its sender, and replies go out
 * with sendto() to the address the gateway names.
 *
 * Not lws's own UDP adoption: it takes a zero-length datagram for a closed
 * connection and closes the listener (anyone could stop the gateway with one
 * empty packet), and it binds IPv4 only (shared/notes/lws-libcoap.md, "UDP").
 *
 * Datagrams are read in batches (recvmmsg), and the replies made while handling a
 * batch are sent together (sendmmsg) at its end, so a sensor's PUBLISH and our
 * PUBACK cost a fraction of a system call each. Anything sent outside a batch
 * (deliveries caused by other clients' messages) goes out at once. The socket
 * buffers are raised: a burst of sensor datagrams must queue in the kernel rather
 * than be dropped while the loop is busy.
 */
#define _GNU_SOURCE /* recvmmsg, sendmmsg */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "adapters/mqttsn/sn_lws.h"
#include "adapters/sockaddr.h"
#include "gateway/log.h"

#define SOCKET_BUFFER    (4 * 1024 * 1024)
#define BATCH            32  /* datagrams per recvmmsg, and replies per sendmmsg */
#define BATCHES_PER_WAKE 8   /* then let other connections have the loop */
#define SMALL            512 /* replies up to this size are batched; larger go at once */

/* Replies waiting for the end of the batch that caused them. */
struct out_batch {
    struct mmsghdr msg[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_storage to[BATCH];
    uint8_t data[BATCH][SMALL];
    unsigned n;
};

struct sn_lws {
    struct sn_gw *gw;
    struct lws_vhost *vh;
    struct lws *wsi;
    int fd;
    int port;
    int batching; /* inside read_datagrams: replies wait in `out` */
    uint64_t send_failures;
};

static struct out_batch out; /* one loop thread: one batch at a time */

static void send_failed(struct sn_lws *l) {
    if (l->send_failures++ % 1000 == 0) /* UDP may drop; QoS 1/2 are resent */
        pg_warn("mqtt-sn: sendto failed: %s (%llu so far)", strerror(errno),
                (unsigned long long)l->send_failures);
}

static void flush(struct sn_lws *l) {
    unsigned done = 0;
    while (done < out.n) {
        int k = sendmmsg(l->fd, out.msg + done, out.n - done, 0);
        if (k <= 0) {
            send_failed(l);
            break; /* the rest is dropped, as a full socket would */
        }
        done += (unsigned)k;
    }
    out.n = 0;
}

static void send_datagram(void *ud, const struct sockaddr *to, socklen_t tolen, const uint8_t *buf,
                          size_t len) {
    struct sn_lws *l = ud;
    if (l->fd < 0)
        return;
    if (!l->batching || len > SMALL || tolen > sizeof out.to[0]) {
        if (sendto(l->fd, buf, len, 0, to, tolen) < 0)
            send_failed(l);
        return;
    }
    if (out.n == BATCH)
        flush(l);
    unsigned i = out.n++;
    memcpy(out.data[i], buf, len);
    memcpy(&out.to[i], to, tolen);
    out.iov[i] = (struct iovec){out.data[i], len};
    out.msg[i].msg_hdr = (struct msghdr){
        .msg_name = &out.to[i], .msg_namelen = tolen, .msg_iov = &out.iov[i], .msg_iovlen = 1};
}

/* One batch of datagrams; returns how many were read. */
static int read_batch(struct sn_lws *l) {
    static uint8_t buf[BATCH][65536];
    static struct mmsghdr msg[BATCH];
    static struct iovec iov[BATCH];
    static struct sockaddr_storage from[BATCH];
    for (int i = 0; i < BATCH; i++) {
        iov[i] = (struct iovec){buf[i], sizeof buf[i]};
        msg[i].msg_hdr = (struct msghdr){.msg_name = &from[i],
                                         .msg_namelen = sizeof from[i],
                                         .msg_iov = &iov[i],
                                         .msg_iovlen = 1};
    }
    int n = recvmmsg(l->fd, msg, BATCH, MSG_DONTWAIT, NULL);
    for (int i = 0; i < n && l->gw; i++) {
        if (msg[i].msg_hdr.msg_flags & MSG_TRUNC)
            continue; /* cannot happen with UDP's own limit; never parse a cut datagram */
        sn_gw_input(l->gw, (struct sockaddr *)&from[i], msg[i].msg_hdr.msg_namelen, buf[i],
                    msg[i].msg_len);
    }
    return n;
}

static void read_datagrams(struct sn_lws *l) {
    l->batching = 1;
    for (int i = 0; i < BATCHES_PER_WAKE; i++) {
        int n = read_batch(l);
        flush(l);
        if (n < BATCH)
            break; /* all read (or EAGAIN) */
    }
    l->batching = 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
    struct sn_lws *l = wsi ? lws_get_opaque_user_data(wsi) : NULL;
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        if (l)
            read_datagrams(l);
        return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
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

/* A bound non-blocking UDP socket, or -1 with err set. */
static int bind_udp(const char *bind_addr, int port, int broadcast, char *err, size_t errlen) {
    struct sockaddr_storage ss;
    socklen_t len = pg_sockaddr(bind_addr, port, &ss);
    int v6 = ss.ss_family == AF_INET6;
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0 && v6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (fd >= 0 && broadcast)
        setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) < 0) {
        snprintf(err, errlen, "cannot listen for mqttsn on UDP %s%s%s:%d: %s", v6 ? "[" : "",
                 bind_addr, v6 ? "]" : "", port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

struct sn_lws *sn_lws_open(struct lws_context *cx, const char *bind_addr, int port, int broadcast,
                           char *err, size_t errlen) {
    struct sn_lws *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if ((l->fd = bind_udp(bind_addr, port, broadcast, err, errlen)) < 0) {
        free(l);
        return NULL;
    }
    raise_buffers(l->fd);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) == 0)
        l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    struct lws_context_creation_info vi;
    memset(&vi, 0, sizeof vi);
    char name[64];
    snprintf(name, sizeof name, "mqttsn-%s-%d", bind_addr, l->port);
    vi.vhost_name = name;
    vi.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    vi.protocols = protocols;
    l->vh = lws_create_vhost(cx, &vi);
    lws_sock_file_fd_type fd = {.filefd = l->fd};
    if (l->vh)
        l->wsi =
            lws_adopt_descriptor_vhost(l->vh, LWS_ADOPT_RAW_FILE_DESC, fd, protocols[0].name, NULL);
    if (!l->wsi) {
        snprintf(err, errlen, "cannot add the mqttsn UDP socket to the event loop");
        close(l->fd);
        free(l);
        return NULL;
    }
    lws_set_opaque_user_data(l->wsi, l);
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
    free(l); /* the wsi (which closes the socket) and vhost go with the lws context */
}
