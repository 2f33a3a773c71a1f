/* codec.h - MQTT 3.1, 3.1.1 and 5.0 packet codec.
 *
 * Pure byte-level encoding and decoding, no I/O and no broker knowledge: the MQTT
 * adapter frames bytes from a socket with mqtt_frame(), decodes each whole packet
 * with mqtt_decode(), and encodes replies with mqtt_encode(). Decoding is zero-copy:
 * every mqtt_str in a decoded packet points into the caller's buffer, which must
 * outlive the packet struct. Validation is strict (MQTT 5.0 section 1.5, 2, 3, 4.7):
 * anything malformed yields a reason code the adapter can put in a DISCONNECT or
 * CONNACK before closing.
 */
#ifndef PG_MQTT_CODEC_H
#define PG_MQTT_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* Protocol levels as carried in CONNECT. */
#define MQTT_V31  3
#define MQTT_V311 4
#define MQTT_V5   5

enum mqtt_type {
    MQTT_CONNECT = 1,
    MQTT_CONNACK = 2,
    MQTT_PUBLISH = 3,
    MQTT_PUBACK = 4,
    MQTT_PUBREC = 5,
    MQTT_PUBREL = 6,
    MQTT_PUBCOMP = 7,
    MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9,
    MQTT_UNSUBSCRIBE = 10,
    MQTT_UNSUBACK = 11,
    MQTT_PINGREQ = 12,
    MQTT_PINGRESP = 13,
    MQTT_DISCONNECT = 14,
    MQTT_AUTH = 15,
};

/* MQTT 5.0 reason codes (section 2.4). v3 return codes are mapped by the adapter. */
enum mqtt_reason {
    MQTT_RC_SUCCESS = 0x00,
    MQTT_RC_GRANTED_QOS1 = 0x01,
    MQTT_RC_GRANTED_QOS2 = 0x02,
    MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
    MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
    MQTT_RC_CONTINUE_AUTH = 0x18,
    MQTT_RC_REAUTHENTICATE = 0x19,
    MQTT_RC_UNSPECIFIED = 0x80,
    MQTT_RC_MALFORMED = 0x81,
    MQTT_RC_PROTOCOL_ERROR = 0x82,
    MQTT_RC_IMPL_SPECIFIC = 0x83,
    MQTT_RC_UNSUPPORTED_VERSION = 0x84,
    MQTT_RC_CLIENT_ID_NOT_VALID = 0x85,
    MQTT_RC_BAD_USERNAME_OR_PASSWORD = 0x86,
    MQTT_RC_NOT_AUTHORIZED = 0x87,
    MQTT_RC_SERVER_UNAVAILABLE = 0x88,
    MQTT_RC_SERVER_BUSY = 0x89,
    MQTT_RC_BANNED = 0x8A,
    MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
    MQTT_RC_BAD_AUTH_METHOD = 0x8C,
    MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
    MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
    MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
    MQTT_RC_TOPIC_NAME_INVALID = 0x90,
    MQTT_RC_PACKET_ID_IN_USE = 0x91,
    MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
    MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93,
    MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
    MQTT_RC_PACKET_TOO_LARGE = 0x95,
    MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
    MQTT_RC_QUOTA_EXCEEDED = 0x97,
    MQTT_RC_ADMIN_ACTION = 0x98,
    MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
    MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
    MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
    MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
    MQTT_RC_SERVER_MOVED = 0x9D,
    MQTT_RC_SHARED_SUB_NOT_SUPPORTED = 0x9E,
    MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
    MQTT_RC_MAX_CONNECT_TIME = 0xA0,
    MQTT_RC_SUB_IDS_NOT_SUPPORTED = 0xA1,
    MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED = 0xA2,
};

/* v3.1/v3.1.1 CONNACK return codes. */
enum mqtt_v3_connack {
    MQTT_V3_ACCEPTED = 0,
    MQTT_V3_BAD_VERSION = 1,
    MQTT_V3_ID_REJECTED = 2,
    MQTT_V3_SERVER_UNAVAILABLE = 3,
    MQTT_V3_BAD_USERNAME_OR_PASSWORD = 4,
    MQTT_V3_NOT_AUTHORIZED = 5,
};

