/* passwd_cmd.c - `polygate passwd [-c] [-b] [-D] FILE USER [PASSWORD]`: creates
 * and edits mosquitto-format password files, like mosquitto_passwd, so one file
 * can serve both brokers.
 *
 * Without -c the file must already load cleanly (pg_passwd_load): we never
 * rewrite a file the broker would refuse. Other lines, comments included, are
 * copied byte for byte and in order; the user's line is replaced where it was
 * or appended. The new file is written next to the old one and renamed over
 * it, so a crash leaves either the old or the new file, never half of one. A
 * new file is mode 0600; an existing one keeps its mode and owner.
 *
 * Plain passwords live only in heap buffers that are wiped before being freed;
 * a -b password is also blanked in argv once copied.
 */
#include "gateway/passwd_cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "broker/passwd.h"

#define PW_MAX 65535 /* an MQTT password is at most 65535 bytes */

struct opts {
    int create, batch, del;
    const char *file, *user;
    char *password; /* -b: points into argv, wiped once copied */
};

/* Growing byte buffer for the new file contents. */
struct buf {
    char *p;
    size_t n, cap;
};

static void usage(FILE *f) {
    fprintf(f, "usage: polygate passwd [-c] [-b] [-D] FILE USER [PASSWORD]\n"
               "  -c  create FILE (replacing it) with USER as the only user\n"
               "  -b  batch: take PASSWORD from the command line\n"
               "  -D  delete USER\n"
               "Without -b the password is asked twice on the terminal; when standard\n"
               "input is not a terminal it is read from there (one line, optionally a\n"
               "second identical line). Hashes are mosquitto's $7$ (PBKDF2-SHA512).\n");
}

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("polygate passwd: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

/* ---- Arguments ---- */

/* Returns 0 to go on, 1 after an error, -1 after printing help. */
static int parse_flags(const char *arg, struct opts *o) {
    for (const char *c = arg + 1; *c; c++) {
        switch (*c) {
        case 'c':
            o->create = 1;
            break;
        case 'b':
            o->batch = 1;
            break;
        case 'D':
            o->del = 1;
            break;
        case 'h':
            usage(stdout);
            return -1;
        default:
            fail("unknown option -%c", *c);
            usage(stderr);
            return 1;
        }
    }
    return 0;
}

static int parse_args(int argc, char **argv, struct opts *o) {
    int i = 1, rc;
    memset(o, 0, sizeof *o);
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        if (!strcmp(argv[i], "--")) {
            i++;
            break;
        }
        if (!strcmp(argv[i], "--help"))
            return parse_flags("-h", o);
        if ((rc = parse_flags(argv[i], o)) != 0)
            return rc;
    }
    if (o->create && o->del)
        return fail("-c and -D cannot be used together");
    if (o->batch && o->del)
        return fail("-b and -D cannot be used together");
    if (argc - i != 2 + o->batch) {
        fail("expected FILE USER%s", o->batch ? " PASSWORD" : "");
        usage(stderr);
        return 1;
    }
    o->file = argv[i];
    o->user = argv[i + 1];
    o->password = o->batch ? argv[i + 2] : NULL;
    return 0;
}

/* ---- Reading the password ---- */

static struct termios saved_tio;

/* A signal while echo is off must not leave the terminal silent. */
static void on_signal_restore_tty(int sig) {
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
    _exit(128 + sig);
}

/* Reads one line byte by byte, so no stdio buffer keeps a copy of it.
 * Returns 1 for a line (the newline and a CR before it dropped), 0 at EOF
 * before any byte, -1 when the line is too long or reading fails. */
static int read_line(char *out, size_t cap, size_t *len) {
    size_t n = 0;
    char c;
    ssize_t r;
    while ((r = read(STDIN_FILENO, &c, 1)) == 1 || (r < 0 && errno == EINTR)) {
        if (r < 0)
            continue;
        if (c == '\n')
            break;
        if (n == cap)
            return -1;
        out[n++] = c;
    }
    if (r < 0)
        return -1;
    if (r == 0 && n == 0)
        return 0;
    if (n > 0 && out[n - 1] == '\r')
        n--;
    *len = n;
    return 1;
}

