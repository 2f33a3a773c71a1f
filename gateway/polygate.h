/* polygate.h - polygate as a library: start the gateway from a config, reach its
 * broker core (hooks, inline publishing), run the event loop, stop.
 *
 * The polygate binary is main.c on top of this; examples/embed shows a program of
 * your own doing the same.
 */
#ifndef POLYGATE_H
#define POLYGATE_H

#include <stddef.h>

#include "broker/broker.h"
#include "gateway/config.h"

#define POLYGATE_VERSION "0.1.0"

struct polygate;

/* Creates the broker and opens every enabled listener. cfg is copied where needed
 * and may be freed after. Returns NULL with a message in err on failure (e.g. a
 * port in use). */
struct polygate *polygate_new(const struct pg_config *cfg, char *err, size_t errlen);
pg_broker *polygate_broker(struct polygate *g);
/* The port a listener actually got (useful with port 0), or -1. */
int polygate_port(struct polygate *g, const char *group, int index);
/* Calls fn(ud) every interval_ms on the loop thread until polygate_free. */
int polygate_every(struct polygate *g, int interval_ms, void (*fn)(void *ud), void *ud);
/* Runs the loop until polygate_stop(). Returns 0. */
int polygate_run(struct polygate *g);
/* Both are safe to call from a signal handler. */
void polygate_stop(struct polygate *g);
void polygate_request_reload(struct polygate *g);
/* Wills are sent, connections closed, everything freed. */
void polygate_free(struct polygate *g);

#endif
