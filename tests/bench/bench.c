/* bench.c - loadgen's throughput scenarios (pairs, fanin, fanout; QoS 0/1).
 *
 * Builds the publisher/subscriber topology, connects and subscribes, then runs
 * warm-up, measurement and drain phases on net.c's epoll loop. The flow
 * control and the counting rules are described at the top of loadgen.c.
 */
#include "loadgen.h"
#include "net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { KIND_PUB = 1, KIND_SUB = 2 };
enum phase { PH_SETUP, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_DONE };

#define STALL_SECS 1.0
#define DRAIN_SECS 3.0

struct sub {
    struct conn c; /* first member: conn pointers convert back */
    char topic[48];
    uint64_t *last; /* highest sequence received, per publisher id */
};

struct pub {
    struct conn c;
    char topic[48];
    uint32_t sub_first, sub_count; /* its subscribers: subs[first, first+count) */
    uint64_t sent;                 /* last sequence sent */
    uint64_t floor;                /* sequences given up on after a stall */
    uint32_t inflight;             /* QoS 1: PUBLISHes without PUBACK */
    uint16_t next_pid;
    bool dirty; /* progress since its last refill */
    double last_progress;
    uint8_t *tmpl; /* a complete PUBLISH; sequence and packet id patched per message */
    size_t tmpl_len, seq_off, pid_off;
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
    uint64_t counted, received, gaps, dups, acked, report_mark;
    unsigned stalls;
} B;

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "loadgen: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p)
        die("%s", "out of memory");
    return p;
}

/* ---- little-endian payload fields ---- */

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* ---- topology ---- */

