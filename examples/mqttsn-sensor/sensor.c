/* sensor.c - a battery-powered temperature sensor speaking MQTT-SN v1.2 over UDP.
 *
 * A starting point for device makers: plain POSIX sockets and libc, no MQTT-SN
 * library. The few messages a sensor needs are encoded and decoded here, byte by
 * byte, as the MQTT-SN v1.2 specification (OASIS / IBM, section 5) lays them out.
 *
 * What it does, and why (each step prints one line on stdout):
 *   1. SEARCHGW / GWINFO   find the gateway ("gwinfo gw=1")
 *   2. CONNECT + will      clean session; the gateway asks for the will topic and
 *                          message, published for us if we vanish ("connected")
 *   3. REGISTER / REGACK   trade the topic name for a 2-byte topic id once, so that
 *                          every PUBLISH is short ("registered TOPIC id=N")
 *   4. per reading:        PUBLISH at QoS 1, wait for PUBACK ("published 21.3 (msg 2)
 *                          acked"), then sleep with the radio off: DISCONNECT with a
 *                          sleep duration ("asleep 10s"), wake with PINGREQ to collect
 *                          what the gateway kept for us ("awake"), CONNECT again to
 *                          become active before the next PUBLISH ("connected")
 *   5. DISCONNECT          a clean goodbye: the will is not published ("disconnected")
 *
 * Errors go to stderr and the program exits 1 (2 for an unknown option).
 *
 * Build:  cc -std=gnu11 -O2 -Wall -Wextra -o mqttsn-sensor sensor.c
 * Usage:  mqttsn-sensor [-h host] [-p port] [-b] [-i client_id] [-t topic] [-n count]
 *                       [-s sleep_seconds] [-k keepalive] [-c command_filter] [-a]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- MQTT-SN v1.2 on the wire (spec section 5) ---- */

/* Message types (5.2.2): the byte after the length. */
enum {
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
    SN_SUBSCRIBE = 0x12,
    SN_SUBACK = 0x13,
    SN_PINGREQ = 0x16,
    SN_PINGRESP = 0x17,
    SN_DISCONNECT = 0x18,
};

/* The Flags byte (5.3.4). */
#define FLAG_DUP      0x80 /* this is a resend */
#define FLAG_QOS1     0x20 /* QoS in bits 6-5: 0x00 QoS 0, 0x20 QoS 1, 0x40 QoS 2 */
#define FLAG_QOS_MASK 0x60
#define FLAG_RETAIN   0x10
#define FLAG_WILL     0x08 /* CONNECT: ask me for a will */
#define FLAG_CLEAN    0x04 /* CONNECT: start a fresh session */
#define TOPIC_TYPE    0x03 /* bits 1-0: what the topic id field holds */
#define TOPIC_NORMAL  0x00 /* a registered id (or, in SUBSCRIBE, a topic name) */
#define TOPIC_PREDEF  0x01 /* an id configured on both sides beforehand */
#define TOPIC_SHORT   0x02 /* two characters, the topic name itself */
#define PROTOCOL_ID   0x01 /* CONNECT's ProtocolId: MQTT-SN v1.2 */

/* Return codes (5.3.10). */
enum { RC_ACCEPTED = 0, RC_CONGESTION = 1, RC_INVALID_TOPIC_ID = 2, RC_NOT_SUPPORTED = 3 };

/* ---- timing ---- */

/* How long to wait for an answer before sending again, and how often (section
 * 6.13). The spec suggests 10-15 s and 3-5 tries for radio networks (section 7.2);
 * a UDP network answers in milliseconds, so shorter waits are fine here. */
#define T_RETRY_MS 3000
#define N_RETRY    3
/* SEARCHGW: how long to wait for GWINFO, and how many searches before giving up. */
#define T_SEARCH_MS 2000
#define N_SEARCH    3

/* The gateway sends nothing bigger to a sensor that only subscribes to short
 * commands; a device that receives long messages needs a bigger buffer (a PUBLISH
 * that does not fit is dropped, and the gateway's resends end with us "lost"). */
#define MAX_MSG 1024

/* ---- the device's state ---- */