enum mqtt_prop_id {
    MQTT_PROP_PAYLOAD_FORMAT = 0x01,
    MQTT_PROP_MESSAGE_EXPIRY = 0x02,
    MQTT_PROP_CONTENT_TYPE = 0x03,
    MQTT_PROP_RESPONSE_TOPIC = 0x08,
    MQTT_PROP_CORRELATION_DATA = 0x09,
    MQTT_PROP_SUBSCRIPTION_ID = 0x0B,
    MQTT_PROP_SESSION_EXPIRY = 0x11,
    MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,
    MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,
    MQTT_PROP_AUTH_METHOD = 0x15,
    MQTT_PROP_AUTH_DATA = 0x16,
    MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,
    MQTT_PROP_WILL_DELAY = 0x18,
    MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,
    MQTT_PROP_RESPONSE_INFO = 0x1A,
    MQTT_PROP_SERVER_REFERENCE = 0x1C,
    MQTT_PROP_REASON_STRING = 0x1F,
    MQTT_PROP_RECEIVE_MAXIMUM = 0x21,
    MQTT_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,
    MQTT_PROP_TOPIC_ALIAS = 0x23,
    MQTT_PROP_MAXIMUM_QOS = 0x24,
    MQTT_PROP_RETAIN_AVAILABLE = 0x25,
    MQTT_PROP_USER_PROPERTY = 0x26,
    MQTT_PROP_MAXIMUM_PACKET_SIZE = 0x27,
    MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
    MQTT_PROP_SUB_ID_AVAILABLE = 0x29,
    MQTT_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

#define MQTT_HAS(props, id) (((props)->present >> (id)) & 1)
#define MQTT_SET(props, id) ((props)->present |= (uint64_t)1 << (id))

#define MQTT_MAX_REMAINING 268435455u /* largest Variable Byte Integer */
#define MQTT_MAX_SUB_ID    268435455u
#define MQTT_MAX_SUB_IDS   32 /* subscription ids one decoded PUBLISH keeps */

/* A UTF-8 string or binary data; not NUL-terminated. p == NULL when absent. */
typedef struct {
    const uint8_t *p;
    uint32_t len;
} mqtt_str;

/* Properties (v5 only; ignored for v3). `present` has bit (1 << id) set for each
 * property carried. User properties:
 *  - decode: `user_raw`/`user_raw_len` is the whole property block and n_user the
 *    count; walk them with mqtt_user_prop_next().
 *  - encode: `user_pairs` is a sequence of (uint16 BE length, bytes) key, value,
 *    key, value... (the broker's storage format, MQTT's string pair without the
 *    0x26 identifier); the encoder writes 0x26 before each pair.
 * Subscription identifiers: decode fills sub_id[] (a client SUBSCRIBE carries at
 * most one; a server PUBLISH may carry several); encode writes sub_ids[0..n). */
struct mqtt_props {
    uint64_t present;
    uint8_t payload_format;
    uint8_t request_problem_info;
    uint8_t request_response_info;
    uint8_t maximum_qos;
    uint8_t retain_available;
    uint8_t wildcard_sub_available;
    uint8_t sub_id_available;
    uint8_t shared_sub_available;
    uint16_t server_keep_alive;
    uint16_t receive_maximum;
    uint16_t topic_alias_maximum;
    uint16_t topic_alias;
    uint32_t message_expiry;
    uint32_t session_expiry;
    uint32_t will_delay;
    uint32_t maximum_packet_size;
    mqtt_str content_type;
    mqtt_str response_topic;
    mqtt_str correlation_data;
    mqtt_str assigned_client_id;
    mqtt_str auth_method;
    mqtt_str auth_data;
    mqtt_str response_info;
    mqtt_str server_reference;
    mqtt_str reason_string;
    uint32_t n_sub_ids;
    uint32_t sub_ids[MQTT_MAX_SUB_IDS];
    const uint8_t *user_raw; /* decode */
    uint32_t user_raw_len;
    uint32_t n_user;
    const uint8_t *user_pairs; /* encode */
    uint32_t user_pairs_len;
};

struct mqtt_connect {
    uint8_t version; /* MQTT_V31, MQTT_V311, MQTT_V5 */
    uint8_t clean_start;
    uint8_t will_flag;
    uint8_t will_qos;
    uint8_t will_retain;
    uint8_t has_username;
    uint8_t has_password;
    uint16_t keepalive;
    mqtt_str client_id;
    mqtt_str will_topic;
    mqtt_str will_payload;
    mqtt_str username;
    mqtt_str password;
    struct mqtt_props props;
    struct mqtt_props will_props;
};

struct mqtt_connack {
    uint8_t session_present;
    uint8_t reason; /* v5 reason code, or v3 return code when encoding for v3 */
    struct mqtt_props props;
};

struct mqtt_publish {
    uint8_t dup;
    uint8_t qos;
    uint8_t retain;
    uint16_t packet_id; /* 0 for QoS 0 */
    mqtt_str topic;     /* may be empty in v5 when a topic alias is set */
    mqtt_str payload;
    struct mqtt_props props;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP. A v5 reason of 0 with no properties is encoded
 * in the short form (2 bytes), as the spec allows. */
struct mqtt_ack {
    uint16_t packet_id;
    uint8_t reason;
    struct mqtt_props props;
};

/* SUBSCRIBE: entries are (filter, options byte) walked with mqtt_sub_next().
 * UNSUBSCRIBE: entries are filters walked with mqtt_unsub_next(). */
struct mqtt_subscribe {
    uint16_t packet_id;
    struct mqtt_props props;
    const uint8_t *entries;
    uint32_t entries_len;
    uint32_t count;
};

/* SUBACK and UNSUBACK: one reason code per filter. (v3.1.1 UNSUBACK has none.) */
struct mqtt_suback {
    uint16_t packet_id;
    struct mqtt_props props;
    const uint8_t *reasons;
    uint32_t count;
};

/* DISCONNECT and AUTH. */
struct mqtt_reason_only {
    uint8_t reason;
    struct mqtt_props props;
};

struct mqtt_packet {
    uint8_t type;  /* enum mqtt_type */
    uint8_t flags; /* low nibble of the fixed header */
    union {
        struct mqtt_connect connect;
        struct mqtt_connack connack;
        struct mqtt_publish publish;
        struct mqtt_ack ack;
        struct mqtt_subscribe subscribe;    /* SUBSCRIBE, UNSUBSCRIBE */
        struct mqtt_suback suback;          /* SUBACK, UNSUBACK */
        struct mqtt_reason_only disconnect; /* DISCONNECT, AUTH */
    } u;
};

/* Subscription options byte (v5 3.8.3.1; v3 uses only the QoS bits). */
#define MQTT_SUBOPT_QOS(o)   ((o)&0x03)
#define MQTT_SUBOPT_NO_LOCAL 0x04
#define MQTT_SUBOPT_RAP      0x08
#define MQTT_SUBOPT_RH(o)    (((o) >> 4) & 0x03)

/* Framing: looks at the start of a byte stream.
 * Returns 1 and sets *pkt_len (fixed header + remaining length) when a whole packet
 * is present, 0 when more bytes are needed (setting *pkt_len when already known),
 * or a negative reason code: -MQTT_RC_MALFORMED for a bad Variable Byte Integer,
 * -MQTT_RC_PACKET_TOO_LARGE when the packet would exceed max_packet (0 = no limit). */
int mqtt_frame(const uint8_t *buf, size_t len, uint32_t max_packet, uint32_t *pkt_len);

/* Decodes one whole packet (as delimited by mqtt_frame). `version` is the
 * connection's protocol level (ignored for CONNECT, which carries its own).
 * Returns 0 or a reason code: MQTT_RC_MALFORMED, MQTT_RC_PROTOCOL_ERROR,
 * MQTT_RC_TOPIC_NAME_INVALID, MQTT_RC_UNSUPPORTED_VERSION (CONNECT with an unknown
 * level or protocol name; out->u.connect.version is then the level seen, so the
 * adapter can answer in the right form), ... */
int mqtt_decode(const uint8_t *pkt, uint32_t len, uint8_t version, struct mqtt_packet *out);

/* Encodes p for `version` into dst. Returns the encoded size; when it exceeds cap
 * nothing is written, so call with cap 0 to learn the size first. Properties are
 * written only for v5. Returns 0 when p cannot be encoded at all: AUTH before v5,
 * an unknown type, a string over 65535 bytes, QoS 3, or a packet over the largest
 * remaining length. The fixed-header flags come from the packet's fields (p->flags
 * is ignored), and properties the packet type may not carry are left out. */
size_t mqtt_encode(const struct mqtt_packet *p, uint8_t version, uint8_t *dst, size_t cap);

/* Iterators: start with *cursor = 0; return 1 while an entry is produced. */
int mqtt_user_prop_next(const struct mqtt_props *props, uint32_t *cursor, mqtt_str *key,
                        mqtt_str *val);
int mqtt_sub_next(const struct mqtt_subscribe *s, uint32_t *cursor, mqtt_str *filter,
                  uint8_t *options);
int mqtt_unsub_next(const struct mqtt_subscribe *s, uint32_t *cursor, mqtt_str *filter);

/* Helpers shared with the adapter. */
int mqtt_utf8_valid(const uint8_t *s, size_t len);         /* 1 if well-formed MQTT UTF-8 */
int mqtt_topic_name_valid(const uint8_t *s, size_t len);   /* no wildcards, non-empty */
int mqtt_topic_filter_valid(const uint8_t *s, size_t len); /* wildcard placement rules */
size_t mqtt_varint_size(uint32_t v);
size_t mqtt_varint_write(uint8_t *dst, uint32_t v);

#endif
