/* config.c - reads polygate's libconfig file into struct pg_config (gateway/config.h).
 *
 * main.c (and embedders) call pg_config_defaults() and then pg_config_load(); every other
 * module only reads the filled struct. Each key is described once, in a schema table
 * below: name, type, where it lives in the struct, default, limits and any extra check.
 * Three generic walkers use the tables: one fills the defaults, one applies a file, one
 * frees. Adding a key is one line in a table (plus its field in config.h and its
 * documented default in config/polygate.conf).
 *
 * The file walker is strict on purpose. libconfig accepts any key, and on a type mismatch
 * config_lookup_*() just fails and the default silently stays. So nothing here looks a
 * key up by name: every setting the file contains is matched against the table, and
 * anything unknown, mistyped or out of range becomes "FILE:LINE: what". Checks that span
 * keys (tls needs a cert and a key, predefined topic ids are unique, no two listeners
 * share an address) run when a group is complete or after the whole file.
 *
 * Strings are strdup'd: libconfig frees its own at config_destroy(). Running out of
 * memory while reading a config aborts; there is nothing sensible to run with.
 */
#include "gateway/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- schema types ---- */

/* K_TRIBOOL: an int, -1 while the file leaves it unset (inherit), else 0/1. */
enum kind { K_INT, K_BOOL, K_TRIBOOL, K_STR, K_GROUP, K_LIST };

struct ctx;
struct table;

/* A protocol group's default listener; also says which port space it binds in. */
struct proto {
    const char *bind;
    int port;
    bool udp;
};

/* A string check: reports through fail() and returns -1, or returns 0. */
typedef int (*check_fn)(struct ctx *x, const config_setting_t *s, const char *v);

struct key {
    const char *name;
    enum kind kind;
    bool root;          /* off (and count_off) are from struct pg_config, not the table's base */
    size_t off;         /* where the value lives */
    long long def;      /* K_INT, K_BOOL default; K_LIST: number of default elements */
    long long min, max; /* K_INT */
    const char *sdef;   /* K_STR default (strdup'd), NULL = leave NULL */
    check_fn check;     /* K_STR: extra validation, optional */
    const struct table *sub;   /* K_GROUP: its keys; K_LIST: an element's keys */
    size_t count_off;          /* K_LIST: the int holding the element count */
    size_t elem_size;          /* K_LIST */
    const struct proto *proto; /* protocol groups: their default listener */
};

struct table {
    const struct key *keys;
    size_t n;
    /* Called on a fresh list element after its table defaults are set. */
    void (*init)(struct ctx *x, void *elem);
    /* Cross-key checks once a group from the file has been read. */
    int (*finish)(struct ctx *x, void *base, const config_setting_t *g);
};

struct ctx {
    struct pg_config *root;
    const char *file;          /* the path given to pg_config_load */
    const struct proto *proto; /* the protocol group being read */
    char *err;
    size_t errlen;
    char path[256]; /* dotted key path for messages: "mqtt.listeners[0].port" */
};

/* ---- small helpers ---- */

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fputs("polygate: out of memory reading the config\n", stderr);
        abort();
    }
    return p;
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(xcalloc(1, n), s, n);
}

static void replace_str(char **dst, const char *v) {
    free(*dst);
    *dst = v ? xstrdup(v) : NULL;
}

/* Writes "FILE:LINE: message" (or "FILE: message" without a line) and returns -1. */
__attribute__((format(printf, 3, 4))) static int fail(struct ctx *x, const config_setting_t *s,
                                                      const char *fmt, ...) {
    if (!x->err || !x->errlen)
        return -1;
    const char *file = s && config_setting_source_file(s) ? config_setting_source_file(s) : x->file;
    int line = s ? config_setting_source_line(s) : 0;
    int n = line > 0 ? snprintf(x->err, x->errlen, "%s:%d: ", file, line)
                     : snprintf(x->err, x->errlen, "%s: ", file);
    if (n >= 0 && (size_t)n < x->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->err + n, x->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Appends ".name" (or "name" at the top) or "[i]" to the key path; returns the old length
 * for path_pop. A path too long for the buffer is cut, which only shortens messages. */
static size_t path_push(struct ctx *x, const char *name, int index) {
    size_t len = strlen(x->path);
    size_t room = sizeof(x->path) - len;
    if (name)
        snprintf(x->path + len, room, "%s%s", len ? "." : "", name);
    else
        snprintf(x->path + len, room, "[%d]", index);
    return len;
}

static void path_pop(struct ctx *x, size_t len) {
    x->path[len] = '\0';
}

static void *field(struct ctx *x, const struct key *k, void *base, size_t off) {
    return (char *)(k->root ? (void *)x->root : base) + off;
}

/* ---- string checks ---- */

static int check_bind(struct ctx *x, const config_setting_t *s, const char *v) {
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, v, buf) == 1 || inet_pton(AF_INET6, v, buf) == 1)
        return 0;
    return fail(x, s, "'%s' must be an IPv4 or IPv6 address, not '%s'", x->path, v);
}

