/* test_acl.c - unit tests for mosquitto-format ACL files (broker/acl.c).
 *
 * Covers parsing (comments, blank lines, spaces in topics and usernames, access
 * keywords, mosquitto's quirks), every error with its exact "FILE:LINE: problem",
 * anonymous and user sections, read/write/readwrite/deny, deny precedence within and
 * across sections, %c/%u patterns (including ids and usernames with '+', '#', '/'),
 * wildcards, '$' topics, SUBSCRIBE in both modes, and a 1000-user file. Each ACL is
 * written to a temporary file; every topic handed to pg_acl_check is a heap copy of
 * exactly its length, so ASan catches a read past topic_len.
 *
 * Verified against the running mosquitto 2.0.11 (Debian 12 package; acl_file with
 * mosquitto_sub/mosquitto_pub, and a raw CONNECT for the empty username):
 *  - topic lines before the first `user` apply only to clients without a username;
 *    a client whose username has no section gets nothing from them; an empty
 *    username counts as anonymous.
 *  - every SUBSCRIBE is granted (SUBACK 0 for `#` and for filters no entry covers);
 *    the READ check before each delivery decides what arrives.
 *  - a deny in a section wins over an allow in the same section wherever it is;
 *    a user-section allow is not overridden by a deny pattern, a user-section deny
 *    does override an allow pattern; a deny pattern overrides an allow pattern.
 *  - read-only entries refuse WRITE and write-only ones READ; a user section that
 *    appears twice is merged.
 *  - patterns apply to every client; %c works for anonymous clients, %u patterns
 *    never match them; %c is substituted even inside a level (x%cy), several times.
 *  - a client id or username containing '+' or '#' is refused by every pattern, even
 *    one without %c/%u, but its user section still applies. '/' is NOT refused:
 *    id "a/b" reads d/a/b through `pattern read d/%c`; polygate deliberately refuses
 *    that (test_pattern_slash_does_not_escape).
 *  - `topic read #` does not grant $SYS/... nor $foo/...; `$SYS/#` and `$foo/#` do.
 *    Publishing to any topic starting with "$SYS" (also "$SYSx/y") is refused even
 *    when the ACL allows it, except $SYS/broker/connection/+/state; publishing to
 *    $share/x is refused; $share/GROUP/FILTER subscriptions work.
 *  - loading: unknown keyword, an indented '#', "TOPIC", tab as the separator after
 *    the keyword, `topic`/`pattern` alone, `topic foo bar`, invalid filters (a/#/b,
 *    a+, #/a, a#, a/%c+, >200 '/', >65535 bytes) and `user` without a name all stop
 *    the broker. `topic read` alone loads as readwrite on the topic "read" (also
 *    `topic deny`); `topic read\ta` loads as the topic "read\ta"; `user a b` is the
 *    user "a b"; `user \tname ` is trimmed; trailing spaces, CRLF, leading spaces,
 *    and repeated spaces between words are accepted.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "broker/acl.h"
#include "broker/broker.h"

#define R PG_ACCESS_READ
#define W PG_ACCESS_WRITE
#define S PG_ACCESS_SUBSCRIBE

/* ---- helpers ---- */

