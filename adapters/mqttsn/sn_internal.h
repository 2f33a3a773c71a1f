/* sn_internal.h - the MQTT-SN gateway's private structures, shared by adapters/mqttsn/
 * files only.
 *
 * Layout: sn_gateway.c (lifetime, the client tables, datagram dispatch, sending,
 * timers), sn_connect.c (CONNECT and the will dialogue, DISCONNECT and sleep,
 * PINGREQ, will updates, the broker's callbacks), sn_publish.c (PUBLISH both ways,
 * its acks, REGISTER both ways, retries), sn_subscribe.c (SUBSCRIBE,
 * UNSUBSCRIBE), sn_topics.c (topic ids: registered, predefined, short).
 */
#ifndef PG_SN_INTERNAL_H
#define PG_SN_INTERNAL_H

#include <netinet/in.h>

#include "adapters/mqttsn/sn_codec.h"
#include "adapters/mqttsn/sn_gateway.h"

enum sn_state {
    SN_CONNECTING,     /* CONNECT seen, waiting for the broker (auth) */
    SN_WAIT_WILLTOPIC, /* WILLTOPICREQ sent */
    SN_WAIT_WILLMSG,   /* WILLMSGREQ sent */
    SN_ACTIVE,
    SN_ASLEEP,
    SN_AWAKE,        /* woken by PINGREQ: queued messages going out */
    SN_DISCONNECTED, /* a persistent session kept for the client's return */
};

/* Where a client is: the UDP peer, and behind a forwarder its wireless node id. */
struct sn_addr {
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } u;
    socklen_t len;
    uint8_t node_len;
    uint8_t node[64]; /* longer node ids are refused */
};

/* A topic id this client knows, registered by it or by us. */
struct sn_reg {
    uint16_t id;
    char *topic;
};

/* A QoS 1/2 PUBLISH (or a resent PUBREL) to the client not yet acknowledged. */
struct sn_out {
    pg_msg *msg; /* NULL for a PUBREL */
    uint16_t msg_id;
    uint16_t topic_id;
    uint8_t id_type;
    uint8_t qos;
    uint8_t retain;
    uint8_t wait; /* SN_PUBACK, SN_PUBREC or SN_PUBCOMP */
    uint8_t tries;
    int64_t sent_at;
};

/* A delivery held back until the client acknowledges our REGISTER of its topic. */
struct sn_pending_reg {
    struct pg_delivery d; /* d.msg holds a reference */
    uint16_t topic_id;
    uint16_t msg_id;
    uint8_t tries;
    int64_t sent_at;
};

/* A datagram that arrived while the client waited for an auth answer. */
struct sn_held {
    struct sn_held *next;
    size_t len;
    uint8_t data[];
};

struct sn_client {
    struct sn_gw *gw;
    struct sn_addr addr;
    uint8_t *akey; /* addr as a table key */
    uint16_t akey_len;
    char *client_id;
    char peer[80]; /* "address:port", for the identity and logs */
    pg_session *session;
    uint8_t state;
    uint8_t clean;
    uint8_t waiting;               /* a packet waits for an auth answer (held[0]) */
    uint8_t hold_pump, pump_later; /* see sn_subscribe.c */
    uint8_t pumping, pump_again;   /* see sn_pump */
    uint8_t busy;                  /* frames that use c after calls that may end it */
    uint8_t dead;                  /* ended while busy: freed when the last frame leaves */
    uint16_t duration_s;           /* keep alive while active, sleep duration while asleep */
    int64_t deadline;              /* broker clock: lost when passed (0 = none) */

    /* The will being collected by the CONNECT dialogue, or updated. */
    char *will_topic;
    uint8_t will_qos, will_retain;
    uint8_t *will_msg;
    size_t will_msg_len;
    uint8_t has_will;
    uint8_t will_asked; /* this CONNECT had the will flag: its dialogue sets the will */

    struct sn_reg *regs;
    uint32_t n_regs, cap_regs;
    uint16_t next_topic_id;
    uint16_t next_msg_id; /* our REGISTERs and QoS 0 publishes */

    struct sn_out *out;
    uint16_t n_out, cap_out;
    struct sn_pending_reg *pending_reg; /* NULL unless waiting for a REGACK */

    struct sn_held *held, **held_tail;
    uint16_t n_held;
    size_t held_bytes;

    struct sn_client *next_by_addr, *next_by_id;
};

struct sn_gw {
    struct sn_gw_config c; /* strings owned */
    struct sn_predefined *predefined;
    struct sn_addr broadcast; /* len 0 = none */
    sn_send_fn send;
    void *send_ud;
    struct sn_client **by_addr, **by_id;
    uint32_t cap, n_clients;
    uint32_t n_connected; /* clients attached to a broker session */
    uint64_t dropped_malformed;
    int64_t log_window; /* rate limit for malformed-datagram log lines */
    uint32_t logged_in_window;
};

