/* will.c - last will messages.
 *
 * A session holds its connection's will. On an abnormal end the will is published
 * at once, or after the will delay (v5) unless the client comes back first or the
 * session ends earlier (MQTT 5.0 3.1.3.2.2). A normal DISCONNECT discards it.
 */
#include "broker/internal.h"

void pg_will_set(pg_session *s, pg_msg *will, uint32_t delay_s) {
    pg_will_cancel(s);
    s->will = will;
    s->will_delay_s = delay_s;
}

int pg_session_set_will(pg_session *s, pg_msg *will) {
    pg_broker *b = s->broker;
    if (will && b->has_authorize &&
        pg_hooks_authorize(b, &s->id, PG_ACCESS_WRITE, will->topic, will->topic_len, NULL) !=
            PG_HOOK_ALLOW) {
        pg_msg_unref(will);
        return PG_RC_NOT_AUTHORIZED;
    }
    pg_will_set(s, will, s->will_delay_s);
    return 0;
}

void pg_will_cancel(pg_session *s) {
    pg_msg_unref(s->will);
    s->will = NULL;
    s->will_at = 0;
}

void pg_will_publish(pg_session *s) {
    pg_msg *w = s->will;
    s->will = NULL;
    s->will_at = 0;
    if (!w)
        return;
    pg_publish_as(s->broker, s, w, 0);
    pg_msg_unref(w);
}

void pg_will_on_disconnect(pg_session *s, int how) {
    if (!s->will)
        return;
    if (how == PG_DISC_NORMAL) {
        pg_will_cancel(s);
        return;
    }
    if (s->will_delay_s == 0) {
        pg_will_publish(s);
        return;
    }
    s->will_at = s->broker->now + (int64_t)s->will_delay_s * 1000;
}
