/* RFC 6455 server side (see ws.h): the upgrade handshake (SHA-1 and base64 from hash.c), the
 * frame decoder with fragment reassembly and every receive-side check the RFC asks for, UTF-8
 * validation, and the server's frame-header writer.
 *
 * The decoder keeps no partial-frame state: each call re-reads the header at the front of the
 * caller's buffer, so a caller that feeds bytes one at a time gets the same answers as one that
 * feeds the whole stream. Only a complete frame is unmasked, and it is unmasked exactly once
 * because the caller drops its bytes right after. */
#include "ws.h"

#include "hash.h"

#include <stdlib.h>
#include <string.h>

/* ---------------- the handshake ---------------- */

/* True when key is the canonical base64 of exactly 16 bytes: 22 symbols, the last carrying
 * only 2 data bits (its low 4 bits zero), then "==". */
static bool key_is_valid(const char *key, size_t len)
{
    if (len != 24 || key[22] != '=' || key[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (base64_value(key[i]) < 0)
            return false;
    return (base64_value(key[21]) & 0x0f) == 0;
}

void ws_accept_key(const char *key, size_t key_len, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    uint8_t digest[HASH_SHA1_LEN];
    hash_sha1_ctx c;

    hash_sha1_init(&c);
    hash_sha1_update(&c, key, key_len);
    hash_sha1_update(&c, guid, sizeof guid - 1);
    hash_sha1_final(&c, digest);
    base64_encode(digest, sizeof digest, out);
}

int ws_upgrade(const http_request *req, char *out, size_t cap, size_t *out_len)
{
    static const char head[] =
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: ";
    const http_header *upgrade = http_find_header(req, "Upgrade");
    const http_header *connection = http_find_header(req, "Connection");
    const http_header *version = http_find_header(req, "Sec-WebSocket-Version");
    const http_header *key = http_find_header(req, "Sec-WebSocket-Key");

    *out_len = 0;
    /* Only a request asking for websocket is an attempt; any other Upgrade (h2c, ...) may be
     * ignored and the request answered as plain HTTP. */
    if (!upgrade || !http_header_has_token(upgrade, "websocket"))
        return WS_UPGRADE_NOT_WEBSOCKET;
    if (!http_method_is(req, "GET") || req->minor_version < 1)
        return WS_UPGRADE_BAD_REQUEST;
    if (!connection || !http_header_has_token(connection, "upgrade"))
        return WS_UPGRADE_BAD_REQUEST;
    if (!version)
        return WS_UPGRADE_BAD_REQUEST;
    if (version->value_len != 2 || memcmp(version->value, "13", 2) != 0)
        return WS_UPGRADE_BAD_VERSION;
    if (!key || !key_is_valid(key->value, key->value_len))
        return WS_UPGRADE_BAD_REQUEST;
    if (cap < WS_UPGRADE_RESPONSE_LEN)
        return WS_UPGRADE_BAD_REQUEST;

    char accept[29];
    ws_accept_key(key->value, key->value_len, accept);
    memcpy(out, head, sizeof head - 1);
    memcpy(out + sizeof head - 1, accept, 28);
    memcpy(out + sizeof head - 1 + 28, "\r\n\r\n", 4);
    *out_len = WS_UPGRADE_RESPONSE_LEN;
    return WS_UPGRADE_OK;
}

/* ---------------- UTF-8 ---------------- */

bool ws_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        /* ASCII runs, the common case for JSON, go 32 and then 8 bytes at a time. */
        while (len - i >= 32) {
            uint64_t w[4];
            memcpy(w, s + i, 32);
            if ((w[0] | w[1] | w[2] | w[3]) & 0x8080808080808080ull)
                break;
            i += 32;
        }
        while (len - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i == len)
            break;
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;              /* continuation bytes */
        uint8_t lo = 0x80, hi = 0xbf;  /* allowed range of the first continuation byte */
        if (c < 0xc2)
            return false;      /* stray continuation byte, or an overlong 2-byte form */
        else if (c < 0xe0)
            n = 1;
        else if (c < 0xf0) {
            n = 2;
            if (c == 0xe0) lo = 0xa0;          /* overlong */
            if (c == 0xed) hi = 0x9f;          /* UTF-16 surrogates */
        } else if (c < 0xf5) {
            n = 3;
            if (c == 0xf0) lo = 0x90;          /* overlong */
            if (c == 0xf4) hi = 0x8f;          /* above U+10FFFF */
        } else
            return false;
        if (len - i <= n)
            return false;      /* truncated */
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= n; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        i += n + 1;
    }
    return true;
}

