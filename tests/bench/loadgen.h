/* loadgen.h - what loadgen.c (options, main) shares with the two modes:
 * bench.c (pairs / fanin / fanout throughput) and idle.c (idle connections). */
#ifndef LG_LOADGEN_H
#define LG_LOADGEN_H

#include <stdbool.h>
#include <stdint.h>

enum scenario { SC_PAIRS, SC_FANIN, SC_FANOUT, SC_IDLE };

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
    bool verbose;          /* per-second progress on stderr */
    bool ws;               /* MQTT over WebSocket instead of plain TCP */
    const char *ws_path;   /* request path of the upgrade (default /mqtt) */
    unsigned ws_frame_max; /* payload bytes per client frame (default 65536) */
};

const char *scenario_name(enum scenario sc);
const char *transport_name(const struct opts *o);
/* net_init plus the transport the options ask for. Returns 0 or -1. */
struct net_handlers;
int lg_net_init(const struct opts *o, const struct net_handlers *h);
double now_sec(void);

/* Both return the process exit status and print the RESULT line. */
int bench_run(const struct opts *o);
int idle_run(const struct opts *o);

#endif
