/* auth_http.c - see auth_http.h.
 *
 * A question (a login, or a client's access to a topic) becomes a key; answered
 * keys sit in a fixed-size cache (two possible slots per key; a new answer takes
 * an empty one or the one expiring sooner) for cache_seconds. On a miss the hook starts a POST,
 * takes a ticket from the core (pg_hook_defer) and returns PG_HOOK_PENDING; when the service
 * answers, every client waiting on that key is resumed and asks again, finding the
 * answer in the cache, or with caching off, in the core's ticket. Several clients
 * asking the same question share one request.
 *
 * Only 2xx and 4xx answers are cached: a failure (timeout, refused connection, a
 * 5xx) gives on_error's verdict to the clients waiting now and is asked again
 * next time. Passwords enter the cache key only as their SHA-256.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "gateway/auth_http.h"
#include "gateway/http_post.h"
#include "gateway/log.h"

struct answer {
    uint64_t hash;
    uint8_t *key; /* NULL: empty slot */
    size_t key_len;
    int verdict;
    int64_t expires; /* broker clock, ms */
};

/* A question on its way to the service, and the clients waiting for it. */
struct ask {
    pg_auth_http *h;
    uint8_t *key;
    size_t key_len;
    uint64_t hash;
    int acl;
    pg_defer **waiters;
    int n_waiters, cap_waiters;
    struct ask *next;
};

struct pg_auth_http {
    pg_broker *b;
    struct pg_http_client *http;
    struct pg_auth_http_config c; /* strings owned */
    struct answer *cache;
    struct ask *asks;
};

/* One named field of a request: the key and the body are made from these. */
struct field {
    const char *name;
    const char *v;
    size_t len;
};

#define MAX_FIELDS 8

static struct field str_field(const char *name, const char *v) {
    return (struct field){name, v ? v : "", v ? strlen(v) : 0};
}

/* ---- keys and the cache ---- */

static uint64_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* Length-prefixed fields, so no two questions share a key. */
static uint8_t *make_key(const struct field *f, int n, size_t *len) {
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += 4 + f[i].len;
    uint8_t *k = malloc(total ? total : 1), *p = k;
    if (!k)
        return NULL;
    for (int i = 0; i < n; i++) {
        uint32_t l = (uint32_t)f[i].len;
        memcpy(p, &l, 4);
        memcpy(p + 4, f[i].v, f[i].len);
        p += 4 + f[i].len;
    }
    *len = total;
    return k;
}

/* Each key may live in one of two slots, so two keys that share a slot do not keep
 * pushing each other out. */
static struct answer *slot(pg_auth_http *h, uint64_t hash, int which) {
    uint64_t n = (uint64_t)h->c.cache_size;
    return &h->cache[(which ? hash >> 32 : hash) % n];
}

static int holds(const struct answer *a, const uint8_t *key, size_t len, uint64_t hash) {
    return a->key && a->hash == hash && a->key_len == len && !memcmp(a->key, key, len);
}

static int cache_get(pg_auth_http *h, const uint8_t *key, size_t len, uint64_t hash, int *verdict) {
    for (int i = 0; i < 2; i++) {
        const struct answer *a = slot(h, hash, i);
        if (holds(a, key, len, hash) && a->expires > pg_broker_now(h->b)) {
            *verdict = a->verdict;
            return 1;
        }
    }
    return 0;
}

/* The slot for a new answer: the key's own, an empty one, or the older of two. */
static struct answer *slot_for(pg_auth_http *h, const struct ask *q) {
    struct answer *a = slot(h, q->hash, 0), *b = slot(h, q->hash, 1);
    if (holds(a, q->key, q->key_len, q->hash) || !a->key)
        return a;
    if (holds(b, q->key, q->key_len, q->hash) || !b->key)
        return b;
    return a->expires <= b->expires ? a : b;
}

