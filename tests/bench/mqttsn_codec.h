/* mqttsn_codec.h - the load generator's own tiny MQTT-SN v1.2 encoder and parser.
 *
 * Written from the OASIS MQTT-SN v1.2 specification (section 5), independent of
 * polygate's adapters/mqttsn/ codec: the benchmark must not share bugs with what
 * it measures. One message per UDP datagram. Header (5.2): Length (one octet,
 * or 0x01 followed by two octets when the message is longer than 255 octets;
 * the length counts the whole message, itself included), MsgType (one octet).
 * Only what loadgen needs: CONNECT, REGISTER, REGACK, PUBLISH, PUBACK,
 * SUBSCRIBE by topic name, PINGREQ, DISCONNECT out; CONNACK, REGISTER, REGACK,
 * PUBLISH, PUBACK, SUBACK in. Encoders write into a caller buffer that is large
 * enough (MQTTSN_MAX_HEADER plus the variable fields) and return the bytes
 * written.
 */
#ifndef LG_MQTTSN_CODEC_H
#define LG_MQTTSN_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* MsgType values (5.2.2). */
enum {
    MQTTSN_CONNECT = 0x04,
    MQTTSN_CONNACK = 0x05,
    MQTTSN_REGISTER = 0x0A,
    MQTTSN_REGACK = 0x0B,
    MQTTSN_PUBLISH = 0x0C,
    MQTTSN_PUBACK = 0x0D,
    MQTTSN_SUBSCRIBE = 0x12,
    MQTTSN_SUBACK = 0x13,
    MQTTSN_PINGREQ = 0x16,
    MQTTSN_PINGRESP = 0x17,
    MQTTSN_DISCONNECT = 0x18,
};

/* Flags octet (5.3.4). */
#define MQTTSN_FLAG_DUP     0x80
#define MQTTSN_FLAG_RETAIN  0x10
#define MQTTSN_FLAG_WILL    0x08
#define MQTTSN_FLAG_CLEAN   0x04
#define MQTTSN_TOPIC_NORMAL 0x00 /* registered id; in SUBSCRIBE: a topic name */
#define MQTTSN_TOPIC_PREDEF 0x01
#define MQTTSN_TOPIC_SHORT  0x02
#define MQTTSN_TOPIC_MASK   0x03
#define MQTTSN_PROTOCOL_ID  0x01 /* CONNECT's ProtocolId (5.3.6) */

/* Return codes (5.3.10). */
#define MQTTSN_RC_ACCEPTED      0x00
#define MQTTSN_RC_CONGESTION    0x01
#define MQTTSN_RC_INVALID_TOPIC 0x02
#define MQTTSN_RC_NOT_SUPPORTED 0x03

#define MQTTSN_MAX_HEADER 4 /* 3 length octets + MsgType */

/* QoS bits of the flags (bits 6-5): 0, 1, 2, or 0b11 for QoS -1. */
static inline uint8_t mqttsn_qos_flags(int qos) {
    return (uint8_t)((qos < 0 ? 3 : qos) << 5);
}
static inline int mqttsn_flags_qos(uint8_t flags) {
    int q = (flags >> 5) & 3;
    return q == 3 ? -1 : q;
}

/* One datagram's message (points into the datagram, no copy). */
struct mqttsn_pkt {
    uint8_t type;
    const uint8_t *body; /* the variable part, after MsgType */
    size_t body_len;
};

/* Frames a datagram. Returns 0, or -1 if the length field disagrees with the
 * datagram's size or the header is malformed. */
int mqttsn_frame(const uint8_t *p, size_t len, struct mqttsn_pkt *out);

/* Header octets (Length and MsgType) of a message with a variable part of
 * body_len octets. */
size_t mqttsn_header_size(size_t body_len);
/* Writes that header; returns its size. */
size_t mqttsn_header(uint8_t *p, uint8_t type, size_t body_len);

size_t mqttsn_connect(uint8_t *p, uint8_t flags, uint16_t duration, const char *client_id);
size_t mqttsn_register(uint8_t *p, uint16_t topic_id, uint16_t msg_id, const char *topic);
size_t mqttsn_regack(uint8_t *p, uint16_t topic_id, uint16_t msg_id, uint8_t rc);
size_t mqttsn_subscribe_name(uint8_t *p, uint8_t flags, uint16_t msg_id, const char *topic);
size_t mqttsn_puback(uint8_t *p, uint16_t topic_id, uint16_t msg_id, uint8_t rc);
size_t mqttsn_pingreq(uint8_t *p);
size_t mqttsn_disconnect(uint8_t *p);

/* PUBLISH (5.4.12): Flags, TopicId, MsgId, Data. Writes the header and the
 * fixed fields for data_len octets of data (the caller appends the data) and
 * returns the bytes written; the MsgId is the last two of them. */
size_t mqttsn_publish_header(uint8_t *p, uint8_t flags, uint16_t topic_id, uint16_t msg_id,
                             size_t data_len);
#define MQTTSN_PUBLISH_FIXED 5 /* Flags + TopicId + MsgId */

/* Parsed incoming messages. Each parser returns 0, or -1 if the body is too
 * short (or too long, where the size is fixed). */
int mqttsn_parse_connack(const struct mqttsn_pkt *pk, uint8_t *rc);
/* REGACK and PUBACK: TopicId, MsgId, ReturnCode. */
int mqttsn_parse_ack3(const struct mqttsn_pkt *pk, uint16_t *topic_id, uint16_t *msg_id,
                      uint8_t *rc);
int mqttsn_parse_suback(const struct mqttsn_pkt *pk, uint8_t *flags, uint16_t *topic_id,
                        uint16_t *msg_id, uint8_t *rc);
int mqttsn_parse_register(const struct mqttsn_pkt *pk, uint16_t *topic_id, uint16_t *msg_id,
                          const uint8_t **topic, size_t *topic_len);

struct mqttsn_publish {
    uint8_t flags;
    uint16_t topic_id;
    uint16_t msg_id;
    const uint8_t *data;
    size_t data_len;
};
int mqttsn_parse_publish(const struct mqttsn_pkt *pk, struct mqttsn_publish *out);

#endif
