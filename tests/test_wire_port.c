/* Integration tests of the wire port as operators deploy it (issue 11), against the real relay
 * over real sockets: PROXY protocol prefaces only from --trusted-proxy-cidrs (v2 and v1, every
 * command, a trusted source without a header, one that sends nothing, oversized and spoofed
 * headers), per-source accounting on the observed source (caps and bans per declared client),
 * HTTP on the wire port (/health as on the health port, HEAD, 404, caps and deadlines), and the
 * redirect listener (301 to https://, Host and target checks, a bind failure that is only a
 * warning). */
#include "tests/test.h"
#include "tests/harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define NET "DIG_MAINNET"
#define WAIT 5000u

/* The test's trusted proxy and an untrusted neighbour, both on loopback. */
#define PROXY_SRC "127.0.0.2"
#define OTHER_SRC "127.0.0.3"

static const char *const TRUST_PROXY[] = { "--trusted-proxy-cidrs", PROXY_SRC "/32, 2001:db8:ffff::/48",
                                           NULL };

/* ---------------------------------------------------------------- PROXY headers */

typedef struct {
    uint8_t b[64];
    size_t n;
} preface;

static const uint8_t V2_SIG[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* v2 PROXY command for TCP over IPv4 or IPv6 from ip:port (to the relay's loopback port). */
static preface v2_from(const char *ip, uint16_t port)
{
    preface p;
    p.n = h_proxy_v2(p.b, ip, port);
    return p;
}

static preface v2_local(void)
{
    preface p;
    memcpy(p.b, V2_SIG, 12);
    p.b[12] = 0x20;
    p.b[13] = 0x00;
    p.b[14] = p.b[15] = 0;
    p.n = 16;
    return p;
}

static preface text_preface(const char *s)
{
    preface p;
    p.n = strlen(s);
    memcpy(p.b, s, p.n);
    return p;
}

/* ---------------------------------------------------------------- clients */

/* Connects from src with the preface, registers id advertising [::]:9444. */
static bool join(ws_client *c, const char *src, const preface *p, const char *id)
{
    wsc_opts o = { .port = h_relay.port, .src = src, .preface = p ? p->b : NULL,
                   .preface_len = p ? p->n : 0, .timeout_ms = WAIT };
    char reg[512];
    if (!wsc_connect(c, &o)) {
        printf("  %s from %s: %s\n", id, src, c->err);
        wsc_close(c);
        return false;
    }
    h_register_json(reg, sizeof reg, id, NET, "[\"[::]:9444\"]");
    if (!wsc_send_text(c, reg) || wsc_recv_type(c, "register_ack", WAIT) != WSC_OK ||
        !strstr((const char *)c->msg, "\"success\":true")) {
        printf("  %s from %s was not registered: %s\n", id, src, c->msg ? (const char *)c->msg : "");
        wsc_close(c);
        return false;
    }
    return true;
}

/* The addresses the relay lists for id, as JSON text ("[...]"), asked over c. */
static bool addresses_of(ws_client *c, const char *id, char *out, size_t cap)
{
    char needle[128];
    const char *entry, *a, *end;
    if (!wsc_sendf(c, "{\"type\":\"get_peers\",\"network_id\":\"%s\"}", NET) ||
        wsc_recv_type(c, "peers", WAIT) != WSC_OK)
        return false;
    snprintf(needle, sizeof needle, "{\"peer_id\":\"%s\"", id);
    entry = strstr((const char *)c->msg, needle);
    a = entry ? strstr(entry, "\"addresses\":") : NULL;
    /* the array ends at `"]` (an IPv6 address has brackets of its own), or is `[]` */
    end = !a ? NULL : strncmp(a + 12, "[]", 2) == 0 ? a + 13 : strstr(a, "\"]");
    if (end && *end == '"')
        end++;
    if (!end || (size_t)(end + 1 - (a + 12)) >= cap)
        return false;
    memcpy(out, a + 12, (size_t)(end + 1 - (a + 12)));
    out[end + 1 - (a + 12)] = '\0';
    return true;
}

static bool addresses_are(ws_client *c, const char *id, const char *want)
{
    char got[512];
    if (!addresses_of(c, id, got, sizeof got)) {
        printf("  no peers entry for %s\n", id);
        return false;
    }
    if (strcmp(got, want) != 0) {
        printf("  %s: addresses %s, expected %s\n", id, got, want);
        return false;
    }
    return true;
}

/* Sends raw bytes from src and returns the HTTP status of the answer (0: closed without one). */
static int raw_exchange(const char *src, uint16_t port, const void *bytes, size_t n, bool *closed)
{
    char resp[4096];
    int fd = tcp_connect("127.0.0.1", port, src, WAIT);
    if (fd < 0)
        return -1;
    tcp_send_all(fd, bytes, n, WAIT);
    size_t got = tcp_recv_until_close(fd, resp, sizeof resp, WAIT, closed);
    close(fd);
    return got > 0 ? h_http_status(resp) : 0;
}

/* ---------------------------------------------------------------- PROXY behaviour */

/* With no trusted proxies (the default) a PROXY header is never read: it is a malformed request,
 * whatever source sends it. */
static void test_header_refused_by_default(void)
{
    REQUIRE(h_start(NULL));
    preface v2 = v2_from("203.0.113.7", 40000);
    uint8_t buf[128];
    bool closed;
    memcpy(buf, v2.b, v2.n);
    memcpy(buf + v2.n, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 34);
    CHECK_EQ_INT(raw_exchange(PROXY_SRC, h_relay.port, buf, v2.n + 34, &closed), 400);
    CHECK(closed);
    const char v1[] = "PROXY TCP4 203.0.113.7 127.0.0.1 40000 9450\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_EQ_INT(raw_exchange(PROXY_SRC, h_relay.port, v1, sizeof v1 - 1, &closed), 400);
    CHECK(closed);
    /* and a client that sends one in front of its handshake never gets to register */
    ws_client c;
    CHECK(!join(&c, PROXY_SRC, &v2, "spoofer"));
    STOP_OK();
}

/* From a trusted proxy the header's source is the observed source: it is what the relay writes
 * into `addresses`, for v2 over IPv4 and IPv6 and for v1. */
static void test_trusted_header_sets_source(void)
{
    REQUIRE(h_start(TRUST_PROXY));
    ws_client a, b, c, v;
    preface pa = v2_from("203.0.113.7", 40000), pb = v2_from("2001:db8::7", 40001),
            pc = text_preface("PROXY TCP4 198.51.100.9 127.0.0.1 5555 9450\r\n");
    REQUIRE(join(&a, PROXY_SRC, &pa, "A"));
    REQUIRE(join(&b, PROXY_SRC, &pb, "B"));
    REQUIRE(join(&c, PROXY_SRC, &pc, "C"));
    REQUIRE(join(&v, PROXY_SRC, NULL, "V"));    /* trusted, no header: its socket address */
    CHECK(addresses_are(&v, "A", "[\"203.0.113.7:9444\"]"));
    CHECK(addresses_are(&v, "B", "[\"[2001:db8::7]:9444\"]"));
    CHECK(addresses_are(&v, "C", "[\"198.51.100.9:9444\"]"));
    CHECK(addresses_are(&v, "V", "[\"127.0.0.2:9444\"]"));
    wsc_close(&a);
    wsc_close(&b);
    wsc_close(&c);
    wsc_close(&v);
    STOP_OK();
}

/* LOCAL, UNKNOWN and other families from a trusted proxy keep the socket address without failing
 * the connection; a source outside the list cannot use a header at all, even when others are
 * trusted. */
static void test_ignored_headers_and_untrusted_spoofing(void)
{
    REQUIRE(h_start(TRUST_PROXY));
    ws_client l, u, s, v;
    preface local = v2_local(), unknown = text_preface("PROXY UNKNOWN\r\n"),
            spoof = v2_from("203.0.113.66", 1);
    REQUIRE(join(&l, PROXY_SRC, &local, "L"));
    REQUIRE(join(&u, PROXY_SRC, &unknown, "U"));
    CHECK(!join(&s, OTHER_SRC, &spoof, "S"));
    REQUIRE(join(&v, OTHER_SRC, NULL, "V"));
    CHECK(addresses_are(&v, "L", "[\"127.0.0.2:9444\"]"));
    CHECK(addresses_are(&v, "U", "[\"127.0.0.2:9444\"]"));
    CHECK(addresses_are(&v, "V", "[\"127.0.0.3:9444\"]"));
    bool closed;
    uint8_t buf[128];
    memcpy(buf, spoof.b, spoof.n);
    memcpy(buf + spoof.n, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 34);
    CHECK_EQ_INT(raw_exchange(OTHER_SRC, h_relay.port, buf, spoof.n + 34, &closed), 400);
    /* the same bytes from the trusted proxy are a health check from 203.0.113.66 */
    CHECK_EQ_INT(raw_exchange(PROXY_SRC, h_relay.port, buf, spoof.n + 34, &closed), 200);
    wsc_close(&l);
    wsc_close(&u);
    wsc_close(&v);
    STOP_OK();
}

/* A trusted source that sends nothing is reaped at the register deadline; a header whose end
 * cannot be found within the bound closes the connection. */
static void test_silent_and_oversized_prefaces(void)
{
    const char *const args[] = { "--trusted-proxy-cidrs", PROXY_SRC, "--register-timeout-secs", "1",
                                 NULL };
    REQUIRE(h_start(args));
    int fd = tcp_connect("127.0.0.1", h_relay.port, PROXY_SRC, WAIT);
    REQUIRE(fd >= 0);
    uint64_t t0 = h_now_ms();
    CHECK(tcp_wait_closed(fd, 30000));
    CHECK(h_now_ms() - t0 >= 900);
    close(fd);
    /* half a header, then silence: the same deadline */
    fd = tcp_connect("127.0.0.1", h_relay.port, PROXY_SRC, WAIT);
    REQUIRE(fd >= 0);
    CHECK(tcp_send_all(fd, V2_SIG, 8, WAIT));
    CHECK(tcp_wait_closed(fd, 30000));
    close(fd);
    /* a v2 header declaring 60000 bytes of TLVs */
    uint8_t big[16];
    memcpy(big, V2_SIG, 12);
    big[12] = 0x21, big[13] = 0x11, big[14] = 0xea, big[15] = 0x60;
    bool closed;
    CHECK_EQ_INT(raw_exchange(PROXY_SRC, h_relay.port, big, sizeof big, &closed), 0);
    CHECK(closed);
    /* a v1 line that never ends */
    char line[300];
    memset(line, 'x', sizeof line);
    memcpy(line, "PROXY TCP4 ", 11);
    CHECK_EQ_INT(raw_exchange(PROXY_SRC, h_relay.port, line, sizeof line, &closed), 0);
    CHECK(closed);
    STOP_OK();
}

/* Per-source caps count the declared client, not the proxy: two clients behind one proxy are not
 * capped together, a third connection of one client is refused, and a ban of one client leaves
 * the other unharmed. */
static void test_accounting_by_observed_source(void)
{
    const char *const args[] = { "--trusted-proxy-cidrs", PROXY_SRC, "--max-connections-per-ip", "2",
                                 "--max-message-bytes", "1024", "--ban-threshold", "1", NULL };
    REQUIRE(h_start(args));
    preface x = v2_from("203.0.113.10", 1000), y = v2_from("203.0.113.20", 2000);
    ws_client x1, x2, x3, y1, y2, y3;
    REQUIRE(join(&x1, PROXY_SRC, &x, "X1"));
    REQUIRE(join(&x2, PROXY_SRC, &x, "X2"));
    REQUIRE(join(&y1, PROXY_SRC, &y, "Y1"));
    REQUIRE(join(&y2, PROXY_SRC, &y, "Y2"));
    CHECK(!join(&x3, PROXY_SRC, &x, "X3"));   /* over X's cap of 2 */
    wsc_close(&y2);
    /* X1 sends a frame over --max-message-bytes: a strike, and with --ban-threshold 1 a ban */
    char *huge = malloc(4096);
    REQUIRE(huge);
    memset(huge, ' ', 4096);
    CHECK(wsc_send_frame(&x1, 1, true, huge, 4096));
    free(huge);
    CHECK_EQ_INT(wsc_expect_close(&x1, WAIT), 1009);
    wsc_close(&x1);
    wsc_close(&x2);
    /* X is banned (even with its connections closed), Y is not */
    uint64_t deadline = h_now_ms() + WAIT;
    bool refused = false;
    while (!refused && h_now_ms() < deadline) {
        refused = !join(&x3, PROXY_SRC, &x, "X4");
        if (!refused)
            wsc_close(&x3);
    }
    CHECK(refused);
    REQUIRE(join(&y3, PROXY_SRC, &y, "Y3"));
    CHECK(addresses_are(&y3, "Y1", "[\"203.0.113.20:9444\"]"));
    wsc_close(&y1);
    wsc_close(&y3);
    STOP_OK();
}

/* ---------------------------------------------------------------- HTTP on the wire port */

static size_t http_get(uint16_t port, const char *req, char *resp, size_t cap)
{
    return h_http("127.0.0.1", port, req, resp, cap, WAIT);
}

/* GET /health on the wire port answers what the health port answers; HEAD answers the headers
 * alone on both; unknown paths are 404 text. */
static void test_health_and_head(void)
{
    REQUIRE(h_start(NULL));
    ws_client a;
    REQUIRE(wsc_connect_register(&a, h_relay.port, "A", NET));
    char wire[2048], health[2048];
    REQUIRE(http_get(h_relay.port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", wire, sizeof wire) > 0);
    REQUIRE(http_get(h_relay.health_port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", health, sizeof health) > 0);
    CHECK_EQ_INT(h_http_status(wire), 200);
    char *mw = hj_mask_times(h_http_body(wire)), *mh = hj_mask_times(h_http_body(health));
    CHECK(mw && mh && strcmp(mw, mh) == 0);
    CHECK(mw && strstr(mw, "\"connected_peers\":1") != NULL);
    free(mw);
    free(mh);
    char ct[128], cl[32];
    CHECK(h_http_header(wire, "Content-Type", ct, sizeof ct) && strcmp(ct, "application/json") == 0);
    uint16_t ports[2] = { h_relay.port, h_relay.health_port };
    for (int i = 0; i < 2; i++) {
        REQUIRE(http_get(ports[i], "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n", wire, sizeof wire) > 0);
        CHECK_EQ_INT(h_http_status(wire), 200);
        CHECK(h_http_header(wire, "Content-Length", cl, sizeof cl) && atoi(cl) > 20);
        const char *body = h_http_body(wire);
        CHECK(body && *body == '\0');
        REQUIRE(http_get(ports[i], "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", wire,
                         sizeof wire) > 0);
        CHECK_EQ_INT(h_http_status(wire), 405);
        CHECK(h_http_header(wire, "Allow", ct, sizeof ct) && strcmp(ct, "GET, HEAD") == 0);
    }
    REQUIRE(http_get(h_relay.port, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", wire, sizeof wire) > 0);
    CHECK_EQ_INT(h_http_status(wire), 404);
    CHECK(h_http_header(wire, "Content-Type", ct, sizeof ct) && strcmp(ct, "text/plain; charset=utf-8") == 0);
    REQUIRE(http_get(h_relay.health_port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", wire, sizeof wire) > 0);
    CHECK_EQ_INT(h_http_status(wire), 404);   /* the health port serves /health alone */
    wsc_close(&a);
    STOP_OK();
}

/* HTTP requests on the wire port are connections like any other: they count against
 * --max-connections and the per-IP cap, a banned source gets nothing, and a request that never
 * arrives is reaped at the register deadline. */
static void test_http_counts_against_caps(void)
{
    const char *const args[] = { "--max-connections", "3", "--max-connections-per-ip", "2",
                                 "--register-timeout-secs", "2", NULL };
    REQUIRE(h_start(args));
    const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    bool closed;
    int s1 = tcp_connect("127.0.0.1", h_relay.port, "127.0.0.11", WAIT);
    int s2 = tcp_connect("127.0.0.1", h_relay.port, "127.0.0.11", WAIT);
    REQUIRE(s1 >= 0 && s2 >= 0);
    /* the same source is at its cap of 2: its request is refused, another source's is served */
    CHECK_EQ_INT(raw_exchange("127.0.0.11", h_relay.port, req, sizeof req - 1, &closed), 0);
    CHECK(closed);
    int s3 = tcp_connect("127.0.0.1", h_relay.port, "127.0.0.12", WAIT);
    REQUIRE(s3 >= 0);
    /* three sockets are open: the global cap refuses a fourth from anyone */
    CHECK_EQ_INT(raw_exchange("127.0.0.13", h_relay.port, req, sizeof req - 1, &closed), 0);
    CHECK(closed);
    /* the silent sockets are reaped at the register deadline; then requests are served again */
    CHECK(tcp_wait_closed(s1, 30000));
    CHECK(tcp_wait_closed(s2, 30000));
    CHECK(tcp_wait_closed(s3, 30000));
    close(s1);
    close(s2);
    close(s3);
    uint64_t deadline = h_now_ms() + WAIT;
    int status = 0;
    while (status != 200 && h_now_ms() < deadline)
        status = raw_exchange("127.0.0.13", h_relay.port, req, sizeof req - 1, &closed);
    CHECK_EQ_INT(status, 200);
    STOP_OK();
}

/* ---------------------------------------------------------------- the redirect listener */

static void test_redirect_listener(void)
{
    REQUIRE(h_start(NULL));
    char resp[2048], loc[512], cl[32];
    uint16_t port = h_relay.dashboard_port;
    REQUIRE(http_get(port, "GET /stats.json?full=1 HTTP/1.1\r\nHost: relay.example.org\r\n\r\n", resp,
                     sizeof resp) > 0);
    CHECK_EQ_INT(h_http_status(resp), 301);
    CHECK(h_http_header(resp, "Location", loc, sizeof loc));
    CHECK_EQ_STR(loc, "https://relay.example.org/stats.json?full=1");
    CHECK(h_http_header(resp, "Content-Length", cl, sizeof cl) && strcmp(cl, "0") == 0);
    REQUIRE(http_get(port, "POST /x HTTP/1.0\r\n\r\n", resp, sizeof resp) > 0);
    CHECK_EQ_INT(h_http_status(resp), 301);
    CHECK(h_http_header(resp, "Location", loc, sizeof loc) && strcmp(loc, "https://relay.dig.net/x") == 0);
    /* header injection attempts: a CR/LF is a malformed head, other control bytes are refused */
    REQUIRE(http_get(port, "GET / HTTP/1.1\r\nHost: a\tb\r\n\r\n", resp, sizeof resp) > 0);
    CHECK_EQ_INT(h_http_status(resp), 400);
    CHECK(!h_http_header(resp, "Location", loc, sizeof loc));
    REQUIRE(http_get(port, "GET /a\rSet-Cookie: x HTTP/1.1\r\nHost: a\r\n\r\n", resp, sizeof resp) > 0);
    CHECK_EQ_INT(h_http_status(resp), 400);
    CHECK(!h_http_header(resp, "Set-Cookie", loc, sizeof loc));
    STOP_OK();
}

/* A redirect listener that cannot bind is a warning: the other listeners serve normally. */
static void test_redirect_bind_failure_is_a_warning(void)
{
    uint16_t taken = h_free_port("tcp4");
    REQUIRE(taken);
    int holder = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(taken) };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    REQUIRE(holder >= 0 && bind(holder, (struct sockaddr *)&a, sizeof a) == 0 && listen(holder, 1) == 0);
    char dash[32];
    snprintf(dash, sizeof dash, "127.0.0.1:%u", taken);
    relay_opts o = { .dashboard_listen = dash };
    REQUIRE(relay_start(&h_relay, &o));
    ws_client c;
    CHECK(wsc_connect_register(&c, h_relay.port, "A", NET));
    wsc_close(&c);
    char *log = relay_read_log(&h_relay);
    CHECK(log && strstr(log, "WARN") && strstr(log, "--dashboard-listen"));
    free(log);
    close(holder);
    STOP_OK();
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    T(test_header_refused_by_default);
    T(test_trusted_header_sets_source);
    T(test_ignored_headers_and_untrusted_spoofing);
    T(test_silent_and_oversized_prefaces);
    T(test_accounting_by_observed_source);
    T(test_health_and_head);
    T(test_http_counts_against_caps);
    T(test_redirect_listener);
    T(test_redirect_bind_failure_is_a_warning);
    return test_finish();
}