static void cache_put(pg_auth_http *h, const struct ask *q, int verdict) {
    if (!h->c.cache_seconds)
        return;
    struct answer *a = slot_for(h, q);
    uint8_t *k = malloc(q->key_len ? q->key_len : 1);
    if (!k)
        return;
    memcpy(k, q->key, q->key_len);
    free(a->key);
    *a = (struct answer){q->hash, k, q->key_len, verdict,
                         pg_broker_now(h->b) + (int64_t)h->c.cache_seconds * 1000};
}

/* ---- request bodies ---- */

static size_t put_form_value(char *o, const char *v, size_t len) {
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)v[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            strchr("-._~", ch)) {
            o[n++] = (char)ch;
        } else {
            o[n++] = '%';
            o[n++] = hex[ch >> 4];
            o[n++] = hex[ch & 15];
        }
    }
    return n;
}

/* JSON string contents; bytes from 0x80 pass as they are (UTF-8). */
static size_t put_json_value(char *o, const char *v, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch == '"' || ch == '\\') {
            o[n++] = '\\';
            o[n++] = (char)ch;
        } else if (ch < 0x20) {
            n += (size_t)sprintf(o + n, "\\u%04x", ch);
        } else {
            o[n++] = (char)ch;
        }
    }
    return n;
}

static char *make_body(const struct field *f, int n, int json, size_t *len) {
    size_t cap = 3;
    for (int i = 0; i < n; i++)
        cap += strlen(f[i].name) + 6 * f[i].len + 8;
    char *b = malloc(cap), *o = b;
    if (!b)
        return NULL;
    if (json)
        *o++ = '{';
    for (int i = 0; i < n; i++) {
        if (json) {
            o += sprintf(o, "%s\"%s\":\"", i ? "," : "", f[i].name);
            o += put_json_value(o, f[i].v, f[i].len);
            *o++ = '"';
        } else {
            o += sprintf(o, "%s%s=", i ? "&" : "", f[i].name);
            o += put_form_value(o, f[i].v, f[i].len);
        }
    }
    if (json)
        *o++ = '}';
    *len = (size_t)(o - b);
    return b;
}

/* "address:port" or "[v6]:port" into its two parts. */
static void split_peer(const char *peer, char *host, size_t hn, char *port, size_t pn) {
    const char *colon = peer ? strrchr(peer, ':') : NULL;
    if (!colon) {
        snprintf(host, hn, "%s", peer ? peer : "");
        snprintf(port, pn, "%s", "");
        return;
    }
    const char *start = peer;
    size_t len = (size_t)(colon - peer);
    if (len >= 2 && peer[0] == '[' && peer[len - 1] == ']') {
        start++;
        len -= 2;
    }
    snprintf(host, hn, "%.*s", (int)len, start);
    snprintf(port, pn, "%s", colon + 1);
}

/* ---- asking ---- */

static int verdict_for(const pg_auth_http *h, int acl, int status) {
    if (status >= 200 && status < 300)
        return acl ? PG_HOOK_PASS : PG_HOOK_ALLOW; /* an ACL file may still refuse */
    if (status >= 400 && status < 500)
        return acl ? PG_RC_NOT_AUTHORIZED : PG_RC_BAD_USERNAME_OR_PASSWORD;
    if (h->c.allow_on_error)
        return acl ? PG_HOOK_PASS : PG_HOOK_ALLOW;
    return acl ? PG_RC_NOT_AUTHORIZED : PG_RC_SERVER_UNAVAILABLE;
}

static void ask_free(struct ask *q) {
    free(q->key);
    free(q->waiters);
    free(q);
}

