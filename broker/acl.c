/* acl.c - mosquitto-compatible ACL files (see acl.h for the format and semantics).
 *
 * Loading turns the file into three rule sets: the anonymous section, one section
 * per user (in an open-addressing hash table keyed by name, so a check costs one
 * lookup however many users there are) and the patterns. Each set keeps its deny
 * entries apart from its allowing ones, because mosquitto tries every deny entry
 * first, whatever its position in the file.
 *
 * A check walks the client's section and then the patterns, matching with
 * pg_topic_matches (trie.h) so that ACLs and subscriptions agree on MQTT matching,
 * the '$' rule included. Nothing is allocated unless a pattern expands beyond a
 * stack buffer.
 */
#include "broker/acl.h"

#include "broker/broker.h"
#include "broker/trie.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* mosquitto's limits for a topic filter (mosquitto_sub_topic_check in the broker). */
#define ACL_TOPIC_MAX   65535
#define ACL_SLASHES_MAX 200

/* Which substitutions a pattern contains. */
#define SUBST_C 1
#define SUBST_U 2

#define RW (PG_ACCESS_READ | PG_ACCESS_WRITE)

struct acl_entry {
    char *topic; /* NUL-terminated */
    size_t len;
    int access; /* PG_ACCESS_READ and/or PG_ACCESS_WRITE; 0 for deny entries */
    int subst;  /* SUBST_* (patterns only) */
};

struct acl_list {
    struct acl_entry *v;
    size_t n, cap;
};

/* One section of the file. */
struct acl_rules {
    struct acl_list deny;
    struct acl_list allow;
};

struct acl_user {
    char *name;
    uint32_t hash;
    struct acl_rules rules;
};

struct pg_acl {
    struct acl_rules anon;     /* topic lines before the first user line */
    struct acl_rules patterns; /* pattern lines, wherever they are */
    struct acl_user **slots;   /* hash table, nslots a power of two, at most half full */
    size_t nslots, nusers;
    int strict_subscribe;
};

/* ---- rule storage ---- */

static int list_push(struct acl_list *l, const char *topic, int access, int subst) {
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 4;
        struct acl_entry *nv = realloc(l->v, ncap * sizeof(*nv));
        if (!nv)
            return -1;
        l->v = nv;
        l->cap = ncap;
    }
    char *copy = strdup(topic);
    if (!copy)
        return -1;
    l->v[l->n++] = (struct acl_entry){copy, strlen(copy), access, subst};
    return 0;
}

static void list_free(struct acl_list *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].topic);
    free(l->v);
}

static void rules_free(struct acl_rules *r) {
    list_free(&r->deny);
    list_free(&r->allow);
}

static int rules_add(struct acl_rules *r, const char *topic, int access, int subst) {
    return list_push(access ? &r->allow : &r->deny, topic, access, subst);
}

/* ---- users by name ---- */

static uint32_t name_hash(const char *s) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static struct acl_user *user_find(const pg_acl *a, const char *name) {
    if (!a->nslots)
        return NULL;
    uint32_t h = name_hash(name);
    for (size_t i = h & (a->nslots - 1);; i = (i + 1) & (a->nslots - 1)) {
        struct acl_user *u = a->slots[i];
        if (!u)
            return NULL;
        if (u->hash == h && strcmp(u->name, name) == 0)
            return u;
    }
}

static void slots_put(struct acl_user **slots, size_t nslots, struct acl_user *u) {
    size_t i = u->hash & (nslots - 1);
    while (slots[i])
        i = (i + 1) & (nslots - 1);
    slots[i] = u;
}

static int users_grow(pg_acl *a) {
    size_t n = a->nslots ? a->nslots * 2 : 16;
    struct acl_user **slots = calloc(n, sizeof(*slots));
    if (!slots)
        return -1;
    for (size_t i = 0; i < a->nslots; i++)
        if (a->slots[i])
            slots_put(slots, n, a->slots[i]);
    free(a->slots);
    a->slots = slots;
    a->nslots = n;
    return 0;
}

/* A `user` line for a name seen before reopens that section, as in mosquitto. */
static struct acl_user *user_get(pg_acl *a, const char *name) {
    struct acl_user *u = user_find(a, name);
    if (u)
        return u;
    if ((a->nusers + 1) * 2 > a->nslots && users_grow(a) < 0)
        return NULL;
    u = calloc(1, sizeof(*u));
    if (!u || !(u->name = strdup(name))) {
        free(u);
        return NULL;
    }
    u->hash = name_hash(name);
    slots_put(a->slots, a->nslots, u);
    a->nusers++;
    return u;
}

