/* Fuzzes the running relay over loopback: for a bounded time (DIG_NETFUZZ_SECS, default 20)
 * dozens of connections send mutated handshakes, mutated frames (bit flips, truncations, bad
 * opcodes, reserved bits, unmasked frames, huge and non-minimal length fields, odd
 * fragmentation) and mutated JSON built from real messages, at random write sizes and paces,
 * and end in random ways (close, reset, half-close, linger); mutated STUN Binding Requests hit
 * the UDP listener too. Meanwhile an honest peer keeps pinging and must keep getting pongs, and
 * fresh honest peers keep registering and receiving a relayed message, and an honest STUN
 * client keeps getting its Binding response. The relay must stay up, answer /health, exit 0 on
 * SIGTERM and log no sanitizer report (run it against the ASan build: `make SANITIZER=address
 * test`).
 *
 * Fuzz connections come from random 127.1.x.y sources and fuzz datagrams from 127.2.x.y, so the
 * relay's per-source limits and ban list are exercised at their defaults without ever touching
 * the honest peers' 127.0.0.1 and 127.0.0.3.
 * DIG_NETFUZZ_SEED repeats a run's choices (timing still varies). On failure, the bytes every
 * open and recently closed connection sent are saved under /tmp/dig-netfuzz-<seed>/ to replay
 * by hand, and the relay's log is kept. */
#include "stun.h"
#include "tests/harness.h"
#include "tests/test.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FUZZ_CONNS 48              /* fuzz connections open at once */
#define CONN_LIFETIME_MS 3000      /* a fuzz connection is closed by us after this at the latest */
#define TRANSCRIPT_CAP (256u * 1024u)
#define KEEP_CLOSED 32             /* closed connections whose transcripts are kept */
#define PING_EVERY_MS 200
#define PONG_DEADLINE_MS 3000
#define HONEST_ROUND_EVERY_MS 1500
#define STUN_EVERY_MS 5            /* 200 fuzz datagrams a second: under the relay's global STUN
                                    * limit (1000/s), so the honest STUN client is never refused */
#define MAX_MSG 4096               /* an ordinary generated message; rare ones are far larger */
#define ID_POOL 96                 /* fuzzers pick peer ids from a small pool so they collide */

/* ---------------------------------------------------------------- random choices */

static uint64_t rng_state;

static uint64_t rnd(void) { return h_rand(&rng_state); }
static size_t below(size_t n) { return h_below(&rng_state, n); }

/* True with probability pct percent. */
static bool chance(unsigned pct)
{
    return below(100) < pct;
}

/* ---------------------------------------------------------------- growable byte strings */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} bytes;

static void b_reserve(bytes *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t n = b->cap ? b->cap : 256;
    while (n < b->len + extra)
        n *= 2;
    uint8_t *q = realloc(b->p, n);
    if (!q) {
        fprintf(stderr, "test_netfuzz: out of memory\n");
        abort();
    }
    b->p = q;
    b->cap = n;
}

