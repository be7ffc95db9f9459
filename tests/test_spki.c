/* Unit tests for spki.c: the SubjectPublicKeyInfo span of real certificates made with openssl
 * (ECDSA P-256 and RSA 2048 v3, a P-384 v1 certificate without the version field) equals the
 * public key openssl exports from them; every truncation, a trailing byte, a non-minimal or
 * indefinite length and a wrong tag are refused. */
#include "spki.h"
#include "tests/harness.h"
#include "tests/test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *load(const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof path, "tests/data/tls/%s", name);
    return h_read_file(path, len);
}

/* The span spki_find returns is byte for byte what `openssl x509 -pubkey | openssl pkey -pubin
 * -outform DER` wrote into <name>.spki. */
static void check_cert(const char *name)
{
    char spki_name[64];
    size_t len = 0, want_len = 0, off = 0, n = 0;
    uint8_t *cert = load(name, &len);
    snprintf(spki_name, sizeof spki_name, "%.*s.spki", (int)(strlen(name) - 4), name);
    uint8_t *want = load(spki_name, &want_len);
    if (cert == NULL || want == NULL) {
        test_cur_failed = 1;
        free(cert);
        free(want);
        return;
    }
    CHECK(spki_find(cert, len, &off, &n));
    CHECK_EQ_MEM(cert + off, n, want, want_len);

    /* Every proper prefix is refused, and so is one byte too many. */
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *exact = malloc(cut ? cut : 1);   /* exact size, so ASan sees any overread */
        memcpy(exact, cert, cut);
        if (spki_find(exact, cut, &off, &n)) {
            printf("  %s cut to %zu bytes was accepted\n", name, cut);
            test_cur_failed = 1;
        }
        free(exact);
    }
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, cert, len);
    longer[len] = 0;
    CHECK(!spki_find(longer, len + 1, &off, &n));
    free(longer);
    free(cert);
    free(want);
}

static void test_real_certificates(void)
{
    check_cert("ec-p256.der");
    check_cert("rsa2048.der");
    check_cert("v1-p384.der");
}

static void test_malformed(void)
{
    size_t len = 0, off, n;
    uint8_t *cert = load("ec-p256.der", &len);
    REQUIRE(cert != NULL);
    REQUIRE(cert[0] == 0x30 && cert[1] == 0x82);

    /* The outer length written with a redundant leading zero byte. */
    uint8_t *padded = malloc(len + 1);
    padded[0] = 0x30;
    padded[1] = 0x83;
    padded[2] = 0x00;
    memcpy(padded + 3, cert + 2, len - 2);
    CHECK(!spki_find(padded, len + 1, &off, &n));
    /* A long form for a length that fits the short form. */
    uint8_t tiny[] = {0x30, 0x81, 0x05, 0x30, 0x00, 0x30, 0x00, 0x03};
    CHECK(!spki_find(tiny, sizeof tiny, &off, &n));
    /* Indefinite length. */
    uint8_t indefinite[] = {0x30, 0x80, 0x00, 0x00};
    CHECK(!spki_find(indefinite, sizeof indefinite, &off, &n));
    /* A length past the end of the input. */
    uint8_t past[] = {0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00};
    CHECK(!spki_find(past, sizeof past, &off, &n));

    /* The outer SEQUENCE turned into a SET; the tbsCertificate's serial turned into a BOOLEAN. */
    uint8_t *copy = malloc(len);
    memcpy(copy, cert, len);
    copy[0] = 0x31;
    CHECK(!spki_find(copy, len, &off, &n));
    memcpy(copy, cert, len);
    size_t serial = 4 + 4 + 5;   /* outer hdr, tbs hdr, [0] { INTEGER 2 } */
    REQUIRE(copy[serial] == 0x02);
    copy[serial] = 0x01;
    CHECK(!spki_find(copy, len, &off, &n));

    CHECK(!spki_find((const uint8_t *)"", 0, &off, &n));
    CHECK(!spki_find((const uint8_t *)"\x30", 1, &off, &n));
    free(copy);
    free(padded);
    free(cert);
}

int main(void)
{
    RUN(test_real_certificates);
    RUN(test_malformed);
    return test_finish();
}
