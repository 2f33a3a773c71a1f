/* net.c - loadgen's connection layer (see net.h): epoll loop, buffered
 * non-blocking writes, packet framing over a shared read buffer, connect
 * throttling, and the WebSocket transport (handshake, frame wrapping and
 * unwrapping). Errors on a connection go to the owner's on_closed. */
#include "net.h"
#include "ws.h"

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

/* One connection's WebSocket state. */
struct ws_conn {
    struct buf wire;  /* frames (first the upgrade request) not yet sent */
    bool open;        /* 101 received and checked */
    bool in_msg;      /* inside a fragmented data message */
    uint8_t op;       /* opcode of the frame whose payload is being read */
    uint8_t hdr_len;  /* bytes of an incomplete frame header in hdr */
    uint8_t ctrl_len; /* control frame payload gathered so far */
    uint64_t left;    /* payload bytes of the current frame still to come */
    uint8_t hdr[WS_MAX_HEADER];
    uint8_t ctrl[WS_MAX_CONTROL];
    char key[WS_KEY_LEN + 1];
};

static struct {
    int ep;
    struct sockaddr_in addr;
    struct net_handlers h;
    unsigned max_connecting, connecting;
    struct conn **queue; /* conns waiting for a connect slot */
    size_t queue_head, queue_len, queue_cap;
    uint8_t *rbuf;
    struct net_stats stats;
    const char *host;
    uint16_t port;
    const char *ws_path; /* NULL: plain TCP */
    size_t ws_frame_max;
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
    size_t n = c->out.len - c->out.off;
    if (c->ws)
        n += c->ws->wire.len - c->ws->wire.off;
    return n;
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
    net.host = host;
    net.port = port;
    net.max_connecting = max_connecting ? max_connecting : 1;
    net.rbuf = xrealloc(NULL, READ_BUF_SIZE);
    return 0;
}