static struct {
    int fd;                 /* the UDP socket, connect()ed to the gateway */
    const char *client_id;  /* 1-23 characters, unique and stable per device */
    const char *topic;      /* where readings go */
    const char *cmd_filter; /* -c: commands we subscribe to (NULL = none) */
    char will_topic[256];   /* "<topic>/status" */
    uint16_t keepalive;     /* seconds, while active */
    uint16_t topic_id;      /* from REGACK */
    uint16_t next_msg_id;   /* for REGISTER, PUBLISH, SUBSCRIBE */
    struct {                /* topic ids the gateway told us about (REGISTER, SUBACK) */
        uint16_t id;
        char name[128];
    } known[16];
    unsigned n_known;
} dev;

/* SIGINT / SIGTERM: finish the current exchange, then DISCONNECT cleanly. */
static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Message ids pair a request with its answer; 0 is not used. */
static uint16_t new_msg_id(void) {
    if (++dev.next_msg_id == 0)
        dev.next_msg_id = 1;
    return dev.next_msg_id;
}

/* ---- encoding (5.2: Length, MsgType, then the message's fields) ---- */

/* A message being built. The fields are written from buf[3] on, after 3 bytes kept
 * free for the Length: one byte when the whole message is at most 255 bytes (almost
 * always), else 0x01 followed by two bytes. `start` is where the datagram begins. */
struct out {
    uint8_t buf[3 + MAX_MSG];
    size_t n, start;
    size_t flags_at; /* where the Flags byte is (0 = none): set DUP there on resend */
};

static void out_begin(struct out *m, uint8_t type) {
    m->n = 3;
    m->flags_at = 0;
    m->buf[m->n++] = type;
}

static void put8(struct out *m, uint8_t v) {
    if (m->n >= sizeof m->buf)
        die("message too long");
    m->buf[m->n++] = v;
}

static void put16(struct out *m, uint16_t v) { /* big-endian, "most significant byte first" */
    put8(m, (uint8_t)(v >> 8));
    put8(m, (uint8_t)v);
}

static void put_bytes(struct out *m, const void *p, size_t len) {
    if (len > sizeof m->buf - m->n)
        die("message too long");
    memcpy(m->buf + m->n, p, len);
    m->n += len;
}

static void put_flags(struct out *m, uint8_t flags) {
    m->flags_at = m->n;
    put8(m, flags);
}

/* Writes the Length in front of the fields. */
static void out_end(struct out *m) {
    size_t body = m->n - 3; /* MsgType and fields */
    if (body + 1 <= 255) {
        m->start = 2;
        m->buf[2] = (uint8_t)(body + 1);
    } else {
        m->start = 0;
        m->buf[0] = 0x01;
        m->buf[1] = (uint8_t)((body + 3) >> 8);
        m->buf[2] = (uint8_t)(body + 3);
    }
}

static void send_out(struct out *m) {
    if (send(dev.fd, m->buf + m->start, m->n - m->start, 0) < 0)
        die("send to the gateway: %s", strerror(errno));
}

/* ---- decoding ---- */

/* A received message: its type and the bytes after the type. */
struct in {
    uint8_t type;
    const uint8_t *p;
    size_t n;
};

