/* queue.c - a session's outbound path: the delivery queue and QoS 1/2 state.
 *
 * Routing pushes deliveries onto the session's queue (bounded by
 * max_queued_messages: QoS 0 goes first when it is full, and every drop is
 * counted). The adapter pulls with pg_session_next(): after a reconnect the
 * unacknowledged in-flight deliveries come first again (PUBLISH with DUP, or
 * PUBREL), then queued ones while the window (the client's receive maximum, capped
 * by max_inflight) has room. A QoS 1/2 delivery gets its packet id when pulled.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"

void pg_qentry_release(struct pg_qentry *q) {
    pg_msg_unref(q->msg);
    if (q->n_sub_ids > 1)
        free(q->sub_ids);
    q->msg = NULL;
    q->n_sub_ids = 0;
}

static struct pg_qentry *queue_at(struct pg_queue *q, uint32_t i) {
    return &q->e[(q->head + i) & (q->cap - 1)];
}

static int queue_grow(struct pg_queue *q) {
    uint32_t cap = q->cap ? q->cap * 2 : 4;
    struct pg_qentry *e = malloc(cap * sizeof *e);
    if (!e)
        return -1;
    for (uint32_t i = 0; i < q->len; i++)
        e[i] = *queue_at(q, i);
    free(q->e);
    q->e = e;
    q->cap = cap;
    q->head = 0;
    return 0;
}

static void count_drop(pg_session *s, const pg_msg *m, uint8_t why) {
    s->dropped++;
    s->broker->stats.msgs_dropped++;
    pg_emit(s->broker, PG_EV_DROPPED, &s->id, m, NULL, 0, 0, why);
}

/* Removes the oldest QoS 0 entry to make room; returns 0 if there was none. */
static int drop_oldest_qos0(pg_session *s) {
    struct pg_queue *q = &s->queue;
    for (uint32_t i = 0; i < q->len; i++) {
        struct pg_qentry *e = queue_at(q, i);
        if (e->qos)
            continue;
        count_drop(s, e->msg, PG_RC_QUOTA_EXCEEDED);
        pg_qentry_release(e);
        for (uint32_t j = i; j + 1 < q->len; j++)
            *queue_at(q, j) = *queue_at(q, j + 1);
        q->len--;
        return 1;
    }
    return 0;
}

/* Returns 1 when queued, 0 when dropped. */
int pg_queue_push(pg_session *s, pg_msg *m, uint8_t qos, uint8_t retain, uint32_t sub_id,
                  int bounded) {
    struct pg_queue *q = &s->queue;
    uint32_t max = bounded ? s->broker->cfg.max_queued_messages : 0;
    if (max && q->len >= max && (qos == 0 || !drop_oldest_qos0(s))) {
        count_drop(s, m, PG_RC_QUOTA_EXCEEDED);
        return 0;
    }
    if (q->len == q->cap && queue_grow(q) < 0) {
        count_drop(s, m, PG_RC_UNSPECIFIED);
        return 0;
    }
    struct pg_qentry *e = queue_at(q, q->len++);
    e->msg = pg_msg_ref(m);
    e->qos = qos;
    e->retain = retain;
    e->sub_id = sub_id;
    e->n_sub_ids = sub_id ? 1 : 0;
    e->sub_ids = NULL;
    return 1;
}

static void add_sub_id(struct pg_qentry *e, uint32_t id) {
    if (!id)
        return;
    if (e->n_sub_ids == 0) {
        e->sub_id = id;
        e->n_sub_ids = 1;
        return;
    }
    if (e->n_sub_ids == UINT16_MAX)
        return;
    uint16_t n = e->n_sub_ids;
    if ((n & (n - 1)) == 0) { /* a power of two: the array is full, double it */
        uint32_t *ids = realloc(n == 1 ? NULL : e->sub_ids, (size_t)n * 2 * sizeof *ids);
        if (!ids)
            return;
        if (n == 1)
            ids[0] = e->sub_id;
        e->sub_ids = ids;
    }
    e->sub_ids[e->n_sub_ids++] = id;
}

/* A second subscription of the same session matched the message just queued:
 * one delivery at the highest QoS, carrying every subscription identifier. */
void pg_queue_merge_tail(pg_session *s, uint8_t qos, uint8_t retain, uint32_t sub_id) {
    struct pg_queue *q = &s->queue;
    struct pg_qentry *e = queue_at(q, q->len - 1);
    if (qos > e->qos)
        e->qos = qos;
    e->retain |= retain;
    add_sub_id(e, sub_id);
}

