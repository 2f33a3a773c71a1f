/* buf.h - a growable byte buffer, shared by the adapters for partial input and
 * queued output. It starts empty (idle connections own no buffer memory) and can
 * keep `headroom` bytes in front of the data, which lws_write() needs (LWS_PRE).
 */
#ifndef PG_BUF_H
#define PG_BUF_H

#include <stddef.h>
#include <stdint.h>

struct pg_buf {
    uint8_t *mem;    /* allocation: headroom + cap */
    size_t headroom; /* fixed at first growth */
    size_t len, cap;
};

static inline uint8_t *pg_buf_data(const struct pg_buf *b) {
    return b->mem + b->headroom;
}

/* Makes room for n more bytes; returns a pointer to the free space or NULL. */
uint8_t *pg_buf_reserve(struct pg_buf *b, size_t n);
int pg_buf_append(struct pg_buf *b, const void *p, size_t n);
/* Drops the first n bytes. */
void pg_buf_consume(struct pg_buf *b, size_t n);
void pg_buf_free(struct pg_buf *b);

#endif
