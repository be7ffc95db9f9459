/* Unit tests for hash.c: SHA-1 (FIPS 180 examples and padding boundaries), MD5 (the RFC 1321
 * test suite), HMAC-SHA1 (every RFC 2202 case), RFC 5769 §2.4's long-term credential vector,
 * incremental hashing in odd pieces, SipHash-1-3 (the reference vectors' key and inputs), the
 * constant-time compare and base64. */
#include "hash.h"
#include "tests/rfc5769.h"
#include "tests/test.h"

#include <stdlib.h>

static void hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void test_sha1_vectors(void)
{
    static const struct { const char *in; const char *digest; } v[] = {
        { "", "da39a3ee5e6b4b0d3255bfef95601890afd80709" },
        { "abc", "a9993e364706816aba3e25717850c26c9cd0d89d" },
        { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
          "84983e441c3bd26ebaae4aa1f95129e5e54670f1" },
    };
    uint8_t d[20];
    char h[41];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        hash_sha1(v[i].in, strlen(v[i].in), d);
        hex(d, 20, h);
        CHECK_EQ_STR(h, v[i].digest);
    }
    /* Padding boundaries: the tail needs one or two final blocks around 55/56 and 119/120. */
    static const struct { size_t n; const char *digest; } a[] = {
        { 55, "c1c8bbdc22796e28c0e15163d20899b65621d65a" },
        { 56, "c2db330f6083854c99d4b5bfb6e8f29f201be699" },
        { 63, "03f09f5b158a7a8cdad920bddc29b81c18a551f5" },
        { 64, "0098ba824b5c16427bd7a1122a5a442a25ec644d" },
        { 65, "11655326c708d70319be2610e8a57d9a5b959d3b" },
        { 119, "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56" },
        { 120, "f34c1488385346a55709ba056ddd08280dd4c6d6" },
        { 1000000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f" },
    };
    char *as = malloc(1000000);
    REQUIRE(as != NULL);
    memset(as, 'a', 1000000);
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) {
        hash_sha1(as, a[i].n, d);
        hex(d, 20, h);
        CHECK_EQ_STR(h, a[i].digest);
    }
    free(as);
}

/* RFC 1321 §A.5. */
static void test_md5_vectors(void)
{
    static const struct { const char *in; const char *digest; } v[] = {
        { "", "d41d8cd98f00b204e9800998ecf8427e" },
        { "a", "0cc175b9c0f1b6a831c399e269772661" },
        { "abc", "900150983cd24fb0d6963f7d28e17f72" },
        { "message digest", "f96b697d7cb7938d525a2f31aaf161d0" },
        { "abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b" },
        { "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
          "d174ab98d277d9f5a5611c2c9f419d9f" },
        { "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
          "57edf4a22be3c955ac49da2e2107b67a" },
    };
    uint8_t d[16];
    char h[33];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        hash_md5(v[i].in, strlen(v[i].in), d);
        hex(d, 16, h);
        CHECK_EQ_STR(h, v[i].digest);
    }
}

