/* polygate.c - the gateway: one lws context, one vhost per listener, the broker
 * core, and the timers that drive it.
 *
 * lws runs on a libev loop we own (epoll): lws 4.1's built-in poll() backend costs
 * O(connections) per wakeup, which cut throughput 20x with 10,000 idle clients.
 * Listeners follow the notes in shared/notes/lws-libcoap.md: explicit vhosts; a
 * TLS vhost sets DO_SSL_GLOBAL_INIT in its own options (else lws silently serves
 * plaintext); an IPv4 bind address needs DISABLE_IPV6 (else lws binds [::]).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <ev.h>
#include <libwebsockets.h>

#include "adapters/mqtt/mqtt_lws.h"
#include "adapters/sockaddr.h"
#include "broker/auth.h"
#include "gateway/auth_http.h"
#include "gateway/log.h"
#include "gateway/polygate.h"
#include "gateway/sn_group.h"

#define TICK_US (250 * LWS_US_PER_MS)

struct timer {
    lws_sorted_usec_list_t sul; /* first: the callback gets this pointer */
    struct polygate *g;
    lws_usec_t interval;
    void (*fn)(void *);
    void *ud;
    struct timer *next;
};

struct listener {
    char group[16];
    struct lws_vhost *vh;
    struct mqtt_listener mqtt;
};

struct polygate {
    pg_broker *broker;
    pg_auth *auth;
    pg_auth_http *auth_http; /* NULL unless auth.http has a url */
    struct sn_group *mqttsn;
    struct ev_loop *loop; /* epoll-backed: lws's own poll() is O(connections) per wakeup */
    ev_check clock;       /* sets the broker's clock after each poll, before any I/O */
    struct lws_context *cx;
    struct listener *listeners;
    int n_listeners;
    struct timer tick;
    struct timer *timers;
    volatile sig_atomic_t stop, reload;
    int max_topic_alias;
    int max_connections;
    int n_connections; /* across every listener */
    char *mqtt_mountpoint;
    char *ws_mountpoint;
    struct mqtt_ws_settings ws; /* strings owned */
    char *www_dir;              /* absolute, NULL = no static files */
    struct lws_http_mount www;
};

static void lws_log_emit(int level, const char *line) {
    int ours = level & LLL_ERR ? PG_LOG_ERROR : level & LLL_WARN ? PG_LOG_WARNING : PG_LOG_NOTICE;
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    pg_log(ours, "lws: %.*s", (int)n, line);
}

static void timer_fire(lws_sorted_usec_list_t *sul) {
    struct timer *t = (struct timer *)sul;
    t->fn(t->ud);
    lws_sul_schedule(t->g->cx, 0, &t->sul, timer_fire, t->interval);
}

static void tick(void *ud) {
    struct polygate *g = ud;
    pg_broker_tick(g->broker, lws_now_usecs() / 1000);
}

/* Every adapter's keepalive and expiry times are exact this way, without each
 * transport reading the clock itself. */
static void set_broker_clock(struct ev_loop *loop, ev_check *w, int revents) {
    struct polygate *g = w->data;
    pg_broker_clock(g->broker, lws_now_usecs() / 1000);
}

static void start_timer(struct polygate *g, struct timer *t, lws_usec_t us, void (*fn)(void *),
                        void *ud) {
    t->g = g;
    t->interval = us;
    t->fn = fn;
    t->ud = ud;
    lws_sul_schedule(g->cx, 0, &t->sul, timer_fire, us);
}

int polygate_every(struct polygate *g, int interval_ms, void (*fn)(void *ud), void *ud) {
    struct timer *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    t->next = g->timers;
    g->timers = t;
    start_timer(g, t, (lws_usec_t)interval_ms * LWS_US_PER_MS, fn, ud);
    return 0;
}

/* Why a vhost could not listen: lws only logs it, so try the bind ourselves. */
static void explain_bind_failure(const char *bind_addr, int port, char *why, size_t n) {
    struct sockaddr_storage ss;
    socklen_t len = pg_sockaddr(bind_addr, port, &ss);
    int v6 = ss.ss_family == AF_INET6;
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&ss, len) < 0)
        snprintf(why, n, "%s", strerror(errno));
    else
        snprintf(why, n, "lws could not create the listener");
    if (fd >= 0)
        close(fd);
}

/* What differs between an MQTT listener over raw TCP and one over WebSocket. */
struct listener_kind {
    const char *group;    /* config group, polygate_port()'s name */
    const char *protocol; /* identity and log name */
    const char *scheme;   /* listener names: "mqtt", "mqtts", "ws", "wss" */
    const char *tls_scheme;
    const struct lws_protocols *protocols;
};

