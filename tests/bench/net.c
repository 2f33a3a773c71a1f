/* net.c - loadgen's connection layer (see net.h): epoll loop, buffered
 * non-blocking writes, packet framing over a shared read buffer, connect
 * throttling. Errors on a connection go to the owner's on_closed. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef READ_BUF_SIZE /* overridable to test partial-packet handling */
#define READ_BUF_SIZE (512 * 1024)
#endif
#define MAX_EVENTS 1024

static struct {
    int ep;
    struct sockaddr_in addr;
    struct net_handlers h;
    unsigned max_connecting, connecting;
    struct conn **queue; /* conns waiting for a connect slot */
    size_t queue_head, queue_len, queue_cap;
    uint8_t *rbuf;
    struct net_stats stats;
} net;

static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n);
    if (!p) {
        perror("loadgen: realloc");
        exit(1);
    }
    return p;
}

/* ---- buffers ---- */

static uint8_t *buf_reserve(struct buf *b, size_t n) {
    if (b->off == b->len)
        b->off = b->len = 0;
    if (b->len + n > b->cap && b->off > 0) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    return b->data + b->len;
}

static void buf_free(struct buf *b) {
    free(b->data);
    memset(b, 0, sizeof(*b));
}

uint8_t *net_reserve(struct conn *c, size_t n) {
    return buf_reserve(&c->out, n);
}

void net_commit(struct conn *c, size_t n) {
    c->out.len += n;
}

size_t net_pending(const struct conn *c) {
    return c->out.len - c->out.off;
}

/* ---- setup ---- */

int net_init(const char *host, uint16_t port, unsigned max_connecting,
             const struct net_handlers *h) {
    memset(&net.addr, 0, sizeof(net.addr));
    net.addr.sin_family = AF_INET;
    net.addr.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &net.addr.sin_addr) != 1) {
        fprintf(stderr, "loadgen: bad IPv4 address '%s'\n", host);
        return -1;
    }
    net.ep = epoll_create1(EPOLL_CLOEXEC);
    if (net.ep < 0) {
        perror("loadgen: epoll_create1");
        return -1;
    }
    net.h = *h;
    net.max_connecting = max_connecting ? max_connecting : 1;
    net.rbuf = xrealloc(NULL, READ_BUF_SIZE);
    return 0;
}

int net_raise_nofile(size_t need) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur >= need)
        return 0;
    if (rl.rlim_max < need)
        rl.rlim_max = need; /* works as root, fails politely otherwise */
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        fprintf(stderr, "loadgen: cannot raise open-file limit to %zu: %s\n", need,
                strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- closing and errors ---- */

void net_close(struct conn *c) {
    if (c->closed)
        return;
    if (c->awaiting_connack) {
        c->awaiting_connack = false;
        net.connecting--;
    }
    if (c->fd >= 0) {
        epoll_ctl(net.ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->closed = true;
    buf_free(&c->out);
    buf_free(&c->pend);
}

static void fail(struct conn *c, const char *why) {
    net_close(c);
    net.h.on_closed(c, why);
}

static void set_events(struct conn *c, bool want_out) {
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(net.ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        fail(c, strerror(errno));
        return;
    }
    c->out_armed = want_out;
}

/* ---- connecting ---- */

static void start_connect(struct conn *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fail(c, strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->awaiting_connack = true;
    net.connecting++;
    /* Wait for writability either way: that is where the CONNECT goes out. */
    c->connecting = true;
    c->out_armed = true;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(net.ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        fail(c, strerror(errno));
        return;
    }
    if (connect(c->fd, (struct sockaddr *)&net.addr, sizeof(net.addr)) != 0 && errno != EINPROGRESS)
        fail(c, strerror(errno));
}

void net_queue_connect(struct conn *c) {
    c->fd = -1;
    if (net.queue_len == net.queue_cap) {
        net.queue_cap = net.queue_cap ? net.queue_cap * 2 : 64;
        net.queue = xrealloc(net.queue, net.queue_cap * sizeof(*net.queue));
    }
    net.queue[net.queue_len++] = c;
}

void net_connect_done(struct conn *c) {
    if (c->awaiting_connack) {
        c->awaiting_connack = false;
        net.connecting--;
    }
}

static void start_queued_connects(void) {
    while (net.queue_head < net.queue_len && net.connecting < net.max_connecting)
        start_connect(net.queue[net.queue_head++]);
    if (net.queue_head == net.queue_len)
        net.queue_head = net.queue_len = 0;
}

/* ---- I/O ---- */

void net_flush(struct conn *c) {
    if (c->closed || c->connecting)
        return;
    while (c->out.off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out.off, c->out.len - c->out.off, MSG_NOSIGNAL);
        net.stats.sends++;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!c->out_armed)
                    set_events(c, true);
                return;
            }
            fail(c, strerror(errno));
            return;
        }
        c->out.off += (size_t)n;
    }
    c->out.off = c->out.len = 0;
    if (c->out_armed)
        set_events(c, false);
}

static void on_writable(struct conn *c) {
    if (c->connecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            fail(c, strerror(err));
            return;
        }
        c->connecting = false;
    }
    net_flush(c);
}

/* Hands every complete packet in data[0, len) to on_packet; returns the
 * number of bytes consumed, or -1 if the connection was closed meanwhile. */
static long dispatch(struct conn *c, const uint8_t *data, size_t len) {
    size_t off = 0;
    while (off < len) {
        struct mqtt_pkt pk;
        long n = mqtt_frame(data + off, len - off, &pk);
        if (n == 0)
            break;
        if (n < 0) {
            fail(c, "malformed packet from broker");
            return -1;
        }
        net.h.on_packet(c, &pk);
        if (c->closed)
            return -1;
        off += (size_t)n;
    }
    return (long)off;
}

static void keep_partial(struct conn *c, const uint8_t *data, size_t len) {
    if (len > READ_BUF_SIZE / 2) {
        fail(c, "packet from broker too large");
        return;
    }
    memcpy(buf_reserve(&c->pend, len), data, len);
    c->pend.len += len;
}

static void on_readable(struct conn *c) {
    size_t have = c->pend.len - c->pend.off;
    if (have)
        memcpy(net.rbuf, c->pend.data + c->pend.off, have);
    ssize_t n = recv(c->fd, net.rbuf + have, READ_BUF_SIZE - have, 0);
    net.stats.recvs++;
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        fail(c, n == 0 ? "connection closed by broker" : strerror(errno));
        return;
    }
    c->pend.off = c->pend.len = 0;
    size_t total = have + (size_t)n;
    long used = dispatch(c, net.rbuf, total);
    if (used < 0)
        return;
    if ((size_t)used < total)
        keep_partial(c, net.rbuf + used, total - (size_t)used);
    if (!c->closed && net_pending(c))
        net_flush(c);
}

void net_poll(int timeout_ms) {
    static struct epoll_event ev[MAX_EVENTS];
    start_queued_connects();
    int n = epoll_wait(net.ep, ev, MAX_EVENTS, timeout_ms);
    net.stats.polls++;
    for (int i = 0; i < n; i++) {
        struct conn *c = ev[i].data.ptr;
        if (!c->closed && (ev[i].events & (EPOLLOUT | EPOLLERR)) && (c->connecting || c->out_armed))
            on_writable(c);
        if (!c->closed && (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
            on_readable(c);
    }
}

const struct net_stats *net_get_stats(void) {
    return &net.stats;
}
