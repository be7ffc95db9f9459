/* Integration tests of the operator pages against the real relay over real sockets: every route
 * with its headers (HEAD, other methods, the assets), /stats.json and /metrics counting what
 * peers really did (registrations, traffic by kind, hole punches, STUN, refusals by reason and
 * code at each limit, queue drops, strikes, bans, prunes, PEX), promtool accepting the served
 * metrics, the RLY-009 sweep with a short interval (the question byte for byte, answers from
 * registered peers only and never answered, an inbound get_dht_records refused with code 2 on
 * a connection that stays open, MAX not sum), and /map.json from a database the test writes,
 * with peers placed through a trusted proxy's PROXY header. Pages in a browser: test_pages.c. */
#include "tests/harness.h"
#include "tests/mmdb.h"
#include "tests/test.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define WAIT 5000u
#define SLOW 15000u   /* waits that span the relay's one-second answer cache or a sweep */

static char resp[1 << 17];

/* 64 copies of c: the shape of a real peer id. */
static const char *id64(char c)
{
    static char ids[8][65];
    static int next;
    char *s = ids[next++ % 8];
    memset(s, c, 64);
    s[64] = '\0';
    return s;
}

/* One request on the wire port; the response in resp, or NULL. */
static const char *http(const char *method, const char *path)
{
    char req[512];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: relay.test\r\n\r\n", method, path);
    return h_http("127.0.0.1", h_relay.port, req, resp, sizeof resp, WAIT) > 0 ? resp : NULL;
}

/* GET path until its body contains every needle (NULL-terminated); the body stays in resp.
 * The relay keeps answers for a second, so a change shows within that. */
static bool wait_body(const char *path, const char *const *needles, unsigned timeout_ms)
{
    uint64_t deadline = h_now_ms() + timeout_ms;
    const char *missing = NULL;
    do {
        const char *r = http("GET", path);
        const char *body = r ? h_http_body(r) : NULL;
        missing = body ? NULL : "(no answer)";
        for (size_t i = 0; body && needles[i] && !missing; i++)
            if (!strstr(body, needles[i]))
                missing = needles[i];
        if (!missing)
            return true;
        h_sleep_ms(100);
    } while (h_now_ms() < deadline);
    const char *body = h_http_body(resp);
    printf("  %s lacks %s; last body:\n%.3000s\n", path, missing, body ? body : resp);
    return false;
}
#define WAIT_BODY(path, ...) wait_body(path, (const char *const[]){ __VA_ARGS__, NULL }, SLOW)

/* Connects (from src, through a PROXY v2 preface declaring proxied when not NULL) and registers
 * id on net with listen_addrs (JSON text or NULL). */
static bool join(ws_client *c, const char *src, const char *proxied, const char *id, const char *net,
                 const char *listen_addrs)
{
    uint8_t pre[52];
    wsc_opts o = { .port = h_relay.port, .src = src, .timeout_ms = WAIT };
    if (proxied) {
        o.preface = pre;
        o.preface_len = h_proxy_v2(pre, proxied, 40000);
    }
    char reg[1024];
    if (!wsc_connect(c, &o)) {
        printf("  %.12s: %s\n", id, c->err);
        return false;
    }
    h_register_json(reg, sizeof reg, id, net, listen_addrs);
    if (!wsc_send_text(c, reg) || wsc_recv_type(c, "register_ack", WAIT) != WSC_OK ||
        !strstr((const char *)c->msg, "\"success\":true")) {
        printf("  %.12s not registered: %s\n", id, c->msg ? (const char *)c->msg : c->err);
        return false;
    }
    return true;
}

static const char QUESTION[] = "{\"type\":\"get_dht_records\",\"max_keys\":500}";
static unsigned questions_skipped;

/* The next message on c, skipping peer notifications and the RLY-009 question a sweep may send
 * a registered peer at any time (counted in questions_skipped). */
static bool next_is(ws_client *c, const char *expected)
{
    for (;;) {
        if (wsc_recv_msg(c, WAIT) != WSC_OK) {
            printf("  nothing arrived where %s was due (%s)\n", expected, c->err);
            return false;
        }
        const char *m = (const char *)c->msg;
        if (strcmp(m, QUESTION) == 0) {
            questions_skipped++;
            continue;
        }
        if (hj_is_type(m, "peer_connected") || hj_is_type(m, "peer_disconnected"))
            continue;
        if (strcmp(m, expected) == 0)
            return true;
        printf("  got %s\n  expected %s\n", m, expected);
        return false;
    }
}

/* A ping answered by its pong next: nothing else was sent to c in between, and it is open. */
static bool nothing_but_pong(ws_client *c, unsigned ts)
{
    char pong[64];
    snprintf(pong, sizeof pong, "{\"type\":\"pong\",\"timestamp\":%u}", ts);
    return wsc_sendf(c, "{\"type\":\"ping\",\"timestamp\":%u}", ts) && next_is(c, pong);
}

/* ---------------------------------------------------------------- routes and headers */

typedef struct {
    const char *path, *type, *cache;
    bool page;
} route_case;