static void topic_names(struct pub *p, unsigned i)
{
    switch (B.o->scenario) {
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

static void sub_topic(struct sub *s, unsigned i)
{
    if (B.o->scenario == SC_PAIRS)
        snprintf(s->topic, sizeof(s->topic), "bench/pair/%u", i);
    else if (B.o->scenario == SC_FANIN)
        snprintf(s->topic, sizeof(s->topic), "bench/fanin/#");
    else
        snprintf(s->topic, sizeof(s->topic), "bench/fanout");
}

static void build_template(struct pub *p, unsigned id)
{
    unsigned qos = B.o->qos, len = B.o->payload;
    p->tmpl_len = mqtt_publish_size(strlen(p->topic), len, (uint8_t)qos);
    p->tmpl = xcalloc(1, p->tmpl_len);
    size_t hdr = mqtt_publish_header(p->tmpl, p->topic, (uint8_t)qos, len, &p->pid_off);
    memset(p->tmpl + hdr, 'x', len);
    put_le(p->tmpl + hdr, id, 4);
    p->seq_off = hdr + 4;
}

static void queue_connect(struct conn *c, uint8_t kind, unsigned i)
{
    char id[64];
    snprintf(id, sizeof(id), "lg%d-%c%u", (int)getpid(), kind == KIND_PUB ? 'p' : 's', i);
    c->kind = kind;
    c->index = i;
    net_commit(c, mqtt_connect(net_reserve(c, mqtt_connect_size(strlen(id))), id, 60));
    net_queue_connect(c);
}

static void build_topology(void)
{
    unsigned n = B.o->clients;
    B.npubs = B.o->scenario == SC_FANOUT ? 1 : n;
    B.nsubs = B.o->scenario == SC_FANIN ? 1 : n;
    B.pubs = xcalloc(B.npubs, sizeof(*B.pubs));
    B.subs = xcalloc(B.nsubs, sizeof(*B.subs));
    B.dirty = xcalloc(B.npubs, sizeof(*B.dirty));
    for (unsigned i = 0; i < B.nsubs; i++) {
        struct sub *s = &B.subs[i];
        s->last = xcalloc(B.npubs, sizeof(*s->last));
        sub_topic(s, i);
        queue_connect(&s->c, KIND_SUB, i);
    }
    for (unsigned i = 0; i < B.npubs; i++) {
        struct pub *p = &B.pubs[i];
        topic_names(p, i);
        build_template(p, i);
        p->next_pid = 1;
        queue_connect(&p->c, KIND_PUB, i);
    }
}

/* ---- publisher flow control ---- */

static void mark_dirty(struct pub *p)
{
    p->last_progress = B.now;
    if (!p->dirty) {
        p->dirty = true;
        B.dirty[B.ndirty++] = p;
    }
}

/* Highest sequence every subscriber of p has received. */
static uint64_t delivered(const struct pub *p)
{
    uint64_t d = UINT64_MAX;
    uint32_t id = (uint32_t)(p - B.pubs);
    for (uint32_t s = p->sub_first; s < p->sub_first + p->sub_count; s++) {
        if (B.subs[s].last[id] < d)
            d = B.subs[s].last[id];
    }
    return d;
}

static bool window_open(const struct pub *p, uint64_t done)
{
    if (p->sent >= done + B.o->window)
        return false;
    return B.o->qos == 0 || p->inflight < B.o->ack_window;
}

static void append_publish(struct pub *p)
{
    uint8_t *m = net_reserve(&p->c, p->tmpl_len);
    memcpy(m, p->tmpl, p->tmpl_len);
    put_le(m + p->seq_off, ++p->sent, 8);
    if (B.o->qos) {
        m[p->pid_off] = (uint8_t)(p->next_pid >> 8);
        m[p->pid_off + 1] = (uint8_t)p->next_pid;
        p->next_pid = p->next_pid == 65535 ? 1 : p->next_pid + 1;
        p->inflight++;
    }
    net_commit(&p->c, p->tmpl_len);
}

static void refill(struct pub *p)
{
    uint64_t done = delivered(p);
    if (done < p->floor)
        done = p->floor;
    unsigned n = 0;
    while (window_open(p, done)) {
        append_publish(p);
        n++;
    }
    if (n)
        net_flush(&p->c);
}

static void refill_dirty(void)
{
    unsigned n = B.ndirty;
    B.ndirty = 0;
    for (unsigned i = 0; i < n; i++) {
        B.dirty[i]->dirty = false;
        refill(B.dirty[i]);
    }
}

/* A window without progress for STALL_SECS waits for messages that were
 * dropped: give them up so the publisher goes on. */
static void check_stalls(void)
{
    for (unsigned i = 0; i < B.npubs; i++) {
        struct pub *p = &B.pubs[i];
        if (B.now - p->last_progress < STALL_SECS)
            continue;
        uint64_t done = delivered(p);
        if (window_open(p, done > p->floor ? done : p->floor))
            continue;
        B.stalls++;
        if (getenv("LGDBG"))
            fprintf(stderr, "stall pub %u sent %llu done %llu floor %llu inflight %u t=%.3f\n", i, (unsigned long long)p->sent, (unsigned long long)done, (unsigned long long)p->floor, p->inflight, B.now - B.t_warm);
        p->floor = p->sent;
        p->inflight = 0;
        mark_dirty(p);
    }
}

/* ---- packets ---- */

static void check_connack(struct conn *c, const struct mqtt_pkt *pk)
{
    if (pk->body_len < 2 || pk->body[1] != 0)
        die("%s", "broker refused CONNECT");
    net_connect_done(c);
}

static void on_delivery(struct sub *s, const struct mqtt_publish *m)
{
    if (m->payload_len < 12)
        die("%s", "short payload received");
    uint32_t id = (uint32_t)get_le(m->payload, 4);
    uint64_t seq = get_le(m->payload + 4, 8);
    if (id >= B.npubs)
        die("%s", "payload with unknown publisher id");
    uint64_t last = s->last[id];
    if (seq <= last) {
        B.dups++;
    } else {
        B.gaps += seq - last - 1;
        if (seq - last - 1 && getenv("LGDBG"))
            fprintf(stderr, "gap pub %u last %llu seq %llu t=%.3f ph=%d\n", id, (unsigned long long)last, (unsigned long long)seq, B.now - B.t_warm, B.phase);
        s->last[id] = seq;
    }
    B.received++;
    if (B.phase == PH_MEASURE)
        B.counted++;
    mark_dirty(&B.pubs[id]);
    if (m->qos)
        net_commit(&s->c, mqtt_puback(net_reserve(&s->c, MQTT_PUBACK_SIZE), m->packet_id));
}

static void sub_packet(struct sub *s, const struct mqtt_pkt *pk)
{
    struct mqtt_publish m;
    switch (pk->type) {
    case MQTT_PUBLISH:
        if (mqtt_parse_publish(pk, &m) != 0)
            die("%s", "malformed PUBLISH");
        on_delivery(s, &m);
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

static void pub_packet(struct pub *p, const struct mqtt_pkt *pk)
{
    switch (pk->type) {
    case MQTT_PUBACK:
        if (p->inflight)
            p->inflight--;
        B.acked++;
        mark_dirty(p);
        break;
    case MQTT_CONNACK:
        check_connack(&p->c, pk);
        B.pubs_ready++;
        break;
    default:
        break;
    }
}

static void on_packet(struct conn *c, const struct mqtt_pkt *pk)
{
    if (c->kind == KIND_SUB)
        sub_packet((struct sub *)c, pk);
    else
        pub_packet((struct pub *)c, pk);
}

static void on_closed(struct conn *c, const char *why)
{
    fprintf(stderr, "loadgen: %s %u: %s\n", c->kind == KIND_SUB ? "subscriber" : "publisher",
            c->index, why);
    exit(1);
}

/* ---- phases ---- */

static bool all_delivered(void)
{
    for (unsigned i = 0; i < B.npubs; i++) {
        if (delivered(&B.pubs[i]) < B.pubs[i].sent || B.pubs[i].inflight)
            return false;
    }
    return true;
}

static void start_warmup(void)
{
    B.phase = PH_WARMUP;
    B.t_warm = B.now;
    for (unsigned i = 0; i < B.npubs; i++)
        mark_dirty(&B.pubs[i]);
}

static void advance_phase(void)
{
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
            B.report_mark = 0;
        }
        break;
    case PH_MEASURE:
        if (B.now - B.t_meas >= B.o->secs) {
            B.phase = PH_DRAIN;
            B.t_end = B.now;
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

static void report_progress(void)
{
    if (!B.o->verbose || B.phase != PH_MEASURE || B.now < B.t_next_report + 1.0)
        return;
    fprintf(stderr, "loadgen: t=%.0f %llu msgs/s\n", B.now - B.t_meas,
            (unsigned long long)(B.counted - B.report_mark));
    B.report_mark = B.counted;
    B.t_next_report += 1.0;
}

/* Messages sent that some subscriber never got (counted once per copy). */
static uint64_t tail_lost(void)
{
    uint64_t lost = 0;
    for (unsigned i = 0; i < B.npubs; i++) {
        struct pub *p = &B.pubs[i];
        for (uint32_t s = p->sub_first; s < p->sub_first + p->sub_count; s++) {
            if (B.subs[s].last[i] < p->sent)
                lost += p->sent - B.subs[s].last[i];
        }
    }
    return lost;
}

static void print_result(void)
{
    double secs = B.t_end - B.t_meas;
    printf("RESULT scenario=%s qos=%u clients=%u payload=%u window=%u msgs=%llu secs=%.3f "
           "rate=%.0f lost=%llu dup=%llu stalls=%u\n",
           scenario_name(B.o->scenario), B.o->qos, B.o->clients, B.o->payload, B.o->window,
           (unsigned long long)B.counted, secs, (double)B.counted / secs,
           (unsigned long long)(B.gaps + tail_lost()), (unsigned long long)B.dups, B.stalls);
}

int bench_run(const struct opts *o)
{
    B.o = o;
    struct net_handlers h = {.on_packet = on_packet, .on_closed = on_closed};
    if (net_raise_nofile(2 * o->clients + 64) != 0 ||
        net_init(o->host, o->port, o->connect_burst, &h) != 0)
        return 1;
    B.now = B.t_setup = now_sec();
    build_topology();
    while (B.phase != PH_DONE) {
        net_poll(B.phase == PH_SETUP ? 50 : 2);
        B.now = now_sec();
        advance_phase();
        if (B.phase == PH_WARMUP || B.phase == PH_MEASURE) {
            refill_dirty();
            if (B.now >= B.t_next_check) {
                check_stalls();
                B.t_next_check = B.now + 0.1;
            }
        }
        report_progress();
    }
    print_result();
    return 0;
}
