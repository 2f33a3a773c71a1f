/* sn_ep.c - loadgen's MQTT-SN clients over UDP (see sn_ep.h): sockets, the
 * set-up dialogue with resends, batched sendmmsg/recvmmsg and UDP GSO. */
#include "sn_ep.h"
#include "loadgen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define RCVBUF       (1 << 20) /* per socket: a subscriber's backlog must not overflow */
#define BATCH        32        /* datagrams per sendmmsg / recvmmsg */
#define READS_PER_EV 4         /* recvmmsg calls per readiness event (fairness) */
#define SLOT         65536     /* the largest datagram */
#define GSO_MAX_SEGS 64        /* the kernel's UDP_MAX_SEGMENTS */
#define GSO_MAX_LEN  65000     /* bytes per GSO send (below the 64 KB IP limit) */

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

static struct {
    struct sockaddr_in addr;
    struct sn_ep_handlers h;
    double retry_secs;
    unsigned max_retries;
    uint16_t duration;
    bool gso; /* batches of equal datagrams go out as one UDP_SEGMENT send */
    int rcvbuf;
    struct sn_ep_stats stats;
    uint8_t *slots; /* BATCH * SLOT receive buffers */
} S;

static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n);
    if (!p) {
        perror("loadgen: realloc");
        exit(1);
    }
    return p;
}

int sn_ep_init(const char *host, uint16_t port, const struct sn_ep_handlers *h, double retry_secs,
               unsigned max_retries, uint16_t duration, bool gso) {
    S.gso = gso;
    memset(&S.addr, 0, sizeof(S.addr));
    S.addr.sin_family = AF_INET;
    S.addr.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &S.addr.sin_addr) != 1) {
        fprintf(stderr, "loadgen: bad IPv4 address '%s'\n", host);
        return -1;
    }
    S.h = *h;
    S.retry_secs = retry_secs;
    S.max_retries = max_retries;
    S.duration = duration;
    S.slots = xrealloc(NULL, (size_t)BATCH * SLOT);
    return 0;
}

const struct sn_ep_stats *sn_ep_get_stats(void) {
    return &S.stats;
}

int sn_ep_rcvbuf(void) {
    return S.rcvbuf;
}

uint16_t sn_ep_msg_id(struct sn_ep *ep) {
    if (++ep->next_msg_id == 0)
        ep->next_msg_id = 1;
    return ep->next_msg_id;
}

bool sn_ep_knows(const struct sn_ep *ep, uint16_t topic_id) {
    if (topic_id && topic_id == ep->topic_id)
        return true;
    for (unsigned i = 0; i < ep->n_known; i++) {
        if (ep->known[i] == topic_id)
            return true;
    }
    return false;
}

/* ---- closing and failing ---- */

void sn_ep_close(struct sn_ep *ep) {
    if (ep->open) {
        net_watch_del(&ep->w);
        close(ep->w.fd);
        ep->w.fd = -1;
        ep->open = false;
    }
    free(ep->data);
    free(ep->dg_off);
    ep->data = NULL;
    ep->dg_off = NULL;
    ep->len = ep->cap = 0;
    ep->dg_n = ep->dg_sent = ep->dg_cap = 0;
}

static void fail(struct sn_ep *ep, const char *why) {
    if (ep->state == SN_EP_FAILED)
        return;
    sn_ep_close(ep);
    ep->state = SN_EP_FAILED;
    S.h.on_failed(ep, why);
}

/* ---- output ---- */

uint8_t *sn_ep_reserve(struct sn_ep *ep, size_t n) {
    if (ep->dg_sent == ep->dg_n) { /* everything went out: start over */
        ep->dg_n = ep->dg_sent = 0;
        ep->len = 0;
    }
    if (ep->len + n > ep->cap) {
        size_t cap = ep->cap ? ep->cap : 1024;
        while (cap < ep->len + n)
            cap *= 2;
        ep->data = xrealloc(ep->data, cap);
        ep->cap = cap;
    }
    if (ep->dg_n + 2 > ep->dg_cap) {
        ep->dg_cap = ep->dg_cap ? ep->dg_cap * 2 : 64;
        ep->dg_off = xrealloc(ep->dg_off, ep->dg_cap * sizeof(*ep->dg_off));
    }
    ep->dg_off[ep->dg_n] = (uint32_t)ep->len;
    return ep->data + ep->len;
}

