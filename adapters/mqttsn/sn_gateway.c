/* sn_gateway.c - the MQTT-SN gateway's lifetime, its client tables, datagram
 * dispatch, sending and timers.
 *
 * A client is found by where its datagrams come from (address, port, and behind a
 * forwarder the wireless node id) and by its client id, so a CONNECT from a new
 * address takes the client over. Both tables are chained hash tables that grow;
 * a client is in the id table from its CONNECT on, and in the address table while
 * it has an address. Bad datagrams are dropped here, counted, and logged at most a
 * few times a second, so a flood of garbage cannot flood the log either.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/mqttsn/sn_internal.h"
#include "gateway/log.h"

#define MALFORMED_LOGS_PER_SEC 5
#define MAX_HELD               32          /* datagrams kept while an auth answer is awaited... */
#define MAX_HELD_BYTES         (64 * 1024) /* ...and their bytes */

int64_t sn_now(const struct sn_gw *gw) {
    return pg_broker_now(gw->c.broker);
}

/* ---- logging ---- */

void sn_log(struct sn_client *c, int level, const char *fmt, ...) {
    if (!pg_log_enabled(level))
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pg_log(level, "mqtt-sn %s%s%s: %s", c->peer, c->client_id ? " " : "",
           c->client_id ? c->client_id : "", msg);
}

static void peer_text(const struct sn_addr *a, char *out, size_t n) {
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (a->u.sa.sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &a->u.in6.sin6_addr, host, sizeof host);
        port = ntohs(a->u.in6.sin6_port);
        snprintf(out, n, "[%s]:%d", host, port);
    } else {
        inet_ntop(AF_INET, &a->u.in.sin_addr, host, sizeof host);
        port = ntohs(a->u.in.sin_port);
        snprintf(out, n, "%s:%d", host, port);
    }
    size_t k = strlen(out);
    for (uint8_t i = 0; i < a->node_len && k + 3 < n; i++) /* "/node:0a1b..." */
        k += (size_t)snprintf(out + k, n - k, "%s%02x", i ? "" : "/node:", a->node[i]);
}

static void log_malformed(struct sn_gw *gw, const struct sn_addr *from, const char *what) {
    gw->dropped_malformed++;
    int64_t now = sn_now(gw);
    if (now - gw->log_window >= 1000) {
        gw->log_window = now;
        gw->logged_in_window = 0;
    }
    if (gw->logged_in_window++ >= MALFORMED_LOGS_PER_SEC)
        return;
    char peer[80];
    peer_text(from, peer, sizeof peer);
    pg_notice("mqtt-sn %s: datagram dropped: %s (%llu dropped so far)", peer, what,
              (unsigned long long)gw->dropped_malformed);
}

/* ---- the tables ---- */

static uint32_t hash_bytes(const void *p, size_t n) {
    const uint8_t *b = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 16777619u;
    return h;
}

/* The address as a key: family, port, address bytes, node id. */
static size_t addr_key(const struct sn_addr *a, uint8_t *k) {
    size_t n = 0;
    k[n++] = (uint8_t)a->u.sa.sa_family;
    if (a->u.sa.sa_family == AF_INET6) {
        memcpy(k + n, &a->u.in6.sin6_port, 2);
        memcpy(k + n + 2, &a->u.in6.sin6_addr, 16);
        n += 18;
    } else {
        memcpy(k + n, &a->u.in.sin_port, 2);
        memcpy(k + n + 2, &a->u.in.sin_addr, 4);
        n += 6;
    }
    memcpy(k + n, a->node, a->node_len);
    return n + a->node_len;
}

#define KEY_MAX (1 + 18 + sizeof(((struct sn_addr *)0)->node))

static struct sn_client **addr_slot(struct sn_gw *gw, const uint8_t *k, size_t n) {
    return &gw->by_addr[hash_bytes(k, n) & (gw->cap - 1)];
}

static struct sn_client *client_by_addr(struct sn_gw *gw, const struct sn_addr *a) {
    uint8_t k[KEY_MAX];
    size_t n = addr_key(a, k);
    for (struct sn_client *c = *addr_slot(gw, k, n); c; c = c->next_by_addr)
        if (c->akey_len == n && !memcmp(c->akey, k, n))
            return c;
    return NULL;
}

struct sn_client *sn_client_by_id(struct sn_gw *gw, const char *client_id) {
    struct sn_client *c = gw->by_id[hash_bytes(client_id, strlen(client_id)) & (gw->cap - 1)];
    while (c && strcmp(c->client_id, client_id))
        c = c->next_by_id;
    return c;
}