static int check_level(struct ctx *x, const config_setting_t *s, const char *v) {
    static const char *const levels[] = {"error", "warning", "notice", "info", "debug"};
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
        if (!strcmp(v, levels[i]))
            return 0;
    return fail(x, s, "'%s' must be one of error, warning, notice, info, debug", x->path);
}

/* A file named in the config must be readable now: finding out at the first TLS
 * handshake or the first login is much later than -t. "" means "none". */
static int check_file(struct ctx *x, const config_setting_t *s, const char *v) {
    if (!*v)
        return 0;
    int fd = open(v, O_RDONLY | O_CLOEXEC);
    struct stat st;
    int e = fd < 0 ? errno : fstat(fd, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (fd >= 0)
        close(fd);
    if (e)
        return fail(x, s, "'%s': cannot read '%s': %s", x->path, v, strerror(e));
    return 0;
}

static int check_url(struct ctx *x, const config_setting_t *s, const char *v) {
    if (!*v)
        return 0;
    size_t scheme = !strncmp(v, "http://", 7) ? 7 : !strncmp(v, "https://", 8) ? 8 : 0;
    if (!scheme || !v[scheme] || v[scheme] == '/' || strpbrk(v, " \t\r\n"))
        return fail(x, s, "'%s' must be an http:// or https:// URL with a host, not '%s'", x->path,
                    v);
    return 0;
}

static int check_one_of(struct ctx *x, const config_setting_t *s, const char *v, const char *a,
                        const char *b) {
    if (!strcmp(v, a) || !strcmp(v, b))
        return 0;
    return fail(x, s, "'%s' must be \"%s\" or \"%s\", not '%s'", x->path, a, b, v);
}

static int check_on_error(struct ctx *x, const config_setting_t *s, const char *v) {
    return check_one_of(x, s, v, "deny", "allow");
}

static int check_format(struct ctx *x, const config_setting_t *s, const char *v) {
    return check_one_of(x, s, v, "form", "json");
}

/* "IPv4:port", where ADVERTISE goes. */
static int check_udp_address(struct ctx *x, const config_setting_t *s, const char *v) {
    char host[64];
    const char *colon = strrchr(v, ':');
    unsigned char buf[4];
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || (size_t)(colon - v) >= sizeof host || !colon[1] || *end || port < 1 ||
        port > 65535)
        return fail(x, s, "'%s' must be \"IPv4-address:port\", not '%s'", x->path, v);
    memcpy(host, v, (size_t)(colon - v));
    host[colon - v] = 0;
    if (inet_pton(AF_INET, host, buf) != 1)
        return fail(x, s, "'%s' must be \"IPv4-address:port\", not '%s'", x->path, v);
    return 0;
}

static int check_mountpoint(struct ctx *x, const config_setting_t *s, const char *v) {
    if (strpbrk(v, "+#"))
        return fail(x, s, "'%s' must not contain '+' or '#'", x->path);
    return 0;
}

static int check_nonempty(struct ctx *x, const config_setting_t *s, const char *v) {
    return *v ? 0 : fail(x, s, "'%s' must not be empty", x->path);
}

/* ---- cross-key checks and element setup ---- */