static void b_put(bytes *b, const void *data, size_t n)
{
    b_reserve(b, n);
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void b_puts(bytes *b, const char *s)
{
    b_put(b, s, strlen(s));
}

static void b_printf(bytes *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void b_printf(bytes *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    b_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void b_free(bytes *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---------------------------------------------------------------- real messages */

static const char *const networks[] = {
    "DIG_MAINNET", "DIG_TESTNET", "", "n\\u0000x", "\xc3\xa9t\xc3\xa9",
};

static const char *const addrs[] = {
    "203.0.113.1:9444", "[2001:db8::1]:9444", "[::]:9445", "0.0.0.0:1", "1.2.3.4:99999",
    "[fe80::1%eth0]:1", "127.0.0.1:0", "[::ffff:1.2.3.4]:5", "host:1", "1.2.3.4",
};

/* Golden messages from the conformance data, when present. */
static char **golden;
static size_t n_golden;

static void load_golden(void)
{
    FILE *f = fopen("tests/data/rly-valid.jsonl", "r");
    if (!f)
        return;
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        if (n == 0)
            continue;
        char **g = realloc(golden, (n_golden + 1) * sizeof *g);
        if (!g)
            break;
        golden = g;
        golden[n_golden] = malloc(n + 1);
        if (!golden[n_golden])
            break;
        memcpy(golden[n_golden], line, n);
        golden[n_golden++][n] = '\0';
    }
    fclose(f);
}

static void free_golden(void)
{
    for (size_t i = 0; i < n_golden; i++)
        free(golden[i]);
    free(golden);
    golden = NULL;
    n_golden = 0;
}

static void put_id(bytes *b)
{
    b_printf(b, "\"fz-%zu\"", below(ID_POOL));
}

static void put_payload(bytes *b)
{
    size_t n = chance(5) ? below(5000) : below(64);
    b_puts(b, "[");
    for (size_t i = 0; i < n; i++)
        b_printf(b, "%s%zu", i ? "," : "", below(256));
    b_puts(b, "]");
}

/* One well-formed client (or, now and then, server-only) message. */
static void gen_message(bytes *b)
{
    if (n_golden && chance(15)) {
        b_puts(b, golden[below(n_golden)]);
        return;
    }
    switch (below(11)) {
    case 0:
    case 1:
        b_puts(b, "{\"type\":\"register\",\"peer_id\":");
        put_id(b);
        b_printf(b, ",\"network_id\":\"%s\",\"protocol_version\":%zu", networks[below(5)],
                 chance(90) ? 1 : below(300));
        if (chance(40)) {
            b_printf(b, ",\"listen_addrs\":[\"%s\"", addrs[below(10)]);
            for (size_t i = below(12); i > 0; i--)
                b_printf(b, ",\"%s\"", addrs[below(10)]);
            b_puts(b, "]");
        }
        b_puts(b, "}");
        break;
    case 2:
        b_printf(b, "{\"type\":\"get_peers\",\"network_id\":%s}",
                 chance(30) ? "null" : "\"DIG_MAINNET\"");
        break;
    case 3:
    case 4:
        b_puts(b, "{\"type\":\"relay_message\",\"from\":");
        put_id(b);
        b_puts(b, ",\"to\":");
        put_id(b);
        b_puts(b, ",\"payload\":");
        put_payload(b);
        b_printf(b, ",\"seq\":%" PRIu64 "}", rnd() >> below(64));
        break;
    case 5:
        b_puts(b, "{\"type\":\"broadcast\",\"from\":");
        put_id(b);
        b_puts(b, ",\"payload\":");
        put_payload(b);
        b_puts(b, ",\"exclude\":[");
        for (size_t i = below(4); i > 0; i--) {
            put_id(b);
            if (i > 1)
                b_puts(b, ",");
        }
        b_puts(b, "]}");
        break;
    case 6:
        b_printf(b, "{\"type\":\"ping\",\"timestamp\":%" PRIu64 "}", rnd() >> below(64));
        break;
    case 7:
        b_puts(b, "{\"type\":\"unregister\",\"peer_id\":");
        put_id(b);
        b_puts(b, "}");
        break;
    case 8:
        b_puts(b, "{\"type\":\"hole_punch_request\",\"peer_id\":");
        put_id(b);
        b_puts(b, ",\"target_peer_id\":");
        put_id(b);
        b_printf(b, ",\"external_addr\":\"%s\"}", addrs[below(10)]);
        break;
    case 9:
        b_puts(b, "{\"type\":\"hole_punch_result\",\"peer_id\":");
        put_id(b);
        b_printf(b, ",\"success\":%s}", chance(50) ? "true" : "false");
        break;
    default:
        b_printf(b, "{\"type\":\"pex_%s\",\"peers\":[],\"n\":%zu}",
                 chance(50) ? "request" : "response", below(1000));
        break;
    }
}

/* Tokens worth splicing into JSON: structure, edge numbers, escapes, bad UTF-8. */
static const char *const json_tokens[] = {
    "{", "}", "[", "]", ",", ":", "\"", "\\", "null", "true", "false", "-0", "-1", "1e999",
    "1.5", "18446744073709551615", "18446744073709551616", "256", "01", "\"type\"",
    "\"register\"", "\"relay_message\"", "\"peer_id\"", "\"payload\"", "\"\\ud800\"",
    "\"\\u0000\"", "\xc0\x80", "\xed\xa0\x80", "\xff", "\xf4\x90\x80\x80", " ", "\t\r\n",
};

/* Applies one random mutation to a JSON text. */
static void mutate_json(bytes *b)
{
    if (b->len == 0) {
        b_puts(b, json_tokens[below(sizeof json_tokens / sizeof json_tokens[0])]);
        return;
    }
    size_t at = below(b->len);
    switch (below(9)) {
    case 0: /* bit flip */
        b->p[at] ^= (uint8_t)(1u << below(8));
        break;
    case 1: /* random byte */
        b->p[at] = (uint8_t)rnd();
        break;
    case 2: { /* delete a range */
        size_t n = 1 + below(b->len - at);
        memmove(b->p + at, b->p + at + n, b->len - at - n);
        b->len -= n;
        break;
    }
    case 3: { /* duplicate a range */
        size_t n = 1 + below(b->len - at < 512 ? b->len - at : 512);
        b_reserve(b, n);
        memmove(b->p + at + n, b->p + at, b->len - at);
        b->len += n;
        break;
    }
    case 4: { /* insert a token */
        const char *t = json_tokens[below(sizeof json_tokens / sizeof json_tokens[0])];
        size_t n = strlen(t);
        b_reserve(b, n);
        memmove(b->p + at + n, b->p + at, b->len - at);
        memcpy(b->p + at, t, n);
        b->len += n;
        break;
    }
    case 5: /* truncate */
        b->len = at;
        break;
    case 6: { /* nest deeply */
        bytes n = { 0 };
        size_t depth = 1 + below(2000);
        for (size_t i = 0; i < depth; i++)
            b_puts(&n, chance(50) ? "[" : "{\"a\":");
        b_put(&n, b->p, b->len);
        b_free(b);
        *b = n;
        break;
    }
    case 7: { /* a long string value */
        size_t n = chance(10) ? 70000 + below(300000) : below(3000);
        bytes s = { 0 };
        b_puts(&s, "{\"type\":\"register\",\"peer_id\":\"");
        b_reserve(&s, n);
        memset(s.p + s.len, 'a' + (int)below(26), n);
        s.len += n;
        b_puts(&s, "\",\"network_id\":\"DIG_MAINNET\",\"protocol_version\":1}");
        b_free(b);
        *b = s;
        break;
    }
    default: { /* duplicate the "type" member with another value */
        bytes s = { 0 };
        b_put(&s, b->p, b->len);
        if (s.len && s.p[s.len - 1] == '}') {
            s.len--;
            b_puts(&s, ",\"type\":\"ping\"}");
        }
        b_free(b);
        *b = s;
        break;
    }
    }
}

/* ---------------------------------------------------------------- frames */

static void put_header(bytes *out, unsigned b0, bool masked, uint64_t len, int len_form)
{
    uint8_t h[10];
    size_t n = 0;
    uint8_t m = masked ? 0x80 : 0;
    h[n++] = (uint8_t)b0;
    if (len_form == 0) {
        h[n++] = (uint8_t)(m | (len & 0x7f));
    } else if (len_form == 1) {
        h[n++] = (uint8_t)(m | 126);
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    } else {
        h[n++] = (uint8_t)(m | 127);
        for (int i = 7; i >= 0; i--)
            h[n++] = (uint8_t)(len >> (8 * i));
    }
    b_put(out, h, n);
}

/* The smallest length form for len, as a valid frame uses. */
static int minimal_form(uint64_t len)
{
    return len < 126 ? 0 : len <= 0xffff ? 1 : 2;
}

/* Appends one frame carrying payload (masked unless told otherwise). */
static void put_frame(bytes *out, unsigned b0, bool masked, const uint8_t *payload, size_t len,
                      int len_form)
{
    put_header(out, b0, masked, len, len_form);
    uint8_t key[4] = { 0, 0, 0, 0 };
    if (masked) {
        uint64_t r = rnd();
        memcpy(key, &r, 4);
        b_put(out, key, 4);
    }
    b_reserve(out, len);
    for (size_t i = 0; i < len; i++)
        out->p[out->len + i] = (uint8_t)(payload[i] ^ key[i & 3]);
    out->len += len;
}

static const char *const frame_kinds[] = {
    "text", "binary", "fragmented", "bit-flipped", "bad-opcode", "rsv", "unmasked",
    "oversize-control", "close", "huge-length", "non-minimal", "short-length", "truncated",
    "stray-continuation", "ping-pong",
};
#define N_FRAME_KINDS (sizeof frame_kinds / sizeof frame_kinds[0])
static unsigned long frames_by_kind[N_FRAME_KINDS];

/* Appends the next frame (or frames) of a fuzz connection: a message, mutated or not, framed
 * well or badly. */
static void gen_frames(bytes *out)
{
    bytes msg = { 0 };
    gen_message(&msg);
    if (chance(50))
        for (size_t i = 1 + below(3); i > 0; i--)
            mutate_json(&msg);
    if (msg.len == 0)
        b_puts(&msg, "{}");

    size_t kind = chance(45) ? 0 : below(N_FRAME_KINDS);
    frames_by_kind[kind]++;
    switch (kind) {
    case 0: /* text */
        put_frame(out, 0x81, true, msg.p, msg.len, minimal_form(msg.len));
        break;
    case 1: /* binary */
        put_frame(out, 0x82, true, msg.p, msg.len, minimal_form(msg.len));
        break;
    case 2: { /* fragmented, control frames in between now and then */
        size_t done = 0;
        bool first = true;
        while (done < msg.len || first) {
            size_t n = 1 + below(msg.len - done < 300 ? msg.len - done : 300);
            if (n > msg.len - done)
                n = msg.len - done;
            bool fin = done + n == msg.len;
            unsigned op = first ? 1 : 0;
            put_frame(out, (fin ? 0x80u : 0u) | op, true, msg.p + done, n, minimal_form(n));
            done += n;
            first = false;
            if (!fin && chance(20))
                put_frame(out, 0x89, true, (const uint8_t *)"hi", 2, 0);
        }
        break;
    }
    case 3: { /* a good frame with bits flipped anywhere */
        size_t start = out->len;
        put_frame(out, 0x81, true, msg.p, msg.len, minimal_form(msg.len));
        for (size_t i = 1 + below(4); i > 0; i--)
            out->p[start + below(out->len - start)] ^= (uint8_t)(1u << below(8));
        break;
    }
    case 4: { /* reserved opcode */
        unsigned op = chance(50) ? 3 + (unsigned)below(5) : 11 + (unsigned)below(5);
        put_frame(out, 0x80 | op, true, msg.p, msg.len, minimal_form(msg.len));
        break;
    }
    case 5: /* reserved bits */
        put_frame(out, 0x81 | (unsigned)(1 + below(7)) << 4, true, msg.p, msg.len,
                  minimal_form(msg.len));
        break;
    case 6: /* unmasked */
        put_frame(out, 0x81, false, msg.p, msg.len, minimal_form(msg.len));
        break;
    case 7: /* a control frame over 125 bytes, or a fragmented one */
        if (chance(50))
            put_frame(out, 0x89, true, msg.p, msg.len, minimal_form(msg.len));
        else
            put_frame(out, chance(50) ? 0x09 : 0x08, true, msg.p, msg.len < 100 ? msg.len : 100,
                      0);
        break;
    case 8: { /* close with a random body: no code, one byte, odd codes, bad UTF-8 reason */
        uint8_t body[125];
        size_t n = below(sizeof body + 1);
        for (size_t i = 0; i < n; i++)
            body[i] = (uint8_t)rnd();
        if (n >= 2 && chance(50)) {
            static const uint16_t codes[] = { 1000, 1001, 1002, 1005, 1006, 1015, 999, 2999,
                                              3000, 4999, 5000, 65535 };
            uint16_t c = codes[below(sizeof codes / sizeof codes[0])];
            body[0] = (uint8_t)(c >> 8);
            body[1] = (uint8_t)c;
        }
        put_frame(out, 0x88, true, body, n, 0);
        break;
    }
    case 9: { /* a huge declared length followed by a little data */
        static const uint64_t lens[] = { 0xffffffffffffffffull, 0x8000000000000000ull,
                                         0x7fffffffffffffffull, 1ull << 40, 1ull << 32,
                                         (1ull << 31) + 1, 262145, 16777216 };
        put_header(out, chance(50) ? 0x81 : 0x01, true, lens[below(sizeof lens / sizeof lens[0])],
                   2);
        b_put(out, "\x01\x02\x03\x04", 4);
        b_put(out, msg.p, msg.len);
        break;
    }
    case 10: /* a non-minimal length encoding */
        put_frame(out, 0x81, true, msg.p, msg.len, msg.len < 126 && chance(50) ? 1 : 2);
        break;
    case 11: { /* a declared length that disagrees with the bytes sent */
        uint64_t claimed = chance(50) ? msg.len + 1 + below(2000) : below(msg.len + 1);
        put_header(out, 0x81, true, claimed, minimal_form(claimed));
        b_put(out, "\0\0\0\0", 4);
        b_put(out, msg.p, msg.len);
        break;
    }
    case 12: { /* a frame cut short: the connection will end inside it */
        size_t start = out->len;
        put_frame(out, 0x81, true, msg.p, msg.len, minimal_form(msg.len));
        out->len = start + below(out->len - start);
        break;
    }
    case 13: /* continuation with no message open, or a new message inside a fragmented one */
        if (chance(50)) {
            put_frame(out, 0x80, true, msg.p, msg.len, minimal_form(msg.len));
        } else {
            put_frame(out, 0x01, true, msg.p, msg.len, minimal_form(msg.len));
            put_frame(out, 0x81, true, msg.p, msg.len, minimal_form(msg.len));
        }
        break;
    default: { /* pings and unsolicited pongs with random bodies */
        uint8_t body[125];
        size_t n = below(sizeof body + 1);
        for (size_t i = 0; i < n; i++)
            body[i] = (uint8_t)rnd();
        put_frame(out, chance(50) ? 0x89 : 0x8a, true, body, n, 0);
        break;
    }
    }
    b_free(&msg);
}

/* ---------------------------------------------------------------- handshakes */

static unsigned long bad_handshakes;

static void gen_handshake(bytes *out, uint16_t port)
{
    uint8_t raw[16];
    char key[32];
    h_random(raw, sizeof raw);
    h_base64(raw, sizeof raw, key, sizeof key);
    size_t start = out->len;
    b_printf(out,
             "GET / HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n",
             port, key);
    if (chance(75))
        return;
    bad_handshakes++;
    switch (below(8)) {
    case 0: /* bit flips */
        for (size_t i = 1 + below(4); i > 0; i--)
            out->p[start + below(out->len - start)] ^= (uint8_t)(1u << below(8));
        break;
    case 1: /* truncated */
        out->len = start + below(out->len - start);
        break;
    case 2: { /* a header far over any sane limit */
        out->len -= 2;
        size_t n = 4000 + below(20000);
        b_puts(out, "X-Big: ");
        b_reserve(out, n);
        memset(out->p + out->len, 'x', n);
        out->len += n;
        b_puts(out, "\r\n\r\n");
        break;
    }
    case 3: /* many headers */
        out->len -= 2;
        for (size_t i = 50 + below(200); i > 0; i--)
            b_printf(out, "X-%zu: %zu\r\n", i, i);
        b_puts(out, "\r\n");
        break;
    case 4: /* bare LF line ends, folded lines, NUL bytes */
        for (size_t i = start; i < out->len; i++)
            if (out->p[i] == '\r' && chance(50))
                out->p[i] = chance(50) ? '\n' : chance(50) ? ' ' : '\0';
        break;
    case 5: /* wrong version, method or path */
        out->len = start;
        b_printf(out, "%s %s HTTP/1.%zu\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                      "Sec-WebSocket-Version: %zu\r\nSec-WebSocket-Key: %s\r\n\r\n",
                 chance(50) ? "POST" : "GET", chance(50) ? "/health" : "/x?y#z", below(3),
                 below(20), chance(50) ? key : "short");
        break;
    case 6: /* random bytes instead of HTTP */
        out->len = start;
        for (size_t i = below(3000); i > 0; i--) {
            uint8_t c = (uint8_t)rnd();
            b_put(out, &c, 1);
        }
        break;
    default: /* a TLS ClientHello prefix at a plain listener */
        out->len = start;
        b_put(out, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
        break;
    }
}

/* ---------------------------------------------------------------- fuzz connections */

enum { END_CLOSE, END_RESET, END_HALF_CLOSE, END_LINGER };

typedef struct {
    int fd;
    unsigned id;
    char src[24];
    bytes out;                /* bytes still to send: out.p[out_off..out.len) */
    size_t out_off;
    bytes sent;               /* transcript of what was sent, up to TRANSCRIPT_CAP */
    bool sent_cut;            /* the transcript stopped at the cap */
    unsigned steps_left;
    bool reads;               /* drains what the relay sends; some never do */
    int end;
    bool ending;              /* half-closed or lingering: waiting for the relay or the deadline */
    unsigned pace_ms;
    uint64_t next_write_ms, deadline_ms;
} fconn;

typedef struct {
    unsigned id;
    char src[24];
    bytes sent;
    bool sent_cut;
} closed_record;

static fconn conns[FUZZ_CONNS];
static closed_record closed_ring[KEEP_CLOSED];
static size_t closed_next;

static struct {
    unsigned long opened, connect_failed, closed_by_relay, resets, bytes_sent, bytes_read;
} st;

static void record_closed(fconn *c)
{
    closed_record *r = &closed_ring[closed_next++ % KEEP_CLOSED];
    b_free(&r->sent);
    r->id = c->id;
    memcpy(r->src, c->src, sizeof r->src);
    r->sent = c->sent;
    r->sent_cut = c->sent_cut;
    c->sent = (bytes){ 0 };
}

static void fconn_finish(fconn *c, bool reset)
{
    if (c->fd >= 0) {
        if (reset) {
            struct linger lg = { 1, 0 };
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            st.resets++;
        }
        close(c->fd);
    }
    c->fd = -1;
    record_closed(c);
    b_free(&c->out);
    c->out_off = 0;
}

static bool fconn_open(fconn *c, uint16_t port, unsigned id)
{
    memset(c, 0, sizeof *c);
    c->id = id;
    snprintf(c->src, sizeof c->src, "127.1.%zu.%zu", below(256), 1 + below(254));
    c->fd = tcp_connect("127.0.0.1", port, c->src, 1000);
    if (c->fd < 0) {
        st.connect_failed++;
        return false;
    }
    st.opened++;
    uint64_t now = h_now_ms();
    c->reads = chance(90);
    c->end = (int)below(4);
    c->pace_ms = chance(10) ? (unsigned)below(200) : 0;
    c->steps_left = 1 + (unsigned)below(24);
    c->deadline_ms = now + CONN_LIFETIME_MS;
    c->next_write_ms = now;
    if (chance(95))
        gen_handshake(&c->out, port);
    /* Most connections register first, so that the frames after it get routed. */
    if (chance(70)) {
        bytes m = { 0 };
        b_puts(&m, "{\"type\":\"register\",\"peer_id\":");
        put_id(&m);
        b_puts(&m, ",\"network_id\":\"DIG_MAINNET\",\"protocol_version\":1}");
        put_frame(&c->out, 0x81, true, m.p, m.len, minimal_form(m.len));
        b_free(&m);
    }
    return true;
}

/* Sends a random-sized piece of the pending bytes; false when the connection is gone. */
static bool fconn_write(fconn *c, uint64_t now)
{
    if (now < c->next_write_ms || c->out_off == c->out.len)
        return true;
    size_t left = c->out.len - c->out_off;
    size_t n = chance(30) ? 1 + below(left < 16 ? left : 16) : left;
    ssize_t w = send(c->fd, c->out.p + c->out_off, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    if (c->sent_cut || c->sent.len + (size_t)w > TRANSCRIPT_CAP)
        c->sent_cut = true;
    else
        b_put(&c->sent, c->out.p + c->out_off, (size_t)w);
    c->out_off += (size_t)w;
    st.bytes_sent += (unsigned long)w;
    if (c->out_off == c->out.len) {
        c->out.len = c->out_off = 0;
    }
    c->next_write_ms = now + c->pace_ms;
    return true;
}

/* Reads and discards what the relay sent; false once it closed the connection. */
static bool fconn_read(fconn *c)
{
    uint8_t buf[16384];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            st.bytes_read += (unsigned long)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n < 0 && errno == EINTR)
            continue;
        return false;
    }
}

/* Moves a connection along: next frames, or its chosen ending. */
static void fconn_step(fconn *c)
{
    if (c->ending || c->out_off != c->out.len)
        return;
    if (c->steps_left > 0) {
        c->steps_left--;
        gen_frames(&c->out);
        return;
    }
    switch (c->end) {
    case END_CLOSE:
        fconn_finish(c, false);
        break;
    case END_RESET:
        fconn_finish(c, true);
        break;
    case END_HALF_CLOSE:
        shutdown(c->fd, SHUT_WR);
        c->ending = true;
        break;
    default:
        c->ending = true;
        break;
    }
}

/* ---------------------------------------------------------------- STUN datagrams */

static unsigned long stun_sent;

/* A UDP socket bound to src (any port); -1 on failure. */
static int udp_from(const char *src)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    if (fd < 0)
        return -1;
    if (inet_pton(AF_INET, src, &a.sin_addr) != 1 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_datagram(int fd, uint16_t port, const void *p, size_t n)
{
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port) };
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sendto(fd, p, n, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to);
}

static void put_be16(bytes *b, unsigned v)
{
    uint8_t x[2] = { (uint8_t)(v >> 8), (uint8_t)v };
    b_put(b, x, 2);
}

static void put_be32(bytes *b, uint32_t v)
{
    put_be16(b, v >> 16);
    put_be16(b, v & 0xffffu);
}

/* A Binding Request with a random transaction id, some attributes and, now and then, a correct
 * FINGERPRINT; the header's length field is fixed up at the end. */
static void gen_binding_request(bytes *b, uint8_t txid[STUN_TRANSACTION_ID_LEN])
{
    put_be16(b, 0x0001);
    put_be16(b, 0);
    put_be32(b, STUN_MAGIC_COOKIE);
    for (size_t i = 0; i < STUN_TRANSACTION_ID_LEN; i++)
        txid[i] = (uint8_t)rnd();
    b_put(b, txid, STUN_TRANSACTION_ID_LEN);
    static const uint16_t types[] = { 0x8022, 0x0024, 0x0003, 0x0006, 0x0008, 0x8029, 0x002a,
                                      0x0014, 0x0015, 0x001c, 0xc001 };
    for (size_t k = below(4); k > 0; k--) {
        size_t n = below(40);
        put_be16(b, types[below(sizeof types / sizeof types[0])]);
        put_be16(b, (unsigned)n);
        for (size_t i = 0; i < (n + 3) / 4 * 4; i++) {
            uint8_t c = i < n ? (uint8_t)('a' + below(26)) : 0;
            b_put(b, &c, 1);
        }
    }
    bool fingerprint = chance(50);
    size_t body = b->len - STUN_HEADER_LEN + (fingerprint ? 8 : 0);
    b->p[2] = (uint8_t)(body >> 8);
    b->p[3] = (uint8_t)body;
    if (fingerprint) {
        uint32_t crc = stun_crc32(b->p, b->len) ^ 0x5354554eu;
        put_be16(b, 0x8028);
        put_be16(b, 4);
        put_be32(b, crc);
    }
}

/* One mutated datagram at the STUN port from a random 127.2.x.y source. */
static void fuzz_stun_once(uint16_t port)
{
    char src[24];
    snprintf(src, sizeof src, "127.2.%zu.%zu", below(256), 1 + below(254));
    int fd = udp_from(src);
    if (fd < 0)
        return;
    bytes b = { 0 };
    uint8_t txid[STUN_TRANSACTION_ID_LEN];
    gen_binding_request(&b, txid);
    switch (below(6)) {
    case 0: /* as built */
        break;
    case 1: /* bit flips */
        for (size_t i = 1 + below(4); i > 0; i--)
            b.p[below(b.len)] ^= (uint8_t)(1u << below(8));
        break;
    case 2: /* truncated */
        b.len = below(b.len);
        break;
    case 3: /* a random header length field */
        b.p[2] = (uint8_t)rnd();
        b.p[3] = (uint8_t)rnd();
        break;
    case 4: /* an attribute claiming to run past the end */
        put_be16(&b, 0x8022);
        put_be16(&b, 0xfff0);
        break;
    default: { /* random bytes */
        size_t n = below(600);
        b.len = 0;
        b_reserve(&b, n);
        for (size_t i = 0; i < n; i++)
            b.p[i] = (uint8_t)rnd();
        b.len = n;
        break;
    }
    }
    send_datagram(fd, port, b.p, b.len);
    stun_sent++;
    b_free(&b);
    close(fd);
}

/* An honest STUN client at 127.0.0.3 gets a Binding success response echoing its transaction
 * id (three tries, as UDP may drop). */
static bool honest_stun(uint16_t port)
{
    int fd = udp_from("127.0.0.3");
    if (fd < 0)
        return false;
    bool ok = false;
    for (int attempt = 0; attempt < 3 && !ok; attempt++) {
        bytes b = { 0 };
        uint8_t txid[STUN_TRANSACTION_ID_LEN], resp[512];
        gen_binding_request(&b, txid);
        b.len = STUN_HEADER_LEN;  /* no attributes: always a success response */
        b.p[2] = b.p[3] = 0;
        send_datagram(fd, port, b.p, b.len);
        b_free(&b);
        struct pollfd pf = { fd, POLLIN, 0 };
        while (!ok && poll(&pf, 1, 1000) == 1) {
            ssize_t n = recv(fd, resp, sizeof resp, 0);
            ok = n >= STUN_HEADER_LEN && resp[0] == 0x01 && resp[1] == 0x01 &&
                 memcmp(resp + 8, txid, STUN_TRANSACTION_ID_LEN) == 0;
        }
    }
    close(fd);
    return ok;
}

/* ---------------------------------------------------------------- failure evidence */

static void save_bytes(const char *dir, const char *name, const bytes *b)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    if (b->len)
        fwrite(b->p, 1, b->len, f);
    fclose(f);
}

static void save_transcripts(uint64_t seed)
{
    char dir[128], name[96];
    snprintf(dir, sizeof dir, "/tmp/dig-netfuzz-%" PRIu64, seed);
    mkdir(dir, 0755);
    size_t saved = 0;
    for (size_t i = 0; i < FUZZ_CONNS; i++)
        if (conns[i].fd >= 0) {
            snprintf(name, sizeof name, "open-%u-from-%s%s.bin", conns[i].id, conns[i].src,
                     conns[i].sent_cut ? "-cut" : "");
            save_bytes(dir, name, &conns[i].sent);
            saved++;
        }
    for (size_t i = 0; i < KEEP_CLOSED; i++)
        if (closed_ring[i].id) {
            snprintf(name, sizeof name, "closed-%u-from-%s%s.bin", closed_ring[i].id,
                     closed_ring[i].src, closed_ring[i].sent_cut ? "-cut" : "");
            save_bytes(dir, name, &closed_ring[i].sent);
            saved++;
        }
    printf("  saved what %zu connections sent (each from its source address, in order) to %s/\n",
           saved, dir);
}

/* ---------------------------------------------------------------- honest peers */

static unsigned honest_rounds;

/* A new peer registers, gets a message relayed from `a`, and leaves. */
static bool honest_round(ws_client *a, uint16_t port)
{
    char id[64], msg[256];
    snprintf(id, sizeof id, "honest-b-%u", honest_rounds++);
    ws_client b;
    if (!wsc_connect_register(&b, port, id, "netfuzz-honest")) {
        printf("  honest peer %s could not connect and register: %s\n", id, b.err);
        wsc_close(&b);
        return false;
    }
    snprintf(msg, sizeof msg,
             "{\"type\":\"relay_message\",\"from\":\"honest-a\",\"to\":\"%s\",\"payload\":[7,8,9],"
             "\"seq\":%u}", id, honest_rounds);
    bool ok = wsc_send_text(a, msg) &&
              wsc_recv_type(&b, "relay_message", PONG_DEADLINE_MS) == WSC_OK;
    if (!ok) {
        printf("  honest peer %s did not get the message relayed to it\n", id);
    } else if (!strstr((const char *)b.msg, "\"payload\":[7,8,9]")) {
        printf("  honest peer %s got a wrong relay_message: %s\n", id, (const char *)b.msg);
        ok = false;
    }
    wsc_close(&b);
    return ok;
}

/* ---------------------------------------------------------------- the test */

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 10) : dflt;
}

