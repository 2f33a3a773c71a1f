/* embed.c - polygate as a library inside your own program.
 *
 * Starts the broker with one MQTT listener, registers a hook that logs every
 * message entering the broker, and publishes from inside the process every
 * 200 ms with no network client (an "inline client"). Subscribe to see it:
 *
 *     build/examples/embed 1883 &
 *     mosquitto_sub -p 1883 -t 'embed/#' -v
 *
 * Usage: embed [PORT [COUNT]]  - PORT 0 picks a free port (printed first);
 * after COUNT inline publishes (default: forever) the program stops cleanly.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/log.h"
#include "gateway/polygate.h"

struct app {
    struct polygate *gw;
    int published, count;
};

static struct app app;

/* Hook: called for every message that enters the broker, from any protocol. */
static void log_event(void *ud, const struct pg_event *ev) {
    if (ev->type != PG_EV_PUBLISHED)
        return;
    printf("hook: published '%s' (%u bytes, qos %u) by %s\n", ev->msg->topic, ev->msg->payload_len,
           ev->msg->qos, ev->id ? ev->id->client_id : "the program itself");
    fflush(stdout);
}

/* Runs on the gateway's loop thread: publish without any network client. */
static void publish_tick(void *ud) {
    struct app *a = ud;
    if (a->count && a->published >= a->count) {
        polygate_stop(a->gw);
        return;
    }
    char payload[64];
    int n = snprintf(payload, sizeof payload, "reading %d", ++a->published);
    pg_broker_publish(polygate_broker(a->gw), "embed/reading", payload, (size_t)n, 1, 0);
}

static void on_signal(int sig) {
    polygate_stop(app.gw);
}

/* A config with only an MQTT listener on 127.0.0.1:port. */
static void make_config(struct pg_config *cfg, int port) {
    pg_config_defaults(cfg);
    cfg->mqtt.listeners[0].port = port;
    free(cfg->mqtt.listeners[0].bind);
    cfg->mqtt.listeners[0].bind = strdup("127.0.0.1");
    cfg->websocket.enabled = cfg->mqttsn.enabled = cfg->coap.enabled = false;
    cfg->stomp.enabled = cfg->http.enabled = false;
    cfg->broker.sys_interval = 0;
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 1883;
    app.count = argc > 2 ? atoi(argv[2]) : 0;
    struct pg_config cfg;
    make_config(&cfg, port);
    pg_log_set_level(PG_LOG_WARNING);
    char err[256];
    app.gw = polygate_new(&cfg, err, sizeof err);
    pg_config_free(&cfg);
    if (!app.gw) {
        fprintf(stderr, "embed: %s\n", err);
        return 1;
    }
    struct pg_hooks hooks = {.event = log_event, .ud = &app};
    pg_broker_add_hooks(polygate_broker(app.gw), &hooks);
    printf("port %d\n", polygate_port(app.gw, "mqtt", 0));
    fflush(stdout);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    polygate_every(app.gw, 200, publish_tick, &app);
    polygate_run(app.gw);
    polygate_free(app.gw);
    printf("embed: published %d messages inline\n", app.published);
    return 0;
}
