/* Unit tests for the STUN codec (stun.c): the RFC 5769 vectors (MESSAGE-INTEGRITY with short- and
 * long-term keys included), every drop case, FINGERPRINT, 420 Unknown Attribute, the
 * no-amplification bound, buffers at odd addresses, message types, TURN attributes well formed
 * and malformed, the message writer, ChannelData and TCP stream framing. Responses are checked
 * with a small decoder written here, independent of the writer under test. */
#include "stun.h"
#include "hash.h"
#include "tests/rfc5769.h"
#include "tests/test.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* RFC 5769 §2.1: ICE-style request with SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME,
 * MESSAGE-INTEGRITY and FINGERPRINT. */
static const uint8_t rfc5769_request[108] = {
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
    0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09,
    0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14,
    0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
    0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
};

/* RFC 5769 §2.2: success response, XOR-MAPPED-ADDRESS 192.0.2.1:32853. */
static const uint8_t rfc5769_response_v4[80] = {
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
    0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9,
    0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
};

/* RFC 5769 §2.3: success response, XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853. */
static const uint8_t rfc5769_response_v6[92] = {
    0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa,
    0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9, 0x00, 0x08, 0x00, 0x14,
    0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75,
    0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
};

static const uint8_t rfc5769_tid[12] = {
    0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
};

static const uint8_t doc_v6[16] = {
    0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x56, 0x78, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
};

/* ---- an independent decoder for responses ---- */

typedef struct {
    uint16_t type;
    uint8_t tid[12];
    bool has_mapped;
    addr_t mapped;
    bool has_fingerprint;
    bool fingerprint_ok;
    int error_code;            /* 0 when absent */
    size_t n_unknown;
    uint16_t unknown[64];
} decoded;

static unsigned rd16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)rd16(p) << 16 | rd16(p + 2); }

static bool decode(const uint8_t *m, size_t n, decoded *d)
{
    size_t pos = 20;
    memset(d, 0, sizeof *d);
    if (n < 20 || rd32(m + 4) != 0x2112A442u || rd16(m + 2) != n - 20 || (n - 20) % 4)
        return false;
    d->type = (uint16_t)rd16(m);
    memcpy(d->tid, m + 8, 12);
    while (pos < n) {
        unsigned type = rd16(m + pos), len = rd16(m + pos + 2);
        const uint8_t *v = m + pos + 4;
        if (pos + 4 + ((len + 3) & ~3u) > n)
            return false;
        if (type == 0x0020) {
            uint8_t key[16];
            unsigned ip_len = v[1] == 1 ? 4 : 16;
            if (len != 4 + ip_len || (v[1] != 1 && v[1] != 2))
                return false;
            key[0] = 0x21, key[1] = 0x12, key[2] = 0xa4, key[3] = 0x42;
            memcpy(key + 4, d->tid, 12);
            d->has_mapped = true;
            d->mapped.family = v[1] == 1 ? 4 : 6;
            d->mapped.port = (uint16_t)(rd16(v + 2) ^ 0x2112);
            for (unsigned i = 0; i < ip_len; i++)
                d->mapped.ip[i] = (uint8_t)(v[4 + i] ^ key[i]);
        } else if (type == 0x0009) {
            if (len < 4)
                return false;
            d->error_code = (v[2] & 7) * 100 + v[3];
        } else if (type == 0x000A) {
            for (unsigned i = 0; i + 1 < len && d->n_unknown < 64; i += 2)
                d->unknown[d->n_unknown++] = (uint16_t)rd16(v + i);
        } else if (type == 0x8028) {
            d->has_fingerprint = true;
            d->fingerprint_ok = len == 4 && pos + 8 == n &&
                                rd32(v) == (stun_crc32(m, pos) ^ 0x5354554Eu);
        }
        pos += 4 + ((len + 3) & ~3u);
    }
    return true;
}

/* ---- a request builder ---- */

typedef struct {
    uint8_t b[600];
    size_t n;
} msg;

static void msg_start(msg *m, uint16_t type)
{
    memset(m, 0, sizeof *m);
    m->b[0] = (uint8_t)(type >> 8);
    m->b[1] = (uint8_t)type;
    m->b[4] = 0x21, m->b[5] = 0x12, m->b[6] = 0xa4, m->b[7] = 0x42;
    for (int i = 0; i < 12; i++)
        m->b[8 + i] = (uint8_t)(0x40 + i);
    m->n = 20;
}

static void msg_set_length(msg *m, size_t body)
{
    m->b[2] = (uint8_t)(body >> 8);
    m->b[3] = (uint8_t)body;
}

static void msg_attr(msg *m, uint16_t type, const void *value, uint16_t len)
{
    m->b[m->n] = (uint8_t)(type >> 8);
    m->b[m->n + 1] = (uint8_t)type;
    m->b[m->n + 2] = (uint8_t)(len >> 8);
    m->b[m->n + 3] = (uint8_t)len;
    if (len)
        memcpy(m->b + m->n + 4, value, len);
    m->n += 4 + ((len + 3u) & ~3u);
    msg_set_length(m, m->n - 20);
}

static void msg_fingerprint(msg *m)
{
    uint32_t crc;
    msg_set_length(m, m->n + 8 - 20);
    crc = stun_crc32(m->b, m->n) ^ 0x5354554Eu;
    m->b[m->n] = 0x80, m->b[m->n + 1] = 0x28, m->b[m->n + 2] = 0, m->b[m->n + 3] = 4;
    m->b[m->n + 4] = (uint8_t)(crc >> 24), m->b[m->n + 5] = (uint8_t)(crc >> 16);
    m->b[m->n + 6] = (uint8_t)(crc >> 8), m->b[m->n + 7] = (uint8_t)crc;
    m->n += 8;
}

static addr_t v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
    addr_t x;
    memset(&x, 0, sizeof x);
    x.family = 4;
    x.ip[0] = a, x.ip[1] = b, x.ip[2] = c, x.ip[3] = d;
    x.port = port;
    return x;
}

static addr_t v6(const uint8_t ip[16], uint16_t port)
{
    addr_t x;
    memset(&x, 0, sizeof x);
    x.family = 6;
    memcpy(x.ip, ip, 16);
    x.port = port;
    return x;
}

static enum stun_verdict parse(const uint8_t *b, size_t n)
{
    stun_request r;
    return stun_parse(b, n, &r);
}

