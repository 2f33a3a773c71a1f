/* loadgen.c - polygate's MQTT 3.1.1 / MQTT-SN v1.2 load generator: options and main.
 *
 * Used by tests/bench/run.sh to compare polygate with mosquitto. It is a
 * single-threaded epoll client with its own MQTT codec (mqtt_codec.c), its
 * own connection layer (net.c; plain TCP, or with --ws MQTT over WebSocket,
 * its own RFC 6455 client in ws.c), its own MQTT-SN codec and UDP clients
 * (mqttsn_codec.c, sn_ep.c) and three modes:
 *
 *   bench.c  throughput scenarios, one RESULT line at the end:
 *            pairs   N publisher/subscriber pairs, pair i on bench/pair/<i>
 *            fanin   N publishers on bench/fanin/<i> -> 1 subscriber on bench/fanin/#
 *            fanout  1 publisher on bench/fanout -> N subscribers
 *            sn-fanin   N MQTT-SN publishers (UDP, --sn-port; CONNECT, REGISTER
 *                       bench/snfanin/<i>) -> 1 MQTT subscriber on bench/snfanin/#
 *            sn-fanout  1 MQTT publisher on bench/snfanout -> N MQTT-SN subscribers
 *                       (SUBSCRIBE by name; REGISTERs answered; PUBACK at QoS 1)
 *   idle.c   opens N idle connections, prints IDLE_READY, holds them (RSS test)
 *   snconnect.c  sn-connect: N MQTT-SN clients each CONNECT and PUBLISH once at
 *            QoS 1 (its own RESULT line, described there)
 *
 * How the rate is measured (flow control)
 * ---------------------------------------
 * Every payload starts with the publisher's id (u32) and a per-publisher
 * sequence number (u64, from 1). Each subscriber remembers, per publisher,
 * how many messages it got and the highest sequence it saw. Publishers and
 * subscribers live in this one process, so a publisher sees directly how far
 * its slowest subscriber has got:
 *
 *   ahead = last sequence sent - min over its subscribers of highest sequence seen
 *
 * A publisher may send while ahead < window (--window; default 64, for fanin
 * 512/N so the single subscriber's backlog stays ~512). So the broker never
 * holds more than `window` undelivered messages per publisher and subscriber,
 * well below max_queued_messages (1000): a correct broker has no reason to
 * drop, and the count is what the broker can sustainably deliver, not what
 * it can buffer. For QoS 1 a publisher also keeps at most --ack-window (64)
 * PUBLISHes without PUBACK, and subscribers PUBACK every PUBLISH at once.
 * Windows are refilled after each epoll_wait batch, and only once a quarter
 * of the window is free, so each publisher sends many messages per send();
 * subscribers read up to 512 KB per recv() and parse every packet in it.
 * Using the highest sequence (not a count) means a dropped message does not
 * hold the window once a later one arrives. If a whole window's tail was
 * dropped nothing arrives at all: after 100 ms without progress the publisher
 * may send one extra "probe" message (reported as stalls=).
 *
 * Counting: each PUBLISH received by a subscriber is one delivery (fan-out
 * counts every subscriber's copy), counted only after the warm-up (--warmup,
 * 1 s) for --secs seconds; rate = deliveries / measured seconds.
 * Loss: afterwards publishers stop and loadgen waits up to 3 s for the last
 * message of every publisher to reach every subscriber; then
 * lost = copies sent (expected=, whole run) - copies received. For QoS 1 it
 * means the broker discarded acknowledged messages (e.g. at a queue limit of
 * its own). ooo= counts deliveries older than one already seen
 * (reordering or duplicates; MQTT keeps per-publisher order, so it should be 0).
 *
 * MQTT-SN (sn-fanin, sn-fanout): the same windows and counting. An MQTT-SN
 * publisher is one UDP socket; its window's PUBLISHes go out in one UDP GSO
 * send (the kernel cuts it into the individual datagrams; --sn-no-gso: one
 * sendmmsg).
 * At QoS 1 it keeps --ack-window PUBLISHes un-PUBACKed, default 1 (MQTT-SN
 * v1.2 6.13: one outstanding QoS 1 PUBLISH per client), so QoS 1 concurrency
 * comes from the N publishers. At QoS 0 the delivery window is the cap that
 * keeps the datagrams in flight (N x window) well inside the gateway's socket
 * buffer: UDP on loopback drops silently when a receive buffer is full, and
 * the benchmark measures the gateway, not the kernel. A lost PUBACK or
 * PUBLISH is not resent during the measurement: it shows as lost= and stalls=.
 *
 * Output: RESULT scenario= qos= clients= payload= window= msgs= secs= rate=
 *         expected= lost= ooo= stalls= transport= lg_cpu= [broker_cpu=] host_cpu=
 *         irq_cpu=
 *         and for sn-*: ack_window= sn_retries= refused= unknown_topic= bad_qos=
 *         sn_malformed=
 * (lg_cpu: loadgen's own CPU time during the measurement, % of one core; if it
 * nears 100 the load generator, not the broker, limits the rate. broker_cpu:
 * the same for the process --broker-pid names; host_cpu: all the host's CPU
 * time in processes meanwhile (up to 100 x cores), so host_cpu - lg_cpu -
 * broker_cpu is what other processes took; irq_cpu: the host's interrupt and
 * softirq time (loopback delivery of what both sides send is mostly there). sn_retries: set-up
 * messages resent; refused: PUBACKs other than accepted; unknown_topic: PUBLISHes to a topic id the
 * gateway never gave us; bad_qos: deliveries at another QoS than subscribed; sn_malformed:
 * datagrams from the gateway that did not parse.)
 */