static int tls_finish(struct ctx *x, void *base, const config_setting_t *g) {
    struct pg_tls_conf *t = base;
    if (!t->cert_file || !*t->cert_file)
        return fail(x, g, "'%s.cert_file' is required", x->path);
    if (!t->key_file || !*t->key_file)
        return fail(x, g, "'%s.key_file' is required", x->path);
    if (t->ca_file && !*t->ca_file) /* "" = none, stored as NULL like an absent key */
        replace_str(&t->ca_file, NULL);
    if (t->require_certificate && !t->ca_file)
        return fail(x, g, "'%s.ca_file' is required when require_certificate is true", x->path);
    if (t->use_identity_as_username && !t->require_certificate)
        return fail(x, g, "'%s.use_identity_as_username' needs require_certificate = true",
                    x->path);
    return 0;
}

static void listener_init(struct ctx *x, void *elem) {
    struct pg_listener_conf *l = elem;
    replace_str(&l->bind, x->proto->bind);
    l->port = x->proto->port;
}

/* tls_finish guarantees a cert once a tls group was read, and a fresh element has none. */
static int listener_finish(struct ctx *x, void *base, const config_setting_t *g) {
    struct pg_listener_conf *l = base;
    l->tls = l->tls_conf.cert_file != NULL;
    return 0;
}

static int topic_finish(struct ctx *x, void *base, const config_setting_t *g) {
    struct pg_predefined_topic *t = base;
    if (!t->id)
        return fail(x, g, "'%s.id' is required", x->path);
    if (!t->topic)
        return fail(x, g, "'%s.topic' is required", x->path);
    return 0;
}

/* The HTTP backend decides every named client's login, so a password file next to it
 * would never be read: say so rather than leave a file that looks in force. */
static int auth_finish(struct ctx *x, void *base, const config_setting_t *g) {
    const struct pg_config *c = x->root;
    if (*c->auth.password_file && *c->auth.http.url)
        return fail(x, g,
                    "'auth.password_file' and 'auth.http.url' cannot both be set: "
                    "choose one way to check passwords");
    return 0;
}

/* Predefined topic ids are shared by every client, so one id must mean one topic. */
static int mqttsn_finish(struct ctx *x, void *base, const config_setting_t *g) {
    const config_setting_t *list = config_setting_get_member(g, "predefined_topics");
    if (!list)
        return 0; /* kept from before: already checked */
    const struct pg_predefined_topic *p = x->root->mqttsn_opts.predefined;
    for (int i = 1; i < x->root->mqttsn_opts.n_predefined; i++)
        for (int j = 0; j < i; j++)
            if (p[i].id == p[j].id) {
                const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
                const config_setting_t *id = config_setting_get_member(e, "id");
                return fail(x, id,
                            "'%s.predefined_topics[%d].id' %d is already used by "
                            "'%s.predefined_topics[%d]'",
                            x->path, i, p[i].id, x->path, j);
            }
    return 0;
}

/* ---- the schema ---- */

#define CFG(f) offsetof(struct pg_config, f)
#define GRP(f) offsetof(struct pg_group_conf, f)
#define LSN(f) offsetof(struct pg_listener_conf, f)
#define TLS(f) offsetof(struct pg_tls_conf, f)
#define TOP(f) offsetof(struct pg_predefined_topic, f)
#define TABLE(keys, ...)                                                                           \
    { keys, sizeof(keys) / sizeof(keys[0]), __VA_ARGS__ }

/* Extra designators (.root = true, .proto = ...) go in the trailing arguments. */
#define INT(n, o, d, lo, hi, ...)                                                                  \
    { .name = n, .kind = K_INT, .off = o, .def = d, .min = lo, .max = hi, __VA_ARGS__ }
#define BOOL(n, o, d, ...)                                                                         \
    { .name = n, .kind = K_BOOL, .off = o, .def = d, __VA_ARGS__ }
#define TRIBOOL(n, o, ...)                                                                         \
    { .name = n, .kind = K_TRIBOOL, .off = o, .def = -1, __VA_ARGS__ }
#define STR(n, o, d, chk, ...)                                                                     \
    { .name = n, .kind = K_STR, .off = o, .sdef = d, .check = chk, __VA_ARGS__ }
#define GROUP(n, o, tbl, ...)                                                                      \
    { .name = n, .kind = K_GROUP, .off = o, .sub = &tbl, __VA_ARGS__ }
#define LIST(n, o, cnt, type, ndef, tbl, ...)                                                      \
    {                                                                                              \
        .name = n, .kind = K_LIST, .off = o, .count_off = cnt, .elem_size = sizeof(type),          \
        .def = ndef, .sub = &tbl, __VA_ARGS__                                                      \
    }