void sn_ep_commit(struct sn_ep *ep, size_t len) {
    ep->len += len;
    ep->dg_n++;
    ep->dg_off[ep->dg_n] = (uint32_t)ep->len;
}

size_t sn_ep_pending(const struct sn_ep *ep) {
    return ep->dg_n - ep->dg_sent;
}

static void arm_out(struct sn_ep *ep, bool on) {
    if (ep->out_armed == on)
        return;
    if (net_watch_mod(&ep->w, EPOLLIN | (on ? EPOLLOUT : 0)) != 0) {
        fail(ep, strerror(errno));
        return;
    }
    ep->out_armed = on;
}

static const char *sock_error(int err) {
    static char why[128];
    if (err == ECONNREFUSED)
        return "gateway port unreachable (ICMP port unreachable: nothing listens there)";
    snprintf(why, sizeof(why), "%s", strerror(err));
    return why;
}

static unsigned dg_len(const struct sn_ep *ep, unsigned d) {
    return ep->dg_off[d + 1] - ep->dg_off[d];
}

/* How many queued datagrams from dg_sent on have the same size (at most what
 * one GSO send may carry). */
static unsigned equal_run(const struct sn_ep *ep) {
    unsigned len = dg_len(ep, ep->dg_sent), k = 1;
    while (ep->dg_sent + k < ep->dg_n && k < GSO_MAX_SEGS && (k + 1) * len <= GSO_MAX_LEN &&
           dg_len(ep, ep->dg_sent + k) == len)
        k++;
    return k;
}

/* Sends k equal datagrams as one UDP GSO buffer: the kernel cuts it into k
 * ordinary datagrams (the gateway cannot tell), at a fraction of the cost of k
 * sends. Returns what send returned: datagrams sent, or -1 with errno. */
static int send_gso(struct sn_ep *ep, unsigned k) {
    unsigned len = dg_len(ep, ep->dg_sent);
    struct iovec iov = {ep->data + ep->dg_off[ep->dg_sent], (size_t)k * len};
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } cb;
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.buf, .msg_controllen = sizeof(cb.buf)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t seg = (uint16_t)len;
    memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
    ssize_t n = sendmsg(ep->w.fd, &m, MSG_DONTWAIT);
    S.stats.gso_sends++;
    return n < 0 ? -1 : (int)k;
}

void sn_ep_flush(struct sn_ep *ep) {
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH];
    while (ep->state != SN_EP_FAILED && ep->dg_sent < ep->dg_n) {
        unsigned run = S.gso ? equal_run(ep) : 1;
        if (run >= 2) {
            int n = send_gso(ep, run);
            if (n < 0 &&
                (errno == EINVAL || errno == EIO || errno == ENOPROTOOPT || errno == EOPNOTSUPP)) {
                S.gso = false; /* a kernel without UDP GSO: plain sends from now on */
                fprintf(stderr, "loadgen: UDP GSO unavailable (%s): plain sends\n",
                        strerror(errno));
                continue;
            }
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
                    S.stats.eagain++;
                    arm_out(ep, true);
                    return;
                }
                fail(ep, sock_error(errno));
                return;
            }
            ep->dg_sent += (unsigned)n;
            S.stats.dg_out += (uint64_t)n;
            continue;
        }
        unsigned k = ep->dg_n - ep->dg_sent < BATCH ? ep->dg_n - ep->dg_sent : BATCH;
        for (unsigned i = 0; i < k; i++) {
            unsigned d = ep->dg_sent + i;
            iov[i].iov_base = ep->data + ep->dg_off[d];
            iov[i].iov_len = ep->dg_off[d + 1] - ep->dg_off[d];
            memset(&mm[i], 0, sizeof(mm[i]));
            mm[i].msg_hdr.msg_iov = &iov[i];
            mm[i].msg_hdr.msg_iovlen = 1;
        }
        int n = sendmmsg(ep->w.fd, mm, k, MSG_DONTWAIT);
        S.stats.sendmmsg++;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
                S.stats.eagain++;
                arm_out(ep, true);
                return;
            }
            fail(ep, sock_error(errno));
            return;
        }
        ep->dg_sent += (unsigned)n;
        S.stats.dg_out += (uint64_t)n;
    }
    if (ep->state != SN_EP_FAILED && ep->out_armed)
        arm_out(ep, false);
}

/* ---- the set-up dialogue ---- */

