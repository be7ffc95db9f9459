/* STUN over real UDP on loopback, two ways:
 *   - in process: stund opened on a dual-stack [::] port and driven by this test, which controls
 *     the clock, so budgets and the per-pass limit are checked exactly;
 *   - the real ./dig-relay ($DIG_RELAY_BIN) started with --stun-listen [::]:PORT and its flags or
 *     environment, checked from distinct 127.x.y.z sources, and coturn's turnutils_stunclient
 *     learning its reflexive address from it (skipped when coturn is not installed). */
#include "stund.h"
#include "tests/harness.h"
#include "tests/test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------------- UDP helpers */

static uint16_t local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
}

/* ---------------------------------------------------------------- STUN bytes */

/* Checks a Binding Success Response to req and extracts XOR-MAPPED-ADDRESS as text
 * ("127.0.0.1" / "::1") and port. */
static bool mapped_from_response(const uint8_t *resp, size_t n, const uint8_t req[20], char *ip,
                                 size_t ip_cap, uint16_t *port, int *family)
{
    size_t pos = 20;
    if (n < 20 || resp[0] != 0x01 || resp[1] != 0x01 || memcmp(resp + 4, req + 4, 16) != 0 ||
        (size_t)(resp[2] << 8 | resp[3]) != n - 20)
        return false;
    while (pos + 4 <= n) {
        unsigned type = (unsigned)(resp[pos] << 8 | resp[pos + 1]);
        unsigned len = (unsigned)(resp[pos + 2] << 8 | resp[pos + 3]);
        const uint8_t *v = resp + pos + 4;
        if (pos + 4 + len > n)
            return false;
        if (type == 0x0020 && len >= 8) {
            uint8_t raw[16];
            unsigned ip_len = v[1] == 1 ? 4 : 16;
            if (len != 4 + ip_len)
                return false;
            for (unsigned i = 0; i < ip_len; i++)
                raw[i] = (uint8_t)(v[4 + i] ^ req[4 + i]);   /* cookie then transaction id */
            *port = (uint16_t)((v[2] << 8 | v[3]) ^ 0x2112);
            *family = v[1] == 1 ? 4 : 6;
            return inet_ntop(v[1] == 1 ? AF_INET : AF_INET6, raw, ip, (socklen_t)ip_cap) != NULL;
        }
        pos += 4 + ((len + 3u) & ~3u);
    }
    return false;
}

/* One Binding exchange from fd to host:port; true when the reply maps to expect_ip and the
 * socket's own port, in the expected family. */
static bool exchange_maps_to(int fd, const char *host, uint16_t port, const char *expect_ip,
                             int expect_family, unsigned timeout_ms)
{
    uint8_t req[20], resp[1500];
    char ip[64];
    uint16_t mapped_port = 0;
    int family = 0;
    ssize_t n;

    h_stun_binding_request(req, 1);
    if (!h_udp_send(fd, host, port, req, sizeof req))
        return false;
    n = h_udp_recv(fd, resp, sizeof resp, timeout_ms);
    if (n < 0) {
        printf("  no STUN answer from %s:%u\n", host, port);
        return false;
    }
    if (!mapped_from_response(resp, (size_t)n, req, ip, sizeof ip, &mapped_port, &family)) {
        printf("  undecodable answer (%zd bytes)\n", n);
        return false;
    }
    if (strcmp(ip, expect_ip) != 0 || mapped_port != local_port(fd) || family != expect_family ||
        n != (expect_family == 4 ? 32 : 44)) {
        printf("  mapped %s:%u family %d (%zd bytes), expected %s:%u family %d\n", ip, mapped_port,
               family, n, expect_ip, local_port(fd), expect_family);
        return false;
    }
    return true;
}

