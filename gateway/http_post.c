/* http_post.c - see http_post.h.
 *
 * Each request is one lws client connection on a vhost of its own that listens
 * nowhere. The verdict comes with the status line (ESTABLISHED_CLIENT_HTTP); the
 * body is read and dropped so the connection ends cleanly. A request lives until
 * lws closes its connection; the caller's callback is made once, from whichever
 * comes first: the status, a failure, or the timeout (which also closes it).
 */
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "gateway/http_post.h"
#include "gateway/log.h"

struct req {
    lws_sorted_usec_list_t sul; /* the timeout */
    struct pg_http_client *c;
    struct lws *wsi;
    char *url;       /* lws_parse_uri cuts this up: address, path point in */
    char path[1024]; /* with its leading '/' */
    char content_type[64];
    unsigned char *body; /* LWS_PRE bytes of headroom first */
    size_t len;
    pg_http_done done;
    void *ud;
    int answered;
    int connecting; /* inside lws_client_connect_via_info */
    int failed;     /* a connection error came while connecting */
    struct req *next;
};

struct pg_http_client {
    struct lws_context *cx;
    struct lws_vhost *vh;
    int stopped;
    struct req *reqs;
};

static void answer(struct req *r, int status) {
    if (r->answered)
        return;
    r->answered = 1;
    lws_sul_cancel(&r->sul);
    if (!r->c->stopped)
        r->done(r->ud, status);
}

static void req_free(struct req *r) {
    struct req **pp = &r->c->reqs;
    while (*pp && *pp != r)
        pp = &(*pp)->next;
    if (*pp)
        *pp = r->next;
    lws_sul_cancel(&r->sul);
    free(r->url);
    free(r->body);
    free(r);
}

static void on_timeout(lws_sorted_usec_list_t *sul) {
    struct req *r = lws_container_of(sul, struct req, sul);
    answer(r, PG_HTTP_TIMEOUT);
    if (r->wsi) /* closed from its own callbacks soon; freed there */
        lws_set_timeout(r->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static int add_headers(struct lws *wsi, struct req *r, unsigned char **p, unsigned char *end) {
    char n[24];
    int k = snprintf(n, sizeof n, "%zu", r->len);
    if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                     (unsigned char *)r->content_type, (int)strlen(r->content_type),
                                     p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, (unsigned char *)n, k, p,
                                     end))
        return -1;
    lws_client_http_body_pending(wsi, 1);
    lws_callback_on_writable(wsi);
    return 0;
}

static int drain_body(struct lws *wsi) {
    char buf[LWS_PRE + 1024];
    char *p = buf + LWS_PRE;
    int n = (int)sizeof buf - LWS_PRE;
    return lws_http_client_read(wsi, &p, &n) < 0 ? -1 : 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
    struct req *r = user;
    if (!r)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        return add_headers(wsi, r, in, (unsigned char *)*(unsigned char **)in + len);
    case LWS_CALLBACK_CLIENT_HTTP_WRITEABLE:
        lws_client_http_body_pending(wsi, 0);
        if (lws_write(wsi, r->body + LWS_PRE, r->len, LWS_WRITE_HTTP_FINAL) < (int)r->len)
            return -1;
        return 0;
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
        answer(r, (int)lws_http_client_http_response(wsi));
        return 0;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP:
        return drain_body(wsi);
    case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
        return -1; /* the status was all we wanted */
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        pg_warn("auth http: %s: %s", r->url, in ? (const char *)in : "connection failed");
        r->wsi = NULL;
        if (r->connecting) { /* pg_http_post finishes it */
            r->failed = 1;
            return 0;
        }
        answer(r, PG_HTTP_FAILED);
        req_free(r);
        return 0;
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
        r->wsi = NULL;
        answer(r, PG_HTTP_FAILED);
        req_free(r);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {"pg-http-post", callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

struct pg_http_client *pg_http_client_new(struct lws_context *cx, const char *ca_file, char *err,
                                          size_t errlen) {
    struct pg_http_client *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct lws_context_creation_info vi;
    memset(&vi, 0, sizeof vi);
    vi.vhost_name = "http-client";
    vi.port = CONTEXT_PORT_NO_LISTEN;
    vi.protocols = protocols;
    vi.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    vi.client_ssl_ca_filepath = ca_file && *ca_file ? ca_file : NULL;
    c->cx = cx;
    c->vh = lws_create_vhost(cx, &vi);
    if (!c->vh) {
        snprintf(err, errlen, "cannot create the HTTP client");
        free(c);
        return NULL;
    }
    return c;
}

void pg_http_client_stop(struct pg_http_client *c) {
    if (c)
        c->stopped = 1;
}

void pg_http_client_free(struct pg_http_client *c) {
    if (!c)
        return;
    while (c->reqs) /* lws closed every connection with its context */
        req_free(c->reqs);
    free(c);
}

static struct req *req_new(struct pg_http_client *c, const char *url, const char *content_type,
                           const void *body, size_t len) {
    struct req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->c = c;
    r->url = strdup(url);
    r->body = malloc(LWS_PRE + len + 1);
    if (!r->url || !r->body) {
        free(r->url);
        free(r->body);
        free(r);
        return NULL;
    }
    memcpy(r->body + LWS_PRE, body, len);
    r->len = len;
    snprintf(r->content_type, sizeof r->content_type, "%s", content_type);
    r->next = c->reqs;
    c->reqs = r;
    return r;
}

int pg_http_post(struct pg_http_client *c, const char *url, const char *content_type,
                 const void *body, size_t len, int timeout_ms, pg_http_done done, void *ud) {
    struct req *r = req_new(c, url, content_type, body, len);
    if (!r)
        return -1;
    r->done = done;
    r->ud = ud;
    char *cut = strdup(url);
    const char *prot, *address, *path;
    int port;
    if (!cut || lws_parse_uri(cut, &prot, &address, &port, &path)) {
        free(cut);
        req_free(r);
        return -1;
    }
    snprintf(r->path, sizeof r->path, "/%s", path);
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = c->cx;
    ci.vhost = c->vh;
    ci.address = address;
    ci.port = port;
    ci.path = r->path;
    ci.host = address;
    ci.origin = address;
    ci.method = "POST";
    ci.protocol = protocols[0].name;
    ci.local_protocol_name = protocols[0].name;
    ci.ssl_connection = strcmp(prot, "https") ? 0 : LCCSCF_USE_SSL;
    ci.alpn = "http/1.1";
    ci.userdata = r;
    ci.pwsi = &r->wsi;
    r->connecting = 1;
    struct lws *wsi = lws_client_connect_via_info(&ci);
    r->connecting = 0;
    free(cut);
    if (!wsi || r->failed) {
        r->wsi = NULL;
        req_free(r);
        return -1;
    }
    lws_sul_schedule(c->cx, 0, &r->sul, on_timeout, (lws_usec_t)timeout_ms * LWS_US_PER_MS);
    return 0;
}