static int prompt_tty(const char *prompt, char *out, size_t cap, size_t *len) {
    struct termios quiet;
    struct sigaction sa, old[3];
    const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
    if (tcgetattr(STDIN_FILENO, &saved_tio) < 0)
        return -1;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal_restore_tty;
    for (int i = 0; i < 3; i++)
        sigaction(sigs[i], &sa, &old[i]);
    quiet = saved_tio;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    fputs(prompt, stderr);
    fflush(stderr);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    int rc = read_line(out, cap, len);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
    for (int i = 0; i < 3; i++)
        sigaction(sigs[i], &old[i], NULL);
    fputc('\n', stderr);
    return rc;
}

/* Asks twice on a terminal; from a pipe takes one line and, if a second one
 * follows, insists it matches (so `printf 'pw\npw\n' |` works as it does for
 * mosquitto_passwd, and so does `echo pw |`). */
static int ask_password(char *pw, size_t *len) {
    int tty = isatty(STDIN_FILENO);
    char *again = malloc(PW_MAX + 1);
    size_t len2 = 0;
    int rc = 1;
    if (!again)
        return fail("out of memory");
    int r1 = tty ? prompt_tty("Password: ", pw, PW_MAX, len) : read_line(pw, PW_MAX, len);
    int r2 = r1 != 1 ? -1
             : tty   ? prompt_tty("Reenter password: ", again, PW_MAX, &len2)
                     : read_line(again, PW_MAX, &len2);
    if (r1 == 0)
        fail("no password given on standard input");
    else if (r1 < 0 || r2 < 0)
        fail("cannot read the password (at most %d bytes)", PW_MAX);
    else if (*len == 0)
        fail("empty password");
    else if ((r2 == 1 || tty) && (len2 != *len || memcmp(pw, again, *len)))
        fail("passwords do not match");
    else
        rc = 0;
    OPENSSL_cleanse(again, PW_MAX + 1);
    free(again);
    return rc;
}

/* Fills pw from the command line (-b) or by asking. */
static int get_password(const struct opts *o, char *pw, size_t *len) {
    if (!o->batch)
        return ask_password(pw, len);
    *len = strlen(o->password);
    if (*len > PW_MAX)
        return fail("password longer than %d bytes", PW_MAX);
    memcpy(pw, o->password, *len);
    OPENSSL_cleanse(o->password, *len); /* blank argv too, so ps stops showing it */
    return 0;
}

/* Hashes the user's new password into "USER:HASH\n". */
static int make_line(const struct opts *o, char *line, size_t cap) {
    char *pw = malloc(PW_MAX + 1), hash[PG_PASSWD_HASH_STR_MAX];
    size_t len = 0;
    int rc = 1;
    if (!pw)
        return fail("out of memory");
    if (get_password(o, pw, &len) == 0) {
        if (pg_passwd_make_hash(pw, len, PG_PASSWD_DEFAULT_ITERATIONS, hash, sizeof hash) < 0)
            fail("cannot hash the password");
        else if (snprintf(line, cap, "%s:%s\n", o->user, hash) >= (int)cap)
            fail("out of memory");
        else
            rc = 0;
    }
    OPENSSL_cleanse(pw, PW_MAX + 1);
    free(pw);
    return rc;
}

/* ---- Building the new file ---- */

static int buf_add(struct buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
    return 0;
}

static int read_all(const char *path, struct buf *b) {
    FILE *f = fopen(path, "rb");
    char chunk[65536];
    size_t got;
    if (!f)
        return -1;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (buf_add(b, chunk, got) < 0) {
            fclose(f);
            errno = ENOMEM;
            return -1;
        }
    int bad = ferror(f);
    fclose(f);
    return bad ? -1 : 0;
}

/* Copies old into out, replacing (newline != NULL) or dropping (NULL) the
 * user's line. Sets *found. */
static int rewrite(const struct buf *old, const char *user, const char *newline, struct buf *out,
                   int *found) {
    size_t ulen = strlen(user), at = 0;
    *found = 0;
    while (at < old->n) {
        const char *line = old->p + at;
        const char *nl = memchr(line, '\n', old->n - at);
        size_t len = nl ? (size_t)(nl - line) + 1 : old->n - at, n;
        const char *u = pg_passwd_line_user(line, len, &n);
        at += len;
        if (!u || n != ulen || memcmp(u, user, n)) {
            if (buf_add(out, line, len) < 0)
                return -1;
            continue;
        }
        *found = 1;
        if (newline && buf_add(out, newline, strlen(newline)) < 0)
            return -1;
    }
    if (*found || !newline)
        return 0;
    if (out->n && out->p[out->n - 1] != '\n' && buf_add(out, "\n", 1) < 0)
        return -1;
    return buf_add(out, newline, strlen(newline));
}

