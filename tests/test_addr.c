/* Unit tests for addr.c: Rust-compatible SocketAddr parsing and Display, RFC 5952 output, the
 * global-address table, SPEC §2.9 dialable resolution and the struct sockaddr conversions. */
#include "addr.h"
#include "compat/compat.h"
#include "test.h"

#include <string.h>

static bool parse(const char *s, addr_t *a) { return addr_parse(s, strlen(s), a); }

static addr_t must(const char *s)
{
    addr_t a;
    memset(&a, 0, sizeof a);
    if (!parse(s, &a)) {
        printf("  could not parse fixture \"%s\"\n", s);
        test_cur_failed = 1;
    }
    return a;
}

/* Parses `in` and checks its canonical text is `want`. */
static void check_canonical(const char *in, const char *want, int line)
{
    addr_t a;
    char out[ADDR_STRLEN];
    if (!parse(in, &a)) {
        printf("  line %d: \"%s\" did not parse\n", line, in);
        test_cur_failed = 1;
        return;
    }
    size_t n = addr_format(&a, out);
    if (strcmp(out, want) != 0 || n != strlen(want)) {
        printf("  line %d: \"%s\" formatted as \"%s\" (len %zu), expected \"%s\"\n", line, in, out, n,
               want);
        test_cur_failed = 1;
    }
}
#define CANON(in, want) check_canonical(in, want, __LINE__)

static void check_rejected(const char *in, int line)
{
    addr_t a;
    if (parse(in, &a)) {
        char out[ADDR_STRLEN];
        addr_format(&a, out);
        printf("  line %d: \"%s\" was accepted as %s\n", line, in, out);
        test_cur_failed = 1;
    }
}
#define REJECT(in) check_rejected(in, __LINE__)

static void test_ipv4_parse(void)
{
    addr_t a;
    REQUIRE(parse("1.2.3.4:9444", &a));
    CHECK_EQ_INT(a.family, 4);
    CHECK(a.ip[0] == 1 && a.ip[1] == 2 && a.ip[2] == 3 && a.ip[3] == 4);
    CHECK_EQ_INT(a.port, 9444);
    CHECK_EQ_INT(a.scope_id, 0);
    CANON("0.0.0.0:0", "0.0.0.0:0");
    CANON("255.255.255.255:65535", "255.255.255.255:65535");
    CANON("10.0.0.1:1", "10.0.0.1:1");
    /* The port takes leading zeros (Rust reads it without the octal guard). */
    CANON("1.2.3.4:0080", "1.2.3.4:80");
    CANON("1.2.3.4:000000000000000065535", "1.2.3.4:65535");
}

static void test_ipv4_rejects(void)
{
    REJECT("");
    REJECT("1.2.3.4");
    REJECT("1.2.3.4:");
    REJECT("01.2.3.4:1");
    REJECT("1.2.3.00:1");
    REJECT("1.2.3.004:1");
    REJECT("1.2.3.4:65536");
    REJECT("1.2.3.4:99999999999999999999");
    REJECT("1.2.3.4:-1");
    REJECT("1.2.3.4:+1");
    REJECT("256.1.1.1:1");
    REJECT("1.2.3:1");
    REJECT("1.2.3.4.5:1");
    REJECT("1..3.4:1");
    REJECT(" 1.2.3.4:1");
    REJECT("1.2.3.4:1 ");
    REJECT("1.2.3.4: 1");
    REJECT("1.2.3.4:1x");
    REJECT("1.2.3.4:0x10");
    REJECT("a.b.c.d:1");
    REJECT("localhost:80");
    REJECT("1.2.3.4::1");
    REJECT("[1.2.3.4]:1");
    /* An embedded NUL ends nothing: it is just a bad byte. */
    addr_t a;
    CHECK(!addr_parse("1.2.3.4:1\0", 10, &a));
    /* n bounds the input even without a terminator. */
    CHECK(addr_parse("1.2.3.4:12345", 11, &a) && a.port == 123);
}

