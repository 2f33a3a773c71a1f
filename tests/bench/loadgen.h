/* loadgen.h - what loadgen.c (options, main) shares with the modes: bench.c
 * (pairs / fanin / fanout throughput, and sn-fanin / sn-fanout with MQTT-SN
 * clients on one side), idle.c (idle connections) and snconnect.c (sn-connect:
 * many MQTT-SN clients each connecting and publishing once). */
#ifndef LG_LOADGEN_H
#define LG_LOADGEN_H

#include <stdbool.h>
#include <stdint.h>

enum scenario { SC_PAIRS, SC_FANIN, SC_FANOUT, SC_IDLE, SC_SN_FANIN, SC_SN_FANOUT, SC_SN_CONNECT };

struct opts {
    enum scenario scenario;
    const char *host;
    uint16_t port;
    unsigned clients;       /* pairs / publishers / subscribers / idle connections */
    unsigned qos;           /* 0 or 1 */
    unsigned payload;       /* bytes per message, >= 12 */
    unsigned window;        /* messages a publisher may be ahead of its slowest subscriber */
    unsigned ack_window;    /* QoS 1: PUBLISHes a publisher may have un-PUBACKed */
    unsigned connect_burst; /* connections at most waiting for CONNACK at once */
    double secs;            /* measured duration */
    double warmup;          /* not counted */
    double hold;            /* idle: seconds to hold the connections */
    double setup_timeout;
    bool verbose;           /* per-second progress on stderr */
    bool ws;                /* MQTT over WebSocket instead of plain TCP */
    const char *ws_path;    /* request path of the upgrade (default /mqtt) */
    unsigned ws_frame_max;  /* payload bytes per client frame (default 65536) */
    uint16_t sn_port;       /* the MQTT-SN gateway's UDP port (sn-* scenarios) */
    double sn_retry;        /* MQTT-SN: seconds before a message is resent (Tretry) */
    unsigned sn_retries;    /* MQTT-SN: resends before giving up (Nretry) */
    uint16_t sn_duration;   /* MQTT-SN: keep alive in CONNECT, seconds */
    bool sn_register;       /* sn-connect: REGISTER the topic instead of predefined id */
    uint16_t sn_predefined; /* sn-connect: the predefined topic id of bench/snconnect */
    int broker_pid;         /* > 0: report that process's CPU while measuring */
    bool sn_no_gso;         /* MQTT-SN: one send per datagram (sendmmsg), no UDP GSO */
};

const char *scenario_name(enum scenario sc);
const char *transport_name(const struct opts *o);
/* net_init plus the transport the options ask for. Returns 0 or -1. */
struct net_handlers;
int lg_net_init(const struct opts *o, const struct net_handlers *h);
double now_sec(void);
/* CPU seconds (user + system) of this process, and of the broker (--broker-pid;
 * -1 when not given or unreadable). */
double self_cpu_secs(void);
double broker_cpu_secs(const struct opts *o);
/* CPU seconds all CPUs of the host spent in processes (user + nice + system,
 * from /proc/stat), and in interrupts (irq + softirq: with IRQ time accounting
 * loopback delivery runs there and is charged to no process); -1 when
 * unreadable. With loadgen's and the broker's share, the first shows what
 * other processes took meanwhile. */
double host_busy_secs(void);
double host_irq_secs(void);

/* Both return the process exit status and print the RESULT line. */
int bench_run(const struct opts *o);
int idle_run(const struct opts *o);
int snconnect_run(const struct opts *o);

/* True for the scenarios with MQTT-SN clients. */
static inline bool scenario_is_sn(enum scenario sc) {
    return sc == SC_SN_FANIN || sc == SC_SN_FANOUT || sc == SC_SN_CONNECT;
}

#endif