/* Datagrams that must never be answered (out has room for 16). */
static size_t malformed_datagrams(uint8_t out[][64], size_t *lens)
{
    size_t k = 0;
    uint8_t ok[20];
    h_stun_binding_request(ok, 9);
    memset(out, 0, 16 * sizeof out[0]);

    memcpy(out[k], ok, 19), lens[k++] = 19;                       /* short */
    memcpy(out[k], ok, 20), out[k][4] = 0, lens[k++] = 20;         /* wrong cookie */
    memcpy(out[k], ok, 20), out[k][1] = 0x11, lens[k++] = 20;      /* indication */
    memcpy(out[k], ok, 20), out[k][0] = 0x01, lens[k++] = 20;      /* success response */
    memcpy(out[k], ok, 20), out[k][1] = 0x03, lens[k++] = 20;      /* Allocate */
    memcpy(out[k], ok, 20), out[k][0] = 0xC0, lens[k++] = 20;      /* top bits */
    memcpy(out[k], ok, 20), out[k][3] = 8, lens[k++] = 20;         /* length overruns */
    memcpy(out[k] + 20, "\x80\x22\x00\x08", 4);                    /* overrunning attribute */
    memcpy(out[k], ok, 20), out[k][3] = 4, lens[k++] = 24;
    memcpy(out[k], ok, 20), out[k][3] = 2, lens[k++] = 22;         /* length not a multiple of 4 */
    memcpy(out[k], ok, 20), lens[k++] = 24;                        /* trailing bytes */
    memcpy(out[k] + 20, "\x80\x28\x00\x04\x01\x02\x03\x04", 8);    /* bad FINGERPRINT */
    memcpy(out[k], ok, 20), out[k][3] = 8, lens[k++] = 28;
    memcpy(out[k], "GET / HTTP/1.1\r\n\r\n", 18), lens[k++] = 18;  /* not STUN */
    memset(out[k], 0, 64), lens[k++] = 64;
    return k;
}

/* ---------------------------------------------------------------- in-process stund */

static stund *open_dual_stack(uint64_t per_ip, uint64_t global, uint16_t *port)
{
    char err[256];
    addr_t any;
    stund *s;

    memset(&any, 0, sizeof any);
    any.family = 6;
    s = stund_open(&any, per_ip, global, err, sizeof err);
    if (!s) {
        printf("  stund_open: %s\n", err);
        return NULL;
    }
    *port = local_port(stund_fd(s));
    return s;
}

/* Lets the kernel deliver what was sent, then runs passes until stund reports it drained. */
static void serve(stund *s, uint64_t now_ms)
{
    struct pollfd p = { .fd = stund_fd(s), .events = POLLIN };
    poll(&p, 1, 50);
    for (int i = 0; i < 100 && stund_on_readable(s, now_ms); i++) {
    }
}

static void test_stund_answers_ipv4_and_ipv6(void)
{
    uint16_t port;
    stund *s = open_dual_stack(0, 0, &port);
    int c4 = h_udp_socket("127.0.0.1"), c6 = h_udp_socket("::1"), c4b = h_udp_socket("127.0.0.9");
    uint8_t req[20], resp[128];
    char ip[64] = "";
    uint16_t mport = 0;
    int family = 0;
    ssize_t n;

    REQUIRE(s && c4 >= 0 && c6 >= 0 && c4b >= 0);
    h_stun_binding_request(req, 4);
    CHECK(h_udp_send(c4, "127.0.0.1", port, req, 20));
    serve(s, 1000);
    n = h_udp_recv(c4, resp, sizeof resp, 500);
    CHECK_EQ_INT(n, 32);
    CHECK(n > 0 && mapped_from_response(resp, (size_t)n, req, ip, sizeof ip, &mport, &family));
    CHECK_EQ_STR(ip, "127.0.0.1");
    CHECK_EQ_INT(family, 4);
    CHECK_EQ_INT(mport, local_port(c4));

    h_stun_binding_request(req, 6);
    CHECK(h_udp_send(c6, "::1", port, req, 20));
    serve(s, 1000);
    n = h_udp_recv(c6, resp, sizeof resp, 500);
    CHECK_EQ_INT(n, 44);
    CHECK(n > 0 && mapped_from_response(resp, (size_t)n, req, ip, sizeof ip, &mport, &family));
    CHECK_EQ_STR(ip, "::1");
    CHECK_EQ_INT(family, 6);
    CHECK_EQ_INT(mport, local_port(c6));

    /* Another IPv4 source through the same [::] socket. */
    h_stun_binding_request(req, 7);
    CHECK(h_udp_send(c4b, "127.0.0.1", port, req, 20));
    serve(s, 1000);
    n = h_udp_recv(c4b, resp, sizeof resp, 500);
    CHECK(n > 0 && mapped_from_response(resp, (size_t)n, req, ip, sizeof ip, &mport, &family));
    CHECK_EQ_STR(ip, "127.0.0.9");
    CHECK_EQ_INT(stund_requests(s), 3);

    close(c4), close(c6), close(c4b);
    stund_close(s);
}

