/* ws.c - loadgen's WebSocket client helpers (see ws.h): SHA-1, base64, the
 * opening handshake and frame headers. No allocation, no dependency on
 * polygate or on a crypto library. */
#include "ws.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ---- SHA-1 (FIPS 180-4), only ever used on ~60-byte handshake strings ---- */

static uint32_t rol(uint32_t x, int n) {
    return x << n | x >> (32 - n);
}

static void sha1_block(uint32_t h[5], const uint8_t *p) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

void ws_sha1(const void *data, size_t len, uint8_t out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    const uint8_t *p = data;
    size_t left = len;
    for (; left >= 64; left -= 64, p += 64)
        sha1_block(h, p);
    uint8_t tail[128] = {0};
    memcpy(tail, p, left);
    tail[left] = 0x80;
    size_t tlen = left + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        tail[tlen - 1 - i] = (uint8_t)(bits >> (8 * i));
    sha1_block(h, tail);
    if (tlen == 128)
        sha1_block(h, tail + 64);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

size_t ws_base64(const uint8_t *in, size_t len, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < len ? tab[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? tab[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

/* ---- randomness: xorshift64*, seeded once from the kernel ---- */

static uint64_t rng_state;

static uint64_t rng_next(void) {
    if (!rng_state) {
        if (getrandom(&rng_state, sizeof(rng_state), 0) != sizeof(rng_state) || !rng_state) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            rng_state = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)getpid() ^ 0x9E3779B97F4A7C15ull;
        }
    }
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

uint32_t ws_next_mask(void) {
    uint32_t m;
    do
        m = (uint32_t)(rng_next() >> 32);
    while (!m);
    return m;
}

void ws_make_key(char key[WS_KEY_LEN + 1]) {
    uint8_t raw[16];
    uint64_t a = rng_next(), b = rng_next();
    memcpy(raw, &a, 8);
    memcpy(raw + 8, &b, 8);
    ws_base64(raw, sizeof(raw), key);
}

void ws_accept_for(const char *key, char out[29]) {
    char s[WS_KEY_LEN + 37];
    int n = snprintf(s, sizeof(s), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    uint8_t d[20];
    ws_sha1(s, (size_t)n, d);
    ws_base64(d, sizeof(d), out);
}

/* ---- handshake ---- */

size_t ws_request(char *out, size_t cap, const char *host, uint16_t port, const char *path,
                  const char *key) {
    int n = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s:%u\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Protocol: mqtt\r\n"
                     "\r\n",
                     path, host, port, key);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t ws_response_end(const uint8_t *p, size_t len) {
    for (size_t i = 3; i < len; i++) {
        if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' && p[i - 3] == '\r')
            return i + 1;
    }
    return 0;
}

/* Case-insensitive search for a token inside a header value. */
static bool has_token(const char *v, size_t vlen, const char *tok) {
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= vlen; i++) {
        if (strncasecmp(v + i, tok, tl) == 0)
            return true;
    }
    return false;
}

static bool value_is(const char *v, size_t vlen, const char *want) {
    return vlen == strlen(want) && strncasecmp(v, want, vlen) == 0;
}

const char *ws_check_response(const uint8_t *head, size_t len, const char *key, char *why,
                              size_t why_len) {
    const char *h = (const char *)head, *end = h + len;
    const char *eol = memchr(h, '\n', len);
    if (!eol)
        return "handshake: no status line";
    size_t sl = (size_t)(eol - h);
    if (sl && h[sl - 1] == '\r')
        sl--;
    if (sl < 12 || strncmp(h, "HTTP/1.1 101", 12) != 0) {
        snprintf(why, why_len, "handshake refused: %.*s", (int)(sl > 80 ? 80 : sl), h);
        return why;
    }
    bool upgrade = false, connection = false, accept_ok = false, proto_ok = false;
    char want[29];
    ws_accept_for(key, want);
    for (const char *line = eol + 1; line < end;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl)
            break;
        const char *le = nl;
        if (le > line && le[-1] == '\r')
            le--;
        const char *colon = memchr(line, ':', (size_t)(le - line));
        if (colon) {
            size_t nlen = (size_t)(colon - line);
            const char *v = colon + 1;
            while (v < le && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = le;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            size_t vlen = (size_t)(ve - v);
#define NAME_IS(s) (nlen == sizeof(s) - 1 && strncasecmp(line, s, nlen) == 0)
            if (NAME_IS("Upgrade"))
                upgrade = value_is(v, vlen, "websocket");
            else if (NAME_IS("Connection"))
                connection = has_token(v, vlen, "upgrade");
            else if (NAME_IS("Sec-WebSocket-Accept"))
                accept_ok = vlen == 28 && memcmp(v, want, 28) == 0;
            else if (NAME_IS("Sec-WebSocket-Protocol"))
                proto_ok = value_is(v, vlen, "mqtt");
#undef NAME_IS
        }
        line = nl + 1;
    }
    if (!upgrade)
        return "handshake: 101 without 'Upgrade: websocket'";
    if (!connection)
        return "handshake: 101 without 'Connection: Upgrade'";
    if (!accept_ok)
        return "handshake: missing or wrong Sec-WebSocket-Accept";
    if (!proto_ok)
        return "handshake: subprotocol 'mqtt' not confirmed (Sec-WebSocket-Protocol)";
    return NULL;
}

/* ---- frames ---- */

size_t ws_put_frame(uint8_t *out, uint8_t b0, const uint8_t *payload, size_t len, uint32_t mask) {
    size_t h = 0;
    out[h++] = b0;
    if (len < 126) {
        out[h++] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint8_t mk[4] = {(uint8_t)(mask >> 24), (uint8_t)(mask >> 16), (uint8_t)(mask >> 8),
                     (uint8_t)mask};
    memcpy(out + h, mk, 4);
    h += 4;
    /* Mask 8 bytes at a time: the key repeats every 4 bytes from payload[0]. */
    uint8_t *dst = out + h;
    uint64_t m8;
    uint8_t mk8[8] = {mk[0], mk[1], mk[2], mk[3], mk[0], mk[1], mk[2], mk[3]};
    memcpy(&m8, mk8, 8);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, payload + i, 8);
        v ^= m8;
        memcpy(dst + i, &v, 8);
    }
    for (; i < len; i++)
        dst[i] = payload[i] ^ mk[i & 3];
    return h + len;
}

int ws_parse_header(const uint8_t *p, size_t len, struct ws_hdr *h) {
    if (len < 2)
        return 0;
    h->fin = p[0] & 0x80;
    h->rsv = (p[0] >> 4) & 7;
    h->opcode = p[0] & 0x0f;
    h->masked = p[1] & 0x80;
    size_t need = 2 + (h->masked ? 4 : 0);
    uint8_t l7 = p[1] & 0x7f;
    if (l7 == 126)
        need += 2;
    else if (l7 == 127)
        need += 8;
    if (len < need)
        return 0;
    size_t o = 2;
    if (l7 < 126) {
        h->len = l7;
    } else if (l7 == 126) {
        h->len = (uint64_t)p[2] << 8 | p[3];
        o = 4;
    } else {
        h->len = 0;
        for (int i = 0; i < 8; i++)
            h->len = h->len << 8 | p[2 + i];
        o = 10;
        if (h->len >> 63)
            return -1;
    }
    h->mask = 0;
    if (h->masked)
        h->mask =
            (uint32_t)p[o] << 24 | (uint32_t)p[o + 1] << 16 | (uint32_t)p[o + 2] << 8 | p[o + 3];
    return (int)need;
}