/* Parses, answers for `from`, decodes the answer; returns its length (0 when dropped). */
static size_t answer(const uint8_t *b, size_t n, const addr_t *from, uint8_t out[STUN_RESPONSE_MAX],
                     decoded *d)
{
    stun_request r;
    size_t len;
    if (stun_parse(b, n, &r) == STUN_DROP)
        return 0;
    len = stun_write_response(&r, from, out, STUN_RESPONSE_MAX);
    if (!decode(out, len, d))
        return 0;
    return len;
}

/* ---- tests ---- */

static void test_crc32_check_value(void)
{
    CHECK_EQ_INT(stun_crc32((const uint8_t *)"123456789", 9), 0xCBF43926u);
    CHECK_EQ_INT(stun_crc32(NULL, 0), 0);
}

static void test_rfc5769_responses_decode(void)
{
    decoded d;
    REQUIRE(decode(rfc5769_response_v4, sizeof rfc5769_response_v4, &d));
    CHECK_EQ_INT(d.type, 0x0101);
    CHECK(d.has_fingerprint && d.fingerprint_ok);
    CHECK_EQ_MEM(d.tid, 12, rfc5769_tid, 12);
    CHECK(d.has_mapped);
    CHECK_EQ_INT(d.mapped.family, 4);
    CHECK_EQ_INT(d.mapped.port, 32853);
    CHECK_EQ_MEM(d.mapped.ip, 4, "\xc0\x00\x02\x01", 4);

    REQUIRE(decode(rfc5769_response_v6, sizeof rfc5769_response_v6, &d));
    CHECK(d.has_fingerprint && d.fingerprint_ok);
    CHECK(d.has_mapped);
    CHECK_EQ_INT(d.mapped.family, 6);
    CHECK_EQ_INT(d.mapped.port, 32853);
    CHECK_EQ_MEM(d.mapped.ip, 16, doc_v6, 16);
}

/* Our XOR-MAPPED-ADDRESS for the RFC's transaction and addresses must be the RFC's bytes. */
static void test_xor_mapped_address_matches_rfc5769(void)
{
    stun_request r;
    uint8_t out[STUN_RESPONSE_MAX];
    addr_t a4 = v4(192, 0, 2, 1, 32853), a6 = v6(doc_v6, 32853);
    size_t n;

    memset(&r, 0, sizeof r);
    r.verdict = STUN_SUCCESS;
    memcpy(r.transaction_id, rfc5769_tid, 12);
    n = stun_write_response(&r, &a4, out, sizeof out);
    REQUIRE(n == 32);
    CHECK_EQ_MEM(out + 20, 12, rfc5769_response_v4 + 36, 12);
    CHECK_EQ_MEM(out, 2, "\x01\x01", 2);
    CHECK_EQ_MEM(out + 2, 2, "\x00\x0c", 2);
    CHECK_EQ_MEM(out + 4, 16, rfc5769_response_v4 + 4, 16);

    n = stun_write_response(&r, &a6, out, sizeof out);
    REQUIRE(n == 44);
    CHECK_EQ_MEM(out + 20, 24, rfc5769_response_v6 + 36, 24);
    CHECK_EQ_MEM(out + 2, 2, "\x00\x18", 2);
}

/* The §2.1 request carries PRIORITY (0x0024), an ICE attribute a plain Binding server does not
 * understand: it is answered 420 listing PRIORITY, with a FINGERPRINT because the request had one.
 * USERNAME and MESSAGE-INTEGRITY are understood (and ignored), SOFTWARE and ICE-CONTROLLED are
 * optional. */
static void test_rfc5769_request_gets_420_for_priority(void)
{
    stun_request r;
    uint8_t out[STUN_RESPONSE_MAX];
    addr_t from = v4(192, 0, 2, 1, 32853);
    decoded d;
    size_t n;

    REQUIRE(stun_parse(rfc5769_request, sizeof rfc5769_request, &r) == STUN_UNKNOWN_ATTRIBUTE);
    CHECK(r.fingerprint);
    CHECK_EQ_INT(r.n_unknown, 1);
    CHECK_EQ_INT(r.unknown[0], 0x0024);
    CHECK_EQ_MEM(r.transaction_id, 12, rfc5769_tid, 12);

    n = answer(rfc5769_request, sizeof rfc5769_request, &from, out, &d);
    REQUIRE(n > 0);
    CHECK_EQ_INT(d.type, 0x0111);
    CHECK_EQ_INT(d.error_code, 420);
    CHECK_EQ_INT(d.n_unknown, 1);
    CHECK_EQ_INT(d.unknown[0], 0x0024);
    CHECK(!d.has_mapped);
    CHECK(d.has_fingerprint && d.fingerprint_ok);
    CHECK_EQ_MEM(d.tid, 12, rfc5769_tid, 12);
    CHECK(n <= sizeof rfc5769_request);
}

/* Every single-bit corruption anywhere in the §2.1 request is caught, by the structure checks or
 * by FINGERPRINT (which covers the header too) -- except in FINGERPRINT's own type (bytes 100-101),
 * which turns it into an ordinary optional attribute of a message that simply has no fingerprint. */
static void test_rfc5769_request_any_corruption_drops(void)
{
    uint8_t b[sizeof rfc5769_request];
    for (size_t i = 0; i < sizeof b; i++) {
        memcpy(b, rfc5769_request, sizeof b);
        b[i] ^= 0x01;
        if (i == 100 || i == 101) {
            stun_request r;
            CHECK_EQ_INT(stun_parse(b, sizeof b, &r), STUN_UNKNOWN_ATTRIBUTE);
            CHECK(!r.fingerprint);
        } else if (parse(b, sizeof b) != STUN_DROP) {
            printf("  corruption at byte %zu was accepted\n", i);
            CHECK(0);
        }
    }
}