static uint16_t get16(const uint8_t *p) {
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* Checks the Length against the datagram (one message per datagram). Returns 0
 * for a well-formed message, -1 for anything else (dropped). */
static int decode(const uint8_t *d, size_t n, struct in *m) {
    size_t len, hdr;
    if (n >= 4 && d[0] == 0x01) { /* three-byte Length */
        len = get16(d + 1);
        hdr = 3;
    } else if (n >= 2 && d[0] >= 2) {
        len = d[0];
        hdr = 1;
    } else {
        return -1;
    }
    if (len != n)
        return -1;
    m->type = d[hdr];
    m->p = d + hdr + 1;
    m->n = n - hdr - 1;
    return 0;
}

/* The MsgId of the acknowledgements we wait for, -1 for other messages. */
static int msg_id_of(const struct in *m) {
    if ((m->type == SN_REGACK || m->type == SN_PUBACK) && m->n == 5)
        return get16(m->p + 2); /* TopicId, MsgId, ReturnCode */
    if (m->type == SN_SUBACK && m->n == 6)
        return get16(m->p + 3); /* Flags, TopicId, MsgId, ReturnCode */
    return -1;
}

/* ---- what the gateway sends on its own ---- */

static void remember_topic(uint16_t id, const char *name, size_t len) {
    unsigned i;
    for (i = 0; i < dev.n_known && dev.known[i].id != id; i++)
        ;
    if (i == sizeof dev.known / sizeof dev.known[0])
        i = 0; /* full: a real device would size this for its subscriptions */
    else if (i == dev.n_known)
        dev.n_known++;
    if (len >= sizeof dev.known[i].name)
        len = sizeof dev.known[i].name - 1;
    dev.known[i].id = id;
    memcpy(dev.known[i].name, name, len);
    dev.known[i].name[len] = 0;
}

static const char *known_topic(uint16_t id) {
    for (unsigned i = 0; i < dev.n_known; i++)
        if (dev.known[i].id == id)
            return dev.known[i].name;
    return NULL;
}

static void send_ack(uint8_t type, uint16_t topic_id, uint16_t msg_id, uint8_t rc) {
    struct out a;
    out_begin(&a, type); /* REGACK and PUBACK: TopicId, MsgId, ReturnCode */
    put16(&a, topic_id);
    put16(&a, msg_id);
    put8(&a, rc);
    out_end(&a);
    send_out(&a);
}

/* A command or other message for us (only when subscribed with -c). */
static void on_publish(const struct in *m) {
    if (m->n < 5)
        return;
    uint8_t flags = m->p[0];
    uint16_t topic_id = get16(m->p + 1), msg_id = get16(m->p + 3);
    const char *data = (const char *)m->p + 5;
    int len = (int)(m->n - 5);
    char name[128];
    const char *topic = name;
    if ((flags & TOPIC_TYPE) == TOPIC_SHORT)
        snprintf(name, sizeof name, "%c%c", m->p[1], m->p[2]); /* the name itself */
    else if ((flags & TOPIC_TYPE) == TOPIC_PREDEF)
        snprintf(name, sizeof name, "(predefined %u)", topic_id);
    else
        topic = known_topic(topic_id);
    if (!topic) {
        /* An id we were never told about: the spec's answer is "invalid topic id". */
        fprintf(stderr, "unknown topic id %u from the gateway\n", topic_id);
        if ((flags & FLAG_QOS_MASK) == FLAG_QOS1)
            send_ack(SN_PUBACK, topic_id, msg_id, RC_INVALID_TOPIC_ID);
        return;
    }
    /* Here a device would act on the command; this one prints it. We subscribed at
     * QoS 1, so the gateway sends at most QoS 1 (never the QoS 2 handshake). */
    printf("received %s %.*s\n", topic, len, data);
    if ((flags & FLAG_QOS_MASK) == FLAG_QOS1)
        send_ack(SN_PUBACK, topic_id, msg_id, RC_ACCEPTED);
}

/* Handles a message we did not ask for. */
static void on_unsolicited(const struct in *m) {
    switch (m->type) {
    case SN_REGISTER:
        /* Before the first PUBLISH on a topic matching a wildcard subscription,
         * the gateway tells us the id it will use: TopicId, MsgId, TopicName. */
        if (m->n < 4)
            return;
        remember_topic(get16(m->p), (const char *)m->p + 4, m->n - 4);
        printf("gateway registered %s id=%u\n", known_topic(get16(m->p)), get16(m->p));
        send_ack(SN_REGACK, get16(m->p), get16(m->p + 2), RC_ACCEPTED);
        break;
    case SN_PUBLISH:
        on_publish(m);
        break;
    case SN_DISCONNECT:
        /* The gateway no longer has us as connected: it lost us (keep alive or
         * sleep duration passed), or another device took over our client id. */
        die("the gateway disconnected us (it counts us as lost, or another device "
            "connected with our client id)");
    default:
        break; /* ADVERTISE, GWINFO, late duplicates of answers: nothing to do */
    }
}

/* ---- waiting for answers ---- */

#define BIT(type) (1u << (type))

/* Waits up to timeout_ms for a message whose type is in `types` (a set of BIT()s)
 * and, when want_id >= 0, whose MsgId is want_id. Whatever else the gateway sends
 * meanwhile is handled on the way. With `restart`, each such message restarts the
 * timeout (the gateway is busy sending to us). Returns 1 with the message in *m,
 * 0 on timeout. */
static int wait_for(uint32_t types, int want_id, struct in *m, int timeout_ms, int restart) {
    static uint8_t d[MAX_MSG];
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = dev.fd, .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR) {
            if (stop && !types)
                return 0; /* only idling: stop now */
            continue;     /* a signal: finish this exchange first */
        }
        if (r < 0)
            die("poll: %s", strerror(errno));
        if (r == 0)
            return 0;
        ssize_t n = recv(dev.fd, d, sizeof d, MSG_TRUNC);
        if (n < 0 && errno == ECONNREFUSED)
            die("the gateway's port is closed (ICMP port unreachable)");
        if (n < 0)
            die("recv: %s", strerror(errno));
        if ((size_t)n > sizeof d) {
            fprintf(stderr, "dropped a %zd-byte message (buffer is %d)\n", n, MAX_MSG);
            continue;
        }
        if (decode(d, (size_t)n, m) < 0) {
            fprintf(stderr, "dropped a malformed datagram\n");
            continue;
        }
        if ((types & BIT(m->type)) && (want_id < 0 || msg_id_of(m) == want_id))
            return 1;
        on_unsolicited(m);
        if (restart)
            deadline = now_ms() + timeout_ms;
    }
}

