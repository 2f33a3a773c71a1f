/* fuzz_trie.c - libFuzzer target for the subscription trie and the retained store.
 *
 * The input is a little program: subscribe, unsubscribe and match on a pg_trie, and
 * set/clear and match on a pg_retain, with filters and topics built from a small set
 * of tokens ("a", "/", "+", "#", "$", "$share/g/", ...) so that overlaps, empty
 * levels and shared groups come up often. A plain list of what was stored is kept
 * as the model, and every result is checked against it using pg_topic_matches, which
 * is itself checked against ref_match, a direct transcription of MQTT 5.0 4.7 over
 * split levels. Every string is passed in an exact-length heap buffer so ASan
 * catches reads past the length.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. broker/topic_tree.c \
 *       broker/trie.c broker/retain.c tests/fuzz/fuzz_trie.c -o fuzz_trie
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/retain.h"
#include "broker/trie.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

#define MAXSTR  192
#define MAXSUBS 128
#define NOWNERS 6
#define NVALUES 4

/* ---- input ---- */

struct input {
    const uint8_t *p;
    size_t n;
};

static uint8_t next_byte(struct input *in) {
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

static const char *const tokens[] = {"a",  "b",    "/",         "/",         "+",       "#", "$",
                                     "ab", "$SYS", "$share/g/", "$share/h/", "$share/", "",  "c/"};

/* A string of up to 15 tokens; returns its length. */
static size_t next_string(struct input *in, char *out) {
    size_t len = 0, ntok = next_byte(in) % 16;
    for (size_t i = 0; i < ntok; i++) {
        const char *t = tokens[next_byte(in) % (sizeof(tokens) / sizeof(tokens[0]))];
        size_t tl = strlen(t);
        memcpy(out + len, t, tl);
        len += tl;
    }
    return len;
}

static char *heap_copy(const char *s, size_t len) {
    char *p = malloc(len ? len : 1);
    if (len)
        memcpy(p, s, len);
    return p;
}

/* ---- reference matcher: MQTT 5.0 section 4.7 over split levels ---- */

struct levels {
    size_t n;
    const char *s[MAXSTR + 1];
    size_t len[MAXSTR + 1];
};

static void split(const char *s, size_t len, struct levels *lv) {
    size_t start = 0;
    lv->n = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '/') {
            lv->s[lv->n] = s + start;
            lv->len[lv->n++] = i - start;
            start = i + 1;
        }
    }
}

static int level_is(const struct levels *lv, size_t i, char c) {
    return lv->len[i] == 1 && lv->s[i][0] == c;
}

static int ref_match(const char *f, size_t flen, const char *t, size_t tlen) {
    static struct levels F, T;
    split(f, flen, &F);
    split(t, tlen, &T);
    int dollar = tlen > 0 && t[0] == '$';
    size_t i = 0;
    for (size_t j = 0; j < F.n; j++) {
        if (level_is(&F, j, '#'))
            return j == F.n - 1 && !(j == 0 && dollar);
        if (i == T.n)
            return 0;
        if (level_is(&F, j, '+')) {
            if (j == 0 && dollar)
                return 0;
        } else if (F.len[j] != T.len[i] || memcmp(F.s[j], T.s[i], F.len[j]) != 0) {
            return 0;
        }
        i++;
    }
    return i == T.n;
}

static int matches(const char *f, size_t flen, const char *t, size_t tlen) {
    char *fh = heap_copy(f, flen), *th = heap_copy(t, tlen);
    int m = pg_topic_matches(fh, flen, th, tlen);
    free(fh);
    free(th);
    CHECK(m == ref_match(f, flen, t, tlen));
    return m;
}

/* ---- the trie against its model ---- */

struct model_sub {
    char filter[MAXSTR];
    size_t flen;
    char group[MAXSTR];
    size_t glen;
    int shared, owner;
    uint32_t id;
};

static struct model_sub subs[MAXSUBS];
static size_t nsubs;
static uint32_t next_id;
static int owner_objs[NOWNERS];
static uint8_t online_mask;

static int owner_of(const void *p) {
    return (int)((const int *)p - owner_objs);
}

static int is_online(void *owner) {
    return (online_mask >> owner_of(owner)) & 1;
}

static int same_key(const struct model_sub *m, const char *f, size_t fl, const char *g, size_t gl,
                    int shared) {
    return m->flen == fl && memcmp(m->filter, f, fl) == 0 && m->shared == shared &&
           (!shared || (m->glen == gl && memcmp(m->group, g, gl) == 0));
}