static const struct key tls_keys[] = {
    STR("cert_file", TLS(cert_file), NULL, check_file),
    STR("key_file", TLS(key_file), NULL, check_file),
    STR("ca_file", TLS(ca_file), NULL, check_file),
    BOOL("require_certificate", TLS(require_certificate), false),
    BOOL("use_identity_as_username", TLS(use_identity_as_username), false),
};
static const struct table tls_table = TABLE(tls_keys, NULL, tls_finish);

/* TCP listeners take tls = { }, UDP ones dtls = { }: same keys, same field. */
#define LISTENER_KEYS(tls_name)                                                                    \
    STR("bind", LSN(bind), NULL, check_bind), INT("port", LSN(port), 0, 0, 65535),                 \
        INT("max_connections", LSN(max_connections), 0, 0, INT_MAX),                               \
        GROUP(tls_name, LSN(tls_conf), tls_table)
static const struct key tcp_listener_keys[] = {LISTENER_KEYS("tls")};
static const struct key udp_listener_keys[] = {LISTENER_KEYS("dtls")};
static const struct table tcp_listener_table =
    TABLE(tcp_listener_keys, listener_init, listener_finish);
static const struct table udp_listener_table =
    TABLE(udp_listener_keys, listener_init, listener_finish);

static const struct key topic_keys[] = {
    INT("id", TOP(id), 0, 1, 65535),
    STR("topic", TOP(topic), NULL, check_nonempty),
};
static const struct table topic_table = TABLE(topic_keys, NULL, topic_finish);

/* One default listener (the group's proto) until the file gives a list. */
#define GROUP_KEYS(listener_table)                                                                 \
    BOOL("enabled", GRP(enabled), true),                                                           \
        LIST("listeners", GRP(listeners), GRP(n_listeners), struct pg_listener_conf, 1,            \
             listener_table),                                                                      \
        STR("mountpoint", GRP(mountpoint), "", check_mountpoint),                                  \
        TRIBOOL("allow_anonymous", GRP(allow_anonymous))
static const struct key tcp_group_keys[] = {GROUP_KEYS(tcp_listener_table)};
static const struct key udp_group_keys[] = {GROUP_KEYS(udp_listener_table)};
static const struct key mqttsn_keys[] = {
    GROUP_KEYS(udp_listener_table),
    /* MQTT-SN's own options live in c->mqttsn_opts, hence .root */
    INT("gateway_id", CFG(mqttsn_opts.gateway_id), 1, 0, 255, .root = true),
    BOOL("qos_neg1", CFG(mqttsn_opts.qos_neg1), true, .root = true),
    STR("username", CFG(mqttsn_opts.username), "", NULL, .root = true),
    STR("password", CFG(mqttsn_opts.password), "", NULL, .root = true),
    STR("allowed_clients", CFG(mqttsn_opts.allowed_clients), "", NULL, .root = true),
    INT("max_registrations", CFG(mqttsn_opts.max_registrations), 1000, 1, 65534, .root = true),
    INT("retry_interval", CFG(mqttsn_opts.retry_interval), 10, 1, 3600, .root = true),
    INT("max_retries", CFG(mqttsn_opts.max_retries), 3, 0, 100, .root = true),
    INT("advertise_interval", CFG(mqttsn_opts.advertise_interval), 0, 0, 65535, .root = true),
    STR("advertise_address", CFG(mqttsn_opts.advertise_address), "255.255.255.255:1884",
        check_udp_address, .root = true),
    LIST("predefined_topics", CFG(mqttsn_opts.predefined), CFG(mqttsn_opts.n_predefined),
         struct pg_predefined_topic, 0, topic_table, .root = true),
};
static const struct key websocket_keys[] = {
    GROUP_KEYS(tcp_listener_table),
    /* WebSocket's own options live in c->websocket_opts, hence .root */
    STR("www_dir", CFG(websocket_opts.www_dir), "examples/web", NULL, .root = true),
    INT("max_frame_size", CFG(websocket_opts.max_frame_size), 0, 0, INT_MAX, .root = true),
    STR("allowed_origins", CFG(websocket_opts.allowed_origins), "", NULL, .root = true),
    BOOL("trust_x_forwarded_for", CFG(websocket_opts.trust_x_forwarded_for), false, .root = true),
};
static const struct table websocket_table = TABLE(websocket_keys, NULL, NULL);
static const struct table tcp_group_table = TABLE(tcp_group_keys, NULL, NULL);
static const struct table udp_group_table = TABLE(udp_group_keys, NULL, NULL);
static const struct table mqttsn_table = TABLE(mqttsn_keys, NULL, mqttsn_finish);

