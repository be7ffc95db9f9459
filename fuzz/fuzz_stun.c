/* libFuzzer harness for the STUN codec. The input is one datagram.
 *
 * Whatever the bytes, parsing must not read outside them and must give the same verdict at an odd
 * address. A datagram that is answered must be a Binding Request; its answer, for an IPv4, an
 * IPv4-mapped and an IPv6 source, must be a well-formed response of the right class echoing the
 * transaction id, never more than STUN_MAX_GROWTH bytes longer than the request, and must carry a
 * valid FINGERPRINT exactly when the request did. The probe's response reader, given the same
 * bytes as an answer to their own transaction id, may only yield an IPv4 or IPv6 address, and
 * never accepts them as an answer to another transaction. */
#include "stun.h"

#include <stdlib.h>
#include <string.h>

static unsigned rd16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }

static uint32_t rd32(const uint8_t *p) { return (uint32_t)rd16(p) << 16 | rd16(p + 2); }

static void check_response(const uint8_t *req, size_t req_len, const stun_request *parsed,
                           const uint8_t *resp, size_t n)
{
    size_t pos = STUN_HEADER_LEN;
    int fingerprints = 0;

    if (n < STUN_HEADER_LEN || n > STUN_RESPONSE_MAX || n > req_len + STUN_MAX_GROWTH ||
        rd16(resp + 2) != n - STUN_HEADER_LEN || rd32(resp + 4) != STUN_MAGIC_COOKIE ||
        memcmp(resp + 8, req + 8, STUN_TRANSACTION_ID_LEN) != 0)
        abort();
    if (rd16(resp) != (parsed->verdict == STUN_SUCCESS ? 0x0101u : 0x0111u))
        abort();
    while (pos < n) {
        unsigned type = rd16(resp + pos), len = rd16(resp + pos + 2);
        if (pos + 4 + ((len + 3u) & ~3u) > n)
            abort();
        if (type == 0x8028) {
            if (len != 4 || pos + 8 != n || rd32(resp + pos + 4) != (stun_crc32(resp, pos) ^ 0x5354554Eu))
                abort();
            fingerprints++;
        }
        pos += 4 + ((len + 3u) & ~3u);
    }
    if (fingerprints != (parsed->fingerprint ? 1 : 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t v6_ip[16] = { 0x20, 0x01, 0x0d, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
    static const uint8_t mapped_ip[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 33 };
    stun_request parsed, again;
    enum stun_verdict verdict;
    uint8_t *shifted, resp[STUN_RESPONSE_MAX];
    addr_t sources[3];

    /* Exactly-sized copies so any over-read trips AddressSanitizer. */
    uint8_t *exact = malloc(size ? size : 1);
    if (!exact)
        return 0;
    memcpy(exact, data, size);
    verdict = stun_parse(exact, size, &parsed);
    if (size >= STUN_HEADER_LEN) {
        uint8_t tid[STUN_TRANSACTION_ID_LEN];
        addr_t mapped;
        memcpy(tid, exact + 8, sizeof tid);
        if (stun_parse_binding_response(exact, size, tid, &mapped) && mapped.family != 4 &&
            mapped.family != 6)
            abort();
        tid[0] ^= 1;
        if (stun_parse_binding_response(exact, size, tid, &mapped))
            abort();
    }

    shifted = malloc(size + 1);
    if (!shifted) {
        free(exact);
        return 0;
    }
    memcpy(shifted + 1, data, size);
    if (stun_parse(shifted + 1, size, &again) != verdict)
        abort();
    free(shifted);

    if (verdict != STUN_DROP) {
        if (size < STUN_HEADER_LEN || rd16(exact) != 0x0001 || (size - STUN_HEADER_LEN) % 4 ||
            (verdict == STUN_UNKNOWN_ATTRIBUTE) != (parsed.n_unknown > 0) ||
            parsed.n_unknown > STUN_MAX_UNKNOWN || memcmp(&parsed, &again, sizeof parsed) != 0)
            abort();
        memset(sources, 0, sizeof sources);
        sources[0].family = 4;
        memcpy(sources[0].ip, "\xc6\x33\x64\x05", 4);
        sources[0].port = 40000;
        sources[1].family = 6;
        memcpy(sources[1].ip, mapped_ip, 16);
        sources[1].port = 1;
        sources[2].family = 6;
        memcpy(sources[2].ip, v6_ip, 16);
        sources[2].port = 65535;
        for (int i = 0; i < 3; i++) {
            size_t n = stun_write_response(&parsed, &sources[i], resp, sizeof resp);
            if (n == 0)
                abort();
            check_response(exact, size, &parsed, resp, n);
        }
    }
    free(exact);
    return 0;
}