static const route_case routes[] = {
    { "/", "text/html; charset=utf-8", "no-cache", true },
    { "/dht", "text/html; charset=utf-8", "no-cache", true },
    { "/map", "text/html; charset=utf-8", "no-cache", true },
    { "/stats.json", "application/json", "no-store", false },
    { "/stats.json?full=1", "application/json", "no-store", false },
    { "/dht.json", "application/json", "no-store", false },
    { "/map.json", "application/json", "no-store", false },
    { "/metrics", "text/plain; version=0.0.4; charset=utf-8", "no-store", false },
    { "/assets/app.css", "text/css; charset=utf-8", "max-age=300", false },
    { "/assets/app.js", "text/javascript; charset=utf-8", "max-age=300", false },
    { "/assets/dashboard.js", "text/javascript; charset=utf-8", "max-age=300", false },
    { "/assets/dht.js", "text/javascript; charset=utf-8", "max-age=300", false },
    { "/assets/map.js", "text/javascript; charset=utf-8", "max-age=300", false },
    { "/assets/land.svg", "image/svg+xml", "max-age=300", false },
};

/* Every route answers GET with its type and headers; HEAD the same headers and length with no
 * body; any other method the body, as the reference does; paths are exact. */
static void test_routes_and_headers(void)
{
    REQUIRE(h_start(NULL));
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const route_case *rc = &routes[i];
        char v[512], len_get[32] = "", len_head[32] = "";
        REQUIRE(http("GET", rc->path));
        if (h_http_status(resp) != 200)
            printf("  GET %s: %.60s\n", rc->path, resp);
        CHECK_EQ_INT(h_http_status(resp), 200);
        CHECK(h_http_header(resp, "Content-Type", v, sizeof v) && strcmp(v, rc->type) == 0);
        CHECK(h_http_header(resp, "Cache-Control", v, sizeof v) && strcmp(v, rc->cache) == 0);
        CHECK(h_http_header(resp, "X-Content-Type-Options", v, sizeof v) && strcmp(v, "nosniff") == 0);
        bool csp = h_http_header(resp, "Content-Security-Policy", v, sizeof v);
        CHECK(csp == rc->page);
        if (rc->page)
            CHECK(h_starts_with(v, "default-src 'self';") && !strstr(v, "unsafe"));
        CHECK(h_http_header(resp, "Content-Length", len_get, sizeof len_get));
        CHECK_EQ_INT(strlen(h_http_body(resp)), atoi(len_get));
        CHECK(atoi(len_get) > 0);

        REQUIRE(http("HEAD", rc->path));
        CHECK_EQ_INT(h_http_status(resp), 200);
        CHECK(h_http_header(resp, "Content-Length", len_head, sizeof len_head));
        if (strncmp(rc->path, "/stats.json", 11) != 0 && strcmp(rc->path, "/metrics") != 0)
            CHECK_EQ_STR(len_head, len_get);   /* bodies that do not change between two requests */
        CHECK(h_http_body(resp) && *h_http_body(resp) == '\0');
        CHECK(h_http_header(resp, "Content-Type", v, sizeof v) && strcmp(v, rc->type) == 0);

        REQUIRE(http("POST", rc->path));
        CHECK_EQ_INT(h_http_status(resp), 200);
        CHECK(strlen(h_http_body(resp)) > 0);
    }
    static const char *const absent[] = { "/assets/index.html", "/assets/nope.js", "/dht/", "/index.html",
                                          "/assets/", "/stats" };
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) {
        REQUIRE(http("GET", absent[i]));
        if (h_http_status(resp) != 404)
            printf("  GET %s answered %d\n", absent[i], h_http_status(resp));
        CHECK_EQ_INT(h_http_status(resp), 404);
    }
    /* The pages load only files of this origin, which all exist. */
    REQUIRE(http("GET", "/"));
    CHECK(strstr(h_http_body(resp), "src=\"/assets/dashboard.js\"") != NULL);
    REQUIRE(http("GET", "/dht.json"));
    CHECK_EQ_STR(h_http_body(resp), "{\"schema_version\":1,\"generated_at\":0,\"reporting_peers\":0,"
                                    "\"total_keys\":0,\"truncated\":false,\"keys\":[]}");
    STOP_OK();
}

/* ---------------------------------------------------------------- /stats.json */

/* Three peers on two networks (one direct over IPv4, one relay-only, one direct over IPv6 through
 * a trusted proxy), an unregistered socket, payload traffic of both kinds, hole punches both
 * ways and a STUN answer: every field of /stats.json says so, ids cut unless ?full=1. */
