/* One relay across machines (issue 16): three dig-relay instances and a redis-server the test
 * starts on loopback, clients spread over the instances. Every rule of the cluster: one sorted
 * get_peers everywhere, peer_connected/peer_disconnected across instances, relay_message,
 * broadcast and hole punching to targets elsewhere in order per pair, error 3 at once for
 * unknown targets, ID_IN_USE across instances and one holder when instances race, connected_peers
 * counting the cluster. Faults: Redis killed and restarted, an instance SIGKILLed, Redis
 * SIGSTOPped, a subscriber too slow for Redis's output limit. And HAProxy (leastconn,
 * send-proxy-v2, httpchk GET /health) in front, clients connecting only through it.
 *
 * Bounds stated and asserted: a registration is visible everywhere within VISIBLE_MS on a healthy
 * cluster; a dead instance's peers leave within DEAD_MS (CLUSTER_NODE_DEAD_MS, 3.5 s, plus the
 * heartbeat); after Redis returns the registry converges within CONVERGE_MS. The deadlines are
 * generous for a busy 2-core machine; the latencies themselves are bench-cluster's. */
#include "tests/test.h"
#include "tests/browser.h"
#include "tests/cluster_harness.h"
#include "tests/harness.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NET HC_NET
#define WAIT HC_WAIT
#define VISIBLE_MS 10000u
#define DEAD_MS 15000u
#define CONVERGE_MS 20000u

static bool expect_error(ws_client *c, int code)
{
    uint64_t got = 0;
    if (wsc_recv_type(c, "error", WAIT) != WSC_OK || !hj_get_u64((const char *)c->msg, "code", &got)) {
        printf("  no error %d arrived\n", code);
        return false;
    }
    if (got != (uint64_t)code)
        printf("  error %llu, wanted %d: %s\n", (unsigned long long)got, code, c->msg);
    return got == (uint64_t)code;
}

/* A message of `type` whose text contains `needle`. */
static bool expect_containing(ws_client *c, const char *type, const char *needle)
{
    uint64_t deadline = h_now_ms() + WAIT;
    while (h_now_ms() < deadline) {
        if (wsc_recv_type(c, type, WAIT) != WSC_OK)
            break;
        if (strstr((const char *)c->msg, needle))
            return true;
    }
    printf("  no %s with %s\n", type, needle);
    return false;
}

static bool send_seq(ws_client *c, const char *from, const char *to, unsigned seq)
{
    return wsc_sendf(c, "{\"type\":\"relay_message\",\"from\":\"%s\",\"to\":\"%s\",\"payload\":[%u,%u],"
                        "\"seq\":%u}", from, to, seq & 0xff, (seq >> 8) & 0xff, seq);
}

/* Receives relay_messages until seq `last`, checking they arrive strictly in order (gaps
 * allowed when lossy, never a repeat or a step back). Returns how many arrived. */
static unsigned recv_in_order(ws_client *c, unsigned last, bool lossy, unsigned timeout_ms)
{
    unsigned count = 0;
    uint64_t prev = 0, seq = 0;
    uint64_t deadline = h_now_ms() + timeout_ms;
    while (seq < last && h_now_ms() < deadline) {
        if (wsc_recv_type(c, "relay_message", timeout_ms) != WSC_OK)
            break;
        if (!hj_get_u64((const char *)c->msg, "seq", &seq))
            return 0;
        if (seq <= prev || (!lossy && seq != prev + 1)) {
            printf("  seq %llu after %llu\n", (unsigned long long)seq, (unsigned long long)prev);
            return 0;
        }
        prev = seq;
        count++;
    }
    return count;
}

static long long health_peers(int i)
{
    char resp[512];
    uint64_t n = 0;
    if (h_http("127.0.0.1", hc_inst[i].health_port, "GET /health HTTP/1.0\r\n\r\n", resp, sizeof resp,
               WAIT) == 0 || !hj_get_u64(h_http_body(resp), "connected_peers", &n))
        return -1;
    return (long long)n;
}

static bool wait_health_peers(int i, long long want)
{
    uint64_t deadline = h_now_ms() + VISIBLE_MS;
    long long got = -1;
    while (h_now_ms() < deadline && (got = health_peers(i)) != want)
        h_sleep_ms(100);
    if (got != want)
        printf("  instance %d /health connected_peers %lld, wanted %lld\n", i, got, want);
    return got == want;
}