static void test_stund_drops_malformed(void)
{
    uint16_t port;
    stund *s = open_dual_stack(0, 0, &port);
    int c = h_udp_socket("127.0.0.1");
    uint8_t bad[16][64];
    size_t lens[16], k;

    REQUIRE(s && c >= 0);
    k = malformed_datagrams(bad, lens);
    for (size_t i = 0; i < k; i++)
        CHECK(h_udp_send(c, "127.0.0.1", port, bad[i], lens[i]));
    serve(s, 1000);
    CHECK_EQ_INT(h_udp_count_replies(c, 200), 0);
    CHECK_EQ_INT(stund_requests(s), 0);
    /* Still serving afterwards. */
    CHECK(h_udp_send(c, "127.0.0.1", port, bad[0], 0));
    serve(s, 1000);
    CHECK_EQ_INT(h_udp_count_replies(c, 100), 0);
    close(c);
    stund_close(s);
}

static void test_stund_per_ip_budget(void)
{
    uint16_t port;
    stund *s = open_dual_stack(5, 0, &port);
    int a = h_udp_socket("127.0.0.2"), b = h_udp_socket("127.0.0.3");

    REQUIRE(s && a >= 0 && b >= 0);
    CHECK_EQ_INT(h_stun_burst(a, "127.0.0.1", port, 8), 8);
    CHECK_EQ_INT(h_stun_burst(b, "127.0.0.1", port, 8), 8);
    serve(s, 5000);
    CHECK_EQ_INT(h_udp_count_replies(a, 150), 5);
    CHECK_EQ_INT(h_udp_count_replies(b, 150), 5);
    /* Same second, next datagrams: nothing more. */
    CHECK_EQ_INT(h_stun_burst(a, "127.0.0.1", port, 2), 2);
    serve(s, 5999);
    CHECK_EQ_INT(h_udp_count_replies(a, 150), 0);
    /* Next second: a fresh five. */
    CHECK_EQ_INT(h_stun_burst(a, "127.0.0.1", port, 8), 8);
    serve(s, 6000);
    CHECK_EQ_INT(h_udp_count_replies(a, 150), 5);
    CHECK_EQ_INT(stund_requests(s), 15);
    close(a), close(b);
    stund_close(s);
}

static void test_stund_global_budget(void)
{
    uint16_t port;
    stund *s = open_dual_stack(0, 7, &port);
    int fds[12], answered = 0;

    REQUIRE(s);
    for (int i = 0; i < 12; i++) {
        char host[32];
        snprintf(host, sizeof host, "127.0.1.%d", i + 1);
        fds[i] = h_udp_socket(host);
        REQUIRE(fds[i] >= 0);
        CHECK_EQ_INT(h_stun_burst(fds[i], "127.0.0.1", port, 1), 1);
    }
    serve(s, 7000);
    for (int i = 0; i < 12; i++)
        answered += h_udp_count_replies(fds[i], 60);
    CHECK_EQ_INT(answered, 7);
    CHECK_EQ_INT(stund_requests(s), 7);
    for (int i = 0; i < 12; i++)
        close(fds[i]);
    stund_close(s);
}

/* One call handles at most one pass's budget and says when more is waiting. */
static void test_stund_pass_budget(void)
{
    uint16_t port;
    stund *s = open_dual_stack(0, 0, &port);
    int c = h_udp_socket("127.0.0.1");
    struct pollfd p;
    bool more;

    REQUIRE(s && c >= 0);
    CHECK_EQ_INT(h_stun_burst(c, "127.0.0.1", port, 270), 270);
    p.fd = stund_fd(s), p.events = POLLIN;
    poll(&p, 1, 100);
    h_sleep_ms(20);
    more = stund_on_readable(s, 1000);
    CHECK(more);
    CHECK_EQ_INT(stund_requests(s), 256);
    more = stund_on_readable(s, 1000);
    CHECK(!more);
    CHECK_EQ_INT(stund_requests(s), 270);
    CHECK(!stund_on_readable(s, 1000));
    CHECK_EQ_INT(h_udp_count_replies(c, 150), 270);
    close(c);
    stund_close(s);
}

static void test_stund_open_names_address_in_use(void)
{
    int holder = h_udp_socket("127.0.0.1");
    char err[256] = "";
    addr_t a;
    stund *s;

    REQUIRE(holder >= 0);
    memset(&a, 0, sizeof a);
    a.family = 4;
    a.ip[0] = 127, a.ip[3] = 1;
    a.port = local_port(holder);
    s = stund_open(&a, 5, 1000, err, sizeof err);
    CHECK(s == NULL);
    if (s)
        stund_close(s);
    {
        char expect[64];
        snprintf(expect, sizeof expect, "127.0.0.1:%u", a.port);
        CHECK(strstr(err, expect) != NULL);
    }
    close(holder);
}