/* Sends a request and waits for its answer, sending it again (DUP set, where the
 * message has that flag) when none comes in time. Exits when all tries fail. */
static void exchange(struct out *req, uint32_t types, int want_id, struct in *reply,
                     const char *what) {
    for (int i = 0; i < N_RETRY; i++) {
        if (i > 0) {
            fprintf(stderr, "no answer to %s, sending it again\n", what);
            if (req->flags_at)
                req->buf[req->flags_at] |= FLAG_DUP;
        }
        send_out(req);
        if (wait_for(types, want_id, reply, T_RETRY_MS, 0))
            return;
    }
    die("no answer to %s after %d tries", what, N_RETRY);
}

/* ---- the steps ---- */

/* 1. Find the gateway. SEARCHGW goes to the address given, or to everyone on the
 * local network (broadcast, -b) when the device does not know where the gateway
 * is; the GWINFO answer comes from the gateway, and from then on we talk to the
 * address it came from. (Gateways may also announce themselves with ADVERTISE
 * every few minutes; waiting for one is the other way to find them.) */
static void find_gateway(const struct sockaddr_in *to, int broadcast) {
    static uint8_t d[MAX_MSG];
    struct out m;
    out_begin(&m, SN_SEARCHGW);
    put8(&m, 1); /* Radius: how many hops a forwarder may relay it; 1 = this network */
    out_end(&m);
    /* Asking one address: connect() to it first, so that an ICMP "port unreachable"
     * (no gateway there) shows up as an error instead of a silent timeout. */
    if (!broadcast && connect(dev.fd, (const struct sockaddr *)to, sizeof *to) < 0)
        die("connect: %s", strerror(errno));
    for (int i = 0; i < N_SEARCH; i++) {
        if (sendto(dev.fd, m.buf + m.start, m.n - m.start, 0,
                   broadcast ? (const struct sockaddr *)to : NULL, broadcast ? sizeof *to : 0) < 0)
            die("SEARCHGW to %s: %s", inet_ntoa(to->sin_addr), strerror(errno));
        int64_t deadline = now_ms() + T_SEARCH_MS;
        int64_t left;
        while ((left = deadline - now_ms()) > 0) {
            struct pollfd p = {.fd = dev.fd, .events = POLLIN};
            if (poll(&p, 1, (int)left) <= 0)
                continue; /* timeout, or a signal */
            struct sockaddr_in from;
            socklen_t from_len = sizeof from;
            ssize_t n = recvfrom(dev.fd, d, sizeof d, 0, (struct sockaddr *)&from, &from_len);
            struct in g;
            if (n < 0 && errno == ECONNREFUSED)
                die("nothing listens on %s:%u (ICMP port unreachable)", inet_ntoa(to->sin_addr),
                    ntohs(to->sin_port));
            if (n < 0 || decode(d, (size_t)n, &g) < 0)
                continue;
            /* GWINFO from a gateway is just GwId; one with a GwAdd field comes from
             * another client answering for a gateway it knows, in the radio
             * network's address format: not used here. */
            if (g.type != SN_GWINFO || g.n != 1)
                continue;
            printf("gwinfo gw=%u\n", g.p[0]);
            /* connect() the socket: send() then goes to the gateway, and only
             * its datagrams (and ICMP errors about it) reach recv(). */
            if (connect(dev.fd, (struct sockaddr *)&from, from_len) < 0)
                die("connect: %s", strerror(errno));
            return;
        }
    }
    die("no gateway answered SEARCHGW (%d tries, %d ms each)", N_SEARCH, T_SEARCH_MS);
}