/* A series of instance i's /metrics, -1 when absent. */
static long long metric(int i, const char *series)
{
    static char resp[262144];
    if (h_http("127.0.0.1", hc_inst[i].port, "GET /metrics HTTP/1.0\r\n\r\n", resp, sizeof resp, WAIT) == 0)
        return -1;
    return h_metric(h_http_body(resp), series);
}

/* The get_peers answer with its clock fields masked. */
static char *masked_peers(ws_client *c)
{
    if (!wsc_sendf(c, "{\"type\":\"get_peers\",\"network_id\":\"%s\"}", NET) ||
        wsc_recv_type(c, "peers", WAIT) != WSC_OK)
        return NULL;
    return hj_mask_times((const char *)c->msg);
}

#define SKIP_UNLESS_READY() do { \
        if (!relay_built_in("cluster")) SKIP("hiredis not built in"); \
        if (!hc_have_redis()) SKIP("redis-server not installed"); } while (0)

/* ---- every rule on a healthy cluster ---- */

/* Instance i's dashboard, in headless Chromium, shows the cluster's peers beside its own
 * reservations (true without chromium: that part is skipped with a note). */
static bool dashboard_shows_cluster(int i, const char *cluster_peers, const char *local)
{
    browser b;
    char why[256], url[96], js[256];
    if (!browser_open(&b, why, sizeof why)) {
        printf("  %s: %s\n", strcmp(why, "chromium not installed") == 0 ? "skipped" : "browser", why);
        return strcmp(why, "chromium not installed") == 0;
    }
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", hc_inst[i].port);
    snprintf(js, sizeof js, "document.body.dataset.state === 'success' && "
             "!document.getElementById('cluster-card').hidden && "
             "document.getElementById('cluster-peers').textContent === '%s' && "
             "document.getElementById('active').textContent === '%s'", cluster_peers, local);
    bool ok = browser_goto(&b, url) && browser_wait(&b, js, 20000);
    browser_screenshot(&b, "dashboard-cluster.png");
    browser_close(&b);
    return ok;
}

