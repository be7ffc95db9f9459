/* Integration tests of Peer Exchange (RLY-008, issue 4) over real WebSockets against the real
 * ./dig-relay: the capability gate (nothing PEX before register, nothing PEX to a node that never
 * sent pex_handshake), the relay's handshake and snapshot (the other registrants of the node's
 * network only, with dialable or observed addresses and flags), deltas on the relay's 60 s
 * cadence, node-sent data never advertised anywhere, pex_error codes and muting, and network
 * scoping.
 *
 * Registrants connect from distinct 127.x.y.z sources so their addresses tell them apart; peer
 * ids are 64 hex digits as on the live network. Frames are compared byte for byte with
 * wall-clock fields masked to T. Only test_deltas_follow_the_interval waits out a real interval
 * (about 70 s); everything else takes a moment. */
#include "pex.h"
#include "tests/harness.h"
#include "tests/test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#define NET "DIG_MAINNET"
#define NET_B "DIG_TESTNET"
#define WAIT 3000u      /* default wait for an expected message, ms */
#define QUIET 500u      /* how long "nothing arrives" is watched in the fast tests, ms */

/* A 64-hex-digit peer id made of one repeated digit: ID("a") is "aaaa...a". */
#define X4(s) s s s s
#define ID(s) X4(X4(X4(s)))

#define RELAY_HANDSHAKE(net) \
    "{\"type\":\"pex_handshake\",\"version\":1,\"network_id\":\"" net "\",\"interval\":60,\"flags\":[\"introducer\"]}"
#define EMPTY_SNAPSHOT "{\"type\":\"pex_snapshot\",\"peers\":[]}"



/* ---------------------------------------------------------------- nodes */

#define LOG_MAX 64

/* One WebSocket client as a node, with everything pump() received kept in order (pongs are
 * only counted). */
typedef struct {
    ws_client c;
    const char *peer_id;
    bool open;
    char *log[LOG_MAX];
    uint64_t at[LOG_MAX];      /* arrival of log[i], h_now_ms() */
    size_t n;
    size_t pongs;
    bool overflow;
    int ended;                 /* a receive result other than OK or TIMEOUT, 0 while healthy */
} node;

static void node_free(node *n)
{
    if (n->open)
        wsc_close(&n->c);
    for (size_t i = 0; i < n->n; i++)
        free(n->log[i]);
    memset(n, 0, sizeof *n);
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static bool sendf(node *n, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof buf)
        return false;
    if (!wsc_send_text(&n->c, buf)) {
        printf("  send from %.8s failed: %s\n", n->peer_id, n->c.err);
        return false;
    }
    return true;
}

/* Connects from source address src (an IPv4 loopback address, or "::1") and registers, the way
 * the live client does. listen_addrs_json is the JSON array to advertise, or NULL. */
static bool join(node *n, const char *src, const char *peer_id, const char *net,
                 const char *listen_addrs_json)
{
    memset(n, 0, sizeof *n);
    n->peer_id = peer_id;
    wsc_opts o = { .host = strchr(src, ':') ? "::1" : "127.0.0.1", .port = h_relay.port, .src = src };
    if (!wsc_connect(&n->c, &o)) {
        printf("  connect from %s for %.8s: %s\n", src, peer_id, n->c.err);
        return false;
    }
    n->open = true;
    char reg[1024];
    h_register_json(reg, sizeof reg, peer_id, net, listen_addrs_json);
    if (!wsc_send_text(&n->c, reg))
        return false;
    static const char ack[] = "{\"type\":\"register_ack\",\"success\":true,";
    int r = wsc_recv_msg(&n->c, WAIT);
    if (r != WSC_OK || strncmp((const char *)n->c.msg, ack, sizeof ack - 1) != 0) {
        printf("  register %.8s: got %s\n", peer_id, r == WSC_OK ? (const char *)n->c.msg : "nothing");
        return false;
    }
    return true;
}

/* The local (source) port of a node's connection: what the relay observes. */
static unsigned src_port(const node *n)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(n->c.fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)&ss)->sin_port);
}

/* Receives for up to ms, logging every message. */
static void pump(node *n, unsigned ms)
{
    uint64_t deadline = h_now_ms() + ms;
    while (n->open && !n->ended) {
        uint64_t now = h_now_ms();
        int r = wsc_recv_msg(&n->c, now < deadline ? (unsigned)(deadline - now) : 0);
        if (r == WSC_TIMEOUT)
            return;
        if (r != WSC_OK) {
            n->ended = r;
            return;
        }
        if (hj_is_type((const char *)n->c.msg, "pong")) {
            n->pongs++;
        } else if (n->n == LOG_MAX) {
            n->overflow = true;
        } else {
            n->log[n->n] = strdup((const char *)n->c.msg);
            n->at[n->n++] = h_now_ms();
        }
    }
}

static bool is_pex(const char *msg)
{
    char type[32];
    return hj_get_str(msg, "type", type, sizeof type) && strncmp(type, "pex_", 4) == 0;
}

/* The node's log, times masked, is exactly `want` (k messages, in order). */
static bool log_is(const node *n, const char *const *want, size_t k)
{
    bool ok = !n->overflow && !n->ended && n->n == k;
    for (size_t i = 0; ok && i < k; i++) {
        char *m = hj_mask_times(n->log[i]);
        ok = m && strcmp(m, want[i]) == 0;
        free(m);
    }
    if (!ok) {
        printf("  %.8s received (%zu messages%s%s):\n", n->peer_id, n->n,
               n->overflow ? ", log overflowed" : "", n->ended ? ", connection ended" : "");
        for (size_t i = 0; i < n->n; i++)
            printf("    got  %s\n", n->log[i]);
        for (size_t i = 0; i < k; i++)
            printf("    want %s\n", want[i]);
    }
    return ok;
}

