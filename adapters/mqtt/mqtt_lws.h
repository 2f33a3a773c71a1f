/* mqtt_lws.h - the MQTT adapter on lws: the protocols the gateway puts on its MQTT
 * vhosts (raw TCP/TLS in mqtt_lws.c, WebSocket in mqtt_ws.c) and the glue both
 * share: accepting a connection, feeding it, draining it, closing it. */
#ifndef PG_MQTT_LWS_H
#define PG_MQTT_LWS_H

#include <stddef.h>

#include "adapters/mqtt/mqtt.h"

struct lws;
struct lws_protocols;

/* WebSocket listeners only. */
struct mqtt_ws_settings {
    int max_frame_size;          /* 0 = no limit */
    const char *allowed_origins; /* comma-separated; NULL or "" = any */
    int trust_x_forwarded_for;
};

/* Hung on each MQTT vhost as its user pointer. */
struct mqtt_listener {
    pg_broker *broker;
    struct mqtt_settings settings;
    struct mqtt_ws_settings ws;
    char name[96];        /* "mqtt:0.0.0.0:1883", "mqtt-ws:0.0.0.0:8083" */
    const char *protocol; /* "mqtt", "mqtt-ws": the identity's protocol */
    int tls;
    int max_connections; /* 0 = unlimited */
    int n_connections;
    int *total_connections; /* shared by every listener of the process */
    int total_max;          /* broker.max_connections, 0 = unlimited */
};

/* Per connection, the same for both transports. */
struct mqtt_lws_pss {
    struct mqtt_conn *c;
    uint8_t server_close;
    uint8_t rx_paused;
    uint8_t in_frame; /* WebSocket: inside a frame that began in an earlier chunk */
};

extern const struct lws_protocols mqtt_raw_protocols[];
/* The WebSocket vhost's protocols: [0] "mqtt" also serves HTTP (static files) and
 * clients that name no subprotocol; then the other MQTT subprotocol names. */
extern const struct lws_protocols mqtt_ws_protocols[];

void pg_peer_name(int fd, char *out, size_t n);

/* Creates the connection's mqtt_conn unless a limit is reached; peer is
 * "address:port". Returns 0, or -1 to refuse. */
int mqtt_lws_open(struct lws *wsi, struct mqtt_lws_pss *pss, const char *peer);
/* Bytes from the client; pauses reading while replies or held input pile up.
 * Returns 0, or -1 to close now. */
int mqtt_lws_input(struct lws *wsi, struct mqtt_lws_pss *pss, const void *in, size_t len);
/* One write of everything ready, as `how` (an lws_write_protocol). Returns 0, or -1
 * when the connection is to close (pss->server_close is then set if the server
 * chose to). */
int mqtt_lws_output(struct lws *wsi, struct mqtt_lws_pss *pss, int how);
void mqtt_lws_closed(struct lws *wsi, struct mqtt_lws_pss *pss);

#endif
