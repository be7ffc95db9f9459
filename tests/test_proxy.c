/* Unit tests for proxy.c (PROXY protocol v1 and v2 prefaces: every family and command, truncated,
 * oversized and malformed headers, bytes that are not a preface) and cidr.c (parsing, host bits,
 * matching IPv4, IPv6 and IPv4-mapped addresses, lists and their errors). */
#include "cidr.h"
#include "proxy.h"
#include "test.h"

#include <stdlib.h>

static const unsigned char SIG[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* Builds a v2 header: signature, ver_cmd, fam, length, then body. Returns its size. */
static size_t v2(unsigned char *out, unsigned ver_cmd, unsigned fam, const unsigned char *body,
                 size_t body_len)
{
    memcpy(out, SIG, 12);
    out[12] = (unsigned char)ver_cmd;
    out[13] = (unsigned char)fam;
    out[14] = (unsigned char)(body_len >> 8);
    out[15] = (unsigned char)body_len;
    if (body_len)
        memcpy(out + 16, body, body_len);
    return 16 + body_len;
}

static addr_t ip(const char *text, uint16_t port)
{
    addr_t a;
    memset(&a, 0, sizeof a);
    CHECK(addr_parse_ip(text, strlen(text), &a));
    a.port = port;
    return a;
}

static bool same(const addr_t *a, const addr_t *b)
{
    return a->family == b->family && memcmp(a->ip, b->ip, a->family == 4 ? 4 : 16) == 0 &&
           a->port == b->port;
}

static void test_v2_tcp4_and_tcp6(void)
{
    unsigned char buf[256], body[64];
    proxy_result r;
    /* TCP4 192.0.2.7:40000 -> 198.51.100.1:9450, followed by an HTTP request */
    unsigned char b4[12] = {192, 0, 2, 7, 198, 51, 100, 1, 0x9c, 0x40, 0x24, 0xea};
    size_t n = v2(buf, 0x21, 0x11, b4, sizeof b4);
    memcpy(buf + n, "GET / HTTP/1.1\r\n", 16);
    CHECK_EQ_INT(proxy_parse(buf, n + 16, &r), (long)n);
    CHECK(r.has_source && r.version == 2);
    addr_t want = ip("192.0.2.7", 40000), dest = ip("198.51.100.1", 9450);
    CHECK(same(&r.source, &want) && same(&r.dest, &dest));
    /* TLVs after the addresses are skipped: the length covers them */
    memcpy(body, b4, 12);
    memcpy(body + 12, "\x04\x00\x03" "abc", 6);
    n = v2(buf, 0x21, 0x11, body, 18);
    CHECK_EQ_INT(proxy_parse(buf, n, &r), (long)n);
    CHECK(r.has_source && same(&r.source, &want));
    /* TCP6 2001:db8::5 port 1 */
    memset(body, 0, 36);
    body[0] = 0x20; body[1] = 0x01; body[2] = 0x0d; body[3] = 0xb8; body[15] = 5;
    body[16] = 0x20; body[17] = 0x01; body[18] = 0x0d; body[19] = 0xb8; body[31] = 1;
    body[32] = 0; body[33] = 1; body[34] = 0x24; body[35] = 0xea;
    n = v2(buf, 0x21, 0x21, body, 36);
    CHECK_EQ_INT(proxy_parse(buf, n, &r), (long)n);
    addr_t want6 = ip("2001:db8::5", 1);
    CHECK(r.has_source && same(&r.source, &want6));
}

static void test_v2_kept_but_ignored(void)
{
    unsigned char buf[300], body[216];
    proxy_result r;
    unsigned char b4[12] = {192, 0, 2, 7, 198, 51, 100, 1, 0, 1, 0, 2};
    struct { unsigned ver_cmd, fam; size_t body; const char *why; } cases[] = {
        {0x20, 0x11, 12, "LOCAL"},                 /* a balancer's own health check */
        {0x20, 0x00, 0, "LOCAL"},
        {0x21, 0x00, 0, "unsupported family"},     /* UNSPEC */
        {0x21, 0x12, 12, "unsupported family"},    /* UDP over IPv4 */
        {0x21, 0x31, 216, "unsupported family"},   /* AF_UNIX */
        {0x21, 0x11, 8, "address block too short"},
        {0x22, 0x11, 12, "unsupported command"},
        {0x11, 0x11, 12, "unsupported version"},
    };
    memset(body, 0, sizeof body);
    memcpy(body, b4, 12);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = v2(buf, cases[i].ver_cmd, cases[i].fam, body, cases[i].body);
        CHECK_EQ_INT(proxy_parse(buf, n, &r), (long)n);
        CHECK(!r.has_source);
        CHECK(r.ignored && strcmp(r.ignored, cases[i].why) == 0);
    }
}

