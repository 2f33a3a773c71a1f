/* mqttsn_codec.c - loadgen's own MQTT-SN v1.2 encoder/parser (see mqttsn_codec.h).
 * Plain byte pushing, big-endian two-octet integers (5.1), no allocation, no
 * dependency on polygate. */
#include "mqttsn_codec.h"

#include <string.h>

static size_t put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return 2;
}

static uint16_t get_u16(const uint8_t *p) {
    return (uint16_t)(p[0] << 8 | p[1]);
}

int mqttsn_frame(const uint8_t *p, size_t len, struct mqttsn_pkt *out) {
    size_t hdr, total;
    if (len < 2)
        return -1;
    if (p[0] == 0x01) { /* three-octet length */
        if (len < 4)
            return -1;
        total = get_u16(p + 1);
        hdr = 4;
    } else {
        if (p[0] == 0x00)
            return -1;
        total = p[0];
        hdr = 2;
    }
    if (total != len || total < hdr)
        return -1;
    out->type = p[hdr - 1];
    out->body = p + hdr;
    out->body_len = len - hdr;
    return 0;
}

size_t mqttsn_header_size(size_t body_len) {
    return body_len + 2 <= 255 ? 2 : 4;
}

size_t mqttsn_header(uint8_t *p, uint8_t type, size_t body_len) {
    if (body_len + 2 <= 255) {
        p[0] = (uint8_t)(body_len + 2);
        p[1] = type;
        return 2;
    }
    p[0] = 0x01;
    put_u16(p + 1, (uint16_t)(body_len + 4));
    p[3] = type;
    return 4;
}

size_t mqttsn_connect(uint8_t *p, uint8_t flags, uint16_t duration, const char *client_id) {
    size_t id_len = strlen(client_id);
    size_t n = mqttsn_header(p, MQTTSN_CONNECT, 4 + id_len);
    p[n++] = flags;
    p[n++] = MQTTSN_PROTOCOL_ID;
    n += put_u16(p + n, duration);
    memcpy(p + n, client_id, id_len);
    return n + id_len;
}

size_t mqttsn_register(uint8_t *p, uint16_t topic_id, uint16_t msg_id, const char *topic) {
    size_t t_len = strlen(topic);
    size_t n = mqttsn_header(p, MQTTSN_REGISTER, 4 + t_len);
    n += put_u16(p + n, topic_id);
    n += put_u16(p + n, msg_id);
    memcpy(p + n, topic, t_len);
    return n + t_len;
}

static size_t ack3(uint8_t *p, uint8_t type, uint16_t topic_id, uint16_t msg_id, uint8_t rc) {
    size_t n = mqttsn_header(p, type, 5);
    n += put_u16(p + n, topic_id);
    n += put_u16(p + n, msg_id);
    p[n++] = rc;
    return n;
}

size_t mqttsn_regack(uint8_t *p, uint16_t topic_id, uint16_t msg_id, uint8_t rc) {
    return ack3(p, MQTTSN_REGACK, topic_id, msg_id, rc);
}

size_t mqttsn_puback(uint8_t *p, uint16_t topic_id, uint16_t msg_id, uint8_t rc) {
    return ack3(p, MQTTSN_PUBACK, topic_id, msg_id, rc);
}

size_t mqttsn_subscribe_name(uint8_t *p, uint8_t flags, uint16_t msg_id, const char *topic) {
    size_t t_len = strlen(topic);
    size_t n = mqttsn_header(p, MQTTSN_SUBSCRIBE, 3 + t_len);
    p[n++] = (uint8_t)((flags & ~MQTTSN_TOPIC_MASK) | MQTTSN_TOPIC_NORMAL);
    n += put_u16(p + n, msg_id);
    memcpy(p + n, topic, t_len);
    return n + t_len;
}

size_t mqttsn_pingreq(uint8_t *p) {
    return mqttsn_header(p, MQTTSN_PINGREQ, 0);
}

size_t mqttsn_disconnect(uint8_t *p) {
    return mqttsn_header(p, MQTTSN_DISCONNECT, 0);
}

size_t mqttsn_publish_header(uint8_t *p, uint8_t flags, uint16_t topic_id, uint16_t msg_id,
                             size_t data_len) {
    size_t n = mqttsn_header(p, MQTTSN_PUBLISH, MQTTSN_PUBLISH_FIXED + data_len);
    p[n++] = flags;
    n += put_u16(p + n, topic_id);
    n += put_u16(p + n, msg_id);
    return n;
}

int mqttsn_parse_connack(const struct mqttsn_pkt *pk, uint8_t *rc) {
    if (pk->body_len != 1)
        return -1;
    *rc = pk->body[0];
    return 0;
}

int mqttsn_parse_ack3(const struct mqttsn_pkt *pk, uint16_t *topic_id, uint16_t *msg_id,
                      uint8_t *rc) {
    if (pk->body_len != 5)
        return -1;
    *topic_id = get_u16(pk->body);
    *msg_id = get_u16(pk->body + 2);
    *rc = pk->body[4];
    return 0;
}

int mqttsn_parse_suback(const struct mqttsn_pkt *pk, uint8_t *flags, uint16_t *topic_id,
                        uint16_t *msg_id, uint8_t *rc) {
    if (pk->body_len != 6)
        return -1;
    *flags = pk->body[0];
    *topic_id = get_u16(pk->body + 1);
    *msg_id = get_u16(pk->body + 3);
    *rc = pk->body[5];
    return 0;
}

int mqttsn_parse_register(const struct mqttsn_pkt *pk, uint16_t *topic_id, uint16_t *msg_id,
                          const uint8_t **topic, size_t *topic_len) {
    if (pk->body_len < 4)
        return -1;
    *topic_id = get_u16(pk->body);
    *msg_id = get_u16(pk->body + 2);
    *topic = pk->body + 4;
    *topic_len = pk->body_len - 4;
    return 0;
}

int mqttsn_parse_publish(const struct mqttsn_pkt *pk, struct mqttsn_publish *out) {
    if (pk->body_len < MQTTSN_PUBLISH_FIXED)
        return -1;
    out->flags = pk->body[0];
    out->topic_id = get_u16(pk->body + 1);
    out->msg_id = get_u16(pk->body + 3);
    out->data = pk->body + MQTTSN_PUBLISH_FIXED;
    out->data_len = pk->body_len - MQTTSN_PUBLISH_FIXED;
    return 0;
}
