/* fuzz_mqtt_conn.c - libFuzzer target for the MQTT adapter and broker core
 * together: the input is split into chunks fed to two client connections of one
 * broker (so takeover, routing between them, acks and wills all get exercised),
 * with output drained and time advanced between chunks. Finds crashes, leaks and
 * undefined behaviour in the state machines, not only in the codec.
 *
 * A hook can make questions wait for a later answer, as the HTTP auth backend does,
 * so the adapter's waiting and resuming is fuzzed too.
 *
 * Input format: repeated [1 byte: conn index (bit 0) | drain (bit 1) | tick (bit 2)
 * | toggle deferring (bit 3) | answer the oldest waiting question (bit 4) with a
 * refusal (bit 5) or an allow] [1 byte: chunk length] [chunk bytes].
 */
#include <stdint.h>
#include <string.h>

#include "adapters/mqtt/mqtt.h"
#include "gateway/log.h"
#include "tests/fuzz/defer_hook.h"

struct fake {
    struct mqtt_conn *c;
    int closed;
};

static void fake_write(void *t) {}
static void fake_close(void *t) {
    ((struct fake *)t)->closed = 1;
}
static void fake_timeout(void *t, int secs) {}
static void fake_wake_after(void *t, uint32_t ms) {}
static int fake_peer_cn(void *t, char *buf, size_t n) {
    return -1;
}
static const struct mqtt_transport tr = {fake_write, fake_close, fake_timeout, fake_wake_after,
                                         fake_peer_cn};

static void drain(struct fake *f, struct pg_buf *out) {
    out->len = 0;
    if (f->c && !f->closed && mqtt_conn_output(f->c, out, 1 << 16) < 0)
        f->closed = 1;
}

static void open_conn(pg_broker *b, const struct mqtt_settings *set, struct fake *f) {
    struct mqtt_conn_info info = {.peer = "127.0.0.1:1", .listener = "fuzz", .protocol = "mqtt"};
    memset(f, 0, sizeof *f);
    f->c = mqtt_conn_new(b, set, &tr, f, &info);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pg_log_set_level(-1);
    struct pg_broker_config bc;
    pg_broker_config_defaults(&bc);
    bc.max_inflight = 4;
    bc.max_queued_messages = 8;
    bc.sys_interval = 1;
    pg_broker *b = pg_broker_new(&bc);
    defer_hook_install(b);
    struct mqtt_settings set = {.max_topic_alias = 4};
    struct pg_buf out = {0};
    struct fake conns[2];
    int64_t now = 1000;
    pg_broker_tick(b, now);
    open_conn(b, &set, &conns[0]);
    open_conn(b, &set, &conns[1]);
    size_t i = 0;
    while (i + 2 <= size) {
        uint8_t op = data[i], n = data[i + 1];
        i += 2;
        if (n > size - i)
            n = (uint8_t)(size - i);
        struct fake *f = &conns[op & 1];
        if (op & 8)
            deferring = !deferring;
        if (op & 16)
            answer_oldest(op & 32);
        if (f->closed) { /* reconnect: a fresh connection on the same slot */
            mqtt_conn_closed(f->c);
            open_conn(b, &set, f);
        }
        if (mqtt_conn_input(f->c, data + i, n) < 0)
            f->closed = 1;
        i += n;
        if (op & 2)
            drain(f, &out);
        if (op & 4)
            pg_broker_tick(b, now += 700);
    }
    for (int k = 0; k < 2; k++) {
        drain(&conns[k], &out);
        mqtt_conn_closed(conns[k].c);
    }
    pg_buf_free(&out);
    pg_broker_free(b);
    return 0;
}