/* The same ICE-style request minus PRIORITY is answered with the mapped address. */
static void test_auth_attributes_are_ignored(void)
{
    msg m;
    uint8_t out[STUN_RESPONSE_MAX];
    addr_t from = v4(198, 51, 100, 7, 40000);
    decoded d;
    size_t n;

    msg_start(&m, 0x0001);
    msg_attr(&m, 0x8022, "STUN test client", 16);
    msg_attr(&m, 0x8029, "\x93\x2f\xf9\xb1\x51\x26\x3b\x36", 8);
    msg_attr(&m, 0x0006, "evtj:h6vY", 9);
    msg_attr(&m, 0x0014, "example.org", 11);
    msg_attr(&m, 0x0015, "nonce-value", 11);
    msg_attr(&m, 0x0008, "01234567890123456789", 20);
    msg_fingerprint(&m);

    n = answer(m.b, m.n, &from, out, &d);
    REQUIRE(n == 40);
    CHECK_EQ_INT(d.type, 0x0101);
    CHECK(d.has_mapped && d.mapped.family == 4 && d.mapped.port == 40000);
    CHECK_EQ_MEM(d.mapped.ip, 4, "\xc6\x33\x64\x07", 4);
    CHECK(d.has_fingerprint && d.fingerprint_ok);
    CHECK_EQ_MEM(d.tid, 12, m.b + 8, 12);
}

/* RFC 5389 §15.4: attributes after MESSAGE-INTEGRITY, FINGERPRINT aside, are ignored. */
static void test_attributes_after_integrity_are_ignored(void)
{
    msg m;
    stun_request r;

    msg_start(&m, 0x0001);
    msg_attr(&m, 0x0008, "01234567890123456789", 20);
    msg_attr(&m, 0x0024, "\x6e\x00\x01\xff", 4);
    msg_fingerprint(&m);
    CHECK_EQ_INT(stun_parse(m.b, m.n, &r), STUN_SUCCESS);

    msg_start(&m, 0x0001);
    msg_attr(&m, 0x0008, "01234567890123456789", 20);
    msg_attr(&m, 0x001C, "0123456789012345678901234567890123456789", 32);
    msg_attr(&m, 0x0003, "\0\0\0\0", 4);
    CHECK_EQ_INT(stun_parse(m.b, m.n, &r), STUN_SUCCESS);

    /* ...but an unknown one before it counts. */
    msg_start(&m, 0x0001);
    msg_attr(&m, 0x0003, "\0\0\0\x06", 4);
    msg_attr(&m, 0x0008, "01234567890123456789", 20);
    CHECK_EQ_INT(stun_parse(m.b, m.n, &r), STUN_UNKNOWN_ATTRIBUTE);
    CHECK_EQ_INT(r.unknown[0], 0x0003);
}

static void test_minimal_request_ipv4_ipv6_mapped(void)
{
    msg m;
    uint8_t out[STUN_RESPONSE_MAX];
    uint8_t mapped[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 9 };
    addr_t a4 = v4(203, 0, 113, 9, 1), a6 = v6(doc_v6, 65535), am = v6(mapped, 54321);
    decoded d;

    msg_start(&m, 0x0001);
    CHECK_EQ_INT(answer(m.b, m.n, &a4, out, &d), 32);
    CHECK(d.type == 0x0101 && d.has_mapped && !d.has_fingerprint);
    CHECK(d.mapped.family == 4 && d.mapped.port == 1);
    CHECK_EQ_MEM(d.mapped.ip, 4, "\xcb\x00\x71\x09", 4);
    CHECK_EQ_MEM(d.tid, 12, m.b + 8, 12);

    CHECK_EQ_INT(answer(m.b, m.n, &a6, out, &d), 44);
    CHECK(d.mapped.family == 6 && d.mapped.port == 65535);
    CHECK_EQ_MEM(d.mapped.ip, 16, doc_v6, 16);

    /* An IPv4 client seen on a dual-stack socket is answered as IPv4. */
    CHECK_EQ_INT(answer(m.b, m.n, &am, out, &d), 32);
    CHECK(d.mapped.family == 4 && d.mapped.port == 54321);
    CHECK_EQ_MEM(d.mapped.ip, 4, "\xcb\x00\x71\x09", 4);

    msg_fingerprint(&m);
    CHECK_EQ_INT(answer(m.b, m.n, &a6, out, &d), 52);
    CHECK(d.has_fingerprint && d.fingerprint_ok);
}

static void test_drop_short_and_non_stun(void)
{
    msg m;
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    uint8_t zeros[64] = { 0 };

    msg_start(&m, 0x0001);
    for (size_t n = 0; n < 20; n++)
        CHECK_EQ_INT(parse(m.b, n), STUN_DROP);
    CHECK_EQ_INT(parse(m.b, 20), STUN_SUCCESS);
    CHECK_EQ_INT(parse((const uint8_t *)http, strlen(http)), STUN_DROP);
    CHECK_EQ_INT(parse(zeros, sizeof zeros), STUN_DROP);
    CHECK_EQ_INT(parse(zeros, 20), STUN_DROP);
}

static void test_drop_wrong_cookie(void)
{
    msg m;
    for (int i = 4; i < 8; i++) {
        msg_start(&m, 0x0001);
        m.b[i] ^= 0x10;
        CHECK_EQ_INT(parse(m.b, m.n), STUN_DROP);
    }
    /* A classic RFC 3489 request (random bytes where the cookie is) is not answered. */
    msg_start(&m, 0x0001);
    memcpy(m.b + 4, "\x01\x02\x03\x04", 4);
    CHECK_EQ_INT(parse(m.b, m.n), STUN_DROP);
}

static void test_drop_other_method_class_or_top_bits(void)
{
    static const uint16_t types[] = {
        0x0011, /* Binding indication */
        0x0101, /* Binding success response */
        0x0111, /* Binding error response */
        0x0002, /* shared secret (old) */
        0x0003, /* TURN Allocate request */
        0x0004, 0x0008, 0x0009, 0x0201, 0x3eef,
        0x4001, 0x8001, 0xC001, /* Binding request with a top bit set */
    };
    msg m;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        msg_start(&m, types[i]);
        CHECK_EQ_INT(parse(m.b, m.n), STUN_DROP);
    }
}

static void test_drop_bad_lengths(void)
{
    msg m;

    /* Length not a multiple of 4, even when it matches the datagram. */
    msg_start(&m, 0x0001);
    msg_set_length(&m, 2);
    CHECK_EQ_INT(parse(m.b, 22), STUN_DROP);
    /* Length claims more than arrived, or less (trailing bytes). */
    msg_start(&m, 0x0001);
    msg_set_length(&m, 8);
    CHECK_EQ_INT(parse(m.b, 20), STUN_DROP);
    CHECK_EQ_INT(parse(m.b, 24), STUN_DROP);
    CHECK_EQ_INT(parse(m.b, 32), STUN_DROP);
    msg_start(&m, 0x0001);
    CHECK_EQ_INT(parse(m.b, 24), STUN_DROP);
    msg_set_length(&m, 0xFFFC);
    CHECK_EQ_INT(parse(m.b, sizeof m.b), STUN_DROP);
}

