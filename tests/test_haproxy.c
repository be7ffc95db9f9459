/* End to end behind a real HAProxy (Debian's haproxy), the deployment the reference documents:
 * HAProxy in `mode tcp` sends a PROXY v2 header to the relay, which trusts only HAProxy's address.
 * Clients connect through it from distinct loopback sources and the relay must see each one:
 * their dialable addresses differ, they are not capped together by --max-connections-per-ip, and
 * a ban of one leaves the other unharmed. HAProxy's own `option httpchk GET /health` must mark
 * the relay up, and with HAProxy terminating TLS (a certificate the test makes with openssl), a
 * wss:// client (python3-websockets) registers and relays through it. */
#include "tests/test.h"
#include "tests/harness.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define NET "DIG_MAINNET"
#define WAIT 5000u
#define PYTHON "/usr/bin/python3"

static h_proc haproxy;
static char dir[64];
static uint16_t plain_port, tls_port, stats_port;

static bool have(const char *const *argv)
{
    return h_run(argv, NULL, NULL, 0, NULL, 0, 20000) == 0;
}

/* Makes a self-signed P-256 certificate and key, concatenated as HAProxy's crt wants them. */
static bool make_certificate(void)
{
    char cmd[512];
    if (!h_make_cert(dir, "haproxy", "ec:P-256", NULL, false, NULL))
        return false;
    snprintf(cmd, sizeof cmd, "cat %s/haproxy.crt.pem %s/haproxy.key.pem > %s/haproxy.pem", dir, dir,
             dir);
    return h_sh(cmd, NULL, 0, 10000) == 0;
}

/* Starts HAProxy in front of the test's relay: a plain and a TLS frontend, both PROXY v2 to the
 * relay, health-checked with GET /health, and a CSV stats page. */
static bool start_haproxy(void)
{
    char cfg[128];
    FILE *f;
    plain_port = h_free_port("tcp4");
    tls_port = h_free_port("tcp4");
    stats_port = h_free_port("tcp4");
    snprintf(cfg, sizeof cfg, "%s/haproxy.cfg", dir);
    f = fopen(cfg, "w");
    if (!f)
        return false;
    fprintf(f,
            "global\n  maxconn 512\n"
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n"
            "frontend plain\n  bind 127.0.0.1:%u\n  default_backend relay\n"
            "frontend tls\n  bind 127.0.0.1:%u ssl crt %s/haproxy.pem\n  default_backend relay\n"
            "frontend stats\n  mode http\n  bind 127.0.0.1:%u\n  stats enable\n  stats uri /stats\n"
            "backend relay\n  option httpchk GET /health\n  http-check expect status 200\n"
            "  server r1 127.0.0.1:%u send-proxy-v2 check inter 200ms fall 2 rise 1\n",
            plain_port, tls_port, dir, stats_port, h_relay.port);
    fclose(f);
    const char *const argv[] = { "haproxy", "-db", "-f", cfg, NULL };
    if (!h_spawn(&haproxy, argv, NULL))
        return false;
    /* ready when its stats page answers */
    uint64_t deadline = h_now_ms() + 20000;
    while (h_now_ms() < deadline && h_proc_alive(&haproxy)) {
        char resp[256];
        if (h_http("127.0.0.1", stats_port, "GET /stats HTTP/1.0\r\n\r\n", resp, sizeof resp, 1000) > 0)
            return true;
        h_sleep_ms(50);
    }
    printf("  haproxy did not start\n");
    h_proc_cleanup(&haproxy, true);
    return false;
}

