/* passwd.c - mosquitto-format password files (see passwd.h): the parser, the
 * lookup table and the two hash schemes.
 *
 * Users live in one array sorted by name (bsearch), which loads 100k users in
 * a few milliseconds and needs no hashing of names. The parser follows
 * mosquitto 2.0's reader: the username is everything before the first ':' and
 * the hash everything after it, both trimmed of white space; the hash is split
 * on '$'. Where mosquitto would skip a line with a warning, we refuse the file.
 */
#include "broker/passwd.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

struct pw_entry {
    char *user;
    size_t line;
    int iterations; /* PBKDF2 rounds for $7$; 0 for $6$ (one salted SHA-512) */
    unsigned char salt[PG_PASSWD_SALT_LEN];
    unsigned char hash[PG_PASSWD_HASH_LEN];
};

struct pg_passwd {
    struct pw_entry *v; /* sorted by user once loaded */
    size_t n, cap;
    struct pw_entry dummy; /* hashed in place of unknown users */
};

enum line_kind { LINE_SKIP, LINE_NO_COLON, LINE_USER };

/* ---- Small text helpers ---- */

static int is_blank(char c) {
    return isspace((unsigned char)c);
}

static void trim(const char **s, size_t *n) {
    while (*n > 0 && is_blank(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_blank((*s)[*n - 1]))
        (*n)--;
}

/* Splits a line the way mosquitto does: username before the first ':', the hash
 * after it. A line whose first non-blank character is '#' is a comment. */
static enum line_kind split_line(const char *line, size_t len, const char **user, size_t *ulen,
                                 const char **rest, size_t *rlen) {
    const char *s = line;
    size_t n = len;
    trim(&s, &n);
    if (n == 0 || s[0] == '#')
        return LINE_SKIP;
    const char *colon = memchr(line, ':', len);
    if (!colon)
        return LINE_NO_COLON;
    *user = line;
    *ulen = (size_t)(colon - line);
    trim(user, ulen);
    *rest = colon + 1;
    *rlen = len - (size_t)(colon + 1 - line);
    trim(rest, rlen);
    return LINE_USER;
}

const char *pg_passwd_line_user(const char *line, size_t len, size_t *user_len) {
    const char *user, *rest;
    size_t rlen;
    if (split_line(line, len, &user, user_len, &rest, &rlen) != LINE_USER)
        return NULL;
    return user;
}

const char *pg_passwd_username_problem(const char *u) {
    size_t n = u ? strlen(u) : 0;
    if (n == 0)
        return "empty username";
    if (n > PG_PASSWD_MAX_USERNAME)
        return "username longer than 65535 bytes";
    for (size_t i = 0; i < n; i++) {
        if (u[i] == ':')
            return "username contains ':'";
        if (iscntrl((unsigned char)u[i]))
            return "username contains control characters";
    }
    if (u[0] == ' ' || u[n - 1] == ' ')
        return "username starts or ends with a space";
    if (u[0] == '#')
        return "username starts with '#'";
    return NULL;
}

/* ---- Base64 (standard alphabet, '=' padding optional, as OpenSSL's BIO
 * decoder in mosquitto accepts) ---- */

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Returns the decoded length, or -1 when s is not base64. out (want bytes) is
 * written only when the decoded length is exactly want. */
static long b64_decode(const char *s, size_t n, unsigned char *out, size_t want) {
    size_t pad = 0;
    while (pad < 2 && n > pad && s[n - 1 - pad] == '=')
        pad++;
    if (pad && n % 4)
        return -1;
    n -= pad;
    if (n == 0 || n % 4 == 1)
        return -1;
    size_t len = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    for (size_t i = 0; i < n; i++)
        if (b64_value((unsigned char)s[i]) < 0)
            return -1;
    if (len != want)
        return (long)len;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        acc = ((acc << 6) | (uint32_t)b64_value((unsigned char)s[i])) & 0xFFFFu;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return (long)len;
}

/* ---- Hashing ---- */

/* The hash a password would have under e's scheme, salt and rounds. */
static int digest(const struct pw_entry *e, const void *pw, size_t len,
                  unsigned char out[PG_PASSWD_HASH_LEN]) {
    if (len > INT_MAX)
        return -1;
    if (!pw)
        pw = "";
    if (e->iterations > 0)
        return PKCS5_PBKDF2_HMAC(pw, (int)len, e->salt, PG_PASSWD_SALT_LEN, e->iterations,
                                 EVP_sha512(), PG_PASSWD_HASH_LEN, out) == 1
                   ? 0
                   : -1;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned int olen = 0;
    int ok = c && EVP_DigestInit_ex(c, EVP_sha512(), NULL) && EVP_DigestUpdate(c, pw, len) &&
             EVP_DigestUpdate(c, e->salt, PG_PASSWD_SALT_LEN) &&
             EVP_DigestFinal_ex(c, out, &olen) && olen == PG_PASSWD_HASH_LEN;
    EVP_MD_CTX_free(c); /* also wipes the context */
    return ok ? 0 : -1;
}

int pg_passwd_make_hash(const char *password, size_t len, int iterations, char *out,
                        size_t outlen) {
    struct pw_entry e = {.iterations = iterations};
    char salt64[4 * ((PG_PASSWD_SALT_LEN + 2) / 3) + 1];
    char hash64[4 * ((PG_PASSWD_HASH_LEN + 2) / 3) + 1];
    int rc = -1;
    if (outlen)
        out[0] = '\0';
    if (iterations < 1 || RAND_bytes(e.salt, sizeof e.salt) != 1 ||
        digest(&e, password, len, e.hash) < 0)
        goto done;
    EVP_EncodeBlock((unsigned char *)salt64, e.salt, PG_PASSWD_SALT_LEN);
    EVP_EncodeBlock((unsigned char *)hash64, e.hash, PG_PASSWD_HASH_LEN);
    int w = snprintf(out, outlen, "$7$%d$%s$%s", iterations, salt64, hash64);
    if (w > 0 && (size_t)w < outlen)
        rc = 0;
    else if (outlen)
        out[0] = '\0';
done:
    OPENSSL_cleanse(&e, sizeof e);
    OPENSSL_cleanse(hash64, sizeof hash64);
    return rc;
}

/* ---- Parsing ---- */

/* Splits "$a$b$c..." into at most max fields; returns the count, or -1 when a
 * field is empty or there are too many. */
static int split_dollars(const char *h, size_t n, const char **f, size_t *fl, int max) {
    int k = 0;
    size_t i = 1; /* past the leading '$' */
    while (i <= n) {
        const char *end = memchr(h + i, '$', n - i);
        size_t flen = end ? (size_t)(end - (h + i)) : n - i;
        if (flen == 0 || k == max)
            return -1;
        f[k] = h + i;
        fl[k++] = flen;
        i += flen + 1;
    }
    return k;
}

/* A positive decimal int: mosquitto uses atoi and wants >= 1. */
static int parse_iterations(const char *s, size_t n) {
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
        if (v > INT_MAX)
            return -1;
    }
    return v >= 1 ? (int)v : -1;
}

