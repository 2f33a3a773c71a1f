/* test_passwd.c - unit tests for mosquitto-format password files
 * (broker/passwd.c).
 *
 * The MOSQ_* lines below were made once with mosquitto 2.0.11's
 * mosquitto_passwd (-b -c, -H sha512 for the $6$ one, -I 1000 for carol), so
 * these tests pin mosquitto's exact format without needing it at run time.
 * Files are written into a private temp directory made by the group setup.
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

#include "broker/passwd.h"

/* mosquitto_passwd -b -c f alice secret */
#define MOSQ_ALICE_7                                                                               \
    "alice:$7$101$5Im/W8M34EGFiqCg$BnUSuHs3AnEkc+IniylV+W2cSvxQZCla61y1lSJIerRukJI1foaWuHsNUr+"    \
    "rZm8dsLlJLR5k/foGFcN6lN2kYg=="
/* mosquitto_passwd -H sha512 -b f bob hunter2 */
#define MOSQ_BOB_6                                                                                 \
    "bob:$6$rNwmDBUiiLB/NaE4$Zb/"                                                                  \
    "1FNZVxJxd0Nv1sxXPtwO8SQmZ9tEBQlcSEHlad8UyrQcGTK3ddTZFaPKdLTIEkP1y0"                           \
    "gtEGJS3/c/TFAurxA=="
/* mosquitto_passwd -I 1000 -b f carol 'p@ss wörd' (UTF-8) */
#define MOSQ_CAROL_7                                                                               \
    "carol:$7$1000$H8YPaYb/JcHSUW18$RtyKY3iKE6YA/f5cZHNQUtDhm0APid+fe0wRHDuB/"                     \
    "7rOs7H+zb8YUvsz5rawaMvY8eh5fOk/5xAt7P7NG7eBfQ=="
#define CAROL_PW "p@ss w\xc3\xb6rd"

/* Hash fields reused to build broken lines. */
#define GOOD_SALT "5Im/W8M34EGFiqCg"
#define GOOD_HASH                                                                                  \
    "BnUSuHs3AnEkc+IniylV+W2cSvxQZCla61y1lSJIerRukJI1foaWuHsNUr+rZm8dsLlJLR5k/foGFcN6lN2kYg=="

static char tmpdir[64];
static char path[128];