/* HAProxy's view of the relay backend: "UP", "DOWN", ... from its CSV stats. */
static bool backend_status(char *out, size_t cap)
{
    static char resp[65536];
    if (h_http("127.0.0.1", stats_port, "GET /stats;csv HTTP/1.0\r\n\r\n", resp, sizeof resp, WAIT) == 0)
        return false;
    const char *line = strstr(resp, "\nrelay,r1,");
    if (!line)
        return false;
    /* the status is the 18th field */
    const char *p = line + 1;
    for (int field = 0; field < 17 && p; field++) {
        p = strchr(p, ',');
        if (p)
            p++;
    }
    if (!p)
        return false;
    size_t n = strcspn(p, ",");
    if (n >= cap)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

static bool join(ws_client *c, const char *src, const char *id)
{
    wsc_opts o = { .port = plain_port, .src = src, .timeout_ms = WAIT };
    char reg[512];
    if (!wsc_connect(c, &o)) {
        wsc_close(c);
        return false;
    }
    h_register_json(reg, sizeof reg, id, NET, "[\"[::]:9444\"]");
    if (!wsc_send_text(c, reg) || wsc_recv_type(c, "register_ack", WAIT) != WSC_OK ||
        !strstr((const char *)c->msg, "\"success\":true")) {
        wsc_close(c);
        return false;
    }
    return true;
}

static bool peers_contain(ws_client *c, const char *text)
{
    return wsc_sendf(c, "{\"type\":\"get_peers\",\"network_id\":\"%s\"}", NET) &&
           wsc_recv_type(c, "peers", WAIT) == WSC_OK && strstr((const char *)c->msg, text) != NULL;
}

static void test_behind_haproxy(void)
{
    const char *const v[] = { "haproxy", "-v", NULL };
    if (!have(v))
        SKIP("haproxy not installed");
    if (!h_have_openssl())
        SKIP("openssl not installed");
    snprintf(dir, sizeof dir, "/tmp/dig-haproxy.XXXXXX");
    REQUIRE(mkdtemp(dir));
    REQUIRE(make_certificate());
    /* HAProxy connects to the relay from 127.0.0.1, and only that address is trusted; clients
     * come from other loopback addresses. */
    const char *const args[] = { "--trusted-proxy-cidrs", "127.0.0.1", "--max-connections-per-ip", "1",
                                 "--max-message-bytes", "65536", "--ban-threshold", "1", NULL };
    REQUIRE(h_start(args));
    REQUIRE(start_haproxy());

    /* HAProxy's health check (with its own PROXY header) marks the relay up */
    char status[32] = "";
    uint64_t deadline = h_now_ms() + 20000;
    while (h_now_ms() < deadline && !(backend_status(status, sizeof status) && strcmp(status, "UP") == 0))
        h_sleep_ms(100);
    if (strcmp(status, "UP") != 0)
        printf("  backend status \"%s\"\n", status);
    CHECK_EQ_STR(status, "UP");

    /* each client is seen with its own address */
    ws_client a, b, a2, b2;
    REQUIRE(join(&a, "127.0.0.5", "A"));
    REQUIRE(join(&b, "127.0.0.6", "B"));
    CHECK(peers_contain(&b, "\"peer_id\":\"A\",\"network_id\":\"DIG_MAINNET\""));
    CHECK(peers_contain(&b, "\"addresses\":[\"127.0.0.5:9444\"]"));
    CHECK(peers_contain(&a, "\"addresses\":[\"127.0.0.6:9444\"]"));
    /* one connection per source: a second from A's source is refused, B's source is separate */
    CHECK(!join(&a2, "127.0.0.5", "A2"));

    /* A breaks the frame limit: a strike, a ban; B keeps working and can reconnect */
    static char big[70000];
    memset(big, ' ', sizeof big);
    CHECK(wsc_send_frame(&a, 1, true, big, sizeof big));
    CHECK_EQ_INT(wsc_expect_close(&a, WAIT), 1009);
    wsc_close(&a);
    wsc_close(&b);
    bool refused = false;
    deadline = h_now_ms() + WAIT;
    while (!refused && h_now_ms() < deadline) {
        refused = !join(&a2, "127.0.0.5", "A3");
        if (!refused)
            wsc_close(&a2);
    }
    CHECK(refused);
    CHECK(join(&b2, "127.0.0.6", "B2"));
    wsc_close(&b2);

    /* HAProxy terminating TLS in front of the plain relay: a wss:// client from its own source */
    const char *const py[] = { PYTHON, "-c", "import websockets", NULL };
    if (have(py)) {
        char url[64], out[4096], err[4096];
        snprintf(url, sizeof url, "wss://127.0.0.1:%u/", tls_port);
        const char *const argv[] = { PYTHON, "tests/wss_client.py", url, "127.0.0.7", "W", NULL };
        int rc = h_run(argv, NULL, out, sizeof out, err, sizeof err, 60000);
        if (rc != 0)
            printf("  wss_client.py exited %d: %s %s\n", rc, out, err);
        CHECK_EQ_INT(rc, 0);
        CHECK(strstr(out, "addresses [\"127.0.0.7:9444\"]") != NULL);
        CHECK(strstr(out, "echo ok") != NULL);
    } else {
        printf("  note: python3-websockets not installed, the wss:// part did not run\n");
    }

    h_proc_cleanup(&haproxy, test_cur_failed != 0);
    STOP_OK();
    char rm[96];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    const char *const clean[] = { "/bin/sh", "-c", rm, NULL };
    h_run(clean, NULL, NULL, 0, NULL, 0, 10000);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    T(test_behind_haproxy);
    return test_finish();
}