/* ---------------- decoding ---------------- */

void ws_decoder_init(ws_decoder *d, size_t max_message)
{
    memset(d, 0, sizeof *d);
    d->max_message = max_message;
}

static void release_frag(ws_decoder *d)
{
    free(d->frag);
    d->frag = NULL;
    d->frag_len = d->frag_cap = 0;
}

void ws_decoder_free(ws_decoder *d)
{
    release_frag(d);
    d->frag_opcode = 0;
}

static size_t fail(ws_decoder *d, ws_result *r, uint16_t code, const char *why)
{
    d->failed = true;
    d->fail_code = code;
    r->kind = WS_FAIL;
    r->close_code = code;
    r->reason = why;
    return 0;
}

/* XORs the payload with the 4-byte key a vector (or a 64-bit word) per step with the key
 * repeated across it, and reports whether every unmasked byte is ASCII: JSON text almost always
 * is, and then it needs no UTF-8 walk of its own. The payload starts at key offset 0, so the
 * repeated key lines up with memory order on any host. */
#if defined(__SSE2__) || defined(__ARM_NEON)
typedef uint8_t mask_word __attribute__((vector_size(16)));
#else
typedef uint64_t mask_word;
#endif

static bool unmask_is_ascii(uint8_t *p, size_t n, const uint8_t key[4])
{
    uint8_t key_bytes[sizeof(mask_word)];
    mask_word mask, seen = {0};
    uint64_t high[sizeof(mask_word) / 8];
    uint8_t tail = 0;
    size_t i = 0;

    for (size_t k = 0; k < sizeof key_bytes; k++)
        key_bytes[k] = key[k & 3];
    memcpy(&mask, key_bytes, sizeof mask);
    for (; n - i >= sizeof(mask_word); i += sizeof(mask_word)) {
        mask_word w;
        memcpy(&w, p + i, sizeof w);
        w ^= mask;
        seen |= w;
        memcpy(p + i, &w, sizeof w);
    }
    for (; i < n; i++) {
        p[i] ^= key[i & 3];
        tail |= p[i];
    }
    memcpy(high, &seen, sizeof high);
    for (size_t k = 1; k < sizeof high / 8; k++)
        high[0] |= high[k];
    return !(high[0] & 0x8080808080808080ull) && !(tail & 0x80);
}