static void test_stats_json_counts(void)
{
    const char *const args[] = { "--trusted-proxy-cidrs", "127.0.0.2", NULL };
    REQUIRE(h_start(args));
    const char *A = id64('a'), *B = id64('b'), *C = id64('c');
    ws_client a, b, c, u;
    REQUIRE(join(&a, NULL, NULL, A, "alpha", "[\"[::]:9444\"]"));
    REQUIRE(join(&b, NULL, NULL, B, "alpha", NULL));
    REQUIRE(join(&c, "127.0.0.2", "2a02:6b8::5", C, "beta", "[\"[::]:9444\"]"));
    REQUIRE(wsc_connect_port(&u, h_relay.port));

    CHECK(wsc_sendf(&a, "{\"type\":\"relay_message\",\"from\":\"%s\",\"to\":\"%s\",\"payload\":[1,2,3],\"seq\":1}", A, B));
    CHECK(wsc_recv_type(&b, "relay_message", WAIT) == WSC_OK);
    CHECK(wsc_sendf(&a, "{\"type\":\"broadcast\",\"from\":\"%s\",\"payload\":[9,9],\"exclude\":[]}", A));
    CHECK(wsc_recv_type(&b, "broadcast", WAIT) == WSC_OK);
    CHECK(wsc_sendf(&a, "{\"type\":\"hole_punch_request\",\"peer_id\":\"%s\",\"target_peer_id\":\"%s\","
                        "\"external_addr\":\"1.2.3.4:5\"}", A, B));
    CHECK(wsc_recv_type(&b, "hole_punch_coordinate", WAIT) == WSC_OK);
    CHECK(wsc_sendf(&b, "{\"type\":\"hole_punch_result\",\"peer_id\":\"%s\",\"success\":true}", A));
    CHECK(wsc_recv_type(&a, "hole_punch_result", WAIT) == WSC_OK);
    CHECK(wsc_sendf(&b, "{\"type\":\"hole_punch_result\",\"peer_id\":\"%s\",\"success\":false}", A));
    CHECK(wsc_recv_type(&a, "hole_punch_result", WAIT) == WSC_OK);
    int udp = h_udp_socket("127.0.0.1");
    REQUIRE(udp >= 0);
    CHECK_EQ_INT(h_stun_burst(udp, "127.0.0.1", h_relay.stun_port, 1), 1);
    CHECK_EQ_INT(h_udp_count_replies(udp, 1000), 1);
    close(udp);

    /* four WebSockets and the request itself are open */
    CHECK(WAIT_BODY("/stats.json",
        "{\"schema_version\":1,\"status\":\"ok\",\"version\":\"" DIG_RELAY_VERSION "\",\"uptime_secs\":",
        ",\"active_reservations\":3,\"connected_peers\":3,\"open_connections\":5,\"stun_requests\":1,"
        "\"hole_punch_requests\":1,\"hole_punch_successes\":1,\"hole_punch_failures\":1,"
        "\"bytes_relayed\":5,\"networks\":[{\"network_id\":\"alpha\",\"peers\":2},"
        "{\"network_id\":\"beta\",\"peers\":1}],\"peers\":[{\"peer_id\":\"aaaaaaaaaaaa\xE2\x80\xA6\","
        "\"network_id\":\"alpha\",\"via\":\"direct\",\"address_family\":\"v4\",\"protocol_version\":1,"
        "\"connected_at\":",
        "{\"peer_id\":\"bbbbbbbbbbbb\xE2\x80\xA6\",\"network_id\":\"alpha\",\"via\":\"relay\","
        "\"address_family\":\"none\",\"protocol_version\":1,\"connected_at\":",
        "{\"peer_id\":\"cccccccccccc\xE2\x80\xA6\",\"network_id\":\"beta\",\"via\":\"direct\","
        "\"address_family\":\"v6\",\"protocol_version\":1,\"connected_at\":",
        "}],\"peers_truncated\":false,\"networks_truncated\":false}"));
    const char *body = h_http_body(resp);
    CHECK(body && !strstr(body, "127.0.0.1") && !strstr(body, "2a02") && !strstr(body, A));
    char full[256];
    snprintf(full, sizeof full, "{\"peer_id\":\"%s\",\"network_id\":\"alpha\",\"via\":\"direct\"", A);
    CHECK(WAIT_BODY("/stats.json?full=1", full));

    /* a peer leaving and the unregistered socket closing show within the cache's second */
    wsc_close(&b);
    wsc_close(&u);
    CHECK(WAIT_BODY("/stats.json", "\"active_reservations\":2,\"connected_peers\":2,\"open_connections\":3,",
                    "\"networks\":[{\"network_id\":\"alpha\",\"peers\":1},{\"network_id\":\"beta\",\"peers\":1}]"));
    wsc_close(&a);
    wsc_close(&c);
    STOP_OK();
}

/* ---------------------------------------------------------------- /metrics */

/* Polls /metrics until series reaches at least min; returns the value then (or the last one). */
static long long wait_sample(const char *series, long long min)
{
    uint64_t deadline = h_now_ms() + SLOW;
    long long v = -1;
    while (h_now_ms() < deadline) {
        if (http("GET", "/metrics") && (v = h_metric(h_http_body(resp), series)) >= min)
            return v;
        h_sleep_ms(100);
    }
    printf("  %s stayed at %lld (wanted at least %lld)\n", series, v, min);
    return v;
}
#define REFUSED(reason, code) "dig_relay_refusals_total{reason=\"" reason "\",code=\"" code "\"}"

/* Wire-level refusals by reason and code, traffic by kind, queue drops, STUN answers and
 * rate-limited requests, PEX snapshots, registrations by network; then promtool on the text. */