static void test_drop_overrunning_attribute(void)
{
    msg m;

    /* Value length runs past the message. */
    msg_start(&m, 0x0001);
    msg_attr(&m, 0x8022, "abcd", 4);
    m.b[23] = 8;
    CHECK_EQ_INT(parse(m.b, m.n), STUN_DROP);
    /* Value fits but its padding does not. */
    m.b[23] = 5;
    CHECK_EQ_INT(parse(m.b, m.n), STUN_DROP);
    /* Huge value length. */
    m.b[22] = 0xFF, m.b[23] = 0xFF;
    CHECK_EQ_INT(parse(m.b, m.n), STUN_DROP);
    /* Exactly fitting is fine; so is a zero-length attribute. */
    m.b[22] = 0, m.b[23] = 4;
    CHECK_EQ_INT(parse(m.b, m.n), STUN_SUCCESS);
    m.b[23] = 1;
    CHECK_EQ_INT(parse(m.b, m.n), STUN_SUCCESS);
    msg_start(&m, 0x0001);
    msg_attr(&m, 0x8022, NULL, 0);
    CHECK_EQ_INT(parse(m.b, m.n), STUN_SUCCESS);
}

static void test_fingerprint_rules(void)
{
    msg m;
    stun_request r;

    msg_start(&m, 0x0001);
    msg_attr(&m, 0x8022, "client", 6);
    msg_fingerprint(&m);
    REQUIRE(stun_parse(m.b, m.n, &r) == STUN_SUCCESS);
    CHECK(r.fingerprint);

    /* Wrong CRC. */
    m.b[m.n - 1] ^= 0x80;
    CHECK_EQ_INT(parse(m.b, m.n), STUN_DROP);
    m.b[m.n - 1] ^= 0x80;
    /* CRC computed with the length field not yet covering FINGERPRINT. */
    {
        msg bad;
        uint32_t crc;
        msg_start(&bad, 0x0001);
        crc = stun_crc32(bad.b, 20) ^ 0x5354554Eu;
        msg_attr(&bad, 0x8028, "\0\0\0\0", 4);
        bad.b[24] = (uint8_t)(crc >> 24), bad.b[25] = (uint8_t)(crc >> 16);
        bad.b[26] = (uint8_t)(crc >> 8), bad.b[27] = (uint8_t)crc;
        CHECK_EQ_INT(parse(bad.b, bad.n), STUN_DROP);
    }
    /* Not last. */
    msg_attr(&m, 0x8022, "late", 4);
    CHECK_EQ_INT(parse(m.b, m.n), STUN_DROP);
    /* Not last, with a CRC that is right for the final length field: still dropped. */
    {
        msg early;
        uint32_t crc;
        msg_start(&early, 0x0001);
        msg_set_length(&early, 8 + 8);
        crc = stun_crc32(early.b, 20) ^ 0x5354554Eu;
        memcpy(early.b + 20, "\x80\x28\x00\x04", 4);
        early.b[24] = (uint8_t)(crc >> 24), early.b[25] = (uint8_t)(crc >> 16);
        early.b[26] = (uint8_t)(crc >> 8), early.b[27] = (uint8_t)crc;
        memcpy(early.b + 28, "\x80\x22\x00\x04test", 8);
        CHECK_EQ_INT(parse(early.b, 36), STUN_DROP);
        /* Control: the same fingerprint in last place is accepted. */
        msg_set_length(&early, 8);
        crc = stun_crc32(early.b, 20) ^ 0x5354554Eu;
        early.b[24] = (uint8_t)(crc >> 24), early.b[25] = (uint8_t)(crc >> 16);
        early.b[26] = (uint8_t)(crc >> 8), early.b[27] = (uint8_t)crc;
        CHECK_EQ_INT(parse(early.b, 28), STUN_SUCCESS);
    }
    /* Wrong length (a valid CRC in the first 4 of 8 bytes). */
    msg_start(&m, 0x0001);
    msg_fingerprint(&m);
    {
        msg longer = m;
        longer.b[23] = 8;
        longer.n += 4;
        msg_set_length(&longer, longer.n - 20);
        CHECK_EQ_INT(parse(longer.b, longer.n), STUN_DROP);
    }
    /* Declared length 3 still occupies 8 bytes with padding: the length itself must be 4. */
    msg_start(&m, 0x0001);
    msg_fingerprint(&m);
    m.b[23] = 3;
    CHECK_EQ_INT(parse(m.b, m.n), STUN_DROP);
    /* Two fingerprints. */
    msg_start(&m, 0x0001);
    msg_fingerprint(&m);
    msg_fingerprint(&m);
    CHECK_EQ_INT(parse(m.b, m.n), STUN_DROP);
}

static void test_unknown_attributes_listed_once_and_capped(void)
{
    msg m;
    stun_request r;
    uint8_t out[STUN_RESPONSE_MAX];
    addr_t from = v4(10, 1, 2, 3, 3478);
    decoded d;
    size_t n;

    /* Optional unknown attributes are ignored. */
    msg_start(&m, 0x0001);
    msg_attr(&m, 0x8055, "xyz", 3);
    msg_attr(&m, 0xC057, "\0\1\0\2", 4);
    CHECK_EQ_INT(stun_parse(m.b, m.n, &r), STUN_SUCCESS);

    /* Duplicates listed once, in order of appearance, and 0x7FFF counts as required. */
    msg_start(&m, 0x0001);
    msg_attr(&m, 0x0003, "\0\0\0\0", 4);
    msg_attr(&m, 0x7FFF, NULL, 0);
    msg_attr(&m, 0x0003, "\0\0\0\0", 4);
    msg_attr(&m, 0x0019, "\x11\0\0\0", 4);
    n = answer(m.b, m.n, &from, out, &d);
    REQUIRE(n > 0);
    CHECK_EQ_INT(d.error_code, 420);
    REQUIRE(d.n_unknown == 3);
    CHECK(d.unknown[0] == 0x0003 && d.unknown[1] == 0x7FFF && d.unknown[2] == 0x0019);
    CHECK(!d.has_fingerprint);
    /* 3 listed types are 6 bytes: padded with zeros to 8. */
    CHECK_EQ_INT(n, 20 + 28 + 12);
    CHECK_EQ_MEM(out + n - 2, 2, "\0\0", 2);

    /* Forty distinct unknowns: the first STUN_MAX_UNKNOWN are listed, response still smaller. */
    msg_start(&m, 0x0001);
    for (uint16_t t = 0x0100; t < 0x0100 + 40; t++)
        msg_attr(&m, t, NULL, 0);
    msg_fingerprint(&m);
    n = answer(m.b, m.n, &from, out, &d);
    REQUIRE(n > 0);
    CHECK_EQ_INT(d.n_unknown, STUN_MAX_UNKNOWN);
    CHECK_EQ_INT(d.unknown[STUN_MAX_UNKNOWN - 1], 0x0100 + STUN_MAX_UNKNOWN - 1);
    CHECK(d.has_fingerprint && d.fingerprint_ok);
    CHECK_EQ_INT(n, STUN_RESPONSE_MAX);
    CHECK(n <= m.n);
}

