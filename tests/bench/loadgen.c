/* loadgen.c - polygate's MQTT 3.1.1 load generator: options and main.
 *
 * Used by tests/bench/run.sh to compare polygate with mosquitto. It is a
 * single-threaded epoll client with its own MQTT codec (mqtt_codec.c), its
 * own connection layer (net.c; plain TCP, or with --ws MQTT over WebSocket,
 * its own RFC 6455 client in ws.c) and two modes:
 *
 *   bench.c  throughput scenarios, one RESULT line at the end:
 *            pairs   N publisher/subscriber pairs, pair i on bench/pair/<i>
 *            fanin   N publishers on bench/fanin/<i> -> 1 subscriber on bench/fanin/#
 *            fanout  1 publisher on bench/fanout -> N subscribers
 *   idle.c   opens N idle connections, prints IDLE_READY, holds them (RSS test)
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
 * Output: RESULT scenario= qos= clients= payload= window= msgs= secs= rate=
 *         expected= lost= ooo= stalls= transport= lg_cpu=
 * (lg_cpu: loadgen's own CPU time during the measurement, % of one core; if it
 * nears 100 the load generator, not the broker, limits the rate.)
 */
#include "loadgen.h"
#include "net.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *const scenario_names[] = {"pairs", "fanin", "fanout", "idle"};

const char *scenario_name(enum scenario sc) {
    return scenario_names[sc];
}

const char *transport_name(const struct opts *o) {
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
               "  -s, --scenario NAME    pairs | fanin | fanout | idle (default pairs)\n"
               "  -q, --qos N            0 or 1 (default 0)\n"
               "  -n, --clients N        pairs / publishers / subscribers / idle conns\n"
               "                         (defaults 20 / 50 / 50 / 10000)\n"
               "  -t, --secs S           measured seconds (default 10)\n"
               "  -w, --warmup S         warm-up seconds, not counted (default 1)\n"
               "  -p, --port P           broker port (default 1883)\n"
               "  -H, --host A           broker IPv4 address (default 127.0.0.1)\n"
               "      --payload B        payload bytes, >= 12 (default 64)\n"
               "      --window K         messages ahead of the slowest subscriber\n"
               "                         (default 64; fanin 512/N)\n"
               "      --ack-window K     QoS 1 un-PUBACKed messages per publisher (default 64)\n"
               "      --connect-burst M  connections waiting for CONNACK at once (default 64)\n"
               "      --hold S           idle: seconds to hold connections (default 60)\n"
               "      --setup-timeout S  give up if not connected by then (default 60)\n"
               "      --ws               MQTT over WebSocket (subprotocol mqtt) instead of TCP\n"
               "      --ws-path P        upgrade request path (default /mqtt)\n"
               "      --ws-frame-max B   payload bytes per client frame; a flush larger than\n"
               "                         that is sent as a fragmented message (default 65536)\n"
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
        if (o->scenario == SC_FANIN)
            o->window = o->clients >= 256 ? 2 : 512 / o->clients;
    }
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
    return 0;
}

int main(int argc, char **argv) {
    struct opts o = {
        .scenario = SC_PAIRS,
        .host = "127.0.0.1",
        .port = 1883,
        .payload = 64,
        .ack_window = 64,
        .connect_burst = 64,
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
    return o.scenario == SC_IDLE ? idle_run(&o) : bench_run(&o);
}