static void test_metrics_count_what_happened(void)
{
    const char *const args[] = { "--outbound-queue-capacity", "2", "--stun-per-ip-rps", "1",
                                 "--max-message-bytes", "4096", NULL };
    REQUIRE(h_start(args));
    const char *A = id64('a'), *B = id64('b'), *C = id64('c');
    ws_client a, b, c, d, e, u;
    REQUIRE(join(&a, NULL, NULL, A, "alpha", NULL));
    REQUIRE(join(&b, NULL, NULL, B, "alpha", NULL));
    REQUIRE(join(&c, NULL, NULL, C, "beta", NULL));

    /* code 1 before registering; code 2 for bad JSON and for asking the relay for DHT records;
     * code 3 for an unknown target; code 5 for a live id */
    REQUIRE(wsc_connect_port(&u, h_relay.port));
    CHECK(wsc_send_text(&u, "{\"type\":\"ping\",\"timestamp\":1}"));
    CHECK(next_is(&u, "{\"type\":\"error\",\"code\":1,\"message\":\"register before sending other messages (RLY-001)\"}"));
    CHECK(wsc_send_text(&a, "not json"));
    CHECK(next_is(&a, "{\"type\":\"error\",\"code\":2,\"message\":\"invalid relay JSON\"}"));
    CHECK(wsc_send_text(&a, "{\"type\":\"get_dht_records\",\"max_keys\":5}"));
    CHECK(next_is(&a, "{\"type\":\"error\",\"code\":2,\"message\":\"get_dht_records is relay-to-node only (RLY-009)\"}"));
    CHECK(wsc_sendf(&a, "{\"type\":\"relay_message\",\"from\":\"%s\",\"to\":\"nobody\",\"payload\":[1],\"seq\":1}", A));
    CHECK(wsc_recv_type(&a, "error", WAIT) == WSC_OK && strstr((const char *)a.msg, "\"code\":3"));
    REQUIRE(wsc_connect_port(&d, h_relay.port));
    char reg[512];
    h_register_json(reg, sizeof reg, A, "alpha", NULL);
    CHECK(wsc_send_text(&d, reg));
    CHECK(wsc_recv_type(&d, "error", WAIT) == WSC_OK && strstr((const char *)d.msg, "\"code\":5"));
    /* a frame over --max-message-bytes closes its connection (1009) */
    REQUIRE(wsc_connect_port(&e, h_relay.port));
    char *big = malloc(5000);
    REQUIRE(big);
    memset(big, ' ', 5000);
    memcpy(big, "{\"type\":\"ping\",\"timestamp\":1}", 29);
    wsc_send_binary(&e, big, 5000);   /* the relay may close before it has all of it */
    free(big);
    CHECK_EQ_INT(wsc_expect_close(&e, WAIT), 1009);

    /* payload traffic of both kinds */
    CHECK(wsc_sendf(&a, "{\"type\":\"relay_message\",\"from\":\"%s\",\"to\":\"%s\",\"payload\":[1,2,3,4],\"seq\":2}", A, B));
    CHECK(wsc_recv_type(&b, "relay_message", WAIT) == WSC_OK);
    CHECK(wsc_sendf(&a, "{\"type\":\"broadcast\",\"from\":\"%s\",\"payload\":[7,7,7],\"exclude\":[]}", A));
    CHECK(wsc_recv_type(&b, "broadcast", WAIT) == WSC_OK);

    /* queue drops: with room for two messages, bursts of forwards in one write overflow B's queue */
    uint8_t burst[8 * 300];
    size_t n = 0;
    for (int i = 0; i < 8; i++) {
        char m[256];
        int k = snprintf(m, sizeof m, "{\"type\":\"relay_message\",\"from\":\"%s\",\"to\":\"%s\",\"payload\":[5],\"seq\":%d}", A, B, 10 + i);
        n += wsc_build_frame(burst + n, sizeof burst - n, 1, true, 0, true, m, (size_t)k);
    }
    uint64_t deadline = h_now_ms() + SLOW;
    long long drops = 0;
    while (drops < 1 && h_now_ms() < deadline) {
        CHECK(wsc_send_raw(&a, burst, n));
        h_sleep_ms(200);
        drops = http("GET", "/metrics") ? h_metric(h_http_body(resp), "dig_relay_queue_drops_total") : -1;
    }
    CHECK(drops >= 1);
    while (wsc_recv_msg(&b, 300) == WSC_OK) {
    }

    /* STUN: three requests from one source in a second, one answer at --stun-per-ip-rps 1 */
    int udp = h_udp_socket("127.0.0.1");
    REQUIRE(udp >= 0);
    CHECK_EQ_INT(h_stun_burst(udp, "127.0.0.1", h_relay.stun_port, 3), 3);
    int answers = h_udp_count_replies(udp, 1000);
    CHECK(answers >= 1 && answers <= 2);   /* 2 only if the burst straddled a second */
    close(udp);

    /* PEX: a handshake is answered with the relay's handshake and one snapshot */
    CHECK(wsc_send_text(&c, "{\"type\":\"pex_handshake\",\"version\":1,\"network_id\":\"beta\",\"interval\":60,\"flags\":[]}"));
    CHECK(wsc_recv_type(&c, "pex_snapshot", WAIT) == WSC_OK);

    CHECK(wait_sample(REFUSED("not_registered", "1"), 1) == 1);
    CHECK(wait_sample(REFUSED("bad_message", "2"), 2) == 2);
    CHECK(wait_sample(REFUSED("peer_not_found", "3"), 1) == 1);
    CHECK(wait_sample(REFUSED("id_in_use", "5"), 1) == 1);
    CHECK(wait_sample(REFUSED("message_too_large", "none"), 1) == 1);
    CHECK(wait_sample("dig_relay_strikes_total", 1) == 1);
    CHECK(wait_sample("dig_relay_relayed_messages_total{kind=\"broadcast\"}", 1) == 1);
    CHECK(wait_sample("dig_relay_relayed_payload_bytes_total{kind=\"broadcast\"}", 3) == 3);
    /* 2 messages before the bursts (one to nobody), then 8 per burst */
    long long sent = h_metric(h_http_body(resp), "dig_relay_relayed_messages_total{kind=\"relay_message\"}");
    long long bytes = h_metric(h_http_body(resp), "dig_relay_relayed_payload_bytes_total{kind=\"relay_message\"}");
    CHECK(sent >= 10 && (sent - 2) % 8 == 0);
    CHECK_EQ_INT(bytes, 1 + 4 + (sent - 2));
    CHECK_EQ_INT(wait_sample("dig_relay_stun_responses_total", answers), answers);
    CHECK_EQ_INT(wait_sample("dig_relay_stun_rate_limited_total", 3 - answers), 3 - answers);
    CHECK(wait_sample("dig_relay_pex_snapshots_total", 1) == 1);
    CHECK(wait_sample("dig_relay_registrations{network=\"alpha\"}", 2) == 2);
    const char *t = h_http_body(resp);
    CHECK_EQ_INT(h_metric(t, "dig_relay_registrations{network=\"beta\"}"), 1);
    CHECK_EQ_INT(h_metric(t, "dig_relay_registrations{network=\"other\"}"), 0);
    CHECK_EQ_INT(h_metric(t, "dig_relay_networks"), 2);
    CHECK_EQ_INT(h_metric(t, REFUSED("capacity", "4")), 0);
    CHECK(h_metric(t, "dig_relay_open_connections") >= 4);   /* a, b, c, u and this request */
    CHECK(h_metric(t, "process_resident_memory_bytes") > 0);
    CHECK(h_metric(t, "process_open_fds") > 0);
    CHECK(h_metric(t, "process_start_time_seconds") > 1700000000);
    CHECK(strstr(t, "\nprocess_cpu_seconds_total ") != NULL);
    CHECK(strstr(t, "\ndig_relay_build_info{version=\"" DIG_RELAY_VERSION "\",features=\"") != NULL);
    bool ran;
    bool ok = h_promtool_accepts(t, &ran);
    if (ran)
        CHECK(ok);
    else
        printf("  (promtool check skipped: prometheus not installed)\n");
    wsc_close(&a);
    wsc_close(&b);
    wsc_close(&c);
    wsc_close(&d);
    wsc_close(&e);
    wsc_close(&u);
    STOP_OK();
}