static int group_setup(void **state) {
    strcpy(tmpdir, "/tmp/pg_passwd_XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(path, sizeof path, "%s/pw", tmpdir);
    return 0;
}

static int group_teardown(void **state) {
    unlink(path);
    return rmdir(tmpdir);
}

static void write_file(const char *text, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static pg_passwd *load_text(const char *text) {
    char err[512] = "";
    write_file(text, strlen(text));
    pg_passwd *p = pg_passwd_load(path, err, sizeof err);
    if (!p)
        fail_msg("load failed: %s", err);
    return p;
}

static int check(const pg_passwd *p, const char *user, const char *pw) {
    return pg_passwd_check(p, user, pw, strlen(pw));
}

/* ---- mosquitto's own output ---- */

static void test_mosquitto_pbkdf2_vector(void **state) {
    pg_passwd *p = load_text(MOSQ_ALICE_7 "\n");
    assert_int_equal(pg_passwd_count(p), 1);
    assert_true(check(p, "alice", "secret"));
    assert_false(check(p, "alice", "Secret"));
    assert_false(check(p, "alice", "secre"));
    assert_false(check(p, "alice", "secret "));
    assert_false(check(p, "alice", ""));
    pg_passwd_free(p);
}

static void test_mosquitto_sha512_vector(void **state) {
    pg_passwd *p = load_text(MOSQ_BOB_6 "\n");
    assert_true(check(p, "bob", "hunter2"));
    assert_false(check(p, "bob", "hunter3"));
    pg_passwd_free(p);
}

static void test_mosquitto_iterations_and_utf8(void **state) {
    pg_passwd *p = load_text(MOSQ_ALICE_7 "\n" MOSQ_BOB_6 "\n" MOSQ_CAROL_7 "\n");
    assert_int_equal(pg_passwd_count(p), 3);
    assert_true(check(p, "carol", CAROL_PW));
    assert_false(check(p, "carol", "p@ss word"));
    /* Each user is checked against their own hash only. */
    assert_false(check(p, "carol", "secret"));
    assert_false(check(p, "alice", "hunter2"));
    pg_passwd_free(p);
}

/* ---- Our own hashes ---- */

static void test_make_hash_round_trip(void **state) {
    char h[PG_PASSWD_HASH_STR_MAX], h2[PG_PASSWD_HASH_STR_MAX], line[3 * PG_PASSWD_HASH_STR_MAX];
    assert_int_equal(pg_passwd_make_hash("pw", 2, PG_PASSWD_DEFAULT_ITERATIONS, h, sizeof h), 0);
    /* $7$101$ + 16 salt chars + $ + 88 hash chars, like mosquitto_passwd. */
    assert_int_equal(strncmp(h, "$7$101$", 7), 0);
    assert_int_equal(strlen(h), 7 + 16 + 1 + 88);
    assert_int_equal(h[7 + 16], '$');
    assert_int_equal(pg_passwd_make_hash("pw", 2, PG_PASSWD_DEFAULT_ITERATIONS, h2, sizeof h2), 0);
    assert_string_not_equal(h, h2); /* fresh random salt */

    snprintf(line, sizeof line, "u:%s\nv:%s\n", h, h2);
    pg_passwd *p = load_text(line);
    assert_true(check(p, "u", "pw"));
    assert_true(check(p, "v", "pw"));
    assert_false(check(p, "u", "pW"));
    pg_passwd_free(p);
}

static void test_make_hash_binary_password(void **state) {
    static const char pw[] = {'a', '\0', 'b', '\xff'};
    char h[PG_PASSWD_HASH_STR_MAX], line[256];
    assert_int_equal(pg_passwd_make_hash(pw, sizeof pw, 5, h, sizeof h), 0);
    assert_int_equal(strncmp(h, "$7$5$", 5), 0);
    snprintf(line, sizeof line, "bin:%s\n", h);
    pg_passwd *p = load_text(line);
    assert_true(pg_passwd_check(p, "bin", pw, sizeof pw));
    assert_false(pg_passwd_check(p, "bin", pw, 1)); /* no truncation at the NUL */
    pg_passwd_free(p);
}

static void test_make_hash_errors(void **state) {
    char h[PG_PASSWD_HASH_STR_MAX];
    assert_int_equal(pg_passwd_make_hash("pw", 2, 0, h, sizeof h), -1);
    assert_int_equal(pg_passwd_make_hash("pw", 2, 101, h, 50), -1);
    assert_string_equal(h, "");
}

/* ---- Lookup ---- */

static void test_unknown_user_and_nulls(void **state) {
    pg_passwd *p = load_text(MOSQ_ALICE_7 "\n");
    assert_true(pg_passwd_has_user(p, "alice"));
    assert_false(pg_passwd_has_user(p, "alic"));
    assert_false(pg_passwd_has_user(p, "alice "));
    assert_false(pg_passwd_has_user(p, NULL));
    assert_false(check(p, "mallory", "secret"));
    assert_false(pg_passwd_check(p, NULL, "secret", 6));
    assert_false(pg_passwd_check(p, "alice", NULL, 0));
    assert_false(pg_passwd_check(NULL, "alice", "secret", 6));
    pg_passwd_free(p);
    pg_passwd_free(NULL);
}

static void test_empty_file(void **state) {
    pg_passwd *p = load_text("");
    assert_int_equal(pg_passwd_count(p), 0);
    assert_false(check(p, "alice", "secret"));
    pg_passwd_free(p);
}

static void test_comments_blanks_and_whitespace(void **state) {
    pg_passwd *p = load_text("# made by mosquitto_passwd\n"
                             "\n"
                             "   \t\n"
                             "   # indented comment: with a colon\n"
                             "  " MOSQ_ALICE_7 "  \r\n"
                             "\r\n" MOSQ_BOB_6); /* no final newline */
    assert_int_equal(pg_passwd_count(p), 2);
    assert_true(check(p, "alice", "secret"));
    assert_true(check(p, "bob", "hunter2"));
    pg_passwd_free(p);
}

static void test_unpadded_base64_accepted(void **state) {
    pg_passwd *p = load_text("alice:$7$101$" GOOD_SALT "$BnUSuHs3AnEkc+IniylV+W2cSvxQZCla61y1lSJIe"
                             "rRukJI1foaWuHsNUr+rZm8dsLlJLR5k/foGFcN6lN2kYg\n");
    assert_true(check(p, "alice", "secret"));
    pg_passwd_free(p);
}

/* ---- Errors ---- */

static void expect_error(const char *text, size_t len, const char *want) {
    char err[512] = "", expected[512];
    write_file(text, len);
    pg_passwd *p = pg_passwd_load(path, err, sizeof err);
    if (p)
        fail_msg("loaded, wanted error '%s' for: %s", want, text);
    snprintf(expected, sizeof expected, "%s:%s", path, want);
    assert_string_equal(err, expected);
}

#define EXPECT_ERROR(text, want) expect_error(text, strlen(text), want)
#define H7(salt, hash)           "$7$101$" salt "$" hash

static void test_parse_errors(void **state) {
    EXPECT_ERROR("alice\n", "1: missing ':'");
    EXPECT_ERROR("# c\n\nalice " GOOD_HASH "\n", "3: missing ':'");
    EXPECT_ERROR(":" H7(GOOD_SALT, GOOD_HASH) "\n", "1: empty username");
    EXPECT_ERROR("  \t:" H7(GOOD_SALT, GOOD_HASH) "\n", "1: empty username");
    EXPECT_ERROR("alice:\n", "1: missing password hash");
    EXPECT_ERROR("alice:   \n", "1: missing password hash");
    EXPECT_ERROR("alice:secret\n", "1: unknown hash type");
    EXPECT_ERROR("alice:$5$" GOOD_SALT "$" GOOD_HASH "\n", "1: unknown hash type");
    EXPECT_ERROR("alice:$77$101$" GOOD_SALT "$" GOOD_HASH "\n", "1: unknown hash type");
    EXPECT_ERROR("alice:" H7(GOOD_SALT, GOOD_HASH) ":extra\n", "1: unexpected ':' after the hash");
    EXPECT_ERROR("alice:$7$101$" GOOD_SALT "\n", "1: malformed $7$ hash");
    EXPECT_ERROR("alice:$7$101$" GOOD_SALT "$" GOOD_HASH "$\n", "1: malformed $7$ hash");
    EXPECT_ERROR("alice:$7$101$$" GOOD_SALT "$" GOOD_HASH "\n", "1: malformed $7$ hash");
    EXPECT_ERROR("alice:$7$101$a$" GOOD_SALT "$" GOOD_HASH "\n", "1: malformed $7$ hash");
    EXPECT_ERROR("alice:$6$101$" GOOD_SALT "$" GOOD_HASH "\n", "1: malformed $6$ hash");
    EXPECT_ERROR("alice:$7$0$" GOOD_SALT "$" GOOD_HASH "\n", "1: bad iteration count");
    EXPECT_ERROR("alice:$7$-5$" GOOD_SALT "$" GOOD_HASH "\n", "1: bad iteration count");
    EXPECT_ERROR("alice:$7$10x$" GOOD_SALT "$" GOOD_HASH "\n", "1: bad iteration count");
    EXPECT_ERROR("alice:$7$99999999999$" GOOD_SALT "$" GOOD_HASH "\n", "1: bad iteration count");
    EXPECT_ERROR("alice:" H7("5Im/W8M34EGFiq!g", GOOD_HASH) "\n", "1: bad base64 salt");
    EXPECT_ERROR("alice:" H7("5Im/W8M34EGFiqC", GOOD_HASH) "\n", "1: salt is 11 bytes, not 12");
    EXPECT_ERROR("alice:" H7("AAAAAAAAAAA=", GOOD_HASH) "\n", "1: salt is 8 bytes, not 12");
    EXPECT_ERROR("alice:" H7("A", GOOD_HASH) "\n", "1: bad base64 salt");
    EXPECT_ERROR("alice:" H7("AAA=A", GOOD_HASH) "\n", "1: bad base64 salt");
    EXPECT_ERROR("alice:" H7(GOOD_SALT, "AAAA") "\n", "1: hash is 3 bytes, not 64");
    EXPECT_ERROR("alice:" H7(GOOD_SALT, "BnUSuHs3AnEkc+Ini-lV") "\n", "1: bad base64 hash");
    EXPECT_ERROR(MOSQ_ALICE_7 "\n" MOSQ_BOB_6 "\nbob:x\n", "3: unknown hash type");
}

static void test_nul_byte(void **state) {
    static const char text[] = MOSQ_ALICE_7 "\nbo\0b:" H7(GOOD_SALT, GOOD_HASH) "\n";
    expect_error(text, sizeof text - 1, "2: NUL byte in line");
}

static void test_duplicate_user(void **state) {
    EXPECT_ERROR(MOSQ_ALICE_7 "\n" MOSQ_BOB_6 "\n\n" MOSQ_ALICE_7 "\n",
                 "4: duplicate user 'alice' (first on line 1)");
    /* The earliest repeat is reported, whatever order the names sort in. */
    EXPECT_ERROR("zed:" H7(GOOD_SALT, GOOD_HASH) "\n" MOSQ_BOB_6
                                                 "\nzed:" H7(GOOD_SALT, GOOD_HASH) "\n" MOSQ_BOB_6
                                                                                   "\n",
                 "3: duplicate user 'zed' (first on line 1)");
    /* Names compare after trimming, as the broker would look them up. */
    EXPECT_ERROR(MOSQ_ALICE_7 "\n  alice :" H7(GOOD_SALT, GOOD_HASH) "\n",
                 "2: duplicate user 'alice' (first on line 1)");
}

static void test_missing_file(void **state) {
    char err[512], expected[512];
    snprintf(expected, sizeof expected, "%s/nope: No such file or directory", tmpdir);
    char missing[160];
    snprintf(missing, sizeof missing, "%s/nope", tmpdir);
    assert_null(pg_passwd_load(missing, err, sizeof err));
    assert_string_equal(err, expected);
}

/* ---- Scale ---- */

static void test_10k_users(void **state) {
    enum { N = 10000 };
    char h[PG_PASSWD_HASH_STR_MAX], name[32];
    /* One cheap hash shared by everyone keeps the file quick to build. */
    assert_int_equal(pg_passwd_make_hash("pw", 2, 1, h, sizeof h), 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < N; i++) /* not in sorted order */
        fprintf(f, "user%d:%s\n", (i * 7919) % N, h);
    assert_int_equal(fclose(f), 0);

    char err[512] = "";
    pg_passwd *p = pg_passwd_load(path, err, sizeof err);
    assert_non_null(p);
    assert_int_equal(pg_passwd_count(p), N);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "user%d", i);
        assert_true(pg_passwd_has_user(p, name));
    }
    assert_false(pg_passwd_has_user(p, "user10000"));
    assert_false(pg_passwd_has_user(p, "user"));
    assert_true(check(p, "user0", "pw"));
    assert_true(check(p, "user9999", "pw"));
    assert_false(check(p, "user5000", "px"));
    assert_false(check(p, "nobody", "pw"));
    pg_passwd_free(p);
}