void pg_acl_free(pg_acl *a) {
    if (!a)
        return;
    for (size_t i = 0; i < a->nslots; i++) {
        struct acl_user *u = a->slots[i];
        if (u) {
            rules_free(&u->rules);
            free(u->name);
            free(u);
        }
    }
    free(a->slots);
    rules_free(&a->anon);
    rules_free(&a->patterns);
    free(a);
}

void pg_acl_set_strict_subscribe(pg_acl *a, int strict) {
    a->strict_subscribe = strict != 0;
}

/* ---- parsing ---- */

struct parser {
    pg_acl *a;
    const char *path;
    unsigned long line;
    struct acl_rules *section; /* where topic lines go */
    char *err;
    size_t errlen;
};

static int fail(struct parser *p, const char *fmt, ...) {
    if (p->err && p->errlen) {
        int n = snprintf(p->err, p->errlen, "%s:%lu: ", p->path, p->line);
        if (n >= 0 && (size_t)n < p->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

/* strtok(" ") as mosquitto uses it: skips spaces, cuts the token at the next space
 * and leaves *cur just past it. Only ' ' separates: a tab is part of a token. */
static char *next_token(char **cur) {
    char *s = *cur;
    while (*s == ' ')
        s++;
    if (!*s) {
        *cur = s;
        return NULL;
    }
    char *end = strchr(s, ' ');
    if (end) {
        *end = '\0';
        *cur = end + 1;
    } else {
        *cur = s + strlen(s);
    }
    return s;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* A valid subscription filter, as mosquitto requires of every ACL topic. */
static int filter_ok(const char *t) {
    size_t len = strlen(t), slashes = 0;
    if (len == 0 || len > ACL_TOPIC_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        int starts = i == 0 || t[i - 1] == '/';
        if (t[i] == '/')
            slashes++;
        else if (t[i] == '+' && (!starts || (t[i + 1] && t[i + 1] != '/')))
            return 0;
        else if (t[i] == '#' && (!starts || t[i + 1]))
            return 0;
    }
    return slashes <= ACL_SLASHES_MAX;
}

static int parse_access(const char *s, int *access) {
    if (!strcmp(s, "read"))
        *access = PG_ACCESS_READ;
    else if (!strcmp(s, "write"))
        *access = PG_ACCESS_WRITE;
    else if (!strcmp(s, "readwrite"))
        *access = RW;
    else if (!strcmp(s, "deny"))
        *access = 0;
    else
        return -1;
    return 0;
}

/* "topic|pattern [ACCESS] TOPIC". As in mosquitto, a single word after the keyword
 * is the topic (so `topic read` grants readwrite on the topic "read"), and with two
 * or more the first is the access and the rest, trimmed, the topic. */
static int parse_rule(struct parser *p, char *cur, int pattern) {
    char *access_s = next_token(&cur);
    if (!access_s)
        return fail(p, "missing topic");
    char *topic = access_s;
    int access = RW;
    if (*cur) {
        topic = trim(cur);
        if (parse_access(access_s, &access) < 0)
            return fail(p, "invalid access \"%s\" (read, write, readwrite or deny)", access_s);
    }
    if (!filter_ok(topic))
        return fail(p, "invalid ACL topic \"%s\"", topic);
    int subst = 0;
    if (pattern)
        subst = (strstr(topic, "%c") ? SUBST_C : 0) | (strstr(topic, "%u") ? SUBST_U : 0);
    if (rules_add(pattern ? &p->a->patterns : p->section, topic, access, subst) < 0)
        return fail(p, "out of memory");
    return 0;
}

/* "user NAME": the name is the rest of the line, trimmed; it may contain spaces. */
static int parse_user(struct parser *p, char *cur) {
    char *name = trim(cur);
    if (!*name)
        return fail(p, "missing username");
    struct acl_user *u = user_get(p->a, name);
    if (!u)
        return fail(p, "out of memory");
    p->section = &u->rules;
    return 0;
}

static int parse_line(struct parser *p, char *line) {
    size_t n = strlen(line);
    while (n > 0 && isspace((unsigned char)line[n - 1]))
        line[--n] = '\0';
    if (line[0] == '#') /* only in the first column: "  # x" is an error in mosquitto */
        return 0;
    char *cur = line;
    char *kw = next_token(&cur);
    if (!kw)
        return 0;
    if (!strcmp(kw, "topic") || !strcmp(kw, "pattern"))
        return parse_rule(p, cur, kw[0] == 'p');
    if (!strcmp(kw, "user"))
        return parse_user(p, cur);
    if (kw[0] == '#')
        return fail(p, "unknown keyword \"%s\" (a comment's # must be the first character)", kw);
    return fail(p, "unknown keyword \"%s\" (topic, pattern or user)", kw);
}

static int parse_file(struct parser *p, FILE *f) {
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    errno = 0;
    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        p->line++;
        rc = parse_line(p, line);
    }
    if (rc == 0 && ferror(f)) {
        snprintf(p->err, p->errlen, "%s: %s", p->path, strerror(errno ? errno : EIO));
        rc = -1;
    }
    free(line);
    return rc;
}

pg_acl *pg_acl_load(const char *path, char *err, size_t errlen) {
    char dummy[1];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    pg_acl *a = calloc(1, sizeof(*a));
    if (!a) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    struct parser p = {.a = a, .path = path, .section = &a->anon, .err = err, .errlen = errlen};
    int rc = parse_file(&p, f);
    fclose(f);
    if (rc < 0) {
        pg_acl_free(a);
        return NULL;
    }
    return a;
}

/* ---- checking ---- */

/* Does topic (READ/WRITE) or filter (strict SUBSCRIBE) t fall under ACL filter acl? */
typedef int (*acl_match_fn)(const char *acl, size_t alen, const char *t, size_t tlen);

struct query {
    const char *cid, *user; /* user NULL = anonymous */
    size_t clen, ulen;
    int cid_slash, user_slash;
    int need; /* the access bit an allowing entry must grant */
    acl_match_fn match;
    const char *t;
    size_t tlen;
};

static size_t level_end(const char *s, size_t len, size_t pos) {
    const char *p = pos < len ? memchr(s + pos, '/', len - pos) : NULL;
    return p ? (size_t)(p - s) : len;
}

static int level_is(const char *s, size_t len, char c) {
    return len == 1 && s[0] == c;
}

/* Strict SUBSCRIBE: does every topic that filter f matches also match ACL filter a?
 * Level by level: '#' in a covers the rest of f (and f ending one level short, as
 * "a/#" matches "a"); '+' covers any one level of f but '#'; a literal only itself.
 * The '$' rule: a wildcard first level in a does not cover f's literal "$..." one. */
static int acl_covers(const char *a, size_t alen, const char *f, size_t flen) {
    size_t ap = 0, fp = 0; /* fp == flen + 1: f used up */
    for (int first = 1;; first = 0) {
        size_t ae = level_end(a, alen, ap);
        int a_multi = level_is(a + ap, ae - ap, '#');
        if (fp > flen)
            return a_multi;
        size_t fe = level_end(f, flen, fp);
        const char *fl = f + fp;
        size_t fn = fe - fp;
        int dollar = first && fn > 0 && fl[0] == '$';
        if (a_multi)
            return !dollar;
        if (level_is(a + ap, ae - ap, '+')) {
            if (dollar || level_is(fl, fn, '#'))
                return 0;
        } else if (ae - ap != fn || memcmp(a + ap, fl, fn) != 0) {
            return 0;
        }
        fp = fe + 1;
        if (ae == alen)
            return fp > flen;
        ap = ae + 1;
    }
}

/* Any entry of l matching the query and granting need (0 = any entry)? */
static int list_hits(const struct acl_list *l, const struct query *q, int need) {
    for (size_t i = 0; i < l->n; i++) {
        const struct acl_entry *e = &l->v[i];
        if ((!need || (e->access & need)) && q->match(e->topic, e->len, q->t, q->tlen))
            return 1;
    }
    return 0;
}

/* The client's own section: 0 refused, 1 allowed, -1 no opinion. */
static int section_decides(const struct acl_rules *r, const struct query *q) {
    if (list_hits(&r->deny, q, 0))
        return 0;
    return list_hits(&r->allow, q, q->need) ? 1 : -1;
}

/* Writes pattern e with %c and %u replaced into out (expanded_len bytes); the same
 * left-to-right scan as mosquitto's, so "%%c" is '%' followed by the client id. */
static size_t expand(const struct acl_entry *e, const struct query *q, char *out) {
    size_t n = 0;
    for (size_t i = 0; i < e->len; i++) {
        char next = i + 1 < e->len && e->topic[i] == '%' ? e->topic[i + 1] : 0;
        if (next == 'c' || (next == 'u' && q->user)) {
            const char *v = next == 'c' ? q->cid : q->user;
            size_t vlen = next == 'c' ? q->clen : q->ulen;
            if (out)
                memcpy(out + n, v, vlen);
            n += vlen;
            i++;
        } else {
            if (out)
                out[n] = e->topic[i];
            n++;
        }
    }
    return n;
}

/* 1 if pattern e matches, 0 if not, -1 on allocation failure. */
static int pattern_hits(const struct acl_entry *e, const struct query *q) {
    if ((e->subst & SUBST_U) && !q->user)
        return 0; /* %u never matches an anonymous client */
    if (!e->subst)
        return q->match(e->topic, e->len, q->t, q->tlen);
    char stack[256];
    size_t n = expand(e, q, NULL);
    char *buf = n <= sizeof(stack) ? stack : malloc(n);
    if (!buf)
        return -1;
    expand(e, q, buf);
    int hit = q->match(buf, n, q->t, q->tlen);
    if (buf != stack)
        free(buf);
    return hit;
}

/* An allowing pattern must not substitute a value containing '/': it would reach
 * into levels below the one the pattern names (see acl.h). */
static int slash_blocked(const struct acl_entry *e, const struct query *q) {
    return ((e->subst & SUBST_C) && q->cid_slash) || ((e->subst & SUBST_U) && q->user_slash);
}

static int patterns_decide(const struct acl_rules *r, const struct query *q) {
    if (!r->deny.n && !r->allow.n)
        return 0;
    /* With patterns in use mosquitto refuses these clients everything (CVE-2017-7650):
     * "+" or "#" substituted into a pattern would act as a wildcard. */
    if (strpbrk(q->cid, "+#") || (q->user && strpbrk(q->user, "+#")))
        return 0;
    for (size_t i = 0; i < r->deny.n; i++)
        if (pattern_hits(&r->deny.v[i], q) != 0)
            return 0; /* a hit, or no memory to tell: refuse */
    for (size_t i = 0; i < r->allow.n; i++) {
        const struct acl_entry *e = &r->allow.v[i];
        if (!(e->access & q->need) || slash_blocked(e, q))
            continue;
        int hit = pattern_hits(e, q);
        if (hit)
            return hit > 0;
    }
    return 0;
}

static int decide(const pg_acl *a, const struct query *q) {
    const struct acl_rules *own = &a->anon;
    if (q->user) {
        const struct acl_user *u = user_find(a, q->user);
        own = u ? &u->rules : NULL;
    }
    int rc = own ? section_decides(own, q) : -1;
    return rc >= 0 ? rc : patterns_decide(&a->patterns, q);
}

static int starts_with(const char *t, size_t len, const char *prefix) {
    size_t n = strlen(prefix);
    return len >= n && memcmp(t, prefix, n) == 0;
}

/* mosquitto's checks on '$' topics before any ACL is consulted (READ and WRITE). */
static int dollar_allowed(int access, const char *t, size_t len) {
    static const char bridge_state[] = "$SYS/broker/connection/+/state";
    if (starts_with(t, len, "$SYS"))
        return access != PG_ACCESS_WRITE ||
               pg_topic_matches(bridge_state, sizeof(bridge_state) - 1, t, len);
    return !starts_with(t, len, "$share");
}

int pg_acl_check(const pg_acl *a, const char *client_id, const char *username, int access,
                 const char *topic, size_t topic_len) {
    if (!a || !client_id || !topic || topic_len == 0)
        return 0;
    if (username && !*username)
        username = NULL;
    struct query q = {.cid = client_id,
                      .user = username,
                      .clen = strlen(client_id),
                      .ulen = username ? strlen(username) : 0,
                      .cid_slash = strchr(client_id, '/') != NULL,
                      .user_slash = username && strchr(username, '/'),
                      .need = access,
                      .match = pg_topic_matches,
                      .t = topic,
                      .tlen = topic_len};
    if (access == PG_ACCESS_SUBSCRIBE) {
        if (!a->strict_subscribe)
            return 1;
        const char *group;
        size_t glen;
        if (pg_share_split(topic, topic_len, &group, &glen, &q.t, &q.tlen) < 0)
            return 0;
        q.need = PG_ACCESS_READ;
        q.match = acl_covers;
        return decide(a, &q);
    }
    if (access != PG_ACCESS_READ && access != PG_ACCESS_WRITE)
        return 0;
    if (!dollar_allowed(access, topic, topic_len))
        return 0;
    return decide(a, &q);
}