/* Every response stays within STUN_MAX_GROWTH of its request, whatever mix of unknown attributes
 * and fingerprint it has. */
static void test_no_amplification(void)
{
    uint8_t out[STUN_RESPONSE_MAX];
    addr_t from = v6(doc_v6, 1);
    decoded d;
    long worst = 0;

    for (int unknowns = 0; unknowns <= STUN_MAX_UNKNOWN + 2; unknowns++) {
        for (int fp = 0; fp < 2; fp++) {
            msg m;
            size_t n;
            msg_start(&m, 0x0001);
            for (int i = 0; i < unknowns; i++)
                msg_attr(&m, (uint16_t)(0x0200 + i), NULL, 0);
            if (fp)
                msg_fingerprint(&m);
            n = answer(m.b, m.n, &from, out, &d);
            REQUIRE(n > 0);
            CHECK(n <= m.n + STUN_MAX_GROWTH);
            if ((long)n - (long)m.n > worst)
                worst = (long)n - (long)m.n;
        }
    }
    /* The bound is tight: one unknown attribute, no fingerprint. */
    CHECK_EQ_INT(worst, STUN_MAX_GROWTH);
}

static void test_write_response_refuses_small_buffer_and_drop(void)
{
    stun_request r;
    uint8_t out[STUN_RESPONSE_MAX];
    addr_t from = v4(1, 2, 3, 4, 5);
    memset(&r, 0, sizeof r);
    r.verdict = STUN_SUCCESS;
    CHECK_EQ_INT(stun_write_response(&r, &from, out, STUN_RESPONSE_MAX - 1), 0);
    CHECK_EQ_INT(stun_write_response(&r, &from, out, STUN_RESPONSE_MAX), 32);
    r.verdict = STUN_DROP;
    CHECK_EQ_INT(stun_write_response(&r, &from, out, sizeof out), 0);
}

/* Parsing and writing at every misalignment gives identical results. */
static void test_misaligned_buffers(void)
{
    uint8_t in_area[sizeof rfc5769_request + 8], out_area[STUN_RESPONSE_MAX + 8];
    uint8_t reference[STUN_RESPONSE_MAX];
    addr_t from = v6(doc_v6, 32853);
    stun_request r;
    size_t ref_len;
    msg m;

    REQUIRE(stun_parse(rfc5769_request, sizeof rfc5769_request, &r) == STUN_UNKNOWN_ATTRIBUTE);
    ref_len = stun_write_response(&r, &from, reference, sizeof reference);
    REQUIRE(ref_len > 0);
    for (size_t off = 1; off < 8; off++) {
        memcpy(in_area + off, rfc5769_request, sizeof rfc5769_request);
        CHECK_EQ_INT(stun_parse(in_area + off, sizeof rfc5769_request, &r), STUN_UNKNOWN_ATTRIBUTE);
        CHECK_EQ_INT(stun_write_response(&r, &from, out_area + off, STUN_RESPONSE_MAX), ref_len);
        CHECK_EQ_MEM(out_area + off, ref_len, reference, ref_len);
    }

    msg_start(&m, 0x0001);
    msg_fingerprint(&m);
    REQUIRE(stun_parse(m.b, m.n, &r) == STUN_SUCCESS);
    ref_len = stun_write_response(&r, &from, reference, sizeof reference);
    for (size_t off = 1; off < 8; off++) {
        decoded d;
        memcpy(in_area + off, m.b, m.n);
        CHECK_EQ_INT(stun_parse(in_area + off, m.n, &r), STUN_SUCCESS);
        CHECK_EQ_INT(stun_write_response(&r, &from, out_area + off, STUN_RESPONSE_MAX), ref_len);
        CHECK_EQ_MEM(out_area + off, ref_len, reference, ref_len);
        CHECK(decode(out_area + off, ref_len, &d) && d.fingerprint_ok);
    }
}


/* ---- the general codec: types, TURN attributes, integrity, the writer, ChannelData ---- */

static void test_message_types(void)
{
    static const struct { uint16_t method; enum stun_class cls; uint16_t type; } v[] = {
        { STUN_BINDING, STUN_CLASS_REQUEST, 0x0001 }, { STUN_BINDING, STUN_CLASS_SUCCESS, 0x0101 },
        { STUN_BINDING, STUN_CLASS_ERROR, 0x0111 }, { STUN_BINDING, STUN_CLASS_INDICATION, 0x0011 },
        { STUN_ALLOCATE, STUN_CLASS_REQUEST, 0x0003 }, { STUN_ALLOCATE, STUN_CLASS_SUCCESS, 0x0103 },
        { STUN_ALLOCATE, STUN_CLASS_ERROR, 0x0113 }, { STUN_REFRESH, STUN_CLASS_REQUEST, 0x0004 },
        { STUN_SEND, STUN_CLASS_INDICATION, 0x0016 }, { STUN_DATA, STUN_CLASS_INDICATION, 0x0017 },
        { STUN_CREATE_PERMISSION, STUN_CLASS_REQUEST, 0x0008 },
        { STUN_CHANNEL_BIND, STUN_CLASS_SUCCESS, 0x0109 }, { 0xFFF, STUN_CLASS_ERROR, 0x3FFF },
        { 0x080, STUN_CLASS_REQUEST, 0x0200 },
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        msg m;
        stun_msg p;
        CHECK_EQ_INT(stun_type(v[i].method, v[i].cls), v[i].type);
        msg_start(&m, v[i].type);
        REQUIRE(stun_decode(m.b, m.n, &p));
        CHECK_EQ_INT(p.method, v[i].method);
        CHECK_EQ_INT(p.cls, v[i].cls);
    }
}

