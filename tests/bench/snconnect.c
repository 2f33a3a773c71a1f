/* snconnect.c - loadgen's sn-connect mode: many MQTT-SN clients, each connects
 * and publishes once.
 *
 * First an MQTT subscriber over TCP subscribes to bench/snconnect at QoS 0 (a
 * check that every acknowledged message was routed; at QoS 1 its inflight
 * window would make the broker queue the burst, past max_queued_messages). Then
 * --clients MQTT-SN clients (sn_ep.c: one UDP socket each, all created before
 * the clock starts and kept open to the end, as devices that stay connected)
 * go through
 *
 *   CONNECT -> CONNACK [-> REGISTER bench/snconnect -> REGACK] -> PUBLISH QoS 1 -> PUBACK
 *
 * at most --connect-burst of them between their CONNECT and their PUBACK at a
 * time (so the gateway's socket buffer is not simply overrun by 10,000
 * simultaneous datagrams). The PUBLISH goes to the predefined topic id
 * --sn-predefined (the gateway must map it to bench/snconnect) or, with
 * --sn-register, to the id the REGACK gave. An unanswered message is resent
 * after --sn-retry seconds (PUBLISH with DUP), at most --sn-retries times;
 * then the client counts as failed. The run ends when every client has its
 * PUBACK or has failed, or --setup-timeout seconds after the first CONNECT
 * (the rest count as failed); then loadgen waits up to 3 s for the subscriber
 * to have every acknowledged message.
 *
 * Output: RESULT scenario=sn-connect clients= ok= failed= secs= rate= p50_ms=
 *         p99_ms= max_ms= retries= refused= received= missing= dup= burst=
 *         topic= transport=mqttsn lg_cpu= [broker_cpu=] host_cpu= irq_cpu=
 * secs: first CONNECT to last PUBACK; rate: ok / secs; pNN_ms/max_ms: one
 * client's time from its CONNECT to its PUBACK; retries: messages resent
 * (CONNECT, REGISTER, PUBLISH); received: clients whose message reached the
 * subscriber; missing: acknowledged (PUBACK) but never delivered; dup: extra
 * copies delivered; lg_cpu/broker_cpu: loadgen's and (--broker-pid) the
 * broker's CPU from the first CONNECT until every client finished, % of one
 * core.
 */
#include "loadgen.h"
#include "net.h"
#include "sn_ep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOPIC      "bench/snconnect"
#define DRAIN_SECS 3.0
#define TICK_SECS  0.02

enum { D_WAITING, D_SETUP, D_PUBLISHING, D_DONE, D_FAILED };

struct dev {
    struct sn_ep ep;
    uint8_t st;
    uint8_t tries; /* PUBLISH resends */
    bool delivered;
    uint16_t msg_id;
    uint32_t pos; /* in C.active while D_SETUP or D_PUBLISHING */
    double t0, sent_at;
};

static struct {
    const struct opts *o;
    struct dev *devs;
    unsigned n, next, ok, failed;
    uint32_t *active;
    unsigned nactive;
    struct conn sub;
    bool sub_ready;
    double now, t_first, t_last, t_next_tick, t_cpu_end;
    double cpu_first, cpu_last;
    double bcpu_first, bcpu_last; /* the broker's (--broker-pid), or -1 */
    double hcpu_first, hcpu_last; /* the host's time in processes, or -1 */
    double icpu_first, icpu_last; /* and in interrupts */
    uint64_t pub_retries, refused, received, dup;
    double *lat; /* per successful client, seconds */
    const char *first_error;
    char err[160]; /* first_error's text */
    char why[80];  /* a failure's reason before finish() copies it */
} C;

static void die(const char *msg) {
    fprintf(stderr, "loadgen: sn-connect: %s\n", msg);
    exit(1);
}