static void unlink_addr(struct sn_client *c) {
    if (!c->akey)
        return;
    struct sn_client **pp = addr_slot(c->gw, c->akey, c->akey_len);
    while (*pp && *pp != c)
        pp = &(*pp)->next_by_addr;
    if (*pp)
        *pp = c->next_by_addr;
    free(c->akey);
    c->akey = NULL;
}

static void link_addr(struct sn_client *c, const struct sn_addr *a) {
    uint8_t k[KEY_MAX];
    size_t n = addr_key(a, k);
    struct sn_client *other = client_by_addr(c->gw, a);
    if (other && other != c)
        unlink_addr(other); /* a new client at the old one's address */
    c->akey = malloc(n);
    if (!c->akey)
        return;
    memcpy(c->akey, k, n);
    c->akey_len = (uint16_t)n;
    c->addr = *a;
    peer_text(a, c->peer, sizeof c->peer);
    struct sn_client **slot = addr_slot(c->gw, k, n);
    c->next_by_addr = *slot;
    *slot = c;
}

static void unlink_id(struct sn_client *c) {
    struct sn_client **pp =
        &c->gw->by_id[hash_bytes(c->client_id, strlen(c->client_id)) & (c->gw->cap - 1)];
    while (*pp && *pp != c)
        pp = &(*pp)->next_by_id;
    if (*pp)
        *pp = c->next_by_id;
}

/* Doubles both tables when they get full; on failure chains just get longer. */
static void grow(struct sn_gw *gw) {
    uint32_t cap = gw->cap * 2;
    struct sn_client **a = calloc(cap, sizeof *a), **d = calloc(cap, sizeof *d);
    if (!a || !d) {
        free(a);
        free(d);
        return;
    }
    for (uint32_t i = 0; i < gw->cap; i++) {
        for (struct sn_client *c = gw->by_id[i], *next; c; c = next) {
            next = c->next_by_id;
            struct sn_client **s = &d[hash_bytes(c->client_id, strlen(c->client_id)) & (cap - 1)];
            c->next_by_id = *s;
            *s = c;
        }
        for (struct sn_client *c = gw->by_addr[i], *next; c; c = next) {
            next = c->next_by_addr;
            struct sn_client **s = &a[hash_bytes(c->akey, c->akey_len) & (cap - 1)];
            c->next_by_addr = *s;
            *s = c;
        }
    }
    free(gw->by_addr);
    free(gw->by_id);
    gw->by_addr = a;
    gw->by_id = d;
    gw->cap = cap;
}

struct sn_client *sn_client_new(struct sn_gw *gw, const struct sn_addr *a, const char *client_id) {
    if (gw->n_clients >= gw->cap)
        grow(gw);
    struct sn_client *c = calloc(1, sizeof *c);
    if (!c || !(c->client_id = strdup(client_id))) {
        free(c);
        return NULL;
    }
    c->gw = gw;
    c->held_tail = &c->held;
    link_addr(c, a);
    struct sn_client **slot = &gw->by_id[hash_bytes(client_id, strlen(client_id)) & (gw->cap - 1)];
    c->next_by_id = *slot;
    *slot = c;
    gw->n_clients++;
    return c;
}

void sn_client_move(struct sn_client *c, const struct sn_addr *a) {
    unlink_addr(c);
    link_addr(c, a);
}

void sn_held_clear(struct sn_client *c) {
    while (c->held) {
        struct sn_held *h = c->held;
        c->held = h->next;
        free(h);
    }
    c->held_tail = &c->held;
    c->n_held = 0;
    c->held_bytes = 0;
}

void sn_pin(struct sn_client *c) {
    c->busy++;
}

int sn_unpin(struct sn_client *c) {
    if (--c->busy == 0 && c->dead) {
        free(c);
        return 0;
    }
    return !c->dead;
}

void sn_client_free(struct sn_client *c) {
    struct sn_gw *gw = c->gw;
    if (c->dead)
        return;
    pg_forget_conn(gw->c.broker, c);
    sn_detach(c, PG_DISC_NORMAL, 0);
    unlink_addr(c);
    unlink_id(c);
    sn_out_clear(c);
    sn_regs_clear(c);
    sn_held_clear(c);
    free(c->will_topic);
    free(c->will_msg);
    free(c->client_id);
    c->client_id = NULL;
    c->dead = 1;
    gw->n_clients--;
    if (!c->busy)
        free(c);
}

/* ---- sending ---- */

