/* The relay wire (RLY-001..007, RLY-009, the pex_ passthrough and issue 15's TURN credential
 * pair): decoding one JSON text into a wire_msg with serde's rules (type tag anywhere, unknown
 * fields ignored, duplicates and missing fields rejected), and writing each message
 * byte-identical with the reference serde_json output.
 *
 * Decoding is one pass over the object. Every field name has the same JSON type in every message
 * it appears in, so each known field is parsed by type as soon as it is met, before the `type`
 * is necessarily known; the outcome (value, error, duplicate) is recorded and judged afterwards
 * against the fields the type actually has. A field that fails its typed parse is re-read as
 * generic JSON, so a malformed value in a field the type does not use is ignored like serde
 * ignores unknown fields, as long as it is valid JSON. */
#include "wire.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define JW_LIT(w, s) jw_raw((w), (s), sizeof(s) - 1)

enum field {
    F_TYPE, F_PEER_ID, F_NETWORK_ID, F_PROTOCOL_VERSION, F_LISTEN_ADDRS, F_SUCCESS, F_MESSAGE,
    F_CONNECTED_PEERS, F_FROM, F_TO, F_PAYLOAD, F_SEQ, F_EXCLUDE, F_PEER, F_PEERS, F_TIMESTAMP,
    F_TARGET_PEER_ID, F_EXTERNAL_ADDR, F_CODE, F_USERNAME, F_PASSWORD, F_TTL_SECS, F_URIS,
    F_MAX_KEYS, F_RECORDS, F_TOTAL_KEYS, F_TRUNCATED, F_COUNT
};

static const char *const field_names[F_COUNT] = {
    "type", "peer_id", "network_id", "protocol_version", "listen_addrs", "success", "message",
    "connected_peers", "from", "to", "payload", "seq", "exclude", "peer", "peers", "timestamp",
    "target_peer_id", "external_addr", "code", "username", "password", "ttl_secs", "uris",
    "max_keys", "records", "total_keys", "truncated"
};

#define BIT(f) (1u << (f))

/* Indexed by enum wire_type; WT_UNKNOWN and WT_PEX have no fixed name. */
static const struct {
    const char *name;
    uint32_t required, optional;
} types[] = {
    [WT_REGISTER] = { "register", BIT(F_PEER_ID) | BIT(F_NETWORK_ID) | BIT(F_PROTOCOL_VERSION),
                      BIT(F_LISTEN_ADDRS) },
    [WT_REGISTER_ACK] = { "register_ack", BIT(F_SUCCESS) | BIT(F_MESSAGE) | BIT(F_CONNECTED_PEERS), 0 },
    [WT_UNREGISTER] = { "unregister", BIT(F_PEER_ID), 0 },
    [WT_RELAY_MESSAGE] = { "relay_message", BIT(F_FROM) | BIT(F_TO) | BIT(F_PAYLOAD) | BIT(F_SEQ), 0 },
    [WT_BROADCAST] = { "broadcast", BIT(F_FROM) | BIT(F_PAYLOAD) | BIT(F_EXCLUDE), 0 },
    [WT_PEER_CONNECTED] = { "peer_connected", BIT(F_PEER), 0 },
    [WT_PEER_DISCONNECTED] = { "peer_disconnected", BIT(F_PEER_ID), 0 },
    [WT_GET_PEERS] = { "get_peers", 0, BIT(F_NETWORK_ID) },
    [WT_PEERS] = { "peers", BIT(F_PEERS), 0 },
    [WT_PING] = { "ping", BIT(F_TIMESTAMP), 0 },
    [WT_PONG] = { "pong", BIT(F_TIMESTAMP), 0 },
    [WT_HOLE_PUNCH_REQUEST] = { "hole_punch_request",
                                BIT(F_PEER_ID) | BIT(F_TARGET_PEER_ID) | BIT(F_EXTERNAL_ADDR), 0 },
    [WT_HOLE_PUNCH_COORDINATE] = { "hole_punch_coordinate", BIT(F_PEER_ID) | BIT(F_EXTERNAL_ADDR), 0 },
    [WT_HOLE_PUNCH_RESULT] = { "hole_punch_result", BIT(F_PEER_ID) | BIT(F_SUCCESS), 0 },
    [WT_ERROR] = { "error", BIT(F_CODE) | BIT(F_MESSAGE), 0 },
    [WT_GET_TURN_CREDENTIALS] = { "get_turn_credentials", 0, 0 },
    [WT_TURN_CREDENTIALS] = { "turn_credentials",
                              BIT(F_USERNAME) | BIT(F_PASSWORD) | BIT(F_TTL_SECS) | BIT(F_URIS), 0 },
    [WT_GET_DHT_RECORDS] = { "get_dht_records", BIT(F_MAX_KEYS), 0 },
    [WT_DHT_RECORDS] = { "dht_records", BIT(F_RECORDS) | BIT(F_TOTAL_KEYS) | BIT(F_TRUNCATED), 0 },
};
#define N_TYPES (sizeof types / sizeof types[0])

/* Longest field or type name we match; an escaped key decodes to at most raw/1 and at least
 * raw/6 bytes, so longer raw keys cannot match and need no decoding. */
#define NAME_MAX_LEN 24

/* Decoded name of a key or tag into tmp (when escaped), or NULL when too long to be one of ours. */
static const char *plain_name(json_span raw, char tmp[NAME_MAX_LEN * 6], size_t *n)
{
    if (!json_raw_has_escape(raw)) {
        *n = raw.n;
        return raw.p;
    }
    if (raw.n > NAME_MAX_LEN * 6)
        return NULL;
    *n = json_unescape(raw, tmp);
    return tmp;
}

static bool name_is(const char *s, size_t n, const char *name)
{
    size_t k;
    if (n == 0 || s[0] != name[0])
        return false;   /* most candidates differ at once: skip the length and compare */
    k = strlen(name);
    return n == k && memcmp(s, name, k) == 0;
}

static int field_of(json_span key)
{
    char tmp[NAME_MAX_LEN * 6];
    size_t n;
    const char *s = plain_name(key, tmp, &n);
    if (!s)
        return -1;
    for (int f = 0; f < F_COUNT; f++)
        if (name_is(s, n, field_names[f]))
            return f;
    return -1;
}

/* A string value as decoded text: the raw bytes themselves when there is no escape, else the
 * unescaped bytes written at the same offset in scratch as the raw text has from base (decoded
 * text never outgrows its raw text, so distinct strings never overlap in scratch). With no
 * scratch the raw text is returned (validation only). */