static bool log_has_sanitizer_report(const relay_proc *r)
{
    char *log = relay_read_log(r);
    if (!log)
        return false;
    bool bad = strstr(log, "ERROR: AddressSanitizer") || strstr(log, "ERROR: LeakSanitizer") ||
               strstr(log, "runtime error:") || strstr(log, "SUMMARY: UndefinedBehaviorSanitizer");
    free(log);
    return bad;
}

static void test_relay_survives_mutated_traffic(void)
{
    uint64_t secs = env_u64("DIG_NETFUZZ_SECS", 20);
    uint64_t seed = env_u64("DIG_NETFUZZ_SEED", 0);
    if (!seed)
        seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    rng_state = seed ? seed : 1;
    printf("  netfuzz: seed %" PRIu64 " (DIG_NETFUZZ_SEED), %" PRIu64 " s\n", seed, secs);
    load_golden();

    static const char *const env[] = { "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0", NULL };
    static const char *const args[] = { "--log-level", "warn", NULL };
    relay_opts o = { .args = args, .env = env };
    relay_proc r;
    REQUIRE(relay_start(&r, &o));

    ws_client a;
    bool ok = wsc_connect_register(&a, r.port, "honest-a", "netfuzz-honest");
    if (!ok)
        printf("  honest-a could not register: %s\n", a.err);
    for (size_t i = 0; i < FUZZ_CONNS; i++)
        conns[i].fd = -1;

    unsigned next_id = 1, pings = 0, stun_answers = 0;
    long max_rtt = 0;
    uint64_t start = h_now_ms(), end = start + secs * 1000u;
    uint64_t next_ping = start, next_round = start + HONEST_ROUND_EVERY_MS, next_stun = start;
    while (ok && h_now_ms() < end) {
        uint64_t now = h_now_ms();
        struct pollfd pfd[FUZZ_CONNS];
        for (size_t i = 0; i < FUZZ_CONNS; i++) {
            fconn *c = &conns[i];
            if (c->fd < 0)
                fconn_open(c, r.port, next_id++);
            if (c->fd >= 0 && now >= c->deadline_ms)
                fconn_finish(c, chance(50));
            pfd[i].fd = c->fd;
            pfd[i].events = (short)((c->reads || c->ending ? POLLIN : 0) |
                                    (c->fd >= 0 && c->out_off < c->out.len ? POLLOUT : 0));
            pfd[i].revents = 0;
        }
        poll(pfd, FUZZ_CONNS, 10);
        now = h_now_ms();
        for (size_t i = 0; i < FUZZ_CONNS; i++) {
            fconn *c = &conns[i];
            if (c->fd < 0)
                continue;
            bool alive = true;
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
                alive = (c->reads || c->ending) ? fconn_read(c) : true;
            if (alive)
                alive = fconn_write(c, now);
            if (!alive) {
                st.closed_by_relay++;
                fconn_finish(c, false);
                continue;
            }
            fconn_step(c);
        }

        if (now >= next_stun) {
            fuzz_stun_once(r.stun_port);
            next_stun = now + STUN_EVERY_MS;
        }

        if (!relay_alive(&r)) {
            printf("  the relay died (exit %d) under fuzzing\n", r.exit_code);
            ok = false;
            break;
        }
        if (now >= next_ping) {
            long rtt = wsc_ping_rtt(&a, now, PONG_DEADLINE_MS);
            if (rtt < 0) {
                printf("  honest-a got no pong within %u ms (ping %u)\n", PONG_DEADLINE_MS, pings);
                ok = false;
                break;
            }
            pings++;
            if (rtt > max_rtt)
                max_rtt = rtt;
            next_ping = h_now_ms() + PING_EVERY_MS;
        }
        if (now >= next_round) {
            if (!honest_round(&a, r.port)) {
                ok = false;
                break;
            }
            if (!honest_stun(r.stun_port)) {
                printf("  the honest STUN client got no Binding response\n");
                ok = false;
                break;
            }
            stun_answers++;
            next_round = h_now_ms() + HONEST_ROUND_EVERY_MS;
        }
    }

    printf("  %lu fuzz connections (%lu refused), %lu bad handshakes, %lu bytes sent, %lu read, "
           "%lu closed by the relay, %lu reset by us\n",
           st.opened, st.connect_failed, bad_handshakes, st.bytes_sent, st.bytes_read,
           st.closed_by_relay, st.resets);
    printf("  frames:");
    for (size_t k = 0; k < N_FRAME_KINDS; k++)
        printf(" %s=%lu", frame_kinds[k], frames_by_kind[k]);
    printf("\n  %lu STUN datagrams; honest peers: %u pongs (slowest %ld ms), %u register+relay "
           "rounds, %u STUN answers\n", stun_sent, pings, max_rtt, honest_rounds, stun_answers);
    CHECK(ok);
    CHECK(st.opened > 100);
    CHECK(pings > 0);

    char resp[2048];
    bool health = h_http("127.0.0.1", r.health_port,
                         "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", resp, sizeof resp,
                         3000) > 0 && h_http_status(resp) == 200;
    if (!health && relay_alive(&r))
        printf("  /health did not answer 200 after fuzzing\n");
    CHECK(health);
    if (!ok)
        save_transcripts(seed);

    for (size_t i = 0; i < FUZZ_CONNS; i++)
        if (conns[i].fd >= 0)
            fconn_finish(&conns[i], false);
    wsc_close(&a);
    int code = relay_stop(&r, 10000);
    if (code != 0)
        printf("  relay exited %d after SIGTERM\n", code);
    CHECK_EQ_INT(code, 0);
    bool report = log_has_sanitizer_report(&r);
    CHECK(!report);
    bool failed = !ok || !health || code != 0 || report;
    if (failed)
        relay_print_log(&r, 6000);
    relay_cleanup(&r, failed);
    for (size_t i = 0; i < KEEP_CLOSED; i++)
        b_free(&closed_ring[i].sent);
    free_golden();
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN(test_relay_survives_mutated_traffic);
    return test_finish();
}