static void queue_step(struct sn_ep *ep, bool dup) {
    size_t tlen = ep->topic ? strlen(ep->topic) : 0;
    uint8_t *p = sn_ep_reserve(ep, MQTTSN_MAX_HEADER + 8 + sizeof(ep->client_id) + tlen);
    size_t n = 0;
    switch (ep->state) {
    case SN_EP_CONNECTING:
        n = mqttsn_connect(p, MQTTSN_FLAG_CLEAN, S.duration, ep->client_id);
        break;
    case SN_EP_REGISTERING:
        n = mqttsn_register(p, 0, ep->step_msg_id, ep->topic);
        break;
    case SN_EP_SUBSCRIBING:
        n = mqttsn_subscribe_name(
            p, (uint8_t)(mqttsn_qos_flags(ep->sub_qos) | (dup ? MQTTSN_FLAG_DUP : 0)),
            ep->step_msg_id, ep->topic);
        break;
    default:
        return;
    }
    sn_ep_commit(ep, n);
    sn_ep_flush(ep);
}

static void step(struct sn_ep *ep, uint8_t state, double now) {
    ep->state = state;
    ep->tries = 0;
    ep->sent_at = now;
    if (state == SN_EP_REGISTERING || state == SN_EP_SUBSCRIBING)
        ep->step_msg_id = sn_ep_msg_id(ep);
    if (state == SN_EP_READY) {
        S.h.on_ready(ep);
        return;
    }
    queue_step(ep, false);
}

static void on_event(struct net_watch *w, uint32_t events);