static bool no_pex_logged(const node *n)
{
    for (size_t i = 0; i < n->n; i++)
        if (is_pex(n->log[i])) {
            printf("  %.8s got a PEX frame it must never get: %s\n", n->peer_id, n->log[i]);
            return false;
        }
    return true;
}

/* Next message, times masked, equals `masked`. */
static bool expect_masked(node *n, const char *masked)
{
    int r = wsc_recv_msg(&n->c, WAIT);
    if (r != WSC_OK) {
        printf("  %.8s expected %s\n           got nothing (%d)\n", n->peer_id, masked, r);
        return false;
    }
    char *m = hj_mask_times((const char *)n->c.msg);
    bool ok = m && strcmp(m, masked) == 0;
    if (!ok)
        printf("  %.8s expected %s\n           got %s\n", n->peer_id, masked, (const char *)n->c.msg);
    free(m);
    return ok;
}

/* Next message is {"type":"error","code":<code>,"message":"..."} from the relay's own code space. */
static bool expect_relay_error(node *n, unsigned code)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "{\"type\":\"error\",\"code\":%u,\"message\":\"", code);
    int r = wsc_recv_msg(&n->c, WAIT);
    const char *m = (const char *)n->c.msg;
    if (r != WSC_OK || strncmp(m, prefix, strlen(prefix)) != 0 || strcmp(m + n->c.msg_len - 2, "\"}") != 0) {
        printf("  expected relay error %u, got %s\n", code, r == WSC_OK ? m : "nothing");
        return false;
    }
    return true;
}

/* Next message is {"type":"pex_error","code":<code>,"message":"..."} (dig-pex SPEC §4.5). */
static bool expect_pex_error(node *n, unsigned code)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "{\"type\":\"pex_error\",\"code\":%u,\"message\":\"", code);
    int r = wsc_recv_msg(&n->c, WAIT);
    const char *m = (const char *)n->c.msg;
    if (r != WSC_OK || strncmp(m, prefix, strlen(prefix)) != 0 || strcmp(m + n->c.msg_len - 2, "\"}") != 0 ||
        n->c.msg_len == strlen(prefix) + 2) {
        printf("  expected pex_error %u, got %s\n", code, r == WSC_OK ? m : "nothing");
        return false;
    }
    return true;
}

/* A ping answered by its pong as the very next message: the connection is open and nothing
 * else was queued for it in between. */
static bool pong_next(node *n, unsigned ts)
{
    char pong[80];
    snprintf(pong, sizeof pong, "{\"type\":\"pong\",\"timestamp\":%u}", ts);
    return sendf(n, "{\"type\":\"ping\",\"timestamp\":%u}", ts) && wsc_expect_msg(&n->c, pong, WAIT);
}

/* ---------------------------------------------------------------- expected frames */

/* Appends printf output to a NUL-terminated buffer (truncation shows up as a mismatch). */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void cat(char *buf, size_t cap, const char *fmt, ...)
{
    size_t len = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    if (len < cap)
        vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
}

/* A node's own handshake, as dig-nat would send it. */
static bool send_handshake(node *n, const char *net, unsigned interval)
{
    return sendf(n, "{\"type\":\"pex_handshake\",\"version\":1,\"network_id\":\"%s\",\"interval\":%u,"
                    "\"flags\":[\"storage\",\"holepunch\"]}", net, interval);
}

/* One reflexive address object. */
static void reflexive(char *out, size_t cap, const char *host, unsigned port)
{
    snprintf(out, cap, "{\"host\":\"%s\",\"port\":%u,\"kind\":\"reflexive\"}", host, port);
}

/* An introducer entry with last_seen masked; addresses is the inside of the array. */
static void entry(char *out, size_t cap, const char *id, const char *net, const char *addresses,
                  bool relay_only)
{
    snprintf(out, cap, "{\"peer_id\":\"%s\",\"addresses\":[%s],\"network_id\":\"%s\",\"last_seen\":T,"
                       "\"via\":\"introducer\",\"flags\":[%s]}", id, addresses, net,
             relay_only ? "\"relay-only\"" : "");
}

/* The entry of a node that registered without listen_addrs: its observed source, relay-only. */
static void observed_entry(char *out, size_t cap, const node *n, const char *host, const char *net)
{
    char a[160];
    reflexive(a, sizeof a, host, src_port(n));
    entry(out, cap, n->peer_id, net, a, true);
}

/* peer_connected as the core relay writes it, times masked. addresses_json may be NULL. */
static void peer_connected(char *out, size_t cap, const char *id, const char *net,
                           const char *addresses_json)
{
    snprintf(out, cap, "{\"type\":\"peer_connected\",\"peer\":{\"peer_id\":\"%s\",\"network_id\":\"%s\","
                       "\"protocol_version\":1,\"connected_at\":T,\"last_seen\":T%s%s}}", id, net,
             addresses_json ? ",\"addresses\":" : "", addresses_json ? addresses_json : "");
}

static void peer_disconnected(char *out, size_t cap, const char *id)
{
    snprintf(out, cap, "{\"type\":\"peer_disconnected\",\"peer_id\":\"%s\"}", id);
}

