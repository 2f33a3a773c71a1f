/* fuzz_files.c - libFuzzer target for the file parsers that read operator-written
 * files: the password file, the ACL file and the config file. The loaders take a
 * path, so the input goes into a memfd and is loaded as /proc/self/fd/N. The first
 * byte picks the parser. Whatever loads is also queried, to exercise lookups on
 * odd data (long names, wildcards, substitutions).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "broker/acl.h"
#include "broker/broker.h"
#include "broker/passwd.h"
#include "gateway/config.h"

static int fd = -1;

static const char *as_file(const uint8_t *data, size_t size, char *path, size_t n) {
    if (fd < 0)
        fd = memfd_create("fuzz", 0);
    if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        return NULL;
    snprintf(path, n, "/proc/self/fd/%d", fd);
    return path;
}

static void fuzz_passwd(const char *path) {
    char err[256];
    pg_passwd *p = pg_passwd_load(path, err, sizeof err);
    if (!p)
        return;
    pg_passwd_check(p, "alice", "secret", 6);
    pg_passwd_free(p);
}

static void fuzz_acl(const char *path) {
    char err[256];
    pg_acl *a = pg_acl_load(path, err, sizeof err);
    if (!a)
        return;
    static const char *topics[] = {"a/b", "$SYS/x", "alice/c/d", "#", "a/+"};
    for (int s = 0; s < 2; s++) {
        pg_acl_set_strict_subscribe(a, s);
        for (size_t i = 0; i < sizeof topics / sizeof *topics; i++)
            for (int acc = 1; acc <= 4; acc <<= 1) {
                pg_acl_check(a, "c/1", "alice", acc, topics[i], strlen(topics[i]));
                pg_acl_check(a, "x%c", NULL, acc, topics[i], strlen(topics[i]));
            }
    }
    pg_acl_free(a);
}

static void fuzz_config(const char *path) {
    struct pg_config c;
    char err[512];
    pg_config_defaults(&c);
    pg_config_load(&c, path, err, sizeof err);
    pg_config_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    if (size < 1 || !as_file(data + 1, size - 1, path, sizeof path))
        return 0;
    switch (data[0] % 3) {
    case 0:
        fuzz_passwd(path);
        break;
    case 1:
        fuzz_acl(path);
        break;
    default:
        fuzz_config(path);
        break;
    }
    return 0;
}