static int decode_field(const char *s, size_t n, unsigned char *out, size_t want, const char *what,
                        char *why, size_t wl) {
    long got = b64_decode(s, n, out, want);
    if (got < 0)
        snprintf(why, wl, "bad base64 %s", what);
    else if ((size_t)got != want)
        snprintf(why, wl, "%s is %ld bytes, not %zu", what, got, want);
    return got == (long)want ? 0 : -1;
}

static int parse_hash(const char *h, size_t n, struct pw_entry *e, char *why, size_t wl) {
    int is7 = n >= 3 && !memcmp(h, "$7$", 3);
    int is6 = n >= 3 && !memcmp(h, "$6$", 3);
    if (!is7 && !is6) {
        snprintf(why, wl, "unknown hash type");
        return -1;
    }
    const char *f[4];
    size_t fl[4];
    if (split_dollars(h, n, f, fl, 4) != (is7 ? 4 : 3)) {
        snprintf(why, wl, "%s", is7 ? "malformed $7$ hash" : "malformed $6$ hash");
        return -1;
    }
    int salt_at = is7 ? 2 : 1;
    e->iterations = is7 ? parse_iterations(f[1], fl[1]) : 0;
    if (e->iterations < 0) {
        snprintf(why, wl, "bad iteration count");
        return -1;
    }
    if (decode_field(f[salt_at], fl[salt_at], e->salt, PG_PASSWD_SALT_LEN, "salt", why, wl) < 0)
        return -1;
    return decode_field(f[salt_at + 1], fl[salt_at + 1], e->hash, PG_PASSWD_HASH_LEN, "hash", why,
                        wl);
}

static int push_entry(pg_passwd *p, const struct pw_entry *e, const char *user, size_t ulen) {
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        struct pw_entry *v = realloc(p->v, cap * sizeof *v);
        if (!v)
            return -1;
        p->v = v;
        p->cap = cap;
    }
    char *name = malloc(ulen + 1);
    if (!name)
        return -1;
    memcpy(name, user, ulen);
    name[ulen] = '\0';
    p->v[p->n] = *e;
    p->v[p->n++].user = name;
    return 0;
}