void net_use_websocket(const char *path, size_t frame_max) {
    net.ws_path = path;
    net.ws_frame_max = frame_max ? frame_max : 1;
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
    if (c->ws) {
        buf_free(&c->ws->wire);
        free(c->ws);
        c->ws = NULL;
    }
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

/* Queues the upgrade request; it goes out once the TCP connect completes,
 * and what the owner queued in c->out only after the 101. */
static void ws_start(struct conn *c) {
    struct ws_conn *ws = xrealloc(NULL, sizeof(*ws));
    memset(ws, 0, sizeof(*ws));
    c->ws = ws;
    ws_make_key(ws->key);
    char req[1024];
    size_t n = ws_request(req, sizeof(req), net.host, net.port, net.ws_path, ws->key);
    if (!n) {
        fprintf(stderr, "loadgen: WebSocket path too long\n");
        exit(1);
    }
    memcpy(buf_reserve(&ws->wire, n), req, n);
    ws->wire.len += n;
}

static void start_connect(struct conn *c) {
    if (net.ws_path)
        ws_start(c);
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
    c->tag = NET_TAG_CONN;
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

/* Wraps everything in c->out into one masked binary message in ws->wire:
 * one frame, or a fragmented message of frames of at most ws_frame_max. */
static void ws_wrap_out(struct conn *c) {
    struct buf *o = &c->out, *wire = &c->ws->wire;
    size_t n = o->len - o->off, fm = net.ws_frame_max;
    if (!n)
        return;
    uint8_t *d = buf_reserve(wire, n + ((n + fm - 1) / fm) * WS_MAX_HEADER);
    const uint8_t *src = o->data + o->off;
    size_t w = 0;
    for (size_t i = 0, k; i < n; i += k) {
        k = n - i < fm ? n - i : fm;
        uint8_t b0 = (i == 0 ? WS_OP_BINARY : WS_OP_CONT) | (i + k == n ? WS_FIN : 0);
        w += ws_put_frame(d + w, b0, src + i, k, ws_next_mask());
        net.stats.ws_frames_out++;
    }
    wire->len += w;
    o->off = o->len = 0;
}

void net_flush(struct conn *c) {
    if (c->closed || c->connecting)
        return;
    struct buf *b = &c->out;
    if (c->ws) {
        if (c->ws->open)
            ws_wrap_out(c);
        b = &c->ws->wire;
    }
    while (b->off < b->len) {
        ssize_t n = send(c->fd, b->data + b->off, b->len - b->off, MSG_NOSIGNAL);
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
        b->off += (size_t)n;
    }
    b->off = b->len = 0;
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

/* ---- WebSocket input ---- */

/* Queues a control frame (pong, close) after whatever is already framed. */
static void ws_queue_control(struct conn *c, uint8_t op, const uint8_t *payload, size_t len) {
    struct buf *wire = &c->ws->wire;
    uint8_t *d = buf_reserve(wire, WS_MAX_HEADER + len);
    wire->len += ws_put_frame(d, WS_FIN | op, payload, len, ws_next_mask());
    net.stats.ws_frames_out++;
}

/* A complete control frame is in ws->ctrl. Returns -1 if c was closed. */
static int ws_control(struct conn *c) {
    struct ws_conn *ws = c->ws;
    static char why[WS_MAX_CONTROL + 64];
    switch (ws->op) {
    case WS_OP_PING:
        net.stats.ws_pings++;
        ws_queue_control(c, WS_OP_PONG, ws->ctrl, ws->ctrl_len);
        return 0;
    case WS_OP_PONG:
        return 0;
    default: { /* close: answer it, then give up on the connection */
        unsigned code = ws->ctrl_len >= 2 ? (unsigned)(ws->ctrl[0] << 8 | ws->ctrl[1]) : 1005;
        ws_queue_control(c, WS_OP_CLOSE, ws->ctrl, ws->ctrl_len >= 2 ? 2 : 0);
        struct buf *wire = &ws->wire;
        if (send(c->fd, wire->data + wire->off, wire->len - wire->off, MSG_NOSIGNAL) < 0) {
            /* the broker may be gone already: nothing to do */
        }
        snprintf(why, sizeof(why), "broker sent WebSocket close (code %u%s%.*s)", code,
                 ws->ctrl_len > 2 ? ": " : "", ws->ctrl_len > 2 ? (int)ws->ctrl_len - 2 : 0,
                 (const char *)ws->ctrl + 2);
        fail(c, why);
        return -1;
    }
    }
}

/* Checks a frame header from the broker and starts reading its payload.
 * Returns NULL, or why the frame is unacceptable. */
static const char *ws_begin_frame(struct ws_conn *ws, const struct ws_hdr *h) {
    static char why[96];
    if (h->rsv)
        return "WebSocket frame from broker with RSV bits set (no extension was negotiated)";
    if (h->masked)
        return "masked WebSocket frame from broker (RFC 6455 5.1: servers must not mask)";
    switch (h->opcode) {
    case WS_OP_CONT:
        if (!ws->in_msg)
            return "WebSocket continuation frame from broker outside a fragmented message";
        ws->in_msg = !h->fin;
        break;
    case WS_OP_BINARY:
        if (ws->in_msg)
            return "WebSocket binary frame from broker inside a fragmented message";
        ws->in_msg = !h->fin;
        break;
    case WS_OP_TEXT:
        return "WebSocket text frame from broker (MQTT must use binary frames)";
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        if (!h->fin || h->len > WS_MAX_CONTROL)
            return "WebSocket control frame from broker fragmented or longer than 125 bytes";
        break;
    default:
        snprintf(why, sizeof(why), "WebSocket frame from broker with reserved opcode %u",
                 h->opcode);
        return why;
    }
    ws->op = h->opcode;
    ws->left = h->len;
    ws->ctrl_len = 0;
    return NULL;
}

/* rbuf[0, w) holds MQTT bytes, rbuf[w, end) raw bytes from the socket.
 * Unwraps the frames in place (data payloads slide down to follow the MQTT
 * bytes), handles control frames, keeps an incomplete header in ws->hdr.
 * Returns the length of the MQTT stream in rbuf, or -1 if c was closed. */
static long ws_unwrap(struct conn *c, size_t w, size_t end) {
    struct ws_conn *ws = c->ws;
    uint8_t *b = net.rbuf;
    size_t r = w;
    while (r < end) {
        if (ws->left == 0) {
            struct ws_hdr h;
            int hl = ws_parse_header(b + r, end - r, &h);
            if (hl == 0) {
                ws->hdr_len = (uint8_t)(end - r);
                memcpy(ws->hdr, b + r, end - r);
                break;
            }
            const char *bad =
                hl < 0 ? "malformed WebSocket frame length from broker" : ws_begin_frame(ws, &h);
            if (bad) {
                fail(c, bad);
                return -1;
            }
            net.stats.ws_frames_in++;
            r += (size_t)hl;
            if (h.len == 0 && ws->op >= WS_OP_CLOSE && ws_control(c) < 0)
                return -1;
            continue;
        }
        size_t k = end - r < ws->left ? end - r : (size_t)ws->left;
        if (ws->op < WS_OP_CLOSE) {
            if (w != r)
                memmove(b + w, b + r, k);
            w += k;
        } else {
            memcpy(ws->ctrl + ws->ctrl_len, b + r, k);
            ws->ctrl_len = (uint8_t)(ws->ctrl_len + k);
        }
        r += k;
        ws->left -= k;
        if (ws->left == 0 && ws->op >= WS_OP_CLOSE && ws_control(c) < 0)
            return -1;
    }
    return (long)w;
}

/* rbuf[0, w) holds MQTT bytes, rbuf[w, end) raw frames: unwraps, dispatches
 * every complete packet, keeps the rest, sends what the packets produced. */
static void ws_consume(struct conn *c, size_t w, size_t end) {
    long total = ws_unwrap(c, w, end);
    if (total < 0)
        return;
    long used = dispatch(c, net.rbuf, (size_t)total);
    if (used < 0)
        return;
    if (used < total)
        keep_partial(c, net.rbuf + used, (size_t)(total - used));
    if (!c->closed && net_pending(c))
        net_flush(c);
}

/* Before the 101: gathers the response head in c->pend and checks it. */
static void ws_read_handshake(struct conn *c, ssize_t n, size_t have) {
    static char why[128];
    size_t total = have + (size_t)n;
    size_t head = ws_response_end(net.rbuf, total);
    c->pend.off = c->pend.len = 0;
    if (!head) {
        if (total > WS_MAX_RESPONSE) {
            fail(c, "WebSocket handshake response head too large");
            return;
        }
        keep_partial(c, net.rbuf, total);
        return;
    }
    const char *bad = ws_check_response(net.rbuf, head, c->ws->key, why, sizeof(why));
    if (bad) {
        fail(c, bad);
        return;
    }
    c->ws->open = true;
    memmove(net.rbuf, net.rbuf + head, total - head);
    ws_consume(c, 0, total - head);
    if (!c->closed)
        net_flush(c); /* the owner's CONNECT */
}

static void ws_readable(struct conn *c) {
    struct ws_conn *ws = c->ws;
    size_t have = c->pend.len - c->pend.off;
    if (have)
        memcpy(net.rbuf, c->pend.data + c->pend.off, have);
    size_t hl = ws->open ? ws->hdr_len : 0;
    memcpy(net.rbuf + have, ws->hdr, hl);
    ssize_t n = recv(c->fd, net.rbuf + have + hl, READ_BUF_SIZE - have - hl, 0);
    net.stats.recvs++;
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        fail(c, n == 0 ? (ws->open ? "connection closed by broker (no WebSocket close)"
                                   : "connection closed by broker during WebSocket handshake")
                       : strerror(errno));
        return;
    }
    if (!ws->open) {
        ws_read_handshake(c, n, have);
        return;
    }
    c->pend.off = c->pend.len = 0;
    ws->hdr_len = 0;
    ws_consume(c, have, have + hl + (size_t)n);
}

/* ---- plain TCP input ---- */

static void on_readable(struct conn *c) {
    if (c->ws) {
        ws_readable(c);
        return;
    }
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
        if (*(const uint8_t *)ev[i].data.ptr == NET_TAG_WATCH) {
            struct net_watch *w = ev[i].data.ptr;
            w->on_event(w, ev[i].events);
            continue;
        }
        struct conn *c = ev[i].data.ptr;
        if (!c->closed && (ev[i].events & (EPOLLOUT | EPOLLERR)) && (c->connecting || c->out_armed))
            on_writable(c);
        if (!c->closed && (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
            on_readable(c);
    }
}

/* ---- other descriptors ---- */

int net_watch_add(struct net_watch *w, uint32_t events) {
    w->tag = NET_TAG_WATCH;
    struct epoll_event ev = {.events = events, .data.ptr = w};
    return epoll_ctl(net.ep, EPOLL_CTL_ADD, w->fd, &ev);
}

int net_watch_mod(struct net_watch *w, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = w};
    return epoll_ctl(net.ep, EPOLL_CTL_MOD, w->fd, &ev);
}

void net_watch_del(struct net_watch *w) {
    epoll_ctl(net.ep, EPOLL_CTL_DEL, w->fd, NULL);
}

const struct net_stats *net_get_stats(void) {
    return &net.stats;
}