static void test_ipv6_parse(void)
{
    addr_t a;
    REQUIRE(parse("[2001:db8::1]:9444", &a));
    CHECK_EQ_INT(a.family, 6);
    CHECK(a.ip[0] == 0x20 && a.ip[1] == 0x01 && a.ip[2] == 0x0d && a.ip[3] == 0xb8);
    CHECK(a.ip[15] == 1);
    CHECK_EQ_INT(a.port, 9444);
    CANON("[::]:9450", "[::]:9450");
    CANON("[::1]:80", "[::1]:80");
    CANON("[1::]:80", "[1::]:80");
    CANON("[1:2:3:4:5:6:7::]:1", "[1:2:3:4:5:6:7:0]:1");
    CANON("[::2:3:4:5:6:7:8]:1", "[0:2:3:4:5:6:7:8]:1");
    CANON("[1:2:3:4:5:6:7:8]:1", "[1:2:3:4:5:6:7:8]:1");
    CANON("[0001:0db8:0000:0000:0000:0000:0000:00FF]:1", "[1:db8::ff]:1");
    CANON("[ABCD:EF01::]:1", "[abcd:ef01::]:1");
    CANON("[fe80::1%3]:9444", "[fe80::1%3]:9444");
    CANON("[fe80::1%0]:9444", "[fe80::1]:9444");
    CANON("[fe80::1%004294967295]:1", "[fe80::1%4294967295]:1");
    /* Embedded IPv4 in the last 32 bits. */
    CANON("[::ffff:1.2.3.4]:5", "[::ffff:1.2.3.4]:5");
    CANON("[::FFFF:10.0.0.1]:5", "[::ffff:10.0.0.1]:5");
    CANON("[0:0:0:0:0:ffff:0102:0304]:5", "[::ffff:1.2.3.4]:5");
    CANON("[1:2:3:4:5:6:1.2.3.4]:5", "[1:2:3:4:5:6:102:304]:5");
    CANON("[1:2:3:4:5::1.2.3.4]:5", "[1:2:3:4:5:0:102:304]:5");
    CANON("[64:ff9b::192.0.2.33]:5", "[64:ff9b::c000:221]:5");
    /* IPv4-compatible addresses print as plain hex groups in current Rust. */
    CANON("[::1.2.3.4]:5", "[::102:304]:5");
    CANON("[::0.0.0.1]:5", "[::1]:5");
    CANON("[::ffff:0.0.0.0]:5", "[::ffff:0.0.0.0]:5");
}

static void test_ipv6_rejects(void)
{
    REJECT("[::1]");
    REJECT("[::1]:");
    REJECT("::1:80");
    REJECT("::1");
    REJECT("[::1:80");
    REJECT("::1]:80");
    REJECT("[1::2::3]:1");
    REJECT("[:::]:1");
    REJECT("[:1::]:1");
    REJECT("[1:]:1");
    REJECT("[::1:]:1");
    REJECT("[1:2:3:4:5:6:7:8:9]:1");
    REJECT("[1:2:3:4:5:6:7:8::]:1");
    REJECT("[::1:2:3:4:5:6:7:8]:1");
    REJECT("[1::2:3:4:5:6:7:8]:1");
    REJECT("[12345::]:1");
    REJECT("[g::]:1");
    REJECT("[::1%]:1");
    REJECT("[::1%x]:1");
    REJECT("[::1%-1]:1");
    REJECT("[::1%4294967296]:1");
    REJECT("[::1%eth0]:1");
    REJECT("[::1]:65536");
    REJECT("[::1] :1");
    REJECT("[ ::1]:1");
    REJECT("[::ffff:1.2.3]:1");
    REJECT("[::ffff:01.2.3.4]:1");
    REJECT("[::ffff:1.2.3.256]:1");
    REJECT("[1.2.3.4::]:1");
    REJECT("[1.2.3.4::1]:1");
    REJECT("[1:2:3:4:5:6:7:1.2.3.4]:1");
    REJECT("[1:2:3:4:5:6::1.2.3.4]:1");
    REJECT("[::1.2.3.4:5]:1");
}

static void test_rfc5952(void)
{
    /* Longest run wins; the first run wins a tie; a single zero group stays. */
    CANON("[1:0:0:2:0:0:0:3]:1", "[1:0:0:2::3]:1");
    CANON("[1:0:0:0:2:0:0:3]:1", "[1::2:0:0:3]:1");
    CANON("[1:0:0:2:0:0:3:4]:1", "[1::2:0:0:3:4]:1");
    CANON("[1:0:2:3:4:5:6:7]:1", "[1:0:2:3:4:5:6:7]:1");
    CANON("[2001:db8:0:1:1:1:1:1]:1", "[2001:db8:0:1:1:1:1:1]:1");
    CANON("[2001:0:0:1:0:0:0:1]:1", "[2001:0:0:1::1]:1");
    CANON("[0:0:1:0:0:0:0:0]:1", "[0:0:1::]:1");
    CANON("[0:0:0:0:0:0:0:0]:1", "[::]:1");
    CANON("[0:0:0:0:0:0:0:1]:1", "[::1]:1");
    CANON("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535",
          "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535");
}