/* Close codes a peer may send (RFC 6455 §7.4.1, plus the IANA-registered 1012-1014). */
static bool close_code_receivable(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* Appends a fragment's payload to the message being gathered; the caller has checked that the
 * total stays within max_message, so the buffer grows geometrically up to that bound. */
static bool frag_append(ws_decoder *d, const uint8_t *p, size_t n)
{
    size_t need = d->frag_len + n;
    if (n == 0)
        return true;
    if (need > d->frag_cap) {
        size_t cap = d->frag_cap < d->max_message / 2 ? d->frag_cap * 2 : d->max_message;
        if (cap < need)
            cap = need;
        uint8_t *grown = realloc(d->frag, cap);
        if (!grown)
            return false;
        d->frag = grown;
        d->frag_cap = cap;
    }
    memcpy(d->frag + d->frag_len, p, n);
    d->frag_len = need;
    return true;
}

static bool known_opcode(unsigned op)
{
    return op == WS_OP_CONT || op == WS_OP_TEXT || op == WS_OP_BINARY ||
           op == WS_OP_CLOSE || op == WS_OP_PING || op == WS_OP_PONG;
}

size_t ws_parse(ws_decoder *d, uint8_t *buf, size_t len, ws_result *r)
{
    memset(r, 0, sizeof *r);
    r->kind = WS_NEED_MORE;
    if (d->failed)
        return fail(d, r, d->fail_code, "frame after a protocol failure");
    if (d->frag_opcode == 0 && d->frag)
        release_frag(d);   /* the gathered message was handed out by the previous call */

    /* Every check runs as soon as the bytes it needs are present, in a fixed order, so the
     * verdict does not depend on how the stream was split. */
    if (len < 2) {
        r->need = 2;
        return 0;
    }
    bool fin = (buf[0] & 0x80) != 0;
    unsigned op = buf[0] & 0x0fu;
    bool control = op >= 8;
    size_t len7 = buf[1] & 0x7fu;

    if (buf[0] & 0x70)
        return fail(d, r, WS_CLOSE_PROTOCOL, "reserved bits set without an extension");
    if (!known_opcode(op))
        return fail(d, r, WS_CLOSE_PROTOCOL, "unknown opcode");
    bool masked = (buf[1] & 0x80) != 0;
    if (!masked && !d->from_server)
        return fail(d, r, WS_CLOSE_PROTOCOL, "client frame not masked");
    if (masked && d->from_server)
        return fail(d, r, WS_CLOSE_PROTOCOL, "server frame masked");
    if (control && !fin)
        return fail(d, r, WS_CLOSE_PROTOCOL, "fragmented control frame");
    if (control && len7 > 125)
        return fail(d, r, WS_CLOSE_PROTOCOL, "control frame longer than 125 bytes");
    if (op == WS_OP_CONT && d->frag_opcode == 0)
        return fail(d, r, WS_CLOSE_PROTOCOL, "continuation frame without a message to continue");
    if ((op == WS_OP_TEXT || op == WS_OP_BINARY) && d->frag_opcode != 0)
        return fail(d, r, WS_CLOSE_PROTOCOL, "new message inside a fragmented message");

    size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    size_t header_len = 2 + ext + (masked ? 4 : 0);
    if (len < 2 + ext) {
        r->need = header_len;
        return 0;
    }
    uint64_t payload_len = len7;
    if (ext == 2) {
        payload_len = (uint64_t)buf[2] << 8 | buf[3];
        if (payload_len < 126)
            return fail(d, r, WS_CLOSE_PROTOCOL, "16-bit length used for a short payload");
    } else if (ext == 8) {
        payload_len = 0;
        for (int i = 0; i < 8; i++)
            payload_len = payload_len << 8 | buf[2 + i];
        if (payload_len >> 63)
            return fail(d, r, WS_CLOSE_PROTOCOL, "64-bit length with the top bit set");
        if (payload_len < 65536)
            return fail(d, r, WS_CLOSE_PROTOCOL, "64-bit length used for a short payload");
    }

    size_t so_far = control ? 0 : d->frag_len;
    if (payload_len > d->max_message - so_far || payload_len > SIZE_MAX - header_len)
        return fail(d, r, WS_CLOSE_TOO_BIG, "message larger than the limit");
    size_t total = header_len + (size_t)payload_len;
    if (len < total) {
        r->need = total;
        return 0;
    }

    uint8_t *payload = buf + header_len;
    size_t n = (size_t)payload_len;
    static const uint8_t no_mask[4];   /* XOR with zeros: the ASCII scan alone */
    bool ascii = unmask_is_ascii(payload, n, masked ? buf + header_len - 4 : no_mask);

    switch (op) {
    case WS_OP_PING:
    case WS_OP_PONG:
        r->kind = op == WS_OP_PING ? WS_PING : WS_PONG;
        r->data = payload;
        r->len = n;
        return total;
    case WS_OP_CLOSE:
        if (n == 1)
            return fail(d, r, WS_CLOSE_PROTOCOL, "close payload of one byte");
        if (n == 0) {
            r->close_code = WS_CLOSE_NO_STATUS;
        } else {
            unsigned code = (unsigned)payload[0] << 8 | payload[1];
            if (!close_code_receivable(code))
                return fail(d, r, WS_CLOSE_PROTOCOL, "invalid close code");
            if (!ws_utf8_valid(payload + 2, n - 2))
                return fail(d, r, WS_CLOSE_BAD_DATA, "close reason is not UTF-8");
            r->close_code = (uint16_t)code;
            r->data = payload + 2;
            r->len = n - 2;
        }
        r->kind = WS_CLOSE;
        return total;
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (fin) {
            if (op == WS_OP_TEXT && !ascii && !ws_utf8_valid(payload, n))
                return fail(d, r, WS_CLOSE_BAD_DATA, "text message is not UTF-8");
            r->kind = WS_MESSAGE;
            r->data = payload;
            r->len = n;
            r->binary = op == WS_OP_BINARY;
            return total;
        }
        d->frag_opcode = (uint8_t)op;
        break;
    default:   /* WS_OP_CONT, checked above to continue an open message */
        break;
    }

    if (!frag_append(d, payload, n))
        return fail(d, r, WS_CLOSE_INTERNAL, "out of memory gathering fragments");
    if (!fin) {
        r->kind = WS_FRAME;
        return total;
    }
    bool binary = d->frag_opcode == WS_OP_BINARY;
    if (!binary && !ws_utf8_valid(d->frag, d->frag_len))
        return fail(d, r, WS_CLOSE_BAD_DATA, "text message is not UTF-8");
    d->frag_opcode = 0;   /* complete; the buffer is released on the next call */
    r->kind = WS_MESSAGE;
    r->data = d->frag;
    r->len = d->frag_len;
    r->binary = binary;
    return total;
}

/* ---------------- encoding ---------------- */

size_t ws_header_len(size_t payload_len)
{
    if (payload_len < 126)
        return 2;
    return payload_len <= 0xffff ? 4 : 10;
}

uint8_t *ws_write_header_before(uint8_t *end, enum ws_opcode op, size_t payload_len)
{
    size_t header_len = ws_header_len(payload_len);
    uint8_t *p = end - header_len;

    p[0] = (uint8_t)(0x80u | (unsigned)op);
    if (header_len == 2) {
        p[1] = (uint8_t)payload_len;
    } else if (header_len == 4) {
        p[1] = 126;
        p[2] = (uint8_t)(payload_len >> 8);
        p[3] = (uint8_t)payload_len;
    } else {
        uint64_t v = payload_len;
        p[1] = 127;
        for (int i = 0; i < 8; i++)
            p[9 - i] = (uint8_t)(v >> (8 * i));
    }
    return p;
}

size_t ws_close_frame(uint8_t *out, uint16_t code, const char *reason)
{
    size_t reason_len = reason ? strlen(reason) : 0;

    if (code == 0 || code == WS_CLOSE_NO_STATUS) {
        out[0] = 0x80 | WS_OP_CLOSE;
        out[1] = 0;
        return 2;
    }
    if (reason_len > 123) {
        reason_len = 123;
        /* Do not split a multi-byte character: back up to the start of the one that straddles. */
        while (reason_len > 0 && ((unsigned char)reason[reason_len] & 0xc0) == 0x80)
            reason_len--;
    }
    out[0] = 0x80 | WS_OP_CLOSE;
    out[1] = (uint8_t)(2 + reason_len);
    out[2] = (uint8_t)(code >> 8);
    out[3] = (uint8_t)code;
    if (reason_len)
        memcpy(out + 4, reason, reason_len);
    return 4 + reason_len;
}

size_t ws_client_frame(uint8_t *out, size_t cap, enum ws_opcode op, const void *payload,
                       size_t len, const uint8_t key[4])
{
    size_t header = ws_header_len(len) + 4;
    if (cap < header || cap - header < len)
        return 0;
    uint8_t *p = ws_write_header_before(out + ws_header_len(len), op, len);
    p[1] |= 0x80;
    memcpy(out + header - 4, key, 4);
    const uint8_t *in = payload;
    for (size_t i = 0; i < len; i++)
        out[header + i] = (uint8_t)(in[i] ^ key[i & 3]);
    return header + len;
}
