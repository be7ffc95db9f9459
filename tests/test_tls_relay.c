/* The relay terminating TLS itself (issue 12), driven by real clients over loopback with keys
 * and certificates openssl makes for each run:
 *   - `openssl s_client` (a tunnel the harness's WebSocket client speaks through) and Python
 *     (ssl + python3-websockets, tests/wss_client.py) with ECDSA P-256 and RSA 2048 client
 *     certificates: the matching peer id registers and a 16 KiB payload round-trips byte-exact;
 *     another id gets register_ack{success:false}, error 6 with the reference's text, then the
 *     close; no certificate fails the handshake under `required`; `optional` and `none` serve
 *     clients without one; a chain not under --tls-client-ca is refused;
 *   - the identity check after the per-source limits (code 7 first) and before the id-in-use
 *     check (code 6, not 5);
 *   - a trusted proxy's PROXY header before the ClientHello, in the same segment;
 *   - HTTP on the wire port over TLS, the health port still plain, headless Chromium loading
 *     https://.../health in `none` mode;
 *   - `dig-relay probe wss://…`: against a server-only relay, under `required` with and without
 *     a client certificate, and with an anchor that does not lead to the relay's certificate;
 *   - start-up errors: exit 1 naming the file and what is wrong, exit 2 for usage.
 * TLS attackers (garbage, truncated and trickled handshakes, a thousand full handshakes) are in
 * tests/test_attack.c. Skipped without TLS built in, openssl, or (for their parts)
 * python3-websockets and chromium. */
#include "tests/test.h"
#include "tests/harness.h"
#include "tls.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NET "DIG_MAINNET"
#define WAIT 10000u
#define PYTHON "/usr/bin/python3"
#define MISMATCH "peer_id does not match the mTLS client certificate presented"

static char dir[64];
static char id_node[65], id_rsa[65], id_issued[65];

static bool setup(void)
{
    static int state;   /* 0 not tried, 1 ready, -1 failed */
    char cmd[256];
    if (state != 0)
        return state == 1;
    state = -1;
    snprintf(dir, sizeof dir, "/tmp/dig-tls-relay.%ld", (long)getpid());
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    if (h_sh(cmd, NULL, 0, 10000) != 0 ||
        !h_make_cert(dir, "relay", "ec:P-256", NULL, false, NULL) ||
        !h_make_cert(dir, "node", "ec:P-256", NULL, false, id_node) ||
        !h_make_cert(dir, "node_rsa", "rsa:2048", NULL, false, id_rsa) ||
        !h_make_cert(dir, "dig_ca", "ec:P-256", NULL, true, NULL) ||
        !h_make_cert(dir, "issued", "ec:P-256", "dig_ca", false, id_issued) ||
        !h_make_cert(dir, "other_ca", "ec:P-256", NULL, true, NULL) ||
        !h_make_cert(dir, "stranger", "ec:P-256", "other_ca", false, NULL))
        return false;
    /* Python presents a chain from one file: the leaf, then its issuer. */
    snprintf(cmd, sizeof cmd, "cd %s && cat issued.crt.pem dig_ca.crt.pem > issued.chain.pem && "
             "cat stranger.crt.pem other_ca.crt.pem > stranger.chain.pem", dir);
    if (h_sh(cmd, NULL, 0, 10000) != 0)
        return false;
    state = 1;
    return true;
}

#define NEED_TLS() do { \
        if (!DIG_HAVE_TLS) SKIP("libbearssl-dev not installed (TLS not built in)"); \
        if (!h_have_openssl()) SKIP("openssl not installed"); \
        REQUIRE(setup()); \
    } while (0)

static const char *path_of(const char *name, const char *kind)
{
    static char buf[4][160];
    static int next;
    char *p = buf[next++ & 3];
    snprintf(p, sizeof buf[0], "%s/%s.%s", dir, name, kind);
    return p;
}