static void test_format_ip_only(void)
{
    char out[ADDR_STRLEN];
    addr_t a = must("[2001:db8::5%7]:99");
    CHECK_EQ_INT(addr_format_ip(&a, out), strlen("2001:db8::5"));
    CHECK_EQ_STR(out, "2001:db8::5");
    a = must("203.0.113.9:1");
    CHECK_EQ_INT(addr_format_ip(&a, out), strlen("203.0.113.9"));
    CHECK_EQ_STR(out, "203.0.113.9");
    a = must("[::ffff:192.0.2.1]:1");
    addr_format_ip(&a, out);
    CHECK_EQ_STR(out, "::ffff:192.0.2.1");
}

static void test_round_trip_is_stable(void)
{
    static const char *const samples[] = {
        "1.2.3.4:9444", "[2001:db8::1]:9444", "[fe80::1%3]:9444", "[::ffff:8.8.8.8]:53",
        "[::]:0", "[1:0:0:2::3]:65535", "[::102:304]:1", "[a:b:c:d:e:f:1:2]:3",
    };
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++)
        CANON(samples[i], samples[i]);
}

static void test_unmap(void)
{
    addr_t a = must("[::ffff:192.168.1.7]:4000");
    addr_unmap(&a);
    char out[ADDR_STRLEN];
    addr_format(&a, out);
    CHECK_EQ_STR(out, "192.168.1.7:4000");
    CHECK_EQ_INT(a.family, 4);
    /* Other addresses are untouched, including the IPv4-compatible form. */
    a = must("[::1.2.3.4]:1");
    addr_unmap(&a);
    CHECK_EQ_INT(a.family, 6);
    a = must("[::fffe:1.2.3.4]:1");
    addr_unmap(&a);
    CHECK_EQ_INT(a.family, 6);
    a = must("9.9.9.9:1");
    addr_unmap(&a);
    addr_format(&a, out);
    CHECK_EQ_STR(out, "9.9.9.9:1");
}

static void check_global(const char *s, bool want, int line)
{
    addr_t a;
    if (!parse(s, &a)) {
        printf("  line %d: fixture \"%s\" did not parse\n", line, s);
        test_cur_failed = 1;
        return;
    }
    if (addr_is_global(&a) != want) {
        printf("  line %d: addr_is_global(%s) should be %s\n", line, s, want ? "true" : "false");
        test_cur_failed = 1;
    }
}
#define GLOBAL(s) check_global(s, true, __LINE__)
#define LOCAL(s) check_global(s, false, __LINE__)

static void test_is_global_ipv4(void)
{
    GLOBAL("8.8.8.8:1");
    GLOBAL("1.1.1.1:1");
    GLOBAL("9.255.255.255:1");
    GLOBAL("11.0.0.0:1");
    LOCAL("0.0.0.0:1");
    LOCAL("0.1.2.3:1");
    LOCAL("127.0.0.1:1");
    LOCAL("127.255.255.254:1");
    LOCAL("10.0.0.0:1");
    LOCAL("10.255.255.255:1");
    GLOBAL("172.15.255.255:1");
    LOCAL("172.16.0.0:1");
    LOCAL("172.31.255.255:1");
    GLOBAL("172.32.0.0:1");
    LOCAL("192.168.0.1:1");
    GLOBAL("192.169.0.1:1");
    LOCAL("169.254.1.1:1");
    GLOBAL("169.255.1.1:1");
    GLOBAL("100.63.255.255:1");
    LOCAL("100.64.0.0:1");
    LOCAL("100.127.255.255:1");
    GLOBAL("100.128.0.0:1");
    LOCAL("192.0.2.1:1");
    GLOBAL("192.0.3.1:1");
    LOCAL("198.51.100.7:1");
    LOCAL("203.0.113.7:1");
    GLOBAL("203.0.114.7:1");
    LOCAL("198.18.0.1:1");
    LOCAL("198.19.255.255:1");
    GLOBAL("198.20.0.0:1");
    LOCAL("224.0.0.1:1");
    LOCAL("239.255.255.255:1");
    LOCAL("240.0.0.1:1");
    LOCAL("255.255.255.255:1");
    GLOBAL("223.255.255.255:1");
}

