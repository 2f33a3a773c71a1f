/* sn_gateway.h - the MQTT-SN v1.2 gateway as its transport sees it.
 *
 * One sn_gw per UDP listener: the transport hands it every datagram with its
 * sender's address (sn_gw_input) and gives it a way to send one (sn_send_fn); a
 * timer calls sn_gw_tick for keepalive, sleep and retries. Everything else (client
 * state machines, topic ids, QoS, wills, sleeping clients) is inside, talking to
 * the broker core, so it runs and is fuzzed without any network.
 */
#ifndef PG_SN_GATEWAY_H
#define PG_SN_GATEWAY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "broker/broker.h"

struct sn_predefined {
    uint16_t id;
    const char *topic;
};

struct sn_gw_config {
    pg_broker *broker;
    const char *listener; /* "mqttsn:0.0.0.0:1884", for identities and logs */
    uint8_t gateway_id;
    const char *mountpoint; /* "" = none */
    const struct sn_predefined *predefined;
    int n_predefined;
    int qos_neg1;                /* accept QoS -1 publishes */
    const char *username;        /* every client's credentials; NULL or "" = anonymous */
    const char *password;        /* NULL or "" = none */
    const char *allowed_clients; /* comma-separated client ids; NULL or "" = any */
    int max_registrations;       /* normal topic ids per client */
    int retry_interval_s;
    int max_retries;
    int max_clients;        /* connected clients, 0 = unlimited */
    int *total_connections; /* every protocol's connections, NULL = not counted */
    int total_max;          /* broker.max_connections, 0 = unlimited */
    /* Where ADVERTISE goes; GWINFO answers to SEARCHGW go there too. NULL = none. */
    const struct sockaddr *broadcast;
    socklen_t broadcast_len;
};

/* Sends one datagram; the gateway keeps no socket of its own. */
typedef void (*sn_send_fn)(void *ud, const struct sockaddr *to, socklen_t tolen, const uint8_t *buf,
                           size_t len);

struct sn_gw;

/* Strings in c are copied. Returns NULL when out of memory. */
struct sn_gw *sn_gw_new(const struct sn_gw_config *c, sn_send_fn send, void *send_ud);
/* One datagram from `from`. Never fails: bad input is dropped and logged. */
void sn_gw_input(struct sn_gw *gw, const struct sockaddr *from, socklen_t fromlen,
                 const uint8_t *buf, size_t len);
/* Keepalive, sleep and retry deadlines: call a few times a second. */
void sn_gw_tick(struct sn_gw *gw);
/* An ADVERTISE (gateway id, duration) to `to`. */
void sn_gw_advertise(struct sn_gw *gw, const struct sockaddr *to, socklen_t tolen,
                     uint16_t duration_s);
int sn_gw_clients(const struct sn_gw *gw);
/* Detaches every client (wills follow the broker's shutdown) and frees gw. */
void sn_gw_free(struct sn_gw *gw);

#endif
