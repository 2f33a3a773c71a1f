/* sn_codec.h - MQTT-SN v1.2 message codec.
 *
 * Pure byte-level encoding and decoding of every MQTT-SN v1.2 message (OASIS
 * MQTT-SN Protocol Specification Version 1.2, section 5), no I/O and no state: the
 * MQTT-SN adapter decodes each UDP datagram with sn_decode() and encodes replies
 * with sn_encode(). Decoding is zero-copy: pointers in a decoded message point into
 * the datagram, which must outlive the struct.
 *
 * Validation is strict: a datagram whose length field disagrees with its size, that
 * is truncated, has an unknown type, reserved flag values where the spec forbids
 * them, or fields out of range is rejected with a negative SN_E_* code, so the
 * adapter can drop it and log why.
 */
#ifndef PG_SN_CODEC_H
#define PG_SN_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* Message types (spec 5.2.2). */
enum sn_type {
    SN_ADVERTISE = 0x00,
    SN_SEARCHGW = 0x01,
    SN_GWINFO = 0x02,
    SN_CONNECT = 0x04,
    SN_CONNACK = 0x05,
    SN_WILLTOPICREQ = 0x06,
    SN_WILLTOPIC = 0x07,
    SN_WILLMSGREQ = 0x08,
    SN_WILLMSG = 0x09,
    SN_REGISTER = 0x0A,
    SN_REGACK = 0x0B,
    SN_PUBLISH = 0x0C,
    SN_PUBACK = 0x0D,
    SN_PUBCOMP = 0x0E,
    SN_PUBREC = 0x0F,
    SN_PUBREL = 0x10,
    SN_SUBSCRIBE = 0x12,
    SN_SUBACK = 0x13,
    SN_UNSUBSCRIBE = 0x14,
    SN_UNSUBACK = 0x15,
    SN_PINGREQ = 0x16,
    SN_PINGRESP = 0x17,
    SN_DISCONNECT = 0x18,
    SN_WILLTOPICUPD = 0x1A,
    SN_WILLTOPICRESP = 0x1B,
    SN_WILLMSGUPD = 0x1C,
    SN_WILLMSGRESP = 0x1D,
    SN_ENCAPSULATED = 0xFE, /* Forwarder Encapsulation (5.5) */
};

/* Return codes (5.3.10). */
#define SN_RC_ACCEPTED         0x00
#define SN_RC_CONGESTION       0x01
#define SN_RC_INVALID_TOPIC_ID 0x02
#define SN_RC_NOT_SUPPORTED    0x03

/* Topic id types: the low two bits of Flags (5.3.4). */
#define SN_TOPIC_NORMAL     0 /* a registered id (in (UN)SUBSCRIBE: a topic name) */
#define SN_TOPIC_PREDEFINED 1
#define SN_TOPIC_SHORT      2 /* two characters carried in the id field */

/* Flags (5.3.4), decoded. */
struct sn_flags {
    uint8_t dup;
    int8_t qos; /* 0, 1, 2, or -1 (0b11 on the wire) */
    uint8_t retain;
    uint8_t will;
    uint8_t clean_session;
    uint8_t topic_id_type;
};

/* A byte string inside the datagram. */
typedef struct {
    const uint8_t *p;
    size_t len;
} sn_str;

/* A decoded message: `type` says which member of u is valid. Messages whose
 * fields are the same share a member (noted per member). */
