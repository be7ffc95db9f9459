/* SHA-1, MD5, HMAC-SHA1, SipHash-1-3, base64 and hex (see hash.h). SHA-1 and MD5 share one
 * block-buffering scheme; they differ in the compression function and in the byte order of the
 * words and of the length that ends the message. */
#include "hash.h"

#include <string.h>

static uint32_t rol32(uint32_t x, unsigned n) { return (x << n) | (x >> (32 - n)); }

static uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t load_le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* ---------------- SHA-1 (FIPS 180-4) ---------------- */

static void sha1_block(uint32_t *h, const uint8_t *block)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = load_be32(block + 4 * i);
    for (int i = 16; i < 80; i++)
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);

    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20)      { f = (b & c) | (~b & d);          k = 0x5a827999u; }
        else if (i < 40) { f = b ^ c ^ d;                   k = 0x6ed9eba1u; }
        else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8f1bbcdcu; }
        else             { f = b ^ c ^ d;                   k = 0xca62c1d6u; }
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = t;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
}

/* ---------------- MD5 (RFC 1321) ---------------- */

static void md5_block(uint32_t *h, const uint8_t *block)
{
    /* K[i] = floor(|sin(i + 1)| * 2^32); S the per-round rotations. */
    static const uint32_t K[64] = {
        0xd76aa478u, 0xe8c7b756u, 0x242070dbu, 0xc1bdceeeu, 0xf57c0fafu, 0x4787c62au, 0xa8304613u, 0xfd469501u,
        0x698098d8u, 0x8b44f7afu, 0xffff5bb1u, 0x895cd7beu, 0x6b901122u, 0xfd987193u, 0xa679438eu, 0x49b40821u,
        0xf61e2562u, 0xc040b340u, 0x265e5a51u, 0xe9b6c7aau, 0xd62f105du, 0x02441453u, 0xd8a1e681u, 0xe7d3fbc8u,
        0x21e1cde6u, 0xc33707d6u, 0xf4d50d87u, 0x455a14edu, 0xa9e3e905u, 0xfcefa3f8u, 0x676f02d9u, 0x8d2a4c8au,
        0xfffa3942u, 0x8771f681u, 0x6d9d6122u, 0xfde5380cu, 0xa4beea44u, 0x4bdecfa9u, 0xf6bb4b60u, 0xbebfbc70u,
        0x289b7ec6u, 0xeaa127fau, 0xd4ef3085u, 0x04881d05u, 0xd9d4d039u, 0xe6db99e5u, 0x1fa27cf8u, 0xc4ac5665u,
        0xf4292244u, 0x432aff97u, 0xab9423a7u, 0xfc93a039u, 0x655b59c3u, 0x8f0ccc92u, 0xffeff47du, 0x85845dd1u,
        0x6fa87e4fu, 0xfe2ce6e0u, 0xa3014314u, 0x4e0811a1u, 0xf7537e82u, 0xbd3af235u, 0x2ad7d2bbu, 0xeb86d391u,
    };
    static const uint8_t S[4][4] = { { 7, 12, 17, 22 }, { 5, 9, 14, 20 }, { 4, 11, 16, 23 }, { 6, 10, 15, 21 } };
    uint32_t m[16];
    for (int i = 0; i < 16; i++)
        m[i] = load_le32(block + 4 * i);

    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    for (unsigned i = 0; i < 64; i++) {
        unsigned round = i / 16, g;
        uint32_t f;
        switch (round) {
        case 0:  f = (b & c) | (~b & d); g = i;                break;
        case 1:  f = (d & b) | (~d & c); g = (5 * i + 1) % 16; break;
        case 2:  f = b ^ c ^ d;          g = (3 * i + 5) % 16; break;
        default: f = c ^ (b | ~d);       g = (7 * i) % 16;     break;
        }
        uint32_t t = d;
        d = c;
        c = b;
        b = b + rol32(a + f + K[i] + m[g], S[round][i % 4]);
        a = t;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d;
}

/* ---------------- shared block buffering ---------------- */

typedef void (*block_fn)(uint32_t *h, const uint8_t *block);

/* Feeds data through fn one block at a time, keeping an incomplete block in `block`. */
static void absorb(uint32_t *h, uint64_t *total, uint8_t block[64], block_fn fn, const void *data,
                   size_t len)
{
    const uint8_t *p = data;
    size_t fill = (size_t)(*total % 64);

    *total += len;
    if (fill) {
        size_t take = 64 - fill < len ? 64 - fill : len;
        memcpy(block + fill, p, take);
        p += take;
        len -= take;
        if (fill + take < 64)
            return;
        fn(h, block);
    }
    for (; len >= 64; p += 64, len -= 64)
        fn(h, p);
    if (len)
        memcpy(block, p, len);
}

/* The 0x80 marker, zeros, and the 64-bit bit count (big- or little-endian) end the message. */
static void finish_blocks(uint32_t *h, uint64_t total, uint8_t block[64], block_fn fn,
                          int big_endian)
{
    size_t fill = (size_t)(total % 64);
    uint64_t bits = total * 8;

    block[fill++] = 0x80;
    if (fill > 56) {
        memset(block + fill, 0, 64 - fill);
        fn(h, block);
        fill = 0;
    }
    memset(block + fill, 0, 56 - fill);
    for (int i = 0; i < 8; i++)
        block[big_endian ? 63 - i : 56 + i] = (uint8_t)(bits >> (8 * i));
    fn(h, block);
}

void hash_sha1_init(hash_sha1_ctx *c)
{
    static const uint32_t iv[5] = { 0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u, 0xc3d2e1f0u };
    memcpy(c->h, iv, sizeof iv);
    c->total = 0;
}

void hash_sha1_update(hash_sha1_ctx *c, const void *data, size_t len)
{
    absorb(c->h, &c->total, c->block, sha1_block, data, len);
}

void hash_sha1_final(hash_sha1_ctx *c, uint8_t out[HASH_SHA1_LEN])
{
    finish_blocks(c->h, c->total, c->block, sha1_block, 1);
    for (int i = 0; i < 5; i++) {
        out[4 * i]     = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

void hash_sha1(const void *data, size_t len, uint8_t out[HASH_SHA1_LEN])
{
    hash_sha1_ctx c;
    hash_sha1_init(&c);
    hash_sha1_update(&c, data, len);
    hash_sha1_final(&c, out);
}

void hash_md5_init(hash_md5_ctx *c)
{
    static const uint32_t iv[4] = { 0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u };
    memcpy(c->h, iv, sizeof iv);
    c->total = 0;
}

void hash_md5_update(hash_md5_ctx *c, const void *data, size_t len)
{
    absorb(c->h, &c->total, c->block, md5_block, data, len);
}

void hash_md5_final(hash_md5_ctx *c, uint8_t out[HASH_MD5_LEN])
{
    finish_blocks(c->h, c->total, c->block, md5_block, 0);
    for (int i = 0; i < 4; i++) {
        out[4 * i]     = (uint8_t)c->h[i];
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 3] = (uint8_t)(c->h[i] >> 24);
    }
}

void hash_md5(const void *data, size_t len, uint8_t out[HASH_MD5_LEN])
{
    hash_md5_ctx c;
    hash_md5_init(&c);
    hash_md5_update(&c, data, len);
    hash_md5_final(&c, out);
}

/* ---------------- HMAC-SHA1 (RFC 2104) ---------------- */

void hash_hmac_sha1_init(hash_hmac_sha1_ctx *c, const void *key, size_t key_len)
{
    uint8_t k[64] = { 0 }, pad[64];

    if (key_len > sizeof k)
        hash_sha1(key, key_len, k);
    else if (key_len)
        memcpy(k, key, key_len);
    for (int i = 0; i < 64; i++)
        pad[i] = (uint8_t)(k[i] ^ 0x36);
    hash_sha1_init(&c->inner);
    hash_sha1_update(&c->inner, pad, sizeof pad);
    for (int i = 0; i < 64; i++)
        pad[i] = (uint8_t)(k[i] ^ 0x5c);
    hash_sha1_init(&c->outer);
    hash_sha1_update(&c->outer, pad, sizeof pad);
}

void hash_hmac_sha1_update(hash_hmac_sha1_ctx *c, const void *data, size_t len)
{
    hash_sha1_update(&c->inner, data, len);
}

void hash_hmac_sha1_final(hash_hmac_sha1_ctx *c, uint8_t out[HASH_SHA1_LEN])
{
    uint8_t inner[HASH_SHA1_LEN];
    hash_sha1_final(&c->inner, inner);
    hash_sha1_update(&c->outer, inner, sizeof inner);
    hash_sha1_final(&c->outer, out);
}

void hash_hmac_sha1(const void *key, size_t key_len, const void *data, size_t len,
                    uint8_t out[HASH_SHA1_LEN])
{
    hash_hmac_sha1_ctx c;
    hash_hmac_sha1_init(&c, key, key_len);
    hash_hmac_sha1_update(&c, data, len);
    hash_hmac_sha1_final(&c, out);
}

int hash_equal(const void *a, const void *b, size_t len)
{
    const uint8_t *x = a, *y = b;
    uint8_t diff = 0;
    for (size_t i = 0; i < len; i++)
        diff |= (uint8_t)(x[i] ^ y[i]);
    return diff == 0;
}

/* ---------------- SipHash-1-3 ---------------- */

static uint64_t rotl64(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

static void sip_round(uint64_t v[4])
{
    v[0] += v[1]; v[1] = rotl64(v[1], 13); v[1] ^= v[0]; v[0] = rotl64(v[0], 32);
    v[2] += v[3]; v[3] = rotl64(v[3], 16); v[3] ^= v[2];
    v[0] += v[3]; v[3] = rotl64(v[3], 21); v[3] ^= v[0];
    v[2] += v[1]; v[1] = rotl64(v[1], 17); v[1] ^= v[2]; v[2] = rotl64(v[2], 32);
}

static uint64_t load_le64(const uint8_t *p, size_t n)
{
    uint64_t x = 0;
    for (size_t i = n; i > 0; i--)
        x = x << 8 | p[i - 1];
    return x;
}

uint64_t hash_siphash13(const uint64_t key[2], const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t v[4] = {
        key[0] ^ 0x736f6d6570736575ULL, key[1] ^ 0x646f72616e646f6dULL,
        key[0] ^ 0x6c7967656e657261ULL, key[1] ^ 0x7465646279746573ULL,
    };
    size_t whole = len - len % 8;

    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(p + i, 8);
        v[3] ^= m;
        sip_round(v);
        v[0] ^= m;
    }
    uint64_t last = (uint64_t)len << 56 | load_le64(p + whole, len % 8);
    v[3] ^= last;
    sip_round(v);
    v[0] ^= last;
    v[2] ^= 0xff;
    sip_round(v);
    sip_round(v);
    sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---------------- base64 (RFC 4648 §4) ---------------- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encode(const uint8_t *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len) v |= in[i + 2];
        out[o++] = b64_alphabet[v >> 18 & 63];
        out[o++] = b64_alphabet[v >> 12 & 63];
        out[o++] = i + 1 < len ? b64_alphabet[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? b64_alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

int base64_value(char c)
{
    const char *at = c ? strchr(b64_alphabet, c) : NULL;
    return at ? (int)(at - b64_alphabet) : -1;
}

void hex_encode(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

uint64_t hash_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
