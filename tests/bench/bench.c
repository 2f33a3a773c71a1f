/* bench.c - loadgen's throughput scenarios (pairs, fanin, fanout, sn-fanin,
 * sn-fanout; QoS 0/1).
 *
 * Builds the publisher/subscriber topology, connects and subscribes, then runs
 * warm-up, measurement and drain phases on net.c's epoll loop. The flow
 * control and the counting rules are described at the top of loadgen.c.
 * In sn-fanin the publishers, in sn-fanout the subscribers are MQTT-SN clients
 * (sn_ep.c, one UDP socket each); the other side is MQTT over TCP as usual.
 */
#include "loadgen.h"
#include "net.h"
#include "sn_ep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { KIND_PUB = 1, KIND_SUB = 2 };
enum phase { PH_SETUP, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_DONE };

#define STALL_SECS 0.1 /* window stuck this long: allow one probe message */
#define DRAIN_SECS 3.0

/* What one subscriber has received from one publisher. */
struct track {
    uint64_t count; /* messages received */
    uint64_t top;   /* highest sequence received */
};

struct sub {
    struct conn c;   /* first member: conn pointers convert back */
    struct sn_ep sn; /* sn-fanout: the subscriber is this MQTT-SN client instead */
    char topic[48];
    struct track *from; /* per publisher id */
};

struct pub {
    struct conn c;
    struct sn_ep sn; /* sn-fanin: the publisher is this MQTT-SN client instead */
    char topic[48];
    uint32_t sub_first, sub_count; /* its subscribers: subs[first, first+count) */
    uint64_t sent;                 /* messages sent = last sequence sent */
    uint32_t inflight;             /* QoS 1: PUBLISHes without PUBACK */
    uint32_t probes;               /* extra messages allowed past a stuck window */
    uint16_t next_pid;
    bool dirty; /* on the refill list */
    double last_progress;
    uint8_t *tmpl; /* a complete PUBLISH; sequence and packet id patched per message */
    size_t tmpl_len, seq_off, pid_off;
    size_t tid_off; /* MQTT-SN: where the topic id goes, once REGACK has told it */
};

static struct {
    const struct opts *o;
    struct pub *pubs;
    struct sub *subs;
    unsigned npubs, nsubs;
    unsigned pubs_ready, subs_ready;
    struct pub **dirty;
    unsigned ndirty;
    enum phase phase;
    double now, t_setup, t_warm, t_meas, t_end, t_next_check, t_next_report;
    uint64_t counted, received, out_of_order, report_mark;
    unsigned stalls;
    uint64_t refill_min;        /* see worth_refilling() */
    double cpu_meas, cpu_end;   /* loadgen's CPU seconds at t_meas and t_end */
    double bcpu_meas, bcpu_end; /* the broker's (--broker-pid), or -1 */
    double hcpu_meas, hcpu_end; /* the whole host's time in processes, or -1 */
    double icpu_meas, icpu_end; /* and in interrupts */
    bool sn_pubs, sn_subs;      /* which side is MQTT-SN */
    double t_next_tick;         /* MQTT-SN set-up resends */
    uint64_t refused;           /* MQTT-SN PUBACKs with a return code other than accepted */
    uint64_t unknown_topic;     /* MQTT-SN PUBLISHes to a topic id never registered with us */
    uint64_t bad_qos;           /* deliveries at another QoS than subscribed with */
} B;

static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "loadgen: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(1);
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n, size);
    if (!p)
        die("%s", "out of memory");
    return p;
}

/* ---- little-endian payload fields ---- */