static void on_response(void *ud, int status) {
    struct ask *q = ud;
    pg_auth_http *h = q->h;
    const char *url = q->acl ? h->c.acl_url : h->c.url;
    int verdict = verdict_for(h, q->acl, status);
    if (status == PG_HTTP_TIMEOUT)
        pg_warn("auth http: %s: no answer within %d ms; %s", url, h->c.timeout_ms,
                h->c.allow_on_error ? "allowed" : "refused");
    else if (status < 0)
        pg_warn("auth http: %s: request failed; %s", url,
                h->c.allow_on_error ? "allowed" : "refused");
    else if (status < 200 || (status >= 300 && status < 400) || status >= 500)
        pg_warn("auth http: %s: status %d; %s", url, status,
                h->c.allow_on_error ? "allowed" : "refused");
    else
        cache_put(h, q, verdict);
    for (struct ask **pp = &h->asks; *pp; pp = &(*pp)->next)
        if (*pp == q) {
            *pp = q->next;
            break;
        }
    /* Resumed clients may ask new questions: answer from a detached ask. */
    for (int i = 0; i < q->n_waiters; i++)
        pg_defer_answer(q->waiters[i], verdict);
    ask_free(q);
}

static int room_for_waiter(struct ask *q) {
    if (q->n_waiters < q->cap_waiters)
        return 0;
    int cap = q->cap_waiters ? q->cap_waiters * 2 : 2;
    pg_defer **w = realloc(q->waiters, (size_t)cap * sizeof *w);
    if (!w)
        return -1;
    q->waiters = w;
    q->cap_waiters = cap;
    return 0;
}

/* Waits for the service's answer to the question `key` (taking it), posting the
 * fields unless the same question is already on its way. Returns PG_HOOK_PENDING,
 * or a verdict when nobody can wait or the request cannot start. */
static int ask(pg_auth_http *h, int acl, uint8_t *key, size_t key_len, uint64_t hash,
               const struct field *f, int n) {
    struct ask *q = h->asks;
    while (q && !(q->hash == hash && q->key_len == key_len && !memcmp(q->key, key, key_len)))
        q = q->next;
    if (q) {
        free(key);
    } else {
        size_t body_len;
        char *body = make_body(f, n, h->c.json, &body_len);
        q = body ? calloc(1, sizeof *q) : NULL;
        const char *url = acl ? h->c.acl_url : h->c.url;
        const char *type = h->c.json ? "application/json" : "application/x-www-form-urlencoded";
        if (q)
            *q = (struct ask){.h = h, .key = key, .key_len = key_len, .hash = hash, .acl = acl};
        if (!q ||
            pg_http_post(h->http, url, type, body, body_len, h->c.timeout_ms, on_response, q) < 0) {
            pg_warn("auth http: %s: cannot send the request", url);
            free(body);
            free(q);
            free(key);
            return verdict_for(h, acl, PG_HTTP_FAILED);
        }
        free(body);
        q->next = h->asks;
        h->asks = q;
    }
    if (room_for_waiter(q) < 0)
        return verdict_for(h, acl, PG_HTTP_FAILED);
    pg_defer *d = pg_hook_defer(h->b);
    if (!d) /* a will being published: its topic was checked at CONNECT */
        return acl ? PG_HOOK_PASS : verdict_for(h, acl, PG_HTTP_FAILED);
    q->waiters[q->n_waiters++] = d;
    return PG_HOOK_PENDING;
}

/* The cached verdict, or the question put to the service. */
static int decide(pg_auth_http *h, int acl, const struct field *key_fields, int nk,
                  const struct field *f, int n) {
    size_t len;
    uint8_t *key = make_key(key_fields, nk, &len);
    if (!key)
        return verdict_for(h, acl, PG_HTTP_FAILED);
    uint64_t hash = hash_bytes(key, len);
    int verdict;
    if (cache_get(h, key, len, hash, &verdict)) {
        free(key);
        return verdict;
    }
    return ask(h, acl, key, len, hash, f, n);
}

/* ---- the hooks ---- */