/* ---- Writing ---- */

static int write_fd(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The directory part of path, for the temp file and its fsync. */
static void dir_of(const char *path, char *dir, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, cap, ".");
    else if (slash == path)
        snprintf(dir, cap, "/");
    else
        snprintf(dir, cap, "%.*s", (int)(slash - path), path);
}

/* Replaces path with data through a temp file in the same directory. A new
 * file is 0600; an existing one keeps its mode and (when we may) its owner,
 * so a broker that reads it through its group still can. */
static int write_atomic(const char *path, const struct buf *data, const struct stat *old) {
    char dir[PATH_MAX], tmp[PATH_MAX + 32];
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    dir_of(path, dir, sizeof dir);
    snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX", dir, base);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return fail("cannot create a temporary file in %s: %s", dir, strerror(errno));
    if (old && fchown(fd, old->st_uid, old->st_gid) < 0 && errno != EPERM)
        goto fail_tmp;
    if (fchmod(fd, old ? old->st_mode & 07777 : 0600) < 0 || write_fd(fd, data->p, data->n) < 0 ||
        fsync(fd) < 0)
        goto fail_tmp;
    if (close(fd) < 0) {
        fd = -1;
        goto fail_tmp;
    }
    if (rename(tmp, path) < 0) {
        fd = -1;
        goto fail_tmp;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) { /* make the rename itself durable; best effort */
        fsync(dfd);
        close(dfd);
    }
    return 0;
fail_tmp:
    fail("cannot write %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return 1;
}

/* ---- The command ---- */

/* The file to edit: a symlink's target, so the rename replaces the target. */
static int resolve(const char *file, char *real, struct stat *st, int *exists) {
    if (!realpath(file, real)) {
        if (errno != ENOENT)
            return fail("%s: %s", file, strerror(errno));
        snprintf(real, PATH_MAX, "%s", file);
    }
    *exists = stat(real, st) == 0;
    if (*exists && !S_ISREG(st->st_mode))
        return fail("%s: not a regular file", file);
    return 0;
}

/* Without -c the file must exist and load; -D needs the user to be there. */
static int check_existing(const struct opts *o, int exists) {
    char err[1024];
    if (!exists)
        return fail("%s: %s (use -c to create it)", o->file, strerror(ENOENT));
    pg_passwd *p = pg_passwd_load(o->file, err, sizeof err); /* errors name it as typed */
    if (!p)
        return fail("%s", err);
    int has = pg_passwd_has_user(p, o->user);
    pg_passwd_free(p);
    if (o->del && !has)
        return fail("user '%s' not found in %s", o->user, o->file);
    return 0;
}

static int edit(const struct opts *o, const char *real, const char *newline,
                const struct stat *old) {
    struct buf in = {0}, out = {0};
    int found, rc = 1;
    if (read_all(real, &in) < 0)
        fail("%s: %s", o->file, strerror(errno));
    else if (rewrite(&in, o->user, newline, &out, &found) < 0)
        fail("out of memory");
    else
        rc = write_atomic(real, &out, old);
    free(in.p);
    free(out.p);
    return rc;
}

int pg_passwd_main(int argc, char **argv) {
    struct opts o;
    char real[PATH_MAX], *line = NULL;
    struct stat st;
    int exists = 0, rc = parse_args(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    const char *why = pg_passwd_username_problem(o.user);
    if (why)
        return fail("invalid username: %s", why);
    if (resolve(o.file, real, &st, &exists) || (!o.create && check_existing(&o, exists)))
        return 1;
    size_t cap = strlen(o.user) + PG_PASSWD_HASH_STR_MAX + 2;
    if (!o.del) {
        if (!(line = malloc(cap)))
            return fail("out of memory");
        if (make_line(&o, line, cap)) {
            free(line);
            return 1;
        }
    }
    if (o.create) {
        struct buf b = {line, strlen(line), cap};
        rc = write_atomic(real, &b, exists ? &st : NULL);
    } else {
        rc = edit(&o, real, line, &st);
    }
    free(line);
    return rc;
}