/* broker, auth and log hold plain fields of struct pg_config: offsets from its start. */
static const struct key broker_keys[] = {
    INT("max_packet_size", CFG(broker.max_packet_size), 1048576, 2, 268435460),
    INT("max_inflight", CFG(broker.max_inflight), 32, 1, 65535),
    INT("max_queued_messages", CFG(broker.max_queued_messages), 1000, 0, INT_MAX),
    INT("max_keepalive", CFG(broker.max_keepalive), 65535, 0, 65535),
    BOOL("retain_available", CFG(broker.retain_available), true),
    INT("sys_interval", CFG(broker.sys_interval), 10, 0, INT_MAX),
    INT("max_topic_alias", CFG(broker.max_topic_alias), 64, 0, 65535),
    INT("session_expiry_max", CFG(broker.session_expiry_max), 0, 0, INT_MAX),
    INT("max_connections", CFG(broker.max_connections), 0, 0, INT_MAX),
    INT("max_subscriptions", CFG(broker.max_subscriptions), 0, 0, INT_MAX),
};
static const struct key auth_http_keys[] = {
    STR("url", CFG(auth.http.url), "", check_url),
    STR("acl_url", CFG(auth.http.acl_url), "", check_url),
    INT("timeout_ms", CFG(auth.http.timeout_ms), 5000, 1, 60000),
    INT("cache_seconds", CFG(auth.http.cache_seconds), 60, 0, INT_MAX),
    INT("cache_size", CFG(auth.http.cache_size), 4096, 1, 1 << 24),
    STR("on_error", CFG(auth.http.on_error), "deny", check_on_error),
    STR("format", CFG(auth.http.format), "form", check_format),
    STR("ca_file", CFG(auth.http.ca_file), "", check_file),
};
static const struct table auth_http_table = TABLE(auth_http_keys, NULL, NULL);
static const struct key auth_keys[] = {
    BOOL("allow_anonymous", CFG(auth.allow_anonymous), true),
    STR("password_file", CFG(auth.password_file), "", check_file),
    STR("acl_file", CFG(auth.acl_file), "", check_file),
    INT("failure_threshold", CFG(auth.failure_threshold), 3, 0, INT_MAX),
    INT("failure_delay_ms", CFG(auth.failure_delay_ms), 1000, 0, 600000),
    INT("failure_delay_max_ms", CFG(auth.failure_delay_max_ms), 30000, 0, 600000),
    GROUP("http", 0, auth_http_table),
};
static const struct key log_keys[] = {
    STR("file", CFG(log.file), "", NULL),
    STR("level", CFG(log.level), "info", check_level),
};
static const struct table broker_table = TABLE(broker_keys, NULL, NULL);
static const struct table auth_table = TABLE(auth_keys, NULL, auth_finish);
static const struct table log_table = TABLE(log_keys, NULL, NULL);

static const struct proto p_mqtt = {"0.0.0.0", 1883, false};
static const struct proto p_websocket = {"0.0.0.0", 8083, false};
static const struct proto p_mqttsn = {"0.0.0.0", 1884, true};
static const struct proto p_coap = {"0.0.0.0", 5683, true};
static const struct proto p_stomp = {"0.0.0.0", 61613, false};
static const struct proto p_http = {"127.0.0.1", 18083, false};

static const struct key root_keys[] = {
    GROUP("broker", 0, broker_table),
    GROUP("auth", 0, auth_table),
    GROUP("log", 0, log_table),
    GROUP("mqtt", CFG(mqtt), tcp_group_table, .proto = &p_mqtt),
    GROUP("websocket", CFG(websocket), websocket_table, .proto = &p_websocket),
    GROUP("mqttsn", CFG(mqttsn), mqttsn_table, .proto = &p_mqttsn),
    GROUP("coap", CFG(coap), udp_group_table, .proto = &p_coap),
    GROUP("stomp", CFG(stomp), tcp_group_table, .proto = &p_stomp),
    GROUP("http", CFG(http), tcp_group_table, .proto = &p_http),
};
static const struct table root_table = TABLE(root_keys, NULL, NULL);