/* ---------------------------------------------------------------- the real binary */

/* Starts the relay with STUN on a dual-stack [::] socket (the TCP listeners on loopback), plus
 * extra arguments and environment. */
static bool start_relay(relay_proc *r, const char *const *extra, const char *const *env)
{
    relay_opts o = { .stun_host = "[::]", .args = extra, .env = env };
    return relay_start(r, &o);
}

static void stop_relay(relay_proc *r)
{
    CHECK_EQ_INT(relay_stop(r, 5000), 0);
    relay_cleanup(r, test_cur_failed != 0);
}

static void test_relay_answers_ipv4_and_ipv6(void)
{
    relay_proc r;
    int c4, c6, c4b;

    REQUIRE(start_relay(&r, NULL, NULL));
    c4 = h_udp_socket("127.0.0.1"), c6 = h_udp_socket("::1"), c4b = h_udp_socket("127.0.3.4");
    CHECK(c4 >= 0 && exchange_maps_to(c4, "127.0.0.1", r.stun_port, "127.0.0.1", 4, 2000));
    CHECK(c6 >= 0 && exchange_maps_to(c6, "::1", r.stun_port, "::1", 6, 2000));
    CHECK(c4b >= 0 && exchange_maps_to(c4b, "127.0.0.1", r.stun_port, "127.0.3.4", 4, 2000));
    close(c4), close(c6), close(c4b);
    stop_relay(&r);
}

static void test_relay_ignores_malformed(void)
{
    relay_proc r;
    uint8_t bad[16][64];
    size_t lens[16], k;
    int c;

    REQUIRE(start_relay(&r, NULL, NULL));
    c = h_udp_socket("127.0.0.5");
    REQUIRE(c >= 0);
    k = malformed_datagrams(bad, lens);
    for (size_t i = 0; i < k; i++)
        CHECK(h_udp_send(c, "127.0.0.1", r.stun_port, bad[i], lens[i]));
    CHECK_EQ_INT(h_udp_count_replies(c, 300), 0);
    /* The relay is alive and answers the same source afterwards. */
    CHECK(exchange_maps_to(c, "127.0.0.1", r.stun_port, "127.0.0.5", 4, 2000));
    close(c);
    stop_relay(&r);
}

/* The relay's windows are whole seconds of its own clock: a burst that happens to straddle a
 * boundary may see two budgets. Each check therefore tries up to three bursts (from fresh sources)
 * and passes on one that lands inside a window, never accepting more than two windows' worth. */
static bool per_ip_burst_ok(uint16_t port, int limit, int *octet)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        char host[32];
        int c, got, other_c, other_got;
        snprintf(host, sizeof host, "127.0.2.%d", (*octet)++);
        c = h_udp_socket(host);
        snprintf(host, sizeof host, "127.0.2.%d", (*octet)++);
        other_c = h_udp_socket(host);
        if (c < 0 || other_c < 0)
            return false;
        h_stun_burst(c, "127.0.0.1", port, limit * 3);
        h_stun_burst(other_c, "127.0.0.1", port, limit * 3);
        got = h_udp_count_replies(c, 300);
        other_got = h_udp_count_replies(other_c, 100);
        close(c), close(other_c);
        if (got > 2 * limit || other_got > 2 * limit || got < limit || other_got < limit) {
            printf("  per-IP limit %d: %d and %d replies\n", limit, got, other_got);
            return false;
        }
        if (got == limit && other_got == limit)
            return true;
    }
    printf("  per-IP limit %d: no burst fell inside one window\n", limit);
    return false;
}

static void test_relay_per_ip_budget_flag_and_env(void)
{
    static const char *const flag[] = { "--stun-per-ip-rps", "3", "--stun-global-rps", "0", NULL };
    static const char *const env[] = { "DIG_RELAY_STUN_PER_IP_RPS=2", "DIG_RELAY_STUN_GLOBAL_RPS=0", NULL };
    relay_proc r;
    int octet = 1;

    REQUIRE(start_relay(&r, flag, NULL));
    CHECK(per_ip_burst_ok(r.stun_port, 3, &octet));
    stop_relay(&r);

    REQUIRE(start_relay(&r, NULL, env));
    CHECK(per_ip_burst_ok(r.stun_port, 2, &octet));
    stop_relay(&r);
}