static const struct listener_kind raw_kind = {"mqtt", "mqtt", "mqtt", "mqtts", mqtt_raw_protocols};
static const struct listener_kind ws_kind = {"websocket", "mqtt-ws", "ws", "wss",
                                             mqtt_ws_protocols};

static void set_listener_settings(struct polygate *g, struct listener *l,
                                  const struct pg_listener_conf *lc, const char *mountpoint) {
    l->mqtt.broker = g->broker;
    l->mqtt.settings.max_topic_alias = (uint16_t)g->max_topic_alias;
    l->mqtt.settings.connect_timeout_s = 10;
    l->mqtt.settings.mountpoint = mountpoint;
    l->mqtt.settings.use_identity_as_username = lc->tls && lc->tls_conf.use_identity_as_username;
    l->mqtt.tls = lc->tls;
    l->mqtt.max_connections = lc->max_connections;
    l->mqtt.total_connections = &g->n_connections;
    l->mqtt.total_max = g->max_connections;
}

static void set_vhost_tls(struct lws_context_creation_info *vi, const struct pg_listener_conf *lc) {
    vi->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    vi->ssl_cert_filepath = lc->tls_conf.cert_file;
    vi->ssl_private_key_filepath = lc->tls_conf.key_file;
    vi->ssl_ca_filepath = lc->tls_conf.ca_file;
    if (lc->tls_conf.require_certificate)
        vi->options |= LWS_SERVER_OPTION_REQUIRE_VALID_OPENSSL_CLIENT_CERT;
}

static int open_listener(struct polygate *g, const struct listener_kind *k,
                         const struct pg_listener_conf *lc, int index, const char *mountpoint,
                         const struct lws_http_mount *mount, char *err, size_t errlen) {
    struct listener *l = &g->listeners[g->n_listeners];
    memset(l, 0, sizeof *l);
    snprintf(l->group, sizeof l->group, "%s", k->group);
    set_listener_settings(g, l, lc, mountpoint);
    l->mqtt.protocol = k->protocol;
    l->mqtt.ws = g->ws;

    struct lws_context_creation_info vi;
    memset(&vi, 0, sizeof vi);
    char vname[32];
    snprintf(vname, sizeof vname, "%s-%d", k->group, index);
    vi.vhost_name = vname;
    vi.port = lc->port;
    int any4 = !strcmp(lc->bind, "0.0.0.0"), v6 = strchr(lc->bind, ':') != NULL;
    vi.iface = any4 || !strcmp(lc->bind, "::") ? NULL : lc->bind;
    vi.protocols = k->protocols;
    vi.mounts = mount;
    if (!v6)
        vi.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    if (k == &raw_kind) {
        vi.options |= LWS_SERVER_OPTION_ADOPT_APPLY_LISTEN_ACCEPT_CONFIG;
        vi.listen_accept_role = "raw-skt";
        vi.listen_accept_protocol = "mqtt";
    }
    vi.user = &l->mqtt;
    if (lc->tls)
        set_vhost_tls(&vi, lc);
    l->vh = lws_create_vhost(g->cx, &vi);
    if (!l->vh) {
        char why[128];
        explain_bind_failure(lc->bind, lc->port, why, sizeof why);
        snprintf(err, errlen, "cannot listen for %s%s on %s:%d: %s", k->group,
                 lc->tls ? " (TLS)" : "", lc->bind, lc->port, why);
        return -1;
    }
    int port = lws_get_vhost_listen_port(l->vh);
    snprintf(l->mqtt.name, sizeof l->mqtt.name, v6 ? "%s:[%s]:%d" : "%s:%s:%d",
             lc->tls ? k->tls_scheme : k->scheme, lc->bind, port);
    pg_notice("listening: %s", l->mqtt.name);
    g->n_listeners++;
    return 0;
}

/* The static files of the WebSocket port: a mount of www_dir at "/", or none when
 * it is "" or missing (which is only worth a warning: the MQTT side works). */
static const struct lws_http_mount *www_mount(struct polygate *g, const char *dir) {
    if (!dir || !*dir)
        return NULL;
    char *abs = realpath(dir, NULL);
    if (!abs) {
        pg_warn("websocket.www_dir '%s': %s; no files are served", dir, strerror(errno));
        return NULL;
    }
    g->www_dir = abs;
    g->www.mountpoint = "/";
    g->www.mountpoint_len = 1;
    g->www.origin = abs;
    g->www.def = "index.html";
    g->www.origin_protocol = LWSMPRO_FILE;
    return &g->www;
}