void sn_send(struct sn_gw *gw, const struct sn_addr *to, const struct sn_msg *m) {
    static uint8_t buf[65536], wrapped[65536];
    size_t n = sn_encode(m, buf, sizeof buf);
    if (!n)
        return;
    if (to->node_len) { /* back through the forwarder, for the same node */
        struct sn_msg e = {.type = SN_ENCAPSULATED};
        e.u.encap.radius = 0;
        e.u.encap.wireless_node_id = (sn_str){to->node, to->node_len};
        e.u.encap.inner = (sn_str){buf, n};
        n = sn_encode(&e, wrapped, sizeof wrapped);
        if (!n)
            return;
        gw->send(gw->send_ud, &to->u.sa, to->len, wrapped, n);
        return;
    }
    gw->send(gw->send_ud, &to->u.sa, to->len, buf, n);
}

void sn_send_client(struct sn_client *c, const struct sn_msg *m) {
    sn_send(c->gw, &c->addr, m);
}

void sn_send_rc(struct sn_client *c, uint8_t type, uint8_t rc) {
    struct sn_msg m = {.type = type};
    m.u.resp.rc = rc;
    sn_send_client(c, &m);
}

void sn_send_simple(struct sn_client *c, uint8_t type) {
    struct sn_msg m;
    memset(&m, 0, sizeof m);
    m.type = type;
    sn_send_client(c, &m);
}

/* ---- datagrams ---- */

/* GWINFO to the sender, and to the broadcast address when there is one, so the
 * other devices in range learn of the gateway too. */
static void answer_searchgw(struct sn_gw *gw, const struct sn_addr *from) {
    struct sn_msg m = {.type = SN_GWINFO};
    m.u.gwinfo.gw_id = gw->c.gateway_id;
    sn_send(gw, from, &m);
    if (gw->broadcast.len)
        sn_send(gw, &gw->broadcast, &m);
}

static void tell_to_connect(struct sn_gw *gw, const struct sn_addr *from) {
    struct sn_msg m;
    memset(&m, 0, sizeof m);
    m.type = SN_DISCONNECT;
    sn_send(gw, from, &m);
}

static struct sn_held *held_new(struct sn_client *c, const uint8_t *buf, size_t len) {
    if (c->n_held >= MAX_HELD || c->held_bytes + len > MAX_HELD_BYTES) {
        sn_log(c, PG_LOG_NOTICE, "datagram dropped while waiting for authorization");
        return NULL;
    }
    struct sn_held *h = malloc(sizeof *h + len);
    if (!h)
        return NULL;
    h->next = NULL;
    h->len = len;
    memcpy(h->data, buf, len);
    c->n_held++;
    c->held_bytes += len;
    return h;
}

/* A waiting client's datagrams are kept, in order, for after the answer. */
static void hold(struct sn_client *c, const uint8_t *buf, size_t len) {
    struct sn_held *h = held_new(c, buf, len);
    if (!h)
        return;
    *c->held_tail = h;
    c->held_tail = &h->next;
}

/* The datagram that started the wait goes before those that came after it. */
static void hold_first(struct sn_client *c, const uint8_t *buf, size_t len) {
    struct sn_held *h = held_new(c, buf, len);
    if (!h)
        return;
    h->next = c->held;
    c->held = h;
    if (c->held_tail == &c->held)
        c->held_tail = &h->next;
}

static int same_host(const struct sn_addr *a, const struct sn_addr *b) {
    if (a->u.sa.sa_family != b->u.sa.sa_family || a->node_len != b->node_len ||
        memcmp(a->node, b->node, a->node_len))
        return 0;
    if (a->u.sa.sa_family == AF_INET6)
        return !memcmp(&a->u.in6.sin6_addr, &b->u.in6.sin6_addr, 16);
    return a->u.in.sin_addr.s_addr == b->u.in.sin_addr.s_addr;
}

/* From a sender that is not (or no longer) a client. */
static void from_stranger(struct sn_gw *gw, const struct sn_addr *from, const struct sn_msg *m) {
    switch (m->type) {
    case SN_SEARCHGW:
        answer_searchgw(gw, from);
        return;
    case SN_CONNECT:
        sn_on_connect(gw, NULL, from, m);
        return;
    case SN_PUBLISH:
        if (m->u.publish.flags.qos == -1) {
            sn_on_qos_neg1(gw, m);
            return;
        }
        break;
    case SN_PINGREQ:
        if (m->u.pingreq.client_id.len) { /* a sleeping client waking from a new address */
            char id[256];
            snprintf(id, sizeof id, "%.*s", (int)m->u.pingreq.client_id.len,
                     (const char *)m->u.pingreq.client_id.p);
            struct sn_client *c = sn_client_by_id(gw, id);
            /* A new port, as after a radio wake-up; another host must CONNECT (and
             * log in) to take the queued messages. */
            if (c && (c->state == SN_ASLEEP || c->state == SN_AWAKE) && same_host(&c->addr, from)) {
                sn_client_move(c, from);
                sn_on_pingreq(c, m);
                return;
            }
        }
        break;
    case SN_ADVERTISE:
    case SN_GWINFO:
    case SN_DISCONNECT:
        return; /* other gateways, or a goodbye to nobody */
    default:
        break;
    }
    tell_to_connect(gw, from);
}