/* A made-up entry a node might claim to know, in dig-pex shape. */
static void fake_entry(char *out, size_t cap, const char *id, const char *host, unsigned port)
{
    snprintf(out, cap, "{\"peer_id\":\"%s\",\"addresses\":[{\"host\":\"%s\",\"port\":%u,\"kind\":\"direct\"}],"
                       "\"network_id\":\"" NET "\",\"last_seen\":%lld,\"via\":\"direct\",\"flags\":[\"storage\"]}",
             id, host, port, (long long)time(NULL));
}

/* The value of "last_seen" of the entry for peer id inside msg, 0 when absent. */
static uint64_t last_seen_of(const char *msg, const char *id)
{
    const char *p = strstr(msg, id);
    const char *ls = p ? strstr(p, "\"last_seen\":") : NULL;
    return ls ? strtoull(ls + 12, NULL, 10) : 0;
}

/* ---------------------------------------------------------------- 1: the gate */

/* Before register a pex_ frame gets the relay's error{1}; a registered node that never sent
 * pex_handshake (including one whose only handshake came before it registered) sees the wire
 * exactly as RLY-001..007, while PEX links come up and registrants come and go around it. */
static void test_gate_and_legacy_view(void)
{
    REQUIRE(relay_start_args(&h_relay, NULL));
    static const char G[] = ID("b"), L[] = ID("a"), N[] = ID("f"), P[] = ID("c");
    node g = { 0 }, l = { 0 }, n = { 0 }, p = { 0 };
    char buf[1024], pc_l[1024], pc_n[1024], pc_p[1024], pd_p[160];

    /* Early handshake on an unregistered connection, then it registers on the same one. */
    wsc_opts o = { .port = h_relay.port, .src = "127.0.0.31" };
    REQUIRE(wsc_connect(&g.c, &o));
    g.open = true;
    g.peer_id = G;
    CHECK(send_handshake(&g, NET, 60));
    CHECK(expect_relay_error(&g, 1));
    CHECK(sendf(&g, "{\"type\":\"pex_delta\",\"added\":[],\"dropped\":[]}"));
    CHECK(expect_relay_error(&g, 1));
    h_register_json(buf, sizeof buf, G, NET, NULL);
    CHECK(wsc_send_text(&g.c, buf));
    CHECK(expect_masked(&g, "{\"type\":\"register_ack\",\"success\":true,\"message\":\"registered\",\"connected_peers\":1}"));

    /* L registers with listen_addrs and asks for peers, as dig-nat does on connect. */
    REQUIRE(join(&l, "127.0.0.32", L, NET, "[\"0.0.0.0:9444\"]"));
    CHECK(sendf(&l, "{\"type\":\"get_peers\",\"network_id\":\"" NET "\"}"));
    int r = wsc_recv_msg(&l.c, WAIT);
    CHECK(r == WSC_OK && hj_is_type((const char *)l.c.msg, "peers") &&
          h_count((const char *)l.c.msg, "\"peer_id\":") == 2 && strstr((const char *)l.c.msg, G) &&
          !is_pex((const char *)l.c.msg));
    /* A registered node's pex_ data frame before any handshake of its own: silently ignored,
     * no pex_error (nothing PEX goes to a node that has not sent pex_handshake). */
    CHECK(sendf(&l, "{\"type\":\"pex_delta\",\"added\":[],\"dropped\":[]}"));
    CHECK(sendf(&l, "{\"type\":\"pex_snapshot\",\"peers\":5}"));
    CHECK(pong_next(&l, 11));

    /* A PEX node comes up; P comes and goes. */
    REQUIRE(join(&n, "127.0.0.33", N, NET, NULL));
    CHECK(send_handshake(&n, NET, 60));
    CHECK(wsc_expect_msg(&n.c, RELAY_HANDSHAKE(NET), WAIT));
    CHECK(wsc_recv_msg(&n.c, WAIT) == WSC_OK && hj_is_type((const char *)n.c.msg, "pex_snapshot"));
    REQUIRE(join(&p, "127.0.0.34", P, NET, NULL));
    node_free(&p);
    CHECK(wsc_recv_type(&n.c, "peer_disconnected", WAIT) == WSC_OK);

    pump(&g, QUIET);
    pump(&l, QUIET);
    peer_connected(pc_l, sizeof pc_l, L, NET, "[\"127.0.0.32:9444\"]");
    peer_connected(pc_n, sizeof pc_n, N, NET, NULL);
    peer_connected(pc_p, sizeof pc_p, P, NET, NULL);
    peer_disconnected(pd_p, sizeof pd_p, P);
    const char *want_g[] = { pc_l, pc_n, pc_p, pd_p };
    const char *want_l[] = { pc_n, pc_p, pd_p };
    CHECK(log_is(&g, want_g, 4));
    CHECK(log_is(&l, want_l, 3));
    CHECK(pong_next(&g, 12));
    CHECK(pong_next(&l, 13));
    node_free(&g);
    node_free(&l);
    node_free(&n);
}

/* ---------------------------------------------------------------- 2: handshake and snapshot */

/* The relay answers a node's handshake with its own (version 1, the node's network, interval
 * 60, ["introducer"]) and one snapshot of the other registrants of that network, freshest first:
 * dialable addresses (observed IP, advertised port, host without brackets) without relay-only
 * for those that advertised listen_addrs; the observed source with relay-only for the others.
 * Never the requester, never another network. A handshake carrying fields the relay does not
 * know (a payment claim) is still accepted. */
