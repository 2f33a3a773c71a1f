/* sn_group.c - see sn_group.h. Turns the mqttsn config group into gateways on the
 * lws loop: predefined topics, credentials and limits go to each gateway, a
 * quarter-second timer drives their deadlines, and an optional timer sends
 * ADVERTISE to the configured broadcast address.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/mqttsn/sn_lws.h"
#include "gateway/log.h"
#include "gateway/polygate.h"
#include "gateway/sn_group.h"

#define TICK_MS 250

struct sn_listener {
    struct sn_lws *udp;
    struct sn_gw *gw;
    int v4; /* ADVERTISE goes to an IPv4 address */
};

struct sn_group {
    struct sn_listener *l;
    int n;
    uint16_t advertise_s;
    struct sockaddr_in advertise_to;
};

static void tick(void *ud) {
    struct sn_group *s = ud;
    for (int i = 0; i < s->n; i++)
        sn_gw_tick(s->l[i].gw);
}

static void advertise(void *ud) {
    struct sn_group *s = ud;
    for (int i = 0; i < s->n; i++)
        if (s->l[i].v4)
            sn_gw_advertise(s->l[i].gw, (const struct sockaddr *)&s->advertise_to,
                            sizeof s->advertise_to, s->advertise_s);
}

/* config.c checked the form "IPv4:port". */
static void parse_address(const char *v, struct sockaddr_in *a) {
    char host[64];
    const char *colon = strrchr(v, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon - v), v);
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)atoi(colon + 1));
    inet_pton(AF_INET, host, &a->sin_addr);
}

static int open_one(struct sn_group *s, struct lws_context *cx, pg_broker *b,
                    const struct pg_config *cfg, const struct pg_listener_conf *lc,
                    const struct sn_predefined *pre, int *total_connections, char *err,
                    size_t errlen) {
    const typeof(cfg->mqttsn_opts) *o = &cfg->mqttsn_opts;
    struct sn_listener *l = &s->l[s->n];
    l->udp = sn_lws_open(cx, lc->bind, lc->port, o->advertise_interval > 0, err, errlen);
    if (!l->udp)
        return -1;
    char name[96];
    snprintf(name, sizeof name, strchr(lc->bind, ':') ? "mqttsn:[%s]:%d" : "mqttsn:%s:%d", lc->bind,
             sn_lws_port(l->udp));
    struct sn_gw_config c = {
        .broker = b,
        .listener = name,
        .gateway_id = (uint8_t)o->gateway_id,
        .mountpoint = cfg->mqttsn.mountpoint,
        .predefined = pre,
        .n_predefined = o->n_predefined,
        .qos_neg1 = o->qos_neg1,
        .username = o->username,
        .password = o->password,
        .allowed_clients = o->allowed_clients,
        .max_registrations = o->max_registrations,
        .retry_interval_s = o->retry_interval,
        .max_retries = o->max_retries,
        .max_clients = lc->max_connections,
        .total_connections = total_connections,
        .total_max = cfg->broker.max_connections,
    };
    if (o->advertise_interval > 0 && !strchr(lc->bind, ':')) { /* an IPv4 address */
        c.broadcast = (const struct sockaddr *)&s->advertise_to;
        c.broadcast_len = sizeof s->advertise_to;
    }
    l->gw = sn_gw_new(&c, sn_lws_sender(), l->udp);
    if (!l->gw) {
        snprintf(err, errlen, "out of memory");
        sn_lws_free(l->udp);
        return -1;
    }
    sn_lws_attach(l->udp, l->gw);
    l->v4 = !strchr(lc->bind, ':');
    s->n++;
    pg_notice("listening: %s (UDP)", name);
    return 0;
}

struct sn_group *sn_group_start(struct polygate *g, struct lws_context *cx, pg_broker *b,
                                const struct pg_config *cfg, int *total_connections, char *err,
                                size_t errlen) {
    int n = cfg->mqttsn.enabled ? cfg->mqttsn.n_listeners : 0;
    struct sn_group *s = calloc(1, sizeof *s);
    struct sn_predefined *pre = calloc((size_t)cfg->mqttsn_opts.n_predefined + 1, sizeof *pre);
    if (s)
        s->l = calloc((size_t)n + 1, sizeof *s->l);
    if (!s || !pre || !s->l) {
        snprintf(err, errlen, "out of memory");
        free(pre);
        sn_group_free(s);
        return NULL;
    }
    for (int i = 0; i < cfg->mqttsn_opts.n_predefined; i++)
        pre[i] = (struct sn_predefined){(uint16_t)cfg->mqttsn_opts.predefined[i].id,
                                        cfg->mqttsn_opts.predefined[i].topic};
    if (cfg->mqttsn_opts.advertise_interval > 0) {
        s->advertise_s = (uint16_t)cfg->mqttsn_opts.advertise_interval;
        parse_address(cfg->mqttsn_opts.advertise_address, &s->advertise_to);
    }
    for (int i = 0; i < n; i++)
        if (open_one(s, cx, b, cfg, &cfg->mqttsn.listeners[i], pre, total_connections, err,
                     errlen) < 0) {
            free(pre);
            sn_group_free(s);
            return NULL;
        }
    free(pre); /* the gateways copied it */
    if (s->n)
        polygate_every(g, TICK_MS, tick, s);
    if (s->n && s->advertise_s)
        polygate_every(g, s->advertise_s * 1000, advertise, s);
    return s;
}

int sn_group_port(const struct sn_group *s, int index) {
    return s && index >= 0 && index < s->n ? sn_lws_port(s->l[index].udp) : -1;
}

void sn_group_free(struct sn_group *s) {
    if (!s)
        return;
    for (int i = 0; i < s->n; i++) {
        sn_gw_free(s->l[i].gw);
        sn_lws_free(s->l[i].udp);
    }
    free(s->l);
    free(s);
}
