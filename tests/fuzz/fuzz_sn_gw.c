/* fuzz_sn_gw.c - libFuzzer target for the MQTT-SN gateway and the broker core
 * together: datagrams from a handful of senders (so takeover, forwarders, sleeping
 * and the client tables get exercised) into one gateway, with time moving on, so
 * the state machines, retries and timeouts run on hostile input, not only the
 * codec.
 *
 * A hook can make logins and access checks wait for a later answer, as the HTTP
 * auth backend does, so held datagrams and resuming are fuzzed too.
 *
 * Input format: repeated [1 byte: sender (bits 0-2) | tick (bit 3) | long tick
 * (bit 4) | toggle deferring (bit 5) | answer the oldest waiting question (bit 6)
 * with a refusal (bit 7) or an allow] [1 byte: datagram length] [datagram bytes].
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include "adapters/mqttsn/sn_gateway.h"
#include "gateway/log.h"
#include "tests/fuzz/defer_hook.h"

static size_t sent_bytes;

static void fake_send(void *ud, const struct sockaddr *to, socklen_t tolen, const uint8_t *buf,
                      size_t len) {
    sent_bytes += len; /* the datagram is whole and ours to read */
    if (len && buf[0] == 0)
        sent_bytes++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pg_log_set_level(-1);
    struct pg_broker_config bc;
    pg_broker_config_defaults(&bc);
    bc.max_inflight = 4;
    bc.max_queued_messages = 8;
    bc.sys_interval = 0;
    pg_broker *b = pg_broker_new(&bc);
    defer_hook_install(b);
    int64_t now = 1000;
    pg_broker_tick(b, now);
    static const struct sn_predefined pre[] = {{1, "pre/one"}, {2, "pre/+/w"}};
    struct sn_gw_config c = {.broker = b,
                             .listener = "fuzz",
                             .gateway_id = 1,
                             .mountpoint = "",
                             .predefined = pre,
                             .n_predefined = 2,
                             .qos_neg1 = 1,
                             .max_registrations = 4,
                             .retry_interval_s = 1,
                             .max_retries = 2,
                             .max_clients = 6};
    struct sn_gw *gw = sn_gw_new(&c, fake_send, NULL);
    /* A retained message for subscriptions to find. */
    pg_broker_publish(b, "pre/one", "r", 1, 1, 1);
    size_t i = 0;
    while (i + 2 <= size) {
        uint8_t op = data[i], n = data[i + 1];
        i += 2;
        if (n > size - i)
            n = (uint8_t)(size - i);
        if (op & 32)
            deferring = !deferring;
        if (op & 64)
            answer_oldest(op & 128);
        struct sockaddr_in from = {.sin_family = AF_INET, .sin_port = htons(1000 + (op & 7))};
        from.sin_addr.s_addr = htonl(0x7f000001);
        sn_gw_input(gw, (struct sockaddr *)&from, sizeof from, data + i, n);
        i += n;
        if (op & 8)
            pg_broker_tick(b, now += 400);
        if (op & 16)
            pg_broker_tick(b, now += 20000);
        if (op & 24)
            sn_gw_tick(gw);
    }
    pg_broker_shutdown(b);
    sn_gw_free(gw);
    pg_broker_free(b);
    return 0;
}