/* 2. CONNECT. The first time (first = 1): clean session, so nothing left over from
 * an earlier run (an old will, registrations, subscriptions) applies, and the Will
 * flag, so the gateway asks for the will: WILLTOPICREQ -> WILLTOPIC,
 * WILLMSGREQ -> WILLMSG, then CONNACK. If the device vanishes (battery, crash, out
 * of radio range), the gateway notices when the keep alive or sleep duration has
 * passed without a word, and publishes "offline" (retained, so whoever subscribes
 * later still sees it) to <topic>/status. A clean DISCONNECT means no will.
 *
 * After a sleep (first = 0): neither flag. With CleanSession=false and Will=false
 * "the GW keeps all stored client's data" (section 6.3): our will and subscription
 * stay, and the gateway answers straight with CONNACK. Our topic id normally stays
 * too; if not, a PUBACK "invalid topic id" makes us REGISTER again. */
static void connect_gateway(int first) {
    struct out m, wt, wm;
    struct in r;
    out_begin(&m, SN_CONNECT);
    put8(&m, first ? FLAG_CLEAN | FLAG_WILL : 0); /* Flags (CONNECT has no DUP) */
    put8(&m, PROTOCOL_ID);
    put16(&m, dev.keepalive); /* Duration: our keep alive, in seconds */
    put_bytes(&m, dev.client_id, strlen(dev.client_id));
    out_end(&m);

    out_begin(&wt, SN_WILLTOPIC);
    put8(&wt, FLAG_QOS1 | FLAG_RETAIN); /* will QoS 1, retained */
    put_bytes(&wt, dev.will_topic, strlen(dev.will_topic));
    out_end(&wt);
    out_begin(&wm, SN_WILLMSG);
    put_bytes(&wm, "offline", 7);
    out_end(&wm);

    for (int i = 0; i < N_RETRY; i++) {
        if (i > 0)
            fprintf(stderr, "no answer to CONNECT, sending it again\n");
        send_out(&m); /* a CONNECT again restarts the will dialogue */
        while (wait_for(BIT(SN_WILLTOPICREQ) | BIT(SN_WILLMSGREQ) | BIT(SN_CONNACK), -1, &r,
                        T_RETRY_MS, 0)) {
            if (r.type == SN_WILLTOPICREQ) {
                send_out(&wt);
            } else if (r.type == SN_WILLMSGREQ) {
                send_out(&wm);
            } else if (r.n != 1) {
                die("malformed CONNACK");
            } else if (r.p[0] != RC_ACCEPTED) {
                die("CONNECT refused: return code %u (%s)", r.p[0],
                    r.p[0] == RC_CONGESTION ? "congestion: try again later"
                                            : "not supported: check the client id");
            } else {
                printf("connected\n");
                return;
            }
        }
    }
    die("no CONNACK after %d tries", N_RETRY);
}

/* 3. REGISTER the topic name once, then PUBLISH with its 2-byte id: over a radio,
 * every byte costs energy. (Predefined topic ids, configured on the gateway, would
 * save even this exchange.) */