void pg_queue_clear(pg_session *s) {
    struct pg_queue *q = &s->queue;
    for (uint32_t i = 0; i < q->len; i++)
        pg_qentry_release(queue_at(q, i));
    free(q->e);
    memset(q, 0, sizeof *q);
    for (uint16_t i = 0; i < s->n_inflight; i++)
        pg_qentry_release(&s->inflight[i].q);
    free(s->inflight);
    free(s->spent_ids);
    s->spent_ids = NULL;
    s->inflight = NULL;
    s->n_inflight = s->cap_inflight = s->resend = 0;
}

static int packet_id_in_use(const pg_session *s, uint16_t id) {
    for (uint16_t i = 0; i < s->n_inflight; i++)
        if (s->inflight[i].packet_id == id)
            return 1;
    return 0;
}

static uint16_t next_packet_id(pg_session *s) {
    uint16_t id;
    do {
        id = s->next_packet_id++;
        if (s->next_packet_id == 0)
            s->next_packet_id = 1;
    } while (packet_id_in_use(s, id));
    return id;
}

static int window(const pg_session *s) {
    uint16_t w = s->broker->cfg.max_inflight;
    return s->receive_max < w ? s->receive_max : w;
}

static void fill_delivery(pg_session *s, const struct pg_qentry *e, struct pg_delivery *d) {
    d->msg = pg_msg_ref(e->msg);
    d->qos = e->qos;
    d->retain = e->retain;
    d->n_sub_ids = e->n_sub_ids;
    if (e->n_sub_ids == 1) {
        s->scratch_ids[0] = e->sub_id;
        d->sub_ids = s->scratch_ids;
    } else {
        d->sub_ids = e->sub_ids;
    }
    d->expiry_left_s = 0;
    if (e->msg->expires_at) {
        int64_t left = (e->msg->expires_at - s->broker->now + 999) / 1000;
        d->expiry_left_s = left > 0 ? (uint32_t)left : 1;
    }
}

static int expired(const pg_session *s, const pg_msg *m) {
    return m->expires_at && m->expires_at <= s->broker->now;
}

/* After a reconnect: the unacknowledged deliveries go again, in order. */
static int next_resend(pg_session *s, struct pg_delivery *d) {
    struct pg_inflight *f = &s->inflight[s->n_inflight - s->resend];
    /* Entries before the cursor are outstanding again; the client's (possibly
     * new, smaller) receive maximum bounds the PUBLISHes among them. */
    if (f->state != WAIT_PUBCOMP && s->n_inflight - s->resend >= window(s))
        return 0;
    s->resend--;
    memset(d, 0, sizeof *d);
    d->packet_id = f->packet_id;
    if (f->state == WAIT_PUBCOMP) {
        d->kind = PG_DELIVER_PUBREL;
        return 1;
    }
    d->kind = PG_DELIVER_PUBLISH;
    fill_delivery(s, &f->q, d);
    d->dup = 1;
    return 1;
}

static int move_to_inflight(pg_session *s, struct pg_qentry *e, struct pg_delivery *d) {
    if (s->n_inflight == s->cap_inflight) {
        uint32_t cap = s->cap_inflight ? s->cap_inflight * 2u : 4;
        if (cap > 65535)
            cap = 65535;
        struct pg_inflight *n = realloc(s->inflight, cap * sizeof *n);
        if (!n)
            return -1;
        s->inflight = n;
        s->cap_inflight = (uint16_t)cap;
    }
    uint16_t id = next_packet_id(s); /* before the new slot counts as in use */
    struct pg_inflight *f = &s->inflight[s->n_inflight++];
    f->q = *e;
    f->packet_id = id;
    f->state = e->qos == 1 ? WAIT_PUBACK : WAIT_PUBREC;
    d->packet_id = f->packet_id;
    return 0;
}

/* A QoS 0 entry is gone once pulled, but d->sub_ids must stay valid until the
 * next call: park a heap id array on the session until then. */
static void release_keeping_ids(pg_session *s, struct pg_qentry *e) {
    if (e->n_sub_ids > 1) {
        s->spent_ids = e->sub_ids;
        e->n_sub_ids = 0;
    }
    pg_qentry_release(e);
}