/* ---- defaults and freeing, driven by the schema ---- */

static void set_defaults(struct ctx *x, const struct table *t, void *base);

/* Gives a list its default elements. Every element is fully initialised before anything
 * reads into it, so a failure half way leaves a list pg_config_free() can free. */
static void *new_elems(struct ctx *x, const struct key *k, int n) {
    if (n == 0)
        return NULL;
    char *arr = xcalloc((size_t)n, k->elem_size);
    for (int i = 0; i < n; i++) {
        set_defaults(x, k->sub, arr + (size_t)i * k->elem_size);
        if (k->sub->init)
            k->sub->init(x, arr + (size_t)i * k->elem_size);
    }
    return arr;
}

static void set_defaults(struct ctx *x, const struct table *t, void *base) {
    for (size_t i = 0; i < t->n; i++) {
        const struct key *k = &t->keys[i];
        void *dst = field(x, k, base, k->off);
        if (k->proto)
            x->proto = k->proto;
        switch (k->kind) {
        case K_INT:
            *(int *)dst = (int)k->def;
            break;
        case K_BOOL:
            *(bool *)dst = k->def != 0;
            break;
        case K_TRIBOOL:
            *(int *)dst = (int)k->def;
            break;
        case K_STR:
            *(char **)dst = k->sdef ? xstrdup(k->sdef) : NULL;
            break;
        case K_GROUP:
            set_defaults(x, k->sub, dst);
            break;
        case K_LIST:
            *(void **)dst = new_elems(x, k, (int)k->def);
            *(int *)field(x, k, base, k->count_off) = (int)k->def;
            break;
        }
    }
}

static void release(struct pg_config *root, const struct table *t, void *base);

static void release_list(struct pg_config *root, const struct key *k, void **arr, int *n) {
    for (int i = 0; *arr && i < *n; i++)
        release(root, k->sub, (char *)*arr + (size_t)i * k->elem_size);
    free(*arr);
    *arr = NULL;
    *n = 0;
}

static void release(struct pg_config *root, const struct table *t, void *base) {
    for (size_t i = 0; i < t->n; i++) {
        const struct key *k = &t->keys[i];
        char *b = k->root ? (char *)root : base;
        if (k->kind == K_STR)
            replace_str((char **)(b + k->off), NULL);
        else if (k->kind == K_GROUP)
            release(root, k->sub, b + k->off);
        else if (k->kind == K_LIST)
            release_list(root, k, (void **)(b + k->off), (int *)(b + k->count_off));
    }
}

void pg_config_defaults(struct pg_config *c) {
    struct ctx x = {.root = c};
    memset(c, 0, sizeof(*c));
    set_defaults(&x, &root_table, c);
}

void pg_config_free(struct pg_config *c) {
    if (!c)
        return;
    release(c, &root_table, c);
    free(c->path);
    c->path = NULL;
}

/* ---- reading a file ---- */

