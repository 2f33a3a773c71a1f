/* sn_lws.h - an MQTT-SN UDP listener on the lws loop, feeding an sn_gw. */
#ifndef PG_SN_LWS_H
#define PG_SN_LWS_H

#include <stddef.h>

#include "adapters/mqttsn/sn_gateway.h"

struct lws_context;
struct sn_lws;

/* Binds UDP bind_addr:port (IPv4 or IPv6; port 0 = any free port). broadcast: the socket
 * may send to a broadcast address (ADVERTISE). Returns NULL with err set. */
struct sn_lws *sn_lws_open(struct lws_context *cx, const char *bind_addr, int port, int broadcast,
                           char *err, size_t errlen);
/* The gateway that gets this listener's datagrams; its sender is sn_lws_sender()
 * with the sn_lws as user data. */
void sn_lws_attach(struct sn_lws *l, struct sn_gw *gw);
sn_send_fn sn_lws_sender(void);
int sn_lws_port(const struct sn_lws *l);
/* After the lws context is destroyed. */
void sn_lws_free(struct sn_lws *l);

#endif
