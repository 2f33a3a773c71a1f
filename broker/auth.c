/* auth.c - see auth.h. The hooks answer only what they know: with no password file
 * any username passes, with no ACL file the authorize hook is not even registered
 * (so deliveries pay no per-message check), and anonymous clients are decided by
 * the protocol group's allow_anonymous or else the global one.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/acl.h"
#include "broker/auth.h"
#include "broker/passwd.h"

struct pg_auth {
    struct pg_auth_config c; /* strings owned */
    pg_passwd *passwd;
    pg_acl *acl;
};

static int is_set(const char *s) {
    return s && *s;
}

static int anonymous_allowed(const pg_auth *a, const char *protocol) {
    for (int i = 0; i < a->c.n_groups; i++)
        if (protocol && !strcmp(a->c.groups[i].protocol, protocol) &&
            a->c.groups[i].allow_anonymous >= 0)
            return a->c.groups[i].allow_anonymous;
    return a->c.allow_anonymous;
}

static int authenticate(void *ud, const struct pg_identity *id, const void *password, size_t len,
                        int has_password) {
    const pg_auth *a = ud;
    if (!id->username)
        return anonymous_allowed(a, id->protocol) ? PG_HOOK_ALLOW : PG_RC_NOT_AUTHORIZED;
    /* The transport verified a client certificate and made its CN the username. */
    if (!a->passwd || (id->cert_cn && !strcmp(id->cert_cn, id->username)))
        return PG_HOOK_ALLOW;
    if (!has_password) { /* no password: only an empty one could match */
        password = "";
        len = 0;
    }
    return pg_passwd_check(a->passwd, id->username, password, len) ? PG_HOOK_ALLOW
                                                                   : PG_RC_BAD_USERNAME_OR_PASSWORD;
}

static int authorize(void *ud, const struct pg_identity *id, int access, const char *topic,
                     size_t len) {
    const pg_auth *a = ud;
    if (!a->acl)
        return PG_HOOK_PASS;
    return pg_acl_check(a->acl, id->client_id, id->username, access, topic, len)
               ? PG_HOOK_ALLOW
               : PG_RC_NOT_AUTHORIZED;
}

/* Loads whichever files are configured; on error nothing is replaced. */
static int load_files(pg_auth *a, char *err, size_t errlen) {
    pg_passwd *pw = NULL;
    pg_acl *acl = NULL;
    if (is_set(a->c.password_file) && !(pw = pg_passwd_load(a->c.password_file, err, errlen)))
        return -1;
    if (is_set(a->c.acl_file) && !(acl = pg_acl_load(a->c.acl_file, err, errlen))) {
        if (pw)
            pg_passwd_free(pw);
        return -1;
    }
    if (acl) /* a subscription must lie inside a readable entry (mosquitto 2.1's rule) */
        pg_acl_set_strict_subscribe(acl, 1);
    if (a->passwd)
        pg_passwd_free(a->passwd);
    if (a->acl)
        pg_acl_free(a->acl);
    a->passwd = pw;
    a->acl = acl;
    return 0;
}

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

pg_auth *pg_auth_new(pg_broker *b, const struct pg_auth_config *c, char *err, size_t errlen) {
    pg_auth *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->c = *c;
    a->c.password_file = dup_or_null(c->password_file);
    a->c.acl_file = dup_or_null(c->acl_file);
    for (int i = 0; i < c->n_groups; i++)
        a->c.groups[i].protocol = dup_or_null(c->groups[i].protocol);
    struct pg_hooks h = {.authenticate = authenticate, .ud = a};
    if (is_set(c->acl_file))
        h.authorize = authorize;
    if (load_files(a, err, errlen) < 0 || pg_broker_add_hooks(b, &h) < 0) {
        pg_auth_free(a);
        return NULL;
    }
    return a;
}

int pg_auth_reload(pg_auth *a, char *err, size_t errlen) {
    return load_files(a, err, errlen);
}

void pg_auth_free(pg_auth *a) {
    if (!a)
        return;
    if (a->passwd)
        pg_passwd_free(a->passwd);
    if (a->acl)
        pg_acl_free(a->acl);
    free((char *)a->c.password_file);
    free((char *)a->c.acl_file);
    for (int i = 0; i < a->c.n_groups; i++)
        free((char *)a->c.groups[i].protocol);
    free(a);
}
