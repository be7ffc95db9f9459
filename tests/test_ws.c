/* Unit tests for ws.c: the accept key and the exact 101 bytes, upgrade
 * refusals, frame decoding with every refusal and its close code, byte-at-a-time feeding,
 * fragments with interleaved control frames, length boundaries, header-only size refusal,
 * UTF-8 edge cases, and the server-side encoders. */
#include "ws.h"
#include "test.h"

#include <stdlib.h>

static const uint8_t mask_key[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* Length encodings a test may force, to build non-minimal headers. */
enum { LEN_AUTO = 0, LEN_16 = 126, LEN_64 = 127 };

/* Writes a client frame (masked unless b1_mask is 0) with first byte b0; returns its size. */
static size_t client_frame(uint8_t *out, uint8_t b0, const void *payload, size_t len,
                           int len_form, uint8_t b1_mask)
{
    size_t pos = 0;
    if (len_form == LEN_AUTO)
        len_form = len < 126 ? 0 : len <= 0xffff ? LEN_16 : LEN_64;
    out[pos++] = b0;
    if (len_form == LEN_16) {
        out[pos++] = (uint8_t)(b1_mask | 126);
        out[pos++] = (uint8_t)(len >> 8);
        out[pos++] = (uint8_t)len;
    } else if (len_form == LEN_64) {
        out[pos++] = (uint8_t)(b1_mask | 127);
        for (int i = 7; i >= 0; i--)
            out[pos++] = (uint8_t)((uint64_t)len >> (8 * i));
    } else {
        out[pos++] = (uint8_t)(b1_mask | len);
    }
    if (b1_mask) {
        memcpy(out + pos, mask_key, 4);
        pos += 4;
    }
    for (size_t i = 0; i < len; i++)
        out[pos + i] = (uint8_t)(((const uint8_t *)payload)[i] ^ (b1_mask ? mask_key[i % 4] : 0));
    return pos + len;
}

static size_t masked(uint8_t *out, uint8_t b0, const void *payload, size_t len)
{
    return client_frame(out, b0, payload, len, LEN_AUTO, 0x80);
}

/* ---------------- accept key, upgrade ---------------- */

static void test_accept_key_rfc_example(void)
{
    char out[29];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    ws_accept_key(key, strlen(key), out);
    CHECK_EQ_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");   /* RFC 6455 §1.3 */
}

static const char *const live_client_request =
    "GET / HTTP/1.1\r\n"
    "Host: relay.example:9450\r\n"
    "Connection: Upgrade\r\n"
    "Upgrade: websocket\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "\r\n";

static int upgrade_text(const char *head, char *out, size_t cap, size_t *out_len)
{
    http_request req;
    long n = http_parse_request(head, strlen(head), HTTP_MAX_HEAD, &req);
    if (n <= 0) {
        printf("  request did not parse (%ld)\n", n);
        return 99;
    }
    return ws_upgrade(&req, out, cap, out_len);
}

static void test_upgrade_response_bytes(void)
{
    char out[256];
    size_t n = 0;
    const char *want =
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "\r\n";
    CHECK_EQ_INT(upgrade_text(live_client_request, out, sizeof out, &n), WS_UPGRADE_OK);
    CHECK_EQ_MEM(out, n, want, strlen(want));
    CHECK_EQ_INT(WS_UPGRADE_RESPONSE_LEN, strlen(want));

    CHECK_EQ_INT(upgrade_text(live_client_request, out, WS_UPGRADE_RESPONSE_LEN, &n), WS_UPGRADE_OK);
    CHECK_EQ_INT(upgrade_text(live_client_request, out, WS_UPGRADE_RESPONSE_LEN - 1, &n),
                 WS_UPGRADE_BAD_REQUEST);
    CHECK_EQ_INT(n, 0);
}

static void test_upgrade_accepts_variants(void)
{
    char out[256];
    size_t n;
    /* Any path, case-insensitive tokens, Connection as a list, extra headers. */
    const char *head =
        "GET /anything?q=1 HTTP/1.1\r\n"
        "Host: h\r\n"
        "connection: keep-alive, UPGRADE\r\n"
        "upgrade: WebSocket\r\n"
        "sec-websocket-version: 13\r\n"
        "sec-websocket-key: AAECAwQFBgcICQoLDA0ODw==\r\n"
        "Origin: http://x\r\n"
        "\r\n";
    CHECK_EQ_INT(upgrade_text(head, out, sizeof out, &n), WS_UPGRADE_OK);
    CHECK_EQ_INT(n, WS_UPGRADE_RESPONSE_LEN);
}

/* Builds a request from the live client's, with one header line replaced or removed. */
static int upgrade_with(const char *request_line, const char *drop, const char *add)
{
    char head[1024];
    size_t pos = (size_t)sprintf(head, "%s\r\n", request_line);
    const char *lines[] = { "Host: relay.example:9450", "Connection: Upgrade", "Upgrade: websocket",
                            "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        if (!drop || strncmp(lines[i], drop, strlen(drop)) != 0)
            pos += (size_t)sprintf(head + pos, "%s\r\n", lines[i]);
    if (add)
        pos += (size_t)sprintf(head + pos, "%s\r\n", add);
    sprintf(head + pos, "\r\n");
    char out[256];
    size_t n;
    return upgrade_text(head, out, sizeof out, &n);
}

static void test_upgrade_refusals(void)
{
    const char *get = "GET / HTTP/1.1";
    CHECK_EQ_INT(upgrade_with(get, NULL, NULL), WS_UPGRADE_OK);
    CHECK_EQ_INT(upgrade_with(get, "Upgrade:", NULL), WS_UPGRADE_NOT_WEBSOCKET);
    CHECK_EQ_INT(upgrade_with(get, "Upgrade:", "Upgrade: h2c"), WS_UPGRADE_NOT_WEBSOCKET);
    CHECK_EQ_INT(upgrade_with("POST / HTTP/1.1", NULL, NULL), WS_UPGRADE_BAD_REQUEST);
    CHECK_EQ_INT(upgrade_with("GET / HTTP/1.0", NULL, NULL), WS_UPGRADE_BAD_REQUEST);
    CHECK_EQ_INT(upgrade_with(get, "Connection:", NULL), WS_UPGRADE_BAD_REQUEST);
    CHECK_EQ_INT(upgrade_with(get, "Connection:", "Connection: keep-alive"), WS_UPGRADE_BAD_REQUEST);
    CHECK_EQ_INT(upgrade_with(get, "Sec-WebSocket-Version:", NULL), WS_UPGRADE_BAD_REQUEST);
    CHECK_EQ_INT(upgrade_with(get, "Sec-WebSocket-Version:", "Sec-WebSocket-Version: 8"),
                 WS_UPGRADE_BAD_VERSION);
    CHECK_EQ_INT(upgrade_with(get, "Sec-WebSocket-Version:", "Sec-WebSocket-Version: 13, 8"),
                 WS_UPGRADE_BAD_VERSION);
    CHECK_EQ_INT(upgrade_with(get, "Sec-WebSocket-Key:", NULL), WS_UPGRADE_BAD_REQUEST);
    static const char *const bad_keys[] = {
        "Sec-WebSocket-Key: ",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ",          /* unpadded */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=",         /* 23 chars */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ===",       /* 25 chars */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j",            /* 15 bytes */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==",        /* non-zero padding bits */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub2*jZQ==",        /* not base64 */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQdGhlIHNh",  /* 24 chars, 18 bytes */
    };
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++)
        CHECK_EQ_INT(upgrade_with(get, "Sec-WebSocket-Key:", bad_keys[i]), WS_UPGRADE_BAD_REQUEST);
    CHECK_EQ_INT(upgrade_with(get, "Sec-WebSocket-Key:", "Sec-WebSocket-Key: /////////////////////w=="),
                 WS_UPGRADE_OK);
}

/* ---------------- decoding ---------------- */

static void test_rfc_masked_hello(void)
{
    /* RFC 6455 §5.7: a single-frame masked text message "Hello". */
    uint8_t f[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    ws_decoder d;
    ws_result r;
    ws_decoder_init(&d, 1024);
    CHECK_EQ_INT(ws_parse(&d, f, sizeof f, &r), sizeof f);
    CHECK_EQ_INT(r.kind, WS_MESSAGE);
    CHECK(!r.binary);
    CHECK_EQ_MEM(r.data, r.len, "Hello", 5);
    CHECK(r.data == f + 6);   /* unmasked in place, no copy */
    ws_decoder_free(&d);
}

/* Decodes one frame with a fresh decoder and returns the result kind and close code. */
static ws_result decode_one(uint8_t *f, size_t n, size_t max)
{
    ws_decoder d;
    ws_result r;
    ws_decoder_init(&d, max);
    ws_parse(&d, f, n, &r);
    ws_decoder_free(&d);
    return r;
}

static void expect_fail(uint8_t *f, size_t n, uint16_t code, int line)
{
    ws_result r = decode_one(f, n, 1 << 20);
    if (r.kind != WS_FAIL || r.close_code != code) {
        printf("  line %d: kind %d code %u, expected FAIL %u\n", line, r.kind, r.close_code, code);
        test_cur_failed = 1;
    }
}
#define EXPECT_FAIL(f, n, code) expect_fail((f), (n), (code), __LINE__)

static void test_frame_refusals(void)
{
    uint8_t f[80000];
    static const uint8_t big[70000];
    size_t n;

    n = client_frame(f, 0x81, "hi", 2, LEN_AUTO, 0);           /* unmasked */
    EXPECT_FAIL(f, n, 1002);
    for (unsigned rsv = 0x10; rsv <= 0x40; rsv <<= 1) {         /* RSV1..3 */
        n = masked(f, (uint8_t)(0x81 | rsv), "hi", 2);
        EXPECT_FAIL(f, n, 1002);
    }
    for (uint8_t op = 3; op <= 15; op++) {                      /* reserved opcodes */
        if (op >= 8 && op <= 10)
            continue;
        n = masked(f, (uint8_t)(0x80 | op), "", 0);
        EXPECT_FAIL(f, n, 1002);
    }
    n = client_frame(f, 0x81, "hi", 2, LEN_16, 0x80);           /* 126 form for 2 bytes */
    EXPECT_FAIL(f, n, 1002);
    n = client_frame(f, 0x82, big, 125, LEN_16, 0x80);
    EXPECT_FAIL(f, n, 1002);
    n = client_frame(f, 0x82, big, 65535, LEN_64, 0x80);        /* 127 form below 65536 */
    EXPECT_FAIL(f, n, 1002);
    n = client_frame(f, 0x82, big, 5, LEN_64, 0x80);
    EXPECT_FAIL(f, n, 1002);
    uint8_t top[14] = { 0x82, 0xff, 0x80, 0, 0, 0, 0, 1, 0, 0, 0x37, 0xfa, 0x21, 0x3d };
    EXPECT_FAIL(top, sizeof top, 1002);                         /* 64-bit length, top bit set */
    n = masked(f, 0x09, "x", 1);                                /* fragmented ping */
    EXPECT_FAIL(f, n, 1002);
    n = masked(f, 0x89, big, 126);                              /* ping over 125 */
    EXPECT_FAIL(f, n, 1002);
    n = masked(f, 0x88, big, 126);                              /* close over 125 */
    EXPECT_FAIL(f, n, 1002);
    n = masked(f, 0x80, "x", 1);                                /* CONT with nothing open */
    EXPECT_FAIL(f, n, 1002);
    n = masked(f, 0x00, "x", 1);
    EXPECT_FAIL(f, n, 1002);
    n = masked(f, 0x81, "\xc0\xaf", 2);                         /* invalid UTF-8 text */
    EXPECT_FAIL(f, n, 1007);
    n = masked(f, 0x88, "\x03", 1);                             /* close payload of one byte */
    EXPECT_FAIL(f, n, 1002);
    n = masked(f, 0x88, "\x03\xe8\xff", 3);                     /* close reason not UTF-8 */
    EXPECT_FAIL(f, n, 1007);

    /* A new data message while a fragmented one is open. */
    ws_decoder d;
    ws_result r;
    ws_decoder_init(&d, 1024);
    n = masked(f, 0x01, "ab", 2);
    CHECK_EQ_INT(ws_parse(&d, f, n, &r), n);
    CHECK_EQ_INT(r.kind, WS_FRAME);
    n = masked(f, 0x82, "cd", 2);
    ws_parse(&d, f, n, &r);
    CHECK_EQ_INT(r.kind, WS_FAIL);
    CHECK_EQ_INT(r.close_code, 1002);
    ws_decoder_free(&d);
}

static void test_close_codes(void)
{
    static const struct { unsigned code; bool ok; } cases[] = {
        { 0, false }, { 999, false }, { 1000, true }, { 1001, true }, { 1002, true }, { 1003, true },
        { 1004, false }, { 1005, false }, { 1006, false }, { 1007, true }, { 1008, true },
        { 1009, true }, { 1010, true }, { 1011, true }, { 1012, true }, { 1013, true },
        { 1014, true }, { 1015, false }, { 1016, false }, { 2000, false }, { 2999, false },
        { 3000, true }, { 4000, true }, { 4999, true }, { 5000, false }, { 65535, false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t p[4] = { (uint8_t)(cases[i].code >> 8), (uint8_t)cases[i].code, 'o', 'k' };
        uint8_t f[16];
        size_t n = masked(f, 0x88, p, 4);
        ws_result r = decode_one(f, n, 1024);
        if (cases[i].ok) {
            CHECK_EQ_INT(r.kind, WS_CLOSE);
            CHECK_EQ_INT(r.close_code, cases[i].code);
            CHECK_EQ_MEM(r.data, r.len, "ok", 2);
        } else {
            CHECK_EQ_INT(r.kind, WS_FAIL);
            CHECK_EQ_INT(r.close_code, 1002);
        }
    }
    uint8_t f[8];
    size_t n = masked(f, 0x88, "", 0);
    ws_result r = decode_one(f, n, 1024);
    CHECK_EQ_INT(r.kind, WS_CLOSE);
    CHECK_EQ_INT(r.close_code, WS_CLOSE_NO_STATUS);
    CHECK_EQ_INT(r.len, 0);
}

/* Unmasking also tells ASCII text from the rest, so one bad byte has to be caught wherever it
 * falls: in a vector step, in the byte tail, at either end; a well-formed two-byte character in
 * the same places is accepted with its bytes intact. */
static void test_utf8_in_long_text(void)
{
    static const size_t at[] = { 0, 7, 15, 16, 17, 63, 64, 97, 98 };
    uint8_t text[100], f[128];
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        ws_decoder d;
        ws_result r;
        size_t n;
        memset(text, 'a', sizeof text);
        text[at[i]] = 0xff;
        n = masked(f, 0x81, text, sizeof text);
        ws_decoder_init(&d, 1024);
        ws_parse(&d, f, n, &r);
        CHECK_EQ_INT(r.kind, WS_FAIL);
        CHECK_EQ_INT(r.close_code, 1007);
        ws_decoder_free(&d);

        memcpy(text + at[i], "\xc3\xa9", 2);
        n = masked(f, 0x81, text, sizeof text);
        ws_decoder_init(&d, 1024);
        CHECK_EQ_INT(ws_parse(&d, f, n, &r), n);
        CHECK_EQ_INT(r.kind, WS_MESSAGE);
        CHECK(r.len == sizeof text && memcmp(r.data, text, sizeof text) == 0);
        ws_decoder_free(&d);
    }
}

static void test_fail_is_sticky(void)
{
    uint8_t f[32];
    ws_decoder d;
    ws_result r;
    ws_decoder_init(&d, 1024);
    size_t n = masked(f, 0x81, "\xed\xa0\x80", 3);   /* a surrogate */
    ws_parse(&d, f, n, &r);
    CHECK_EQ_INT(r.kind, WS_FAIL);
    CHECK_EQ_INT(r.close_code, 1007);
    n = masked(f, 0x81, "fine", 4);
    CHECK_EQ_INT(ws_parse(&d, f, n, &r), 0);
    CHECK_EQ_INT(r.kind, WS_FAIL);
    CHECK_EQ_INT(r.close_code, 1007);
    ws_decoder_free(&d);
}

static void test_need_counts(void)
{
    static uint8_t payload[70000];
    uint8_t *f = malloc(70016);
    REQUIRE(f != NULL);
    ws_decoder d;
    ws_result r;
    ws_decoder_init(&d, 1 << 20);

    size_t n = masked(f, 0x82, payload, 5);           /* 2 + 4 + 5 */
    CHECK_EQ_INT(ws_parse(&d, f, 0, &r), 0); CHECK_EQ_INT(r.need, 2);
    CHECK_EQ_INT(ws_parse(&d, f, 1, &r), 0); CHECK_EQ_INT(r.need, 2);
    CHECK_EQ_INT(ws_parse(&d, f, 2, &r), 0); CHECK_EQ_INT(r.need, 11);   /* length known */
    CHECK_EQ_INT(ws_parse(&d, f, 6, &r), 0); CHECK_EQ_INT(r.need, 11);
    CHECK_EQ_INT(ws_parse(&d, f, n, &r), 11);

    n = masked(f, 0x82, payload, 300);                /* 2 + 2 + 4 + 300 */
    CHECK_EQ_INT(ws_parse(&d, f, 2, &r), 0); CHECK_EQ_INT(r.need, 8);
    CHECK_EQ_INT(ws_parse(&d, f, 3, &r), 0); CHECK_EQ_INT(r.need, 8);
    CHECK_EQ_INT(ws_parse(&d, f, 4, &r), 0); CHECK_EQ_INT(r.need, 308);
    CHECK_EQ_INT(ws_parse(&d, f, 8, &r), 0); CHECK_EQ_INT(r.need, 308);
    CHECK_EQ_INT(ws_parse(&d, f, n, &r), 308);

    n = masked(f, 0x82, payload, 70000);              /* 2 + 8 + 4 + 70000 */
    CHECK_EQ_INT(ws_parse(&d, f, 9, &r), 0); CHECK_EQ_INT(r.need, 14);
    CHECK_EQ_INT(ws_parse(&d, f, 10, &r), 0); CHECK_EQ_INT(r.need, 70014);
    CHECK_EQ_INT(ws_parse(&d, f, 14, &r), 0); CHECK_EQ_INT(r.need, 70014);
    CHECK_EQ_INT(ws_parse(&d, f, n - 1, &r), 0); CHECK_EQ_INT(r.need, 70014);
    CHECK_EQ_INT(ws_parse(&d, f, n, &r), 70014);
    CHECK_EQ_INT(r.len, 70000);
    ws_decoder_free(&d);
    free(f);
}

static void test_length_boundaries(void)
{
    static const size_t sizes[] = { 0, 1, 125, 126, 127, 65535, 65536, 65537 };
    static const size_t header[] = { 6, 6, 6, 8, 8, 8, 14, 14 };
    uint8_t *payload = malloc(65537), *f = malloc(65537 + 14);
    REQUIRE(payload && f);
    for (size_t i = 0; i < 65537; i++)
        payload[i] = (uint8_t)(i * 7 + 3);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        ws_decoder d;
        ws_result r;
        ws_decoder_init(&d, 65537);
        size_t n = masked(f, 0x82, payload, sizes[s]);
        CHECK_EQ_INT(n, header[s] + sizes[s]);
        CHECK_EQ_INT(ws_parse(&d, f, n, &r), n);
        CHECK_EQ_INT(r.kind, WS_MESSAGE);
        CHECK(r.binary);
        CHECK_EQ_MEM(r.data, r.len, payload, sizes[s]);
        ws_decoder_free(&d);
    }
    free(payload);
    free(f);
}

static void test_unmask_every_length_and_alignment(void)
{
    uint8_t payload[64], f[128];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(0xa5 ^ i);
    for (size_t off = 0; off < 8; off++) {
        for (size_t len = 0; len <= 40; len++) {
            ws_decoder d;
            ws_result r;
            ws_decoder_init(&d, 1024);
            size_t n = masked(f + off, 0x82, payload, len);
            CHECK_EQ_INT(ws_parse(&d, f + off, n, &r), n);
            CHECK_EQ_MEM(r.data, r.len, payload, len);
            ws_decoder_free(&d);
        }
    }
}

static void test_oversize_from_header_alone(void)
{
    uint8_t f[32];
    ws_decoder d;
    ws_result r;

    /* Only the header (with mask) of a 1001-byte frame arrives; the limit is 1000. */
    ws_decoder_init(&d, 1000);
    f[0] = 0x82; f[1] = 0x80 | 126; f[2] = 0x03; f[3] = 0xe9;
    memcpy(f + 4, mask_key, 4);
    ws_parse(&d, f, 8, &r);
    CHECK_EQ_INT(r.kind, WS_FAIL);
    CHECK_EQ_INT(r.close_code, 1009);
    ws_decoder_free(&d);

    /* Exactly the limit is fine: asks for the payload. */
    ws_decoder_init(&d, 1000);
    f[3] = 0xe8;
    CHECK_EQ_INT(ws_parse(&d, f, 8, &r), 0);
    CHECK_EQ_INT(r.kind, WS_NEED_MORE);
    CHECK_EQ_INT(r.need, 1008);
    ws_decoder_free(&d);

    /* A huge 64-bit length is refused as soon as the length bytes are in, without the mask. */
    ws_decoder_init(&d, 1 << 20);
    uint8_t huge[10] = { 0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0 };
    ws_parse(&d, huge, sizeof huge, &r);
    CHECK_EQ_INT(r.kind, WS_FAIL);
    CHECK_EQ_INT(r.close_code, 1009);
    ws_decoder_free(&d);

    /* Fragments: 600 gathered, then a header announcing 401 more with a limit of 1000. */
    static uint8_t big[600];
    uint8_t *g = malloc(700);
    REQUIRE(g != NULL);
    ws_decoder_init(&d, 1000);
    size_t n = masked(g, 0x02, big, 600);
    CHECK_EQ_INT(ws_parse(&d, g, n, &r), n);
    CHECK_EQ_INT(r.kind, WS_FRAME);
    g[0] = 0x80; g[1] = 0x80 | 126; g[2] = 0x01; g[3] = 0x91;   /* 401 */
    memcpy(g + 4, mask_key, 4);
    ws_parse(&d, g, 8, &r);
    CHECK_EQ_INT(r.kind, WS_FAIL);
    CHECK_EQ_INT(r.close_code, 1009);
    ws_decoder_free(&d);

    /* ...while 400 more fits exactly. */
    ws_decoder_init(&d, 1000);
    n = masked(g, 0x02, big, 600);
    ws_parse(&d, g, n, &r);
    n = masked(g, 0x80, big, 400);
    CHECK_EQ_INT(ws_parse(&d, g, n, &r), n);
    CHECK_EQ_INT(r.kind, WS_MESSAGE);
    CHECK_EQ_INT(r.len, 1000);
    ws_decoder_free(&d);
    free(g);
}

static void test_fragments_with_interleaved_control(void)
{
    uint8_t f[64];
    ws_decoder d;
    ws_result r;
    size_t n;
    ws_decoder_init(&d, 1024);

    n = masked(f, 0x01, "Hel", 3);
    CHECK_EQ_INT(ws_parse(&d, f, n, &r), n);
    CHECK_EQ_INT(r.kind, WS_FRAME);
    n = masked(f, 0x89, "p1", 2);
    CHECK_EQ_INT(ws_parse(&d, f, n, &r), n);
    CHECK_EQ_INT(r.kind, WS_PING);
    CHECK_EQ_MEM(r.data, r.len, "p1", 2);
    n = masked(f, 0x00, "lo, ", 4);
    CHECK_EQ_INT(ws_parse(&d, f, n, &r), n);
    CHECK_EQ_INT(r.kind, WS_FRAME);
    n = masked(f, 0x8a, "", 0);
    CHECK_EQ_INT(ws_parse(&d, f, n, &r), n);
    CHECK_EQ_INT(r.kind, WS_PONG);
    CHECK_EQ_INT(r.len, 0);
    n = masked(f, 0x80, "w\xc3\xb6rld", 6);
    CHECK_EQ_INT(ws_parse(&d, f, n, &r), n);
    CHECK_EQ_INT(r.kind, WS_MESSAGE);
    CHECK(!r.binary);
    CHECK_EQ_MEM(r.data, r.len, "Hello, w\xc3\xb6rld", 13);
    CHECK(r.data == d.frag);
    /* The gathered buffer is released on the next call, and a new message may start. */
    n = masked(f, 0x82, "\x00\x01", 2);
    CHECK_EQ_INT(ws_parse(&d, f, n, &r), n);
    CHECK(d.frag == NULL);
    CHECK_EQ_INT(r.kind, WS_MESSAGE);
    CHECK(r.binary);
    CHECK_EQ_MEM(r.data, r.len, "\x00\x01", 2);

    /* A fragmented binary message with empty fragments. */
    n = masked(f, 0x02, "", 0);
    CHECK_EQ_INT(ws_parse(&d, f, n, &r), n);
    CHECK_EQ_INT(r.kind, WS_FRAME);
    n = masked(f, 0x80, "", 0);
    CHECK_EQ_INT(ws_parse(&d, f, n, &r), n);
    CHECK_EQ_INT(r.kind, WS_MESSAGE);
    CHECK(r.binary);
    CHECK_EQ_INT(r.len, 0);

    /* A close between fragments is reported as such. */
    n = masked(f, 0x01, "a", 1);
    ws_parse(&d, f, n, &r);
    n = masked(f, 0x88, "\x03\xe8" "bye", 5);
    CHECK_EQ_INT(ws_parse(&d, f, n, &r), n);
    CHECK_EQ_INT(r.kind, WS_CLOSE);
    CHECK_EQ_INT(r.close_code, 1000);
    CHECK_EQ_MEM(r.data, r.len, "bye", 3);
    ws_decoder_free(&d);
    CHECK(d.frag == NULL);
}

static void test_utf8_across_fragments(void)
{
    uint8_t f[32];
    ws_decoder d;
    ws_result r;
    size_t n;

    /* U+1F600 split over three fragments is valid once gathered. */
    ws_decoder_init(&d, 1024);
    n = masked(f, 0x01, "\xf0\x9f", 2);
    ws_parse(&d, f, n, &r);
    CHECK_EQ_INT(r.kind, WS_FRAME);
    n = masked(f, 0x00, "\x98", 1);
    ws_parse(&d, f, n, &r);
    CHECK_EQ_INT(r.kind, WS_FRAME);
    n = masked(f, 0x80, "\x80!", 2);
    ws_parse(&d, f, n, &r);
    CHECK_EQ_INT(r.kind, WS_MESSAGE);
    CHECK_EQ_MEM(r.data, r.len, "\xf0\x9f\x98\x80!", 5);
    ws_decoder_free(&d);

    /* ...but a message that ends inside the character is refused with 1007. */
    ws_decoder_init(&d, 1024);
    n = masked(f, 0x01, "ok\xf0\x9f", 4);
    ws_parse(&d, f, n, &r);
    n = masked(f, 0x80, "\x98", 1);
    ws_parse(&d, f, n, &r);
    CHECK_EQ_INT(r.kind, WS_FAIL);
    CHECK_EQ_INT(r.close_code, 1007);
    ws_decoder_free(&d);

    /* Binary messages are not checked. */
    ws_decoder_init(&d, 1024);
    n = masked(f, 0x82, "\xff\xfe", 2);
    ws_parse(&d, f, n, &r);
    CHECK_EQ_INT(r.kind, WS_MESSAGE);
    ws_decoder_free(&d);
}

static void test_utf8_validator(void)
{
    static const struct { const char *s; size_t n; bool ok; } v[] = {
        { "", 0, true },
        { "plain ascii, longer than eight bytes", 36, true },
        { "\x7f", 1, true },
        { "\xc2\x80", 2, true },                 /* U+0080 */
        { "\xdf\xbf", 2, true },                 /* U+07FF */
        { "\xe0\xa0\x80", 3, true },             /* U+0800 */
        { "\xed\x9f\xbf", 3, true },             /* U+D7FF */
        { "\xee\x80\x80", 3, true },             /* U+E000 */
        { "\xef\xbf\xbf", 3, true },             /* U+FFFF */
        { "\xf0\x90\x80\x80", 4, true },         /* U+10000 */
        { "\xf4\x8f\xbf\xbf", 4, true },         /* U+10FFFF */
        { "abcdefg\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 18, true },
        { "\x80", 1, false },                    /* lone continuation */
        { "\xbf", 1, false },
        { "\xc0\x80", 2, false },                /* overlong NUL */
        { "\xc1\xbf", 2, false },                /* overlong */
        { "\xe0\x9f\xbf", 3, false },            /* overlong 3-byte */
        { "\xf0\x8f\xbf\xbf", 4, false },        /* overlong 4-byte */
        { "\xed\xa0\x80", 3, false },            /* U+D800 */
        { "\xed\xbf\xbf", 3, false },            /* U+DFFF */
        { "\xf4\x90\x80\x80", 4, false },        /* U+110000 */
        { "\xf5\x80\x80\x80", 4, false },
        { "\xff", 1, false },
        { "\xc2", 1, false },                    /* truncated at the end */
        { "\xe2\x82", 2, false },
        { "\xf0\x9f\x98", 3, false },
        { "abcdefgh\xf0\x9f\x98", 11, false },
        { "\xc2\x41", 2, false },                /* continuation missing */
        { "\xe2\x28\xa1", 3, false },
        { "\xf0\x9f\x28\x80", 4, false },
        { "\xf0\x9f\x98\x28", 4, false },
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        bool got = ws_utf8_valid((const uint8_t *)v[i].s, v[i].n);
        if (got != v[i].ok)
            printf("  case %zu: got %d\n", i, got);
        CHECK(got == v[i].ok);
    }
}

/* Decodes stream[0..n) feeding it `step` bytes at a time the way conn.c does (a growing buffer
 * whose consumed front is dropped), and writes a printable trace of the results. */
static void trace_stream(const uint8_t *stream, size_t n, size_t step, size_t max, char *trace,
                         size_t trace_cap)
{
    uint8_t *buf = malloc(n + 1);
    size_t have = 0, fed = 0, pos = 0;
    ws_decoder d;
    ws_decoder_init(&d, max);
    trace[0] = '\0';
    for (;;) {
        ws_result r;
        size_t used = ws_parse(&d, buf, have, &r);
        if (r.kind == WS_NEED_MORE) {
            if (r.need <= have) {
                pos += (size_t)snprintf(trace + pos, trace_cap - pos, "bad-need ");
                break;
            }
            if (fed == n)
                break;
            size_t take = n - fed < step ? n - fed : step;
            memcpy(buf + have, stream + fed, take);
            have += take;
            fed += take;
            continue;
        }
        pos += (size_t)snprintf(trace + pos, trace_cap - pos, "%d/%u/%zu:", r.kind, r.close_code, r.len);
        for (size_t i = 0; i < r.len && i < 8; i++)
            pos += (size_t)snprintf(trace + pos, trace_cap - pos, "%02x", r.data[i]);
        pos += (size_t)snprintf(trace + pos, trace_cap - pos, " ");
        if (r.kind == WS_FAIL)
            break;
        memmove(buf, buf + used, have - used);
        have -= used;
    }
    ws_decoder_free(&d);
    free(buf);
}

static void test_byte_at_a_time_matches_whole(void)
{
    static uint8_t big[70000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 31);
    size_t cap = 80000, n = 0;
    uint8_t *s = malloc(cap);
    REQUIRE(s != NULL);
    n += masked(s + n, 0x81, "hello", 5);
    n += masked(s + n, 0x89, "", 0);
    n += masked(s + n, 0x02, big, 126);
    n += masked(s + n, 0x8a, "pong", 4);
    n += masked(s + n, 0x00, big + 126, 65535 - 126);
    n += masked(s + n, 0x89, "p", 1);
    n += masked(s + n, 0x80, big, 2);
    n += masked(s + n, 0x82, big, 125);
    n += masked(s + n, 0x01, "\xe2\x82", 2);
    n += masked(s + n, 0x80, "\xac", 1);
    n += masked(s + n, 0x88, "\x03\xe9", 2);
    n += masked(s + n, 0x81, "\xc3\x28", 2);    /* then a failure */
    REQUIRE(n <= cap);

    char whole[2048], bytewise[2048], odd[2048];
    trace_stream(s, n, n, 1 << 20, whole, sizeof whole);
    trace_stream(s, n, 1, 1 << 20, bytewise, sizeof bytewise);
    trace_stream(s, n, 7, 1 << 20, odd, sizeof odd);
    CHECK(strstr(whole, "5/1007/") != NULL);   /* the trace did reach the final failure */
    CHECK(strstr(whole, "1/0/65537:") != NULL);   /* the fragmented 65537-byte message */
    CHECK_EQ_STR(bytewise, whole);
    CHECK_EQ_STR(odd, whole);

    /* With a limit of 65536 the fragmented message fails from a header, whatever the split. */
    trace_stream(s, n, n, 65536, whole, sizeof whole);
    trace_stream(s, n, 1, 65536, bytewise, sizeof bytewise);
    CHECK(strstr(whole, "5/1009/") != NULL);
    CHECK_EQ_STR(bytewise, whole);
    free(s);
}

/* ---------------- encoding ---------------- */

static void test_header_writer(void)
{
    uint8_t buf[32];
    uint8_t *h;
    CHECK_EQ_INT(ws_header_len(0), 2);
    CHECK_EQ_INT(ws_header_len(125), 2);
    CHECK_EQ_INT(ws_header_len(126), 4);
    CHECK_EQ_INT(ws_header_len(65535), 4);
    CHECK_EQ_INT(ws_header_len(65536), 10);

    h = ws_write_header_before(buf + 20, WS_OP_TEXT, 125);
    CHECK(h == buf + 18);
    CHECK_EQ_MEM(h, 2, "\x81\x7d", 2);
    h = ws_write_header_before(buf + 20, WS_OP_BINARY, 126);
    CHECK(h == buf + 16);
    CHECK_EQ_MEM(h, 4, "\x82\x7e\x00\x7e", 4);
    h = ws_write_header_before(buf + 20, WS_OP_TEXT, 65535);
    CHECK_EQ_MEM(h, 4, "\x81\x7e\xff\xff", 4);
    h = ws_write_header_before(buf + 20, WS_OP_PONG, 65536);
    CHECK(h == buf + 10);
    CHECK_EQ_MEM(h, 10, "\x8a\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
}

static void test_close_frame_writer(void)
{
    uint8_t out[2 + 2 + 123];
    size_t n = ws_close_frame(out, 1000, "bye");
    CHECK_EQ_MEM(out, n, "\x88\x05\x03\xe8" "bye", 7);
    n = ws_close_frame(out, 1009, NULL);
    CHECK_EQ_MEM(out, n, "\x88\x02\x03\xf1", 4);
    n = ws_close_frame(out, WS_CLOSE_NO_STATUS, "ignored");
    CHECK_EQ_MEM(out, n, "\x88\x00", 2);

    /* 122 ASCII bytes then a 2-byte character: the character would straddle byte 123. */
    char reason[200];
    memset(reason, 'x', 122);
    memcpy(reason + 122, "\xc3\xa9tail", 7);
    n = ws_close_frame(out, 1008, reason);
    CHECK_EQ_INT(n, 4 + 122);
    CHECK_EQ_INT(out[1], 2 + 122);
    CHECK(ws_utf8_valid(out + 4, n - 4));
    memset(reason, 'y', 199);
    reason[199] = '\0';
    n = ws_close_frame(out, 1008, reason);
    CHECK_EQ_INT(n, 4 + 123);
    CHECK_EQ_INT(out[1], 125);
}

/* The probe's side: a client frame decodes on the server side to the same message; a server's
 * unmasked frames decode in from_server mode, and a masked one is the violation there. */
static void test_client_frames_and_server_decoding(void)
{
    uint8_t frame[64], key[4] = {0x12, 0x34, 0x56, 0x78};
    ws_decoder d;
    ws_result r;
    size_t n = ws_client_frame(frame, sizeof frame, WS_OP_TEXT, "{\"a\":1}", 7, key);
    REQUIRE(n == 2 + 4 + 7);
    CHECK(frame[1] == (0x80 | 7));
    CHECK_EQ_INT(ws_client_frame(frame, 10, WS_OP_TEXT, "{\"a\":1}", 7, key), 0);
    n = ws_client_frame(frame, sizeof frame, WS_OP_TEXT, "{\"a\":1}", 7, key);
    ws_decoder_init(&d, 1024);
    CHECK_EQ_INT(ws_parse(&d, frame, n, &r), n);
    CHECK_EQ_INT(r.kind, WS_MESSAGE);
    CHECK_EQ_MEM(r.data, r.len, "{\"a\":1}", 7);
    ws_decoder_free(&d);

    uint8_t server[] = {0x81, 0x02, 'h', 'i', 0x89, 0x00};
    ws_decoder_init(&d, 1024);
    d.from_server = true;
    CHECK_EQ_INT(ws_parse(&d, server, sizeof server, &r), 4);
    CHECK_EQ_INT(r.kind, WS_MESSAGE);
    CHECK_EQ_MEM(r.data, r.len, "hi", 2);
    CHECK_EQ_INT(ws_parse(&d, server + 4, 2, &r), 2);
    CHECK_EQ_INT(r.kind, WS_PING);
    n = ws_client_frame(frame, sizeof frame, WS_OP_TEXT, "x", 1, key);
    ws_parse(&d, frame, n, &r);
    CHECK_EQ_INT(r.kind, WS_FAIL);
    CHECK_EQ_STR(r.reason, "server frame masked");
    ws_decoder_free(&d);
}

int main(void)
{
    RUN(test_client_frames_and_server_decoding);
    RUN(test_accept_key_rfc_example);
    RUN(test_upgrade_response_bytes);
    RUN(test_upgrade_accepts_variants);
    RUN(test_upgrade_refusals);
    RUN(test_rfc_masked_hello);
    RUN(test_frame_refusals);
    RUN(test_close_codes);
    RUN(test_utf8_in_long_text);
    RUN(test_fail_is_sticky);
    RUN(test_need_counts);
    RUN(test_length_boundaries);
    RUN(test_unmask_every_length_and_alignment);
    RUN(test_oversize_from_header_alone);
    RUN(test_fragments_with_interleaved_control);
    RUN(test_utf8_across_fragments);
    RUN(test_utf8_validator);
    RUN(test_byte_at_a_time_matches_whole);
    RUN(test_header_writer);
    RUN(test_close_frame_writer);
    return test_finish();
}