static void note_unavailable(const char *group, const struct pg_group_conf *gc) {
    if (gc->enabled && gc->n_listeners)
        pg_warn("%s: enabled in the config but not available in this build yet", group);
}

static struct lws_context *create_context(struct ev_loop *loop) {
    struct lws_context_creation_info info;
    void *loops[1] = {loop};
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
                   LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = loops;
    info.pt_serv_buf_size = 64 * 1024; /* also the most one read returns */
    info.gid = (gid_t)-1;
    info.uid = (uid_t)-1;
    return lws_create_context(&info);
}

static pg_auth *start_auth(pg_broker *b, const struct pg_config *cfg, char *err, size_t n) {
    struct pg_auth_config ac = {
        .allow_anonymous = cfg->auth.allow_anonymous,
        .password_file = cfg->auth.password_file,
        .acl_file = cfg->auth.acl_file,
        .groups = {{"mqtt", cfg->mqtt.allow_anonymous},
                   {"mqtt-ws", cfg->websocket.allow_anonymous},
                   {"mqtt-sn", cfg->mqttsn.allow_anonymous},
                   {"coap", cfg->coap.allow_anonymous},
                   {"stomp", cfg->stomp.allow_anonymous}},
        .n_groups = 5,
    };
    return pg_auth_new(b, &ac, err, n);
}

/* Registered before the file hooks: see auth_http.h. */
static int start_auth_http(struct polygate *g, const struct pg_config *cfg, char *err, size_t n) {
    const typeof(cfg->auth.http) *hc = &cfg->auth.http;
    if (!*hc->url && !*hc->acl_url)
        return 0;
    struct pg_auth_http_config c = {
        .url = hc->url,
        .acl_url = hc->acl_url,
        .timeout_ms = hc->timeout_ms,
        .cache_seconds = hc->cache_seconds,
        .cache_size = hc->cache_size,
        .allow_on_error = !strcmp(hc->on_error, "allow"),
        .json = !strcmp(hc->format, "json"),
        .ca_file = hc->ca_file,
    };
    g->auth_http = pg_auth_http_new(g->broker, g->cx, &c, err, n);
    return g->auth_http ? 0 : -1;
}

static void broker_config_from(struct pg_broker_config *bc, const struct pg_config *cfg) {
    pg_broker_config_defaults(bc);
    bc->max_packet_size = (uint32_t)cfg->broker.max_packet_size;
    bc->max_inflight = (uint16_t)cfg->broker.max_inflight;
    bc->max_queued_messages = (uint32_t)cfg->broker.max_queued_messages;
    /* 0 = no cap, the same as 65535. */
    bc->max_keepalive = cfg->broker.max_keepalive ? (uint16_t)cfg->broker.max_keepalive : 65535;
    bc->retain_available = cfg->broker.retain_available;
    bc->sys_interval = (uint32_t)cfg->broker.sys_interval;
    bc->session_expiry_max = (uint32_t)cfg->broker.session_expiry_max;
    bc->max_subscriptions = (uint32_t)cfg->broker.max_subscriptions;
    bc->allow_anonymous = cfg->auth.allow_anonymous;
    bc->auth_failure_threshold = (uint32_t)cfg->auth.failure_threshold;
    bc->auth_failure_delay_ms = (uint32_t)cfg->auth.failure_delay_ms;
    bc->auth_failure_delay_max_ms = (uint32_t)cfg->auth.failure_delay_max_ms;
    bc->version = "polygate " POLYGATE_VERSION;
}