static long model_find(const char *f, size_t fl, const char *g, size_t gl, int shared, int owner) {
    for (size_t i = 0; i < nsubs; i++)
        if (subs[i].owner == owner && same_key(&subs[i], f, fl, g, gl, shared))
            return (long)i;
    return -1;
}

/* Parses s like the broker: "$share/G/F" or a plain filter; 0 if malformed. */
static int parse_sub(const char *s, size_t len, const char **f, size_t *fl, const char **g,
                     size_t *gl) {
    int rc = pg_share_split(s, len, g, gl, f, fl);
    if (rc == 0) {
        *f = s;
        *fl = len;
        *g = NULL;
        *gl = 0;
    }
    return rc >= 0;
}

static void op_subscribe(pg_trie *t, struct input *in) {
    char buf[MAXSTR];
    int owner = next_byte(in) % NOWNERS;
    size_t len = next_string(in, buf);
    char *s = heap_copy(buf, len);
    const char *f, *g;
    size_t fl, gl;
    if (parse_sub(s, len, &f, &fl, &g, &gl) && nsubs < MAXSUBS) {
        long i = model_find(f, fl, g, gl, g != NULL, owner);
        struct pg_sub sub = {.owner = &owner_objs[owner], .sub_id = ++next_id};
        int rc = pg_trie_subscribe(t, f, fl, g, gl, &sub);
        CHECK(rc == (i >= 0 ? 1 : 0));
        struct model_sub *m = i >= 0 ? &subs[i] : &subs[nsubs++];
        memcpy(m->filter, f, fl);
        m->flen = fl;
        if (g)
            memcpy(m->group, g, gl);
        m->glen = gl;
        m->shared = g != NULL;
        m->owner = owner;
        m->id = sub.sub_id;
    }
    free(s);
}

static void op_unsubscribe(pg_trie *t, struct input *in) {
    char buf[MAXSTR];
    int owner = next_byte(in) % NOWNERS;
    size_t len = next_string(in, buf);
    /* Often pick an existing subscription, else the random string. */
    if (nsubs && (next_byte(in) & 1)) {
        struct model_sub *m = &subs[next_byte(in) % nsubs];
        owner = m->owner;
        len = 0;
        if (m->shared) {
            memcpy(buf, "$share/", 7);
            memcpy(buf + 7, m->group, m->glen);
            buf[7 + m->glen] = '/';
            len = 8 + m->glen;
        }
        memcpy(buf + len, m->filter, m->flen);
        len += m->flen;
    }
    char *s = heap_copy(buf, len);
    const char *f, *g;
    size_t fl, gl;
    if (parse_sub(s, len, &f, &fl, &g, &gl)) {
        long i = model_find(f, fl, g, gl, g != NULL, owner);
        int rc = pg_trie_unsubscribe(t, f, fl, g, gl, &owner_objs[owner]);
        CHECK(rc == (i >= 0 ? 0 : 1));
        if (i >= 0)
            subs[i] = subs[--nsubs];
    }
    free(s);
}

struct got {
    size_t n;
    uint32_t id[MAXSUBS];
    int shared[MAXSUBS];
};

static int collect_sub(void *ctx, const struct pg_sub *s, int shared) {
    struct got *g = ctx;
    CHECK(g->n < MAXSUBS);
    g->id[g->n] = s->sub_id;
    g->shared[g->n++] = shared;
    return 0;
}

static long model_by_id(uint32_t id) {
    for (size_t i = 0; i < nsubs; i++)
        if (subs[i].id == id)
            return (long)i;
    return -1;
}

/* Every reported subscription exists and matches; normal ones are reported once each;
 * each matching shared group yields exactly one member, online if any member is. */
static void op_match(pg_trie *t, struct input *in) {
    char buf[MAXSTR];
    size_t len = next_string(in, buf);
    char *topic = heap_copy(buf, len);
    struct got got = {0};
    pg_trie_match(t, topic, len, collect_sub, &got);
    int seen[MAXSUBS] = {0};
    for (size_t k = 0; k < got.n; k++) {
        long i = model_by_id(got.id[k]);
        CHECK(i >= 0 && got.shared[k] == subs[i].shared);
        CHECK(matches(subs[i].filter, subs[i].flen, buf, len));
        seen[i]++;
    }
    for (size_t i = 0; i < nsubs; i++) {
        int m = matches(subs[i].filter, subs[i].flen, buf, len);
        if (!subs[i].shared) {
            CHECK(seen[i] == m);
            continue;
        }
        /* Sum the group's picks and look for an online member. */
        int picks = 0, any_online = 0, picked_online = 0;
        for (size_t j = 0; j < nsubs; j++) {
            if (!same_key(&subs[j], subs[i].filter, subs[i].flen, subs[i].group, subs[i].glen, 1))
                continue;
            picks += seen[j];
            any_online |= is_online(&owner_objs[subs[j].owner]);
            if (seen[j])
                picked_online = is_online(&owner_objs[subs[j].owner]);
        }
        CHECK(picks == m);
        CHECK(!m || !any_online || picked_online);
    }
    free(topic);
}

