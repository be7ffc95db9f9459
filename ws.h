/* RFC 6455 WebSocket server side: the upgrade handshake and a frame decoder/encoder (and the
 * little a client needs: masked frames out, a server's frames in, for `dig-relay probe`).
 * Pure: it takes bytes and returns results; the caller owns the buffers and the socket.
 *
 * Decoding works on the caller's contiguous input buffer. ws_parse looks at the bytes at its
 * front and either asks for more (saying how many bytes in total it needs, so the caller can size
 * its buffer), or handles exactly one frame and returns how many bytes the caller may drop from
 * the front. An unfragmented data frame is unmasked in place and returned pointing into the
 * caller's buffer (no copy); fragments are gathered in a buffer the decoder owns (bounded by
 * max_message and released when the message completes). Control frames may arrive between
 * fragments. A frame or message over max_message is refused from its header alone, before any
 * of its payload is buffered. */
#ifndef DIG_WS_H
#define DIG_WS_H

#include "http.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ws_opcode { WS_OP_CONT = 0, WS_OP_TEXT = 1, WS_OP_BINARY = 2, WS_OP_CLOSE = 8, WS_OP_PING = 9, WS_OP_PONG = 10 };

enum ws_close_code {
    WS_CLOSE_NORMAL = 1000, WS_CLOSE_GOING_AWAY = 1001, WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_NO_STATUS = 1005, WS_CLOSE_BAD_DATA = 1007, WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009, WS_CLOSE_INTERNAL = 1011
};

/* ---- handshake ---- */
enum ws_upgrade_result {
    WS_UPGRADE_OK = 0,
    WS_UPGRADE_NOT_WEBSOCKET = -1,  /* an ordinary HTTP request: answer it as HTTP (404 etc.) */
    WS_UPGRADE_BAD_REQUEST = -2,    /* a broken upgrade attempt: 400 */
    WS_UPGRADE_BAD_VERSION = -3     /* Sec-WebSocket-Version is not 13: 426 with version 13 */
};
/* Checks an upgrade request (GET, HTTP/1.1, Upgrade: websocket, Connection containing Upgrade,
 * Sec-WebSocket-Version 13, a Sec-WebSocket-Key of 16 base64-decoded bytes; any path) and on
 * success writes the 101 response into out (no subprotocol, no extensions, "Connection: Upgrade"
 * exactly). *out_len receives its length. */
int ws_upgrade(const http_request *req, char *out, size_t cap, size_t *out_len);
/* Exact length of the 101 response ws_upgrade writes; cap must be at least this (a smaller cap
 * is a caller bug and yields WS_UPGRADE_BAD_REQUEST with *out_len 0). */
#define WS_UPGRADE_RESPONSE_LEN 129
/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)); writes 28 chars + NUL. */
void ws_accept_key(const char *key, size_t key_len, char out[29]);

/* ---- decoding ---- */
enum ws_result_kind {
    WS_NEED_MORE = 0,   /* r.need = total bytes required at the buffer front to progress: the
                         * whole frame (header + payload) once its length bytes are in, else
                         * the header size known so far */
    WS_MESSAGE,         /* complete text or binary message in r.data/r.len (r.binary says which) */
    WS_PING,            /* reply with a pong carrying r.data/r.len */
    WS_PONG,
    WS_CLOSE,           /* peer's close: r.close_code (1005 when none), reason in r.data/r.len */
    WS_FAIL,            /* protocol violation: close with r.close_code (1002, 1007 or 1009) */
    WS_FRAME            /* a non-final fragment was absorbed; nothing to act on, call again */
};

typedef struct {
    int kind;
    size_t need;
    uint8_t *data;
    size_t len;
    bool binary;
    uint16_t close_code;
    const char *reason;  /* WS_FAIL: human-readable cause for logs */
} ws_result;

typedef struct {
    size_t max_message;
    uint8_t *frag;        /* fragmented message being gathered (NULL when none) */
    size_t frag_len, frag_cap;
    uint8_t frag_opcode;  /* WS_OP_TEXT/BINARY while a fragmented message is open, else 0 */
    bool failed;          /* after WS_FAIL every call fails again */
    uint16_t fail_code;   /* ... with this close code */
    bool from_server;     /* set after init to decode a server's frames (unmasked; a masked
                           * one is the violation), as the probe's client does */
} ws_decoder;

void ws_decoder_init(ws_decoder *d, size_t max_message);
void ws_decoder_free(ws_decoder *d);
/* Returns the number of bytes consumed from the front of buf (0 with WS_NEED_MORE). Unmasks the
 * handled frame in place, so buf must be writable. r->data stays valid until the caller drops or
 * moves those bytes, or calls ws_parse again. The bytes of an incomplete frame are left masked,
 * so the caller may call again with the same bytes plus more.
 * A message gathered from fragments is returned in the decoder's own buffer; that buffer is
 * freed at the start of the NEXT ws_parse call (or by ws_decoder_free), so use or copy r->data
 * before calling again. */
size_t ws_parse(ws_decoder *d, uint8_t *buf, size_t len, ws_result *r);

/* True when buf[0..len) is valid UTF-8 (used for text messages and close reasons). */
bool ws_utf8_valid(const uint8_t *s, size_t len);

/* ---- encoding (server frames: FIN set, never masked) ---- */
#define WS_MAX_HEADER 10
/* Size of the header for a payload of len bytes: 2, 4 or 10. */
size_t ws_header_len(size_t payload_len);
/* Writes the header so that it ENDS at `end` (i.e. just before the payload that is already in
 * place) and returns a pointer to its first byte. `end` must have ws_header_len() bytes of room
 * before it. This is how outgoing frames get their header without copying the payload. */
uint8_t *ws_write_header_before(uint8_t *end, enum ws_opcode op, size_t payload_len);
/* A complete close frame (status code and short reason) into out (at least 2+2+123 bytes);
 * returns its length. A longer reason is cut at a UTF-8 character boundary to fit 123 bytes; code
 * 0 or 1005 (no status) gives a close frame with an empty payload. */
size_t ws_close_frame(uint8_t *out, uint16_t code, const char *reason);

/* ---- a client's frames (the probe) ---- */
/* One final frame masked with key, header and payload, into out; returns its length, or 0 when
 * cap is too small (len + 14 always suffices). */
size_t ws_client_frame(uint8_t *out, size_t cap, enum ws_opcode op, const void *payload,
                       size_t len, const uint8_t key[4]);

#endif
