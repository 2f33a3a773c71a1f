/* mqtt_codec.c - loadgen's own MQTT 3.1.1 encoder/parser (see mqtt_codec.h).
 * Plain byte pushing, no allocation, no dependency on polygate. */
#include "mqtt_codec.h"

#include <string.h>

static size_t put_varint(uint8_t *p, size_t v) {
    size_t n = 0;
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        p[n++] = v ? (uint8_t)(b | 0x80) : b;
    } while (v);
    return n;
}

static size_t varint_len(size_t v) {
    return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

static size_t put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return 2;
}

static size_t put_str(uint8_t *p, const char *s, size_t len) {
    put_u16(p, (uint16_t)len);
    memcpy(p + 2, s, len);
    return 2 + len;
}

long mqtt_frame(const uint8_t *p, size_t len, struct mqtt_pkt *out) {
    size_t rem = 0, i = 1;
    for (unsigned shift = 0;; shift += 7) {
        if (i > 4)
            return -1;
        if (i >= len)
            return 0;
        uint8_t b = p[i++];
        rem |= (size_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
    }
    if (len - i < rem)
        return 0;
    out->type = p[0] >> 4;
    out->flags = p[0] & 0x0f;
    out->body = p + i;
    out->body_len = (uint32_t)rem;
    return (long)(i + rem);
}

int mqtt_parse_publish(const struct mqtt_pkt *pk, struct mqtt_publish *out) {
    const uint8_t *b = pk->body;
    uint32_t len = pk->body_len;
    if (len < 2)
        return -1;
    out->topic_len = (uint16_t)(b[0] << 8 | b[1]);
    out->topic = b + 2;
    out->qos = (pk->flags >> 1) & 3;
    uint32_t off = 2u + out->topic_len;
    out->packet_id = 0;
    if (out->qos) {
        if (len < off + 2)
            return -1;
        out->packet_id = (uint16_t)(b[off] << 8 | b[off + 1]);
        off += 2;
    }
    if (len < off)
        return -1;
    out->payload = b + off;
    out->payload_len = len - off;
    return 0;
}

size_t mqtt_connect_size(size_t id_len) {
    return 1 + 4 + 10 + 2 + id_len;
}

size_t mqtt_connect(uint8_t *p, const char *client_id, uint16_t keepalive) {
    size_t id_len = strlen(client_id);
    size_t n = 0;
    p[n++] = MQTT_CONNECT << 4;
    n += put_varint(p + n, 10 + 2 + id_len);
    n += put_str(p + n, "MQTT", 4);
    p[n++] = 4;    /* protocol level 3.1.1 */
    p[n++] = 0x02; /* clean session */
    n += put_u16(p + n, keepalive);
    n += put_str(p + n, client_id, id_len);
    return n;
}

size_t mqtt_subscribe_size(size_t topic_len) {
    return 1 + 4 + 2 + 2 + topic_len + 1;
}

size_t mqtt_subscribe(uint8_t *p, uint16_t packet_id, const char *topic, uint8_t qos) {
    size_t topic_len = strlen(topic);
    size_t n = 0;
    p[n++] = MQTT_SUBSCRIBE << 4 | 0x02;
    n += put_varint(p + n, 2 + 2 + topic_len + 1);
    n += put_u16(p + n, packet_id);
    n += put_str(p + n, topic, topic_len);
    p[n++] = qos;
    return n;
}

size_t mqtt_publish_size(size_t topic_len, size_t payload_len, uint8_t qos) {
    size_t rem = 2 + topic_len + (qos ? 2 : 0) + payload_len;
    return 1 + varint_len(rem) + rem;
}

size_t mqtt_publish_header(uint8_t *p, const char *topic, uint8_t qos, size_t payload_len,
                           size_t *pid_off) {
    size_t topic_len = strlen(topic);
    size_t n = 0;
    p[n++] = (uint8_t)(MQTT_PUBLISH << 4 | qos << 1);
    n += put_varint(p + n, 2 + topic_len + (qos ? 2 : 0) + payload_len);
    n += put_str(p + n, topic, topic_len);
    *pid_off = 0;
    if (qos) {
        *pid_off = n;
        n += put_u16(p + n, 0);
    }
    return n;
}

size_t mqtt_puback(uint8_t *p, uint16_t packet_id) {
    p[0] = MQTT_PUBACK << 4;
    p[1] = 2;
    put_u16(p + 2, packet_id);
    return MQTT_PUBACK_SIZE;
}