static size_t unhex(const char *s, uint8_t *out)
{
    size_t n = strlen(s) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(s + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    return n;
}

/* RFC 2202 §3: all seven HMAC-SHA1 cases (key and data as hex, or text), including the keys
 * longer than a block that are hashed first, and the truncated case checked in full. */
static void test_hmac_sha1_rfc2202(void)
{
    static const struct { const char *key_hex; size_t key_rep; const char *data; size_t data_rep;
                          const char *digest; } v[] = {
        { "0b", 20, "Hi There", 1, "b617318655057264e28bc0b6fb378c8ef146be00" },
        { "4a656665", 1, "what do ya want for nothing?", 1, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79" },
        { "aa", 20, "\xdd", 50, "125d7342b9ac11cd91a39af48aa17b4f63f175d3" },
        { "0102030405060708090a0b0c0d0e0f10111213141516171819", 1, "\xcd", 50,
          "4c9007f4026250c6bc8414f9bf50c86c2d7235da" },
        { "0c", 20, "Test With Truncation", 1, "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04" },
        { "aa", 80, "Test Using Larger Than Block-Size Key - Hash Key First", 1,
          "aa4ae5e15272d00e95705637ce8a3b55ed402112" },
        { "aa", 80, "Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data", 1,
          "e8e99d0f45237d786d6bbaa7965c7808bbff1a91" },
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint8_t key[128], data[128], d[20], unit[32];
        size_t unit_len = unhex(v[i].key_hex, unit), key_len = 0, data_len = 0;
        char h[41];
        for (size_t r = 0; r < v[i].key_rep; r++, key_len += unit_len)
            memcpy(key + key_len, unit, unit_len);
        for (size_t r = 0; r < v[i].data_rep; r++, data_len += strlen(v[i].data))
            memcpy(data + data_len, v[i].data, strlen(v[i].data));
        hash_hmac_sha1(key, key_len, data, data_len, d);
        hex(d, 20, h);
        CHECK_EQ_STR(h, v[i].digest);
    }
}

/* RFC 5769 §2.4: a request signed with the long-term credential mechanism. The key is
 * MD5(username ":" realm ":" SASLprep(password)); the password "The<U+00AD>M<U+00AA>tr<U+2168>"
 * prepares to "TheMatrIX". MESSAGE-INTEGRITY is the last attribute, so the length field already
 * covers it and the HMAC runs over everything before it. */
static void test_rfc5769_long_term_vector(void)
{
    const uint8_t *msg = rfc5769_long_term_request;
    static const char credentials[] =
        "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf\xe3\x82\xb9:example.org:TheMatrIX";
    uint8_t key[16], mac[20];
    hash_md5_ctx m;

    /* The key in pieces, as the TURN server builds it. */
    hash_md5_init(&m);
    hash_md5_update(&m, credentials, 18);
    hash_md5_update(&m, credentials + 18, sizeof credentials - 1 - 18);
    hash_md5_final(&m, key);
    hash_hmac_sha1(key, sizeof key, msg, 92, mac);
    CHECK_EQ_MEM(mac, 20, msg + 96, 20);

    /* One flipped bit anywhere it covers changes the MAC. */
    uint8_t copy[sizeof rfc5769_long_term_request];
    memcpy(copy, msg, sizeof copy);
    copy[30] ^= 1;
    hash_hmac_sha1(key, sizeof key, copy, 92, mac);
    CHECK(memcmp(mac, msg + 96, 20) != 0);
}

/* Incremental hashing in every split of a message (and in bytes one at a time) equals one call. */
static void test_incremental_pieces(void)
{
    uint8_t data[200], whole[20], part[20], whole5[16], part5[16];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7 + 3);
    for (size_t len = 0; len <= sizeof data; len += 13) {
        hash_sha1(data, len, whole);
        hash_md5(data, len, whole5);
        for (size_t cut = 0; cut <= len; cut++) {
            hash_sha1_ctx c;
            hash_md5_ctx m;
            hash_sha1_init(&c);
            hash_sha1_update(&c, data, cut);
            hash_sha1_update(&c, data + cut, len - cut);
            hash_sha1_final(&c, part);
            CHECK_EQ_MEM(part, 20, whole, 20);
            hash_md5_init(&m);
            hash_md5_update(&m, data, cut);
            hash_md5_update(&m, data + cut, len - cut);
            hash_md5_final(&m, part5);
            CHECK_EQ_MEM(part5, 16, whole5, 16);
        }
        hash_hmac_sha1_ctx h;
        hash_hmac_sha1(data, 17, data, len, whole);
        hash_hmac_sha1_init(&h, data, 17);
        for (size_t i = 0; i < len; i++)
            hash_hmac_sha1_update(&h, data + i, 1);
        hash_hmac_sha1_final(&h, part);
        CHECK_EQ_MEM(part, 20, whole, 20);
    }
}

/* The published SipHash vectors are for 2-4 rounds. These are SipHash-1-3 of 00..(n-1) under key
 * 00..0f, computed by a separate implementation of the algorithm that reproduces the published
 * 2-4 vectors when run with 2 and 4 rounds. */
static void test_siphash13(void)
{
    static const uint64_t expect[] = {
        0xabac0158050fc4dcULL, 0xc9f49bf37d57ca93ULL, 0x82cb9b024dc7d44dULL, 0x8bf80ab8e7ddf7fbULL,
        0xcf75576088d38328ULL, 0xdef9d52f49533b67ULL, 0xc50d2b50c59f22a7ULL, 0xd3927d989bb11140ULL,
        0x369095118d299a8eULL, 0x25a48eb36c063de4ULL, 0x79de85ee92ff097fULL, 0x70c118c1f94dc352ULL,
        0x78a384b157b4d9a2ULL, 0x306f760c1229ffa7ULL, 0x605aa111c0f95d34ULL, 0xd320d86d2a519956ULL,
    };
    uint64_t key[2] = { 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL };
    uint8_t in[16];
    for (size_t n = 0; n < sizeof expect / sizeof expect[0]; n++) {
        in[n] = (uint8_t)n;
        uint64_t got = hash_siphash13(key, in, n);
        if (got != expect[n])
            printf("  siphash13 len %zu: %016llx\n", n, (unsigned long long)got);
        CHECK(got == expect[n]);
    }
}

static void test_equal_and_base64(void)
{
    static const struct { const char *in; const char *out; } v[] = {
        { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
        { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
    };
    char out[16];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        size_t n = base64_encode((const uint8_t *)v[i].in, strlen(v[i].in), out);
        CHECK_EQ_STR(out, v[i].out);
        CHECK_EQ_INT(n, strlen(v[i].out));
        CHECK_EQ_INT(BASE64_LEN(strlen(v[i].in)), strlen(v[i].out));
    }
    CHECK_EQ_INT(base64_value('A'), 0);
    CHECK_EQ_INT(base64_value('/'), 63);
    CHECK_EQ_INT(base64_value('='), -1);
    CHECK_EQ_INT(base64_value('\0'), -1);
    CHECK(hash_equal("abcd", "abcd", 4));
    CHECK(!hash_equal("abcd", "abce", 4));
    CHECK(hash_equal("x", "y", 0));
}

static void test_hex_encode(void)
{
    static const uint8_t in[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xff };
    char out[2 * sizeof in + 1];
    memset(out, 'x', sizeof out);
    hex_encode(in, sizeof in, out);
    CHECK_EQ_STR(out, "00017f80abff");
    hex_encode(in, 0, out);
    CHECK_EQ_STR(out, "");
}

int main(void)
{
    RUN(test_sha1_vectors);
    RUN(test_md5_vectors);
    RUN(test_hmac_sha1_rfc2202);
    RUN(test_rfc5769_long_term_vector);
    RUN(test_incremental_pieces);
    RUN(test_siphash13);
    RUN(test_equal_and_base64);
    RUN(test_hex_encode);
    return test_finish();
}
