/* ws.h - loadgen's own WebSocket client pieces (RFC 6455), for MQTT over
 * WebSocket: the opening handshake (request, Sec-WebSocket-Accept check, with
 * its own SHA-1 and base64 so that loadgen stays self-contained) and frame
 * encoding/decoding. Stateless helpers only; net.c keeps the per-connection
 * state and turns the frames into the MQTT byte stream.
 */
#ifndef LG_WS_H
#define LG_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

#define WS_FIN          0x80
#define WS_MAX_HEADER   14   /* 2 + 8 (64-bit length) + 4 (mask) */
#define WS_MAX_CONTROL  125  /* control frame payload limit */
#define WS_KEY_LEN      24   /* base64 of 16 bytes */
#define WS_MAX_RESPONSE 8192 /* larger handshake answers are refused */

void ws_sha1(const void *data, size_t len, uint8_t out[20]);
/* Writes base64 of in[0, len) and a NUL to out (4 * ceil(len / 3) + 1 bytes). */
size_t ws_base64(const uint8_t *in, size_t len, char *out);

/* A fresh Sec-WebSocket-Key: base64 of 16 random bytes, NUL-terminated. */
void ws_make_key(char key[WS_KEY_LEN + 1]);

/* The Sec-WebSocket-Accept a server must answer to key, NUL-terminated. */
void ws_accept_for(const char *key, char out[29]);

/* Writes the HTTP/1.1 upgrade request (GET path, subprotocol mqtt) to out
 * (cap bytes). Returns its length, or 0 if it does not fit. */
size_t ws_request(char *out, size_t cap, const char *host, uint16_t port, const char *path,
                  const char *key);

/* Finds the end of the HTTP response head in p[0, len): returns the length of
 * the head including its final CRLFCRLF, or 0 if it is not complete yet. */
size_t ws_response_end(const uint8_t *p, size_t len);

/* Checks a complete response head against key: 101, Upgrade: websocket,
 * Connection: upgrade, the right Sec-WebSocket-Accept, Sec-WebSocket-Protocol
 * mqtt. Returns NULL when acceptable, or what is wrong (static or in why). */
const char *ws_check_response(const uint8_t *head, size_t len, const char *key, char *why,
                              size_t why_len);

/* A masking key for the next client frame (cheap PRNG, never 0). */
uint32_t ws_next_mask(void);

/* Writes one client frame: header (first byte b0 = FIN | opcode, MASK bit,
 * length, key) followed by payload[0, len) masked with mask. out needs
 * WS_MAX_HEADER + len bytes. Returns the bytes written. */
size_t ws_put_frame(uint8_t *out, uint8_t b0, const uint8_t *payload, size_t len, uint32_t mask);

/* A parsed frame header. */
struct ws_hdr {
    bool fin;
    uint8_t rsv; /* RSV1-3 bits, 0 unless an extension was negotiated */
    uint8_t opcode;
    bool masked;
    uint32_t mask;
    uint64_t len;
};

/* Parses the frame header at p. Returns its length (2..14), 0 when more bytes
 * are needed, -1 when malformed (64-bit length with the top bit set). */
int ws_parse_header(const uint8_t *p, size_t len, struct ws_hdr *h);

#endif