/* ---- the retained store against its model ---- */

static struct {
    char topic[MAXSTR];
    size_t len;
    int value;
} kept[MAXSUBS];
static size_t nkept;
static int value_refs[NVALUES];

static void vref(void *v) {
    value_refs[(int *)v - value_refs]++;
}

static void vunref(void *v) {
    CHECK(value_refs[(int *)v - value_refs] > 0);
    value_refs[(int *)v - value_refs]--;
}

static long kept_find(const char *t, size_t len) {
    for (size_t i = 0; i < nkept; i++)
        if (kept[i].len == len && memcmp(kept[i].topic, t, len) == 0)
            return (long)i;
    return -1;
}

static void check_refs(void) {
    int want[NVALUES] = {0};
    for (size_t i = 0; i < nkept; i++)
        want[kept[i].value]++;
    for (int v = 0; v < NVALUES; v++)
        CHECK(value_refs[v] == want[v]);
}

static void op_retain_set(pg_retain *r, struct input *in) {
    char buf[MAXSTR];
    size_t len = next_string(in, buf);
    int v = next_byte(in) % (NVALUES + 1); /* NVALUES means clear */
    long i = kept_find(buf, len);
    if (v < NVALUES && i < 0 && nkept == MAXSUBS)
        return;
    char *topic = heap_copy(buf, len);
    int rc = pg_retain_set(r, topic, len, v < NVALUES ? &value_refs[v] : NULL);
    CHECK(rc == (v < NVALUES && i < 0 ? 1 : 0));
    if (v == NVALUES && i >= 0) {
        kept[i] = kept[--nkept];
    } else if (v < NVALUES) {
        if (i < 0)
            i = (long)nkept++;
        memcpy(kept[i].topic, buf, len);
        kept[i].len = len;
        kept[i].value = v;
    }
    CHECK(pg_retain_get(r, topic, len) == (v < NVALUES ? &value_refs[v] : NULL));
    free(topic);
    CHECK(pg_retain_count(r) == nkept);
    check_refs();
}

struct rgot {
    const char *filter;
    size_t flen;
    int seen[MAXSUBS];
    size_t n;
};

static int collect_retained(void *ctx, const char *topic, size_t tlen, void *value) {
    struct rgot *g = ctx;
    long i = kept_find(topic, tlen);
    CHECK(i >= 0 && value == &value_refs[kept[i].value]);
    CHECK(!g->filter || matches(g->filter, g->flen, topic, tlen));
    g->seen[i]++;
    g->n++;
    return 0;
}

static void op_retain_match(pg_retain *r, struct input *in) {
    char buf[MAXSTR];
    size_t len = next_string(in, buf);
    char *filter = heap_copy(buf, len);
    struct rgot got = {.filter = buf, .flen = len};
    pg_retain_match(r, filter, len, collect_retained, &got);
    for (size_t i = 0; i < nkept; i++)
        CHECK(got.seen[i] == matches(buf, len, kept[i].topic, kept[i].len));
    memset(&got, 0, sizeof(got));
    pg_retain_each(r, collect_retained, &got);
    CHECK(got.n == nkept);
    free(filter);
    check_refs();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct input in = {data, size};
    nsubs = nkept = 0;
    next_id = 0;
    memset(value_refs, 0, sizeof(value_refs));
    online_mask = next_byte(&in);
    pg_trie *t = pg_trie_new(is_online);
    pg_retain *r = pg_retain_new(vref, vunref);
    CHECK(t && r);
    while (in.n) {
        switch (next_byte(&in) % 8) {
        case 0:
        case 1:
            op_subscribe(t, &in);
            break;
        case 2:
            op_unsubscribe(t, &in);
            break;
        case 3:
        case 4:
            op_match(t, &in);
            break;
        case 5:
            op_retain_set(r, &in);
            break;
        case 6:
            op_retain_match(r, &in);
            break;
        default:
            online_mask = next_byte(&in);
            break;
        }
        CHECK(pg_trie_count(t) == nsubs);
        CHECK(nsubs || pg_trie_node_count(t) == 1);
        CHECK(nkept || pg_retain_node_count(r) == 1);
    }
    pg_trie_free(t);
    pg_retain_free(r);
    for (int v = 0; v < NVALUES; v++)
        CHECK(value_refs[v] == 0);
    return 0;
}