static void test_is_global_ipv6(void)
{
    GLOBAL("[2606:4700::1111]:1");
    GLOBAL("[2a00:1450::1]:1");
    LOCAL("[::]:1");
    LOCAL("[::1]:1");
    LOCAL("[fc00::1]:1");
    LOCAL("[fdff:ffff::1]:1");
    GLOBAL("[fe00::1]:1");
    LOCAL("[fe80::1]:1");
    LOCAL("[febf::1]:1");
    GLOBAL("[fec0::1]:1");
    LOCAL("[2001:db8::1]:1");
    LOCAL("[2001:db8:ffff::1]:1");
    GLOBAL("[2001:db9::1]:1");
    LOCAL("[ff02::1]:1");
    LOCAL("[ff0e::1]:1");
    /* Mapped forms follow their IPv4 address. */
    LOCAL("[::ffff:10.1.2.3]:1");
    LOCAL("[::ffff:127.0.0.1]:1");
    LOCAL("[::ffff:100.64.1.1]:1");
    LOCAL("[::ffff:203.0.113.1]:1");
    LOCAL("[::ffff:255.255.255.255]:1");
    GLOBAL("[::ffff:8.8.8.8]:1");
}

static void test_is_unspecified(void)
{
    addr_t a = must("[::]:9450");
    CHECK(addr_is_unspecified(&a));
    a = must("[::1]:9450");
    CHECK(!addr_is_unspecified(&a));
    a = must("0.0.0.0:9450");
    CHECK(!addr_is_unspecified(&a));
    a = must("[::%2]:9450");
    CHECK(addr_is_unspecified(&a));
}

/* Runs a resolution and compares the formatted result list with `want` (space-separated). */
static void check_resolve(const char *observed, const char *const *adv, size_t n_adv,
                          const char *want, int line)
{
    addr_t obs = must(observed), in[32], out[ADDR_MAX_DIALABLE];
    char got[ADDR_MAX_DIALABLE * ADDR_STRLEN] = "";
    for (size_t i = 0; i < n_adv; i++)
        in[i] = must(adv[i]);
    size_t n = addr_resolve_dialable(&obs, in, n_adv, out);
    for (size_t i = 0; i < n; i++) {
        char one[ADDR_STRLEN];
        addr_format(&out[i], one);
        if (i > 0)
            strcat(got, " ");
        strcat(got, one);
    }
    if (strcmp(got, want) != 0) {
        printf("  line %d: resolved \"%s\", expected \"%s\"\n", line, got, want);
        test_cur_failed = 1;
    }
}
#define RESOLVE(obs, want, ...) do { static const char *const adv_[] = {__VA_ARGS__}; \
    check_resolve(obs, adv_, sizeof adv_ / sizeof adv_[0], want, __LINE__); } while (0)

static void test_resolve_substitutes_local_hosts(void)
{
    RESOLVE("203.0.113.7:50000", "203.0.113.7:9445", "192.168.1.5:9445");
    RESOLVE("203.0.113.7:50000", "203.0.113.7:9445", "[::]:9445");
    RESOLVE("203.0.113.7:50000", "203.0.113.7:9445", "127.0.0.1:9445");
    RESOLVE("203.0.113.7:50000", "203.0.113.7:9445", "0.0.0.0:9445");
    RESOLVE("203.0.113.7:50000", "203.0.113.7:9445", "169.254.3.3:9445");
    RESOLVE("203.0.113.7:50000", "203.0.113.7:9445", "[::ffff:192.168.0.4]:9445");
    RESOLVE("[2001:db8::99]:1", "[2001:db8::99]:9445", "[fc00::1]:9445");
    RESOLVE("[2001:db8::99]:1", "[2001:db8::99]:9445", "[fe80::1%4]:9445");
    RESOLVE("[2001:db8::99]:1", "[2001:db8::99]:9445", "[::1]:9445");
}

static void test_resolve_public_hosts(void)
{
    /* Same IPv4 as the source: kept. Another public IPv4: replaced by the source. */
    RESOLVE("198.51.100.9:1", "198.51.100.9:9445", "198.51.100.9:9445");
    RESOLVE("198.51.100.9:1", "198.51.100.9:9445", "203.0.113.200:9445");
    RESOLVE("8.8.4.4:1", "8.8.4.4:9445", "8.8.8.8:9445");
    /* A mapped form of the source's own IPv4 is kept verbatim. */
    RESOLVE("8.8.4.4:1", "[::ffff:8.8.4.4]:9445", "[::ffff:8.8.4.4]:9445");
    /* IPv6 in the source's /64: kept; in another /64: replaced. */
    RESOLVE("[2001:db8:0:1::1]:1", "[2001:db8:0:1::abcd]:9445", "[2001:db8:0:1::abcd]:9445");
    RESOLVE("[2001:db8:0:1::1]:1", "[2001:db8:0:1::1]:9445", "[2001:db8:0:2::abcd]:9445");
    /* Cross-family public hosts cannot be verified and are replaced. */
    RESOLVE("8.8.4.4:1", "8.8.4.4:9445", "[2606:4700::1]:9445");
    RESOLVE("[2606:4700::1]:1", "[2606:4700::1]:9445", "8.8.4.4:9445");
}