static void test_handshake_and_snapshot(void)
{
    relay_opts ro = { .listen_host = "[::]" };
    REQUIRE(relay_start(&h_relay, &ro));
    static const char P1[] = ID("1"), P2[] = ID("2"), P3[] = ID("3"), P4[] = ID("4"), N[] = ID("8");
    node p1 = { 0 }, p2 = { 0 }, p3 = { 0 }, p4 = { 0 }, n = { 0 };

    /* Ids and registration order agree on ties of freshness (whole seconds): the later
     * registration has the smaller id. P2 registers a second later, so it leads although its
     * id is larger than P1's. */
    REQUIRE(join(&p4, "::1", P4, NET, "[\"[::]:9448\"]"));
    REQUIRE(join(&p3, "127.0.0.13", P3, NET_B, NULL));
    REQUIRE(join(&p1, "127.0.0.11", P1, NET, NULL));
    h_sleep_ms(1100);
    REQUIRE(join(&p2, "127.0.0.12", P2, NET, "[\"0.0.0.0:9445\",\"[::]:9446\"]"));
    uint64_t wall_before = (uint64_t)time(NULL);
    REQUIRE(join(&n, "127.0.0.14", N, NET, NULL));

    CHECK(sendf(&n, "{\"type\":\"pex_handshake\",\"version\":1,\"network_id\":\"" NET "\",\"interval\":120,"
                    "\"flags\":[\"storage\"],\"payment\":{\"address\":\"xch1qqqq\",\"spki\":\"AAAA\",\"sig\":\"AAAA\"}}"));
    CHECK(wsc_expect_msg(&n.c, RELAY_HANDSHAKE(NET), WAIT));

    char a1[160], a2[160], e1[1024], e2[1024], e4[1024], want[4096] = "";
    observed_entry(e1, sizeof e1, &p1, "127.0.0.11", NET);
    reflexive(a1, sizeof a1, "127.0.0.12", 9445);
    reflexive(a2, sizeof a2, "127.0.0.12", 9446);
    char both[400];
    snprintf(both, sizeof both, "%s,%s", a1, a2);
    entry(e2, sizeof e2, P2, NET, both, false);
    reflexive(a1, sizeof a1, "::1", 9448);
    entry(e4, sizeof e4, P4, NET, a1, false);
    cat(want, sizeof want, "{\"type\":\"pex_snapshot\",\"peers\":[%s,%s,%s]}", e2, e1, e4);
    CHECK(expect_masked(&n, want));

    /* last_seen is the registrant's recent activity, in wall-clock seconds. */
    const char *snap = (const char *)n.c.msg;
    uint64_t wall_after = (uint64_t)time(NULL);
    uint64_t seen2 = last_seen_of(snap, P2), seen1 = last_seen_of(snap, P1);
    CHECK(seen2 + 2 >= wall_before && seen2 <= wall_after);
    CHECK(seen1 + 4 >= wall_before && seen1 <= seen2);
    CHECK(strstr(snap, P3) == NULL && strstr(snap, NET_B) == NULL && strstr(snap, N) == NULL);
    CHECK(strstr(snap, "ffff") == NULL && strchr(snap, '[') != NULL && strstr(snap, "\"[") == NULL);

    /* Exactly one handshake and one snapshot: nothing else follows for now. */
    CHECK(pong_next(&n, 21));
    node_free(&p1);
    node_free(&p2);
    node_free(&p3);
    node_free(&p4);
    node_free(&n);
}

/* ---------------------------------------------------------------- 3: deltas */

/* Fires a ping on each open node (the live client pings every 30 s); pongs are counted by pump. */
static void ping_all(node *const *all, size_t k, unsigned ts)
{
    for (size_t i = 0; i < k; i++)
        if (all[i]->open)
            sendf(all[i], "{\"type\":\"ping\",\"timestamp\":%u}", ts);
}

static void pump_all(node *const *all, size_t k)
{
    for (size_t i = 0; i < k; i++)
        pump(all[i], 0);
}

/* Index of the first pex_delta in a node's log, or -1. */
static long first_delta(const node *n)
{
    for (size_t i = 0; i < n->n; i++)
        if (hj_is_type(n->log[i], "pex_delta"))
            return (long)i;
    return -1;
}

/* The one long test. Once N's link is up, C registers and B disconnects; both arrive at N as
 * one pex_delta no sooner than 60 s after the snapshot (N declared 30 s: the relay's 60 s is the
 * floor) and within 60 s + 10% jitter + slack. Along the way:
 *  - M, another PEX node, sends a snapshot and later a delta full of made-up peers (one claiming
 *    A's id with another address, one dropping A): none of it reaches N's snapshot or delta;
 *  - pings refresh everyone's last_seen but never re-advertise an unchanged entry;
 *  - X, a PEX link on another network, receives nothing at all: no delta crosses networks and
 *    no empty delta is ever sent;
 *  - legacy nodes (L, A, C) see only RLY-001..007 traffic;
 *  - /metrics counts the three snapshots and two deltas sent.
 * The RLY-009 sweep is off: at 60 s it would ask every node for its DHT records.
 * It runs about 75 s. */