static void test_semantics(void)
{
    SKIP_UNLESS_READY();
    ws_client p1, p2, p3, p4, p5, dup, r[HC_INSTANCES];
    REQUIRE(hc_start_cluster(false, NULL));
    REQUIRE(hc_join(&p1, 0, "P1"));
    REQUIRE(hc_join(&p2, 1, "P2"));
    REQUIRE(hc_join(&p3, 2, "P3"));
    REQUIRE(hc_join(&p4, 0, "P4"));

    /* one sorted list everywhere, byte for byte (clock fields aside) */
    CHECK(hc_wait_peers(&p1, "P1,P2,P3,P4", VISIBLE_MS));
    CHECK(hc_wait_peers(&p2, "P1,P2,P3,P4", VISIBLE_MS));
    CHECK(hc_wait_peers(&p3, "P1,P2,P3,P4", VISIBLE_MS));
    char *m1 = masked_peers(&p1), *m2 = masked_peers(&p2), *m3 = masked_peers(&p3);
    CHECK(m1 && m2 && m3 && strcmp(m1, m2) == 0 && strcmp(m2, m3) == 0);
    free(m1), free(m2), free(m3);

    /* peer_connected reaches every instance; connected_peers counts the cluster */
    REQUIRE(wsc_connect_port(&p5, hc_inst[2].port));
    char reg[256];
    h_register_json(reg, sizeof reg, "P5", NET, NULL);
    CHECK(wsc_send_text(&p5, reg));
    CHECK(wsc_recv_type(&p5, "register_ack", WAIT) == WSC_OK &&
          strstr((const char *)p5.msg, "\"success\":true") &&
          strstr((const char *)p5.msg, "\"connected_peers\":5"));
    CHECK(expect_containing(&p1, "peer_connected", "\"peer_id\":\"P5\""));
    CHECK(expect_containing(&p2, "peer_connected", "\"peer_id\":\"P5\""));
    for (int i = 0; i < HC_INSTANCES; i++)
        CHECK(wait_health_peers(i, 5));
    /* the operator pages keep this instance's figures and the cluster's apart */
    {
        char resp[65536];
        uint64_t local = 0, all = 0;
        CHECK(h_http("127.0.0.1", hc_inst[0].port, "GET /stats.json HTTP/1.0\r\n\r\n", resp, sizeof resp,
                     WAIT) > 0);
        CHECK(hj_get_u64(h_http_body(resp), "connected_peers", &local) && local == 2);
        CHECK(hj_get_u64(h_http_body(resp), "cluster_peers", &all) && all == 5);
        CHECK_EQ_INT(metric(0, "dig_relay_cluster_peers"), 5);
        CHECK_EQ_INT(metric(0, "dig_relay_cluster_instances"), 2);
        CHECK_EQ_INT(metric(0, "dig_relay_cluster_redis_shards_up"), 1);
        CHECK(dashboard_shows_cluster(0, "5", "2"));
    }

    /* relay_message across instances, in order per pair */
    for (unsigned s = 1; s <= 300; s++)
        CHECK(send_seq(&p1, "P1", "P3", s));
    CHECK_EQ_INT(recv_in_order(&p3, 300, false, WAIT), 300);
    /* large frames in a burst (several per loop pass, past one publish's size), whole and in
     * order */
    {
        static char big[60000];
        size_t len = (size_t)snprintf(big, sizeof big, "{\"type\":\"relay_message\",\"from\":\"P1\","
                                                       "\"to\":\"P3\",\"payload\":[");
        for (int i = 0; i < 12000; i++)
            len += (size_t)snprintf(big + len, sizeof big - len, "%s%d", i ? "," : "", i % 256);
        size_t seq_at = len;
        for (unsigned k = 1; k <= 40; k++) {
            snprintf(big + seq_at, sizeof big - seq_at, "],\"seq\":%u}", k);
            CHECK(wsc_send_text(&p1, big));
        }
        big[seq_at] = '\0';
        for (unsigned k = 1; k <= 40; k++) {
            uint64_t seq = 0;
            bool ok = wsc_recv_type(&p3, "relay_message", WAIT) == WSC_OK &&
                      hj_get_u64((const char *)p3.msg, "seq", &seq) && seq == k &&
                      strncmp((const char *)p3.msg, big, seq_at) == 0;
            if (!ok) {
                printf("  large message %u of 40 missing or changed\n", k);
                CHECK(false);
                break;
            }
        }
    }
    CHECK(wsc_sendf(&p2, "{\"type\":\"relay_message\",\"from\":\"P2\",\"to\":\"P1\",\"payload\":[104,105],\"seq\":9}"));
    CHECK(wsc_expect_msg(&p1, "{\"type\":\"relay_message\",\"from\":\"P2\",\"to\":\"P1\",\"payload\":[104,105],\"seq\":9}", WAIT));

    /* unknown target: error 3 at once, from local knowledge */
    CHECK(send_seq(&p1, "P1", "nobody", 1));
    CHECK(expect_error(&p1, 3));

    /* broadcast to every instance, exclude honoured, sender left out: one envelope per instance
     * holding targets (P2's instance sends nothing else meanwhile) */
    long long sent_before = metric(1, "dig_relay_cluster_envelopes_sent_total");
    CHECK(wsc_sendf(&p2, "{\"type\":\"broadcast\",\"from\":\"P2\",\"payload\":[7],\"exclude\":[\"P4\"]}"));
    const char *want = "{\"type\":\"broadcast\",\"from\":\"P2\",\"payload\":[7],\"exclude\":[]}";
    CHECK(wsc_expect_msg(&p1, want, WAIT));
    CHECK(wsc_expect_msg(&p3, want, WAIT));
    CHECK(wsc_expect_msg(&p5, want, WAIT));
    long long sent = 0;   /* /metrics is cached for a moment */
    for (uint64_t until = h_now_ms() + WAIT; h_now_ms() < until && sent < 2; h_sleep_ms(100))
        sent = metric(1, "dig_relay_cluster_envelopes_sent_total") - sent_before;
    CHECK_EQ_INT(sent, 2);
    /* P4 got nothing: its next message is the one sent after the broadcast */
    CHECK(wsc_sendf(&p1, "{\"type\":\"relay_message\",\"from\":\"P1\",\"to\":\"P4\",\"payload\":[1],\"seq\":1}"));
    bool broadcast_seen = false;
    while (wsc_recv_msg(&p4, WAIT) == WSC_OK && !hj_is_type((const char *)p4.msg, "relay_message"))
        broadcast_seen |= hj_is_type((const char *)p4.msg, "broadcast");
    CHECK(!broadcast_seen && hj_is_type((const char *)p4.msg, "relay_message"));

    /* hole punching across instances */
    CHECK(wsc_sendf(&p1, "{\"type\":\"hole_punch_request\",\"peer_id\":\"P1\",\"target_peer_id\":\"P2\",\"external_addr\":\"203.0.113.9:9444\"}"));
    CHECK(wsc_expect_msg(&p2, "{\"type\":\"hole_punch_coordinate\",\"peer_id\":\"P1\",\"external_addr\":\"203.0.113.9:9444\"}", WAIT));
    CHECK(wsc_sendf(&p2, "{\"type\":\"hole_punch_result\",\"peer_id\":\"P1\",\"success\":true}"));
    CHECK(wsc_expect_msg(&p1, "{\"type\":\"hole_punch_result\",\"peer_id\":\"P1\",\"success\":true}", WAIT));

    /* PEX sees the cluster's membership: P1's snapshot lists the peers on other instances */
    CHECK(wsc_sendf(&p1, "{\"type\":\"pex_handshake\",\"version\":1,\"network_id\":\"%s\","
                         "\"interval\":60,\"flags\":[]}", NET));
    CHECK(wsc_recv_type(&p1, "pex_snapshot", WAIT) == WSC_OK &&
          strstr((const char *)p1.msg, "\"P2\"") && strstr((const char *)p1.msg, "\"P3\"") &&
          strstr((const char *)p1.msg, "\"P5\""));

    /* ID_IN_USE across instances */
    REQUIRE(wsc_connect_port(&dup, hc_inst[2].port));
    h_register_json(reg, sizeof reg, "P2", NET, NULL);
    CHECK(wsc_send_text(&dup, reg));
    CHECK(wsc_recv_type(&dup, "register_ack", WAIT) == WSC_OK &&
          strstr((const char *)dup.msg, "\"success\":false"));
    CHECK(expect_error(&dup, 5));
    wsc_close(&dup);

    /* instances racing for one id: exactly one holder remains */
    for (int i = 0; i < HC_INSTANCES; i++)
        REQUIRE(wsc_connect_port(&r[i], hc_inst[i].port));
    h_register_json(reg, sizeof reg, "RACE", NET, NULL);
    for (int i = 0; i < HC_INSTANCES; i++)
        CHECK(wsc_send_text(&r[i], reg));
    CHECK(hc_wait_peers(&p1, "P1,P2,P3,P4,P5,RACE", VISIBLE_MS));
    /* a loser is refused, or closed with error 5 once the claims meet; the holder keeps answering
     * pings */
    int alive = HC_INSTANCES;
    bool dead[HC_INSTANCES] = { false };
    for (uint64_t until = h_now_ms() + VISIBLE_MS; alive > 1 && h_now_ms() < until; h_sleep_ms(100)) {
        alive = 0;
        for (int i = 0; i < HC_INSTANCES; i++) {
            dead[i] = dead[i] || wsc_ping_rtt(&r[i], 42, WAIT) < 0;
            alive += !dead[i];
        }
    }
    CHECK_EQ_INT(alive, 1);
    for (int i = 0; i < HC_INSTANCES; i++)
        wsc_close(&r[i]);

    /* peer_disconnected reaches every instance */
    wsc_close(&p4);
    CHECK(expect_containing(&p2, "peer_disconnected", "\"peer_id\":\"P4\""));
    CHECK(expect_containing(&p5, "peer_disconnected", "\"peer_id\":\"P4\""));
    CHECK(hc_wait_peers(&p3, "P1,P2,P3,P5", VISIBLE_MS));

    wsc_close(&p1), wsc_close(&p2), wsc_close(&p3), wsc_close(&p5);

}