static int authenticate(void *ud, const struct pg_identity *id, const void *password,
                        size_t password_len, int has_password) {
    pg_auth_http *h = ud;
    /* Anonymous clients are allow_anonymous's to decide; a verified certificate
     * that names the user is its own credential. */
    if (!id->username || (id->cert_cn && !strcmp(id->cert_cn, id->username)))
        return PG_HOOK_PASS;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!EVP_Digest(has_password ? password : "", has_password ? password_len : 0, md, &md_len,
                    EVP_sha256(), NULL))
        return verdict_for(h, 0, PG_HTTP_FAILED);
    char host[64], port[8];
    split_peer(id->peer, host, sizeof host, port, sizeof port);
    struct field k[] = {str_field("", id->client_id),
                        str_field("", id->username),
                        {"", (const char *)md, md_len},
                        str_field("", id->protocol),
                        {"", has_password ? "p" : "", has_password ? 1u : 0u}};
    struct field f[] = {str_field("clientid", id->client_id),
                        str_field("username", id->username),
                        {"password", has_password ? password : "", has_password ? password_len : 0},
                        str_field("peerhost", host),
                        str_field("peerport", port),
                        str_field("protocol", id->protocol)};
    return decide(h, 0, k, 5, f, 6);
}

static int authorize(void *ud, const struct pg_identity *id, int access, const char *topic,
                     size_t len) {
    pg_auth_http *h = ud;
    if (access == PG_ACCESS_READ) /* deliveries: the subscription was checked */
        return PG_HOOK_PASS;
    const char *what = access == PG_ACCESS_WRITE ? "publish" : "subscribe";
    char host[64], port[8];
    split_peer(id->peer, host, sizeof host, port, sizeof port);
    struct field k[] = {str_field("", what),
                        str_field("", id->client_id),
                        str_field("", id->username),
                        {"", topic, len}};
    struct field f[] = {str_field("clientid", id->client_id),
                        str_field("username", id->username),
                        str_field("peerhost", host),
                        str_field("peerport", port),
                        str_field("protocol", id->protocol),
                        {"topic", topic, len},
                        str_field("access", what)};
    return decide(h, 1, k, 4, f, 7);
}

/* ---- lifetime ---- */

static char *dup_or_null(const char *s) {
    return s && *s ? strdup(s) : NULL;
}

pg_auth_http *pg_auth_http_new(pg_broker *b, struct lws_context *cx,
                               const struct pg_auth_http_config *c, char *err, size_t errlen) {
    pg_auth_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->b = b;
    h->c = *c;
    h->c.url = dup_or_null(c->url);
    h->c.acl_url = dup_or_null(c->acl_url);
    if (h->c.cache_size < 1)
        h->c.cache_size = 1;
    h->cache = calloc((size_t)h->c.cache_size, sizeof *h->cache);
    struct pg_hooks hooks = {.ud = h};
    if (h->c.url)
        hooks.authenticate = authenticate;
    if (h->c.acl_url)
        hooks.authorize = authorize;
    if (!h->cache || !(h->http = pg_http_client_new(cx, c->ca_file, err, errlen)) ||
        pg_broker_add_hooks(b, &hooks) < 0) {
        if (h->cache && h->http)
            snprintf(err, errlen, "out of memory");
        pg_auth_http_free(h);
        return NULL;
    }
    return h;
}

void pg_auth_http_clear_cache(pg_auth_http *h) {
    for (int i = 0; h && i < h->c.cache_size; i++) {
        free(h->cache[i].key);
        h->cache[i].key = NULL;
    }
}

void pg_auth_http_stop(pg_auth_http *h) {
    if (h)
        pg_http_client_stop(h->http);
}

void pg_auth_http_free(pg_auth_http *h) {
    if (!h)
        return;
    pg_http_client_free(h->http);
    while (h->asks) { /* their tickets went with the broker */
        struct ask *q = h->asks;
        h->asks = q->next;
        ask_free(q);
    }
    for (int i = 0; h->cache && i < h->c.cache_size; i++)
        free(h->cache[i].key);
    free(h->cache);
    free((char *)h->c.url);
    free((char *)h->c.acl_url);
    free(h);
}