static void test_relay_global_budget(void)
{
    static const char *const flag[] = { "--stun-per-ip-rps", "0", "--stun-global-rps", "6", NULL };
    relay_proc r;
    bool ok = false;

    REQUIRE(start_relay(&r, flag, NULL));
    for (int attempt = 0; attempt < 3 && !ok; attempt++) {
        int fds[15], answered = 0;
        for (int i = 0; i < 15; i++) {
            char host[32];
            snprintf(host, sizeof host, "127.0.%d.%d", 10 + attempt, i + 1);
            fds[i] = h_udp_socket(host);
            REQUIRE(fds[i] >= 0);
            h_stun_burst(fds[i], "127.0.0.1", r.stun_port, 1);
        }
        for (int i = 0; i < 15; i++) {
            answered += h_udp_count_replies(fds[i], i == 0 ? 300 : 20);
            close(fds[i]);
        }
        if (answered < 6 || answered > 12) {
            printf("  global limit 6: %d of 15 sources answered\n", answered);
            break;
        }
        ok = answered == 6;
        if (!ok)
            h_sleep_ms(1000);   /* the next attempt starts in a fresh window */
    }
    CHECK(ok);
    stop_relay(&r);
}

/* The benchmark's load generator still drives the relay (limits off), so `make bench-stun`
 * cannot rot unnoticed; the relay must come out of a flood alive and answering. */
static void test_load_tool_smoke(void)
{
    static const char *const flag[] = { "--stun-per-ip-rps", "0", "--stun-global-rps", "0", NULL };
    const char *tool = "bench/bin/stun_load";
    char cmd[256], out[512];
    relay_proc r;
    size_t n;
    FILE *p;
    int c;

    if (access(tool, X_OK) != 0)
        SKIP("bench/bin/stun_load not built (make bench/bin/stun_load)");
    REQUIRE(start_relay(&r, flag, NULL));
    snprintf(cmd, sizeof cmd, "%s ::1 %u --seconds 1 --warmup-ms 100 --sockets 4 --window 32 2>&1",
             tool, r.stun_port);
    p = popen(cmd, "r");
    REQUIRE(p != NULL);
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    CHECK(pclose(p) == 0);
    {
        const char *rate = strstr(out, "responses_per_sec ");
        CHECK(rate != NULL && atol(rate + 18) > 1000);
        if (!rate || atol(rate + 18) <= 1000)
            printf("  %s\n  printed: %s\n", cmd, out);
    }
    c = h_udp_socket("127.0.0.6");
    CHECK(c >= 0 && exchange_maps_to(c, "127.0.0.1", r.stun_port, "127.0.0.6", 4, 2000));
    if (c >= 0)
        close(c);
    stop_relay(&r);
}

/* coturn's client learns its reflexive address from us, over IPv4 and IPv6. */
static bool stunclient_reports(uint16_t port, const char *server, const char *local, const char *expect)
{
    char cmd[256], out[2048];
    size_t n;
    FILE *p;

    snprintf(cmd, sizeof cmd, "timeout 10 turnutils_stunclient -p %u -L %s %s 2>&1", port, local, server);
    p = popen(cmd, "r");
    if (!p)
        return false;
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    if (pclose(p) != 0 || !strstr(out, expect)) {
        printf("  %s\n  printed: %s\n", cmd, out);
        return false;
    }
    return true;
}

static void test_coturn_stunclient_interop(void)
{
    relay_proc r;

    if (system("command -v turnutils_stunclient >/dev/null 2>&1") != 0)
        SKIP("coturn not installed");
    REQUIRE(start_relay(&r, NULL, NULL));
    CHECK(stunclient_reports(r.stun_port, "127.0.0.1", "127.0.4.7", "UDP reflexive addr: 127.0.4.7:"));
    CHECK(stunclient_reports(r.stun_port, "::1", "::1", "UDP reflexive addr: ::1:"));
    stop_relay(&r);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN(test_stund_answers_ipv4_and_ipv6);
    RUN(test_stund_drops_malformed);
    RUN(test_stund_per_ip_budget);
    RUN(test_stund_global_budget);
    RUN(test_stund_pass_budget);
    RUN(test_stund_open_names_address_in_use);
    RUN(test_relay_answers_ipv4_and_ipv6);
    RUN(test_relay_ignores_malformed);
    RUN(test_relay_per_ip_budget_flag_and_env);
    RUN(test_relay_global_budget);
    RUN(test_load_tool_smoke);
    RUN(test_coturn_stunclient_interop);
    return test_finish();
}
