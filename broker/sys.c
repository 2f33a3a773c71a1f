/* sys.c - $SYS/broker/... statistics, published as retained messages every
 * sys_interval seconds (mosquitto's topic names, so existing dashboards work).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "broker/internal.h"

static void sys_put(pg_broker *b, const char *topic, const char *value) {
    pg_msg *m =
        pg_msg_new(topic, strlen(topic), value, strlen(value), 0, b->cfg.retain_available, NULL);
    if (!m)
        return;
    pg_publish(b, NULL, m);
    pg_msg_unref(m);
}

static void sys_u64(pg_broker *b, const char *topic, uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    sys_put(b, topic, buf);
}

void pg_sys_publish(pg_broker *b) {
    const struct pg_stats *st = &b->stats;
    char buf[64];
    snprintf(buf, sizeof buf, "%" PRId64 " seconds", (b->now - b->started) / 1000);
    sys_put(b, "$SYS/broker/version", b->version);
    sys_put(b, "$SYS/broker/uptime", buf);
    sys_u64(b, "$SYS/broker/clients/connected", st->clients_connected);
    sys_u64(b, "$SYS/broker/clients/total", b->n_sessions);
    sys_u64(b, "$SYS/broker/clients/maximum", st->clients_maximum);
    sys_u64(b, "$SYS/broker/clients/disconnected", b->n_sessions - st->clients_connected);
    sys_u64(b, "$SYS/broker/messages/received", st->msgs_received);
    sys_u64(b, "$SYS/broker/messages/sent", st->msgs_sent);
    sys_u64(b, "$SYS/broker/messages/dropped", st->msgs_dropped);
    sys_u64(b, "$SYS/broker/bytes/received", st->bytes_received);
    sys_u64(b, "$SYS/broker/bytes/sent", st->bytes_sent);
    sys_u64(b, "$SYS/broker/subscriptions/count", pg_trie_count(b->subs));
    sys_u64(b, "$SYS/broker/retained messages/count", pg_retain_count(b->retained));
}