void sn_handle(struct sn_client *c, const struct sn_msg *m, const uint8_t *raw, size_t raw_len) {
    struct sn_gw *gw = c->gw;
    if (c->waiting) {
        hold(c, raw, raw_len);
        return;
    }
    if (c->state == SN_ACTIVE)
        sn_refresh_deadline(c);
    switch (m->type) {
    case SN_SEARCHGW:
        answer_searchgw(gw, &c->addr);
        return;
    case SN_CONNECT:
        sn_on_connect(gw, c, &c->addr, m);
        return;
    case SN_WILLTOPIC:
        sn_on_willtopic(c, m);
        return;
    case SN_WILLMSG:
        sn_on_willmsg(c, m);
        return;
    case SN_PINGREQ:
        sn_on_pingreq(c, m);
        return;
    case SN_DISCONNECT:
        sn_on_disconnect(c, m);
        return;
    case SN_ADVERTISE:
    case SN_GWINFO:
        return;
    default:
        break;
    }
    if (c->state != SN_ACTIVE && c->state != SN_AWAKE) {
        if (m->type == SN_PUBLISH && m->u.publish.flags.qos == -1)
            sn_on_qos_neg1(gw, m);
        else
            tell_to_connect(gw, &c->addr);
        return;
    }
    switch (m->type) {
    case SN_PUBLISH:
        sn_on_publish(c, m);
        if (c->waiting) /* handled again once the auth answer comes */
            hold_first(c, raw, raw_len);
        break;
    case SN_PUBACK:
        sn_on_puback(c, m);
        break;
    case SN_PUBREC:
        sn_on_pubrec(c, m);
        break;
    case SN_PUBREL:
        sn_on_pubrel(c, m);
        break;
    case SN_PUBCOMP:
        sn_on_pubcomp(c, m);
        break;
    case SN_REGISTER:
        sn_on_register(c, m);
        break;
    case SN_REGACK:
        sn_on_regack(c, m);
        break;
    case SN_SUBSCRIBE:
        sn_on_subscribe(c, m);
        if (c->waiting)
            hold_first(c, raw, raw_len);
        break;
    case SN_UNSUBSCRIBE:
        sn_on_unsubscribe(c, m);
        break;
    case SN_WILLTOPICUPD:
        sn_on_willtopicupd(c, m);
        break;
    case SN_WILLMSGUPD:
        sn_on_willmsgupd(c, m);
        break;
    default: /* gateway-to-client messages sent to us */
        log_malformed(gw, &c->addr, "a message only a gateway sends");
        break;
    }
}

/* Decodes a datagram, unwrapping a forwarder's encapsulation into `a`'s node id. */
static int decode(struct sn_gw *gw, struct sn_addr *a, const uint8_t **buf, size_t *len,
                  struct sn_msg *m) {
    int rc = sn_decode(*buf, *len, m);
    if (rc < 0) {
        log_malformed(gw, a, sn_strerror(rc));
        return -1;
    }
    if (m->type != SN_ENCAPSULATED)
        return 0;
    if (!m->u.encap.wireless_node_id.len || m->u.encap.wireless_node_id.len > sizeof a->node) {
        log_malformed(gw, a, "bad wireless node id");
        return -1;
    }
    a->node_len = (uint8_t)m->u.encap.wireless_node_id.len;
    memcpy(a->node, m->u.encap.wireless_node_id.p, a->node_len);
    *buf = m->u.encap.inner.p;
    *len = m->u.encap.inner.len;
    rc = sn_decode(*buf, *len, m);
    if (rc < 0 || m->type == SN_ENCAPSULATED) {
        log_malformed(gw, a, rc < 0 ? sn_strerror(rc) : "nested encapsulation");
        return -1;
    }
    return 0;
}

void sn_gw_input(struct sn_gw *gw, const struct sockaddr *from, socklen_t fromlen,
                 const uint8_t *buf, size_t len) {
    struct sn_addr a;
    memset(&a, 0, sizeof a);
    if (fromlen > sizeof a.u)
        return;
    memcpy(&a.u, from, fromlen);
    a.len = fromlen;
    struct sn_msg m;
    if (decode(gw, &a, &buf, &len, &m) < 0)
        return;
    struct sn_client *c = client_by_addr(gw, &a);
    if (c)
        sn_handle(c, &m, buf, len);
    else
        from_stranger(gw, &a, &m);
}

