/* mqtt_lws.h - the MQTT adapter's lws protocols and per-listener state, used by
 * the gateway to create MQTT vhosts. */
#ifndef PG_MQTT_LWS_H
#define PG_MQTT_LWS_H

#include <stddef.h>

#include "adapters/mqtt/mqtt.h"

struct lws_protocols;

/* Hung on each MQTT vhost as its user pointer. */
struct mqtt_listener {
    pg_broker *broker;
    struct mqtt_settings settings;
    char name[96]; /* "mqtt:0.0.0.0:1883" */
    int tls;
    int max_connections; /* 0 = unlimited */
    int n_connections;
    int *total_connections; /* shared by every listener of the process */
    int total_max;          /* broker.max_connections, 0 = unlimited */
};

extern const struct lws_protocols mqtt_raw_protocols[];
void pg_peer_name(int fd, char *out, size_t n);

#endif