static void put_le(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- the devices ---- */

static void deactivate(struct dev *d) {
    uint32_t last = C.active[--C.nactive];
    C.active[d->pos] = last;
    C.devs[last].pos = d->pos;
}

static void finish(struct dev *d, bool ok, const char *why) {
    if (d->st == D_SETUP || d->st == D_PUBLISHING)
        deactivate(d);
    d->st = ok ? D_DONE : D_FAILED;
    if (ok) {
        C.lat[C.ok++] = C.now - d->t0;
        C.t_last = C.now;
    } else {
        C.failed++;
        if (!C.first_error) {
            snprintf(C.err, sizeof(C.err), "client %u: %s", d->ep.index, why);
            C.first_error = C.err;
        }
    }
    if (C.ok + C.failed == C.n) { /* the last one: CPU figures end here */
        C.t_cpu_end = C.now;
        C.cpu_last = self_cpu_secs();
        C.bcpu_last = broker_cpu_secs(C.o);
        C.hcpu_last = host_busy_secs();
        C.icpu_last = host_irq_secs();
    }
}

static void send_publish(struct dev *d, bool dup) {
    const struct opts *o = C.o;
    uint16_t tid = o->sn_register ? d->ep.topic_id : o->sn_predefined;
    uint8_t flags = (uint8_t)(mqttsn_qos_flags(1) | (dup ? MQTTSN_FLAG_DUP : 0) |
                              (o->sn_register ? MQTTSN_TOPIC_NORMAL : MQTTSN_TOPIC_PREDEF));
    uint8_t *p = sn_ep_reserve(&d->ep, MQTTSN_MAX_HEADER + MQTTSN_PUBLISH_FIXED + o->payload);
    size_t h = mqttsn_publish_header(p, flags, tid, d->msg_id, o->payload);
    memset(p + h, 'x', o->payload);
    put_le(p + h, d->ep.index, 4);
    put_le(p + h + 4, 1, 8);
    sn_ep_commit(&d->ep, h + o->payload);
    sn_ep_flush(&d->ep);
    d->sent_at = C.now;
}

static void on_ready(struct sn_ep *ep) {
    struct dev *d = &C.devs[ep->index];
    C.now = now_sec();
    d->st = D_PUBLISHING;
    d->msg_id = sn_ep_msg_id(ep);
    send_publish(d, false);
}

static void on_sn_packet(struct sn_ep *ep, const struct mqttsn_pkt *pk) {
    struct dev *d = &C.devs[ep->index];
    uint16_t tid, mid;
    uint8_t rc;
    if (pk->type != MQTTSN_PUBACK || d->st != D_PUBLISHING)
        return;
    if (mqttsn_parse_ack3(pk, &tid, &mid, &rc) != 0 || mid != d->msg_id)
        return;
    C.now = now_sec();
    if (rc == MQTTSN_RC_ACCEPTED) {
        finish(d, true, NULL);
    } else {
        C.refused++;
        snprintf(C.why, sizeof(C.why), "PUBLISH refused with return code %u", rc);
        finish(d, false, C.why);
    }
}

static void on_sn_failed(struct sn_ep *ep, const char *why) {
    C.now = now_sec();
    finish(&C.devs[ep->index], false, why);
}

static void start_more(void) {
    while (C.nactive < C.o->connect_burst && C.next < C.n) {
        struct dev *d = &C.devs[C.next];
        d->ep.kind = 1;
        d->ep.index = C.next;
        snprintf(d->ep.client_id, sizeof(d->ep.client_id), "lg%d-c%u", (int)getpid(), C.next);
        d->ep.topic = C.o->sn_register ? TOPIC : NULL;
        C.next++;
        d->st = D_SETUP;
        d->pos = C.nactive;
        C.active[C.nactive++] = d->ep.index;
        d->t0 = C.now;
        if (!C.t_first) {
            C.t_first = C.now;
            C.cpu_first = self_cpu_secs();
            C.bcpu_first = broker_cpu_secs(C.o);
            C.hcpu_first = host_busy_secs();
            C.icpu_first = host_irq_secs();
        }
        sn_ep_start(&d->ep, C.now);
    }
}

/* Resends what waited --sn-retry seconds; fails clients out of resends. */
static void tick(void) {
    if (C.now < C.t_next_tick)
        return;
    C.t_next_tick = C.now + TICK_SECS;
    for (unsigned i = C.nactive; i-- > 0;) { /* backwards: finish() swaps in the last */
        struct dev *d = &C.devs[C.active[i]];
        if (d->st == D_SETUP) {
            sn_ep_tick(&d->ep, C.now);
            continue;
        }
        if (C.now - d->sent_at < C.o->sn_retry)
            continue;
        if (d->tries >= C.o->sn_retries) {
            snprintf(C.why, sizeof(C.why), "no PUBACK after %u resends", C.o->sn_retries);
            finish(d, false, C.why);
            continue;
        }
        d->tries++;
        C.pub_retries++;
        send_publish(d, true);
    }
}

/* ---- the MQTT subscriber ---- */

static void on_packet(struct conn *c, const struct mqtt_pkt *pk) {
    struct mqtt_publish m;
    switch (pk->type) {
    case MQTT_CONNACK:
        if (pk->body_len < 2 || pk->body[1] != 0)
            die("broker refused the subscriber's CONNECT");
        net_connect_done(c);
        net_commit(c,
                   mqtt_subscribe(net_reserve(c, mqtt_subscribe_size(strlen(TOPIC))), 1, TOPIC, 0));
        net_flush(c);
        break;
    case MQTT_SUBACK:
        if (pk->body_len < 3 || pk->body[2] == 0x80)
            die("subscription to " TOPIC " refused");
        C.sub_ready = true;
        break;
    case MQTT_PUBLISH:
        if (mqtt_parse_publish(pk, &m) != 0 || m.payload_len < 12)
            die("malformed PUBLISH");
        uint32_t id = (uint32_t)m.payload[0] | (uint32_t)m.payload[1] << 8 |
                      (uint32_t)m.payload[2] << 16 | (uint32_t)m.payload[3] << 24;
        if (id < C.n) {
            if (C.devs[id].delivered) {
                C.dup++;
            } else {
                C.devs[id].delivered = true;
                C.received++;
            }
        }
        if (m.qos)
            net_commit(c, mqtt_puback(net_reserve(c, MQTT_PUBACK_SIZE), m.packet_id));
        break;
    default:
        break;
    }
}

static void on_closed(struct conn *c, const char *why) {
    (void)c;
    fprintf(stderr, "loadgen: sn-connect: subscriber: %s\n", why);
    exit(1);
}

/* ---- result ---- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p) {
    if (!C.ok)
        return 0;
    unsigned i = (unsigned)(p * (C.ok - 1) + 0.5);
    return 1000 * C.lat[i];
}

static void print_result(void) {
    qsort(C.lat, C.ok, sizeof(*C.lat), cmp_double);
    double secs = C.ok ? C.t_last - C.t_first : 0, cpu_secs = C.ok ? C.t_cpu_end - C.t_first : 0;
    uint64_t missing = 0;
    for (unsigned i = 0; i < C.n; i++)
        missing += C.devs[i].st == D_DONE && !C.devs[i].delivered;
    const struct sn_ep_stats *st = sn_ep_get_stats();
    printf("RESULT scenario=sn-connect clients=%u ok=%u failed=%u secs=%.3f rate=%.0f "
           "p50_ms=%.1f p99_ms=%.1f max_ms=%.1f retries=%llu refused=%llu received=%llu "
           "missing=%llu dup=%llu burst=%u topic=%s transport=mqttsn lg_cpu=%.0f",
           C.n, C.ok, C.failed, secs, secs > 0 ? C.ok / secs : 0.0, pct(0.5), pct(0.99), pct(1.0),
           (unsigned long long)(st->retries + C.pub_retries), (unsigned long long)C.refused,
           (unsigned long long)C.received, (unsigned long long)missing, (unsigned long long)C.dup,
           C.o->connect_burst, C.o->sn_register ? "registered" : "predefined",
           cpu_secs > 0 ? 100 * (C.cpu_last - C.cpu_first) / cpu_secs : 0.0);
    if (C.bcpu_first >= 0 && C.bcpu_last >= 0 && cpu_secs > 0)
        printf(" broker_cpu=%.0f", 100 * (C.bcpu_last - C.bcpu_first) / cpu_secs);
    if (C.hcpu_first >= 0 && C.hcpu_last >= 0 && cpu_secs > 0)
        printf(" host_cpu=%.0f irq_cpu=%.0f", 100 * (C.hcpu_last - C.hcpu_first) / cpu_secs,
               100 * (C.icpu_last - C.icpu_first) / cpu_secs);
    putchar('\n');
    if (C.failed)
        fprintf(stderr, "loadgen: sn-connect: %u of %u clients failed, first: %s\n", C.failed, C.n,
                C.first_error ? C.first_error : "?");
}

int snconnect_run(const struct opts *o) {
    C.o = o;
    C.n = o->clients;
    struct net_handlers h = {.on_packet = on_packet, .on_closed = on_closed};
    struct sn_ep_handlers sh = {
        .on_ready = on_ready, .on_packet = on_sn_packet, .on_failed = on_sn_failed};
    if (net_raise_nofile(C.n + 64) != 0 || lg_net_init(o, &h) != 0 ||
        sn_ep_init(o->host, o->sn_port, &sh, o->sn_retry, o->sn_retries, o->sn_duration,
                   !o->sn_no_gso) != 0)
        return 1;
    C.devs = calloc(C.n, sizeof(*C.devs));
    C.active = calloc(C.n, sizeof(*C.active));
    C.lat = calloc(C.n, sizeof(*C.lat));
    if (!C.devs || !C.active || !C.lat)
        die("out of memory");

    char id[48];
    snprintf(id, sizeof(id), "lg%d-cs", (int)getpid());
    net_commit(&C.sub, mqtt_connect(net_reserve(&C.sub, mqtt_connect_size(strlen(id))), id, 60));
    net_queue_connect(&C.sub);
    double t0 = now_sec();
    while (!C.sub_ready) {
        net_poll(50);
        if (now_sec() - t0 > o->setup_timeout)
            die("timed out connecting the subscriber");
    }

    /* The devices' sockets exist before the clock starts: opening 10,000 of
     * them is loadgen's work, not the gateway's. */
    for (unsigned i = 0; i < C.n; i++) {
        C.devs[i].ep.kind = 1;
        C.devs[i].ep.index = i;
        const char *why = sn_ep_open(&C.devs[i].ep);
        if (why) {
            fprintf(stderr, "loadgen: sn-connect: socket %u: %s\n", i, why);
            return 1;
        }
    }
    C.now = now_sec();
    while (C.ok + C.failed < C.n) {
        start_more();
        net_poll(C.nactive ? 5 : 50);
        C.now = now_sec();
        tick();
        if (C.now - C.t_first > o->setup_timeout) {
            for (unsigned i = C.nactive; i-- > 0;)
                finish(&C.devs[C.active[i]], false, "timed out (--setup-timeout)");
            for (; C.next < C.n; C.next++)
                finish(&C.devs[C.next], false, "never started (--setup-timeout)");
        }
    }
    double t_drain = now_sec();
    while (C.received < C.ok && now_sec() - t_drain < DRAIN_SECS)
        net_poll(20);
    if (o->verbose) {
        const struct sn_ep_stats *st = sn_ep_get_stats();
        fprintf(stderr,
                "loadgen: MQTT-SN datagrams: %llu out in %llu sendmmsg, %llu in in %llu "
                "recvmmsg; socket rcvbuf %d\n",
                (unsigned long long)st->dg_out, (unsigned long long)st->sendmmsg,
                (unsigned long long)st->dg_in, (unsigned long long)st->recvmmsg, sn_ep_rcvbuf());
    }
    print_result();
    return C.failed ? 1 : 0;
}