/* ---- Helpers for editors ---- */

static void test_line_user(void **state) {
    size_t n = 0;
    const char *u = pg_passwd_line_user("  bob : $6$x \n", 14, &n);
    assert_non_null(u);
    assert_int_equal(n, 3);
    assert_memory_equal(u, "bob", 3);
    assert_null(pg_passwd_line_user("# a:b\n", 6, &n));
    assert_null(pg_passwd_line_user("  \n", 3, &n));
    assert_null(pg_passwd_line_user("nocolon\n", 8, &n));
    u = pg_passwd_line_user(":x", 2, &n);
    assert_non_null(u);
    assert_int_equal(n, 0);
}

static void test_username_problem(void **state) {
    assert_null(pg_passwd_username_problem("alice"));
    assert_null(pg_passwd_username_problem("a b"));
    assert_null(pg_passwd_username_problem("w\xc3\xb6rd"));
    assert_string_equal(pg_passwd_username_problem(""), "empty username");
    assert_string_equal(pg_passwd_username_problem(NULL), "empty username");
    assert_string_equal(pg_passwd_username_problem("a:b"), "username contains ':'");
    assert_string_equal(pg_passwd_username_problem("a\tb"), "username contains control characters");
    assert_string_equal(pg_passwd_username_problem(" a"), "username starts or ends with a space");
    assert_string_equal(pg_passwd_username_problem("a "), "username starts or ends with a space");
    assert_string_equal(pg_passwd_username_problem("#a"), "username starts with '#'");
    char *big = malloc(PG_PASSWD_MAX_USERNAME + 2);
    assert_non_null(big);
    memset(big, 'x', PG_PASSWD_MAX_USERNAME + 1);
    big[PG_PASSWD_MAX_USERNAME + 1] = '\0';
    assert_string_equal(pg_passwd_username_problem(big), "username longer than 65535 bytes");
    big[PG_PASSWD_MAX_USERNAME] = '\0';
    assert_null(pg_passwd_username_problem(big));
    free(big);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mosquitto_pbkdf2_vector),
        cmocka_unit_test(test_mosquitto_sha512_vector),
        cmocka_unit_test(test_mosquitto_iterations_and_utf8),
        cmocka_unit_test(test_make_hash_round_trip),
        cmocka_unit_test(test_make_hash_binary_password),
        cmocka_unit_test(test_make_hash_errors),
        cmocka_unit_test(test_unknown_user_and_nulls),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_comments_blanks_and_whitespace),
        cmocka_unit_test(test_unpadded_base64_accepted),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_duplicate_user),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_10k_users),
        cmocka_unit_test(test_line_user),
        cmocka_unit_test(test_username_problem),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