/* Opens a WebSocket from src and keeps sending pings until the relay closes it; true when
 * it closed with 1008 (a limit) within the deadline. pad makes each ping that many bytes. */
static bool flood_until_closed(const char *src, size_t pad, unsigned gap_ms)
{
    ws_client c;
    wsc_opts o = { .port = h_relay.port, .src = src, .timeout_ms = WAIT };
    if (!wsc_connect(&c, &o)) {
        printf("  flood from %s: %s\n", src, c.err);
        return false;
    }
    char *m = malloc(pad + 64);
    if (!m)
        return false;
    int k = snprintf(m, pad + 64, "{\"type\":\"ping\",\"timestamp\":1,\"pad\":\"");
    memset(m + k, 'x', pad);
    memcpy(m + k + pad, "\"}", 3);
    uint64_t deadline = h_now_ms() + SLOW;
    int code = -1;
    while (code < 0 && h_now_ms() < deadline) {
        wsc_send_text(&c, m);
        /* read what comes back (each ping gets an error: not registered) for gap_ms */
        uint64_t next = h_now_ms() + gap_ms;
        do {
            int r = wsc_recv_frame(&c, gap_ms ? 50 : 0);
            if (r == WSC_OK && c.msg_opcode == 8)
                code = c.close_code;
            else if (r == WSC_EOF || r == WSC_CLOSED || r == WSC_ERROR)
                code = r == WSC_CLOSED ? c.close_code : 0;
        } while (code < 0 && h_now_ms() < next);
    }
    free(m);
    wsc_close(&c);
    if (code != 1008)
        printf("  flood from %s ended with %d\n", src, code);
    return code == 1008;
}

/* Refusals that close or never open a connection, each from its own source: the global and
 * per-IP socket caps, both registration limits (code 7), the message, byte and lifetime limits,
 * a ban after three strikes, and a liveness prune. */