static void put_be16(uint8_t *p, unsigned v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }

/* An XOR address value as a client writes it (independent of stun_put_xor_addr). */
static size_t xor_value(uint8_t *out, const addr_t *a, const uint8_t *tid)
{
    uint8_t mask[16] = { 0x21, 0x12, 0xa4, 0x42 };
    size_t ip_len = a->family == 4 ? 4 : 16;
    memcpy(mask + 4, tid, 12);
    out[0] = 0;
    out[1] = a->family == 4 ? 1 : 2;
    put_be16(out + 2, a->port ^ 0x2112u);
    for (size_t i = 0; i < ip_len; i++)
        out[4 + i] = (uint8_t)(a->ip[i] ^ mask[i]);
    return 4 + ip_len;
}

static void test_decode_turn_attributes(void)
{
    msg m;
    stun_msg p;
    uint8_t v[20];
    addr_t peer4 = v4(198, 51, 100, 9, 5000), peer6 = v6(doc_v6, 6000);

    msg_start(&m, 0x0003);
    msg_attr(&m, 0x0019, "\x11\0\0\0", 4);            /* REQUESTED-TRANSPORT UDP */
    msg_attr(&m, 0x0017, "\x02\0\0\0", 4);            /* REQUESTED-ADDRESS-FAMILY IPv6 */
    msg_attr(&m, 0x000D, "\0\0\x0e\x10", 4);          /* LIFETIME 3600 */
    msg_attr(&m, 0x0018, "\x80", 1);                  /* EVEN-PORT, R set */
    msg_attr(&m, 0x001A, NULL, 0);                    /* DONT-FRAGMENT */
    msg_attr(&m, 0x0006, "1700000000:peer", 15);
    msg_attr(&m, 0x0014, "dig.net", 7);
    msg_attr(&m, 0x0015, "abcdef", 6);
    msg_attr(&m, 0x8022, "sw", 2);
    msg_attr(&m, 0x000D, "\0\0\0\x01", 4);            /* a second LIFETIME: ignored */
    REQUIRE(stun_decode(m.b, m.n, &p));
    CHECK(p.method == STUN_ALLOCATE && p.cls == STUN_CLASS_REQUEST);
    CHECK(p.has_transport && p.transport == 17);
    CHECK(p.has_family && p.family == 6);
    CHECK(p.has_lifetime && p.lifetime == 3600);
    CHECK(p.has_even_port && p.even_port_reserve);
    CHECK(p.dont_fragment);
    CHECK_EQ_MEM(m.b + p.username.off, p.username.len, "1700000000:peer", 15);
    CHECK_EQ_MEM(m.b + p.realm.off, p.realm.len, "dig.net", 7);
    CHECK_EQ_MEM(m.b + p.nonce.off, p.nonce.len, "abcdef", 6);
    CHECK_EQ_MEM(m.b + p.software.off, p.software.len, "sw", 2);
    CHECK(p.integrity_at == 0 && p.malformed == 0 && p.n_unknown == 0 && !p.fingerprint);

    /* Peers, channel and data. */
    msg_start(&m, 0x0009);
    msg_attr(&m, 0x000C, "\x40\x01\0\0", 4);
    msg_attr(&m, 0x0012, v, (uint16_t)xor_value(v, &peer4, m.b + 8));
    msg_attr(&m, 0x0012, v, (uint16_t)xor_value(v, &peer6, m.b + 8));
    msg_attr(&m, 0x0013, "hello", 5);
    REQUIRE(stun_decode(m.b, m.n, &p));
    CHECK(p.has_channel && p.channel == 0x4001);
    REQUIRE(p.n_peers == 2);
    CHECK(p.peers[0].family == 4 && p.peers[0].port == 5000);
    CHECK_EQ_MEM(p.peers[0].ip, 4, peer4.ip, 4);
    CHECK(p.peers[1].family == 6 && p.peers[1].port == 6000);
    CHECK_EQ_MEM(p.peers[1].ip, 16, doc_v6, 16);
    CHECK_EQ_MEM(m.b + p.data.off, p.data.len, "hello", 5);

    /* More peers than we read: flagged, not dropped. */
    msg_start(&m, 0x0008);
    for (int i = 0; i < STUN_MAX_PEERS + 1; i++)
        msg_attr(&m, 0x0012, v, (uint16_t)xor_value(v, &peer4, m.b + 8));
    REQUIRE(stun_decode(m.b, m.n, &p));
    CHECK(p.too_many_peers && p.n_peers == STUN_MAX_PEERS);

    /* In a Binding request the same attributes are unknown, not parsed. */
    msg_start(&m, 0x0001);
    msg_attr(&m, 0x0019, "\x11\0\0\0", 4);
    REQUIRE(stun_decode(m.b, m.n, &p));
    CHECK(!p.has_transport && p.n_unknown == 1 && p.unknown[0] == 0x0019);
}