/* Optimal string alignment distance, so a swapped pair of letters counts as one edit. */
static size_t edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return SIZE_MAX;
    size_t d[64][64];
    for (size_t i = 0; i <= la; i++)
        for (size_t j = 0; j <= lb; j++) {
            if (!i || !j) {
                d[i][j] = i + j;
                continue;
            }
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

static int unknown_key(struct ctx *x, const struct table *t, const config_setting_t *s) {
    const char *name = config_setting_name(s);
    size_t limit = strlen(name) < 5 ? 1 : 2, best = SIZE_MAX;
    const char *guess = NULL;
    for (size_t i = 0; i < t->n; i++) {
        size_t d = edit_distance(name, t->keys[i].name);
        if (d <= limit && d < best) {
            best = d;
            guess = t->keys[i].name;
        }
    }
    size_t old = path_push(x, name, 0);
    if (guess)
        fail(x, s, "unknown key '%s' (did you mean '%s'?)", x->path, guess);
    else
        fail(x, s, "unknown key '%s'", x->path);
    path_pop(x, old);
    return -1;
}

static int read_group(struct ctx *x, const struct table *t, void *base, const config_setting_t *g);

static int read_int(struct ctx *x, const struct key *k, int *dst, const config_setting_t *s) {
    /* libconfig 1.5 keeps a literal without L in an int, silently truncated (2^32 + 883
     * reads as 883); only the wrapped values that land out of range are caught here. */
    long long v;
    if (config_setting_type(s) == CONFIG_TYPE_INT)
        v = config_setting_get_int(s);
    else if (config_setting_type(s) == CONFIG_TYPE_INT64) /* 5L: fine when in range */
        v = config_setting_get_int64(s);
    else
        return fail(x, s, "'%s' must be an integer", x->path);
    if (v < k->min || v > k->max) {
        if (k->max == INT_MAX)
            return fail(x, s, "'%s' must be at least %lld", x->path, k->min);
        return fail(x, s, "'%s' must be between %lld and %lld", x->path, k->min, k->max);
    }
    *dst = (int)v;
    return 0;
}

static int read_str(struct ctx *x, const struct key *k, char **dst, const config_setting_t *s) {
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail(x, s, "'%s' must be a string", x->path);
    const char *v = config_setting_get_string(s);
    if (k->check && k->check(x, s, v))
        return -1;
    replace_str(dst, v);
    return 0;
}

/* A list from the file replaces the current one (the default listener, for instance). */
static int read_list(struct ctx *x, const struct key *k, void *base, const config_setting_t *s) {
    int type = config_setting_type(s);
    int n = config_setting_length(s);
    /* an empty [] is an array to libconfig; it means the same as () */
    if (type != CONFIG_TYPE_LIST && !(type == CONFIG_TYPE_ARRAY && n == 0))
        return fail(x, s, "'%s' must be a list of groups ( { ... }, ... )", x->path);
    void **arr = field(x, k, base, k->off);
    int *count = field(x, k, base, k->count_off);
    release_list(x->root, k, arr, count);
    *arr = new_elems(x, k, n);
    *count = n;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        size_t old = path_push(x, NULL, i);
        if (!config_setting_is_group(e))
            return fail(x, e, "'%s' must be a group { ... }", x->path);
        if (read_group(x, k->sub, (char *)*arr + (size_t)i * k->elem_size, e))
            return -1;
        path_pop(x, old);
    }
    return 0;
}

static int read_value(struct ctx *x, const struct key *k, void *base, const config_setting_t *s) {
    void *dst = field(x, k, base, k->off);
    switch (k->kind) {
    case K_INT:
        return read_int(x, k, dst, s);
    case K_BOOL:
    case K_TRIBOOL:
        if (config_setting_type(s) != CONFIG_TYPE_BOOL)
            return fail(x, s, "'%s' must be true or false", x->path);
        if (k->kind == K_BOOL)
            *(bool *)dst = config_setting_get_bool(s);
        else
            *(int *)dst = config_setting_get_bool(s);
        return 0;
    case K_STR:
        return read_str(x, k, dst, s);
    case K_GROUP:
        if (!config_setting_is_group(s))
            return fail(x, s, "'%s' must be a group { ... }", x->path);
        if (k->proto)
            x->proto = k->proto;
        return read_group(x, k->sub, dst, s);
    case K_LIST:
        return read_list(x, k, base, s);
    }
    return -1;
}

/* Applies every setting of group g through table t; a setting t does not know is an error. */
static int read_group(struct ctx *x, const struct table *t, void *base, const config_setting_t *g) {
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const struct key *k = NULL;
        for (size_t j = 0; j < t->n && !k; j++)
            if (!strcmp(t->keys[j].name, config_setting_name(s)))
                k = &t->keys[j];
        if (!k)
            return unknown_key(x, t, s);
        size_t old = path_push(x, k->name, 0);
        if (read_value(x, k, base, s))
            return -1;
        path_pop(x, old);
    }
    return t->finish ? t->finish(x, base, g) : 0;
}

/* ---- listeners sharing an address ---- */

struct addr {
    const char *where; /* group name */
    int index;
    const config_setting_t *s; /* NULL for a listener not from this file */
    const struct pg_listener_conf *l;
    bool udp;
    int family;
    unsigned char ip[sizeof(struct in6_addr)];
};