static void test_v2_incomplete_and_oversized(void)
{
    unsigned char buf[PROXY_MAX_HEADER + 64];
    proxy_result r;
    unsigned char b4[12] = {10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2};
    size_t n = v2(buf, 0x21, 0x11, b4, 12);
    for (size_t k = 1; k < n; k++)
        CHECK_EQ_INT(proxy_parse(buf, k, &r), PROXY_NEED_MORE);
    CHECK_EQ_INT(proxy_parse(buf, 0, &r), PROXY_NEED_MORE);
    /* a declared length past the bound is refused as soon as the length is known */
    memset(buf, 0, sizeof buf);
    n = v2(buf, 0x21, 0x11, NULL, 0);
    buf[14] = (unsigned char)((PROXY_MAX_HEADER - 15) >> 8);
    buf[15] = (unsigned char)(PROXY_MAX_HEADER - 15);
    CHECK_EQ_INT(proxy_parse(buf, 16, &r), PROXY_INVALID);
    buf[14] = 0xff;
    buf[15] = 0xff;
    CHECK_EQ_INT(proxy_parse(buf, 16, &r), PROXY_INVALID);
    /* the largest accepted one */
    buf[14] = (unsigned char)((PROXY_MAX_HEADER - 16) >> 8);
    buf[15] = (unsigned char)(PROXY_MAX_HEADER - 16);
    CHECK_EQ_INT(proxy_parse(buf, PROXY_MAX_HEADER - 1, &r), PROXY_NEED_MORE);
    CHECK_EQ_INT(proxy_parse(buf, PROXY_MAX_HEADER, &r), PROXY_MAX_HEADER);
}

static long parse_text(const char *s, proxy_result *r)
{
    return proxy_parse((const unsigned char *)s, strlen(s), r);
}

static void test_v1(void)
{
    proxy_result r;
    const char *l4 = "PROXY TCP4 203.0.113.9 192.0.2.1 51000 9450\r\n";
    const char *l6 = "PROXY TCP6 2001:db8::9 2001:db8::1 51000 9450\r\nGET /";
    addr_t w4 = ip("203.0.113.9", 51000), w6 = ip("2001:db8::9", 51000);
    CHECK_EQ_INT(parse_text(l4, &r), (long)strlen(l4));
    CHECK(r.has_source && r.version == 1 && same(&r.source, &w4));
    CHECK_EQ_INT(parse_text(l6, &r), (long)strlen(l6) - 5);
    CHECK(r.has_source && same(&r.source, &w6));
    CHECK_EQ_INT(parse_text("PROXY UNKNOWN\r\n", &r), 15);
    CHECK(!r.has_source && strcmp(r.ignored, "UNKNOWN") == 0);
    CHECK_EQ_INT(parse_text("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", &r), 35);
    CHECK(!r.has_source);
    /* complete lines that declare nothing usable keep the socket address */
    static const char *const ignored[] = {
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",      /* extra field */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",          /* missing port */
        "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",       /* leading zero */
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",    /* port out of range */
        "PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",    /* family mismatch */
        "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n",
        "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",       /* double space */
        "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY \r\n",
    };
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++) {
        CHECK_EQ_INT(parse_text(ignored[i], &r), (long)strlen(ignored[i]));
        CHECK(!r.has_source);
        CHECK_EQ_INT(r.source.family, 0);
    }
    /* incomplete, and lines whose end cannot be found */
    for (size_t k = 1; k < strlen(l4); k++) {
        CHECK_EQ_INT(proxy_parse((const unsigned char *)l4, k, &r), PROXY_NEED_MORE);
    }
    CHECK_EQ_INT(parse_text("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", &r), PROXY_INVALID);
    char longline[200];
    memset(longline, 'x', sizeof longline);
    memcpy(longline, "PROXY ", 6);
    longline[199] = '\0';
    CHECK_EQ_INT(parse_text(longline, &r), PROXY_INVALID);
}