/* A Redis with a password and a database number in the URL. */
static void test_password_and_database(void)
{
    SKIP_UNLESS_READY();
    ws_client a, b;
    REQUIRE(hc_start_redis_args((const char *const[]){ "--requirepass", "s3cret", NULL }));
    snprintf(hc_url, sizeof hc_url, "redis://:s3cret@127.0.0.1:%u/3", hc_redis_port);
    REQUIRE(hc_start_instance(0, NULL));
    REQUIRE(hc_start_instance(1, NULL));
    REQUIRE(hc_join(&a, 0, "A"));
    REQUIRE(hc_join(&b, 1, "B"));
    CHECK(hc_wait_peers(&a, "A,B", VISIBLE_MS));
    CHECK(hc_wait_peers(&b, "A,B", VISIBLE_MS));
    CHECK(send_seq(&a, "A", "B", 1));
    CHECK_EQ_INT(recv_in_order(&b, 1, false, WAIT), 1);
    /* the registrations live in database 3 */
    char resp[64] = "";
    CHECK(hc_redis_cmd("AUTH s3cret\r\nSELECT 3\r\nEXISTS dig:peer:A", resp, sizeof resp, WAIT) > 0);
    CHECK(strstr(resp, "+OK\r\n+OK\r\n:1\r\n") != NULL);
    wsc_close(&a), wsc_close(&b);
}