/* One line of the file: 0 when fine (or skipped), -1 with a reason in why. */
static int parse_line(pg_passwd *p, const char *line, size_t len, size_t lineno, char *why,
                      size_t wl) {
    const char *user, *hash;
    size_t ulen, hlen;
    if (memchr(line, '\0', len)) {
        snprintf(why, wl, "NUL byte in line");
        return -1;
    }
    enum line_kind kind = split_line(line, len, &user, &ulen, &hash, &hlen);
    const char *problem = NULL;
    if (kind == LINE_SKIP)
        return 0;
    if (kind == LINE_NO_COLON)
        problem = "missing ':'";
    else if (ulen == 0)
        problem = "empty username";
    else if (ulen > PG_PASSWD_MAX_USERNAME)
        problem = "username longer than 65535 bytes";
    else if (hlen == 0)
        problem = "missing password hash";
    else if (memchr(hash, ':', hlen))
        problem = "unexpected ':' after the hash";
    if (problem) {
        snprintf(why, wl, "%s", problem);
        return -1;
    }
    struct pw_entry e = {.line = lineno};
    if (parse_hash(hash, hlen, &e, why, wl) < 0)
        return -1;
    if (push_entry(p, &e, user, ulen) < 0) {
        snprintf(why, wl, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- The table ---- */

static int cmp_entry(const void *a, const void *b) {
    const struct pw_entry *x = a, *y = b;
    int c = strcmp(x->user, y->user);
    if (c)
        return c;
    return x->line < y->line ? -1 : x->line > y->line;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return x < y ? -1 : x > y;
}

/* Unknown users are hashed with the scheme and rounds most users have, so a
 * failed login for a missing name takes as long as one for a typical user. */
static void set_dummy(pg_passwd *p) {
    p->dummy.iterations = PG_PASSWD_DEFAULT_ITERATIONS;
    int *it = p->n ? malloc(p->n * sizeof *it) : NULL;
    if (!it)
        return;
    for (size_t i = 0; i < p->n; i++)
        it[i] = p->v[i].iterations;
    qsort(it, p->n, sizeof *it, cmp_int);
    size_t best = 0, run = 0;
    for (size_t i = 0; i < p->n; i++) {
        run = i > 0 && it[i] == it[i - 1] ? run + 1 : 1;
        if (run > best) {
            best = run;
            p->dummy.iterations = it[i];
        }
    }
    free(it);
}

/* Sorts the users and rejects the earliest line that repeats a name. */
static int finish(pg_passwd *p, const char *path, char *err, size_t errlen) {
    if (p->n)
        qsort(p->v, p->n, sizeof *p->v, cmp_entry);
    size_t dup = 0, first = 0;
    for (size_t i = 1, start = 0; i < p->n; i++) {
        if (strcmp(p->v[i].user, p->v[start].user)) {
            start = i;
            continue;
        }
        if (!dup || p->v[i].line < p->v[dup].line) {
            dup = i;
            first = start;
        }
    }
    if (dup) {
        snprintf(err, errlen, "%s:%zu: duplicate user '%s' (first on line %zu)", path,
                 p->v[dup].line, p->v[dup].user, p->v[first].line);
        return -1;
    }
    set_dummy(p);
    return 0;
}

static int read_lines(pg_passwd *p, FILE *f, const char *path, char *err, size_t errlen) {
    char *line = NULL, why[160];
    size_t cap = 0, lineno = 0;
    ssize_t got;
    int rc = 0;
    while (rc == 0 && (got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (parse_line(p, line, (size_t)got, lineno, why, sizeof why) < 0) {
            snprintf(err, errlen, "%s:%zu: %s", path, lineno, why);
            rc = -1;
        }
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        rc = -1;
    }
    free(line);
    return rc;
}

pg_passwd *pg_passwd_load(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    pg_passwd *p = calloc(1, sizeof *p);
    int rc = -1;
    if (!p)
        snprintf(err, errlen, "%s: out of memory", path);
    else if (read_lines(p, f, path, err, errlen) == 0)
        rc = finish(p, path, err, errlen);
    fclose(f);
    if (rc < 0) {
        pg_passwd_free(p);
        return NULL;
    }
    return p;
}

void pg_passwd_free(pg_passwd *p) {
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i].user);
    if (p->v)
        OPENSSL_cleanse(p->v, p->cap * sizeof *p->v);
    free(p->v);
    free(p);
}

static const struct pw_entry *find(const pg_passwd *p, const char *username) {
    if (!p || !username || !p->n)
        return NULL;
    size_t lo = 0, hi = p->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(username, p->v[mid].user);
        if (c == 0)
            return &p->v[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

int pg_passwd_has_user(const pg_passwd *p, const char *username) {
    return find(p, username) != NULL;
}

size_t pg_passwd_count(const pg_passwd *p) {
    return p ? p->n : 0;
}

int pg_passwd_check(const pg_passwd *p, const char *username, const void *password, size_t len) {
    if (!p)
        return 0;
    const struct pw_entry *e = find(p, username);
    const struct pw_entry *use = e ? e : &p->dummy;
    unsigned char out[PG_PASSWD_HASH_LEN];
    /* Always hash and compare, so a missing user costs what a wrong password
     * does; only then let the lookup result decide. */
    int match = digest(use, password, len, out) == 0 &&
                CRYPTO_memcmp(out, use->hash, PG_PASSWD_HASH_LEN) == 0;
    OPENSSL_cleanse(out, sizeof out);
    return e != NULL && match;
}