#include "loadgen.h"
#include "mqttsn_codec.h"
#include "net.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double self_cpu_secs(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

double broker_cpu_secs(const struct opts *o) {
    if (o->broker_pid <= 0)
        return -1;
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", o->broker_pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long ut, st;
    /* after ")": state(3) ... utime(14) stime(15) */
    if (!p ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The host's "cpu" line of /proc/stat: user nice system idle iowait irq softirq. */
static int host_stat(unsigned long long v[7]) {
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
                   &v[5], &v[6]);
    fclose(f);
    return n == 7 ? 0 : -1;
}

double host_busy_secs(void) {
    unsigned long long v[7];
    if (host_stat(v) != 0)
        return -1;
    return (double)(v[0] + v[1] + v[2]) / (double)sysconf(_SC_CLK_TCK);
}

double host_irq_secs(void) {
    unsigned long long v[7];
    if (host_stat(v) != 0)
        return -1;
    return (double)(v[5] + v[6]) / (double)sysconf(_SC_CLK_TCK);
}

static const char *const scenario_names[] = {"pairs",    "fanin",     "fanout",    "idle",
                                             "sn-fanin", "sn-fanout", "sn-connect"};

const char *scenario_name(enum scenario sc) {
    return scenario_names[sc];
}

const char *transport_name(const struct opts *o) {
    if (scenario_is_sn(o->scenario))
        return "mqttsn";
    return o->ws ? "ws" : "tcp";
}

int lg_net_init(const struct opts *o, const struct net_handlers *h) {
    if (net_init(o->host, o->port, o->connect_burst, h) != 0)
        return -1;
    if (o->ws)
        net_use_websocket(o->ws_path, o->ws_frame_max);
    return 0;
}

static void usage(FILE *f) {
    fprintf(f, "usage: loadgen [options]\n"
               "  -s, --scenario NAME    pairs | fanin | fanout | idle |\n"
               "                         sn-fanin | sn-fanout | sn-connect (default pairs)\n"
               "  -q, --qos N            0 or 1 (default 0; sn-connect always 1)\n"
               "  -n, --clients N        pairs / publishers / subscribers / idle conns /\n"
               "                         MQTT-SN clients (defaults 20 / 50 / 50 / 10000 /\n"
               "                         sn-fanin, sn-fanout 50, sn-connect 10000)\n"
               "  -t, --secs S           measured seconds (default 10)\n"
               "  -w, --warmup S         warm-up seconds, not counted (default 1)\n"
               "  -p, --port P           broker port (default 1883)\n"
               "  -H, --host A           broker IPv4 address (default 127.0.0.1)\n"
               "      --payload B        payload bytes, >= 12 (default 64)\n"
               "      --window K         messages ahead of the slowest subscriber\n"
               "                         (default 64; fanin 512/N)\n"
               "      --ack-window K     QoS 1 un-PUBACKed messages per publisher (default 64;\n"
               "                         MQTT-SN publishers 1, as the spec has it)\n"
               "      --connect-burst M  connections waiting for CONNACK at once (default 64);\n"
               "                         sn-connect: clients between CONNECT and PUBACK at\n"
               "                         once (default 200)\n"
               "      --hold S           idle: seconds to hold connections (default 60)\n"
               "      --setup-timeout S  give up if not connected by then (default 60)\n"
               "      --ws               MQTT over WebSocket (subprotocol mqtt) instead of TCP\n"
               "      --ws-path P        upgrade request path (default /mqtt)\n"
               "      --ws-frame-max B   payload bytes per client frame; a flush larger than\n"
               "                         that is sent as a fragmented message (default 65536)\n"
               "      --sn-port P        MQTT-SN gateway UDP port (sn-*; default 1884); -p\n"
               "                         is still the MQTT port of the other side\n"
               "      --sn-retry S       MQTT-SN resend timeout (default 2)\n"
               "      --sn-retries N     MQTT-SN resends before a client fails (default 3)\n"
               "      --sn-duration S    MQTT-SN keep alive in CONNECT (default 300)\n"
               "      --sn-register      sn-connect: REGISTER bench/snconnect before the\n"
               "                         PUBLISH instead of using a predefined topic id\n"
               "      --sn-predefined ID sn-connect: predefined id of bench/snconnect (default 1)\n"
               "      --broker-pid PID   report that process's CPU while measuring (broker_cpu=)\n"
               "      --sn-no-gso        MQTT-SN: no UDP GSO for batches of PUBLISHes\n"

               "  -v, --verbose          per-second progress on stderr\n");
}

static int parse_scenario(const char *s, enum scenario *out) {
    for (unsigned i = 0; i < sizeof(scenario_names) / sizeof(*scenario_names); i++) {
        if (strcmp(s, scenario_names[i]) == 0) {
            *out = (enum scenario)i;
            return 0;
        }
    }
    return -1;
}

static unsigned default_clients(enum scenario sc) {
    switch (sc) {
    case SC_PAIRS:
        return 20;
    case SC_IDLE:
    case SC_SN_CONNECT:
        return 10000;
    default:
        return 50;
    }
}

static void apply_defaults(struct opts *o) {
    if (!o->clients)
        o->clients = default_clients(o->scenario);
    if (!o->window) {
        o->window = 64;
        if (o->scenario == SC_FANIN || o->scenario == SC_SN_FANIN)
            o->window = o->clients >= 256 ? 2 : 512 / o->clients;
    }
    /* MQTT-SN v1.2 6.13: a client has at most one QoS 1/2 PUBLISH outstanding. */
    if (!o->ack_window)
        o->ack_window = o->scenario == SC_SN_FANIN ? 1 : 64;
    if (!o->connect_burst)
        o->connect_burst = o->scenario == SC_SN_CONNECT ? 200 : 64;
    if (o->scenario == SC_SN_CONNECT)
        o->qos = 1;
}

enum {
    OPT_PAYLOAD = 256,
    OPT_WINDOW,
    OPT_ACK_WINDOW,
    OPT_BURST,
    OPT_HOLD,
    OPT_SETUP,
    OPT_WS,
    OPT_WS_PATH,
    OPT_WS_FRAME_MAX,
    OPT_SN_PORT,
    OPT_SN_RETRY,
    OPT_SN_RETRIES,
    OPT_SN_DURATION,
    OPT_SN_REGISTER,
    OPT_SN_PREDEFINED,
    OPT_BROKER_PID,
    OPT_SN_NO_GSO,
};

static int parse_args(int argc, char **argv, struct opts *o) {
    static const struct option longopts[] = {
        {"scenario", required_argument, 0, 's'},
        {"qos", required_argument, 0, 'q'},
        {"clients", required_argument, 0, 'n'},
        {"secs", required_argument, 0, 't'},
        {"warmup", required_argument, 0, 'w'},
        {"port", required_argument, 0, 'p'},
        {"host", required_argument, 0, 'H'},
        {"payload", required_argument, 0, OPT_PAYLOAD},
        {"window", required_argument, 0, OPT_WINDOW},
        {"ack-window", required_argument, 0, OPT_ACK_WINDOW},
        {"connect-burst", required_argument, 0, OPT_BURST},
        {"hold", required_argument, 0, OPT_HOLD},
        {"setup-timeout", required_argument, 0, OPT_SETUP},
        {"ws", no_argument, 0, OPT_WS},
        {"ws-path", required_argument, 0, OPT_WS_PATH},
        {"ws-frame-max", required_argument, 0, OPT_WS_FRAME_MAX},
        {"sn-port", required_argument, 0, OPT_SN_PORT},
        {"sn-retry", required_argument, 0, OPT_SN_RETRY},
        {"sn-retries", required_argument, 0, OPT_SN_RETRIES},
        {"sn-duration", required_argument, 0, OPT_SN_DURATION},
        {"sn-register", no_argument, 0, OPT_SN_REGISTER},
        {"sn-predefined", required_argument, 0, OPT_SN_PREDEFINED},
        {"broker-pid", required_argument, 0, OPT_BROKER_PID},
        {"sn-no-gso", no_argument, 0, OPT_SN_NO_GSO},
        {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "s:q:n:t:w:p:H:vh", longopts, NULL)) != -1) {
        switch (ch) {
        case 's':
            if (parse_scenario(optarg, &o->scenario) != 0)
                return -1;
            break;
        case 'q':
            o->qos = (unsigned)atoi(optarg);
            break;
        case 'n':
            o->clients = (unsigned)atoi(optarg);
            break;
        case 't':
            o->secs = atof(optarg);
            break;
        case 'w':
            o->warmup = atof(optarg);
            break;
        case 'p':
            o->port = (uint16_t)atoi(optarg);
            break;
        case 'H':
            o->host = optarg;
            break;
        case OPT_PAYLOAD:
            o->payload = (unsigned)atoi(optarg);
            break;
        case OPT_WINDOW:
            o->window = (unsigned)atoi(optarg);
            break;
        case OPT_ACK_WINDOW:
            o->ack_window = (unsigned)atoi(optarg);
            break;
        case OPT_BURST:
            o->connect_burst = (unsigned)atoi(optarg);
            break;
        case OPT_HOLD:
            o->hold = atof(optarg);
            break;
        case OPT_SETUP:
            o->setup_timeout = atof(optarg);
            break;
        case OPT_WS:
            o->ws = true;
            break;
        case OPT_WS_PATH:
            o->ws_path = optarg;
            break;
        case OPT_WS_FRAME_MAX:
            o->ws_frame_max = (unsigned)atoi(optarg);
            break;
        case OPT_SN_PORT:
            o->sn_port = (uint16_t)atoi(optarg);
            break;
        case OPT_SN_RETRY:
            o->sn_retry = atof(optarg);
            break;
        case OPT_SN_RETRIES:
            o->sn_retries = (unsigned)atoi(optarg);
            break;
        case OPT_SN_DURATION:
            o->sn_duration = (uint16_t)atoi(optarg);
            break;
        case OPT_SN_REGISTER:
            o->sn_register = true;
            break;
        case OPT_SN_PREDEFINED:
            o->sn_predefined = (uint16_t)atoi(optarg);
            break;
        case OPT_BROKER_PID:
            o->broker_pid = atoi(optarg);
            break;
        case OPT_SN_NO_GSO:
            o->sn_no_gso = true;
            break;
        case 'v':
            o->verbose = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    return optind == argc ? 0 : -1;
}

static int validate(const struct opts *o) {
    if (o->qos > 1 || o->payload < 12 || o->payload > 65536 || o->secs <= 0 || o->warmup < 0 ||
        o->window == 0 || o->ack_window == 0 || o->ack_window > 30000 || o->port == 0 ||
        o->clients == 0 || o->ws_frame_max == 0 || o->ws_path[0] != '/')
        return -1;
    /* MQTT-SN: one datagram per message; SN_EP's receive slots are 64 KB. */
    if (scenario_is_sn(o->scenario) &&
        (o->ws || o->sn_port == 0 || o->sn_retry <= 0 || o->sn_predefined == 0 ||
         o->payload > 65535 - MQTTSN_MAX_HEADER - MQTTSN_PUBLISH_FIXED))
        return -1;
    return 0;
}

int main(int argc, char **argv) {
    struct opts o = {
        .scenario = SC_PAIRS,
        .host = "127.0.0.1",
        .port = 1883,
        .payload = 64,
        .sn_port = 1884,
        .sn_retry = 2,
        .sn_retries = 3,
        .sn_duration = 300,
        .sn_predefined = 1,
        .secs = 10,
        .warmup = 1,
        .hold = 60,
        .setup_timeout = 60,
        .ws_path = "/mqtt",
        .ws_frame_max = 65536,
    };
    if (parse_args(argc, argv, &o) != 0 || (apply_defaults(&o), validate(&o) != 0)) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (o.scenario == SC_IDLE)
        return idle_run(&o);
    if (o.scenario == SC_SN_CONNECT)
        return snconnect_run(&o);
    return bench_run(&o);
}