static void test_decode_malformed_turn_values(void)
{
    static const struct { uint16_t type; const char *value; uint16_t len; } bad[] = {
        { 0x000D, "\0\0\0", 3 }, { 0x0019, "\x11", 1 }, { 0x0017, "\x01\0\0\0\0", 5 },
        { 0x0018, "\x80\0", 2 }, { 0x000C, "\x40\0", 2 }, { 0x001A, "x", 1 },
        { 0x0022, "1234", 4 }, { 0x0012, "\0\x03\0\0\0\0\0\0", 8 }, { 0x0012, "\0\x01\0\0\0\0", 6 },
        { 0x0012, "\0\x02\0\0\0\0\0\0", 8 }, { 0x0008, "short", 5 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msg m;
        stun_msg p;
        msg_start(&m, 0x0003);
        msg_attr(&m, 0x0019, "\x11\0\0\0", 4);
        msg_attr(&m, bad[i].type, bad[i].value, bad[i].len);
        REQUIRE(stun_decode(m.b, m.n, &p));
        CHECK_EQ_INT(p.malformed, bad[i].type);
    }
    /* An unknown family value is read as 0 (answered 440), not as malformed. */
    msg m;
    stun_msg p;
    msg_start(&m, 0x0003);
    msg_attr(&m, 0x0017, "\x03\0\0\0", 4);
    REQUIRE(stun_decode(m.b, m.n, &p));
    CHECK(p.has_family && p.family == 0 && p.malformed == 0);
}

/* RFC 5769 §2.1 and §2.2 are signed with the short-term password as the key; §2.1 also carries a
 * FINGERPRINT after the integrity, so the length the signer used must be reconstructed. */
static void test_check_integrity_rfc5769(void)
{
    static const char pw[] = "VOkJxbRl1RmTxUk/WvJxBt";
    stun_msg p;
    uint8_t copy[sizeof rfc5769_request];

    REQUIRE(stun_decode(rfc5769_request, sizeof rfc5769_request, &p));
    REQUIRE(p.integrity_at == 76);
    CHECK(p.fingerprint);
    CHECK(stun_check_integrity(rfc5769_request, &p, (const uint8_t *)pw, sizeof pw - 1));
    CHECK(!stun_check_integrity(rfc5769_request, &p, (const uint8_t *)pw, sizeof pw - 2));

    REQUIRE(stun_decode(rfc5769_response_v4, sizeof rfc5769_response_v4, &p));
    CHECK(p.cls == STUN_CLASS_SUCCESS);
    CHECK(stun_check_integrity(rfc5769_response_v4, &p, (const uint8_t *)pw, sizeof pw - 1));
    REQUIRE(stun_decode(rfc5769_response_v6, sizeof rfc5769_response_v6, &p));
    CHECK(stun_check_integrity(rfc5769_response_v6, &p, (const uint8_t *)pw, sizeof pw - 1));

    /* A flipped bit in a covered attribute fails the integrity (the fingerprint is left stale, so
     * only the integrity check is asked). */
    memcpy(copy, rfc5769_request, sizeof copy);
    REQUIRE(stun_decode(copy, sizeof copy, &p));
    copy[30] ^= 1;
    CHECK(!stun_check_integrity(copy, &p, (const uint8_t *)pw, sizeof pw - 1));
}

/* RFC 5769 §2.4 through the decoder: USERNAME, NONCE and REALM found, and the long-term key
 * stun_long_term_key makes, MD5("<username>:example.org:TheMatrIX"), verifies its integrity. */
static void test_check_integrity_rfc5769_long_term(void)
{
    stun_msg p;
    uint8_t key[HASH_MD5_LEN];

    const uint8_t *req = rfc5769_long_term_request;
    REQUIRE(stun_decode(req, sizeof rfc5769_long_term_request, &p));
    CHECK_EQ_INT(p.username.len, 18);
    CHECK_EQ_MEM(req + p.nonce.off, p.nonce.len, "f//499k954d6OL34oL9FSTvy64sA", 28);
    CHECK_EQ_MEM(req + p.realm.off, p.realm.len, "example.org", 11);
    stun_long_term_key(req + p.username.off, p.username.len, "example.org", "TheMatrIX", key);
    CHECK(stun_check_integrity(req, &p, key, sizeof key));
    key[0] ^= 1;
    CHECK(!stun_check_integrity(req, &p, key, sizeof key));
}

/* What the writer builds decodes to what was put in, its integrity verifies (with and without a
 * fingerprint after it) and its padding is zero. */
static void test_writer_round_trip(void)
{
    static const uint8_t tid[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
    static const uint8_t key[16] = "0123456789abcdef";
    uint8_t buf[256], mac[20];
    addr_t relayed = v4(203, 0, 113, 5, 50000), mapped = v6(doc_v6, 40000);
    stun_writer w;
    stun_msg p;
    decoded d;
    size_t n;

    for (int fp = 0; fp < 2; fp++) {
        stun_begin(&w, buf, sizeof buf, stun_type(STUN_ALLOCATE, STUN_CLASS_SUCCESS), tid);
        stun_put_xor_addr(&w, STUN_ATTR_XOR_RELAYED_ADDRESS, &relayed);
        stun_put_xor_addr(&w, STUN_ATTR_XOR_MAPPED_ADDRESS, &mapped);
        stun_put_u32(&w, STUN_ATTR_LIFETIME, 600);
        stun_put(&w, STUN_ATTR_SOFTWARE, "abcde", 5);
        stun_put_integrity(&w, key, sizeof key);
        if (fp)
            stun_put_fingerprint(&w);
        n = stun_finish(&w);
        REQUIRE(n == 20 + 12 + 24 + 8 + 12 + 24 + (fp ? 8u : 0u));
        CHECK_EQ_MEM(buf + 20 + 12 + 24 + 8 + 9, 3, "\0\0\0", 3);
        REQUIRE(decode(buf, n, &d));
        CHECK(d.type == 0x0103 && d.has_fingerprint == (fp == 1));
        CHECK(!fp || d.fingerprint_ok);
        CHECK(d.has_mapped && d.mapped.port == 40000);   /* the decoder here reads 0x0020 */
        REQUIRE(stun_decode(buf, n, &p));
        REQUIRE(p.integrity_at == 20 + 12 + 24 + 8 + 12);
        CHECK(stun_check_integrity(buf, &p, key, sizeof key));
        /* Independently: HMAC over the prefix with the length ending at the integrity. */
        uint8_t copy[256];
        memcpy(copy, buf, n);
        put_be16(copy + 2, p.integrity_at + 24u - 20u);
        hash_hmac_sha1(key, sizeof key, copy, p.integrity_at, mac);
        CHECK_EQ_MEM(mac, 20, buf + p.integrity_at + 4, 20);
        addr_t back;
        REQUIRE(stun_read_xor_addr(buf + 24, 8, tid, &back));
        CHECK(back.family == 4 && back.port == 50000 && memcmp(back.ip, relayed.ip, 4) == 0);
    }

    /* Error with reason and UNKNOWN-ATTRIBUTES, then an overflow. */
    uint16_t unknown[3] = { 0x0024, 0x0003, 0x7FFF };
    stun_begin(&w, buf, sizeof buf, stun_type(STUN_ALLOCATE, STUN_CLASS_ERROR), tid);
    stun_put_error(&w, 438, "Stale Nonce");
    stun_put_unknown(&w, unknown, 3);
    n = stun_finish(&w);
    REQUIRE(decode(buf, n, &d));
    CHECK_EQ_INT(d.error_code, 438);
    CHECK(d.n_unknown == 3 && d.unknown[2] == 0x7FFF);
    CHECK_EQ_MEM(buf + 28, 11, "Stale Nonce", 11);

    stun_begin(&w, buf, 40, stun_type(STUN_DATA, STUN_CLASS_INDICATION), tid);
    stun_put(&w, STUN_ATTR_DATA, "0123456789abcdef0123", 20);
    CHECK(w.overflow);
    CHECK_EQ_INT(stun_finish(&w), 0);
    stun_begin(&w, buf, 10, stun_type(STUN_DATA, STUN_CLASS_INDICATION), tid);
    CHECK_EQ_INT(stun_finish(&w), 0);
}

static void test_channel_data_framing(void)
{
    uint8_t d[16] = { 0x40, 0x00, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o', 0, 0, 0 };
    uint16_t ch;
    size_t len;

    CHECK(stun_is_channel_data(0x40) && stun_is_channel_data(0x7F));
    CHECK(!stun_is_channel_data(0x00) && !stun_is_channel_data(0x80) && !stun_is_channel_data(0xC0));
    CHECK(stun_channel_data_read(d, 9, &ch, &len) && ch == 0x4000 && len == 5);
    CHECK(stun_channel_data_read(d, 12, &ch, &len) && len == 5);   /* padding allowed over UDP */
    CHECK(!stun_channel_data_read(d, 8, &ch, &len));                /* shorter than it claims */
    CHECK(!stun_channel_data_read(d, 3, &ch, &len));
    d[0] = 0x7F, d[1] = 0xFF;
    CHECK(stun_channel_data_read(d, 9, &ch, &len) && ch == 0x7FFF);
    d[0] = 0x80, d[1] = 0x00;
    CHECK(!stun_channel_data_read(d, 9, &ch, &len));
    d[0] = 0x3F, d[1] = 0xFF;
    CHECK(!stun_channel_data_read(d, 9, &ch, &len));

    uint8_t hdr[4];
    CHECK_EQ_INT(stun_channel_data_header(hdr, 0x4001, 5, false), 0);
    CHECK_EQ_MEM(hdr, 4, "\x40\x01\x00\x05", 4);
    CHECK_EQ_INT(stun_channel_data_header(hdr, 0x4001, 5, true), 3);
    CHECK_EQ_INT(stun_channel_data_header(hdr, 0x4001, 8, true), 0);
    CHECK_EQ_INT(stun_channel_data_header(hdr, 0x4001, 0, true), 0);

    /* Stream framing. */
    CHECK_EQ_INT(stun_stream_frame_len((const uint8_t *)"\x40\x00\x00", 3), 0);
    CHECK_EQ_INT(stun_stream_frame_len((const uint8_t *)"\x40\x00\x00\x05", 4), 12);
    CHECK_EQ_INT(stun_stream_frame_len((const uint8_t *)"\x40\x00\x00\x08", 4), 12);
    CHECK_EQ_INT(stun_stream_frame_len((const uint8_t *)"\x00\x03\x00\x08", 4), 28);
    CHECK_EQ_INT(stun_stream_frame_len((const uint8_t *)"\x00\x03\x00\x06", 4), -1);
    /* "GET " has the top bits of ChannelData: an HTTP client is framed as junk of its own length. */
    CHECK_EQ_INT(stun_stream_frame_len((const uint8_t *)"GET ", 4), 4 + 0x5420);
    CHECK_EQ_INT(stun_stream_frame_len((const uint8_t *)"\x80\x00\x00\x00", 4), -1);
    CHECK_EQ_INT(stun_stream_frame_len((const uint8_t *)"\xC0\x00\x00\x00", 4), -1);
    CHECK_EQ_INT(stun_stream_frame_len((const uint8_t *)"\x7F\xFF\xFF\xFF", 4), 4 + 0x10000);
}


/* The probe's exchange against our own responder: its request is one we answer, and the
 * answer gives back the source address, for IPv4 and IPv6; another transaction's answer or a
 * truncated one is refused. */
static void test_client_request_and_response(void)
{
    uint8_t tid[STUN_TRANSACTION_ID_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    uint8_t req[64], resp[STUN_RESPONSE_MAX];
    stun_request parsed;
    addr_t src, got;
    static const char *const sources[] = {"198.51.100.7:40000", "[2001:db8::5]:3478"};
    uint8_t small[27];
    CHECK_EQ_INT(stun_write_binding_request(tid, small, sizeof small), 0);
    size_t n = stun_write_binding_request(tid, req, sizeof req);
    REQUIRE(n == 28);
    REQUIRE(stun_parse(req, n, &parsed) == STUN_SUCCESS);
    CHECK(parsed.fingerprint);
    for (size_t i = 0; i < 2; i++) {
        REQUIRE(addr_parse(sources[i], strlen(sources[i]), &src));
        size_t m = stun_write_response(&parsed, &src, resp, sizeof resp);
        REQUIRE(m > 0);
        REQUIRE(stun_parse_binding_response(resp, m, tid, &got));
        CHECK(memcmp(&got, &src, sizeof got) == 0);
        CHECK(!stun_parse_binding_response(resp, m - 1, tid, &got));
        tid[0] ^= 0xff;
        CHECK(!stun_parse_binding_response(resp, m, tid, &got));
        tid[0] ^= 0xff;
    }
}


int main(void)
{
    RUN(test_client_request_and_response);
    RUN(test_crc32_check_value);
    RUN(test_rfc5769_responses_decode);
    RUN(test_xor_mapped_address_matches_rfc5769);
    RUN(test_rfc5769_request_gets_420_for_priority);
    RUN(test_rfc5769_request_any_corruption_drops);
    RUN(test_auth_attributes_are_ignored);
    RUN(test_attributes_after_integrity_are_ignored);
    RUN(test_minimal_request_ipv4_ipv6_mapped);
    RUN(test_drop_short_and_non_stun);
    RUN(test_drop_wrong_cookie);
    RUN(test_drop_other_method_class_or_top_bits);
    RUN(test_drop_bad_lengths);
    RUN(test_drop_overrunning_attribute);
    RUN(test_fingerprint_rules);
    RUN(test_unknown_attributes_listed_once_and_capped);
    RUN(test_no_amplification);
    RUN(test_write_response_refuses_small_buffer_and_drop);
    RUN(test_misaligned_buffers);
    RUN(test_message_types);
    RUN(test_decode_turn_attributes);
    RUN(test_decode_malformed_turn_values);
    RUN(test_check_integrity_rfc5769);
    RUN(test_check_integrity_rfc5769_long_term);
    RUN(test_writer_round_trip);
    RUN(test_channel_data_framing);
    return test_finish();
}