static void test_connection_refusals_counted(void)
{
    const char *const args[] = {
        "--max-connections", "5", "--max-connections-per-ip", "3",
        "--registrations-per-ip-per-sec", "2", "--max-registrations-per-ip", "1",
        "--messages-per-conn-per-sec", "10", "--bytes-per-conn-per-sec", "4000",
        "--max-relayed-bytes-per-conn", "6000", "--ban-threshold", "3",
        "--liveness-deadline-secs", "2", "--health-check-interval-secs", "1",
        "--idle-timeout-secs", "30", NULL };
    REQUIRE(h_start(args));
    bool closed;

    /* global cap: a sixth socket from anyone; per-IP cap: a fourth from .26 */
    int s[5];
    const char *src[5] = { "127.0.0.21", "127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24" };
    for (int i = 0; i < 5; i++)
        REQUIRE((s[i] = tcp_connect("127.0.0.1", h_relay.port, src[i], WAIT)) >= 0);
    int extra = tcp_connect("127.0.0.1", h_relay.port, "127.0.0.25", WAIT);
    CHECK(extra >= 0 && tcp_wait_closed(extra, WAIT));
    if (extra >= 0)
        close(extra);
    for (int i = 0; i < 5; i++)
        close(s[i]);
    CHECK(WAIT_BODY("/stats.json", "\"open_connections\":1,"));   /* the request alone */
    for (int i = 0; i < 3; i++)
        REQUIRE((s[i] = tcp_connect("127.0.0.1", h_relay.port, "127.0.0.26", WAIT)) >= 0);
    extra = tcp_connect("127.0.0.1", h_relay.port, "127.0.0.26", WAIT);
    CHECK(extra >= 0 && tcp_wait_closed(extra, WAIT));
    if (extra >= 0)
        close(extra);
    for (int i = 0; i < 3; i++)
        close(s[i]);
    CHECK(wait_sample(REFUSED("max_connections", "none"), 1) >= 1);   /* a request may be too */
    CHECK(wait_sample(REFUSED("too_many_connections", "none"), 1) == 1);

    /* three registers from .27 sent back to back: the first the relay reads holds the one
     * registration allowed, the next is over that cap, the last over two a second */
    ws_client r[3];
    wsc_opts o = { .port = h_relay.port, .src = "127.0.0.27", .timeout_ms = WAIT };
    char reg[512];
    for (int i = 0; i < 3; i++)
        REQUIRE(wsc_connect(&r[i], &o));
    for (int i = 0; i < 3; i++) {
        h_register_json(reg, sizeof reg, id64((char)('1' + i)), "alpha", NULL);
        CHECK(wsc_send_text(&r[i], reg));
    }
    int accepted = 0;   /* which one comes first is the relay's to decide: one of them */
    for (int i = 0; i < 3; i++) {
        CHECK(wsc_recv_type(&r[i], "register_ack", WAIT) == WSC_OK);
        if (strstr((const char *)r[i].msg, "\"success\":true"))
            accepted++;
        else
            CHECK(wsc_recv_type(&r[i], "error", WAIT) == WSC_OK && strstr((const char *)r[i].msg, "\"code\":7"));
    }
    CHECK_EQ_INT(accepted, 1);
    CHECK(wait_sample(REFUSED("too_many_registrations", "7"), 1) == 1);
    CHECK(wait_sample(REFUSED("register_rate", "7"), 1) == 1);
    for (int i = 0; i < 3; i++)
        wsc_close(&r[i]);

    /* frame limits, each closing with 1008: message rate (.28), byte rate (.29), and the
     * lifetime budget (.30: 2500-byte messages 1.2 s apart stay under the byte rate) */
    CHECK(flood_until_closed("127.0.0.28", 10, 0));
    CHECK(flood_until_closed("127.0.0.29", 2500, 0));
    CHECK(flood_until_closed("127.0.0.30", 2500, 1200));
    CHECK(wait_sample(REFUSED("message_rate", "none"), 1) == 1);
    CHECK(wait_sample(REFUSED("byte_rate", "none"), 1) == 1);
    CHECK(wait_sample(REFUSED("lifetime_bytes", "none"), 1) == 1);

    /* a ban: three strikes from .31 (the message rate three times), then its sockets are refused */
    for (int i = 0; i < 3; i++)
        CHECK(flood_until_closed("127.0.0.31", 10, 0));
    extra = tcp_connect("127.0.0.1", h_relay.port, "127.0.0.31", WAIT);
    CHECK(extra >= 0 && tcp_recv_until_close(extra, resp, sizeof resp, WAIT, &closed) == 0 && closed);
    if (extra >= 0)
        close(extra);
    CHECK(wait_sample(REFUSED("banned", "none"), 1) == 1);
    CHECK(wait_sample("dig_relay_bans_total", 1) == 1);
    /* strikes: the per-IP cap, the two registration limits, six floods */
    CHECK_EQ_INT(h_metric(h_http_body(resp), "dig_relay_strikes_total"), 9);

    /* a registered peer that goes silent is pruned at the liveness deadline (the first
     * registration of .27 may have been pruned too before it closed) */
    ws_client quiet;
    REQUIRE(join(&quiet, "127.0.0.32", NULL, id64('q'), "alpha", NULL));
    CHECK_EQ_INT(wsc_expect_close(&quiet, SLOW), 1001);
    wsc_close(&quiet);
    CHECK(wait_sample("dig_relay_liveness_prunes_total", 1) >= 1);
    STOP_OK();
}

/* ---------------------------------------------------------------- RLY-009 */

/* Answers every get_dht_records that arrives on c with answer; pongs and notifications are
 * skipped. Returns how many questions it answered. */
