/* libFuzzer harness for the WebSocket frame decoder.
 *
 * Input: byte 0 picks max_message, byte 1 seeds how the stream is split, the rest is the client
 * byte stream (a client's, or with byte 1's top bit set a server's, as the probe decodes it).
 * The stream is decoded twice: all at once, and arriving in pieces whose sizes
 * derive from byte 1 (sometimes exactly r.need, as conn.c does). Both runs must report the same
 * sequence of results, every WS_NEED_MORE must ask for more than is there, and a failure must
 * repeat on the next call. ASan/UBSan catch the rest. */
#include "ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool from_server;   /* decode a server's (unmasked) frames instead of a client's */

typedef struct {
    int kind;
    uint16_t close_code;
    bool binary;
    size_t len;
    uint64_t hash;
} event;

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* Records one non-NEED_MORE result and checks what must hold for any result. */
static void record(event *ev, size_t *n_ev, const ws_result *r, const ws_decoder *d,
                   const uint8_t *buf, size_t have, size_t used)
{
    if (used > have)
        abort();
    if (r->len) {
        bool in_buf = r->data >= buf && r->data + r->len <= buf + have;
        bool in_frag = d->frag && r->data >= d->frag && r->data + r->len <= d->frag + d->frag_len;
        if (!in_buf && !in_frag)
            abort();
    }
    if (r->kind == WS_MESSAGE && !r->binary && !ws_utf8_valid(r->data, r->len))
        abort();
    event e = { r->kind, r->close_code, r->binary, r->len, fnv1a(r->data, r->len) };
    ev[(*n_ev)++] = e;
}

static void check_sticky_failure(ws_decoder *d, uint8_t *buf, size_t have, uint16_t code)
{
    ws_result again;
    if (ws_parse(d, buf, have, &again) != 0 || again.kind != WS_FAIL || again.close_code != code)
        abort();
}

static size_t decode_whole(const uint8_t *stream, size_t n, size_t max, event *ev, size_t *need_out)
{
    uint8_t *buf = malloc(n ? n : 1);
    size_t pos = 0, n_ev = 0;
    ws_decoder d;
    memcpy(buf, stream, n);
    ws_decoder_init(&d, max);
    d.from_server = from_server;
    for (;;) {
        ws_result r;
        size_t used = ws_parse(&d, buf + pos, n - pos, &r);
        if (r.kind == WS_NEED_MORE) {
            if (r.need <= n - pos)
                abort();
            *need_out = r.need;
            break;
        }
        record(ev, &n_ev, &r, &d, buf + pos, n - pos, used);
        if (r.kind == WS_FAIL) {
            check_sticky_failure(&d, buf + pos, n - pos, r.close_code);
            *need_out = 0;
            break;
        }
        pos += used;
    }
    ws_decoder_free(&d);
    free(buf);
    return n_ev;
}

static size_t decode_split(const uint8_t *stream, size_t n, size_t max, uint8_t seed,
                           event *ev, size_t *need_out)
{
    uint8_t *buf = malloc(n ? n : 1);
    size_t have = 0, fed = 0, n_ev = 0;
    uint32_t rng = 0x9e3779b9u ^ seed;
    ws_decoder d;
    ws_decoder_init(&d, max);
    d.from_server = from_server;
    for (;;) {
        ws_result r;
        size_t used = ws_parse(&d, buf, have, &r);
        if (r.kind == WS_NEED_MORE) {
            if (r.need <= have)
                abort();
            if (fed == n) {
                *need_out = r.need;
                break;
            }
            rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5;
            size_t take = (seed & 1) ? r.need - have : 1 + rng % 23;
            if (take > n - fed)
                take = n - fed;
            memcpy(buf + have, stream + fed, take);
            have += take;
            fed += take;
            continue;
        }
        record(ev, &n_ev, &r, &d, buf, have, used);
        if (r.kind == WS_FAIL) {
            check_sticky_failure(&d, buf, have, r.close_code);
            *need_out = 0;
            break;
        }
        memmove(buf, buf + used, have - used);
        have -= used;
    }
    ws_decoder_free(&d);
    free(buf);
    return n_ev;
}

static bool same_events(const event *a, const event *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].kind != b[i].kind || a[i].close_code != b[i].close_code ||
            a[i].binary != b[i].binary || a[i].len != b[i].len || a[i].hash != b[i].hash)
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t max = 1 + (size_t)data[0] * 16;
    uint8_t seed = data[1];
    from_server = (seed & 0x80) != 0;
    const uint8_t *stream = data + 2;
    size_t n = size - 2;
    /* Each result but the last consumes at least 2 bytes, so n + 1 slots always suffice. */
    event *a = calloc(n + 1, sizeof *a), *b = calloc(n + 1, sizeof *b);
    size_t need_a = 0, need_b = 0;
    size_t na = decode_whole(stream, n, max, a, &need_a);
    size_t nb = decode_split(stream, n, max, seed, b, &need_b);
    if (na != nb || need_a != need_b || !same_events(a, b, na)) {
        fprintf(stderr, "split decoding differs: %zu vs %zu results, need %zu vs %zu\n",
                na, nb, need_a, need_b);
        abort();
    }
    free(a);
    free(b);
    return 0;
}
