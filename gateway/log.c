/* log.c - see log.h. One process-wide sink; every line is written with a single
 * write-sized fprintf so lines from one thread never interleave. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "gateway/log.h"

static FILE *sink;
static char *sink_path;
static int threshold = PG_LOG_INFO;

static const char *const names[] = {"error", "warning", "notice", "info", "debug"};

int pg_log_open(const char *file) {
    pg_log_close();
    if (!file || !*file)
        return 0;
    sink_path = strdup(file);
    sink = fopen(file, "a");
    if (!sink)
        return -1;
    setvbuf(sink, NULL, _IOLBF, 0);
    return 0;
}

int pg_log_reopen(void) {
    if (!sink_path)
        return 0;
    FILE *f = fopen(sink_path, "a");
    if (!f)
        return -1;
    setvbuf(f, NULL, _IOLBF, 0);
    if (sink)
        fclose(sink);
    sink = f;
    return 0;
}

void pg_log_close(void) {
    if (sink)
        fclose(sink);
    sink = NULL;
    free(sink_path);
    sink_path = NULL;
}

int pg_log_level_from_name(const char *name) {
    for (int i = 0; i < 5; i++)
        if (!strcmp(name, names[i]))
            return i;
    return -1;
}

void pg_log_set_level(int level) {
    threshold = level;
}

int pg_log_enabled(int level) {
    return level <= threshold;
}

void pg_log(int level, const char *fmt, ...) {
    if (level > threshold)
        return;
    char line[1024];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%d %H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03d %-7s ", (int)(tv.tv_usec / 1000),
                  names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* Client ids, usernames and topics come from the network: a newline or an
     * escape sequence in one must not forge log lines or drive a terminal. */
    for (char *p = line + n; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    fprintf(sink ? sink : stderr, "%s\n", line);
}