static void register_topic(void) {
    struct out m;
    struct in r;
    uint16_t id = new_msg_id();
    out_begin(&m, SN_REGISTER);
    put16(&m, 0); /* TopicId: 0 when a client registers */
    put16(&m, id);
    put_bytes(&m, dev.topic, strlen(dev.topic));
    out_end(&m);
    exchange(&m, BIT(SN_REGACK), id, &r, "REGISTER");
    if (r.p[4] != RC_ACCEPTED)
        die("REGISTER %s refused: return code %u", dev.topic, r.p[4]);
    dev.topic_id = get16(r.p);
    printf("registered %s id=%u\n", dev.topic, dev.topic_id);
}

/* -c: receive commands. SUBSCRIBE by topic name at QoS 1; messages then arrive
 * while we are active, and are kept for us while we sleep. */
static void subscribe_commands(void) {
    struct out m;
    struct in r;
    uint16_t id = new_msg_id();
    out_begin(&m, SN_SUBSCRIBE);
    put_flags(&m, FLAG_QOS1 | TOPIC_NORMAL);
    put16(&m, id);
    put_bytes(&m, dev.cmd_filter, strlen(dev.cmd_filter));
    out_end(&m);
    exchange(&m, BIT(SN_SUBACK), id, &r, "SUBSCRIBE");
    if (r.p[5] != RC_ACCEPTED)
        die("SUBSCRIBE %s refused: return code %u", dev.cmd_filter, r.p[5]);
    /* A topic name without wildcards gets its id here; for a wildcard filter the
     * id is 0 and the gateway REGISTERs each topic before its first PUBLISH. */
    if (get16(r.p + 1))
        remember_topic(get16(r.p + 1), dev.cmd_filter, strlen(dev.cmd_filter));
    printf("subscribed %s qos=%u\n", dev.cmd_filter, (r.p[0] & FLAG_QOS_MASK) >> 5);
}

/* The sensor itself: a temperature drifting around 21.0 degrees, in tenths. */
static int read_temperature(void) {
    static int tenths = 210;
    tenths += rand() % 5 - 2;      /* a random step of -0.2 .. +0.2 */
    tenths += (210 - tenths) / 10; /* pulled back towards 21.0 */
    return tenths;
}

/* 4a. PUBLISH a reading at QoS 1: the gateway answers PUBACK once the broker has
 * it; with no PUBACK in time we send it again with DUP set (same MsgId, so the
 * gateway can tell a resend from a new reading). */
static void publish_reading(void) {
    int t = read_temperature();
    char payload[16];
    int len = snprintf(payload, sizeof payload, "%d.%d", t / 10, t % 10);
    for (int attempt = 1;; attempt++) {
        struct out m;
        struct in r;
        uint16_t id = new_msg_id();
        out_begin(&m, SN_PUBLISH);
        put_flags(&m, FLAG_QOS1 | TOPIC_NORMAL); /* not retained: a stream of readings */
        put16(&m, dev.topic_id);
        put16(&m, id);
        put_bytes(&m, payload, (size_t)len);
        out_end(&m);
        exchange(&m, BIT(SN_PUBACK), id, &r, "PUBLISH");
        if (r.p[4] == RC_ACCEPTED) {
            printf("published %s (msg %u) acked\n", payload, id);
            return;
        }
        if (r.p[4] == RC_INVALID_TOPIC_ID && attempt == 1) {
            /* The gateway forgot our topic id (it restarted, or dropped the session):
             * register the name again and publish with the new id. */
            fprintf(stderr, "the gateway does not know topic id %u\n", dev.topic_id);
            register_topic();
            continue;
        }
        if (r.p[4] == RC_CONGESTION) { /* busy: this reading is dropped, the next one goes */
            printf("rejected %s (msg %u): congestion\n", payload, id);
            return;
        }
        die("PUBLISH refused: return code %u", r.p[4]);
    }
}

/* 4b. Sleep. DISCONNECT with a Duration tells the gateway "I am asleep, keep my
 * session and my messages; I will be back within Duration seconds". It answers
 * DISCONNECT. If no PINGREQ or CONNECT arrives in time, it counts us as lost
 * and publishes our will.
 *
 * Duration is twice the time we mean to sleep: a cheap device clock runs late,
 * and a wake-up may need a few PINGREQ tries over a lossy radio, so the gateway
 * must not give up on us the moment our sleep should have ended. Not much more,
 * though: the will of a dead device comes that much later. */