const char *sn_ep_open(struct sn_ep *ep) {
    if (ep->open)
        return NULL;
    ep->w.fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ep->w.on_event = on_event;
    if (ep->w.fd < 0)
        return strerror(errno);
    int size = RCVBUF;
    /* FORCE passes net.core.rmem_max when we may (root); else the capped one. */
    if (setsockopt(ep->w.fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0)
        setsockopt(ep->w.fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    if (!S.rcvbuf) {
        socklen_t sl = sizeof(S.rcvbuf);
        getsockopt(ep->w.fd, SOL_SOCKET, SO_RCVBUF, &S.rcvbuf, &sl);
    }
    if (connect(ep->w.fd, (struct sockaddr *)&S.addr, sizeof(S.addr)) != 0 ||
        net_watch_add(&ep->w, EPOLLIN) != 0) {
        const char *why = strerror(errno);
        close(ep->w.fd);
        ep->w.fd = -1;
        return why;
    }
    ep->open = true;
    return NULL;
}

void sn_ep_start(struct sn_ep *ep, double now) {
    const char *why = sn_ep_open(ep);
    if (why) {
        ep->state = SN_EP_FAILED;
        S.h.on_failed(ep, why);
        return;
    }
    step(ep, SN_EP_CONNECTING, now);
}

void sn_ep_tick(struct sn_ep *ep, double now) {
    if (ep->state < SN_EP_CONNECTING || ep->state >= SN_EP_READY ||
        now - ep->sent_at < S.retry_secs)
        return;
    if (ep->tries >= S.max_retries) {
        static char why[96];
        static const char *const what[] = {"", "CONNECT", "REGISTER", "SUBSCRIBE"};
        snprintf(why, sizeof(why), "no answer to %s after %u resends", what[ep->state],
                 S.max_retries);
        fail(ep, why);
        return;
    }
    ep->tries++;
    ep->sent_at = now;
    S.stats.retries++;
    queue_step(ep, true);
}

/* A REGISTER from the gateway (a topic a wildcard subscription matched). */
static void on_register(struct sn_ep *ep, const struct mqttsn_pkt *pk) {
    uint16_t id, msg_id;
    const uint8_t *t;
    size_t tl;
    if (mqttsn_parse_register(pk, &id, &msg_id, &t, &tl) != 0) {
        S.stats.malformed++;
        return;
    }
    uint8_t rc = MQTTSN_RC_ACCEPTED;
    if (!sn_ep_knows(ep, id)) {
        if (ep->n_known < SN_EP_MAX_KNOWN)
            ep->known[ep->n_known++] = id;
        else
            rc = MQTTSN_RC_CONGESTION;
    }
    S.stats.registered++;
    sn_ep_commit(ep, mqttsn_regack(sn_ep_reserve(ep, 7), id, msg_id, rc));
}

static void refused(struct sn_ep *ep, const char *what, uint8_t rc) {
    static char why[96];
    static const char *const rcs[] = {"accepted", "rejected: congestion",
                                      "rejected: invalid topic ID", "rejected: not supported"};
    snprintf(why, sizeof(why), "%s refused: return code %u (%s)", what, rc,
             rc < 4 ? rcs[rc] : "unknown");
    fail(ep, why);
}

/* Returns true when pk belonged to the set-up dialogue. */
static bool setup_packet(struct sn_ep *ep, const struct mqttsn_pkt *pk, double now) {
    uint16_t id, msg_id;
    uint8_t rc, flags;
    switch (pk->type) {
    case MQTTSN_CONNACK:
        if (mqttsn_parse_connack(pk, &rc) != 0) {
            S.stats.malformed++;
        } else if (ep->state == SN_EP_CONNECTING) { /* else a resend's second answer */
            if (rc != MQTTSN_RC_ACCEPTED)
                refused(ep, "CONNECT", rc);
            else
                step(ep,
                     !ep->topic      ? SN_EP_READY
                     : ep->subscribe ? SN_EP_SUBSCRIBING
                                     : SN_EP_REGISTERING,
                     now);
        }
        return true;
    case MQTTSN_REGACK:
        if (mqttsn_parse_ack3(pk, &id, &msg_id, &rc) != 0) {
            S.stats.malformed++;
        } else if (ep->state == SN_EP_REGISTERING && msg_id == ep->step_msg_id) {
            if (rc != MQTTSN_RC_ACCEPTED) {
                refused(ep, "REGISTER", rc);
            } else {
                ep->topic_id = id;
                step(ep, SN_EP_READY, now);
            }
        }
        return true;
    case MQTTSN_SUBACK:
        if (mqttsn_parse_suback(pk, &flags, &id, &msg_id, &rc) != 0) {
            S.stats.malformed++;
        } else if (ep->state == SN_EP_SUBSCRIBING && msg_id == ep->step_msg_id) {
            if (rc != MQTTSN_RC_ACCEPTED) {
                refused(ep, "SUBSCRIBE", rc);
            } else {
                ep->topic_id = id;
                ep->granted_qos = (uint8_t)mqttsn_flags_qos(flags);
                step(ep, SN_EP_READY, now);
            }
        }
        return true;
    case MQTTSN_REGISTER:
        on_register(ep, pk);
        return true;
    case MQTTSN_DISCONNECT:
        fail(ep, "the gateway sent DISCONNECT");
        return true;
    default:
        return false;
    }
}

/* ---- input ---- */

/* One datagram from the gateway. */
static void dispatch(struct sn_ep *ep, const uint8_t *data, size_t len, double now) {
    struct mqttsn_pkt pk;
    if (mqttsn_frame(data, len, &pk) != 0) {
        S.stats.malformed++;
        return;
    }
    if (!setup_packet(ep, &pk, now))
        S.h.on_packet(ep, &pk);
}

static void on_event(struct net_watch *w, uint32_t events) {
    struct sn_ep *ep = (struct sn_ep *)w;
    if (events & EPOLLOUT)
        sn_ep_flush(ep);
    if (!(events & (EPOLLIN | EPOLLERR)) || ep->state == SN_EP_FAILED)
        return;
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH];
    double now = now_sec();
    for (int r = 0; r < READS_PER_EV; r++) {
        for (unsigned i = 0; i < BATCH; i++) {
            iov[i].iov_base = S.slots + (size_t)i * SLOT;
            iov[i].iov_len = SLOT;
            memset(&mm[i], 0, sizeof(mm[i]));
            mm[i].msg_hdr.msg_iov = &iov[i];
            mm[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(ep->w.fd, mm, BATCH, MSG_DONTWAIT, NULL);
        S.stats.recvmmsg++;
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                break;
            fail(ep, sock_error(errno));
            return;
        }
        S.stats.dg_in += (uint64_t)n;
        for (int i = 0; i < n && ep->state != SN_EP_FAILED; i++) {
            if (mm[i].msg_hdr.msg_flags & MSG_TRUNC)
                S.stats.malformed++;
            else
                dispatch(ep, iov[i].iov_base, mm[i].msg_len, now);
        }
        if (ep->state == SN_EP_FAILED)
            return;
        if (n < BATCH)
            break;
    }
    if (sn_ep_pending(ep))
        sn_ep_flush(ep);
}