/* ---- faults ---- */

/* Redis killed mid-traffic: every instance keeps serving its own peers and registering new ones;
 * remote peers leave each registry (they are unreachable) once their instances go unheard. Redis
 * restarted empty: the registry converges, and an id registered on two instances meanwhile is
 * kept by the earlier registration, the later one closed with error 5. */
static void test_redis_killed_and_restarted(void)
{
    SKIP_UNLESS_READY();
    ws_client a, b, c, late, d0, d1;
    REQUIRE(hc_start_cluster(false, NULL));
    REQUIRE(hc_join(&a, 0, "A"));
    REQUIRE(hc_join(&b, 0, "B"));
    REQUIRE(hc_join(&c, 1, "C"));
    CHECK(hc_wait_peers(&c, "A,B,C", VISIBLE_MS));

    /* mid traffic */
    for (unsigned s = 1; s <= 50; s++)
        CHECK(send_seq(&a, "A", "C", s));
    kill(hc_redis.pid, SIGKILL);
    h_proc_stop(&hc_redis, 5000);
    /* local relaying and local registrations go on without Redis */
    for (unsigned s = 1; s <= 100; s++)
        CHECK(send_seq(&a, "A", "B", s));
    CHECK_EQ_INT(recv_in_order(&b, 100, false, WAIT), 100);
    REQUIRE(hc_join(&late, 0, "LATE"));
    REQUIRE(hc_join(&d0, 0, "DUP"));
    h_sleep_ms(20);   /* registration times are milliseconds: d0's is the earlier */
    REQUIRE(hc_join(&d1, 1, "DUP"));
    /* what arrived of the first burst arrived in order */
    recv_in_order(&c, 50, true, 500);
    /* remote peers leave while their instances cannot be heard */
    CHECK(hc_wait_peers(&c, "C,DUP", DEAD_MS));
    CHECK(hc_wait_peers(&a, "A,B,DUP,LATE", DEAD_MS));

    /* Redis comes back (same port, empty): the registry converges, one DUP remains */
    uint64_t t0 = h_now_ms();
    REQUIRE(hc_start_redis(false));
    CHECK(expect_error(&d1, 5));
    CHECK(hc_wait_peers(&c, "A,B,C,DUP,LATE", CONVERGE_MS));
    CHECK(hc_wait_peers(&a, "A,B,C,DUP,LATE", CONVERGE_MS));
    printf("  converged %llu ms after Redis restarted\n", (unsigned long long)(h_now_ms() - t0));
    CHECK(wsc_ping_rtt(&d0, 7, WAIT) >= 0);
    for (unsigned s = 1; s <= 100; s++)
        CHECK(send_seq(&late, "LATE", "C", s));
    CHECK_EQ_INT(recv_in_order(&c, 100, false, WAIT), 100);
    wsc_close(&a), wsc_close(&b), wsc_close(&c), wsc_close(&late), wsc_close(&d0), wsc_close(&d1);
}