static void go_to_sleep(unsigned seconds) {
    struct out m;
    struct in r;
    out_begin(&m, SN_DISCONNECT);
    put16(&m, (uint16_t)(seconds * 2));
    out_end(&m);
    exchange(&m, BIT(SN_DISCONNECT), -1, &r, "DISCONNECT (sleep)");
    printf("asleep %us\n", seconds);
    /* The radio could be off now. A signal (Ctrl-C) ends the sleep early. */
    struct timespec ts = {.tv_sec = seconds};
    nanosleep(&ts, NULL);
}

/* 4c. Wake up. PINGREQ carrying our client id means "I am awake: send what you
 * kept for me". The gateway sends it (REGISTER, PUBLISH: answered as they come)
 * and closes with PINGRESP, after which it considers us asleep again (section
 * 6.14). While messages keep coming we keep waiting; only silence counts against
 * T_RETRY. */
static void wake_up(void) {
    struct out m;
    struct in r;
    out_begin(&m, SN_PINGREQ);
    put_bytes(&m, dev.client_id, strlen(dev.client_id));
    out_end(&m);
    for (int i = 0; i < N_RETRY; i++) {
        send_out(&m);
        if (wait_for(BIT(SN_PINGRESP), -1, &r, T_RETRY_MS, 1)) {
            printf("awake\n");
            return;
        }
    }
    /* The spec suggests going back to sleep and trying later; a demo stops here. */
    die("no PINGRESP after %d tries", N_RETRY);
}

/* -a: a mains-powered device does not sleep. It stays active between readings,
 * handles what arrives, and shows it is alive with a PINGREQ (no client id) every
 * keep alive period; the gateway declares it lost after 1.5 x keep alive of
 * silence. */
static void stay_active(unsigned seconds) {
    int64_t end = now_ms() + (int64_t)seconds * 1000;
    struct in r;
    while (!stop && now_ms() < end) {
        int64_t slice = end - now_ms();
        if (dev.keepalive && slice > (int64_t)dev.keepalive * 1000)
            slice = (int64_t)dev.keepalive * 1000;
        wait_for(0, -1, &r, (int)slice, 0); /* nothing expected: messages handled */
        if (!stop && dev.keepalive && now_ms() < end) {
            struct out m;
            out_begin(&m, SN_PINGREQ);
            out_end(&m);
            exchange(&m, BIT(SN_PINGRESP), -1, &r, "PINGREQ");
        }
    }
}

/* 5. DISCONNECT without Duration: we are leaving for good, so the gateway drops
 * the session (clean session) and does not publish the will. Allowed from the
 * active state and from the asleep one. */
static void disconnect_gateway(void) {
    struct out m;
    struct in r;
    out_begin(&m, SN_DISCONNECT);
    out_end(&m);
    exchange(&m, BIT(SN_DISCONNECT), -1, &r, "DISCONNECT");
    printf("disconnected\n");
}

/* ---- command line ---- */

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s [-h host] [-p port] [-b] [-i client_id] [-t topic] [-n count]\n"
            "          [-s sleep_seconds] [-k keepalive] [-c command_filter] [-a]\n"
            "  -h host    gateway address (default 127.0.0.1)\n"
            "  -p port    gateway UDP port (default 1884)\n"
            "  -b         find the gateway by broadcasting SEARCHGW to 255.255.255.255\n"
            "  -i id      client id, 1-23 characters (default sensor-<pid>)\n"
            "  -t topic   where readings go (default sensors/<client_id>/temp)\n"
            "  -n count   readings to send, 0 = until Ctrl-C (default 0)\n"
            "  -s secs    time between readings, 1-32767 (default 10)\n"
            "  -k secs    keep alive while active, 0 = none (default 60)\n"
            "  -c filter  also subscribe to commands (e.g. 'sensors/<id>/cmd/#')\n"
            "  -a         always on: stay active between readings instead of sleeping\n",
            argv0);
    exit(2);
}