/* Handles the datagrams kept while a client waited, until one waits again. */
void sn_release_held(struct sn_client *c) {
    sn_pin(c); /* a held DISCONNECT may end c */
    while (!c->dead && c->held && !c->waiting) {
        struct sn_held *h = c->held;
        c->held = h->next;
        if (!c->held)
            c->held_tail = &c->held;
        c->n_held--;
        c->held_bytes -= h->len;
        struct sn_msg m;
        if (sn_decode(h->data, h->len, &m) == 0)
            sn_handle(c, &m, h->data, h->len);
        free(h);
    }
    sn_unpin(c);
}

/* ---- timers ---- */

static void tick_client(struct sn_client *c) {
    int64_t now = sn_now(c->gw);
    if (c->deadline && now >= c->deadline) {
        sn_client_lost(c, c->state == SN_ASLEEP ? "sleep duration passed without a ping"
                                                : "keep alive timeout");
        return;
    }
    if ((c->state == SN_ACTIVE || c->state == SN_AWAKE) && sn_retry(c) < 0)
        sn_client_lost(c, "no acknowledgement after max_retries");
}

void sn_gw_tick(struct sn_gw *gw) {
    for (uint32_t i = 0; i < gw->cap; i++)
        for (struct sn_client *c = gw->by_id[i], *next; c; c = next) {
            next = c->next_by_id; /* c may be freed */
            tick_client(c);
        }
}

void sn_gw_advertise(struct sn_gw *gw, const struct sockaddr *to, socklen_t tolen,
                     uint16_t duration_s) {
    struct sn_addr a;
    memset(&a, 0, sizeof a);
    if (tolen > sizeof a.u)
        return;
    memcpy(&a.u, to, tolen);
    a.len = tolen;
    struct sn_msg m = {.type = SN_ADVERTISE};
    m.u.advertise.gw_id = gw->c.gateway_id;
    m.u.advertise.duration = duration_s;
    sn_send(gw, &a, &m);
}

int sn_gw_clients(const struct sn_gw *gw) {
    return (int)gw->n_clients;
}

/* ---- lifetime ---- */

static char *dup_str(const char *s) {
    return strdup(s ? s : "");
}

struct sn_gw *sn_gw_new(const struct sn_gw_config *c, sn_send_fn send, void *send_ud) {
    struct sn_gw *gw = calloc(1, sizeof *gw);
    if (!gw)
        return NULL;
    gw->c = *c;
    gw->send = send;
    gw->send_ud = send_ud;
    gw->cap = 1024;
    gw->by_addr = calloc(gw->cap, sizeof *gw->by_addr);
    gw->by_id = calloc(gw->cap, sizeof *gw->by_id);
    if (c->broadcast && c->broadcast_len <= sizeof gw->broadcast.u) {
        memcpy(&gw->broadcast.u, c->broadcast, c->broadcast_len);
        gw->broadcast.len = c->broadcast_len;
    }
    gw->c.broadcast = NULL;
    gw->c.listener = dup_str(c->listener);
    gw->c.mountpoint = dup_str(c->mountpoint);
    gw->c.username = c->username && *c->username ? strdup(c->username) : NULL;
    gw->c.password = dup_str(c->password);
    gw->c.allowed_clients = dup_str(c->allowed_clients);
    gw->predefined = calloc((size_t)c->n_predefined + 1, sizeof *gw->predefined);
    for (int i = 0; gw->predefined && i < c->n_predefined; i++)
        gw->predefined[i] =
            (struct sn_predefined){c->predefined[i].id, dup_str(c->predefined[i].topic)};
    if (!gw->by_addr || !gw->by_id || !gw->predefined) {
        sn_gw_free(gw);
        return NULL;
    }
    return gw;
}

void sn_gw_free(struct sn_gw *gw) {
    if (!gw)
        return;
    for (uint32_t i = 0; gw->by_id && i < gw->cap; i++)
        while (gw->by_id[i])
            sn_client_free(gw->by_id[i]);
    for (int i = 0; gw->predefined && i < gw->c.n_predefined; i++)
        free((char *)gw->predefined[i].topic);
    free(gw->predefined);
    free(gw->by_addr);
    free(gw->by_id);
    free((char *)gw->c.listener);
    free((char *)gw->c.mountpoint);
    free((char *)gw->c.username);
    free((char *)gw->c.password);
    free((char *)gw->c.allowed_clients);
    free(gw);
}
