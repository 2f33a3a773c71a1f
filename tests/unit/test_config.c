/* test_config.c - unit tests for gateway/config.c, the strict config loader.
 *
 * Covers the defaults, the shipped config/polygate.conf (which must load and equal the
 * defaults), and every kind of error with its exact "FILE:LINE: what" text. Configs are
 * written to temporary files; run from the repository root so config/ is found.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/config.h"

/* ---- helpers ---- */

/* Writes text to a fresh temporary file; the caller unlinks it. */
static void write_temp(char path[static 64], const char *suffix, const char *text) {
    snprintf(path, 64, "/tmp/pg_test_config_XXXXXX%s", suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
}

/* Loads text over the defaults and returns the load's result; the error lands in err. */
static int load_text(struct pg_config *c, const char *text, char path[static 64], char *err,
                     size_t errlen) {
    write_temp(path, ".conf", text);
    pg_config_defaults(c);
    return pg_config_load(c, path, err, errlen);
}

/* Asserts that text fails to load with "FILE:" followed by want ("LINE: what"). */
static void expect_error(const char *text, const char *want) {
    struct pg_config c;
    char path[64], err[512], full[640];
    int rc = load_text(&c, text, path, err, sizeof(err));
    snprintf(full, sizeof(full), "%s:%s", path, want);
    pg_config_free(&c);
    unlink(path);
    assert_int_equal(rc, -1);
    assert_string_equal(err, full);
}

/* Loads text that must be valid into c (freed by the caller). */
static void load_ok(struct pg_config *c, const char *text) {
    char path[64], err[512] = "";
    int rc = load_text(c, text, path, err, sizeof(err));
    unlink(path);
    if (rc != 0)
        fail_msg("unexpected error: %s", err);
}

static void assert_listener(const struct pg_listener_conf *l, const char *bind, int port) {
    assert_string_equal(l->bind, bind);
    assert_int_equal(l->port, port);
    assert_false(l->tls);
    assert_null(l->tls_conf.cert_file);
    assert_int_equal(l->max_connections, 0);
}

static void assert_str_eq_or_null(const char *a, const char *b) {
    if (!a || !b)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void assert_group_equal(const struct pg_group_conf *a, const struct pg_group_conf *b) {
    assert_int_equal(a->enabled, b->enabled);
    assert_string_equal(a->mountpoint, b->mountpoint);
    assert_int_equal(a->n_listeners, b->n_listeners);
    for (int i = 0; i < a->n_listeners; i++) {
        const struct pg_listener_conf *x = &a->listeners[i], *y = &b->listeners[i];
        assert_string_equal(x->bind, y->bind);
        assert_int_equal(x->port, y->port);
        assert_int_equal(x->max_connections, y->max_connections);
        assert_int_equal(x->tls, y->tls);
        assert_str_eq_or_null(x->tls_conf.cert_file, y->tls_conf.cert_file);
        assert_str_eq_or_null(x->tls_conf.key_file, y->tls_conf.key_file);
        assert_str_eq_or_null(x->tls_conf.ca_file, y->tls_conf.ca_file);
        assert_int_equal(x->tls_conf.require_certificate, y->tls_conf.require_certificate);
        assert_int_equal(x->tls_conf.use_identity_as_username,
                         y->tls_conf.use_identity_as_username);
    }
}

/* Every field except path. */
static void assert_config_equal(const struct pg_config *a, const struct pg_config *b) {
    assert_memory_equal(&a->broker, &b->broker, sizeof(a->broker));
    assert_int_equal(a->auth.allow_anonymous, b->auth.allow_anonymous);
    assert_string_equal(a->auth.password_file, b->auth.password_file);
    assert_string_equal(a->auth.acl_file, b->auth.acl_file);
    assert_string_equal(a->auth.http.url, b->auth.http.url);
    assert_string_equal(a->auth.http.acl_url, b->auth.http.acl_url);
    assert_int_equal(a->auth.http.timeout_ms, b->auth.http.timeout_ms);
    assert_int_equal(a->auth.http.cache_seconds, b->auth.http.cache_seconds);
    assert_int_equal(a->auth.http.cache_size, b->auth.http.cache_size);
    assert_string_equal(a->auth.http.on_error, b->auth.http.on_error);
    assert_string_equal(a->auth.http.format, b->auth.http.format);
    assert_string_equal(a->auth.http.ca_file, b->auth.http.ca_file);
    assert_string_equal(a->log.file, b->log.file);
    assert_string_equal(a->log.level, b->log.level);
    assert_group_equal(&a->mqtt, &b->mqtt);
    assert_group_equal(&a->websocket, &b->websocket);
    assert_group_equal(&a->mqttsn, &b->mqttsn);
    assert_group_equal(&a->coap, &b->coap);
    assert_group_equal(&a->stomp, &b->stomp);
    assert_group_equal(&a->http, &b->http);
    assert_string_equal(a->websocket_opts.www_dir, b->websocket_opts.www_dir);
    assert_int_equal(a->websocket_opts.max_frame_size, b->websocket_opts.max_frame_size);
    assert_string_equal(a->websocket_opts.allowed_origins, b->websocket_opts.allowed_origins);
    assert_int_equal(a->websocket_opts.trust_x_forwarded_for,
                     b->websocket_opts.trust_x_forwarded_for);
    assert_int_equal(a->mqttsn_opts.gateway_id, b->mqttsn_opts.gateway_id);
    assert_int_equal(a->mqttsn_opts.qos_neg1, b->mqttsn_opts.qos_neg1);
    assert_string_equal(a->mqttsn_opts.username, b->mqttsn_opts.username);
    assert_string_equal(a->mqttsn_opts.password, b->mqttsn_opts.password);
    assert_string_equal(a->mqttsn_opts.allowed_clients, b->mqttsn_opts.allowed_clients);
    assert_int_equal(a->mqttsn_opts.max_registrations, b->mqttsn_opts.max_registrations);
    assert_int_equal(a->mqttsn_opts.retry_interval, b->mqttsn_opts.retry_interval);
    assert_int_equal(a->mqttsn_opts.max_retries, b->mqttsn_opts.max_retries);
    assert_int_equal(a->mqttsn_opts.advertise_interval, b->mqttsn_opts.advertise_interval);
    assert_string_equal(a->mqttsn_opts.advertise_address, b->mqttsn_opts.advertise_address);
    assert_int_equal(a->mqttsn_opts.n_predefined, b->mqttsn_opts.n_predefined);
    for (int i = 0; i < a->mqttsn_opts.n_predefined; i++) {
        assert_int_equal(a->mqttsn_opts.predefined[i].id, b->mqttsn_opts.predefined[i].id);
        assert_string_equal(a->mqttsn_opts.predefined[i].topic, b->mqttsn_opts.predefined[i].topic);
    }
}

/* ---- defaults and the shipped file ---- */

static void test_defaults(void **state) {
    struct pg_config c;
    pg_config_defaults(&c);
    assert_null(c.path);
    assert_int_equal(c.broker.max_packet_size, 1048576);
    assert_int_equal(c.broker.max_inflight, 32);
    assert_int_equal(c.broker.max_queued_messages, 1000);
    assert_int_equal(c.broker.max_keepalive, 65535);
    assert_true(c.broker.retain_available);
    assert_int_equal(c.broker.sys_interval, 10);
    assert_int_equal(c.broker.max_topic_alias, 64);
    assert_int_equal(c.broker.session_expiry_max, 0);
    assert_int_equal(c.broker.max_connections, 0);
    assert_true(c.auth.allow_anonymous);
    assert_string_equal(c.auth.password_file, "");
    assert_string_equal(c.auth.acl_file, "");
    assert_string_equal(c.auth.http.url, "");
    assert_string_equal(c.auth.http.acl_url, "");
    assert_int_equal(c.auth.http.timeout_ms, 5000);
    assert_int_equal(c.auth.http.cache_seconds, 60);
    assert_int_equal(c.auth.http.cache_size, 4096);
    assert_string_equal(c.auth.http.on_error, "deny");
    assert_string_equal(c.auth.http.format, "form");
    assert_string_equal(c.auth.http.ca_file, "");
    assert_string_equal(c.websocket_opts.www_dir, "examples/web");
    assert_int_equal(c.websocket_opts.max_frame_size, 0);
    assert_string_equal(c.websocket_opts.allowed_origins, "");
    assert_false(c.websocket_opts.trust_x_forwarded_for);
    assert_string_equal(c.log.file, "");
    assert_string_equal(c.log.level, "info");
    const struct pg_group_conf *groups[] = {&c.mqtt, &c.websocket, &c.mqttsn,
                                            &c.coap, &c.stomp,     &c.http};
    const int ports[] = {1883, 8083, 1884, 5683, 61613, 18083};
    for (int i = 0; i < 6; i++) {
        assert_true(groups[i]->enabled);
        assert_string_equal(groups[i]->mountpoint, "");
        assert_int_equal(groups[i]->n_listeners, 1);
        assert_listener(&groups[i]->listeners[0], i == 5 ? "127.0.0.1" : "0.0.0.0", ports[i]);
    }
    assert_int_equal(c.mqttsn_opts.gateway_id, 1);
    assert_true(c.mqttsn_opts.qos_neg1);
    assert_int_equal(c.mqttsn_opts.n_predefined, 0);
    assert_null(c.mqttsn_opts.predefined);
    pg_config_free(&c);
}

static void test_shipped_file_equals_defaults(void **state) {
    struct pg_config def, c;
    char err[512] = "";
    pg_config_defaults(&def);
    pg_config_defaults(&c);
    int rc = pg_config_load(&c, "config/polygate.conf", err, sizeof(err));
    if (rc != 0)
        fail_msg("config/polygate.conf: %s", err);
    assert_string_equal(c.path, "config/polygate.conf");
    assert_config_equal(&c, &def);
    pg_config_free(&c);
    pg_config_free(&def);
}

static void test_empty_file_is_defaults(void **state) {
    struct pg_config def, c;
    pg_config_defaults(&def);
    load_ok(&c, "# nothing\n");
    assert_config_equal(&c, &def);
    pg_config_free(&c);
    pg_config_free(&def);
}

/* Loading twice over the same struct replaces values without leaking (ASan checks). */
static void test_load_twice(void **state) {
    struct pg_config c;
    char path[64], err[512];
    load_ok(&c, "log = { level = \"debug\"; };\nmqtt = { listeners = ( { port = 1; } ); };\n");
    write_temp(path, ".conf", "log = { level = \"error\"; };\nmqtt = { listeners = (); };\n");
    assert_int_equal(pg_config_load(&c, path, err, sizeof(err)), 0);
    unlink(path);
    assert_string_equal(c.log.level, "error");
    assert_int_equal(c.mqtt.n_listeners, 0);
    assert_string_equal(c.path, path);
    pg_config_free(&c);
}

/* ---- values that load ---- */

static void test_values_and_int64(void **state) {
    struct pg_config c;
    load_ok(&c, "broker = { max_inflight = 5L; max_packet_size = 0x100; retain_available = "
                "false; }\n" /* no ';': libconfig allows it */
                "auth = { allow_anonymous = false; };\n"
                "mqtt = { enabled = false; mountpoint = \"site1/\"; };\n"
                "mqttsn = { gateway_id = 255; qos_neg1 = false; };\n");
    assert_int_equal(c.broker.max_inflight, 5);
    assert_int_equal(c.broker.max_packet_size, 256);
    assert_false(c.broker.retain_available);
    assert_false(c.auth.allow_anonymous);
    assert_false(c.mqtt.enabled);
    assert_string_equal(c.mqtt.mountpoint, "site1/");
    assert_int_equal(c.mqtt.n_listeners, 1); /* no listeners given: default kept */
    assert_listener(&c.mqtt.listeners[0], "0.0.0.0", 1883);
    assert_int_equal(c.mqttsn_opts.gateway_id, 255);
    assert_false(c.mqttsn_opts.qos_neg1);
    pg_config_free(&c);
}

static void test_listeners_replace_default(void **state) {
    struct pg_config c;
    load_ok(&c, "mqtt = { listeners = ( { bind = \"::1\"; port = 11883; } ); };\n"
                "http = { listeners = ( { port = 18084; } ); };\n" /* bind stays 127.0.0.1 */
                "stomp = { listeners = ( { bind = \"0.0.0.0\"; } ); };\n"); /* port 61613 */
    assert_int_equal(c.mqtt.n_listeners, 1);
    assert_listener(&c.mqtt.listeners[0], "::1", 11883);
    assert_int_equal(c.http.n_listeners, 1);
    assert_listener(&c.http.listeners[0], "127.0.0.1", 18084);
    assert_listener(&c.stomp.listeners[0], "0.0.0.0", 61613);
    assert_listener(&c.websocket.listeners[0], "0.0.0.0", 8083); /* untouched group */
    pg_config_free(&c);
}

static void test_multiple_listeners(void **state) {
    struct pg_config c;
    char cert[64], key[64], text[1024];
    write_temp(cert, ".crt", "-----BEGIN CERTIFICATE-----\n");
    write_temp(key, ".key", "-----BEGIN PRIVATE KEY-----\n");
    snprintf(text, sizeof(text),
             "mqtt = { listeners = (\n"
             "  { bind = \"0.0.0.0\"; port = 1883; max_connections = 100; },\n"
             "  { bind = \"0.0.0.0\"; port = 8883;\n"
             "    tls = { cert_file = \"%s\"; key_file = \"%s\"; ca_file = \"%s\";\n"
             "            require_certificate = true; use_identity_as_username = true; }; },\n"
             "  { bind = \"::\"; port = 1883; },\n"
             "  { bind = \"127.0.0.1\"; port = 0; }, { bind = \"127.0.0.2\"; port = 0; }\n"
             "); };\n"
             "coap = { listeners = ( { port = 5683; },\n"
             "  { port = 5684; dtls = { cert_file = \"%s\"; key_file = \"%s\"; }; } ); };\n"
             "stomp = { listeners = ( { port = 1883; } ); enabled = false; };\n", /* off */
             cert, key, cert, cert, key);
    load_ok(&c, text);
    assert_int_equal(c.mqtt.n_listeners, 5);
    assert_int_equal(c.mqtt.listeners[0].max_connections, 100);
    assert_false(c.mqtt.listeners[0].tls);
    const struct pg_listener_conf *t = &c.mqtt.listeners[1];
    assert_true(t->tls);
    assert_int_equal(t->port, 8883);
    assert_string_equal(t->tls_conf.cert_file, cert);
    assert_string_equal(t->tls_conf.key_file, key);
    assert_string_equal(t->tls_conf.ca_file, cert);
    assert_true(t->tls_conf.require_certificate);
    assert_true(t->tls_conf.use_identity_as_username);
    assert_listener(&c.mqtt.listeners[2], "::", 1883);
    assert_listener(&c.mqtt.listeners[4], "127.0.0.2", 0);
    assert_int_equal(c.coap.n_listeners, 2);
    assert_false(c.coap.listeners[0].tls);
    assert_true(c.coap.listeners[1].tls);
    assert_null(c.coap.listeners[1].tls_conf.ca_file);
    assert_string_equal(c.coap.listeners[1].tls_conf.key_file, key);
    pg_config_free(&c);
    unlink(cert);
    unlink(key);
}

static void test_predefined_topics(void **state) {
    struct pg_config c;
    load_ok(&c, "mqttsn = { predefined_topics = (\n"
                "  { id = 1; topic = \"sensors/+/temp\"; },\n"
                "  { id = 65535; topic = \"home/status\"; }\n"
                "); };\n");
    assert_int_equal(c.mqttsn_opts.n_predefined, 2);
    assert_int_equal(c.mqttsn_opts.predefined[0].id, 1);
    assert_string_equal(c.mqttsn_opts.predefined[0].topic, "sensors/+/temp");
    assert_int_equal(c.mqttsn_opts.predefined[1].id, 65535);
    assert_string_equal(c.mqttsn_opts.predefined[1].topic, "home/status");
    pg_config_free(&c);
}

/* ---- errors ---- */

static void test_missing_file(void **state) {
    struct pg_config c;
    char err[512];
    pg_config_defaults(&c);
    assert_int_equal(pg_config_load(&c, "/nonexistent/polygate.conf", err, sizeof(err)), -1);
    assert_string_equal(err, "/nonexistent/polygate.conf: cannot read: No such file or directory");
    assert_int_equal(pg_config_load(&c, "/tmp", err, sizeof(err)), -1);
    assert_string_equal(err, "/tmp: cannot read: Is a directory");
    assert_null(c.path);
    pg_config_free(&c);
}

static void test_syntax_error(void **state) {
    expect_error("broker = {\n  max_inflight = 5;\n  sys_interval 10;\n};\n", "3: syntax error");
    expect_error("log = { level = \"info\"; };\nlog = { file = \"\"; };\n",
                 "2: duplicate setting name");
}

static void test_unknown_keys(void **state) {
    expect_error("# top\n\nbrokr = { };\n", "3: unknown key 'brokr' (did you mean 'broker'?)");
    expect_error("gateway = 1;\n", "1: unknown key 'gateway'");
    expect_error("broker = {\n  max_inflight = 5;\n  max_pakcet_size = 100;\n};\n",
                 "3: unknown key 'broker.max_pakcet_size' (did you mean 'max_packet_size'?)");
    expect_error("mqtt = {\n  listeners = (\n    { bind = \"0.0.0.0\"; },\n"
                 "    { prot = 1; }\n  );\n};\n",
                 "4: unknown key 'mqtt.listeners[1].prot' (did you mean 'port'?)");
    expect_error("coap = { listeners = ( {\n  tls = { };\n} ); };\n",
                 "2: unknown key 'coap.listeners[0].tls' (did you mean 'dtls'?)");
    expect_error("mqtt = { gateway_id = 3; };\n", "1: unknown key 'mqtt.gateway_id'");
}

static void test_wrong_types(void **state) {
    expect_error("broker = {\n  max_inflight = \"32\";\n};\n",
                 "2: 'broker.max_inflight' must be an integer");
    expect_error("\nmqtt = { listeners = ( { port = 1883.0; } ); };\n",
                 "2: 'mqtt.listeners[0].port' must be an integer");
    expect_error("auth = { allow_anonymous = 1; };\n",
                 "1: 'auth.allow_anonymous' must be true or false");
    expect_error("auth = {\n  password_file = { };\n};\n",
                 "2: 'auth.password_file' must be a string");
    expect_error("broker = 5;\n", "1: 'broker' must be a group { ... }");
    expect_error("mqtt = { listeners = { port = 1; }; };\n",
                 "1: 'mqtt.listeners' must be a list of groups ( { ... }, ... )");
    expect_error("stomp = { listeners = ( 1883 ); };\n",
                 "1: 'stomp.listeners[0]' must be a group { ... }");
}

static void test_out_of_range(void **state) {
    expect_error("mqtt = {\n  listeners = ( { port = 70000; } );\n};\n",
                 "2: 'mqtt.listeners[0].port' must be between 0 and 65535");
    expect_error("broker = { max_inflight = 0; };\n",
                 "1: 'broker.max_inflight' must be between 1 and 65535");
    expect_error("broker = { max_packet_size = 268435461L; };\n",
                 "1: 'broker.max_packet_size' must be between 2 and 268435460");
    expect_error("broker = { max_queued_messages = -1; };\n",
                 "1: 'broker.max_queued_messages' must be at least 0");
    expect_error("broker = { sys_interval = 5000000000L; };\n",
                 "1: 'broker.sys_interval' must be at least 0");
    expect_error("log = {\n  file = \"\";\n  level = \"loud\";\n};\n",
                 "3: 'log.level' must be one of error, warning, notice, info, debug");
    expect_error("mqtt = { listeners = ( { bind = \"localhost\"; } ); };\n",
                 "1: 'mqtt.listeners[0].bind' must be an IPv4 or IPv6 address, not 'localhost'");
    expect_error("stomp = { mountpoint = \"a/#\"; };\n",
                 "1: 'stomp.mountpoint' must not contain '+' or '#'");
    expect_error("mqttsn = { gateway_id = 256; };\n",
                 "1: 'mqttsn.gateway_id' must be between 0 and 255");
}

static void test_duplicate_listener(void **state) {
    expect_error("mqtt = { listeners = ( { port = 1883; } ); };\n"
                 "stomp = {\n  listeners = (\n    { port = 61613; },\n    { port = 1883; }\n"
                 "  );\n};\n",
                 "5: 'stomp.listeners[1]': 0.0.0.0:1883 (TCP) is already used by "
                 "'mqtt.listeners[0]'");
    /* the mqtt group is absent: its default listener still counts */
    expect_error("\nwebsocket = { listeners = ( { bind = \"0.0.0.0\"; port = 1883; } ); };\n",
                 "2: 'websocket.listeners[0]': 0.0.0.0:1883 (TCP) is already used by "
                 "'mqtt.listeners[0]'");
    expect_error("coap = { listeners = ( { bind = \"::\"; port = 9; },\n"
                 "  { bind = \"0:0::0\"; port = 9; } ); };\n",
                 "2: 'coap.listeners[1]': [0:0::0]:9 (UDP) is already used by "
                 "'coap.listeners[0]'");
    /* TCP and UDP are different port spaces */
    struct pg_config c;
    load_ok(&c, "mqttsn = { listeners = ( { port = 1883; } ); };\n");
    pg_config_free(&c);
}

static void test_tls_errors(void **state) {
    char cert[64], text[512];
    write_temp(cert, ".crt", "x");
    snprintf(text, sizeof(text),
             "mqtt = { listeners = ( { port = 8883;\n"
             "  tls = {\n    cert_file = \"%s\";\n  };\n} ); };\n",
             cert);
    expect_error(text, "2: 'mqtt.listeners[0].tls.key_file' is required");
    snprintf(text, sizeof(text),
             "mqtt = { listeners = ( { port = 8883;\n"
             "  tls = {\n    key_file = \"%s\";\n    cert_file = \"/nonexistent/x.crt\";\n"
             "  };\n} ); };\n",
             cert);
    expect_error(text, "4: 'mqtt.listeners[0].tls.cert_file': cannot read "
                       "'/nonexistent/x.crt': No such file or directory");
    snprintf(text, sizeof(text),
             "stomp = { listeners = ( { tls = { cert_file = \"%s\"; key_file = \"%s\";\n"
             "  require_certificate = true; }; } ); };\n",
             cert, cert);
    expect_error(text, "1: 'stomp.listeners[0].tls.ca_file' is required when "
                       "require_certificate is true");
    expect_error("auth = {\n  acl_file = \"/nonexistent/acl\";\n};\n",
                 "2: 'auth.acl_file': cannot read '/nonexistent/acl': No such file or "
                 "directory");
    unlink(cert);
}

static void test_auth_http(void **state) {
    struct pg_config c;
    load_ok(&c, "auth = { http = { url = \"https://auth.example:8443/login\";\n"
                "  acl_url = \"http://127.0.0.1/acl\"; timeout_ms = 250; cache_seconds = 0;\n"
                "  cache_size = 10; on_error = \"allow\"; format = \"json\"; }; };\n");
    assert_string_equal(c.auth.http.url, "https://auth.example:8443/login");
    assert_string_equal(c.auth.http.acl_url, "http://127.0.0.1/acl");
    assert_int_equal(c.auth.http.timeout_ms, 250);
    assert_int_equal(c.auth.http.cache_seconds, 0);
    assert_int_equal(c.auth.http.cache_size, 10);
    assert_string_equal(c.auth.http.on_error, "allow");
    assert_string_equal(c.auth.http.format, "json");
    pg_config_free(&c);
    expect_error("auth = { http = {\n url = \"ftp://h/x\"; }; };\n",
                 "2: 'auth.http.url' must be an http:// or https:// URL with a host, not "
                 "'ftp://h/x'");
    expect_error("auth = { http = { acl_url = \"http:///acl\"; }; };\n",
                 "1: 'auth.http.acl_url' must be an http:// or https:// URL with a host, not "
                 "'http:///acl'");
    expect_error("auth = { http = { on_error = \"maybe\"; }; };\n",
                 "1: 'auth.http.on_error' must be \"deny\" or \"allow\", not 'maybe'");
    expect_error("auth = { http = { format = \"xml\"; }; };\n",
                 "1: 'auth.http.format' must be \"form\" or \"json\", not 'xml'");
    expect_error("auth = { http = { timeout_ms = 0; }; };\n",
                 "1: 'auth.http.timeout_ms' must be between 1 and 60000");
    expect_error("auth = { http = { cache_size = 0; }; };\n",
                 "1: 'auth.http.cache_size' must be between 1 and 16777216");
    expect_error("auth = {\n password_file = \"/dev/null\";\n"
                 " http = { url = \"http://h/a\"; }; };\n",
                 "1: 'auth.password_file' and 'auth.http.url' cannot both be set: choose one "
                 "way to check passwords");
}

static void test_websocket_keys(void **state) {
    struct pg_config c;
    load_ok(&c,
            "websocket = { www_dir = \"\"; max_frame_size = 4096;\n"
            "  allowed_origins = \"https://a.example, http://b\"; trust_x_forwarded_for = true;\n"
            "  listeners = ( { port = 9001; } ); };\n");
    assert_string_equal(c.websocket_opts.www_dir, "");
    assert_int_equal(c.websocket_opts.max_frame_size, 4096);
    assert_string_equal(c.websocket_opts.allowed_origins, "https://a.example, http://b");
    assert_true(c.websocket_opts.trust_x_forwarded_for);
    assert_int_equal(c.websocket.listeners[0].port, 9001);
    pg_config_free(&c);
    expect_error("websocket = { max_frame_size = -1; };\n",
                 "1: 'websocket.max_frame_size' must be at least 0");
    expect_error("mqtt = { www_dir = \"x\"; };\n", "1: unknown key 'mqtt.www_dir'");
    expect_error("mqttsn = { advertise_address = \"10.0.0.255\"; };\n",
                 "1: 'mqttsn.advertise_address' must be \"IPv4-address:port\", not '10.0.0.255'");
    expect_error("mqttsn = { max_registrations = 0; };\n",
                 "1: 'mqttsn.max_registrations' must be between 1 and 65534");
}

static void test_predefined_topic_errors(void **state) {
    expect_error("mqttsn = { predefined_topics = (\n"
                 "  { id = 7; topic = \"a\"; },\n"
                 "  { topic = \"b\";\n    id = 7; }\n); };\n",
                 "4: 'mqttsn.predefined_topics[1].id' 7 is already used by "
                 "'mqttsn.predefined_topics[0]'");
    expect_error("mqttsn = { predefined_topics = (\n  { id = 0; topic = \"a\"; }\n); };\n",
                 "2: 'mqttsn.predefined_topics[0].id' must be between 1 and 65535");
    expect_error("mqttsn = { predefined_topics = (\n  { id = 2; topic = \"\"; }\n); };\n",
                 "2: 'mqttsn.predefined_topics[0].topic' must not be empty");
    expect_error("mqttsn = { predefined_topics = (\n  { topic = \"a\"; }\n); };\n",
                 "2: 'mqttsn.predefined_topics[0].id' is required");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_shipped_file_equals_defaults),
        cmocka_unit_test(test_empty_file_is_defaults),
        cmocka_unit_test(test_load_twice),
        cmocka_unit_test(test_values_and_int64),
        cmocka_unit_test(test_listeners_replace_default),
        cmocka_unit_test(test_multiple_listeners),
        cmocka_unit_test(test_predefined_topics),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_duplicate_listener),
        cmocka_unit_test(test_tls_errors),
        cmocka_unit_test(test_predefined_topic_errors),
        cmocka_unit_test(test_auth_http),
        cmocka_unit_test(test_websocket_keys),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
