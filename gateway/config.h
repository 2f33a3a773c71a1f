/* config.h - polygate's configuration: one struct with every setting and its default.
 *
 * pg_config_load() reads a libconfig file over the defaults and checks it strictly:
 * an unknown key, a wrong type or an out-of-range value is an error "FILE:LINE: what"
 * (libconfig alone silently keeps defaults on a type mismatch and accepts any key).
 * The shipped config/polygate.conf documents every key with its default.
 */
#ifndef PG_CONFIG_H
#define PG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct pg_tls_conf {
    char *cert_file; /* NULL when the listener has no tls group */
    char *key_file;
    char *ca_file; /* NULL = none (client certificates are not checked) */
    bool require_certificate;
    bool use_identity_as_username;
};

struct pg_listener_conf {
    char *bind; /* default "0.0.0.0" ("127.0.0.1" for http) */
    int port;   /* 1..65535; 0 = pick a free port (tests) */
    bool tls;   /* a tls = { ... } group was given */
    struct pg_tls_conf tls_conf;
    int max_connections; /* 0 = unlimited */
};

struct pg_group_conf {
    bool enabled;
    struct pg_listener_conf *listeners;
    int n_listeners;
    char *mountpoint;    /* "" = none */
    int allow_anonymous; /* -1 = auth.allow_anonymous decides, else 0/1 */
};

struct pg_predefined_topic {
    int id;
    char *topic;
};

struct pg_config {
    char *path; /* the file loaded, or NULL for built-in defaults */
    struct {
        int max_packet_size;     /* 1048576; 2..268435460 */
        int max_inflight;        /* 32; 1..65535: QoS 1/2 window both ways */
        int max_queued_messages; /* 1000; 0..: per session, 0 = unlimited */
        int max_keepalive;       /* 65535; 0..65535 */
        bool retain_available;   /* true */
        int sys_interval;        /* 10 s; 0 = off */
        int max_topic_alias;     /* 64; 0..65535 topic aliases per direction */
        int session_expiry_max;  /* 0 = no cap (seconds) */
        int max_connections;     /* 0 = unlimited (process wide) */
        int max_subscriptions;   /* per session, 0 = unlimited */
    } broker;
    struct {
        bool allow_anonymous;     /* true */
        char *password_file;      /* "" */
        char *acl_file;           /* "" */
        int failure_threshold;    /* 3: failed logins per address before delays */
        int failure_delay_ms;     /* 1000: first delay, doubling; 0 = never delay */
        int failure_delay_max_ms; /* 30000 */
        struct {
            char *url;         /* "": no HTTP authentication */
            char *acl_url;     /* "": no HTTP access control */
            int timeout_ms;    /* 5000; 1..60000 */
            int cache_seconds; /* 60; 0 = answers are not reused */
            int cache_size;    /* 4096 answers; 1.. */
            char *on_error;    /* "deny" | "allow": when the backend fails */
            char *format;      /* "form" | "json": the request body */
            char *ca_file;     /* "": the system's CAs verify an https service */
        } http;
    } auth;
    struct {
        char *file;  /* "" = stderr */
        char *level; /* "info": error, warning, notice, info, debug */
    } log;
    struct pg_group_conf mqtt;      /* 1883 */
    struct pg_group_conf websocket; /* 8083 */
    struct pg_group_conf mqttsn;    /* UDP 1884 */
    struct pg_group_conf coap;      /* UDP 5683 */
    struct pg_group_conf stomp;     /* 61613 */
    struct pg_group_conf http;      /* 127.0.0.1:18083 */
    struct {
        char *www_dir;              /* "examples/web": static files on the same port; "" = none */
        int max_frame_size;         /* 0 = no limit (MQTT packets are bounded anyway) */
        char *allowed_origins;      /* comma-separated Origin values; "" = any */
        bool trust_x_forwarded_for; /* false */
    } websocket_opts;
    struct {
        int gateway_id;          /* 1; 0..255 */
        bool qos_neg1;           /* true */
        char *username;          /* "": MQTT-SN clients are anonymous */
        char *password;          /* "" */
        char *allowed_clients;   /* comma-separated client ids; "" = any */
        int max_registrations;   /* 1000 topic ids per client */
        int retry_interval;      /* 10 s */
        int max_retries;         /* 3 */
        int advertise_interval;  /* 0 = no ADVERTISE */
        char *advertise_address; /* "255.255.255.255:1884" */
        struct pg_predefined_topic *predefined;
        int n_predefined;
    } mqttsn_opts;
};

/* Fills every field with its default (the shipped file's values). */
void pg_config_defaults(struct pg_config *c);
/* Loads path over the defaults. Returns 0, or -1 with "FILE:LINE: what" in err. */
int pg_config_load(struct pg_config *c, const char *path, char *err, size_t errlen);
void pg_config_free(struct pg_config *c);

#endif