/* sn_gateway.c */
struct sn_client *sn_client_by_id(struct sn_gw *gw, const char *client_id);
struct sn_client *sn_client_new(struct sn_gw *gw, const struct sn_addr *a, const char *client_id);
/* Moves a client to another address (a CONNECT from elsewhere took it over). */
void sn_client_move(struct sn_client *c, const struct sn_addr *a);
/* Ends a client: out of the tables, its session detached. The memory goes at once,
 * or when the last sn_pin()ned frame using it calls sn_unpin(). */
void sn_client_free(struct sn_client *c);
void sn_pin(struct sn_client *c);
void sn_held_clear(struct sn_client *c);
/* Returns 0 when c is gone (do not touch it), 1 when it is still there. */
int sn_unpin(struct sn_client *c);
void sn_send(struct sn_gw *gw, const struct sn_addr *to, const struct sn_msg *m);
void sn_send_client(struct sn_client *c, const struct sn_msg *m);
void sn_send_rc(struct sn_client *c, uint8_t type, uint8_t rc); /* CONNACK, WILL*RESP */
void sn_send_simple(struct sn_client *c, uint8_t type);         /* no fields */
int64_t sn_now(const struct sn_gw *gw);
/* Handles one decoded message from a known client (the dispatch after lookup). */
void sn_handle(struct sn_client *c, const struct sn_msg *m, const uint8_t *raw, size_t raw_len);
/* Handles the datagrams kept while the client waited, until one waits again. */
void sn_release_held(struct sn_client *c);
void sn_log(struct sn_client *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* sn_connect.c */
extern const struct pg_conn_ops sn_conn_ops;
void sn_on_connect(struct sn_gw *gw, struct sn_client *c, const struct sn_addr *from,
                   const struct sn_msg *m);
void sn_on_willtopic(struct sn_client *c, const struct sn_msg *m);
void sn_on_willmsg(struct sn_client *c, const struct sn_msg *m);
void sn_on_willtopicupd(struct sn_client *c, const struct sn_msg *m);
void sn_on_willmsgupd(struct sn_client *c, const struct sn_msg *m);
void sn_on_disconnect(struct sn_client *c, const struct sn_msg *m);
void sn_on_pingreq(struct sn_client *c, const struct sn_msg *m);
/* The client is gone without saying so (keepalive, sleep, retries): will out. */
void sn_client_lost(struct sn_client *c, const char *why);
/* Keepalive (active) or sleep (asleep) deadline from now. */
void sn_refresh_deadline(struct sn_client *c);
/* The client's broker connection ended (how: PG_DISC_*; the core already knows
 * when it kicked the client). Every detach goes through here, for the counts. */
void sn_detach(struct sn_client *c, int how, int core_knows);
/* Ends the broker connection of a client (how: PG_DISC_*), keeping or freeing the
 * client per its clean session flag. */
void sn_client_end(struct sn_client *c, int how);

/* sn_publish.c */
void sn_on_publish(struct sn_client *c, const struct sn_msg *m);
void sn_on_qos_neg1(struct sn_gw *gw, const struct sn_msg *m);
void sn_on_puback(struct sn_client *c, const struct sn_msg *m);
void sn_on_pubrec(struct sn_client *c, const struct sn_msg *m);
void sn_on_pubrel(struct sn_client *c, const struct sn_msg *m);
void sn_on_pubcomp(struct sn_client *c, const struct sn_msg *m);
void sn_on_register(struct sn_client *c, const struct sn_msg *m);
void sn_on_regack(struct sn_client *c, const struct sn_msg *m);
/* Sends what the broker session has for an active or awake client; an awake one
 * then gets its PINGRESP and sleeps again. */
void sn_pump(struct sn_client *c);
/* Resends what waited retry_interval; returns -1 when max_retries ran out. */
int sn_retry(struct sn_client *c);
void sn_out_clear(struct sn_client *c);

/* sn_subscribe.c */
void sn_on_subscribe(struct sn_client *c, const struct sn_msg *m);
void sn_on_unsubscribe(struct sn_client *c, const struct sn_msg *m);

/* sn_topics.c */
/* The topic name for a PUBLISH/SUBSCRIBE's id and type (mountpoint applied), into
 * buf. Returns its length, or -1 for an unknown id. */
int sn_topic_of(struct sn_client *c, uint8_t id_type, uint16_t id, char *buf, size_t n);
/* The registered id of a topic name, 0 when none. */
uint16_t sn_reg_find(const struct sn_client *c, const char *topic, size_t len);
/* Registers a topic (returns its id); 0 when the client has max_registrations. */
uint16_t sn_reg_add(struct sn_client *c, const char *topic, size_t len);
const char *sn_reg_topic(const struct sn_client *c, uint16_t id);
void sn_reg_remove(struct sn_client *c, uint16_t id);
void sn_regs_clear(struct sn_client *c);
/* The predefined id of a topic name, 0 when none. */
uint16_t sn_predefined_id(const struct sn_gw *gw, const char *topic, size_t len);
/* Topic as the broker sees it <-> as the client sees it (mountpoint). mount returns
 * the length written to buf or -1; unmount returns a pointer into topic. */
int sn_mount(const struct sn_gw *gw, const char *topic, size_t len, char *buf, size_t n);
const char *sn_unmount(const struct sn_gw *gw, const char *topic, size_t *len);

#endif