static void test_not_a_preface(void)
{
    proxy_result r;
    static const char *const others[] = {
        "GET / HTTP/1.1\r\n", "G", "\x16\x03\x01\x02\x00", "PROXZ", "proxy TCP4", "\r\n\r\nX",
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        CHECK_EQ_INT(parse_text(others[i], &r), PROXY_NONE);
    CHECK_EQ_INT(parse_text("PROX", &r), PROXY_NEED_MORE);
    CHECK_EQ_INT(parse_text("\r\n\r\n", &r), PROXY_NEED_MORE);
}

/* ---- cidr ---- */

static bool in(const char *net, const char *addr)
{
    cidr c;
    addr_t a = ip(addr, 0);
    if (!cidr_parse(net, strlen(net), &c)) {
        printf("  cannot parse %s\n", net);
        return false;
    }
    return cidr_contains(&c, &a);
}

static void test_cidr_matching(void)
{
    CHECK(in("10.0.0.0/8", "10.255.1.2"));
    CHECK(!in("10.0.0.0/8", "11.0.0.1"));
    CHECK(in("10.1.2.3/8", "10.9.9.9"));            /* host bits cleared */
    CHECK(in("192.168.1.0/23", "192.168.0.7"));
    CHECK(!in("192.168.1.0/23", "192.168.2.7"));
    CHECK(in("127.0.0.1", "127.0.0.1"));
    CHECK(!in("127.0.0.1", "127.0.0.2"));
    CHECK(in("0.0.0.0/0", "8.8.8.8"));
    CHECK(!in("0.0.0.0/0", "2001:db8::1"));
    CHECK(in("2001:db8::/32", "2001:db8:ffff::1"));
    CHECK(!in("2001:db8::/32", "2001:db9::1"));
    CHECK(in("::1", "::1"));
    CHECK(in("2001:db8::/127", "2001:db8::1"));
    CHECK(!in("2001:db8::/127", "2001:db8::2"));
    /* IPv4-mapped on either side */
    CHECK(in("10.0.0.0/8", "::ffff:10.1.1.1"));
    CHECK(in("::ffff:10.0.0.0/104", "10.1.1.1"));
    CHECK(in("::ffff:127.0.0.1", "127.0.0.1"));
    CHECK(!in("::ffff:10.0.0.0/104", "11.1.1.1"));
}

static void test_cidr_refusals(void)
{
    static const char *const bad[] = {
        "", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/08", "10.0.0.0/-1", "10.0.0/8",
        "host.example", "[::1]", "10.0.0.1:80", "10.0.0.0/8/8", "::ffff:0.0.0.0/95", "1.2.3.4 ",
    };
    cidr c;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (cidr_parse(bad[i], strlen(bad[i]), &c))
            printf("  accepted \"%s\"\n", bad[i]);
        CHECK(!cidr_parse(bad[i], strlen(bad[i]), &c));
    }
}

static void test_cidr_lists(void)
{
    cidr_list l;
    char err[200];
    addr_t a = ip("172.16.5.5", 0), b = ip("fd00::1", 0), c = ip("8.8.8.8", 0);
    CHECK(cidr_list_parse("", &l, err, sizeof err) && l.n == 0);
    CHECK(cidr_list_parse("   ", &l, err, sizeof err) && l.n == 0);
    CHECK(!cidr_list_contains(&l, &a));
    CHECK(cidr_list_parse("172.16.0.0/12, fd00::/8,127.0.0.1", &l, err, sizeof err));
    CHECK_EQ_INT(l.n, 3);
    CHECK(cidr_list_contains(&l, &a) && cidr_list_contains(&l, &b) && !cidr_list_contains(&l, &c));
    CHECK(!cidr_list_parse("10.0.0.0/8,,1.2.3.4", &l, err, sizeof err));
    CHECK(strstr(err, "empty") != NULL);
    CHECK(!cidr_list_parse("10.0.0.0/8,", &l, err, sizeof err));
    CHECK(!cidr_list_parse("10.0.0.0/8, nope", &l, err, sizeof err));
    CHECK(strstr(err, "'nope'") != NULL);
    char many[CIDR_LIST_MAX * 12 + 16] = "";
    for (int i = 0; i <= CIDR_LIST_MAX; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%s10.0.%d.1", i ? "," : "", i);
    CHECK(!cidr_list_parse(many, &l, err, sizeof err));
    CHECK(strstr(err, "more than") != NULL);
}

int main(void)
{
    RUN(test_v2_tcp4_and_tcp6);
    RUN(test_v2_kept_but_ignored);
    RUN(test_v2_incomplete_and_oversized);
    RUN(test_v1);
    RUN(test_not_a_preface);
    RUN(test_cidr_matching);
    RUN(test_cidr_refusals);
    RUN(test_cidr_lists);
    return test_finish();
}