static void test_instance_killed(void)
{
    SKIP_UNLESS_READY();
    ws_client a, b, c, again;
    REQUIRE(hc_start_cluster(false, NULL));
    REQUIRE(hc_join(&a, 0, "A"));
    REQUIRE(hc_join(&b, 1, "B"));
    REQUIRE(hc_join(&c, 2, "C"));
    CHECK(hc_wait_peers(&a, "A,B,C", VISIBLE_MS));
    CHECK(hc_wait_peers(&b, "A,B,C", VISIBLE_MS));

    /* a graceful stop releases its ids on the way out */
    ws_client g;
    REQUIRE(hc_join(&g, 1, "G"));
    CHECK(hc_wait_peers(&a, "A,B,C,G", VISIBLE_MS));
    uint64_t t0 = h_now_ms();
    CHECK_EQ_INT(relay_stop(&hc_inst[1], 5000), 0);
    CHECK(hc_wait_peers(&a, "A,C", DEAD_MS));
    printf("  a stopped instance's peers left within %llu ms\n", (unsigned long long)(h_now_ms() - t0));
    wsc_close(&g);
    wsc_close(&b);
    relay_cleanup(&hc_inst[1], test_cur_failed != 0);
    memset(&hc_inst[1], 0, sizeof hc_inst[1]);
    REQUIRE(hc_start_instance(1, NULL));
    REQUIRE(hc_join(&b, 1, "B"));
    CHECK(hc_wait_peers(&a, "A,B,C", VISIBLE_MS));

    kill(hc_inst[2].pid, SIGKILL);
    t0 = h_now_ms();
    /* C leaves every other instance's registry, with peer_disconnected */
    CHECK(expect_containing(&a, "peer_disconnected", "\"peer_id\":\"C\""));
    CHECK(hc_wait_peers(&a, "A,B", DEAD_MS));
    CHECK(hc_wait_peers(&b, "A,B", DEAD_MS));
    printf("  the killed instance's peer left within %llu ms\n", (unsigned long long)(h_now_ms() - t0));
    /* its id can be registered again elsewhere */
    bool ok = false;
    uint64_t deadline = h_now_ms() + DEAD_MS;
    while (!ok && h_now_ms() < deadline) {
        ok = hc_join(&again, 1, "C");
        if (!ok)
            h_sleep_ms(200);
    }
    CHECK(ok);
    if (ok) {
        CHECK(hc_wait_peers(&a, "A,B,C", VISIBLE_MS));
        wsc_close(&again);
    }
    wsc_close(&a), wsc_close(&b), wsc_close(&c);

}

static void test_redis_stopped(void)
{
    SKIP_UNLESS_READY();
    ws_client c[HC_INSTANCES];
    static const char *const ids[] = { "S0", "S1", "S2" };
    REQUIRE(hc_start_cluster(false, NULL));
    for (int i = 0; i < HC_INSTANCES; i++)
        REQUIRE(hc_join(&c[i], i, ids[i]));
    CHECK(hc_wait_peers(&c[0], "S0,S1,S2", VISIBLE_MS));

    kill(hc_redis.pid, SIGSTOP);
    /* the engine is never waited on: every instance keeps answering, cross traffic included */
    uint64_t until = h_now_ms() + 3000;
    unsigned pings = 0;
    while (h_now_ms() < until) {
        for (int i = 0; i < HC_INSTANCES; i++) {
            CHECK(wsc_ping_rtt(&c[i], pings + 1, WAIT) >= 0);
            CHECK(send_seq(&c[i], ids[i], ids[(i + 1) % HC_INSTANCES], pings + 1));
        }
        pings++;
        h_sleep_ms(100);
    }
    kill(hc_redis.pid, SIGCONT);
    CHECK(pings > 0);
    CHECK(hc_wait_peers(&c[1], "S0,S1,S2", CONVERGE_MS));
    for (int i = 0; i < HC_INSTANCES; i++)
        wsc_close(&c[i]);

}

/* A subscriber too slow for Redis's pubsub output limit is cut off; its instance reconnects and
 * resynchronises, and what it delivers is never repeated or reordered. */