static int answer_questions(ws_client *c, const char *answer, unsigned wait_ms)
{
    int n = 0;
    while (wsc_recv_msg(c, wait_ms) == WSC_OK) {
        const char *m = (const char *)c->msg;
        if (hj_is_type(m, "get_dht_records")) {
            CHECK_EQ_STR(m, QUESTION);
            wsc_send_text(c, answer);
            n++;
        }
        wait_ms = 0;
    }
    return n;
}

/* With a one-second sweep: registered peers are asked byte for byte, their answers make the
 * view (MAX of providers, reported_by, order), an answer is never answered, an unregistered
 * socket can neither answer nor ask (code 1), and a registered peer asking gets code 2 and
 * keeps its connection. */
static void test_rly009_sweep(void)
{
    const char *const args[] = { "--dht-sweep-interval-secs", "1", "--register-timeout-secs", "120", NULL };
    REQUIRE(h_start(args));
    const char *A = id64('a'), *B = id64('b');
    ws_client a, b, u;
    REQUIRE(join(&a, NULL, NULL, A, "alpha", NULL));
    REQUIRE(join(&b, NULL, NULL, B, "beta", NULL));
    REQUIRE(wsc_connect_port(&u, h_relay.port));

    /* the question, through each registered peer's queue; never to the unregistered socket */
    CHECK(wsc_recv_type(&a, "get_dht_records", SLOW) == WSC_OK && strcmp((const char *)a.msg, QUESTION) == 0);
    CHECK(wsc_recv_type(&b, "get_dht_records", SLOW) == WSC_OK && strcmp((const char *)b.msg, QUESTION) == 0);
    static const char answer_a[] =
        "{\"type\":\"dht_records\",\"records\":[{\"content_key\":\"k1\",\"providers\":4},"
        "{\"content_key\":\"<script>alert(1)</script>\",\"providers\":1}],\"total_keys\":2,\"truncated\":false}";
    static const char answer_b[] =
        "{\"type\":\"dht_records\",\"records\":[{\"content_key\":\"k1\",\"providers\":2},"
        "{\"content_key\":\"k2\",\"providers\":9}],\"total_keys\":2,\"truncated\":false}";
    static const char forged[] =
        "{\"type\":\"dht_records\",\"records\":[{\"content_key\":\"forged\",\"providers\":99}],"
        "\"total_keys\":1,\"truncated\":false}";
    CHECK(wsc_send_text(&a, answer_a));
    CHECK(wsc_send_text(&a, answer_a));      /* a replay in the same sweep counts once */
    CHECK(wsc_send_text(&b, answer_b));
    /* an answer gets no answer; the connections stay open */
    CHECK(nothing_but_pong(&a, 11));
    CHECK(nothing_but_pong(&b, 12));
    /* the unregistered socket: neither its answer nor its question is taken */
    questions_skipped = 0;
    CHECK(wsc_send_text(&u, forged));
    CHECK(next_is(&u, "{\"type\":\"error\",\"code\":1,\"message\":\"register before sending other messages (RLY-001)\"}"));
    CHECK(wsc_send_text(&u, "{\"type\":\"get_dht_records\",\"max_keys\":500}"));
    CHECK(next_is(&u, "{\"type\":\"error\",\"code\":1,\"message\":\"register before sending other messages (RLY-001)\"}"));
    CHECK_EQ_INT(questions_skipped, 0);
    /* a registered peer asking: code 2, and its reservation stays */
    CHECK(wsc_send_text(&b, "{\"type\":\"get_dht_records\",\"max_keys\":500}"));
    CHECK(next_is(&b, "{\"type\":\"error\",\"code\":2,\"message\":\"get_dht_records is relay-to-node only (RLY-009)\"}"));
    CHECK(nothing_but_pong(&b, 13));

    /* Later sweeps ask again: keep answering until the view shows both peers' reports. */
    static const char view[] =
        "\"reporting_peers\":2,\"total_keys\":3,\"truncated\":false,\"keys\":["
        "{\"content_key\":\"k1\",\"providers\":4,\"reported_by\":2},"
        "{\"content_key\":\"k2\",\"providers\":9,\"reported_by\":1},"
        "{\"content_key\":\"<script>alert(1)</script>\",\"providers\":1,\"reported_by\":1}]}";
    uint64_t deadline = h_now_ms() + 3 * SLOW;
    bool seen = false, counted = false;
    char dht[4096] = "";
    while (!(seen && counted) && h_now_ms() < deadline) {
        answer_questions(&a, answer_a, 50);
        answer_questions(&b, answer_b, 50);
        if (!seen && http("GET", "/dht.json") && strstr(h_http_body(resp), view)) {
            seen = true;
            snprintf(dht, sizeof dht, "%s", h_http_body(resp));
        }
        counted = counted || (http("GET", "/metrics") &&
                              h_metric(h_http_body(resp), "dig_relay_dht_reporting_peers") == 2 &&
                              h_metric(h_http_body(resp), "dig_relay_dht_keys") == 3);
    }
    if (!seen)
        printf("  last /dht.json: %s\n", h_http_body(resp));
    CHECK(seen && counted);
    CHECK(h_starts_with(dht, "{\"schema_version\":1,\"generated_at\":"));
    CHECK(!strstr(dht, "forged") && !strstr(dht, A));
    /* the unregistered socket was never asked */
    while (wsc_recv_msg(&u, 0) == WSC_OK)
        CHECK(!hj_is_type((const char *)u.msg, "get_dht_records"));
    wsc_close(&a);
    wsc_close(&b);
    wsc_close(&u);
    STOP_OK();
}

