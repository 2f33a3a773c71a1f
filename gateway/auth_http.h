/* auth_http.h - authentication and access control by an external HTTP service,
 * as EMQX's auth_http: the same for every protocol, because it is a broker hook.
 *
 * A client with a username is allowed when the service answers `url` with 2xx and
 * refused with 4xx; each publish and each subscription is checked with `acl_url`
 * the same way. Requests are asynchronous (the client waits, nobody else does) and
 * answers are cached. Register it before the file-based hooks (auth.h): its login
 * verdict is final, while an ACL "allow" still lets an ACL file refuse.
 */
#ifndef PG_AUTH_HTTP_H
#define PG_AUTH_HTTP_H

#include <stddef.h>

#include "broker/broker.h"

struct lws_context;

struct pg_auth_http_config {
    const char *url;     /* NULL or "": logins are not checked here */
    const char *acl_url; /* NULL or "": publish/subscribe are not checked here */
    int timeout_ms;
    int cache_seconds;   /* 0: an answer serves only the question that asked it */
    int cache_size;      /* answers kept */
    int allow_on_error;  /* the verdict when the service fails or times out */
    int json;            /* body as JSON instead of a form */
    const char *ca_file; /* NULL or "": the system's CAs verify an https service */
};

typedef struct pg_auth_http pg_auth_http;

/* Registers the hooks on b. Returns NULL with err set. */
pg_auth_http *pg_auth_http_new(pg_broker *b, struct lws_context *cx,
                               const struct pg_auth_http_config *c, char *err, size_t errlen);
/* Forgets every cached answer (SIGHUP: the service's rules may have changed). */
void pg_auth_http_clear_cache(pg_auth_http *h);
/* Before the lws context is destroyed: no answers after this. */
void pg_auth_http_stop(pg_auth_http *h);
/* After the broker and the lws context are gone. */
void pg_auth_http_free(pg_auth_http *h);

#endif