static long number(const char *s, long min, long max, const char *what) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        die("%s must be a number from %ld to %ld, not '%s'", what, min, max, s);
    return v;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    long port = 1884, count = 0, sleep_s = 10, keepalive = 60;
    int broadcast = 0, always_on = 0, opt;
    char id_buf[32], topic_buf[128];

    while ((opt = getopt(argc, argv, "h:p:bi:t:n:s:k:c:a")) != -1) {
        switch (opt) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            port = number(optarg, 1, 65535, "port");
            break;
        case 'b':
            broadcast = 1;
            break;
        case 'i':
            dev.client_id = optarg;
            break;
        case 't':
            dev.topic = optarg;
            break;
        case 'n':
            count = number(optarg, 0, 1000000000, "count");
            break;
        case 's': /* at most 32767: the sleep duration (twice it) has 16 bits */
            sleep_s = number(optarg, 1, 32767, "sleep_seconds");
            break;
        case 'k':
            keepalive = number(optarg, 0, 65535, "keepalive");
            break;
        case 'c':
            dev.cmd_filter = optarg;
            break;
        case 'a':
            always_on = 1;
            break;
        default:
            usage(argv[0]);
        }
    }
    if (optind != argc)
        usage(argv[0]);
    /* A real device uses something stable and unique, e.g. its MAC address: the
     * gateway knows a device by its client id (a new address with the same id
     * takes the session over). */
    if (!dev.client_id) {
        snprintf(id_buf, sizeof id_buf, "sensor-%d", (int)getpid());
        dev.client_id = id_buf;
    }
    size_t id_len = strlen(dev.client_id);
    if (id_len < 1 || id_len > 23) /* section 5.3.1 */
        die("the client id must have 1 to 23 characters");
    if (!dev.topic) {
        snprintf(topic_buf, sizeof topic_buf, "sensors/%s/temp", dev.client_id);
        dev.topic = topic_buf;
    }
    if (!*dev.topic || strpbrk(dev.topic, "+#") || strlen(dev.topic) > 200)
        die("the topic must be 1-200 characters without wildcards");
    if (dev.cmd_filter && (!*dev.cmd_filter || strlen(dev.cmd_filter) > 120))
        die("the command filter must be 1-120 characters");
    snprintf(dev.will_topic, sizeof dev.will_topic, "%s/status", dev.topic);
    dev.keepalive = (uint16_t)keepalive;
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    setvbuf(stdout, NULL, _IOLBF, 0); /* one line at a time, even into a pipe */

    /* No SA_RESTART: a signal interrupts poll() and nanosleep(). */
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct sockaddr_in gw = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (broadcast) {
        gw.sin_addr.s_addr = htonl(INADDR_BROADCAST);
    } else {
        struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM}, *ai;
        int e = getaddrinfo(host, NULL, &hints, &ai);
        if (e)
            die("%s: %s", host, gai_strerror(e));
        gw.sin_addr = ((struct sockaddr_in *)ai->ai_addr)->sin_addr;
        freeaddrinfo(ai);
    }
    dev.fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (dev.fd < 0)
        die("socket: %s", strerror(errno));
    int on = 1;
    if (broadcast && setsockopt(dev.fd, SOL_SOCKET, SO_BROADCAST, &on, sizeof on) < 0)
        die("SO_BROADCAST: %s", strerror(errno));

    find_gateway(&gw, broadcast);
    connect_gateway(1);
    register_topic();
    if (dev.cmd_filter)
        subscribe_commands();

    for (long n = 1;; n++) {
        publish_reading();
        if ((count && n >= count) || stop)
            break;
        if (always_on) {
            stay_active((unsigned)sleep_s);
        } else {
            /* In the awake state the spec lets the gateway deliver to us, not us
             * publish: its state diagram (6.14, figure 4) leaves "awake" only by
             * PINGRESP (asleep again), DISCONNECT or CONNECT (active). So the wake-up
             * collects what waited for us, and a CONNECT makes us active for the next
             * PUBLISH. A device that wakes more often than it has readings to send
             * would only PINGREQ on most wake-ups and CONNECT when it has data. */
            go_to_sleep((unsigned)sleep_s);
            if (stop)
                break; /* DISCONNECT straight from the asleep state */
            wake_up();
            connect_gateway(0);
        }
        if (stop)
            break;
    }
    disconnect_gateway();
    close(dev.fd);
    return 0;
}
