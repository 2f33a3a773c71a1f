/* mqtt_codec.h - the load generator's own tiny MQTT 3.1.1 encoder and parser.
 *
 * Deliberately independent of polygate's broker code: the benchmark must not
 * share bugs with the thing it measures. Only what loadgen needs is here:
 * CONNECT, SUBSCRIBE, PUBLISH and PUBACK out; CONNACK, SUBACK, PUBLISH,
 * PUBACK (anything, really) in. Encoders write into a caller buffer that is
 * large enough (see the *_size helpers) and return the bytes written.
 */
#ifndef LG_MQTT_CODEC_H
#define LG_MQTT_CODEC_H

#include <stddef.h>
#include <stdint.h>

enum {
    MQTT_CONNECT = 1,
    MQTT_CONNACK = 2,
    MQTT_PUBLISH = 3,
    MQTT_PUBACK = 4,
    MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9,
    MQTT_PINGRESP = 13,
    MQTT_DISCONNECT = 14,
};

/* One framed packet inside a read buffer (points into it, no copy). */
struct mqtt_pkt {
    uint8_t type;  /* high nibble of the first byte */
    uint8_t flags; /* low nibble */
    const uint8_t *body;
    uint32_t body_len;
};

/* A parsed PUBLISH (points into the packet). */
struct mqtt_publish {
    const uint8_t *topic;
    uint16_t topic_len;
    uint8_t qos;
    uint16_t packet_id; /* 0 for QoS 0 */
    const uint8_t *payload;
    uint32_t payload_len;
};

/* Frames the next packet at p. Returns bytes consumed (> 0), 0 when more
 * bytes are needed, -1 when the remaining-length field is malformed. */
long mqtt_frame(const uint8_t *p, size_t len, struct mqtt_pkt *out);

/* Splits a PUBLISH body into its fields. Returns 0, or -1 if malformed. */
int mqtt_parse_publish(const struct mqtt_pkt *pk, struct mqtt_publish *out);

/* Largest CONNECT mqtt_connect writes for a client id of id_len bytes. */
size_t mqtt_connect_size(size_t id_len);
size_t mqtt_connect(uint8_t *p, const char *client_id, uint16_t keepalive);

size_t mqtt_subscribe_size(size_t topic_len);
size_t mqtt_subscribe(uint8_t *p, uint16_t packet_id, const char *topic, uint8_t qos);

size_t mqtt_publish_size(size_t topic_len, size_t payload_len, uint8_t qos);
/* Writes a PUBLISH header (fixed header, topic, packet id if qos > 0) for a
 * payload of payload_len bytes; the caller appends the payload. On return
 * *pid_off is the offset of the packet id (0 when qos == 0). */
size_t mqtt_publish_header(uint8_t *p, const char *topic, uint8_t qos, size_t payload_len,
                           size_t *pid_off);

#define MQTT_PUBACK_SIZE 4
size_t mqtt_puback(uint8_t *p, uint16_t packet_id);

#endif