static void test_resolve_order_dedupe_cap(void)
{
    RESOLVE("203.0.113.7:1", "203.0.113.7:9445", "192.168.1.5:9445", "10.0.0.9:9445");
    RESOLVE("[2001:db8:0:1::1]:1", "[2001:db8:0:1::a]:9445 [2001:db8:0:1::b]:9446",
            "[2001:db8:0:1::a]:9445", "[2001:db8:0:1::b]:9446");
    /* IPv6 first, each family in its own order (a mixed set from a mapped public candidate). */
    RESOLVE("8.8.4.4:1", "[::ffff:8.8.4.4]:2 8.8.4.4:1 8.8.4.4:3",
            "10.0.0.1:1", "[::ffff:8.8.4.4]:2", "10.0.0.2:3");
    /* Cap at 8 distinct, counted before the IPv6-first reordering. */
    RESOLVE("198.51.100.9:1",
            "198.51.100.9:9000 198.51.100.9:9001 198.51.100.9:9002 198.51.100.9:9003 "
            "198.51.100.9:9004 198.51.100.9:9005 198.51.100.9:9006 198.51.100.9:9007",
            "198.51.100.9:9000", "198.51.100.9:9001", "198.51.100.9:9000", "198.51.100.9:9002",
            "198.51.100.9:9003", "198.51.100.9:9004", "198.51.100.9:9005", "198.51.100.9:9006",
            "198.51.100.9:9007", "198.51.100.9:9008", "198.51.100.9:9009",
            "[::ffff:198.51.100.9]:1");
    addr_t obs = must("1.2.3.4:1"), out[ADDR_MAX_DIALABLE];
    CHECK_EQ_INT(addr_resolve_dialable(&obs, NULL, 0, out), 0);
}

static void test_sockaddr_round_trip(void)
{
    struct sockaddr_storage ss;
    addr_t a = must("[2001:db8::7%5]:9444"), b;
    size_t n = addr_to_sockaddr(&a, &ss, sizeof ss);
    REQUIRE(n == sizeof(struct sockaddr_in6));
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
    CHECK_EQ_INT(in6->sin6_family, AF_INET6);
    CHECK_EQ_INT(ntohs(in6->sin6_port), 9444);
    CHECK_EQ_INT(in6->sin6_scope_id, 5);
    REQUIRE(addr_from_sockaddr(&ss, n, &b));
    CHECK(memcmp(&a, &b, sizeof a) == 0);

    a = must("192.0.2.44:3478");
    n = addr_to_sockaddr(&a, &ss, sizeof ss);
    REQUIRE(n == sizeof(struct sockaddr_in));
    const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
    CHECK_EQ_INT(in->sin_family, AF_INET);
    CHECK_EQ_INT(ntohs(in->sin_port), 3478);
    CHECK(memcmp(&in->sin_addr, a.ip, 4) == 0);
    REQUIRE(addr_from_sockaddr(&ss, n, &b));
    CHECK(memcmp(&a, &b, sizeof a) == 0);

    /* Too small a buffer or an unknown family is refused. */
    CHECK_EQ_INT(addr_to_sockaddr(&a, &ss, sizeof(struct sockaddr_in) - 1), 0);
    a = must("[::1]:1");
    CHECK_EQ_INT(addr_to_sockaddr(&a, &ss, sizeof(struct sockaddr_in)), 0);
    CHECK(!addr_from_sockaddr(&ss, 2, &b));
    memset(&ss, 0, sizeof ss);
    ss.ss_family = AF_UNSPEC;
    CHECK(!addr_from_sockaddr(&ss, sizeof ss, &b));
    /* A sockaddr_in6 claimed with a sockaddr_in length is refused. */
    a = must("[::1]:1");
    addr_to_sockaddr(&a, &ss, sizeof ss);
    CHECK(!addr_from_sockaddr(&ss, sizeof(struct sockaddr_in), &b));
}

int main(void)
{
    RUN(test_ipv4_parse);
    RUN(test_ipv4_rejects);
    RUN(test_ipv6_parse);
    RUN(test_ipv6_rejects);
    RUN(test_rfc5952);
    RUN(test_format_ip_only);
    RUN(test_round_trip_is_stable);
    RUN(test_unmap);
    RUN(test_is_global_ipv4);
    RUN(test_is_global_ipv6);
    RUN(test_is_unspecified);
    RUN(test_resolve_substitutes_local_hosts);
    RUN(test_resolve_public_hosts);
    RUN(test_resolve_order_dedupe_cap);
    RUN(test_sockaddr_round_trip);
    return test_finish();
}
