/* main.c - the polygate command line (SPEC.md "Binary, command line"):
 * load and check the config, open the log, start the gateway, run until a signal.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "gateway/log.h"
#include "gateway/passwd_cmd.h"
#include "gateway/polygate.h"

static struct polygate *running;

static void on_stop_signal(int sig) {
    if (running)
        polygate_stop(running);
}

static void on_hup(int sig) {
    if (running)
        polygate_request_reload(running);
}

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Thousands of clients need thousands of descriptors. */
static void raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max > 1048576 ? 1048576 : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void usage(FILE *f) {
    fprintf(f, "usage: polygate [-c FILE] [-t] [-v] [-V] [-h]\n"
               "       polygate passwd [-c] [-b] [-D] FILE USER [PASSWORD]  (mosquitto_passwd)\n"
               "  -c FILE  config file (default config/polygate.conf)\n"
               "  -t       check the config and exit (0 when valid)\n"
               "  -v       verbose log (debug level)\n"
               "  -V       print the version and exit\n"
               "  -h       this help\n");
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "passwd"))
        return pg_passwd_main(argc - 1, argv + 1);
    const char *path = "config/polygate.conf";
    int test_only = 0, verbose = 0, opt;
    while ((opt = getopt(argc, argv, "c:tvVh")) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            test_only = 1;
            break;
        case 'v':
            verbose = 1;
            break;
        case 'V':
            printf("polygate %s\n", POLYGATE_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    struct pg_config cfg;
    char err[512];
    pg_config_defaults(&cfg);
    if (pg_config_load(&cfg, path, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        pg_config_free(&cfg);
        return 1;
    }
    if (test_only) {
        printf("%s: configuration OK\n", path);
        pg_config_free(&cfg);
        return 0;
    }
    pg_log_set_level(verbose ? PG_LOG_DEBUG : pg_log_level_from_name(cfg.log.level));
    if (pg_log_open(cfg.log.file) < 0) {
        fprintf(stderr, "polygate: cannot open log file %s\n", cfg.log.file);
        return 1;
    }
    raise_fd_limit();
    install_signals();
    running = polygate_new(&cfg, err, sizeof err);
    pg_config_free(&cfg);
    if (!running) {
        pg_error("%s", err);
        fprintf(stderr, "polygate: %s\n", err);
        return 1;
    }
    pg_notice("polygate %s started", POLYGATE_VERSION);
    polygate_run(running);
    pg_notice("shutting down");
    polygate_free(running);
    running = NULL;
    pg_log_close();
    return 0;
}