static void test_deltas_follow_the_interval(void)
{
    static const char *const no_sweep[] = { "--dht-sweep-interval-secs", "0", NULL };
    REQUIRE(relay_start_args(&h_relay, no_sweep));
    static const char A[] = ID("a"), B[] = ID("b"), C[] = ID("c"), M[] = ID("d"), L[] = ID("e"),
                      N[] = ID("f"), X[] = ID("9"), FAKE[] = ID("7"), FAKE2[] = ID("6");
    node a = { 0 }, b = { 0 }, c = { 0 }, m = { 0 }, l = { 0 }, n = { 0 }, x = { 0 };
    node *const all[] = { &a, &b, &c, &m, &l, &n, &x };
    const size_t k = sizeof all / sizeof all[0];
    char eA[1024], eB[1024], eL[1024], eM[1024], eC[1024], ad[160], f1[1024], f2[1024];
    static char want[8192];

    /* Registration order makes freshness and id order agree (see test 2): L, M, B, A. */
    REQUIRE(join(&l, "127.0.0.23", L, NET, "[\"0.0.0.0:9444\"]"));
    REQUIRE(join(&m, "127.0.0.24", M, NET, NULL));
    uint64_t m_hs = h_now_ms();
    CHECK(send_handshake(&m, NET, 60));
    CHECK(wsc_expect_msg(&m.c, RELAY_HANDSHAKE(NET), WAIT));
    reflexive(ad, sizeof ad, "127.0.0.23", 9444);
    entry(eL, sizeof eL, L, NET, ad, false);
    snprintf(want, sizeof want, "{\"type\":\"pex_snapshot\",\"peers\":[%s]}", eL);
    CHECK(expect_masked(&m, want));
    fake_entry(f1, sizeof f1, FAKE, "203.0.113.9", 9444);
    fake_entry(f2, sizeof f2, A, "6.6.6.6", 6666);
    CHECK(sendf(&m, "{\"type\":\"pex_snapshot\",\"peers\":[%s,%s]}", f1, f2));
    uint64_t m_data = h_now_ms();
    CHECK(pong_next(&m, 30));   /* accepted silently */

    REQUIRE(join(&b, "127.0.0.22", B, NET, NULL));
    REQUIRE(join(&a, "127.0.0.21", A, NET, NULL));
    REQUIRE(join(&x, "127.0.0.27", X, NET_B, NULL));
    CHECK(send_handshake(&x, NET_B, 60));
    CHECK(wsc_expect_msg(&x.c, RELAY_HANDSHAKE(NET_B), WAIT));
    CHECK(wsc_expect_msg(&x.c, EMPTY_SNAPSHOT, WAIT));

    REQUIRE(join(&n, "127.0.0.26", N, NET, NULL));
    /* N handshakes after 7 s in which nobody sends anything, as a node may on a quiet relay: the
     * relay must time the snapshot when it sends it, not when it last woke up (more than 6 s of
     * staleness would let the delta out before 60 s whatever the jitter). */
    h_sleep_ms(7000);
    uint64_t n_hs = h_now_ms();
    CHECK(send_handshake(&n, NET, 30));
    CHECK(wsc_expect_msg(&n.c, RELAY_HANDSHAKE(NET), WAIT));
    observed_entry(eA, sizeof eA, &a, "127.0.0.21", NET);
    observed_entry(eB, sizeof eB, &b, "127.0.0.22", NET);
    observed_entry(eM, sizeof eM, &m, "127.0.0.24", NET);
    snprintf(want, sizeof want, "{\"type\":\"pex_snapshot\",\"peers\":[%s,%s,%s,%s]}", eA, eB, eM, eL);
    CHECK(expect_masked(&n, want));
    uint64_t t0 = h_now_ms();

    /* The changes, then the wait, pinging every 20 s and polling everyone. M may send its next
     * data message 55 s after its snapshot (its declared 60 s less the 5 s grace); it does so at
     * 57 s, after a quiet spell, so the relay must judge it by the time it arrives. */
    bool c_joined = false, b_left = false, m_lied = false;
    unsigned next_ping = 20000, ts = 100;
    uint64_t c_wall = 0;
    while (h_now_ms() < t0 + 68500 && (first_delta(&n) < 0 || first_delta(&m) < 0)) {
        uint64_t el = h_now_ms() - t0;
        if (!c_joined && el >= 1000) {
            c_wall = (uint64_t)time(NULL);
            REQUIRE(join(&c, "127.0.0.25", C, NET, "[\"[::]:9450\"]"));
            c_joined = true;
        }
        if (!b_left && el >= 2000) {
            node_free(&b);
            b_left = true;
        }
        if (!m_lied && h_now_ms() >= m_data + 57000) {
            fake_entry(f1, sizeof f1, FAKE2, "198.51.100.7", 9444);
            CHECK(sendf(&m, "{\"type\":\"pex_delta\",\"added\":[%s],\"dropped\":[\"%s\"]}", f1, A));
            m_lied = true;
        }
        if (el >= next_ping) {
            ping_all(all, k, ts++);
            next_ping += 20000;
        }
        pump_all(all, k);
        h_sleep_ms(10);
    }
    /* Nothing further is due: a second of quiet everywhere, then every connection still answers. */
    for (int i = 0; i < 100; i++) {
        pump_all(all, k);
        h_sleep_ms(10);
    }
    ping_all(all, k, 999);
    h_sleep_ms(200);
    pump_all(all, k);
    CHECK(m_lied);

    /* N: the notifications, then exactly one delta carrying both changes. */
    long d = first_delta(&n);
    REQUIRE(d >= 0);
    uint64_t arrived = n.at[d];
    printf("  delta to N %.1f s after its snapshot\n", (double)(arrived - t0) / 1000.0);
    CHECK(arrived >= n_hs + 60000);
    CHECK(arrived <= t0 + 66000 + 2500);
    reflexive(ad, sizeof ad, "127.0.0.25", 9450);
    entry(eC, sizeof eC, C, NET, ad, false);
    char pc_c[1024], pd_b[160], delta[2048];
    peer_connected(pc_c, sizeof pc_c, C, NET, "[\"127.0.0.25:9450\"]");
    peer_disconnected(pd_b, sizeof pd_b, B);
    snprintf(delta, sizeof delta, "{\"type\":\"pex_delta\",\"added\":[%s],\"dropped\":[\"%s\"]}", eC, B);
    const char *want_n[] = { pc_c, pd_b, delta };
    CHECK(log_is(&n, want_n, 3));
    uint64_t seenC = last_seen_of(n.log[d], C);
    CHECK(seenC + 1 >= c_wall && seenC <= (uint64_t)time(NULL));

    /* M: its own delta, not before its interval; B came and went unseen by it, so it is neither
     * added nor dropped there. No pex_error ever: its data was valid, merely ignored. */
    d = first_delta(&m);
    REQUIRE(d >= 0);
    CHECK(m.at[d] >= m_hs + 60000);
    const char *md = m.log[d];
    CHECK(h_count(md, "\"peer_id\":") == 3 && strstr(md, A) && strstr(md, N) && strstr(md, C) &&
          strstr(md, B) == NULL && strstr(md, FAKE) == NULL && strstr(md, FAKE2) == NULL);
    size_t mdl = strlen(md);
    CHECK(mdl > 13 && strcmp(md + mdl - 13, "\"dropped\":[]}") == 0);
    for (size_t i = 0; i < m.n; i++)
        if (i != (size_t)d && is_pex(m.log[i])) {
            printf("  M got an unexpected PEX frame: %s\n", m.log[i]);
            test_cur_failed = 1;
        }

    /* Nobody else ever saw a fake id, and A was never dropped. */
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < all[i]->n; j++)
            CHECK(strstr(all[i]->log[j], FAKE) == NULL && strstr(all[i]->log[j], FAKE2) == NULL &&
                  strstr(all[i]->log[j], "6.6.6.6") == NULL);

    /* Legacy views and the other network. */
    char pc_m[1024], pc_b[1024], pc_a[1024], pc_n[1024];
    peer_connected(pc_m, sizeof pc_m, M, NET, NULL);
    peer_connected(pc_b, sizeof pc_b, B, NET, NULL);
    peer_connected(pc_a, sizeof pc_a, A, NET, NULL);
    peer_connected(pc_n, sizeof pc_n, N, NET, NULL);
    const char *want_l[] = { pc_m, pc_b, pc_a, pc_n, pc_c, pd_b };
    const char *want_a[] = { pc_n, pc_c, pd_b };
    const char *want_c[] = { pd_b };
    CHECK(log_is(&l, want_l, 6));
    CHECK(log_is(&a, want_a, 3));
    CHECK(log_is(&c, want_c, 1));
    CHECK(log_is(&x, NULL, 0));
    for (size_t i = 0; i < k; i++)
        if (all[i]->open)
            CHECK(all[i]->pongs >= 3 && !all[i]->ended);
    /* /metrics counts what was sent: snapshots to M, X and N, deltas to N and M */
    static char metrics[1 << 16];
    REQUIRE(h_http("127.0.0.1", h_relay.port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", metrics,
                   sizeof metrics, WAIT) > 0);
    CHECK_EQ_INT(h_metric(metrics, "dig_relay_pex_snapshots_total"), 3);
    CHECK_EQ_INT(h_metric(metrics, "dig_relay_pex_deltas_total"), 2);
    for (size_t i = 0; i < k; i++)
        node_free(all[i]);
}