int pg_session_next(pg_session *s, struct pg_delivery *d) {
    free(s->spent_ids);
    s->spent_ids = NULL;
    if (s->resend)
        return next_resend(s, d);
    struct pg_queue *q = &s->queue;
    while (q->len) {
        struct pg_qentry *e = queue_at(q, 0);
        if (expired(s, e->msg)) {
            count_drop(s, e->msg, PG_RC_SUCCESS); /* expiry is not an error */
            pg_qentry_release(e);
        } else if (e->qos && s->n_inflight >= window(s)) {
            return 0;
        } else {
            memset(d, 0, sizeof *d);
            d->kind = PG_DELIVER_PUBLISH;
            fill_delivery(s, e, d);
            if (e->qos && move_to_inflight(s, e, d) < 0) {
                pg_msg_unref(d->msg);
                return 0;
            }
            if (!e->qos)
                release_keeping_ids(s, e);
            q->head = (q->head + 1) & (q->cap - 1);
            q->len--;
            s->broker->stats.msgs_sent++;
            pg_emit(s->broker, PG_EV_DELIVERED, &s->id, d->msg, NULL, 0, d->qos, 0);
            return 1;
        }
        q->head = (q->head + 1) & (q->cap - 1);
        q->len--;
    }
    return 0;
}

static struct pg_inflight *find_inflight(pg_session *s, uint16_t id, uint16_t *index) {
    for (uint16_t i = 0; i < s->n_inflight; i++)
        if (s->inflight[i].packet_id == id) {
            *index = i;
            return &s->inflight[i];
        }
    return NULL;
}

static void remove_inflight(pg_session *s, uint16_t i) {
    if (i >= s->n_inflight - s->resend)
        s->resend--; /* acknowledged before we got to resend it */
    pg_qentry_release(&s->inflight[i].q);
    memmove(&s->inflight[i], &s->inflight[i + 1],
            (size_t)(s->n_inflight - i - 1) * sizeof *s->inflight);
    s->n_inflight--;
    if (s->conn && (s->queue.len || s->resend))
        s->ops->wakeup(s->conn); /* the window has room again */
}

/* Completes the in-flight delivery `id` if it is in state `want`. */
static int complete(pg_session *s, uint16_t id, int want) {
    uint16_t i;
    struct pg_inflight *f = find_inflight(s, id, &i);
    if (!f || f->state != want)
        return PG_RC_PACKET_ID_NOT_FOUND;
    pg_emit(s->broker, PG_EV_ACKED, &s->id, f->q.msg, NULL, 0, f->q.qos, 0);
    remove_inflight(s, i);
    return 0;
}

int pg_session_puback(pg_session *s, uint16_t id) {
    return complete(s, id, WAIT_PUBACK);
}

int pg_session_pubcomp(pg_session *s, uint16_t id) {
    return complete(s, id, WAIT_PUBCOMP);
}

int pg_session_pubrec(pg_session *s, uint16_t id) {
    uint16_t i;
    struct pg_inflight *f = find_inflight(s, id, &i);
    if (!f)
        return PG_RC_PACKET_ID_NOT_FOUND;
    if (f->state == WAIT_PUBREC)
        f->state = WAIT_PUBCOMP; /* the message stays until PUBCOMP, for the ACKED event */
    return f->state == WAIT_PUBCOMP ? 0 : PG_RC_PACKET_ID_NOT_FOUND;
}

void pg_session_discard(pg_session *s, uint16_t id) {
    uint16_t i;
    struct pg_inflight *f = find_inflight(s, id, &i);
    count_drop(s, f ? f->q.msg : NULL, PG_RC_IMPL_SPECIFIC);
    if (f)
        remove_inflight(s, i);
}

int pg_qos2_received(pg_session *s, uint16_t id) {
    for (uint16_t i = 0; i < s->n_qos2_in; i++)
        if (s->qos2_in[i] == id)
            return 0;
    if (s->n_qos2_in >= s->qos2_in_max)
        return -1;
    if (s->n_qos2_in == s->cap_qos2_in) {
        uint32_t cap = s->cap_qos2_in ? s->cap_qos2_in * 2u : 4;
        if (cap > 65535)
            cap = 65535;
        uint16_t *n = realloc(s->qos2_in, cap * sizeof *n);
        if (!n)
            return -1;
        s->qos2_in = n;
        s->cap_qos2_in = (uint16_t)cap;
    }
    s->qos2_in[s->n_qos2_in++] = id;
    return 1;
}

int pg_qos2_released(pg_session *s, uint16_t id) {
    for (uint16_t i = 0; i < s->n_qos2_in; i++)
        if (s->qos2_in[i] == id) {
            s->qos2_in[i] = s->qos2_in[--s->n_qos2_in];
            return 0;
        }
    return PG_RC_PACKET_ID_NOT_FOUND;
}
