/* libFuzzer harness for the relay wire decoder and writers.
 *
 * Whatever wire_decode accepts must be valid JSON, and its canonical re-encoding must decode
 * again to the same type and re-encode to identical bytes (decode, encode, decode, encode is
 * stable). The iterators must walk exactly what the decoder counted. */
#include "wire.h"

#include <stdlib.h>
#include <string.h>

static void check_iterators(const wire_msg *m, char *scratch)
{
    wire_iter it = { 0 };
    wire_str s;
    addr_t a;
    wire_peer_info p;
    size_t n = 0;
    while (wire_next_addr(&it, m->listen_addrs, &a))
        n++;
    if (n != m->listen_addrs_count)
        abort();
    wire_iter ie = { 0 };
    while (wire_next_string(&ie, m->exclude, &s, scratch))
        if (s.n > m->exclude.n)
            abort();
    wire_iter ip = { 0 };
    while (wire_next_peer_info(&ip, m->peers, &p, scratch))
        if (p.n_addresses > ADDR_MAX_DIALABLE)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    char *scratch = malloc(size + 1), *scratch2 = malloc(size + 1);
    char err[128];
    wire_msg m, m2;
    json_writer w1, w2;
    if (!scratch || !scratch2)
        goto out;
    if (!wire_decode(buf, size, &m, scratch, err, sizeof err)) {
        if (!err[0])
            abort();
        goto out;
    }
    if (!json_validate(buf, size, NULL) || m.type == WT_UNKNOWN)
        abort();
    check_iterators(&m, scratch2);
    if (m.type == WT_PEX)
        goto out;

    jw_init(&w1, 0, (size_t)1 << 24);
    wire_encode(&w1, &m, scratch2);
    if (w1.failed || !w1.p)
        abort();
    char *s3 = malloc(w1.len + 1), *s4 = malloc(w1.len + 1);
    if (s3 && s4) {
        if (!wire_decode(w1.p, w1.len, &m2, s3, err, sizeof err) || m2.type != m.type)
            abort();
        jw_init(&w2, 0, (size_t)1 << 24);
        wire_encode(&w2, &m2, s4);
        if (w2.failed || w2.len != w1.len || memcmp(w1.p, w2.p, w1.len) != 0)
            abort();
        jw_free(&w2);
    }
    free(s3);
    free(s4);
    jw_free(&w1);
out:
    free(scratch);
    free(scratch2);
    return 0;
}