/* ---------------------------------------------------------------- 4: node-sent data */

/* A node's snapshot of made-up peers (one of them claiming a real registrant's id with another
 * address) is accepted silently and never surfaces: not in another node's snapshot, not in
 * get_peers. */
static void test_node_data_never_shows_up(void)
{
    REQUIRE(relay_start_args(&h_relay, NULL));
    static const char A[] = ID("a"), M[] = ID("d"), N[] = ID("f"), FAKE[] = ID("7");
    node a = { 0 }, m = { 0 }, n = { 0 };
    char f1[1024], f2[1024], eA[1024], eM[1024], want[4096];

    REQUIRE(join(&m, "127.0.0.41", M, NET, NULL));
    CHECK(send_handshake(&m, NET, 60));
    CHECK(wsc_expect_msg(&m.c, RELAY_HANDSHAKE(NET), WAIT));
    CHECK(wsc_expect_msg(&m.c, EMPTY_SNAPSHOT, WAIT));
    fake_entry(f1, sizeof f1, FAKE, "203.0.113.9", 9444);
    fake_entry(f2, sizeof f2, A, "6.6.6.6", 6666);
    CHECK(sendf(&m, "{\"type\":\"pex_snapshot\",\"peers\":[%s,%s]}", f1, f2));
    CHECK(pong_next(&m, 41));

    REQUIRE(join(&a, "127.0.0.42", A, NET, NULL));
    REQUIRE(join(&n, "127.0.0.43", N, NET, NULL));
    CHECK(send_handshake(&n, NET, 60));
    CHECK(wsc_expect_msg(&n.c, RELAY_HANDSHAKE(NET), WAIT));
    observed_entry(eA, sizeof eA, &a, "127.0.0.42", NET);
    observed_entry(eM, sizeof eM, &m, "127.0.0.41", NET);
    snprintf(want, sizeof want, "{\"type\":\"pex_snapshot\",\"peers\":[%s,%s]}", eA, eM);
    CHECK(expect_masked(&n, want));

    CHECK(sendf(&n, "{\"type\":\"get_peers\",\"network_id\":\"" NET "\"}"));
    int r = wsc_recv_msg(&n.c, WAIT);
    const char *peers = (const char *)n.c.msg;
    CHECK(r == WSC_OK && hj_is_type(peers, "peers") && h_count(peers, "\"peer_id\":") == 3 &&
          strstr(peers, A) && strstr(peers, M) && strstr(peers, N) && strstr(peers, FAKE) == NULL &&
          strstr(peers, "6.6.6.6") == NULL && strstr(peers, "203.0.113.9") == NULL);

    pump(&a, QUIET);
    pump(&m, QUIET);
    for (size_t i = 0; i < m.n; i++)
        CHECK(!is_pex(m.log[i]));
    CHECK(no_pex_logged(&a));
    node_free(&a);
    node_free(&m);
    node_free(&n);
}

