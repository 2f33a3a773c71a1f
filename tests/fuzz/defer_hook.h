/* defer_hook.h - for fuzz targets: broker hooks that can make logins and access
 * checks wait for a later answer, as the HTTP auth backend does, so an adapter's
 * waiting and resuming is fuzzed too. The target toggles `deferring` and answers
 * the oldest waiting question from its input. One broker per run: call
 * defer_hook_install() right after creating it. */
#ifndef PG_FUZZ_DEFER_HOOK_H
#define PG_FUZZ_DEFER_HOOK_H

#include <string.h>

#include "broker/broker.h"

static pg_broker *broker;
static int deferring;
static pg_defer *waiting[8];
static int n_waiting;

static int later(void) {
    if (!deferring || n_waiting == 8)
        return PG_HOOK_PASS;
    pg_defer *d = pg_hook_defer(broker);
    if (!d)
        return PG_HOOK_PASS;
    waiting[n_waiting++] = d;
    return PG_HOOK_PENDING;
}

static int hook_authenticate(void *ud, const struct pg_identity *id, const void *pw, size_t n,
                             int has) {
    return later();
}

static int hook_authorize(void *ud, const struct pg_identity *id, int access, const char *t,
                          size_t n) {
    return later();
}

static void defer_hook_install(pg_broker *b) {
    struct pg_hooks hooks = {.authenticate = hook_authenticate, .authorize = hook_authorize};
    pg_broker_add_hooks(b, &hooks);
    broker = b;
    deferring = 0;
    n_waiting = 0;
}

static void answer_oldest(int refuse) {
    if (!n_waiting)
        return;
    pg_defer *d = waiting[0];
    memmove(waiting, waiting + 1, (size_t)--n_waiting * sizeof waiting[0]);
    pg_defer_answer(d, refuse ? PG_RC_NOT_AUTHORIZED : PG_HOOK_ALLOW);
}

#endif