struct polygate *polygate_new(const struct pg_config *cfg, char *err, size_t errlen) {
    /* lws's notices include a line per I/O event from its libev glue: too much. */
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
    struct polygate *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct pg_broker_config bc;
    broker_config_from(&bc, cfg);
    g->max_topic_alias = cfg->broker.max_topic_alias;
    g->max_connections = cfg->broker.max_connections;
    g->mqtt_mountpoint = strdup(cfg->mqtt.mountpoint ? cfg->mqtt.mountpoint : "");
    g->ws_mountpoint = strdup(cfg->websocket.mountpoint ? cfg->websocket.mountpoint : "");
    g->ws.max_frame_size = cfg->websocket_opts.max_frame_size;
    g->ws.allowed_origins = strdup(cfg->websocket_opts.allowed_origins);
    g->ws.trust_x_forwarded_for = cfg->websocket_opts.trust_x_forwarded_for;
    g->broker = pg_broker_new(&bc);
    g->loop = ev_loop_new(EVBACKEND_EPOLL);
    g->cx = g->loop ? create_context(g->loop) : NULL;
    if (g->loop) {
        ev_check_init(&g->clock, set_broker_clock);
        g->clock.data = g;
        ev_set_priority(&g->clock, EV_MAXPRI); /* before the I/O callbacks */
        ev_check_start(g->loop, &g->clock);
    }
    int n = cfg->mqtt.enabled ? cfg->mqtt.n_listeners : 0;
    int n_ws = cfg->websocket.enabled ? cfg->websocket.n_listeners : 0;
    g->listeners = calloc((size_t)(n + n_ws) + 1, sizeof *g->listeners);
    if (!g->broker || !g->cx || !g->listeners) {
        snprintf(err, errlen,
                 "cannot initialise the event loop (lws needs its libev plugin: "
                 "Debian package libwebsockets-evlib-ev)");
        polygate_free(g);
        return NULL;
    }
    pg_broker_tick(g->broker, lws_now_usecs() / 1000);
    if (start_auth_http(g, cfg, err, errlen) < 0 ||
        !(g->auth = start_auth(g->broker, cfg, err, errlen))) {
        polygate_free(g);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (open_listener(g, &raw_kind, &cfg->mqtt.listeners[i], i, g->mqtt_mountpoint, NULL, err,
                          errlen) < 0) {
            polygate_free(g);
            return NULL;
        }
    const struct lws_http_mount *mount = n_ws ? www_mount(g, cfg->websocket_opts.www_dir) : NULL;
    for (int i = 0; i < n_ws; i++)
        if (open_listener(g, &ws_kind, &cfg->websocket.listeners[i], i, g->ws_mountpoint, mount,
                          err, errlen) < 0) {
            polygate_free(g);
            return NULL;
        }
    if (!(g->mqttsn = sn_group_start(g, g->cx, g->broker, cfg, &g->n_connections, err, errlen))) {
        polygate_free(g);
        return NULL;
    }
    note_unavailable("coap", &cfg->coap);
    note_unavailable("stomp", &cfg->stomp);
    note_unavailable("http", &cfg->http);
    start_timer(g, &g->tick, TICK_US, tick, g);
    return g;
}

pg_broker *polygate_broker(struct polygate *g) {
    return g->broker;
}

int polygate_port(struct polygate *g, const char *group, int index) {
    if (!strcmp(group, "mqttsn"))
        return sn_group_port(g->mqttsn, index);
    for (int i = 0; i < g->n_listeners; i++)
        if (!strcmp(g->listeners[i].group, group) && index-- == 0)
            return lws_get_vhost_listen_port(g->listeners[i].vh);
    return -1;
}

static void reload(struct polygate *g) {
    g->reload = 0;
    if (pg_log_reopen() < 0)
        pg_warn("cannot reopen the log file: %s", strerror(errno));
    char err[512];
    if (pg_auth_reload(g->auth, err, sizeof err) < 0)
        pg_error("SIGHUP: %s; the previous password and ACL rules stay in force", err);
    pg_auth_http_clear_cache(g->auth_http);
    pg_notice("SIGHUP: log reopened, password and ACL files re-read%s",
              g->auth_http ? ", HTTP auth answers forgotten" : "");
}

int polygate_run(struct polygate *g) {
    while (!g->stop) {
        ev_run(g->loop, EVRUN_ONCE);
        if (g->reload)
            reload(g);
    }
    return 0;
}

void polygate_stop(struct polygate *g) {
    g->stop = 1;
    if (g->cx)
        lws_cancel_service(g->cx);
}

void polygate_request_reload(struct polygate *g) {
    g->reload = 1;
    if (g->cx)
        lws_cancel_service(g->cx);
}

void polygate_free(struct polygate *g) {
    if (!g)
        return;
    if (g->broker)
        pg_broker_shutdown(g->broker); /* wills out; adapters are kicked */
    pg_auth_http_stop(g->auth_http);   /* closing its requests answers nobody */
    if (g->cx) {
        /* Let kicked connections write their DISCONNECT before the context goes. */
        for (int i = 0; i < 4; i++)
            ev_run(g->loop, EVRUN_NOWAIT);
        lws_context_destroy(g->cx);
    }
    if (g->loop) {
        ev_check_stop(g->loop, &g->clock);
        ev_loop_destroy(g->loop);
    }
    sn_group_free(g->mqttsn); /* its clients' sessions are in the broker */
    pg_broker_free(g->broker);
    pg_auth_free(g->auth); /* after the broker: its hooks point here */
    pg_auth_http_free(g->auth_http);
    while (g->timers) {
        struct timer *t = g->timers;
        g->timers = t->next;
        free(t);
    }
    free(g->listeners);
    free(g->mqtt_mountpoint);
    free(g->ws_mountpoint);
    free((char *)g->ws.allowed_origins);
    free(g->www_dir);
    free(g);
}
