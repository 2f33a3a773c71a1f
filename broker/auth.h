/* auth.h - built-in authentication and access control, the same for every protocol.
 *
 * Turns a mosquitto-format password file, a mosquitto-format ACL file and the
 * allow_anonymous settings (global, and per protocol group) into broker hooks, so
 * every adapter is checked by the same rules through the core. SIGHUP re-reads the
 * files; a file with an error leaves the old rules in force.
 */
#ifndef PG_AUTH_H
#define PG_AUTH_H

#include <stddef.h>

#include "broker/broker.h"

#define PG_AUTH_MAX_GROUPS 8

struct pg_auth_config {
    int allow_anonymous;       /* for protocols without an override */
    const char *password_file; /* NULL or "" = none: any username is accepted */
    const char *acl_file;      /* NULL or "" = none: all access allowed */
    struct {
        const char *protocol; /* as in pg_identity.protocol: "mqtt", "coap", ... */
        int allow_anonymous;  /* -1 = use the global setting */
    } groups[PG_AUTH_MAX_GROUPS];
    int n_groups;
};

typedef struct pg_auth pg_auth;

/* Loads the files and registers the hooks on b (free b before the pg_auth). Returns
 * NULL with "FILE:LINE: problem" in err. */
pg_auth *pg_auth_new(pg_broker *b, const struct pg_auth_config *c, char *err, size_t errlen);
/* Re-reads both files. Returns 0, or -1 with err set and the old rules kept. */
int pg_auth_reload(pg_auth *a, char *err, size_t errlen);
void pg_auth_free(pg_auth *a);

#endif