/* --dht-sweep-interval-secs 0: nobody is asked, and an unsolicited answer changes nothing. */
static void test_rly009_sweep_disabled(void)
{
    const char *const args[] = { "--dht-sweep-interval-secs", "0", NULL };
    REQUIRE(h_start(args));
    ws_client a;
    REQUIRE(join(&a, NULL, NULL, id64('a'), "alpha", NULL));
    CHECK(wsc_send_text(&a, "{\"type\":\"dht_records\",\"records\":[{\"content_key\":\"k\",\"providers\":1}],"
                            "\"total_keys\":1,\"truncated\":false}"));
    h_sleep_ms(2500);
    CHECK(nothing_but_pong(&a, 1));
    REQUIRE(http("GET", "/dht.json"));
    CHECK_EQ_STR(h_http_body(resp), "{\"schema_version\":1,\"generated_at\":0,\"reporting_peers\":0,"
                                    "\"total_keys\":0,\"truncated\":false,\"keys\":[]}");
    wsc_close(&a);
    STOP_OK();
}

/* ---------------------------------------------------------------- /map.json */

/* Peers behind a trusted proxy at public addresses the test's database places: each counted
 * in its 5-degree cell by its first dialable address; peers without one, or at an address the
 * database does not know, are unknown; no address or id is in the answer. */
static void test_map_json(void)
{
    if (!relay_built_in("geoip"))
        SKIP("libmaxminddb-dev not installed");
    static const mmdb_entry entries[] = {
        { "81.2.69.0/24", 51.5142, -0.0931 },
        { "2a02:6b8::/32", 55.7522, 37.6156 },
    };
    char path[sizeof MMDB_TEMP_PATH];
    REQUIRE(mmdb_write_temp(path, entries, 2));
    const char *const args[] = { "--trusted-proxy-cidrs", "127.0.0.2", "--geoip-db", path, NULL };
    REQUIRE(h_start(args));
    ws_client p[5];
    REQUIRE(join(&p[0], "127.0.0.2", "81.2.69.142", id64('1'), "alpha", "[\"[::]:9444\"]"));
    REQUIRE(join(&p[1], "127.0.0.2", "81.2.69.7", id64('2'), "alpha", "[\"[::]:9444\"]"));
    REQUIRE(join(&p[2], "127.0.0.2", "2a02:6b8::1", id64('3'), "beta", "[\"[::]:9444\"]"));
    REQUIRE(join(&p[3], "127.0.0.2", "81.2.69.9", id64('4'), "alpha", NULL));       /* no address */
    REQUIRE(join(&p[4], "127.0.0.2", "8.8.8.8", id64('5'), "alpha", "[\"[::]:9444\"]")); /* unknown */
    CHECK(WAIT_BODY("/map.json", "{\"schema_version\":1,\"generated_at\":",
                    ",\"cell_deg\":5.0,\"total_peers\":5,\"located_peers\":3,\"unknown_peers\":2,\"cells\":["
                    "{\"lat\":52.5,\"lon\":-2.5,\"count\":2},{\"lat\":57.5,\"lon\":37.5,\"count\":1}]}"));
    const char *body = h_http_body(resp);
    CHECK(!strstr(body, "81.2") && !strstr(body, "2a02") && !strstr(body, "8.8.8.8") &&
          !strstr(body, id64('1')));
    for (int i = 0; i < 5; i++)
        wsc_close(&p[i]);
    STOP_OK();
    unlink(path);
}

/* A database that is not there (or a build without libmaxminddb): everyone unknown, still 200,
 * and a warning naming --geoip-db. */
static void test_map_json_without_database(void)
{
    ws_client p;
    const char *const missing[] = { "--trusted-proxy-cidrs", "127.0.0.2", "--geoip-db", "/nonexistent/geo.mmdb", NULL };
    REQUIRE(h_start(missing));
    REQUIRE(join(&p, "127.0.0.2", "81.2.69.142", id64('1'), "alpha", "[\"[::]:9444\"]"));
    CHECK(WAIT_BODY("/map.json", "\"total_peers\":1,\"located_peers\":0,\"unknown_peers\":1,\"cells\":[]}"));
    char *log = relay_read_log(&h_relay);
    CHECK(log && strstr(log, "WARN") && strstr(log, "/nonexistent/geo.mmdb") && strstr(log, "--geoip-db"));
    free(log);
    wsc_close(&p);
    STOP_OK();
}

int main(void)
{
    T(test_routes_and_headers);
    T(test_stats_json_counts);
    T(test_metrics_count_what_happened);
    T(test_connection_refusals_counted);
    T(test_rly009_sweep);
    T(test_rly009_sweep_disabled);
    T(test_map_json);
    T(test_map_json_without_database);
    return test_finish();
}