static wire_str decoded(json_span raw, const char *base, char *scratch)
{
    wire_str s = { raw.p, raw.n };
    if (scratch && json_raw_has_escape(raw)) {
        char *dst = scratch + (raw.p - base);
        s.p = dst;
        s.n = json_unescape(raw, dst);
    }
    return s;
}

/* A SocketAddr from raw string content. The longest address text is under ADDR_STRLEN bytes, and
 * an escape is at most 6 raw bytes per decoded byte, so longer raw text is never an address. */
static bool addr_from_raw(json_span raw, addr_t *out)
{
    char tmp[ADDR_STRLEN * 6];
    if (!json_raw_has_escape(raw))
        return addr_parse(raw.p, raw.n, out);
    if (raw.n > sizeof tmp)
        return false;
    return addr_parse(tmp, json_unescape(raw, tmp), out);
}

static inline bool is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Bit masks of one stretch of up to 64 payload bytes: bit i describes byte i. */
typedef struct {
    uint64_t digit, comma, zero, two, five, over2, over5;
} payload_masks;

/* Eight bytes at a time in a plain 64-bit word (SWAR): the targets that use the mask loop for
 * whole payloads have no vector registers, and a branch per byte class is what made it slow. */
#define EVERY_BYTE(c) ((uint64_t)(c) * 0x0101010101010101ULL)

static inline uint64_t load_le64(const char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);   /* byte 0 in the low bits, as the masks number them */
#endif
    return w;
}

/* The top bit of each byte set where that byte is above k (k < 0x80; bytes >= 0x80 count as
 * above). The 7-bit sums stay below 0x100, so no carry crosses into the next byte. */
static inline uint64_t bytes_above(uint64_t w, unsigned k)
{
    return (((w & EVERY_BYTE(0x7f)) + EVERY_BYTE(0x7f - k)) | w) & EVERY_BYTE(0x80);
}

/* The top bit of each byte set where that byte equals c (exact: no borrow between bytes). */
static inline uint64_t bytes_equal(uint64_t w, unsigned c)
{
    uint64_t t = w ^ EVERY_BYTE(c);
    return ~(((t & EVERY_BYTE(0x7f)) + EVERY_BYTE(0x7f)) | t) & EVERY_BYTE(0x80);
}

/* The eight top bits gathered into bits 0..7, byte 0 first: every partial product of the
 * multiply lands on its own bit, so none carries. */
static inline uint64_t top_bits(uint64_t hi)
{
    return ((hi >> 7) * 0x0102040810204080ULL) >> 56;
}

static void payload_masks_of(const char *b, size_t len, payload_masks *m)
{
    char tail[64];
    if (len < 64) {   /* zero bytes are no class at all, so padding changes no mask */
        memset(tail, 0, sizeof tail);
        memcpy(tail, b, len);
        b = tail;
    }
    memset(m, 0, sizeof *m);
    for (unsigned j = 0; j < 8; j++) {
        uint64_t w = load_le64(b + 8 * j);
        unsigned at = 8 * j;
        m->digit |= top_bits(bytes_above(w, '0' - 1) & ~bytes_above(w, '9')) << at;
        m->comma |= top_bits(bytes_equal(w, ',')) << at;
        m->zero |= top_bits(bytes_equal(w, '0')) << at;
        m->two |= top_bits(bytes_equal(w, '2')) << at;
        m->five |= top_bits(bytes_equal(w, '5')) << at;
        m->over2 |= top_bits(bytes_above(w, '2')) << at;
        m->over5 |= top_bits(bytes_above(w, '5')) << at;
    }
}

/* Population count without a libgcc call on targets lacking a popcount instruction. */
static inline uint64_t bit_count(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
    return (x * 0x0101010101010101ULL) >> 56;
}

/* The common case, a compact payload body b[0..n) between '[' and ']', checked 64 bytes at a
 * time with bit masks instead of a branch per byte: every rule looks only at a byte and the
 * three before it, so a block needs just the previous block's top bits.
 *   - only digits and commas;
 *   - a comma (and the end) follows a digit: no empty element, no leading or trailing comma;
 *   - no four digits in a row;
 *   - no digit after a '0' that starts a number (leading zero);
 *   - three digits in a row are at most "255".
 * False means "not proven valid" (whitespace, or an error): the byte loop then decides. */
static bool payload_body_fast(const char *b, size_t n, size_t *count)
{
    payload_masks m, prev;
    uint64_t bad = 0, commas = 0;
    memset(&prev, 0, sizeof prev);
    for (size_t k = 0; k < n; k += 64) {
        size_t len = n - k < 64 ? n - k : 64;
        uint64_t valid = len == 64 ? ~(uint64_t)0 : (((uint64_t)1 << len) - 1);
        uint64_t d1, d2, d3, z1, two2, over22, five1, over51;
        payload_masks_of(b + k, len, &m);
        d1 = (m.digit << 1) | (prev.digit >> 63);
        d2 = (m.digit << 2) | (prev.digit >> 62);
        d3 = (m.digit << 3) | (prev.digit >> 61);
        z1 = (m.zero << 1) | (prev.zero >> 63);
        two2 = (m.two << 2) | (prev.two >> 62);
        over22 = (m.over2 << 2) | (prev.over2 >> 62);
        five1 = (m.five << 1) | (prev.five >> 63);
        over51 = (m.over5 << 1) | (prev.over5 >> 63);
        bad |= valid & ~(m.digit | m.comma);
        bad |= m.comma & ~d1;
        bad |= m.digit & d1 & d2 & d3;
        bad |= m.digit & z1 & ~d2;
        bad |= m.digit & d1 & d2 & (over22 | (two2 & (over51 | (five1 & m.over5))));
        commas += bit_count(m.comma & valid);
        prev = m;
        if (len < 64 && !(m.digit >> (len - 1) & 1))
            return false;  /* trailing comma */
        if (len == 64 && k + 64 == n && !(m.digit >> 63))
            return false;
    }
    if (bad)
        return false;
    *count = n == 0 ? 0 : (size_t)commas + 1;
    return true;
}