/* ---------------------------------------------------------------- 5: node-direction errors */

/* Registers a node alone on its own network and brings its PEX link up (handshake and an empty
 * snapshot back), so error tests never see each other's traffic. */
static bool lone_link(node *n, const char *src, const char *id, const char *net)
{
    char hs[256];
    snprintf(hs, sizeof hs, "{\"type\":\"pex_handshake\",\"version\":1,\"network_id\":\"%s\",\"interval\":60,"
                            "\"flags\":[\"introducer\"]}", net);
    return join(n, src, id, net, NULL) && send_handshake(n, net, 60) && wsc_expect_msg(&n->c, hs, WAIT) &&
           wsc_expect_msg(&n->c, EMPTY_SNAPSHOT, WAIT);
}

/* A pex_snapshot of count syntactically valid entries (malloc'd). */
static char *big_snapshot(size_t count)
{
    size_t cap = 64 + count * 256;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    snprintf(s, cap, "{\"type\":\"pex_snapshot\",\"peers\":[");
    for (size_t i = 0; i < count; i++) {
        char id[65], e[1024];
        snprintf(id, sizeof id, "%064zx", i + 1);
        fake_entry(e, sizeof e, id, "203.0.113.9", 9444);
        cat(s, cap, "%s%s", i ? "," : "", e);
    }
    cat(s, cap, "]}");
    return s;
}

/* Each PEX violation gets its pex_error code and the connection stays open. */
static void test_node_direction_errors(void)
{
    REQUIRE(relay_start_args(&h_relay, NULL));
    node n = { 0 };

    /* version != 1: code 2, direction muted (a correct handshake then goes unanswered). */
    REQUIRE(join(&n, "127.0.1.1", ID("1"), "ERR1", NULL));
    CHECK(sendf(&n, "{\"type\":\"pex_handshake\",\"version\":2,\"network_id\":\"ERR1\",\"interval\":60,\"flags\":[]}"));
    CHECK(expect_pex_error(&n, 2));
    CHECK(send_handshake(&n, "ERR1", 60));
    CHECK(pong_next(&n, 51));
    node_free(&n);

    /* Another network than the registered one: code 5, muted. */
    REQUIRE(join(&n, "127.0.1.2", ID("2"), "ERR2", NULL));
    CHECK(send_handshake(&n, NET, 60));
    CHECK(expect_pex_error(&n, 5));
    CHECK(send_handshake(&n, "ERR2", 60));
    CHECK(pong_next(&n, 52));
    node_free(&n);

    /* Delta before the snapshot: code 6. */
    REQUIRE(lone_link(&n, "127.0.1.3", ID("3"), "ERR3"));
    CHECK(sendf(&n, "{\"type\":\"pex_delta\",\"added\":[],\"dropped\":[]}"));
    CHECK(expect_pex_error(&n, 6));
    CHECK(pong_next(&n, 53));
    node_free(&n);

    /* A snapshot over the 200-entry cap: code 4 (the frame itself is well under 256 KiB). */
    REQUIRE(lone_link(&n, "127.0.1.4", ID("4"), "ERR4"));
    char *big = big_snapshot(PEX_MAX_SNAPSHOT + 1);
    REQUIRE(big);
    CHECK(wsc_send_text(&n.c, big));
    free(big);
    CHECK(expect_pex_error(&n, 4));
    CHECK(pong_next(&n, 54));
    /* Rejected whole, not truncated: the snapshot is still owed, so a full one is accepted
     * (silently), and only the one after it is a second snapshot. */
    big = big_snapshot(PEX_MAX_SNAPSHOT);
    REQUIRE(big);
    CHECK(wsc_send_text(&n.c, big));
    free(big);
    CHECK(pong_next(&n, 55));
    CHECK(sendf(&n, "{\"type\":\"pex_snapshot\",\"peers\":[]}"));
    CHECK(expect_pex_error(&n, 6));
    node_free(&n);

    /* Undecodable pex_ frames: code 1, each. */
    REQUIRE(lone_link(&n, "127.0.1.5", ID("5"), "ERR5"));
    CHECK(sendf(&n, "{\"type\":\"pex_snapshot\",\"peers\":{}}"));
    CHECK(expect_pex_error(&n, 1));
    CHECK(sendf(&n, "{\"type\":\"pex_gossip\",\"peers\":[]}"));
    CHECK(expect_pex_error(&n, 1));
    CHECK(pong_next(&n, 56));
    node_free(&n);

    /* An undecodable first handshake still opens the link to get its code 1. */
    REQUIRE(join(&n, "127.0.1.6", ID("6"), "ERR6", NULL));
    CHECK(sendf(&n, "{\"type\":\"pex_handshake\",\"version\":\"1\",\"network_id\":\"ERR6\",\"interval\":60}"));
    CHECK(expect_pex_error(&n, 1));
    CHECK(pong_next(&n, 57));
    node_free(&n);

    /* Second handshake, second snapshot: code 6; data faster than the declared floor: code 3. */
    REQUIRE(lone_link(&n, "127.0.1.7", ID("7"), "ERR7"));
    CHECK(send_handshake(&n, "ERR7", 60));
    CHECK(expect_pex_error(&n, 6));
    CHECK(sendf(&n, "{\"type\":\"pex_snapshot\",\"peers\":[]}"));
    CHECK(pong_next(&n, 58));
    CHECK(sendf(&n, "{\"type\":\"pex_snapshot\",\"peers\":[]}"));
    CHECK(expect_pex_error(&n, 6));
    node_free(&n);

    REQUIRE(lone_link(&n, "127.0.1.8", ID("8"), "ERR8"));
    CHECK(sendf(&n, "{\"type\":\"pex_snapshot\",\"peers\":[]}"));
    CHECK(sendf(&n, "{\"type\":\"pex_delta\",\"added\":[],\"dropped\":[\"%s\"]}", ID("0")));
    CHECK(expect_pex_error(&n, 3));
    CHECK(pong_next(&n, 59));
    node_free(&n);
}