struct sn_msg {
    uint8_t type;
    union {
        struct { /* ADVERTISE */
            uint8_t gw_id;
            uint16_t duration;
        } advertise;
        struct { /* SEARCHGW */
            uint8_t radius;
        } searchgw;
        struct { /* GWINFO: gw_add is empty when a gateway sent it */
            uint8_t gw_id;
            sn_str gw_add;
        } gwinfo;
        struct { /* CONNECT */
            struct sn_flags flags;
            uint8_t protocol_id; /* must be 0x01 */
            uint16_t duration;   /* keep alive, seconds */
            sn_str client_id;    /* 1..23 bytes per spec; longer ones are accepted */
        } connect;
        struct { /* CONNACK, WILLTOPICRESP, WILLMSGRESP */
            uint8_t rc;
        } resp;
        struct { /* WILLTOPIC, WILLTOPICUPD: empty (no flags) = delete the will */
            struct sn_flags flags;
            sn_str topic;
            uint8_t empty;
        } willtopic;
        struct { /* WILLMSG, WILLMSGUPD */
            sn_str msg;
        } willmsg;
        struct {               /* REGISTER */
            uint16_t topic_id; /* 0 from a client */
            uint16_t msg_id;
            sn_str topic;
        } reg;
        struct { /* REGACK */
            uint16_t topic_id;
            uint16_t msg_id;
            uint8_t rc;
        } regack;
        struct { /* PUBLISH */
            struct sn_flags flags;
            uint16_t topic_id; /* for SN_TOPIC_SHORT: the two characters, big-endian */
            uint16_t msg_id;
            sn_str data;
        } publish;
        struct { /* PUBACK */
            uint16_t topic_id;
            uint16_t msg_id;
            uint8_t rc;
        } puback;
        struct { /* PUBREC, PUBREL, PUBCOMP, UNSUBACK */
            uint16_t msg_id;
        } ack;
        struct { /* SUBSCRIBE, UNSUBSCRIBE */
            struct sn_flags flags;
            uint16_t msg_id;
            sn_str topic_name; /* topic_id_type NORMAL: the name or filter */
            uint16_t topic_id; /* PREDEFINED: the id; SHORT: the two characters */
        } subscribe;
        struct {                   /* SUBACK */
            struct sn_flags flags; /* granted QoS */
            uint16_t topic_id;
            uint16_t msg_id;
            uint8_t rc;
        } suback;
        struct { /* PINGREQ: client_id empty unless a sleeping client wakes */
            sn_str client_id;
        } pingreq;
        struct { /* DISCONNECT: has_duration = a client going to sleep */
            uint8_t has_duration;
            uint16_t duration;
        } disconnect;
        struct {            /* ENCAPSULATED: the inner message is decoded separately */
            uint8_t radius; /* Ctrl byte's radius bits */
            sn_str wireless_node_id;
            sn_str inner; /* the encapsulated message, whole (sn_decode checked that it
                           * decodes and is not itself ENCAPSULATED) */
        } encap;
    } u;
};

/* Errors from sn_decode (all negative). */
#define SN_E_SHORT    (-1) /* shorter than its header or than the type needs */
#define SN_E_LENGTH   (-2) /* the length field disagrees with the datagram's size */
#define SN_E_TYPE     (-3) /* unknown or reserved message type */
#define SN_E_FLAGS    (-4) /* reserved flag values (e.g. topic id type 0b11) */
#define SN_E_FIELD    (-5) /* a field out of range (protocol id, empty client id...) */
#define SN_E_TRAILING (-6) /* bytes after a message of fixed size */

/* Decodes one whole datagram (or an encapsulated message's inner bytes). Returns 0,
 * or an SN_E_* code. Flags a message type does not use are not checked, only kept
 * (the spec calls them "not used", not reserved). */
int sn_decode(const uint8_t *buf, size_t len, struct sn_msg *m);
/* A short description of an SN_E_* code, for log lines. */
const char *sn_strerror(int err);
/* The name of a message type ("PUBLISH"), or "UNKNOWN". */
const char *sn_type_name(uint8_t type);

/* Encodes m into out (up to cap bytes), choosing the 1-octet length form when the
 * message is shorter than 256 bytes and the 3-octet form otherwise. Returns the
 * length, or 0 when it does not fit in cap or m is not encodable, which is whenever
 * sn_decode would reject the result (QoS -1 outside PUBLISH, a reserved return
 * code, an empty client id, ...): what it writes always decodes. ENCAPSULATED:
 * u.encap.inner is appended as is, once checked the same way. */
size_t sn_encode(const struct sn_msg *m, uint8_t *out, size_t cap);

/* Flags byte <-> struct sn_flags. */
uint8_t sn_flags_byte(const struct sn_flags *f);
void sn_flags_parse(uint8_t b, struct sn_flags *f);

#endif
