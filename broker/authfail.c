/* authfail.c - failed authentications per peer address, so guessing is slow.
 *
 * pg_connect() records every refused authentication against the peer's address
 * (port stripped). Past `auth_failure_threshold` failures the address earns a delay
 * that doubles with each further failure up to a cap; adapters hold their refusal
 * (CONNACK, ERROR frame...) that long before answering and closing. An address
 * quiet for ten minutes is forgotten; the table is bounded, evicting the stalest.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"

#define FORGET_MS (10 * 60 * 1000)
#define MAX_PEERS 4096

struct pg_authfail {
    char addr[48];
    uint32_t failures;
    int64_t last;
};

/* "1.2.3.4:5678" -> "1.2.3.4", "[::1]:5678" -> "[::1]". */
static void peer_address(const char *peer, char *out, size_t n) {
    const char *colon = peer ? strrchr(peer, ':') : NULL;
    size_t len = colon ? (size_t)(colon - peer) : (peer ? strlen(peer) : 0);
    if (len >= n)
        len = n - 1;
    memcpy(out, peer ? peer : "", len);
    out[len] = 0;
}

static struct pg_authfail *find_peer(pg_broker *b, const char *addr, int create) {
    struct pg_authfail *stalest = NULL;
    for (uint32_t i = 0; i < b->n_authfail; i++) {
        struct pg_authfail *f = &b->authfail[i];
        if (!strcmp(f->addr, addr))
            return f;
        if (!stalest || f->last < stalest->last)
            stalest = f;
    }
    if (!create)
        return NULL;
    if (b->n_authfail < MAX_PEERS) {
        if (!b->authfail && !(b->authfail = calloc(MAX_PEERS, sizeof *b->authfail)))
            return NULL;
        stalest = &b->authfail[b->n_authfail++];
    }
    memset(stalest, 0, sizeof *stalest);
    strcpy(stalest->addr, addr);
    return stalest;
}

void pg_authfail_record(pg_broker *b, const char *peer) {
    char addr[48];
    peer_address(peer, addr, sizeof addr);
    struct pg_authfail *f = find_peer(b, addr, 1);
    if (!f)
        return;
    if (b->now - f->last > FORGET_MS)
        f->failures = 0;
    f->failures++;
    f->last = b->now;
}

uint32_t pg_auth_delay_ms(pg_broker *b, const char *peer) {
    const struct pg_broker_config *c = &b->cfg;
    char addr[48];
    peer_address(peer, addr, sizeof addr);
    struct pg_authfail *f = c->auth_failure_delay_ms ? find_peer(b, addr, 0) : NULL;
    if (!f || f->failures <= c->auth_failure_threshold || b->now - f->last > FORGET_MS)
        return 0;
    uint64_t d = c->auth_failure_delay_ms;
    for (uint32_t i = c->auth_failure_threshold + 1;
         i < f->failures && d < c->auth_failure_delay_max_ms; i++)
        d *= 2;
    return d > c->auth_failure_delay_max_ms ? c->auth_failure_delay_max_ms : (uint32_t)d;
}
