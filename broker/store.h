/* store.h - where persistence plugs into the broker core.
 *
 * The core keeps all state in memory and tells a store about every change that a
 * restart should survive: retained messages and persistent sessions. With no store
 * set (the default) nothing is persisted. A store (e.g. SQLite, a later issue)
 * implements these calls and, at start-up, feeds saved state back through
 * pg_broker_restore_retained() before listeners open.
 */
#ifndef PG_STORE_H
#define PG_STORE_H

#include "broker/broker.h"

struct pg_store_ops {
    /* A retained message was set (m != NULL) or cleared (m == NULL). */
    void (*retain_changed)(void *ud, const char *topic, size_t len, const pg_msg *m);
    /* A persistent session's durable state changed (subscriptions, identity). */
    void (*session_changed)(void *ud, const pg_session *s);
    /* A session ended for good. */
    void (*session_removed)(void *ud, const char *client_id);
    /* Flush before exit. */
    void (*flush)(void *ud);
};

void pg_broker_set_store(pg_broker *b, const struct pg_store_ops *ops, void *ud);
/* Puts a retained message back at start-up (does not call retain_changed). */
int pg_broker_restore_retained(pg_broker *b, pg_msg *m);

#endif
