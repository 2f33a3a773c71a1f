/* passwd.h - password files in mosquitto's format, for username/password
 * authentication and for the `polygate passwd` command.
 *
 * A file holds one `username:HASH` line per user; blank lines and lines whose
 * first non-blank character is '#' are ignored. HASH is what mosquitto 2.0's
 * mosquitto_passwd writes and its broker reads:
 *
 *   $7$ITERATIONS$SALT$HASH   PBKDF2-HMAC-SHA512 (mosquitto 2.0's default)
 *   $6$SALT$HASH              SHA512(password || salt) (mosquitto 1.x)
 *
 * SALT is 12 bytes and HASH 64 bytes, both in standard base64 with padding.
 * Unlike mosquitto, which skips bad lines with a warning, loading refuses the
 * whole file: a silently missing user is harder to debug than a startup error.
 *
 * The loaded table is immutable, so an authenticate hook can keep a pointer and
 * swap in a freshly loaded one on reload. No plain password is ever stored.
 */
#ifndef PG_PASSWD_H
#define PG_PASSWD_H

#include <stddef.h>

#define PG_PASSWD_SALT_LEN           12
#define PG_PASSWD_HASH_LEN           64
#define PG_PASSWD_DEFAULT_ITERATIONS 101 /* mosquitto_passwd's default */
#define PG_PASSWD_MAX_USERNAME       65535
/* Big enough for any string pg_passwd_make_hash writes. */
#define PG_PASSWD_HASH_STR_MAX 128

typedef struct pg_passwd pg_passwd;

/* Loads and checks a whole file. Returns NULL with "FILE:LINE: problem" (or
 * "FILE: problem" when it cannot be read) in err. An empty file is valid. */
pg_passwd *pg_passwd_load(const char *path, char *err, size_t errlen);
void pg_passwd_free(pg_passwd *p);

/* 1 when username exists and password (len bytes, any content) matches, else 0.
 * Unknown users cost the same hashing work as known ones. */
int pg_passwd_check(const pg_passwd *p, const char *username, const void *password, size_t len);
int pg_passwd_has_user(const pg_passwd *p, const char *username);
size_t pg_passwd_count(const pg_passwd *p);

/* Writes a new "$7$ITERATIONS$SALT$HASH" string with a random salt into out
 * (outlen >= PG_PASSWD_HASH_STR_MAX is always enough). Returns 0, or -1 when
 * iterations < 1, out is too small, or the random generator fails. */
int pg_passwd_make_hash(const char *password, size_t len, int iterations, char *out, size_t outlen);

/* The username of one line exactly as pg_passwd_load sees it (trimmed), for
 * tools that edit files line by line; line may include its newline. Returns
 * NULL for blank, comment and colon-less lines. */
const char *pg_passwd_line_user(const char *line, size_t len, size_t *user_len);

/* NULL when username can be written to and read back from a file; otherwise
 * why not (empty, too long, ':' or control characters, surrounding blanks that
 * the reader would trim, a leading '#' that would make a comment). */
const char *pg_passwd_username_problem(const char *username);

#endif