/* The same rules as payload_body_fast, LANES bytes per step in GCC/Clang vector extensions:
 * each lane looks at its byte and the three before it through loads at offsets -1..-3, so no
 * mask needs carrying from step to step. Needs n >= LANES and three readable bytes before b
 * (the body always follows `"payload":[`). The last step overlaps the one before it; the overlap
 * is not counted twice. Signed lanes: bytes >= 0x80 compare below '0', so they are neither digit
 * nor comma. A macro because the vector width is part of the type: it is instantiated once per
 * width the target has registers for (a wider vector than the registers is emulated slowly). */
#define PAYLOAD_KERNEL(name, LANES, attrs)                                                       \
    typedef signed char name##_vec __attribute__((vector_size(LANES)));                         \
    typedef unsigned char name##_uvec __attribute__((vector_size(LANES)));                      \
    /* '0'..'9' + 0x46 (mod 256) is 0x76..0x7f, the only bytes that land above 0x75 signed */  \
    static inline __attribute__((always_inline)) attrs name##_vec name##_digits(name##_vec v)    \
    {                                                                                          \
        return (name##_vec)((name##_uvec)v + 0x46) > 0x75;                                      \
    }                                                                                          \
    attrs static bool name(const char *b, size_t n, size_t *count)                              \
    {                                                                                          \
        name##_vec lane, take, bad = {0}, commas8 = {0};                                       \
        uint64_t commas = 0, any[LANES / 8];                                                   \
        unsigned steps = 0;                                                                    \
        size_t k = 0;                                                                          \
        for (int i = 0; i < LANES; i++)                                                        \
            lane[i] = (signed char)i;                                                          \
        take = lane >= 0;                                                                      \
        for (;;) {                                                                             \
            size_t at = k + LANES <= n ? k : n - LANES;                                        \
            name##_vec v0, v1, v2, v3;                                                         \
            if (at != k) /* the overlapping last step counts only its new lanes */             \
                take = lane >= (signed char)(k - at);                                          \
            memcpy(&v0, b + at, LANES);                                                        \
            memcpy(&v1, b + at - 1, LANES);                                                    \
            memcpy(&v2, b + at - 2, LANES);                                                    \
            memcpy(&v3, b + at - 3, LANES);                                                    \
            name##_vec d0 = name##_digits(v0), d1 = name##_digits(v1);                         \
            name##_vec d2 = name##_digits(v2), d3 = name##_digits(v3);                         \
            name##_vec c0 = v0 == ',', run3 = d0 & d1 & d2;                                    \
            name##_vec over = (v2 > '2') | ((v2 == '2') & ((v1 > '5') | ((v1 == '5') & (v0 > '5')))); \
            bad |= ~(d0 | c0);             /* only digits and commas */                        \
            bad |= c0 & ~d1;               /* a comma follows a digit */                       \
            bad |= run3 & d3;              /* at most three digits */                          \
            bad |= d0 & (v1 == '0') & ~d2; /* no leading zero */                               \
            bad |= run3 & over;            /* three digits are at most 255 */                  \
            /* a comma lane is -1, so subtracting counts it; folded before a lane can wrap */  \
            commas8 -= c0 & take;                                                              \
            if (++steps == 255) {                                                              \
                for (int i = 0; i < LANES; i++)                                                \
                    commas += (unsigned char)commas8[i];                                       \
                commas8 = (name##_vec){0};                                                     \
                steps = 0;                                                                     \
            }                                                                                  \
            if (at + LANES >= n)                                                               \
                break;                                                                         \
            k += LANES;                                                                        \
        }                                                                                      \
        memcpy(any, &bad, LANES);                                                              \
        for (int i = 1; i < LANES / 8; i++)                                                    \
            any[0] |= any[i];                                                                  \
        if (any[0] != 0 || b[n - 1] < '0' || b[n - 1] > '9')                                   \
            return false;                                                                      \
        for (int i = 0; i < LANES; i++)                                                        \
            commas += (unsigned char)commas8[i];                                               \
        *count = (size_t)commas + 1;                                                           \
        return true;                                                                           \
    }

#if defined(__SSE2__) || defined(__ARM_NEON)
PAYLOAD_KERNEL(payload_body_vec16, 16, )
#if defined(__x86_64__) || defined(__i386__)
/* AVX2, chosen at run time: a step covers 32 bytes in one register instead of 16, which takes
 * about a fifth off the relay's CPU per 16 KiB message. */
PAYLOAD_KERNEL(payload_body_avx2, 32, __attribute__((target("avx2"))))
/* AVX-512BW: 64 bytes a step; a body shorter than a step goes to the AVX2 kernel. */
PAYLOAD_KERNEL(payload_body_avx512_64, 64, __attribute__((target("avx2,avx512f,avx512bw"))))
static bool payload_body_avx512(const char *b, size_t n, size_t *count)
{
    return n < 64 ? payload_body_avx2(b, n, count) : payload_body_avx512_64(b, n, count);
}

static wire_payload_kernel pick_payload_kernel(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512bw"))
        return payload_body_avx512;
    return __builtin_cpu_supports("avx2") ? payload_body_avx2 : payload_body_vec16;
}
#else
static wire_payload_kernel pick_payload_kernel(void)
{
    return payload_body_vec16;
}
#endif
#else
/* No vector registers: the 64-bit mask loop is the fastest check there is. */
static wire_payload_kernel pick_payload_kernel(void)
{
    return payload_body_fast;
}
#endif

/* The widest vector kernel this CPU runs, picked on first use. */
static wire_payload_kernel chosen_kernel(void)
{
    static wire_payload_kernel kernel;
    if (!kernel)
        kernel = pick_payload_kernel();
    return kernel;
}

/* Checks a compact payload body: the chosen kernel when the body is long enough, the 64-bit
 * mask loop otherwise. */
static bool payload_body_check(const char *b, size_t n, size_t at, size_t *count)
{
    if (n < 32 || at < 3)   /* the widest kernel reads 32 bytes and the 3 before them */
        return payload_body_fast(b, n, count);
    return chosen_kernel()(b, n, count);
}

size_t wire_payload_kernels(wire_payload_kernel *out, size_t max)
{
    wire_payload_kernel all[3];
    size_t n = 0, i;
    all[n++] = payload_body_fast;
#if defined(__SSE2__) || defined(__ARM_NEON)
    all[n++] = payload_body_vec16;
#endif
    if (chosen_kernel() != all[n - 1])
        all[n++] = chosen_kernel();
    for (i = 0; i < n && i < max; i++)
        out[i] = all[i];
    return i;
}

/* The hot path: a payload of up to tens of thousands of elements. One tight loop over the bytes,
 * accepting exactly the JSON integers 0..255 (no sign, fraction, exponent or leading zero). On
 * success leaves r->pos after ']' and returns NULL; on failure leaves r untouched. */
static const char *parse_payload(json_reader *r, json_span *raw, size_t *count, bool *spaced)
{
    static const char bad[] = "expected an array of integers 0..255";
    if (json_peek(r) != JSON_ARRAY)
        return bad;
    if (r->depth >= JSON_MAX_DEPTH)
        return "nesting too deep";
    const char *b = r->buf;
    const size_t n = r->len, start = r->pos;
    size_t p = start + 1, cnt = 0;
    bool ws = false;
    const char *close = memchr(b + p, ']', n - p);
    size_t body = close ? (size_t)(close - (b + p)) : 0;
    bool fast = close && payload_body_check(b + p, body, p, &cnt);
    if (fast) {
        p = (size_t)(close - b) + 1;
        raw->p = b + start;
        raw->n = p - start;
        *count = cnt;
        *spaced = false;
        r->pos = p;
        return NULL;
    }
    while (p < n && is_ws(b[p])) {
        p++;
        ws = true;
    }
    if (p < n && b[p] == ']') {
        p++;
    } else {
        for (;;) {
            if (p >= n)
                return bad;
            unsigned v = (unsigned)(unsigned char)b[p] - '0';
            if (v > 9) {
                if (!is_ws(b[p]))
                    return bad;
                p++;
                ws = true;
                continue;
            }
            p++;
            unsigned d;
            if (v == 0) {
                if (p < n && (unsigned)(unsigned char)b[p] - '0' <= 9)
                    return bad;
            } else if (p < n && (d = (unsigned)(unsigned char)b[p] - '0') <= 9) {
                v = v * 10 + d;
                p++;
                if (p < n && (d = (unsigned)(unsigned char)b[p] - '0') <= 9) {
                    v = v * 10 + d;
                    p++;
                    if (v > 255 || (p < n && (unsigned)(unsigned char)b[p] - '0' <= 9))
                        return bad;
                }
            }
            cnt++;
            while (p < n && is_ws(b[p])) {
                p++;
                ws = true;
            }
            if (p >= n)
                return bad;
            if (b[p] == ',') {
                p++;
                continue;
            }
            if (b[p] != ']')
                return bad;
            p++;
            break;
        }
    }
    raw->p = b + start;
    raw->n = p - start;
    *count = cnt;
    *spaced = ws;
    r->pos = p;
    return NULL;
}

/* serde_json forwards a payload compact; a sender's whitespace is dropped into scratch (at the
 * payload's own offset, which no decoded string uses) so the forward path can still copy one
 * contiguous span. */
static json_span compact_payload(json_span raw, const char *base, char *scratch)
{
    char *dst = scratch + (raw.p - base);
    size_t n = 0;
    for (size_t i = 0; i < raw.n; i++)
        if (!is_ws(raw.p[i]))
            dst[n++] = raw.p[i];
    return (json_span){ dst, n };
}

/* ---- peer info ---- */

enum { P_PEER_ID, P_NETWORK_ID, P_PROTOCOL_VERSION, P_CONNECTED_AT, P_LAST_SEEN, P_ADDRESSES, P_COUNT };
static const char *const peer_names[P_COUNT] = {
    "peer_id", "network_id", "protocol_version", "connected_at", "last_seen", "addresses"
};
static const char *const peer_missing[P_COUNT] = {
    "peer info: missing field `peer_id`", "peer info: missing field `network_id`",
    "peer info: missing field `protocol_version`", "peer info: missing field `connected_at`",
    "peer info: missing field `last_seen`", NULL
};
static const char *const peer_duplicate[P_COUNT] = {
    "peer info: duplicate field `peer_id`", "peer info: duplicate field `network_id`",
    "peer info: duplicate field `protocol_version`", "peer info: duplicate field `connected_at`",
    "peer info: duplicate field `last_seen`", "peer info: duplicate field `addresses`"
};

static int peer_field_of(json_span key)
{
    char tmp[NAME_MAX_LEN * 6];
    size_t n;
    const char *s = plain_name(key, tmp, &n);
    if (!s)
        return -1;
    for (int f = 0; f < P_COUNT; f++)
        if (name_is(s, n, peer_names[f]))
            return f;
    return -1;
}

/* Reads one RelayPeerInfo object; returns NULL or the reason it is not one. */
static const char *parse_peer_info(json_reader *r, wire_peer_info *out, const char *base, char *scratch)
{
    json_span key, raw;
    unsigned seen = 0;
    memset(out, 0, sizeof *out);
    if (json_peek(r) != JSON_OBJECT)
        return "peer info: expected an object";
    json_object_begin(r);
    while (json_object_next(r, &key)) {
        int f = peer_field_of(key);
        if (f < 0) {
            json_skip(r, NULL);
            continue;
        }
        if (seen & (1u << f))
            return peer_duplicate[f];
        seen |= 1u << f;
        switch (f) {
        case P_PEER_ID:
        case P_NETWORK_ID:
            if (!json_read_string(r, &raw))
                return "peer info: peer_id and network_id must be strings";
            if (f == P_PEER_ID)
                out->peer_id = decoded(raw, base, scratch);
            else
                out->network_id = decoded(raw, base, scratch);
            break;
        case P_PROTOCOL_VERSION:
            if (!json_read_u64(r, &out->protocol_version) || out->protocol_version > UINT32_MAX)
                return "peer info: protocol_version must be an integer 0..4294967295";
            break;
        case P_CONNECTED_AT:
            if (!json_read_u64(r, &out->connected_at))
                return "peer info: connected_at must be a non-negative 64-bit integer";
            break;
        case P_LAST_SEEN:
            if (!json_read_u64(r, &out->last_seen))
                return "peer info: last_seen must be a non-negative 64-bit integer";
            break;
        default: /* P_ADDRESSES */
            if (!json_array_begin(r))
                return "peer info: addresses must be an array of socket addresses";
            while (json_array_next(r)) {
                addr_t a;
                if (!json_read_string(r, &raw) || !addr_from_raw(raw, &a))
                    return "peer info: addresses must be an array of socket addresses";
                if (out->n_addresses == ADDR_MAX_DIALABLE)
                    return "peer info: more addresses than the relay keeps";
                out->addresses[out->n_addresses++] = a;
            }
            break;
        }
    }
    if (r->err)
        return r->err;
    for (int f = 0; f < P_COUNT; f++)
        if (peer_missing[f] && !(seen & (1u << f)))
            return peer_missing[f];
    return NULL;
}

/* ---- dht record ---- */

enum { D_CONTENT_KEY, D_PROVIDERS, D_COUNT };
static const char *const record_names[D_COUNT] = { "content_key", "providers" };

/* Reads one DhtRecordEntry object; returns NULL or the reason it is not one. */
static const char *parse_dht_record(json_reader *r, wire_dht_record *out, const char *base, char *scratch)
{
    json_span key, raw;
    unsigned seen = 0;
    memset(out, 0, sizeof *out);
    if (json_peek(r) != JSON_OBJECT)
        return "dht record: expected an object";
    json_object_begin(r);
    while (json_object_next(r, &key)) {
        char tmp[NAME_MAX_LEN * 6];
        size_t n;
        const char *name = plain_name(key, tmp, &n);
        int f = -1;
        for (int i = 0; name && i < D_COUNT; i++)
            if (name_is(name, n, record_names[i]))
                f = i;
        if (f < 0) {
            json_skip(r, NULL);
            continue;
        }
        if (seen & (1u << f))
            return f == D_CONTENT_KEY ? "dht record: duplicate field `content_key`"
                                      : "dht record: duplicate field `providers`";
        seen |= 1u << f;
        if (f == D_CONTENT_KEY) {
            if (!json_read_string(r, &raw))
                return "dht record: content_key must be a string";
            out->content_key = decoded(raw, base, scratch);
        } else if (!json_read_u64(r, &out->providers)) {
            return "dht record: providers must be a non-negative 64-bit integer";
        }
    }
    if (r->err)
        return r->err;
    if (!(seen & (1u << D_CONTENT_KEY)))
        return "dht record: missing field `content_key`";
    if (!(seen & (1u << D_PROVIDERS)))
        return "dht record: missing field `providers`";
    return NULL;
}

/* ---- decode ---- */

typedef struct {
    const char *buf;
    char *scratch;
    unsigned seen[F_COUNT];       /* 0, 1, or 2 for "more than once" */
    const char *err[F_COUNT];     /* why the first occurrence failed its typed parse */
} decode_state;

/* Parses the value of known field f by its type into m; returns NULL or the reason. */
static const char *parse_field(json_reader *r, int f, wire_msg *m, decode_state *st)
{
    json_span raw;
    wire_str *str = NULL;
    uint64_t *num = NULL;
    uint64_t limit = UINT64_MAX;
    switch (f) {
    case F_TYPE: str = &m->type_name; break;
    case F_PEER_ID: str = &m->peer_id; break;
    case F_MESSAGE: str = &m->message; break;
    case F_FROM: str = &m->from; break;
    case F_TO: str = &m->to; break;
    case F_TARGET_PEER_ID: str = &m->target_peer_id; break;
    case F_USERNAME: str = &m->username; break;
    case F_PASSWORD: str = &m->password; break;
    case F_TTL_SECS: num = &m->ttl_secs; break;
    case F_NETWORK_ID:
        if (json_peek(r) == JSON_NULL) {
            json_read_null(r);
            m->network_id_null = true;
            return NULL;
        }
        str = &m->network_id;
        break;
    case F_PROTOCOL_VERSION: num = &m->protocol_version; limit = UINT32_MAX; break;
    case F_CODE: num = &m->code; limit = UINT32_MAX; break;
    case F_CONNECTED_PEERS: num = &m->connected_peers; break;
    case F_MAX_KEYS: num = &m->max_keys; break;
    case F_TOTAL_KEYS: num = &m->total_keys; break;
    case F_TRUNCATED:
        return json_read_bool(r, &m->truncated) ? NULL : "expected a boolean";
    case F_RECORDS: {   /* validated here, decoded later through wire_next_dht_record */
        size_t count = 0;
        json_peek(r);
        const size_t start = r->pos;
        if (!json_array_begin(r))
            return "expected an array of dht records";
        while (json_array_next(r)) {
            wire_dht_record tmp;
            const char *e = parse_dht_record(r, &tmp, NULL, NULL);
            if (e)
                return e;
            count++;
        }
        if (r->err)
            return r->err;
        m->records.p = r->buf + start;
        m->records.n = r->pos - start;
        m->records_count = count;
        return NULL;
    }
    case F_SEQ: num = &m->seq; break;
    case F_TIMESTAMP: num = &m->timestamp; break;
    case F_SUCCESS:
        return json_read_bool(r, &m->success) ? NULL : "expected a boolean";
    case F_PAYLOAD: {
        bool spaced = false;
        const char *e = parse_payload(r, &m->payload, &m->payload_count, &spaced);
        if (!e && spaced && st->scratch)
            m->payload = compact_payload(m->payload, st->buf, st->scratch);
        return e;
    }
    case F_EXTERNAL_ADDR:
        if (!json_read_string(r, &raw))
            return "expected a socket address string";
        return addr_from_raw(raw, &m->external_addr) ? NULL : "invalid socket address";
    case F_EXCLUDE:
    case F_URIS:
    case F_LISTEN_ADDRS: {
        size_t count = 0;
        json_peek(r);
        const size_t start = r->pos;
        if (!json_array_begin(r))
            return "expected an array of strings";
        while (json_array_next(r)) {
            addr_t a;
            if (!json_read_string(r, &raw))
                return f != F_LISTEN_ADDRS ? "expected an array of strings" : "expected an array of socket addresses";
            if (f == F_LISTEN_ADDRS && !addr_from_raw(raw, &a))
                return "invalid socket address";
            count++;
        }
        if (r->err)
            return r->err;
        json_span whole = { r->buf + start, r->pos - start };
        if (f == F_EXCLUDE) {
            m->exclude = whole;
        } else if (f == F_URIS) {
            m->uris = whole;
            m->uris_count = count;
        } else {
            m->listen_addrs = whole;
            m->listen_addrs_count = count;
        }
        return NULL;
    }
    case F_PEER:
        return parse_peer_info(r, &m->peer, st->buf, st->scratch);
    default: { /* F_PEERS: validated here, decoded later through wire_next_peer_info */
        json_peek(r);
        const size_t start = r->pos;
        if (!json_array_begin(r))
            return "expected an array of peer infos";
        while (json_array_next(r)) {
            wire_peer_info tmp;
            const char *e = parse_peer_info(r, &tmp, NULL, NULL);
            if (e)
                return e;
        }
        if (r->err)
            return r->err;
        m->peers.p = r->buf + start;
        m->peers.n = r->pos - start;
        return NULL;
    }
    }
    if (str) {
        if (!json_read_string(r, &raw))
            return f == F_NETWORK_ID ? "expected a string or null" : "expected a string";
        *str = decoded(raw, st->buf, st->scratch);
        return NULL;
    }
    if (!json_read_u64(r, num))
        return limit == UINT32_MAX ? "expected an integer 0..4294967295"
                                   : "expected an integer 0..18446744073709551615";
    if (*num > limit)
        return "expected an integer 0..4294967295";
    return NULL;
}

static bool decode_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return false;
}

/* Length of s cut to at most max bytes without splitting a UTF-8 sequence. */
static int utf8_prefix(wire_str s, size_t max)
{
    size_t n = s.n;
    if (n > max) {
        n = max;
        while (n && ((unsigned char)s.p[n] & 0xC0) == 0x80)
            n--;
    }
    return (int)n;
}

bool wire_decode(const char *buf, size_t len, wire_msg *m, char *scratch, char *err, size_t errlen)
{
    decode_state st;
    json_reader r;
    json_span key;

    memset(m, 0, sizeof *m);
    memset(&st, 0, sizeof st);
    st.buf = buf;
    st.scratch = scratch;
    json_reader_init(&r, buf, len);

    if (json_peek(&r) != JSON_OBJECT) {
        const char *why = NULL;
        if (!json_validate(buf, len, &why))
            return decode_fail(err, errlen, "invalid JSON: %s", why);
        return decode_fail(err, errlen, "invalid type: expected a JSON object");
    }
    json_object_begin(&r);
    while (json_object_next(&r, &key)) {
        int f = field_of(key);
        if (f < 0 || st.seen[f]) {
            if (f >= 0)
                st.seen[f] = 2;     /* judged later: only a field the type uses may not repeat */
            json_skip(&r, NULL);
            continue;
        }
        st.seen[f] = 1;
        json_peek(&r);
        const size_t at = r.pos;
        const unsigned depth = r.depth;
        const char *why = parse_field(&r, f, m, &st);
        if (why) {
            /* Keep the reason for later; the value must still be valid JSON. */
            st.err[f] = why;
            r.err = NULL;
            r.pos = at;
            r.depth = depth;
            json_skip(&r, NULL);
        }
    }
    if (!json_end(&r))
        return decode_fail(err, errlen, "invalid JSON: %s", r.err);

    if (!st.seen[F_TYPE])
        return decode_fail(err, errlen, "missing field `type`");
    if (st.seen[F_TYPE] > 1)
        return decode_fail(err, errlen, "duplicate field `type`");
    if (st.err[F_TYPE])
        return decode_fail(err, errlen, "invalid value for field `type`: %s", st.err[F_TYPE]);

    wire_str tn = m->type_name;
    if (tn.n >= 4 && memcmp(tn.p, "pex_", 4) == 0) {
        m->type = WT_PEX;
        return true;
    }
    for (size_t t = 1; t < N_TYPES; t++)
        if (types[t].name && name_is(tn.p, tn.n, types[t].name)) {
            m->type = (enum wire_type)t;
            break;
        }
    if (m->type == WT_UNKNOWN) {
        char shown[80];
        int k = utf8_prefix(tn, 64);
        snprintf(shown, sizeof shown, "%.*s%s", k, tn.p, (size_t)k < tn.n ? "..." : "");
        return decode_fail(err, errlen, "unknown message type `%s`", shown);
    }

    const uint32_t req = types[m->type].required, opt = types[m->type].optional;
    for (int f = 1; f < F_COUNT; f++) {
        if (!((req | opt) & BIT(f)) || !st.seen[f])
            continue;
        if (st.seen[f] > 1)
            return decode_fail(err, errlen, "duplicate field `%s`", field_names[f]);
        if (st.err[f])
            return decode_fail(err, errlen, "invalid value for field `%s`: %s", field_names[f], st.err[f]);
    }
    for (int f = 1; f < F_COUNT; f++)
        if ((req & BIT(f)) && !st.seen[f])
            return decode_fail(err, errlen, "missing field `%s`", field_names[f]);
    if (m->type == WT_REGISTER && m->network_id_null)
        return decode_fail(err, errlen, "invalid value for field `network_id`: expected a string, found null");
    if (m->type == WT_GET_PEERS && !st.seen[F_NETWORK_ID])
        m->network_id_null = true;
    return true;
}

/* ---- iterators ---- */

static bool iter_start(wire_iter *it, json_span arr)
{
    if (!it->started) {
        it->started = true;
        json_reader_init(&it->r, arr.p, arr.n);
        if (!arr.n || !json_array_begin(&it->r))
            return false;
    }
    return json_array_next(&it->r);
}

bool wire_next_string(wire_iter *it, json_span arr, wire_str *out, char *scratch)
{
    json_span raw;
    if (!iter_start(it, arr) || !json_read_string(&it->r, &raw))
        return false;
    *out = decoded(raw, arr.p, scratch);
    return true;
}

bool wire_next_addr(wire_iter *it, json_span arr, addr_t *out)
{
    json_span raw;
    return iter_start(it, arr) && json_read_string(&it->r, &raw) && addr_from_raw(raw, out);
}

bool wire_next_peer_info(wire_iter *it, json_span arr, wire_peer_info *out, char *scratch)
{
    return iter_start(it, arr) && parse_peer_info(&it->r, out, arr.p, scratch) == NULL;
}

bool wire_next_dht_record(wire_iter *it, json_span arr, wire_dht_record *out, char *scratch)
{
    return iter_start(it, arr) && parse_dht_record(&it->r, out, arr.p, scratch) == NULL;
}

/* ---- writers ---- */

static void write_str(json_writer *w, wire_str s)
{
    jw_string(w, s.p, s.n);
}

static void write_addr(json_writer *w, const addr_t *a)
{
    char text[ADDR_STRLEN];
    size_t n = addr_format(a, text);
    jw_raw(w, "\"", 1);
    jw_raw(w, text, n);
    jw_raw(w, "\"", 1);
}

static void write_register_ack(json_writer *w, bool success, wire_str message, uint64_t connected_peers)
{
    JW_LIT(w, "{\"type\":\"register_ack\",\"success\":");
    jw_bool(w, success);
    JW_LIT(w, ",\"message\":");
    write_str(w, message);
    JW_LIT(w, ",\"connected_peers\":");
    jw_u64(w, connected_peers);
    JW_LIT(w, "}");
}

static void write_error(json_writer *w, uint64_t code, wire_str message)
{
    JW_LIT(w, "{\"type\":\"error\",\"code\":");
    jw_u64(w, code);
    JW_LIT(w, ",\"message\":");
    write_str(w, message);
    JW_LIT(w, "}");
}

static wire_str cstr(const char *s)
{
    wire_str w = { s, strlen(s) };
    return w;
}

void wire_write_register_ack(json_writer *w, bool success, const char *message, uint64_t connected_peers)
{
    write_register_ack(w, success, cstr(message), connected_peers);
}

void wire_write_relay_message_head(json_writer *w, wire_str from, wire_str to)
{
    JW_LIT(w, "{\"type\":\"relay_message\",\"from\":");
    write_str(w, from);
    JW_LIT(w, ",\"to\":");
    write_str(w, to);
    JW_LIT(w, ",\"payload\":");
}

void wire_write_relay_message_tail(json_writer *w, uint64_t seq)
{
    JW_LIT(w, ",\"seq\":");
    jw_u64(w, seq);
    JW_LIT(w, "}");
}

void wire_write_relay_message(json_writer *w, wire_str from, wire_str to, json_span payload, uint64_t seq)
{
    wire_write_relay_message_head(w, from, to);
    jw_raw(w, payload.p, payload.n);
    wire_write_relay_message_tail(w, seq);
}

void wire_write_broadcast(json_writer *w, wire_str from, json_span payload)
{
    JW_LIT(w, "{\"type\":\"broadcast\",\"from\":");
    write_str(w, from);
    JW_LIT(w, ",\"payload\":");
    jw_raw(w, payload.p, payload.n);
    JW_LIT(w, ",\"exclude\":[]}");
}

void wire_write_peer_info(json_writer *w, const wire_peer_info *p)
{
    JW_LIT(w, "{\"peer_id\":");
    write_str(w, p->peer_id);
    JW_LIT(w, ",\"network_id\":");
    write_str(w, p->network_id);
    JW_LIT(w, ",\"protocol_version\":");
    jw_u64(w, p->protocol_version);
    JW_LIT(w, ",\"connected_at\":");
    jw_u64(w, p->connected_at);
    JW_LIT(w, ",\"last_seen\":");
    jw_u64(w, p->last_seen);
    if (p->n_addresses) {
        JW_LIT(w, ",\"addresses\":[");
        for (size_t i = 0; i < p->n_addresses; i++) {
            if (i)
                JW_LIT(w, ",");
            write_addr(w, &p->addresses[i]);
        }
        JW_LIT(w, "]");
    }
    JW_LIT(w, "}");
}

void wire_write_peer_connected(json_writer *w, const wire_peer_info *p)
{
    JW_LIT(w, "{\"type\":\"peer_connected\",\"peer\":");
    wire_write_peer_info(w, p);
    JW_LIT(w, "}");
}

void wire_write_peer_disconnected(json_writer *w, wire_str peer_id)
{
    JW_LIT(w, "{\"type\":\"peer_disconnected\",\"peer_id\":");
    write_str(w, peer_id);
    JW_LIT(w, "}");
}

void wire_write_peers_begin(json_writer *w)
{
    JW_LIT(w, WIRE_PEERS_HEAD);
}

void wire_write_peers_item(json_writer *w, const wire_peer_info *p, bool first)
{
    if (!first)
        JW_LIT(w, ",");
    wire_write_peer_info(w, p);
}

void wire_write_peers_end(json_writer *w)
{
    JW_LIT(w, WIRE_PEERS_TAIL);
}

void wire_write_pong(json_writer *w, uint64_t timestamp)
{
    JW_LIT(w, "{\"type\":\"pong\",\"timestamp\":");
    jw_u64(w, timestamp);
    JW_LIT(w, "}");
}

void wire_write_ping(json_writer *w, uint64_t timestamp)
{
    JW_LIT(w, "{\"type\":\"ping\",\"timestamp\":");
    jw_u64(w, timestamp);
    JW_LIT(w, "}");
}

void wire_write_hole_punch_coordinate(json_writer *w, wire_str peer_id, const addr_t *external_addr)
{
    JW_LIT(w, "{\"type\":\"hole_punch_coordinate\",\"peer_id\":");
    write_str(w, peer_id);
    JW_LIT(w, ",\"external_addr\":");
    write_addr(w, external_addr);
    JW_LIT(w, "}");
}

void wire_write_hole_punch_result(json_writer *w, wire_str peer_id, bool success)
{
    JW_LIT(w, "{\"type\":\"hole_punch_result\",\"peer_id\":");
    write_str(w, peer_id);
    JW_LIT(w, ",\"success\":");
    jw_bool(w, success);
    JW_LIT(w, "}");
}

void wire_write_error(json_writer *w, uint64_t code, const char *message)
{
    write_error(w, code, cstr(message));
}

/* Everything up to the URI array: the writer and the re-encoder share it. */
static void write_turn_credentials_head(json_writer *w, wire_str username, wire_str password,
                                        uint64_t ttl_secs)
{
    JW_LIT(w, "{\"type\":\"turn_credentials\",\"username\":");
    write_str(w, username);
    JW_LIT(w, ",\"password\":");
    write_str(w, password);
    JW_LIT(w, ",\"ttl_secs\":");
    jw_u64(w, ttl_secs);
    JW_LIT(w, ",\"uris\":");
}

/* A validated raw array of strings, re-encoded canonically. */
static void write_string_array(json_writer *w, json_span arr, char *scratch)
{
    wire_iter it = { 0 };
    wire_str s;
    bool first = true;
    JW_LIT(w, "[");
    while (wire_next_string(&it, arr, &s, scratch)) {
        if (!first)
            JW_LIT(w, ",");
        first = false;
        write_str(w, s);
    }
    JW_LIT(w, "]");
}

void wire_write_turn_credentials(json_writer *w, wire_str username, wire_str password,
                                 uint64_t ttl_secs, const wire_str *uris, size_t n_uris)
{
    write_turn_credentials_head(w, username, password, ttl_secs);
    JW_LIT(w, "[");
    for (size_t i = 0; i < n_uris; i++) {
        if (i)
            JW_LIT(w, ",");
        write_str(w, uris[i]);
    }
    JW_LIT(w, "]}");
}

void wire_write_get_dht_records(json_writer *w, uint64_t max_keys)
{
    JW_LIT(w, "{\"type\":\"get_dht_records\",\"max_keys\":");
    jw_u64(w, max_keys);
    JW_LIT(w, "}");
}

void wire_write_dht_records_begin(json_writer *w)
{
    JW_LIT(w, "{\"type\":\"dht_records\",\"records\":[");
}

void wire_write_dht_records_item(json_writer *w, const wire_dht_record *r, bool first)
{
    if (!first)
        JW_LIT(w, ",");
    JW_LIT(w, "{\"content_key\":");
    write_str(w, r->content_key);
    JW_LIT(w, ",\"providers\":");
    jw_u64(w, r->providers);
    JW_LIT(w, "}");
}

void wire_write_dht_records_end(json_writer *w, uint64_t total_keys, bool truncated)
{
    JW_LIT(w, "],\"total_keys\":");
    jw_u64(w, total_keys);
    JW_LIT(w, ",\"truncated\":");
    jw_bool(w, truncated);
    JW_LIT(w, "}");
}

/* ---- canonical re-encoding ---- */

/* A validated payload with any whitespace dropped (serde_json writes it compact). */
static void write_payload_compact(json_writer *w, json_span payload)
{
    size_t i = 0;
    while (i < payload.n) {
        size_t run = i;
        while (run < payload.n && !is_ws(payload.p[run]))
            run++;
        jw_raw(w, payload.p + i, run - i);
        while (run < payload.n && is_ws(payload.p[run]))
            run++;
        i = run;
    }
}

void wire_encode(json_writer *w, const wire_msg *m, char *scratch)
{
    wire_iter it = { 0 };
    addr_t a;
    wire_peer_info pi;
    wire_dht_record rec;
    bool first = true;

    switch (m->type) {
    case WT_REGISTER:
        JW_LIT(w, "{\"type\":\"register\",\"peer_id\":");
        write_str(w, m->peer_id);
        JW_LIT(w, ",\"network_id\":");
        write_str(w, m->network_id);
        JW_LIT(w, ",\"protocol_version\":");
        jw_u64(w, m->protocol_version);
        if (m->listen_addrs_count) {
            JW_LIT(w, ",\"listen_addrs\":[");
            while (wire_next_addr(&it, m->listen_addrs, &a)) {
                if (!first)
                    JW_LIT(w, ",");
                first = false;
                write_addr(w, &a);
            }
            JW_LIT(w, "]");
        }
        JW_LIT(w, "}");
        break;
    case WT_REGISTER_ACK:
        write_register_ack(w, m->success, m->message, m->connected_peers);
        break;
    case WT_UNREGISTER:
        JW_LIT(w, "{\"type\":\"unregister\",\"peer_id\":");
        write_str(w, m->peer_id);
        JW_LIT(w, "}");
        break;
    case WT_RELAY_MESSAGE:
        JW_LIT(w, "{\"type\":\"relay_message\",\"from\":");
        write_str(w, m->from);
        JW_LIT(w, ",\"to\":");
        write_str(w, m->to);
        JW_LIT(w, ",\"payload\":");
        write_payload_compact(w, m->payload);
        JW_LIT(w, ",\"seq\":");
        jw_u64(w, m->seq);
        JW_LIT(w, "}");
        break;
    case WT_BROADCAST:
        JW_LIT(w, "{\"type\":\"broadcast\",\"from\":");
        write_str(w, m->from);
        JW_LIT(w, ",\"payload\":");
        write_payload_compact(w, m->payload);
        JW_LIT(w, ",\"exclude\":");
        write_string_array(w, m->exclude, scratch);
        JW_LIT(w, "}");
        break;
    case WT_PEER_CONNECTED:
        wire_write_peer_connected(w, &m->peer);
        break;
    case WT_PEER_DISCONNECTED:
        wire_write_peer_disconnected(w, m->peer_id);
        break;
    case WT_GET_PEERS:
        JW_LIT(w, "{\"type\":\"get_peers\",\"network_id\":");
        if (m->network_id_null)
            JW_LIT(w, "null");
        else
            write_str(w, m->network_id);
        JW_LIT(w, "}");
        break;
    case WT_PEERS:
        wire_write_peers_begin(w);
        while (wire_next_peer_info(&it, m->peers, &pi, scratch)) {
            wire_write_peers_item(w, &pi, first);
            first = false;
        }
        wire_write_peers_end(w);
        break;
    case WT_PING:
        wire_write_ping(w, m->timestamp);
        break;
    case WT_PONG:
        wire_write_pong(w, m->timestamp);
        break;
    case WT_HOLE_PUNCH_REQUEST:
        JW_LIT(w, "{\"type\":\"hole_punch_request\",\"peer_id\":");
        write_str(w, m->peer_id);
        JW_LIT(w, ",\"target_peer_id\":");
        write_str(w, m->target_peer_id);
        JW_LIT(w, ",\"external_addr\":");
        write_addr(w, &m->external_addr);
        JW_LIT(w, "}");
        break;
    case WT_HOLE_PUNCH_COORDINATE:
        wire_write_hole_punch_coordinate(w, m->peer_id, &m->external_addr);
        break;
    case WT_HOLE_PUNCH_RESULT:
        wire_write_hole_punch_result(w, m->peer_id, m->success);
        break;
    case WT_ERROR:
        write_error(w, m->code, m->message);
        break;
    case WT_GET_TURN_CREDENTIALS:
        JW_LIT(w, "{\"type\":\"get_turn_credentials\"}");
        break;
    case WT_TURN_CREDENTIALS:
        write_turn_credentials_head(w, m->username, m->password, m->ttl_secs);
        write_string_array(w, m->uris, scratch);
        JW_LIT(w, "}");
        break;
    case WT_GET_DHT_RECORDS:
        wire_write_get_dht_records(w, m->max_keys);
        break;
    case WT_DHT_RECORDS:
        wire_write_dht_records_begin(w);
        while (wire_next_dht_record(&it, m->records, &rec, scratch)) {
            wire_write_dht_records_item(w, &rec, first);
            first = false;
        }
        wire_write_dht_records_end(w, m->total_keys, m->truncated);
        break;
    case WT_PEX:
    case WT_UNKNOWN:
        break;   /* PEX frames are re-encoded by the PEX binding, not here */
    }
}
