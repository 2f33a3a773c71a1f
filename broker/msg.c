/* msg.c - broker messages: one allocation holding the header, topic, properties
 * and payload, shared by reference among every subscriber and the retained store.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"

/* Copies n bytes to *cursor and returns where they landed. */
static void *put(uint8_t **cursor, const void *src, size_t n) {
    void *at = *cursor;
    if (n)
        memcpy(at, src, n);
    *cursor += n;
    return at;
}

pg_msg *pg_msg_new(const char *topic, size_t topic_len, const void *payload, size_t payload_len,
                   int qos, int retain, const struct pg_msg_props *p) {
    static const struct pg_msg_props none;
    if (!p)
        p = &none;
    if (topic_len > 65535 || p->content_type_len > 65535 || p->response_topic_len > 65535 ||
        p->correlation_len > 65535 || payload_len > UINT32_MAX)
        return NULL;
    /* Strings get a NUL each so callers may treat them as C strings. */
    size_t size = sizeof(pg_msg) + topic_len + 1 + p->content_type_len + 1 + p->response_topic_len +
                  1 + p->correlation_len + p->user_props_len + payload_len;
    pg_msg *m = malloc(size);
    if (!m)
        return NULL;
    memset(m, 0, sizeof *m);
    m->refs = 1;
    m->qos = (uint8_t)qos;
    m->retain = retain ? 1 : 0;
    m->has_payload_format = p->has_payload_format ? 1 : 0;
    m->payload_format = p->payload_format;
    m->expiry_s = p->has_expiry ? p->expiry_s : 0;
    m->expires_at = 0; /* set by the router, which knows the clock */
    uint8_t *c = (uint8_t *)(m + 1);
    static const char nul = 0;
    m->topic_len = (uint16_t)topic_len;
    m->topic = put(&c, topic, topic_len);
    put(&c, &nul, 1);
    if (p->content_type) {
        m->content_type_len = (uint16_t)p->content_type_len;
        m->content_type = put(&c, p->content_type, p->content_type_len);
        put(&c, &nul, 1);
    }
    if (p->response_topic) {
        m->response_topic_len = (uint16_t)p->response_topic_len;
        m->response_topic = put(&c, p->response_topic, p->response_topic_len);
        put(&c, &nul, 1);
    }
    if (p->correlation) {
        m->correlation_len = (uint16_t)p->correlation_len;
        m->correlation = put(&c, p->correlation, p->correlation_len);
    }
    m->user_props_len = (uint32_t)p->user_props_len;
    m->user_props = put(&c, p->user_props, p->user_props_len);
    m->payload_len = (uint32_t)payload_len;
    m->payload = put(&c, payload, payload_len);
    return m;
}

void pg_msg_unref(pg_msg *m) {
    if (m && --m->refs == 0)
        free(m);
}

pg_msg *pg_msg_copy(const pg_msg *m, int qos, int retain) {
    struct pg_msg_props p = {
        .has_payload_format = m->has_payload_format,
        .payload_format = m->payload_format,
        .has_expiry = m->expires_at != 0 || m->expiry_s != 0,
        .expiry_s = m->expiry_s,
        .content_type = m->content_type,
        .content_type_len = m->content_type_len,
        .response_topic = m->response_topic,
        .response_topic_len = m->response_topic_len,
        .correlation = m->correlation,
        .correlation_len = m->correlation_len,
        .user_props = m->user_props,
        .user_props_len = m->user_props_len,
    };
    pg_msg *c = pg_msg_new(m->topic, m->topic_len, m->payload, m->payload_len, qos, retain, &p);
    if (c) {
        c->origin = m->origin;
        c->expires_at = m->expires_at;
    }
    return c;
}