/* Three strikes mute the direction: a fourth violation, and valid data, go unanswered. */
static void test_three_strikes_mute(void)
{
    REQUIRE(relay_start_args(&h_relay, NULL));
    node n = { 0 };
    REQUIRE(lone_link(&n, "127.0.1.9", ID("9"), "MUTE"));
    for (unsigned i = 0; i < 3; i++) {
        CHECK(sendf(&n, "{\"type\":\"pex_delta\",\"added\":[],\"dropped\":[]}"));
        CHECK(expect_pex_error(&n, 6));
    }
    CHECK(sendf(&n, "{\"type\":\"pex_delta\",\"added\":[],\"dropped\":[]}"));
    CHECK(sendf(&n, "{\"type\":\"pex_snapshot\",\"peers\":7}"));
    CHECK(sendf(&n, "{\"type\":\"pex_handshake\",\"version\":9,\"network_id\":\"MUTE\",\"interval\":60}"));
    CHECK(sendf(&n, "{\"type\":\"pex_snapshot\",\"peers\":[]}"));
    CHECK(pong_next(&n, 61));
    /* The relay's own direction is unaffected by the mute: a newcomer still shows up in the
     * registry (peer_connected), and the connection lives on. */
    node o = { 0 };
    REQUIRE(join(&o, "127.0.1.10", ID("a"), "MUTE", NULL));
    char pc[1024];
    peer_connected(pc, sizeof pc, ID("a"), "MUTE", NULL);
    CHECK(expect_masked(&n, pc));
    CHECK(pong_next(&n, 62));
    node_free(&o);
    node_free(&n);
}

/* ---------------------------------------------------------------- 6: scoping */

/* Two networks, a PEX link on each: each snapshot holds only its own network's registrants, and
 * a registration on one network produces nothing at all on the other's link. (That no delta
 * crosses networks is watched over a full interval in test_deltas_follow_the_interval.) */
static void test_networks_are_scoped(void)
{
    REQUIRE(relay_start_args(&h_relay, NULL));
    static const char XA[] = ID("1"), YB[] = ID("2"), NA[] = ID("a"), NB[] = ID("b"), ZA[] = ID("3");
    node xa = { 0 }, yb = { 0 }, na = { 0 }, nb = { 0 }, za = { 0 };
    char e[1024], want[2048];

    REQUIRE(join(&xa, "127.0.0.51", XA, NET, NULL));
    REQUIRE(join(&yb, "127.0.0.52", YB, NET_B, NULL));
    REQUIRE(join(&na, "127.0.0.53", NA, NET, NULL));
    REQUIRE(join(&nb, "127.0.0.54", NB, NET_B, NULL));

    CHECK(send_handshake(&na, NET, 60));
    CHECK(wsc_expect_msg(&na.c, RELAY_HANDSHAKE(NET), WAIT));
    observed_entry(e, sizeof e, &xa, "127.0.0.51", NET);
    snprintf(want, sizeof want, "{\"type\":\"pex_snapshot\",\"peers\":[%s]}", e);
    CHECK(expect_masked(&na, want));

    CHECK(send_handshake(&nb, NET_B, 60));
    CHECK(wsc_expect_msg(&nb.c, RELAY_HANDSHAKE(NET_B), WAIT));
    observed_entry(e, sizeof e, &yb, "127.0.0.52", NET_B);
    snprintf(want, sizeof want, "{\"type\":\"pex_snapshot\",\"peers\":[%s]}", e);
    CHECK(expect_masked(&nb, want));

    /* Z joins network A, X leaves it: network A's nodes hear of it, network B's hear nothing. */
    REQUIRE(join(&za, "127.0.0.55", ZA, NET, NULL));
    node_free(&xa);
    CHECK(wsc_recv_type(&na.c, "peer_disconnected", WAIT) == WSC_OK);
    pump(&nb, QUIET);
    pump(&yb, QUIET);
    char pc_nb[1024];
    peer_connected(pc_nb, sizeof pc_nb, NB, NET_B, NULL);
    const char *want_yb[] = { pc_nb };
    CHECK(log_is(&nb, NULL, 0));
    CHECK(log_is(&yb, want_yb, 1));
    CHECK(pong_next(&nb, 71));
    node_free(&yb);
    node_free(&na);
    node_free(&nb);
    node_free(&za);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    T(test_gate_and_legacy_view);
    T(test_handshake_and_snapshot);
    T(test_node_data_never_shows_up);
    T(test_node_direction_errors);
    T(test_three_strikes_mute);
    T(test_networks_are_scoped);
    T(test_deltas_follow_the_interval);
    return test_finish();
}