static bool same_addr(const struct addr *a, const struct addr *b) {
    return a->udp == b->udp && a->l->port == b->l->port && a->family == b->family &&
           !memcmp(a->ip, b->ip, sizeof(a->ip));
}

static int count_listeners(struct ctx *x) {
    int n = 0;
    for (size_t i = 0; i < root_table.n; i++)
        if (root_table.keys[i].proto)
            n += ((struct pg_group_conf *)field(x, &root_table.keys[i], x->root,
                                                root_table.keys[i].off))
                     ->n_listeners;
    return n;
}

static int report_duplicate(struct ctx *x, const struct addr *a, const struct addr *b) {
    /* report at a line from this file: a default listener has none */
    const struct addr *here = a->s ? a : b, *other = a->s ? b : a;
    bool v6 = here->family == AF_INET6;
    return fail(x, here->s,
                "'%s.listeners[%d]': %s%s%s:%d (%s) is already used by '%s.listeners[%d]'",
                here->where, here->index, v6 ? "[" : "", here->l->bind, v6 ? "]" : "",
                here->l->port, here->udp ? "UDP" : "TCP", other->where, other->index);
}

/* Two enabled listeners on one (address, port, transport) could never both bind. Port 0
 * picks a free port, so it never clashes; disabled groups do not listen at all. */
static int check_duplicate_listeners(struct ctx *x, const config_t *cf) {
    struct addr *seen = xcalloc((size_t)count_listeners(x), sizeof(*seen));
    int n = 0, rc = 0;
    for (size_t i = 0; i < root_table.n && !rc; i++) {
        const struct key *k = &root_table.keys[i];
        const struct pg_group_conf *g = field(x, k, x->root, k->off);
        if (!k->proto || !g->enabled)
            continue;
        const config_setting_t *group = config_lookup(cf, k->name);
        const config_setting_t *list = group ? config_setting_get_member(group, "listeners") : NULL;
        for (int j = 0; j < g->n_listeners && !rc; j++) {
            struct addr *a = &seen[n];
            *a = (struct addr){
                .where = k->name, .index = j, .l = &g->listeners[j], .udp = k->proto->udp};
            a->s = list ? config_setting_get_elem(list, (unsigned)j) : NULL;
            /* check_bind accepted every bind, so one of the two parses */
            a->family = inet_pton(AF_INET, a->l->bind, a->ip) == 1 ? AF_INET : AF_INET6;
            if (a->family == AF_INET6 && inet_pton(AF_INET6, a->l->bind, a->ip) != 1)
                continue;
            if (a->l->port == 0)
                continue;
            for (int m = 0; m < n && !rc; m++)
                if (same_addr(a, &seen[m]))
                    rc = report_duplicate(x, a, &seen[m]);
            n++;
        }
    }
    free(seen);
    return rc;
}

/* ---- entry point ---- */

int pg_config_load(struct pg_config *c, const char *path, char *err, size_t errlen) {
    struct ctx x = {.root = c, .file = path ? path : "(null)", .err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    if (!path || !*path)
        return fail(&x, NULL, "no config file given");

    /* libconfig reports a missing file as "file I/O error" without a name: ask first. */
    FILE *f = fopen(path, "r");
    struct stat st;
    int e = !f ? errno : fstat(fileno(f), &st) < 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (f)
        fclose(f);
    if (e)
        return fail(&x, NULL, "cannot read: %s", strerror(e));

    config_t cf;
    config_init(&cf);
    int rc;
    if (config_read_file(&cf, path) != CONFIG_TRUE) {
        /* a syntax error: libconfig names the file (an @include'd one, maybe) and line */
        const char *file = config_error_file(&cf) ? config_error_file(&cf) : path;
        rc = -1;
        if (config_error_type(&cf) == CONFIG_ERR_FILE_IO)
            fail(&x, NULL, "cannot read");
        else if (err && errlen)
            snprintf(err, errlen, "%s:%d: %s", file, config_error_line(&cf),
                     config_error_text(&cf));
    } else {
        rc = read_group(&x, &root_table, c, config_root_setting(&cf));
        if (rc == 0)
            rc = check_duplicate_listeners(&x, &cf);
    }
    config_destroy(&cf);
    if (rc == 0)
        replace_str(&c->path, path);
    return rc;
}