static void test_slow_subscriber(void)
{
    SKIP_UNLESS_READY();
    ws_client a, b;
    static char payload[60000];
    static char msg[sizeof payload + 128];
    REQUIRE(hc_start_cluster(true, (const char *const[]){ "--max-message-bytes", "200000", NULL }));
    REQUIRE(hc_join(&a, 0, "A"));
    REQUIRE(hc_join(&b, 1, "B"));
    CHECK(hc_wait_peers(&a, "A,B", VISIBLE_MS));

    kill(hc_inst[1].pid, SIGSTOP);
    size_t len = 0;
    for (int i = 0; i < 14000; i++)
        len += (size_t)snprintf(payload + len, sizeof payload - len, "%s%d", i ? "," : "", i % 256);
    unsigned seq = 0;
    /* far more than the kernel's socket buffers and Redis's limit hold */
    for (int k = 0; k < 250; k++) {
        seq++;
        snprintf(msg, sizeof msg,
                 "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"B\",\"payload\":[%s],\"seq\":%u}",
                 payload, seq);
        CHECK(wsc_send_text(&a, msg));
    }
    h_sleep_ms(1500);   /* Redis's soft limit is 1 s over 128 KB */
    kill(hc_inst[1].pid, SIGCONT);
    /* after reconnecting, new messages flow; everything B sees is in order, none twice */
    bool through = false;
    uint64_t prev = 0, got = 0, deadline = h_now_ms() + CONVERGE_MS;
    unsigned first_new = seq + 1;
    while (!through && h_now_ms() < deadline) {
        CHECK(send_seq(&a, "A", "B", ++seq));
        while (wsc_recv_type(&b, "relay_message", 200) == WSC_OK) {
            CHECK(hj_get_u64((const char *)b.msg, "seq", &got));
            if (got <= prev) {
                printf("  seq %llu after %llu\n", (unsigned long long)got, (unsigned long long)prev);
                CHECK(false);
            }
            prev = got;
            if (got >= first_new)
                through = true;
        }
    }
    CHECK(through);
    /* Redis did cut the subscriber off, and the instance came back */
    char *log = relay_read_log(&hc_inst[1]);
    CHECK(log && strstr(log, "lost Redis 127.0.0.1") && strstr(log, "(subscriber)"));
    free(log);
    wsc_close(&a), wsc_close(&b);

}

/* ---- behind HAProxy ---- */

