/* buf.c - growable byte buffer (see buf.h). */
#include <stdlib.h>
#include <string.h>

#include "adapters/buf.h"

uint8_t *pg_buf_reserve(struct pg_buf *b, size_t n) {
    if (b->cap - b->len >= n && b->mem)
        return pg_buf_data(b) + b->len;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n)
        cap *= 2;
    uint8_t *m = realloc(b->mem, b->headroom + cap);
    if (!m)
        return NULL;
    b->mem = m;
    b->cap = cap;
    return pg_buf_data(b) + b->len;
}

int pg_buf_append(struct pg_buf *b, const void *p, size_t n) {
    uint8_t *dst = pg_buf_reserve(b, n);
    if (!dst)
        return -1;
    memcpy(dst, p, n);
    b->len += n;
    return 0;
}

void pg_buf_consume(struct pg_buf *b, size_t n) {
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(pg_buf_data(b), pg_buf_data(b) + n, b->len - n);
    b->len -= n;
}

void pg_buf_free(struct pg_buf *b) {
    free(b->mem);
    b->mem = NULL;
    b->len = b->cap = 0;
}
