/* log.h - polygate's log: levelled lines with a timestamp, to stderr or a file.
 *
 * Plain C with no event-loop dependency, so the broker core and adapters log
 * through it too. SIGHUP reopens the file (log rotation). libwebsockets' own log
 * lines are routed here by the gateway.
 */
#ifndef PG_LOG_H
#define PG_LOG_H

enum pg_log_level { PG_LOG_ERROR, PG_LOG_WARNING, PG_LOG_NOTICE, PG_LOG_INFO, PG_LOG_DEBUG };

/* file NULL or "" = stderr. Returns 0, or -1 if the file can't be opened. */
int pg_log_open(const char *file);
int pg_log_reopen(void);
void pg_log_close(void);
/* Returns -1 for an unknown name. */
int pg_log_level_from_name(const char *name);
void pg_log_set_level(int level);
int pg_log_enabled(int level);
void pg_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pg_error(...)  pg_log(PG_LOG_ERROR, __VA_ARGS__)
#define pg_warn(...)   pg_log(PG_LOG_WARNING, __VA_ARGS__)
#define pg_notice(...) pg_log(PG_LOG_NOTICE, __VA_ARGS__)
#define pg_info(...)   pg_log(PG_LOG_INFO, __VA_ARGS__)
#define pg_debug(...)                                                                              \
    do {                                                                                           \
        if (pg_log_enabled(PG_LOG_DEBUG))                                                          \
            pg_log(PG_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

#endif
