/* sn_group.h - the MQTT-SN protocol group: one gateway per UDP listener, with
 * its timers (keepalive/retry sweeps, ADVERTISE). */
#ifndef PG_SN_GROUP_H
#define PG_SN_GROUP_H

#include <stddef.h>

#include "broker/broker.h"
#include "gateway/config.h"

struct polygate;
struct lws_context;
struct sn_group;

/* Opens every listener of cfg->mqttsn (none when disabled). Returns NULL with err
 * set on failure. */
/* total_connections: the process's count of connections, which MQTT-SN clients
 * join, held to broker.max_connections. */
struct sn_group *sn_group_start(struct polygate *g, struct lws_context *cx, pg_broker *b,
                                const struct pg_config *cfg, int *total_connections, char *err,
                                size_t errlen);
/* The UDP port listener `index` got, or -1. */
int sn_group_port(const struct sn_group *s, int index);
/* Before the broker is freed and after the lws context is destroyed. */
void sn_group_free(struct sn_group *s);

#endif