static void test_behind_haproxy(void)
{
    SKIP_UNLESS_READY();
    const char *const v[] = { "haproxy", "-v", NULL };
    if (h_run(v, NULL, NULL, 0, NULL, 0, 20000) != 0)
        SKIP("haproxy not installed");
    h_proc haproxy;
    char dir[64], cfg[128];
    uint16_t front = h_free_port("tcp4");
    snprintf(dir, sizeof dir, "/tmp/dig-cluster.XXXXXX");
    REQUIRE(mkdtemp(dir));
    REQUIRE(hc_start_cluster(false, (const char *const[]){ "--trusted-proxy-cidrs", "127.0.0.1", NULL }));
    snprintf(cfg, sizeof cfg, "%s/haproxy.cfg", dir);
    FILE *f = fopen(cfg, "w");
    REQUIRE(f);
    fprintf(f,
            "global\n  maxconn 512\n"
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n"
            "frontend relay\n  bind 127.0.0.1:%u\n  default_backend relays\n"
            "backend relays\n  balance leastconn\n  option httpchk GET /health\n"
            "  http-check expect status 200\n",
            front);
    for (int i = 0; i < HC_INSTANCES; i++)
        fprintf(f, "  server r%d 127.0.0.1:%u send-proxy-v2 check inter 200ms fall 2 rise 1\n", i,
                hc_inst[i].port);
    fclose(f);
    const char *const argv[] = { "haproxy", "-db", "-f", cfg, NULL };
    REQUIRE(h_spawn(&haproxy, argv, NULL));

    /* clients only through HAProxy, each from its own loopback source; leastconn spreads them */
    enum { N = 6 };
    ws_client c[N];
    bool joined[N] = { false };
    char want[64] = "";
    for (int i = 0; i < N; i++) {
        char src[16], id[8], reg[256];
        snprintf(src, sizeof src, "127.0.0.%d", 10 + i);
        snprintf(id, sizeof id, "H%d", i);
        uint64_t deadline = h_now_ms() + 20000;
        while (!joined[i] && h_now_ms() < deadline) {
            wsc_opts o = { .port = front, .src = src, .timeout_ms = WAIT };
            if (wsc_connect(&c[i], &o)) {
                h_register_json(reg, sizeof reg, id, NET, "[\"[::]:9444\"]");
                joined[i] = wsc_send_text(&c[i], reg) &&
                            wsc_recv_type(&c[i], "register_ack", WAIT) == WSC_OK &&
                            strstr((const char *)c[i].msg, "\"success\":true");
            }
            if (!joined[i]) {
                wsc_close(&c[i]);
                h_sleep_ms(200);   /* HAProxy may not have marked a server up yet */
            }
        }
        REQUIRE(joined[i]);
        snprintf(want + strlen(want), sizeof want - strlen(want), "%sH%d", i ? "," : "", i);
    }
    /* every instance took some of them */
    for (int i = 0; i < HC_INSTANCES; i++) {
        char resp[65536];
        uint64_t n = 0;
        CHECK(h_http("127.0.0.1", hc_inst[i].port, "GET /stats.json HTTP/1.0\r\n\r\n", resp, sizeof resp,
                     WAIT) > 0);
        if (!hj_get_u64(h_http_body(resp), "connected_peers", &n) || n == 0)
            printf("  instance %d holds %llu of the clients\n", i, (unsigned long long)n);
        CHECK(n > 0);
    }
    /* everyone sees everyone, real addresses included, and reaches everyone */
    for (int i = 0; i < N; i++)
        CHECK(hc_wait_peers(&c[i], want, VISIBLE_MS));
    CHECK(wsc_sendf(&c[0], "{\"type\":\"get_peers\",\"network_id\":\"%s\"}", NET));
    CHECK(wsc_recv_type(&c[0], "peers", WAIT) == WSC_OK &&
          strstr((const char *)c[0].msg, "\"addresses\":[\"127.0.0.15:9444\"]"));
    for (int i = 0; i < N; i++) {
        char from[8], to[8];
        snprintf(from, sizeof from, "H%d", i);
        snprintf(to, sizeof to, "H%d", (i + 1) % N);
        CHECK(send_seq(&c[i], from, to, (unsigned)i + 1));
    }
    for (int i = 0; i < N; i++) {
        uint64_t seq = 0;
        CHECK(wsc_recv_type(&c[(i + 1) % N], "relay_message", WAIT) == WSC_OK &&
              hj_get_u64((const char *)c[(i + 1) % N].msg, "seq", &seq) && seq == (uint64_t)i + 1);
    }
    for (int i = 0; i < N; i++)
        wsc_close(&c[i]);
    h_proc_cleanup(&haproxy, test_cur_failed != 0);

    char rm[96];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    h_sh(rm, NULL, 0, 10000);
}

/* A build without hiredis refuses the flag (run against such a build only: CI's CLUSTER=0 step). */
static void test_not_built_in(void)
{
    char out[1024] = "", err[1024] = "";
    const char *const args[] = { "--cluster-redis", "redis://127.0.0.1:6379", NULL };
    CHECK_EQ_INT(h_run_binary(args, NULL, out, sizeof out, err, sizeof err, 10000), 2);
    CHECK(strstr(err, "cluster support is not built in") != NULL);
}

/* Runs a test, then stops its cluster; an instance that did not exit cleanly fails it. */
#define CLUSTER_T(fn) RUN_AND(fn, if (!hc_stop_cluster(test_cur_failed != 0)) test_cur_failed = 1)

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (!relay_built_in("cluster"))
        RUN(test_not_built_in);
    CLUSTER_T(test_semantics);
    CLUSTER_T(test_password_and_database);
    CLUSTER_T(test_redis_killed_and_restarted);
    CLUSTER_T(test_instance_killed);
    CLUSTER_T(test_redis_stopped);
    CLUSTER_T(test_slow_subscriber);
    CLUSTER_T(test_behind_haproxy);
    return test_finish();
}