/* Starts the relay with TLS on its wire port: extra flags after the certificate and key. */
static bool start_tls(const char *const *extra)
{
    const char *args[24];
    size_t n = 0;
    args[n++] = "--tls-cert";
    args[n++] = path_of("relay", "crt.pem");
    args[n++] = "--tls-key";
    args[n++] = path_of("relay", "key.pem");
    args[n++] = "--register-timeout-secs";
    args[n++] = "3";
    for (size_t i = 0; extra && extra[i] && n < 23; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    return h_start(args);
}

/* A WebSocket client over an s_client tunnel presenting the named certificate (NULL: none). */
typedef struct {
    h_proc tunnel;
    ws_client ws;
} tls_ws;

static bool tls_ws_connect(tls_ws *t, const char *cert)
{
    memset(t, 0, sizeof *t);
    t->ws.fd = -1;
    int fd = h_tls_tunnel(&t->tunnel, h_relay.port, cert ? path_of(cert, "crt.pem") : NULL,
                          cert ? path_of(cert, "key.pem") : NULL);
    wsc_opts o = { .port = h_relay.port, .fd = fd, .timeout_ms = WAIT };
    if (fd < 0)
        return false;
    if (!wsc_connect(&t->ws, &o)) {
        printf("  over s_client (%s): %s\n", cert ? cert : "no certificate", t->ws.err);
        return false;
    }
    return true;
}

static void tls_ws_close(tls_ws *t)
{
    wsc_close(&t->ws);
    h_proc_cleanup(&t->tunnel, false);
}

/* A 16 KiB relay_message to itself comes back with exactly the bytes sent. */
static bool payload_round_trip(ws_client *c, const char *id)
{
    size_t cap = 16384 * 4 + 256, n = 0;
    char *msg = malloc(cap);
    bool ok;
    n += (size_t)snprintf(msg + n, cap - n, "{\"type\":\"relay_message\",\"from\":\"%s\",\"to\":\"%s\","
                          "\"payload\":[", id, id);
    for (size_t i = 0; i < 16384; i++)
        n += (size_t)snprintf(msg + n, cap - n, "%s%u", i ? "," : "", (unsigned)((i * 7 + 3) & 255));
    n += (size_t)snprintf(msg + n, cap - n, "],\"seq\":1}");
    ok = wsc_send_text(c, msg) && wsc_recv_type(c, "relay_message", WAIT) == WSC_OK;
    if (ok) {
        const char *sent, *got;
        size_t sent_len, got_len;
        ok = hj_get(msg, "payload", &sent, &sent_len) &&
             hj_get((const char *)c->msg, "payload", &got, &got_len) && sent_len == got_len &&
             memcmp(sent, got, sent_len) == 0;
    }
    free(msg);
    return ok;
}

/* ---- s_client ---------------------------------------------------------------------------- */

static void test_openssl_clients_required(void)
{
    NEED_TLS();
    REQUIRE(start_tls(NULL));
    static const char *const names[] = { "node", "node_rsa" };
    const char *ids[] = { id_node, id_rsa };
    for (size_t i = 0; i < 2; i++) {
        tls_ws t;
        REQUIRE(tls_ws_connect(&t, names[i]));
        CHECK(wsc_register(&t.ws, ids[i], NET));
        CHECK(payload_round_trip(&t.ws, ids[i]));
        tls_ws_close(&t);
    }

    /* Another id on a proven certificate: ack, error 6, close (SPEC §3.2 with the live
     * client's expectations). */
    tls_ws t;
    char reg[512], want[256];
    REQUIRE(tls_ws_connect(&t, "node"));
    h_register_json(reg, sizeof reg, id_rsa, NET, NULL);
    REQUIRE(wsc_send_text(&t.ws, reg));
    snprintf(want, sizeof want, "{\"type\":\"register_ack\",\"success\":false,\"message\":\"%s\","
             "\"connected_peers\":0}", MISMATCH);
    CHECK(wsc_expect_msg(&t.ws, want, WAIT));
    snprintf(want, sizeof want, "{\"type\":\"error\",\"code\":6,\"message\":\"%s\"}", MISMATCH);
    CHECK(wsc_expect_msg(&t.ws, want, WAIT));
    CHECK(wsc_expect_close(&t.ws, WAIT) > 0);
    tls_ws_close(&t);

    /* No certificate: the handshake fails, so not even the upgrade is answered. */
    tls_ws none;
    CHECK(!tls_ws_connect(&none, NULL));
    tls_ws_close(&none);
    CHECK(relay_alive(&h_relay));
    STOP_OK();
}

/* ---- python ------------------------------------------------------------------------------ */

static bool websockets_installed(void)
{
    const char *const argv[] = { PYTHON, "-c", "import websockets", NULL };
    return h_run(argv, NULL, NULL, 0, NULL, 0, 10000) == 0;
}

/* Runs tests/wss_client.py as `id`, presenting cert (NULL: none); expect_error 0 expects the
 * session to pass (register, 16 KiB echo), a code expects that refusal, -1 expects failure. */
static bool python_session(const char *id, const char *cert, const char *chain, int expect_error)
{
    char url[64], out[4096], err[4096], code[16];
    const char *argv[16];
    size_t n = 0;
    snprintf(url, sizeof url, "wss://127.0.0.1:%u", h_relay.port);
    argv[n++] = PYTHON;
    argv[n++] = "tests/wss_client.py";
    argv[n++] = url;
    argv[n++] = "127.0.0.1";
    argv[n++] = id;
    if (cert) {
        argv[n++] = "--cert";
        argv[n++] = chain ? chain : path_of(cert, "crt.pem");
        argv[n++] = "--key";
        argv[n++] = path_of(cert, "key.pem");
    }
    if (expect_error > 0) {
        snprintf(code, sizeof code, "%d", expect_error);
        argv[n++] = "--expect-error";
        argv[n++] = code;
    }
    argv[n] = NULL;
    int rc = h_run(argv, NULL, out, sizeof out, err, sizeof err, 60000);
    bool ok;
    if (expect_error == 0)
        ok = rc == 0 && strstr(out, "echo ok") != NULL;
    else if (expect_error > 0)
        ok = rc == 0 && h_starts_with(out, "refused ") && strstr(out, MISMATCH) != NULL;
    else
        ok = rc == 1 && strstr(out, "failed: ") != NULL;
    if (!ok)
        printf("  wss_client.py %s (%s) wanted %d: exit %d, %s %.300s\n", id,
               cert ? cert : "no certificate", expect_error, rc, out, err);
    return ok;
}

static void test_python_clients(void)
{
    NEED_TLS();
    if (!websockets_installed())
        SKIP("python3-websockets not installed");
    REQUIRE(start_tls(NULL));
    CHECK(python_session(id_node, "node", NULL, 0));
    CHECK(python_session(id_rsa, "node_rsa", NULL, 0));
    CHECK(python_session(id_rsa, "node", NULL, 6));
    CHECK(python_session("any-id", NULL, NULL, -1));        /* required: no certificate */
    STOP_OK();

    /* optional: a client without a certificate is served as on ws://; one with is bound. */
    REQUIRE(start_tls((const char *const[]){ "--tls-client-auth", "optional", NULL }));
    CHECK(python_session("certless-peer", NULL, NULL, 0));
    CHECK(python_session(id_node, "node", NULL, 0));
    CHECK(python_session("certless-peer", "node", NULL, 6));
    STOP_OK();

    /* none: no certificate is asked for, so none binds. */
    REQUIRE(start_tls((const char *const[]){ "--tls-client-auth", "none", NULL }));
    CHECK(python_session("any-id", NULL, NULL, 0));
    CHECK(python_session("another-id", "node", NULL, 0));
    STOP_OK();

    /* --tls-client-ca: a chain under the CA passes, one under another CA fails the handshake. */
    REQUIRE(start_tls((const char *const[]){ "--tls-client-ca", path_of("dig_ca", "crt.pem"), NULL }));
    CHECK(python_session(id_issued, "issued", path_of("issued", "chain.pem"), 0));
    CHECK(python_session("stranger", "stranger", path_of("stranger", "chain.pem"), -1));
    CHECK(python_session(id_node, "node", NULL, -1));       /* self-signed */
    STOP_OK();
}

/* ---- HTTP and the browser ---------------------------------------------------------------- */

static void test_https_routes_and_plain_health_port(void)
{
    NEED_TLS();
    REQUIRE(start_tls(NULL));
    h_proc p;
    char resp[4096];
    bool closed = false;
    int fd = h_tls_tunnel(&p, h_relay.port, path_of("node", "crt.pem"), path_of("node", "key.pem"));
    REQUIRE(fd >= 0);
    const char req[] = "GET /health HTTP/1.1\r\nHost: relay\r\n\r\n";
    REQUIRE(tcp_send_all(fd, req, sizeof req - 1, WAIT));
    size_t n = tcp_recv_until_close(fd, resp, sizeof resp, WAIT, &closed);
    CHECK(n > 0 && h_http_status(resp) == 200);
    CHECK(h_http_body(resp) && strstr(h_http_body(resp), "\"status\":\"ok\"") != NULL);
    close(fd);
    h_proc_cleanup(&p, test_cur_failed != 0);
    /* The health port stays plain HTTP. */
    n = h_http("127.0.0.1", h_relay.health_port, req, resp, sizeof resp, WAIT);
    CHECK(n > 0 && h_http_status(resp) == 200);
    STOP_OK();
}

static void test_chromium_loads_health_in_none_mode(void)
{
    char cmd[1024], out[8192];
    NEED_TLS();
    if (h_sh("command -v chromium >/dev/null", NULL, 0, 10000) != 0)
        SKIP("chromium not installed");
    REQUIRE(start_tls((const char *const[]){ "--tls-client-auth", "none", NULL }));
    /* The relay's certificate is the test's own: the browser is told to accept it. */
    snprintf(cmd, sizeof cmd,
             "chromium --headless --no-sandbox --disable-gpu --ignore-certificate-errors "
             "--user-data-dir=%s/chromium --dump-dom https://127.0.0.1:%u/health 2>/dev/null",
             dir, h_relay.port);
    CHECK_EQ_INT(h_sh(cmd, out, sizeof out, 90000), 0);
    if (!strstr(out, "\"status\":\"ok\""))
        printf("  chromium rendered: %.400s\n", out);
    CHECK(strstr(out, "\"status\":\"ok\"") != NULL);
    STOP_OK();
}

/* ---- the identity check among the other refusals ---------------------------------------- */

/* SPEC order: source rate limit (7), identity (6), capacity (4), id in use (5). */
static void test_identity_check_order(void)
{
    char reg_node[512], reg_other[512];
    uint64_t code = 0;
    NEED_TLS();
    h_register_json(reg_node, sizeof reg_node, id_node, NET, NULL);
    h_register_json(reg_other, sizeof reg_other, "someone-else", NET, NULL);

    /* node_rsa claiming the id node holds: the mismatch is reported, not the id in use. */
    REQUIRE(start_tls(NULL));
    tls_ws a, b;
    REQUIRE(tls_ws_connect(&a, "node"));
    REQUIRE(wsc_register(&a.ws, id_node, NET));
    REQUIRE(tls_ws_connect(&b, "node_rsa"));
    REQUIRE(wsc_send_text(&b.ws, reg_node));
    REQUIRE(wsc_recv_type(&b.ws, "error", WAIT) == WSC_OK);
    CHECK(hj_get_u64((const char *)b.ws.msg, "code", &code) && code == 6);
    tls_ws_close(&b);
    tls_ws_close(&a);
    STOP_OK();

    /* One live registration per source: a second one is refused for that (code 7) before its
     * claim is even compared with its certificate. */
    REQUIRE(start_tls((const char *const[]){ "--max-registrations-per-ip", "1", NULL }));
    REQUIRE(tls_ws_connect(&a, "node"));
    REQUIRE(wsc_register(&a.ws, id_node, NET));
    REQUIRE(tls_ws_connect(&b, "node_rsa"));
    REQUIRE(wsc_send_text(&b.ws, reg_other));
    REQUIRE(wsc_recv_type(&b.ws, "error", WAIT) == WSC_OK);
    CHECK(hj_get_u64((const char *)b.ws.msg, "code", &code) && code == 7);
    tls_ws_close(&b);
    tls_ws_close(&a);
    STOP_OK();
}

/* A trusted proxy's PROXY header comes before the TLS handshake, in the same segment as the
 * start of the ClientHello: the relay takes the source from it and hands the rest to TLS. */
static void test_proxy_header_before_tls(void)
{
    NEED_TLS();
    REQUIRE(start_tls((const char *const[]){ "--trusted-proxy-cidrs", "127.0.0.1",
                                             "--log-level", "debug", NULL }));
    char port[8], out[2048], err[2048];
    snprintf(port, sizeof port, "%u", h_relay.port);
    const char *const argv[] = { PYTHON, "tests/tls_tool.py", "proxied-health", port,
                                 path_of("node", "crt.pem"), path_of("node", "key.pem"), NULL };
    int rc = h_run(argv, NULL, out, sizeof out, err, sizeof err, 30000);
    if (rc != 0 || !h_starts_with(out, "HTTP/1.1 200"))
        printf("  client exited %d: %s %.400s\n", rc, out, err);
    CHECK(rc == 0 && h_starts_with(out, "HTTP/1.1 200"));
    char *log = relay_read_log(&h_relay);
    CHECK(log && strstr(log, "PROXY v1 source 192.0.2.7:4444") != NULL);
    free(log);
    STOP_OK();
}

/* The relay ends a session with close_notify before the end of its stream, so a client that
 * checks (Python's ssl with suppress_ragged_eofs off) sees an orderly close, not a cut. */
static void test_close_notify_before_eof(void)
{
    NEED_TLS();
    REQUIRE(start_tls(NULL));
    char port[8], out[256], err[2048];
    snprintf(port, sizeof port, "%u", h_relay.port);
    const char *const argv[] = { PYTHON, "tests/tls_tool.py", "close-notify", port,
                                 path_of("node", "crt.pem"), path_of("node", "key.pem"), NULL };
    int rc = h_run(argv, NULL, out, sizeof out, err, sizeof err, 30000);
    if (rc != 0 || strcmp(out, "close_notify\n") != 0)
        printf("  client exited %d: %s %.400s\n", rc, out, err);
    CHECK(rc == 0 && strcmp(out, "close_notify\n") == 0);
    STOP_OK();
}

/* ---- dig-relay probe wss:// --------------------------------------------------------------- */

/* Runs `dig-relay probe wss://…` against h_relay with extra flags: true when it exits with
 * want_rc and prints every one of the wanted texts (its output is shown otherwise). */
static bool probe_wss(const char *const *extra, int want_rc, const char *const *wanted)
{
    static char out[16384];
    char url[64], health[64], stun[64], err[4096];
    const char *args[16];
    size_t n = 0;
    snprintf(url, sizeof url, "wss://127.0.0.1:%u/", h_relay.port);
    snprintf(health, sizeof health, "--health-listen=127.0.0.1:%u", h_relay.health_port);
    snprintf(stun, sizeof stun, "--stun-listen=127.0.0.1:%u", h_relay.stun_port);
    args[n++] = "probe";
    args[n++] = url;
    args[n++] = health;
    args[n++] = stun;
    for (size_t i = 0; extra[i] && n < 15; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    int rc = h_run_binary(args, NULL, out, sizeof out, err, sizeof err, 60000);
    bool ok = rc == want_rc;
    for (size_t i = 0; wanted[i]; i++)
        ok = ok && strstr(out, wanted[i]) != NULL;
    if (!ok)
        printf("  probe exit %d (wanted %d):\n%s%s", rc, want_rc, out, err);
    return ok;
}

/* The probe speaks wss:// with the relay's certificate as its anchor: every check answers on a
 * server-only relay; under `required` it fails the connect step without a certificate and
 * registers as the certificate's id with one; an anchor that does not lead to the relay's
 * certificate fails the connect step. */
static void test_probe_over_wss(void)
{
    const char *ca = path_of("relay", "crt.pem");
    NEED_TLS();

    REQUIRE(start_tls((const char *const[]){ "--tls-client-auth", "none", NULL }));
    CHECK(probe_wss((const char *const[]){ "--probe-ca", ca, NULL }, 0,
                    (const char *const[]){ "  connect   ok", "6 of 6 checks answered", NULL }));
    CHECK(probe_wss((const char *const[]){ "--probe-ca", path_of("other_ca", "crt.pem"), NULL }, 1,
                    (const char *const[]){ "  connect   FAIL", "does not lead to a certificate in", NULL }));
    STOP_OK();

    REQUIRE(start_tls(NULL));
    CHECK(probe_wss((const char *const[]){ "--probe-ca", ca, NULL }, 1,
                    (const char *const[]){ "  connect   FAIL", "give --tls-cert and --tls-key", NULL }));
    char peer[32];
    snprintf(peer, sizeof peer, "peer %.12s...", id_node);
    CHECK(probe_wss((const char *const[]){ "--probe-ca", ca, "--tls-cert", path_of("node", "crt.pem"),
                                           "--tls-key", path_of("node", "key.pem"), NULL }, 0,
                    (const char *const[]){ "6 of 6 checks answered", peer, NULL }));
    STOP_OK();
}

/* ---- start-up errors --------------------------------------------------------------------- */

static void test_startup_errors(void)
{
    char out[4096], err[4096], cmd[512];
    NEED_TLS();
    snprintf(cmd, sizeof cmd, "cd %s && openssl pkey -in relay.key.pem -aes128 -passout pass:x "
             "-out enc.key.pem && echo not a certificate > junk.pem", dir);
    REQUIRE(h_sh(cmd, NULL, 0, 10000) == 0);
    const char *relay_crt = path_of("relay", "crt.pem"), *relay_key = path_of("relay", "key.pem");
    char junk[160];
    snprintf(junk, sizeof junk, "%s/junk.pem", dir);
    struct {
        const char *args[5];
        int code;
        const char *says;
    } cases[] = {
        { { "--tls-cert", "/nonexistent/relay.pem", "--tls-key", relay_key, NULL }, 1,
          "cannot read /nonexistent/relay.pem" },
        { { "--tls-cert", junk, "--tls-key", relay_key, NULL }, 1,
          "holds no PEM certificate" },
        { { "--tls-cert", relay_crt, "--tls-key", path_of("node", "key.pem"), NULL }, 1,
          "does not match the first certificate" },
        { { "--tls-cert", relay_crt, "--tls-key", path_of("enc", "key.pem"), NULL }, 1,
          "encrypted private key" },
        { { "--tls-cert", relay_crt, NULL }, 2, "--tls-key is missing" },
        { { "--tls-client-auth", "none", NULL }, 2, "needs --tls-cert and --tls-key" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = h_run_binary(cases[i].args, NULL, out, sizeof out, err, sizeof err, 10000);
        bool named = strstr(err, cases[i].says) != NULL &&
                     (cases[i].code == 2 || strstr(err, cases[i].args[1]) || strstr(err, cases[i].args[3]));
        if (rc != cases[i].code || !named)
            printf("  case %zu: exit %d, stderr: %.300s\n", i, rc, err);
        CHECK(rc == cases[i].code && named);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    T(test_openssl_clients_required);
    T(test_python_clients);
    T(test_https_routes_and_plain_health_port);
    T(test_chromium_loads_health_in_none_mode);
    T(test_identity_check_order);
    T(test_proxy_header_before_tls);
    T(test_close_notify_before_eof);
    T(test_probe_over_wss);
    T(test_startup_errors);
    if (dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        h_sh(cmd, NULL, 0, 10000);
    }
    return test_finish();
}