static void put_le(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* ---- topology ---- */

static void topic_names(struct pub *p, unsigned i) {
    switch (B.o->scenario) {
    case SC_SN_FANIN:
        snprintf(p->topic, sizeof(p->topic), "bench/snfanin/%u", i);
        p->sub_first = 0;
        p->sub_count = 1;
        break;
    case SC_SN_FANOUT:
        snprintf(p->topic, sizeof(p->topic), "bench/snfanout");
        p->sub_first = 0;
        p->sub_count = B.nsubs;
        break;
    case SC_PAIRS:
        snprintf(p->topic, sizeof(p->topic), "bench/pair/%u", i);
        p->sub_first = i;
        p->sub_count = 1;
        break;
    case SC_FANIN:
        snprintf(p->topic, sizeof(p->topic), "bench/fanin/%u", i);
        p->sub_first = 0;
        p->sub_count = 1;
        break;
    default:
        snprintf(p->topic, sizeof(p->topic), "bench/fanout");
        p->sub_first = 0;
        p->sub_count = B.nsubs;
        break;
    }
}

static void sub_topic(struct sub *s, unsigned i) {
    if (B.o->scenario == SC_PAIRS)
        snprintf(s->topic, sizeof(s->topic), "bench/pair/%u", i);
    else if (B.o->scenario == SC_FANIN)
        snprintf(s->topic, sizeof(s->topic), "bench/fanin/#");
    else if (B.o->scenario == SC_SN_FANIN)
        snprintf(s->topic, sizeof(s->topic), "bench/snfanin/#");
    else if (B.o->scenario == SC_SN_FANOUT)
        snprintf(s->topic, sizeof(s->topic), "bench/snfanout");
    else
        snprintf(s->topic, sizeof(s->topic), "bench/fanout");
}

/* An MQTT-SN PUBLISH to a registered topic id (patched in at REGACK). */
static void build_sn_template(struct pub *p, unsigned id) {
    unsigned len = B.o->payload;
    p->tmpl_len = mqttsn_header_size(MQTTSN_PUBLISH_FIXED + len) + MQTTSN_PUBLISH_FIXED + len;
    p->tmpl = xcalloc(1, p->tmpl_len);
    uint8_t flags = (uint8_t)(mqttsn_qos_flags((int)B.o->qos) | MQTTSN_TOPIC_NORMAL);
    size_t hdr = mqttsn_publish_header(p->tmpl, flags, 0, 0, len);
    p->pid_off = hdr - 2;
    p->tid_off = hdr - 4;
    memset(p->tmpl + hdr, 'x', len);
    put_le(p->tmpl + hdr, id, 4);
    p->seq_off = hdr + 4;
}

static void build_template(struct pub *p, unsigned id) {
    if (B.sn_pubs) {
        build_sn_template(p, id);
        return;
    }
    unsigned qos = B.o->qos, len = B.o->payload;
    p->tmpl_len = mqtt_publish_size(strlen(p->topic), len, (uint8_t)qos);
    p->tmpl = xcalloc(1, p->tmpl_len);
    size_t hdr = mqtt_publish_header(p->tmpl, p->topic, (uint8_t)qos, len, &p->pid_off);
    memset(p->tmpl + hdr, 'x', len);
    put_le(p->tmpl + hdr, id, 4);
    p->seq_off = hdr + 4;
}

static void queue_connect(struct conn *c, uint8_t kind, unsigned i) {
    char id[64];
    snprintf(id, sizeof(id), "lg%d-%c%u", (int)getpid(), kind == KIND_PUB ? 'p' : 's', i);
    c->kind = kind;
    c->index = i;
    net_commit(c, mqtt_connect(net_reserve(c, mqtt_connect_size(strlen(id))), id, 60));
    net_queue_connect(c);
}

/* An MQTT-SN client: CONNECT, then REGISTER (publisher) or SUBSCRIBE (subscriber). */
static void start_sn(struct sn_ep *ep, uint8_t kind, unsigned i, const char *topic) {
    snprintf(ep->client_id, sizeof(ep->client_id), "lg%d-n%c%u", (int)getpid(),
             kind == KIND_PUB ? 'p' : 's', i);
    ep->kind = kind;
    ep->index = i;
    ep->topic = topic;
    ep->subscribe = kind == KIND_SUB;
    ep->sub_qos = (uint8_t)B.o->qos;
    sn_ep_start(ep, B.now);
}

static void build_topology(void) {
    unsigned n = B.o->clients;
    bool one_pub = B.o->scenario == SC_FANOUT || B.o->scenario == SC_SN_FANOUT;
    bool one_sub = B.o->scenario == SC_FANIN || B.o->scenario == SC_SN_FANIN;
    B.npubs = one_pub ? 1 : n;
    B.nsubs = one_sub ? 1 : n;
    B.pubs = xcalloc(B.npubs, sizeof(*B.pubs));
    B.subs = xcalloc(B.nsubs, sizeof(*B.subs));
    B.dirty = xcalloc(B.npubs, sizeof(*B.dirty));
    for (unsigned i = 0; i < B.nsubs; i++) {
        struct sub *s = &B.subs[i];
        s->from = xcalloc(B.npubs, sizeof(*s->from));
        sub_topic(s, i);
        if (B.sn_subs)
            start_sn(&s->sn, KIND_SUB, i, s->topic);
        else
            queue_connect(&s->c, KIND_SUB, i);
    }
    for (unsigned i = 0; i < B.npubs; i++) {
        struct pub *p = &B.pubs[i];
        topic_names(p, i);
        build_template(p, i);
        p->next_pid = 1;
        if (B.sn_pubs)
            start_sn(&p->sn, KIND_PUB, i, p->topic);
        else
            queue_connect(&p->c, KIND_PUB, i);
    }
}

/* ---- publisher flow control ---- */

/* Puts p on the list refilled after this epoll batch. */
static void wake(struct pub *p) {
    if (!p->dirty) {
        p->dirty = true;
        B.dirty[B.ndirty++] = p;
    }
}

/* A delivery or PUBACK for p: its window may have opened. */
static void progress(struct pub *p) {
    p->last_progress = B.now;
    p->probes = 0;
    wake(p);
}

/* Highest sequence of p that all its subscribers have reached. With an
 * in-order broker everything below it has arrived or was dropped, so a drop
 * does not block the window once a later message gets through. */
static uint64_t delivered(const struct pub *p) {
    uint64_t d = UINT64_MAX;
    uint32_t id = (uint32_t)(p - B.pubs);
    for (uint32_t s = p->sub_first; s < p->sub_first + p->sub_count; s++) {
        if (B.subs[s].from[id].top < d)
            d = B.subs[s].from[id].top;
    }
    return d;
}

/* How many messages p may send now. */
static uint64_t room(const struct pub *p) {
    uint64_t limit = delivered(p) + B.o->window + p->probes;
    uint64_t n = limit > p->sent ? limit - p->sent : 0;
    if (B.o->qos) {
        uint64_t acks = B.o->ack_window + p->probes;
        uint64_t a = acks > p->inflight ? acks - p->inflight : 0;
        n = a < n ? a : n;
    }
    return n;
}

/* Refilling only once a quarter of the window is free sends messages in
 * batches: fewer syscalls here and in the broker, same outstanding bound. */
static bool worth_refilling(const struct pub *p, uint64_t n) {
    return n >= B.refill_min || (n > 0 && p->probes > 0);
}

/* One PUBLISH: into the TCP output buffer, or as one more queued datagram. */
static void append_publish(struct pub *p) {
    uint8_t *m = B.sn_pubs ? sn_ep_reserve(&p->sn, p->tmpl_len) : net_reserve(&p->c, p->tmpl_len);
    memcpy(m, p->tmpl, p->tmpl_len);
    put_le(m + p->seq_off, ++p->sent, 8);
    if (B.o->qos) {
        m[p->pid_off] = (uint8_t)(p->next_pid >> 8);
        m[p->pid_off + 1] = (uint8_t)p->next_pid;
        p->next_pid = p->next_pid == 65535 ? 1 : p->next_pid + 1;
        p->inflight++;
    }
    if (B.sn_pubs)
        sn_ep_commit(&p->sn, p->tmpl_len);
    else
        net_commit(&p->c, p->tmpl_len);
}

static void refill(struct pub *p) {
    uint64_t n = room(p);
    if (!worth_refilling(p, n))
        return;
    while (n--)
        append_publish(p);
    if (B.sn_pubs)
        sn_ep_flush(&p->sn);
    else
        net_flush(&p->c);
}

static void refill_dirty(void) {
    unsigned n = B.ndirty;
    B.ndirty = 0;
    for (unsigned i = 0; i < n; i++) {
        B.dirty[i]->dirty = false;
        refill(B.dirty[i]);
    }
}

/* A window without progress for STALL_SECS is probably waiting for messages
 * the broker dropped (all of the window's tail): let one more message go, and
 * when it arrives the window moves past the lost ones. Against a broker that
 * is merely slow this adds one message per STALL_SECS. */
static void check_stalls(void) {
    for (unsigned i = 0; i < B.npubs; i++) {
        struct pub *p = &B.pubs[i];
        if (B.now - p->last_progress < STALL_SECS || worth_refilling(p, room(p)))
            continue;
        B.stalls++;
        p->probes++;
        p->last_progress = B.now;
        wake(p);
    }
}

/* ---- packets ---- */

static void check_connack(struct conn *c, const struct mqtt_pkt *pk) {
    if (pk->body_len < 2 || pk->body[1] != 0)
        die("%s", "broker refused CONNECT");
    net_connect_done(c);
}

/* A PUBLISH reached subscriber s (over either protocol). */
static void on_delivery(struct sub *s, const uint8_t *payload, size_t payload_len, unsigned qos) {
    if (payload_len < 12)
        die("%s", "short payload received");
    if (qos != B.o->qos)
        B.bad_qos++;
    uint32_t id = (uint32_t)get_le(payload, 4);
    uint64_t seq = get_le(payload + 4, 8);
    if (id >= B.npubs)
        die("%s", "payload with unknown publisher id");
    struct track *t = &s->from[id];
    t->count++;
    if (seq > t->top)
        t->top = seq;
    else
        B.out_of_order++; /* overtaken by a later one, or a duplicate */
    B.received++;
    if (B.phase == PH_MEASURE)
        B.counted++;
    progress(&B.pubs[id]);
}

static void sub_packet(struct sub *s, const struct mqtt_pkt *pk) {
    struct mqtt_publish m;
    switch (pk->type) {
    case MQTT_PUBLISH:
        if (mqtt_parse_publish(pk, &m) != 0)
            die("%s", "malformed PUBLISH");
        on_delivery(s, m.payload, m.payload_len, m.qos);
        if (m.qos)
            net_commit(&s->c, mqtt_puback(net_reserve(&s->c, MQTT_PUBACK_SIZE), m.packet_id));
        break;
    case MQTT_CONNACK:
        check_connack(&s->c, pk);
        net_commit(&s->c, mqtt_subscribe(net_reserve(&s->c, mqtt_subscribe_size(strlen(s->topic))),
                                         1, s->topic, (uint8_t)B.o->qos));
        net_flush(&s->c);
        break;
    case MQTT_SUBACK:
        if (pk->body_len < 3 || pk->body[2] == 0x80)
            die("subscription to %s refused", s->topic);
        if (pk->body[2] != B.o->qos)
            fprintf(stderr, "loadgen: warning: %s granted QoS %u\n", s->topic, pk->body[2]);
        B.subs_ready++;
        break;
    default:
        break;
    }
}

static void pub_packet(struct pub *p, const struct mqtt_pkt *pk) {
    switch (pk->type) {
    case MQTT_PUBACK:
        if (p->inflight)
            p->inflight--;
        progress(p);
        break;
    case MQTT_CONNACK:
        check_connack(&p->c, pk);
        B.pubs_ready++;
        break;
    default:
        break;
    }
}

static void on_packet(struct conn *c, const struct mqtt_pkt *pk) {
    if (c->kind == KIND_SUB)
        sub_packet((struct sub *)c, pk);
    else
        pub_packet((struct pub *)c, pk);
}

/* ---- MQTT-SN packets (sn_ep.c has done the set-up dialogue) ---- */

static void sn_on_ready(struct sn_ep *ep) {
    if (ep->kind == KIND_PUB) {
        struct pub *p = &B.pubs[ep->index];
        p->tmpl[p->tid_off] = (uint8_t)(ep->topic_id >> 8);
        p->tmpl[p->tid_off + 1] = (uint8_t)ep->topic_id;
        B.pubs_ready++;
        return;
    }
    if (ep->granted_qos != B.o->qos)
        fprintf(stderr, "loadgen: warning: MQTT-SN subscription granted QoS %u\n", ep->granted_qos);
    B.subs_ready++;
}

/* A PUBLISH from the gateway to MQTT-SN subscriber s. */
static void sn_sub_publish(struct sub *s, const struct mqttsn_pkt *pk) {
    struct mqttsn_publish m;
    if (mqttsn_parse_publish(pk, &m) != 0)
        die("%s", "malformed MQTT-SN PUBLISH from the gateway");
    int qos = mqttsn_flags_qos(m.flags);
    uint8_t rc = MQTTSN_RC_ACCEPTED;
    if ((m.flags & MQTTSN_TOPIC_MASK) == MQTTSN_TOPIC_NORMAL && !sn_ep_knows(&s->sn, m.topic_id)) {
        B.unknown_topic++; /* answered as the spec says: PUBACK "rejected: invalid topic ID" */
        rc = MQTTSN_RC_INVALID_TOPIC;
    } else {
        on_delivery(s, m.data, m.data_len, qos < 0 ? 0 : (unsigned)qos);
    }
    if (qos == 1)
        sn_ep_commit(&s->sn, mqttsn_puback(sn_ep_reserve(&s->sn, 7), m.topic_id, m.msg_id, rc));
}

static void sn_on_packet(struct sn_ep *ep, const struct mqttsn_pkt *pk) {
    if (ep->kind == KIND_SUB) {
        if (pk->type == MQTTSN_PUBLISH)
            sn_sub_publish(&B.subs[ep->index], pk);
        return;
    }
    struct pub *p = &B.pubs[ep->index];
    uint16_t tid, mid;
    uint8_t rc;
    if (pk->type != MQTTSN_PUBACK)
        return;
    if (mqttsn_parse_ack3(pk, &tid, &mid, &rc) != 0)
        die("%s", "malformed MQTT-SN PUBACK from the gateway");
    if (rc != MQTTSN_RC_ACCEPTED)
        B.refused++; /* the message is then missing: counted in lost= too */
    if (p->inflight)
        p->inflight--;
    progress(p);
}

static void sn_on_failed(struct sn_ep *ep, const char *why) {
    fprintf(stderr, "loadgen: MQTT-SN %s %u: %s\n",
            ep->kind == KIND_SUB ? "subscriber" : "publisher", ep->index, why);
    exit(1);
}

/* Resends pending MQTT-SN set-up steps (CONNECT, REGISTER, SUBSCRIBE). */
static void sn_tick(void) {
    if (B.now < B.t_next_tick)
        return;
    B.t_next_tick = B.now + 0.05;
    for (unsigned i = 0; B.sn_pubs && i < B.npubs; i++)
        sn_ep_tick(&B.pubs[i].sn, B.now);
    for (unsigned i = 0; B.sn_subs && i < B.nsubs; i++)
        sn_ep_tick(&B.subs[i].sn, B.now);
}

static void on_closed(struct conn *c, const char *why) {
    fprintf(stderr, "loadgen: %s %u: %s\n", c->kind == KIND_SUB ? "subscriber" : "publisher",
            c->index, why);
    exit(1);
}

/* ---- phases ---- */

/* The last message of every publisher has reached every subscriber. */
static bool all_delivered(void) {
    for (unsigned i = 0; i < B.npubs; i++) {
        if (delivered(&B.pubs[i]) < B.pubs[i].sent || B.pubs[i].inflight)
            return false;
    }
    return true;
}

static void start_warmup(void) {
    B.phase = PH_WARMUP;
    B.t_warm = B.now;
    for (unsigned i = 0; i < B.npubs; i++)
        progress(&B.pubs[i]);
}

static void advance_phase(void) {
    switch (B.phase) {
    case PH_SETUP:
        if (B.subs_ready == B.nsubs && B.pubs_ready == B.npubs)
            start_warmup();
        else if (B.now - B.t_setup > B.o->setup_timeout)
            die("%s", "timed out connecting/subscribing");
        break;
    case PH_WARMUP:
        if (B.now - B.t_warm >= B.o->warmup) {
            B.phase = PH_MEASURE;
            B.t_meas = B.t_next_report = B.now;
            B.cpu_meas = self_cpu_secs();
            B.bcpu_meas = broker_cpu_secs(B.o);
            B.hcpu_meas = host_busy_secs();
            B.icpu_meas = host_irq_secs();
            B.report_mark = 0;
        }
        break;
    case PH_MEASURE:
        if (B.now - B.t_meas >= B.o->secs) {
            B.phase = PH_DRAIN;
            B.t_end = B.now;
            B.cpu_end = self_cpu_secs();
            B.bcpu_end = broker_cpu_secs(B.o);
            B.hcpu_end = host_busy_secs();
            B.icpu_end = host_irq_secs();
        }
        break;
    case PH_DRAIN:
        if (all_delivered() || B.now - B.t_end > DRAIN_SECS)
            B.phase = PH_DONE;
        break;
    case PH_DONE:
        break;
    }
}

static void report_progress(void) {
    if (!B.o->verbose || B.phase != PH_MEASURE || B.now < B.t_next_report + 1.0)
        return;
    fprintf(stderr, "loadgen: t=%.0f %llu msgs/s\n", B.now - B.t_meas,
            (unsigned long long)(B.counted - B.report_mark));
    B.report_mark = B.counted;
    B.t_next_report += 1.0;
}

/* Copies the subscribers should have received over the whole run. */
static uint64_t count_expected(void) {
    uint64_t n = 0;
    for (unsigned i = 0; i < B.npubs; i++)
        n += B.pubs[i].sent * B.pubs[i].sub_count;
    return n;
}

/* Messages sent that a subscriber never got (each missing copy counts). */
static uint64_t count_lost(void) {
    uint64_t lost = 0;
    for (unsigned i = 0; i < B.npubs; i++) {
        struct pub *p = &B.pubs[i];
        for (uint32_t s = p->sub_first; s < p->sub_first + p->sub_count; s++) {
            if (B.subs[s].from[i].count < p->sent)
                lost += p->sent - B.subs[s].from[i].count;
        }
    }
    return lost;
}

static void print_result(void) {
    double secs = B.t_end - B.t_meas;
    printf("RESULT scenario=%s qos=%u clients=%u payload=%u window=%u msgs=%llu secs=%.3f "
           "rate=%.0f expected=%llu lost=%llu ooo=%llu stalls=%u transport=%s lg_cpu=%.0f",
           scenario_name(B.o->scenario), B.o->qos, B.o->clients, B.o->payload, B.o->window,
           (unsigned long long)B.counted, secs, (double)B.counted / secs,
           (unsigned long long)count_expected(), (unsigned long long)count_lost(),
           (unsigned long long)B.out_of_order, B.stalls, transport_name(B.o),
           secs > 0 ? 100 * (B.cpu_end - B.cpu_meas) / secs : 0.0);
    if (B.bcpu_meas >= 0 && B.bcpu_end >= 0 && secs > 0)
        printf(" broker_cpu=%.0f", 100 * (B.bcpu_end - B.bcpu_meas) / secs);
    if (B.hcpu_meas >= 0 && B.hcpu_end >= 0 && secs > 0)
        printf(" host_cpu=%.0f irq_cpu=%.0f", 100 * (B.hcpu_end - B.hcpu_meas) / secs,
               100 * (B.icpu_end - B.icpu_meas) / secs);
    if (B.sn_pubs || B.sn_subs) {
        const struct sn_ep_stats *st = sn_ep_get_stats();
        printf(" ack_window=%u sn_retries=%llu refused=%llu unknown_topic=%llu bad_qos=%llu "
               "sn_malformed=%llu",
               B.o->ack_window, (unsigned long long)st->retries, (unsigned long long)B.refused,
               (unsigned long long)B.unknown_topic, (unsigned long long)B.bad_qos,
               (unsigned long long)st->malformed);
    }
    putchar('\n');
}

int bench_run(const struct opts *o) {
    B.o = o;
    struct net_handlers h = {.on_packet = on_packet, .on_closed = on_closed};
    struct sn_ep_handlers sh = {
        .on_ready = sn_on_ready, .on_packet = sn_on_packet, .on_failed = sn_on_failed};
    B.sn_pubs = o->scenario == SC_SN_FANIN;
    B.sn_subs = o->scenario == SC_SN_FANOUT;
    if (net_raise_nofile(2 * o->clients + 64) != 0 || lg_net_init(o, &h) != 0)
        return 1;
    if ((B.sn_pubs || B.sn_subs) && sn_ep_init(o->host, o->sn_port, &sh, o->sn_retry, o->sn_retries,
                                               o->sn_duration, !o->sn_no_gso) != 0)
        return 1;
    B.now = B.t_setup = now_sec();
    unsigned w = o->qos && o->ack_window < o->window ? o->ack_window : o->window;
    B.refill_min = w >= 8 ? w / 4 : 1;
    build_topology();
    while (B.phase != PH_DONE) {
        net_poll(B.phase == PH_SETUP ? 50 : 2);
        B.now = now_sec();
        if (B.phase == PH_SETUP)
            sn_tick();
        advance_phase();
        if (B.phase == PH_WARMUP || B.phase == PH_MEASURE) {
            refill_dirty();
            if (B.now >= B.t_next_check) {
                check_stalls();
                B.t_next_check = B.now + STALL_SECS / 4;
            }
        }
        report_progress();
    }
    if (o->verbose) {
        const struct net_stats *st = net_get_stats();
        fprintf(stderr, "loadgen: %llu deliveries, %llu epoll_wait, %llu recv, %llu send\n",
                (unsigned long long)B.received, (unsigned long long)st->polls,
                (unsigned long long)st->recvs, (unsigned long long)st->sends);
        if (o->ws)
            fprintf(stderr, "loadgen: WebSocket frames: %llu in, %llu out, %llu pings answered\n",
                    (unsigned long long)st->ws_frames_in, (unsigned long long)st->ws_frames_out,
                    (unsigned long long)st->ws_pings);
        if (B.sn_pubs || B.sn_subs) {
            const struct sn_ep_stats *ss = sn_ep_get_stats();
            fprintf(stderr,
                    "loadgen: MQTT-SN datagrams: %llu out in %llu sendmmsg + %llu GSO sends "
                    "(%llu EAGAIN), %llu in in %llu recvmmsg; socket rcvbuf %d\n",
                    (unsigned long long)ss->dg_out, (unsigned long long)ss->sendmmsg,
                    (unsigned long long)ss->gso_sends, (unsigned long long)ss->eagain,
                    (unsigned long long)ss->dg_in, (unsigned long long)ss->recvmmsg,
                    sn_ep_rcvbuf());
        }
    }
    print_result();
    return 0;
}
