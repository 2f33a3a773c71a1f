/* idle.c - loadgen's idle mode, for measuring the broker's memory per connection.
 *
 * Opens --clients MQTT connections (CONNECT with keepalive 0, wait for CONNACK;
 * with --ws each one over its own WebSocket, answering the broker's pings),
 * at most --connect-burst handshakes at a time. When all are up it prints
 *   IDLE_READY conns=N secs=S
 * and holds them for --hold seconds or until SIGTERM/SIGINT, then prints
 *   RESULT scenario=idle conns=N failed=F transport=tcp|ws
 * run.sh reads the broker's VmRSS before the run and after IDLE_READY.
 */
#include "loadgen.h"
#include "net.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct {
    const struct opts *o;
    struct conn *conns;
    unsigned ready, failed;
    const char *first_error;
} I;

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: epoll_wait returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

static void on_packet(struct conn *c, const struct mqtt_pkt *pk) {
    if (pk->type != MQTT_CONNACK)
        return;
    if (pk->body_len < 2 || pk->body[1] != 0) {
        net_close(c);
        I.failed++;
        I.first_error = "CONNECT refused";
        return;
    }
    net_connect_done(c);
    I.ready++;
}

static void on_closed(struct conn *c, const char *why) {
    (void)c;
    I.failed++;
    if (!I.first_error)
        I.first_error = why;
}

static void queue_all(unsigned n) {
    I.conns = calloc(n, sizeof(*I.conns));
    if (!I.conns) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(1);
    }
    for (unsigned i = 0; i < n; i++) {
        struct conn *c = &I.conns[i];
        char id[48];
        snprintf(id, sizeof(id), "lgi%d-%u", (int)getpid(), i);
        c->index = i;
        net_commit(c, mqtt_connect(net_reserve(c, mqtt_connect_size(strlen(id))), id, 0));
        net_queue_connect(c);
    }
}

/* Waits until every connection has its CONNACK (or failed). */
static int open_all(double t0) {
    unsigned n = I.o->clients;
    while (I.ready + I.failed < n && !stop_requested) {
        net_poll(100);
        if (now_sec() - t0 > I.o->setup_timeout) {
            fprintf(stderr, "loadgen: idle: only %u of %u connected in time\n", I.ready, n);
            return -1;
        }
    }
    return I.failed || stop_requested ? -1 : 0;
}

static void hold(void) {
    double until = now_sec() + I.o->hold;
    while (!stop_requested && now_sec() < until)
        net_poll(200);
}

int idle_run(const struct opts *o) {
    I.o = o;
    struct net_handlers h = {.on_packet = on_packet, .on_closed = on_closed};
    install_signals();
    if (net_raise_nofile(o->clients + 64) != 0 || lg_net_init(o, &h) != 0)
        return 1;
    double t0 = now_sec();
    queue_all(o->clients);
    int rc = open_all(t0);
    if (rc == 0) {
        printf("IDLE_READY conns=%u secs=%.2f\n", I.ready, now_sec() - t0);
        hold();
    }
    printf("RESULT scenario=idle conns=%u failed=%u transport=%s\n", I.ready, I.failed,
           transport_name(o));
    if (I.failed)
        fprintf(stderr, "loadgen: idle: %u connections failed, first: %s\n", I.failed,
                I.first_error);
    return rc == 0 && I.failed == 0 ? 0 : 1;
}
