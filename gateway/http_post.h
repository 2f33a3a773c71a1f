/* http_post.h - asynchronous HTTP(S) POSTs from the gateway's event loop.
 *
 * lws's own HTTP client does the work, so a request never blocks the loop: the
 * caller is told the response's status code (or that there was none) later, from
 * the loop. The HTTP auth backend (auth_http.c) is the user.
 */
#ifndef PG_HTTP_POST_H
#define PG_HTTP_POST_H

#include <stddef.h>

struct lws_context;
struct pg_http_client;

#define PG_HTTP_FAILED  -1 /* no connection, or it broke before a status line */
#define PG_HTTP_TIMEOUT -2

/* status: the HTTP status code, PG_HTTP_FAILED or PG_HTTP_TIMEOUT. */
typedef void (*pg_http_done)(void *ud, int status);

/* ca_file: the CAs an https server's certificate must chain to (NULL or "": the
 * system's). */
struct pg_http_client *pg_http_client_new(struct lws_context *cx, const char *ca_file, char *err,
                                          size_t errlen);
/* No callback is made after this: call it before the lws context is destroyed. */
void pg_http_client_stop(struct pg_http_client *c);
/* After the lws context is destroyed. */
void pg_http_client_free(struct pg_http_client *c);

/* POSTs body to url (http:// or https://). done is called exactly once, unless the
 * client is stopped first. Returns 0, or -1 when the request could not even start
 * (done is then not called). */
int pg_http_post(struct pg_http_client *c, const char *url, const char *content_type,
                 const void *body, size_t len, int timeout_ms, pg_http_done done, void *ud);

#endif