/* Writes content to a new temporary file; the caller unlinks and frees the path. */
static char *write_temp(const char *content, size_t len) {
    char *path = strdup("/tmp/test_acl_XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

static pg_acl *load(const char *content) {
    char *path = write_temp(content, strlen(content));
    char err[512] = "";
    pg_acl *a = pg_acl_load(path, err, sizeof(err));
    if (!a)
        fail_msg("unexpected load error: %s", err);
    unlink(path);
    free(path);
    return a;
}

/* Loading content must fail with exactly "PATH:line: msg". */
static void expect_error_len(const char *content, size_t len, unsigned line, const char *msg) {
    char *path = write_temp(content, len);
    char err[512] = "", want[600];
    pg_acl *a = pg_acl_load(path, err, sizeof(err));
    if (a)
        fail_msg("loaded, expected \"%u: %s\" for %s", line, msg, content);
    snprintf(want, sizeof(want), "%s:%u: %s", path, line, msg);
    assert_string_equal(err, want);
    unlink(path);
    free(path);
}

static void expect_error(const char *content, unsigned line, const char *msg) {
    expect_error_len(content, strlen(content), line, msg);
}

/* pg_acl_check on an exact-length, non-NUL-terminated copy of topic. */
static int chk(const pg_acl *a, const char *cid, const char *user, int access, const char *topic) {
    size_t len = strlen(topic);
    char *t = malloc(len ? len : 1);
    assert_non_null(t);
    memcpy(t, topic, len);
    int rc = pg_acl_check(a, cid, user, access, t, len);
    free(t);
    return rc;
}

/* Shorthands: anonymous client "c1", or user u with client id "c1". */
static int anon(const pg_acl *a, int access, const char *topic) {
    return chk(a, "c1", NULL, access, topic);
}

static int as(const pg_acl *a, const char *user, int access, const char *topic) {
    return chk(a, "c1", user, access, topic);
}

/* ---- parsing ---- */

static void test_comments_and_blank_lines(void **state) {
    pg_acl *a = load("# a comment\n"
                     "\n"
                     "   \n"
                     "\t\n"
                     "#topic read nothing/here\n"
                     "topic read a\n"
                     "#\n");
    assert_int_equal(anon(a, R, "a"), 1);
    assert_int_equal(anon(a, R, "nothing/here"), 0);
    pg_acl_free(a);
}

static void test_access_keywords(void **state) {
    pg_acl *a = load("topic read r\n"
                     "topic write w\n"
                     "topic readwrite rw\n"
                     "topic dflt\n"
                     "topic deny d\n"
                     "topic readwrite d\n");
    assert_int_equal(anon(a, R, "r"), 1);
    assert_int_equal(anon(a, W, "r"), 0);
    assert_int_equal(anon(a, R, "w"), 0);
    assert_int_equal(anon(a, W, "w"), 1);
    assert_int_equal(anon(a, R, "rw"), 1);
    assert_int_equal(anon(a, W, "rw"), 1);
    assert_int_equal(anon(a, R, "dflt"), 1); /* no access word: readwrite */
    assert_int_equal(anon(a, W, "dflt"), 1);
    assert_int_equal(anon(a, R, "d"), 0);
    assert_int_equal(anon(a, W, "d"), 0);
    assert_int_equal(anon(a, R, "other"), 0);
    pg_acl_free(a);
}

static void test_spaces_in_topics(void **state) {
    pg_acl *a = load("topic read a b/c d\n"
                     "topic   write    x y  \n"
                     "topic read \tz z\n"
                     "   topic read lead\n"
                     "topic read crlf\r\n");
    assert_int_equal(anon(a, R, "a b/c d"), 1);
    assert_int_equal(anon(a, R, "a"), 0);
    assert_int_equal(anon(a, W, "x y"), 1); /* extra spaces trimmed */
    assert_int_equal(anon(a, R, "x y"), 0);
    assert_int_equal(anon(a, R, "z z"), 1);
    assert_int_equal(anon(a, R, "lead"), 1);
    assert_int_equal(anon(a, R, "crlf"), 1);
    pg_acl_free(a);
}

/* mosquitto reads one word after the keyword as the topic, and splits on ' ' only. */
static void test_single_word_is_the_topic(void **state) {
    pg_acl *a = load("topic read\n"
                     "topic deny\n"
                     "topic read\tt\n"
                     "pattern write\n");
    assert_int_equal(anon(a, R, "read"), 1);
    assert_int_equal(anon(a, W, "read"), 1);
    assert_int_equal(anon(a, W, "deny"), 1);
    assert_int_equal(anon(a, W, "read\tt"), 1);
    assert_int_equal(anon(a, R, "t"), 0);
    assert_int_equal(as(a, "u", W, "write"), 1); /* a pattern without %c/%u */
    pg_acl_free(a);
}

static void test_user_sections(void **state) {
    pg_acl *a = load("topic read anon\n"
                     "user alice\n"
                     "topic read al/#\n"
                     "pattern read pat/%u\n"
                     "topic write al2\n" /* still alice: patterns do not end a section */
                     "user a b\n"
                     "topic read spaced\n"
                     "user \tbob  \n"
                     "topic read bo\n"
                     "user empty\n"
                     "user alice\n"
                     "topic read al3\n");
    assert_int_equal(as(a, "alice", R, "al/x"), 1);
    assert_int_equal(as(a, "alice", W, "al2"), 1);
    assert_int_equal(as(a, "alice", R, "al3"), 1); /* reopened section */
    assert_int_equal(as(a, "alice", R, "pat/alice"), 1);
    assert_int_equal(as(a, "alice", R, "anon"), 0);
    assert_int_equal(as(a, "a b", R, "spaced"), 1);
    assert_int_equal(as(a, "a", R, "spaced"), 0);
    assert_int_equal(as(a, "bob", R, "bo"), 1); /* name trimmed */
    assert_int_equal(as(a, "Alice", R, "al/x"), 0);
    assert_int_equal(as(a, "empty", R, "pat/empty"), 1);
    assert_int_equal(as(a, "empty", R, "al/x"), 0);
    assert_int_equal(anon(a, R, "al/x"), 0);
    pg_acl_free(a);
}

/* ---- errors ---- */

static void test_error_lines(void **state) {
    expect_error("foo bar\n", 1, "unknown keyword \"foo\" (topic, pattern or user)");
    expect_error("TOPIC read a\n", 1, "unknown keyword \"TOPIC\" (topic, pattern or user)");
    expect_error("  # indented comment\n", 1,
                 "unknown keyword \"#\" (a comment's # must be the first character)");
    expect_error("topic\tread\ta\n", 1,
                 "unknown keyword \"topic\tread\ta\" (topic, pattern or user)");
    expect_error("\ttopic read a\n", 1, "unknown keyword \"\ttopic\" (topic, pattern or user)");
    expect_error("topic\n", 1, "missing topic");
    expect_error("topic    \n", 1, "missing topic");
    expect_error("pattern\n", 1, "missing topic");
    expect_error("topic foo bar\n", 1, "invalid access \"foo\" (read, write, readwrite or deny)");
    expect_error("topic Read a\n", 1, "invalid access \"Read\" (read, write, readwrite or deny)");
    expect_error("topic read a/#/b\n", 1, "invalid ACL topic \"a/#/b\"");
    expect_error("topic read a+\n", 1, "invalid ACL topic \"a+\"");
    expect_error("topic read +a/b\n", 1, "invalid ACL topic \"+a/b\"");
    expect_error("topic #/a\n", 1, "invalid ACL topic \"#/a\"");
    expect_error("topic read a#\n", 1, "invalid ACL topic \"a#\"");
    expect_error("pattern read a/%c+\n", 1, "invalid ACL topic \"a/%c+\"");
    expect_error("user\n", 1, "missing username");
    expect_error("user   \n", 1, "missing username");
    expect_error("user\t\n", 1, "missing username");
}

static void test_error_line_numbers(void **state) {
    expect_error("# comment\n\ntopic read a\nuser x\ntopic write b\nbogus\ntopic c\n", 6,
                 "unknown keyword \"bogus\" (topic, pattern or user)");
    expect_error("topic a\r\ntopic b\r\nuser\r\n", 3, "missing username");
    expect_error("topic a\ntopic read a/#/b", 2, "invalid ACL topic \"a/#/b\""); /* no final \n */
}

/* mosquitto's filter limits: at most 200 '/' and 65535 bytes. */
static void test_topic_limits(void **state) {
    size_t n = 202 * 2 + 32;
    char *buf = malloc(n);
    assert_non_null(buf);
    strcpy(buf, "topic read a");
    for (int i = 0; i < 200; i++)
        strcat(buf, "/a");
    strcat(buf, "\n");
    pg_acl_free(load(buf));
    buf[strlen(buf) - 1] = '\0';
    strcat(buf, "/a\n");
    char *path = write_temp(buf, strlen(buf));
    char err[256];
    assert_null(pg_acl_load(path, err, sizeof(err)));
    assert_non_null(strstr(err, ":1: invalid ACL topic \"a/a/a/"));
    unlink(path);
    free(path);
    free(buf);

    size_t big = 65536 + 32;
    buf = malloc(big);
    assert_non_null(buf);
    strcpy(buf, "topic ");
    memset(buf + 6, 'x', 65535);
    strcpy(buf + 6 + 65535, "\n");
    pg_acl *a = load(buf);
    buf[6 + 65535] = '\0';
    assert_int_equal(anon(a, R, buf + 6), 1);
    pg_acl_free(a);
    strcpy(buf + 6 + 65535, "x\n");
    path = write_temp(buf, strlen(buf));
    assert_null(pg_acl_load(path, err, sizeof(err)));
    assert_non_null(strstr(err, ":1: invalid ACL topic \"xxx"));
    unlink(path);
    free(path);
    free(buf);
}

static void test_missing_file_and_small_buffers(void **state) {
    char err[256];
    assert_null(pg_acl_load("/nonexistent/acl", err, sizeof(err)));
    assert_string_equal(err, "/nonexistent/acl: No such file or directory");
    assert_null(pg_acl_load("/tmp", err, sizeof(err))); /* a directory */
    assert_string_equal(err, "/tmp: Is a directory");

    char *path = write_temp("bogus\n", 6);
    char tiny[8];
    assert_null(pg_acl_load(path, tiny, sizeof(tiny)));
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1); /* truncated, terminated */
    assert_null(pg_acl_load(path, NULL, 0));
    unlink(path);
    free(path);
}

/* Errors after much has been stored free it all (ASan reports leaks). */
static void test_error_after_content_frees(void **state) {
    expect_error("topic a\npattern read %c/x\nuser u1\ntopic deny a\nuser u2\ntopic b\nnope\n", 7,
                 "unknown keyword \"nope\" (topic, pattern or user)");
}

/* ---- sections ---- */

static void test_anonymous_vs_users(void **state) {
    pg_acl *a = load("topic read anon/#\n"
                     "user alice\n"
                     "topic read a/#\n"
                     "pattern read all/%c\n");
    assert_int_equal(anon(a, R, "anon/x"), 1);
    assert_int_equal(chk(a, "c1", "", R, "anon/x"), 1); /* empty username: anonymous */
    assert_int_equal(anon(a, R, "a/x"), 0);
    assert_int_equal(as(a, "alice", R, "a/x"), 1);
    assert_int_equal(as(a, "alice", R, "anon/x"), 0);
    assert_int_equal(as(a, "bob", R, "anon/x"), 0); /* no section: patterns only */
    assert_int_equal(as(a, "bob", R, "all/c1"), 1);
    assert_int_equal(anon(a, R, "all/c1"), 1);
    assert_int_equal(as(a, "alice", R, "all/c1"), 1);
    pg_acl_free(a);
}

static void test_empty_file_denies(void **state) {
    pg_acl *a = load("# nothing\n");
    assert_int_equal(anon(a, R, "a"), 0);
    assert_int_equal(anon(a, W, "a"), 0);
    assert_int_equal(as(a, "u", R, "a"), 0);
    assert_int_equal(anon(a, S, "a"), 1); /* mosquitto 2.0.11 grants every SUBSCRIBE */
    pg_acl_free(a);
}

/* ---- deny precedence ---- */

static void test_deny_in_one_section(void **state) {
    pg_acl *a = load("topic deny an/x\n"
                     "topic an/#\n"
                     "user w\n"
                     "topic readwrite w/#\n"
                     "topic deny w/x\n"
                     "topic deny w/+/secret\n");
    assert_int_equal(anon(a, W, "an/x"), 0);
    assert_int_equal(anon(a, W, "an/y"), 1);
    assert_int_equal(as(a, "w", R, "w/x"), 0); /* deny after the allow still wins */
    assert_int_equal(as(a, "w", W, "w/x"), 0);
    assert_int_equal(as(a, "w", R, "w/y"), 1);
    assert_int_equal(as(a, "w", R, "w/q/secret"), 0);
    assert_int_equal(as(a, "w", R, "w/q/open"), 1);
    assert_int_equal(as(a, "w", R, "w/x/y"), 1); /* w/x does not cover w/x/y */
    pg_acl_free(a);
}

static void test_deny_across_sections(void **state) {
    pg_acl *a = load("user alice\n"
                     "topic read p/alice/#\n"
                     "topic deny q/alice\n"
                     "pattern read p/%u/#\n"
                     "pattern deny p/%u/hidden\n"
                     "pattern read q/%u\n");
    /* The user section decides first: its allow beats a deny pattern... */
    assert_int_equal(as(a, "alice", R, "p/alice/hidden"), 1);
    /* ...and its deny beats an allow pattern. */
    assert_int_equal(as(a, "alice", R, "q/alice"), 0);
    /* Without a section, deny patterns beat allow patterns. */
    assert_int_equal(as(a, "dave", R, "p/dave/hidden"), 0);
    assert_int_equal(as(a, "dave", R, "p/dave/x"), 1);
    assert_int_equal(as(a, "dave", R, "q/dave"), 1);
    pg_acl_free(a);
}

/* ---- patterns ---- */

static void test_pattern_substitution(void **state) {
    pg_acl *a = load("pattern read c/%c\n"
                     "pattern write u/%u/#\n"
                     "pattern read mid/x%cy\n"
                     "pattern read two/%c/%u/%c\n"
                     "pattern read pct/%%c\n"
                     "pattern read lit/%x\n");
    assert_int_equal(chk(a, "dev1", NULL, R, "c/dev1"), 1);
    assert_int_equal(chk(a, "dev1", NULL, R, "c/dev2"), 0);
    assert_int_equal(chk(a, "dev1", "alice", W, "u/alice/a/b"), 1);
    assert_int_equal(chk(a, "dev1", "alice", W, "u/alice"), 1);
    assert_int_equal(chk(a, "dev1", "alice", R, "u/alice/a"), 0);
    assert_int_equal(chk(a, "dev1", "alice", W, "u/bob/a"), 0);
    assert_int_equal(chk(a, "dev1", NULL, W, "u/%u/a"), 0); /* %u never matches anonymous */
    assert_int_equal(chk(a, "dev1", "", W, "u//a"), 0);     /* "" is anonymous */
    assert_int_equal(chk(a, "dev1", NULL, R, "mid/xdev1y"), 1);
    assert_int_equal(chk(a, "dev1", "al", R, "two/dev1/al/dev1"), 1);
    assert_int_equal(chk(a, "dev1", "al", R, "two/dev1/al/dev2"), 0);
    assert_int_equal(chk(a, "dev1", NULL, R, "pct/%dev1"), 1);
    assert_int_equal(chk(a, "dev1", NULL, R, "lit/%x"), 1);
    pg_acl_free(a);
}

/* An id or username with '+' or '#' gets nothing from patterns (mosquitto's
 * CVE-2017-7650 fix), but its own section still applies. */
static void test_pattern_wildcard_ids_refused(void **state) {
    pg_acl *a = load("topic read anon/#\n"
                     "user plus+\n"
                     "topic read sect/#\n"
                     "pattern read d/%c\n"
                     "pattern read public/#\n");
    assert_int_equal(chk(a, "+", NULL, R, "d/x"), 0);
    assert_int_equal(chk(a, "a+", NULL, R, "d/a+"), 0);
    assert_int_equal(chk(a, "a#", NULL, R, "d/anything"), 0);
    assert_int_equal(chk(a, "#", NULL, R, "public/a"), 0);
    assert_int_equal(chk(a, "ok", "x+", R, "public/a"), 0);
    assert_int_equal(chk(a, "ok", "x#", R, "d/ok"), 0);
    assert_int_equal(chk(a, "ok", "x", R, "public/a"), 1);
    assert_int_equal(chk(a, "ok", "plus+", R, "sect/a"), 1);
    assert_int_equal(chk(a, "ok", "plus+", R, "public/a"), 0);
    assert_int_equal(chk(a, "+", NULL, R, "anon/x"), 1);
    pg_acl_free(a);
}

/* Polygate's one deviation: '/' in an id or username never reaches an allowing
 * pattern (mosquitto 2.0.11 lets id "a/b" read d/a/b), while deny patterns still
 * substitute it, so nothing is refused less than in mosquitto. */
static void test_pattern_slash_does_not_escape(void **state) {
    pg_acl *a = load("pattern read d/%c\n"
                     "pattern read d/%c/#\n"
                     "pattern read e/%u\n"
                     "pattern deny f/%c/x\n"
                     "pattern read f/#\n"
                     "pattern read public/#\n");
    assert_int_equal(chk(a, "a/b", NULL, R, "d/a/b"), 0);
    assert_int_equal(chk(a, "a/b", NULL, R, "d/a/b/c"), 0);
    assert_int_equal(chk(a, "a/b", NULL, R, "d/a"), 0);
    assert_int_equal(chk(a, "ab", "x/y", R, "e/x/y"), 0);
    assert_int_equal(chk(a, "ab", "x/y", R, "d/ab"), 1); /* %c is clean */
    assert_int_equal(chk(a, "a/b", NULL, R, "public/a"), 1);
    assert_int_equal(chk(a, "a/b", NULL, R, "f/a/b/x"), 0); /* the deny still applies */
    assert_int_equal(chk(a, "a/b", NULL, R, "f/a/b/y"), 1);
    assert_int_equal(chk(a, "ab", NULL, R, "d/ab"), 1);
    pg_acl_free(a);
}

/* A long username expands past the stack buffer into a heap one. */
static void test_pattern_long_expansion(void **state) {
    pg_acl *a = load("pattern read long/%u/%u/%c\n");
    char user[400], topic[1000];
    memset(user, 'u', sizeof(user) - 1);
    user[sizeof(user) - 1] = '\0';
    snprintf(topic, sizeof(topic), "long/%s/%s/cid", user, user);
    assert_int_equal(chk(a, "cid", user, R, topic), 1);
    topic[strlen(topic) - 1] = 'x';
    assert_int_equal(chk(a, "cid", user, R, topic), 0);
    pg_acl_free(a);
}

/* ---- matching ---- */

static void test_wildcards_in_acl(void **state) {
    pg_acl *a = load("topic read +/b\n"
                     "topic read x/+/z\n"
                     "topic read m/#\n"
                     "topic read e/+\n");
    assert_int_equal(anon(a, R, "a/b"), 1);
    assert_int_equal(anon(a, R, "a/b/c"), 0);
    assert_int_equal(anon(a, R, "x/y/z"), 1);
    assert_int_equal(anon(a, R, "x//z"), 1);
    assert_int_equal(anon(a, R, "x/y/y/z"), 0);
    assert_int_equal(anon(a, R, "m"), 1); /* m/# covers its parent */
    assert_int_equal(anon(a, R, "m/1/2/3"), 1);
    assert_int_equal(anon(a, R, "mm"), 0);
    assert_int_equal(anon(a, R, "e/"), 1);
    assert_int_equal(anon(a, R, "e"), 0);
    pg_acl_free(a);
}

static void test_dollar_topics(void **state) {
    pg_acl *a = load("user rd\n"
                     "topic readwrite #\n"
                     "topic read +/x\n"
                     "user sys\n"
                     "topic readwrite $SYS/#\n"
                     "topic readwrite $SYSx/#\n"
                     "topic readwrite $foo/#\n"
                     "topic readwrite $share/#\n");
    assert_int_equal(as(a, "rd", R, "$SYS/broker/version"), 0);
    assert_int_equal(as(a, "rd", R, "$SYS/x"), 0);
    assert_int_equal(as(a, "rd", R, "$foo/x"), 0);
    assert_int_equal(as(a, "rd", R, "a/x"), 1);
    assert_int_equal(as(a, "sys", R, "$SYS/broker/version"), 1);
    assert_int_equal(as(a, "sys", R, "$foo/x"), 1);
    assert_int_equal(as(a, "sys", W, "$foo/x"), 1);
    /* No client writes $SYS, whatever the ACL says, but bridge state topics. */
    assert_int_equal(as(a, "sys", W, "$SYS/x"), 0);
    assert_int_equal(as(a, "sys", W, "$SYSx/y"), 0);
    assert_int_equal(as(a, "sys", W, "$SYS/broker/connection/br1/state"), 1);
    assert_int_equal(as(a, "rd", W, "$SYS/broker/connection/br1/state"), 0);
    /* $share is never a topic name. */
    assert_int_equal(as(a, "sys", W, "$share/x"), 0);
    assert_int_equal(as(a, "sys", R, "$share/x"), 0);
    pg_acl_free(a);
}

static void test_bad_arguments(void **state) {
    pg_acl *a = load("topic #\n");
    assert_int_equal(anon(a, R, "a"), 1);
    assert_int_equal(chk(a, NULL, NULL, R, "a"), 0);
    assert_int_equal(pg_acl_check(a, "c", NULL, R, "a", 0), 0);
    assert_int_equal(pg_acl_check(a, "c", NULL, R, NULL, 1), 0);
    assert_int_equal(pg_acl_check(NULL, "c", NULL, R, "a", 1), 0);
    assert_int_equal(anon(a, 0, "a"), 0);
    assert_int_equal(anon(a, R | W, "a"), 0);
    assert_int_equal(anon(a, 8, "a"), 0);
    pg_acl_free(a);
    pg_acl_free(NULL);
}

/* ---- SUBSCRIBE ---- */

/* mosquitto 2.0.11: the ACL file does not look at subscriptions at all. */
static void test_subscribe_default_allows(void **state) {
    pg_acl *a = load("user alice\n"
                     "topic read a/#\n"
                     "topic deny b/#\n"
                     "pattern read p/%c\n");
    assert_int_equal(as(a, "alice", S, "#"), 1);
    assert_int_equal(as(a, "alice", S, "b/x"), 1);
    assert_int_equal(as(a, "nobody", S, "$SYS/#"), 1);
    assert_int_equal(as(a, "alice", S, "$share/g/b/#"), 1);
    assert_int_equal(chk(a, "+", NULL, S, "x"), 1);
    /* What arrives is filtered by READ. */
    assert_int_equal(as(a, "alice", R, "a/z"), 1);
    assert_int_equal(as(a, "alice", R, "b/z"), 0);
    pg_acl_free(a);
}

static void test_subscribe_strict(void **state) {
    pg_acl *a = load("topic read a/#\n"
                     "topic deny a/secret/#\n"
                     "topic write w/#\n"
                     "topic read e/+\n"
                     "user sys\n"
                     "topic read $SYS/#\n"
                     "user all\n"
                     "topic read #\n");
    pg_acl_set_strict_subscribe(a, 1);
    assert_int_equal(anon(a, S, "a/+"), 1);
    assert_int_equal(anon(a, S, "a/#"), 1);
    assert_int_equal(anon(a, S, "a"), 1);
    assert_int_equal(anon(a, S, "a/b/c"), 1);
    assert_int_equal(anon(a, S, "a/+/c/#"), 1);
    assert_int_equal(anon(a, S, "#"), 0);
    assert_int_equal(anon(a, S, "+/b"), 0);
    assert_int_equal(anon(a, S, "+"), 0);
    assert_int_equal(anon(a, S, "b/#"), 0);
    /* A deny refuses a filter that lies entirely inside it... */
    assert_int_equal(anon(a, S, "a/secret/x"), 0);
    assert_int_equal(anon(a, S, "a/secret/#"), 0);
    /* ...not one that only overlaps it: READ filters those deliveries. */
    assert_int_equal(anon(a, S, "a/+/x"), 1);
    assert_int_equal(anon(a, R, "a/secret/x"), 0);
    /* Only read entries grant a subscription. */
    assert_int_equal(anon(a, S, "w/x"), 0);
    /* '+' in the ACL covers one level, never '#'. */
    assert_int_equal(anon(a, S, "e/x"), 1);
    assert_int_equal(anon(a, S, "e/+"), 1);
    assert_int_equal(anon(a, S, "e/#"), 0);
    assert_int_equal(anon(a, S, "e"), 0);
    assert_int_equal(anon(a, S, "e/x/y"), 0);
    /* The '$' rule. */
    assert_int_equal(as(a, "all", S, "#"), 1);
    assert_int_equal(as(a, "all", S, "+/x"), 1);
    assert_int_equal(as(a, "all", S, "$SYS/#"), 0);
    assert_int_equal(as(a, "all", S, "$SYS/broker/uptime"), 0);
    assert_int_equal(as(a, "sys", S, "$SYS/#"), 1);
    assert_int_equal(as(a, "sys", S, "$SYS/broker/+"), 1);
    assert_int_equal(as(a, "sys", S, "#"), 0);
    /* Shared subscriptions are judged by their filter. */
    assert_int_equal(anon(a, S, "$share/g/a/+"), 1);
    assert_int_equal(anon(a, S, "$share/g/b"), 0);
    assert_int_equal(anon(a, S, "$share//a"), 0);
    assert_int_equal(anon(a, S, "$share/g"), 0);
    pg_acl_set_strict_subscribe(a, 0);
    assert_int_equal(anon(a, S, "#"), 1);
    pg_acl_free(a);
}

static void test_subscribe_strict_patterns(void **state) {
    pg_acl *a = load("pattern read u/%u/#\n"
                     "pattern deny u/%u/private/#\n"
                     "pattern read c/%c\n");
    pg_acl_set_strict_subscribe(a, 1);
    assert_int_equal(chk(a, "id", "alice", S, "u/alice/+"), 1);
    assert_int_equal(chk(a, "id", "alice", S, "u/alice/private/+"), 0);
    assert_int_equal(chk(a, "id", "alice", S, "u/+/x"), 0);
    assert_int_equal(chk(a, "id", "bob", S, "u/alice/x"), 0);
    assert_int_equal(chk(a, "id", NULL, S, "u/alice/x"), 0);
    assert_int_equal(chk(a, "id", NULL, S, "c/id"), 1);
    assert_int_equal(chk(a, "a/b", NULL, S, "c/a/b"), 0);
    assert_int_equal(chk(a, "id+", NULL, S, "c/id+"), 0);
    pg_acl_free(a);
}

/* ---- scale ---- */

static void test_thousand_users(void **state) {
    size_t cap = 1000 * 80, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    n += (size_t)snprintf(buf + n, cap - n, "topic read public/#\n");
    for (int i = 0; i < 1000; i++)
        n += (size_t)snprintf(buf + n, cap - n,
                              "user user %d\ntopic u/%d/#\ntopic deny u/%d/secret\n", i, i, i);
    n += (size_t)snprintf(buf + n, cap - n, "pattern read shared/%%u\n");
    assert_true(n < cap);
    pg_acl *a = load(buf);
    free(buf);
    for (int i = 0; i < 1000; i++) {
        char user[32], mine[32], other[32], secret[32], shared[48];
        snprintf(user, sizeof(user), "user %d", i);
        snprintf(mine, sizeof(mine), "u/%d/x", i);
        snprintf(other, sizeof(other), "u/%d/x", (i + 1) % 1000);
        snprintf(secret, sizeof(secret), "u/%d/secret", i);
        snprintf(shared, sizeof(shared), "shared/user %d", i);
        assert_int_equal(as(a, user, W, mine), 1);
        assert_int_equal(as(a, user, R, mine), 1);
        assert_int_equal(as(a, user, R, other), 0);
        assert_int_equal(as(a, user, R, secret), 0);
        assert_int_equal(as(a, user, R, shared), 1);
        assert_int_equal(as(a, user, R, "public/x"), 0); /* anonymous only */
    }
    assert_int_equal(as(a, "user 1000", R, "u/1000/x"), 0);
    assert_int_equal(anon(a, R, "public/x"), 1);
    assert_int_equal(anon(a, R, "u/1/x"), 0);
    pg_acl_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_comments_and_blank_lines),
        cmocka_unit_test(test_access_keywords),
        cmocka_unit_test(test_spaces_in_topics),
        cmocka_unit_test(test_single_word_is_the_topic),
        cmocka_unit_test(test_user_sections),
        cmocka_unit_test(test_error_lines),
        cmocka_unit_test(test_error_line_numbers),
        cmocka_unit_test(test_topic_limits),
        cmocka_unit_test(test_missing_file_and_small_buffers),
        cmocka_unit_test(test_error_after_content_frees),
        cmocka_unit_test(test_anonymous_vs_users),
        cmocka_unit_test(test_empty_file_denies),
        cmocka_unit_test(test_deny_in_one_section),
        cmocka_unit_test(test_deny_across_sections),
        cmocka_unit_test(test_pattern_substitution),
        cmocka_unit_test(test_pattern_wildcard_ids_refused),
        cmocka_unit_test(test_pattern_slash_does_not_escape),
        cmocka_unit_test(test_pattern_long_expansion),
        cmocka_unit_test(test_wildcards_in_acl),
        cmocka_unit_test(test_dollar_topics),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_subscribe_default_allows),
        cmocka_unit_test(test_subscribe_strict),
        cmocka_unit_test(test_subscribe_strict_patterns),
        cmocka_unit_test(test_thousand_users),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
