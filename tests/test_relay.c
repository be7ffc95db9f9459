/* Integration tests of the core relay (issue 2): each test starts the real ./dig-relay on fresh
 * loopback ports and talks to it over real sockets the way the live client (dig-nat) does.
 * Expected bytes are the reference server's compact JSON; wall-clock fields are masked to T
 * where they appear (hj_mask_times). */
#include "buildinfo.h"
#include "tests/harness.h"
#include "tests/test.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NET "DIG_MAINNET"
#define WAIT 3000u  /* default wait for an expected message, ms */


/* ---------------------------------------------------------------- helpers */


static bool reg(ws_client *c, const char *id)
{
    return wsc_connect_register(c, h_relay.port, id, NET);
}

static bool reg_net(ws_client *c, const char *id, const char *net)
{
    return wsc_connect_register(c, h_relay.port, id, net);
}

static bool expect(ws_client *c, const char *exact)
{
    return wsc_expect_msg(c, exact, WAIT);
}

/* Next message, with wall-clock fields masked, equals `masked`. */
static bool expect_masked(ws_client *c, const char *masked)
{
    int r = wsc_recv_msg(c, WAIT);
    if (r != WSC_OK) {
        printf("  expected %s\n       got nothing (%d)\n", masked, r);
        return false;
    }
    char *m = hj_mask_times((const char *)c->msg);
    bool ok = m && strcmp(m, masked) == 0;
    if (!ok)
        printf("  expected %s\n       got %s\n", masked, (const char *)c->msg);
    free(m);
    return ok;
}

/* Next message is {"type":"error","code":<code>,"message":"..."}. */
static bool expect_error(ws_client *c, unsigned code)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "{\"type\":\"error\",\"code\":%u,\"message\":\"", code);
    int r = wsc_recv_msg(c, WAIT);
    const char *m = (const char *)c->msg;
    if (r != WSC_OK || !h_starts_with(m, prefix) || m[c->msg_len - 1] != '}') {
        printf("  expected error code %u, got %s\n", code, r == WSC_OK ? m : "nothing");
        return false;
    }
    return true;
}

/* A ping answered by its pong as the very next message: the connection is open and nothing else
 * was queued for it. */
static bool pong_next(ws_client *c, uint64_t ts)
{
    char pong[80];
    snprintf(pong, sizeof pong, "{\"type\":\"pong\",\"timestamp\":%llu}", (unsigned long long)ts);
    return wsc_sendf(c, "{\"type\":\"ping\",\"timestamp\":%llu}", (unsigned long long)ts) && expect(c, pong);
}

/* The connection ends (close frame or EOF) within ms; returns the close code or 0 for EOF, -1 on
 * timeout. */
static int closed_within(ws_client *c, unsigned ms)
{
    return wsc_expect_close(c, ms);
}

static bool wait_exit(unsigned ms)
{
    uint64_t deadline = h_now_ms() + ms;
    while (h_now_ms() < deadline) {
        if (!relay_alive(&h_relay))
            return true;
        h_sleep_ms(5);
    }
    return false;
}

/* A peer_info as the relay writes it, with times masked. addresses_json may be NULL. */
static void peer_info(char *out, size_t cap, const char *id, const char *net, const char *addresses_json)
{
    if (addresses_json)
        snprintf(out, cap, "{\"peer_id\":\"%s\",\"network_id\":\"%s\",\"protocol_version\":1,"
                 "\"connected_at\":T,\"last_seen\":T,\"addresses\":%s}", id, net, addresses_json);
    else
        snprintf(out, cap, "{\"peer_id\":\"%s\",\"network_id\":\"%s\",\"protocol_version\":1,"
                 "\"connected_at\":T,\"last_seen\":T}", id, net);
}

static bool expect_peer_connected(ws_client *c, const char *id, const char *addresses_json)
{
    char info[512], msg[640];
    peer_info(info, sizeof info, id, NET, addresses_json);
    snprintf(msg, sizeof msg, "{\"type\":\"peer_connected\",\"peer\":%s}", info);
    return expect_masked(c, msg);
}

/* The usual opening: a relay with A and B registered on NET, A told of B. */
static bool start_with_pair(ws_client *a, ws_client *b)
{
    return h_start(NULL) && reg(a, "A") && reg(b, "B") && expect_peer_connected(a, "B", NULL);
}

/* Receives a peers message and checks it lists exactly the given peer infos (any order). */
static bool expect_peers(ws_client *c, const char *const *infos, size_t n)
{
    int r = wsc_recv_msg(c, WAIT);
    if (r != WSC_OK || !hj_is_type((const char *)c->msg, "peers")) {
        printf("  expected peers, got %s\n", r == WSC_OK ? (const char *)c->msg : "nothing");
        return false;
    }
    char *m = hj_mask_times((const char *)c->msg);
    bool ok = m && h_starts_with(m, "{\"type\":\"peers\",\"peers\":[") && h_count(m, "{\"peer_id\":") == n;
    size_t total = 27 + (n > 1 ? n - 1 : 0);  /* prefix, "]}" and the commas */
    for (size_t i = 0; ok && i < n; i++) {
        ok = strstr(m, infos[i]) != NULL;
        total += strlen(infos[i]);
    }
    ok = ok && strlen(m) == total;
    if (!ok)
        printf("  peers message does not list exactly the %zu expected peers: %s\n", n, (const char *)c->msg);
    free(m);
    return ok;
}

static bool send_get_peers(ws_client *c, const char *network_json)
{
    if (!network_json)
        return wsc_sendf(c, "{\"type\":\"get_peers\"}");
    return wsc_sendf(c, "{\"type\":\"get_peers\",\"network_id\":%s}", network_json);
}

/* ---------------------------------------------------------------- harness self-check */

static void test_harness_self_check(void)
{
    char k[29];
    h_accept_key("dGhlIHNhbXBsZSBub25jZQ==", k);  /* RFC 6455 section 1.3 */
    CHECK_EQ_STR(k, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    uint64_t v = 0;
    CHECK(hj_get_u64("{\"a\":[1,{\"b\":\"}\"}],\"code\":42}", "code", &v));
    CHECK_EQ_INT(v, 42);
    CHECK(!hj_get_u64("{\"a\":1.5}", "a", &v));
    CHECK(hj_is_type("{\"x\":\"\\\"\",\"type\":\"pong\"}", "pong"));
    char *m = hj_mask_times("{\"connected_at\":17,\"last_seen\":18,\"uptime_secs\":0}");
    CHECK_EQ_STR(m, "{\"connected_at\":T,\"last_seen\":T,\"uptime_secs\":T}");
    free(m);
    uint8_t f[32];
    size_t n = wsc_build_frame(f, sizeof f, 1, true, 0, false, "hi", 2);
    CHECK_EQ_MEM(f, n, "\x81\x02hi", 4);
}

/* ---------------------------------------------------------------- RLY-001 registration */

static void test_register_ack_counts_live_registrations(void)
{
    REQUIRE(h_start(NULL));
    ws_client a, b, c;
    char regmsg[256];
    REQUIRE(wsc_connect_port(&a, h_relay.port));
    h_register_json(regmsg, sizeof regmsg, "peer-a", NET, NULL);
    REQUIRE(wsc_send_text(&a, regmsg));
    CHECK(expect(&a, "{\"type\":\"register_ack\",\"success\":true,\"message\":\"registered\",\"connected_peers\":1}"));
    REQUIRE(wsc_connect_port(&b, h_relay.port));
    h_register_json(regmsg, sizeof regmsg, "peer-b", NET, NULL);
    REQUIRE(wsc_send_text(&b, regmsg));
    CHECK(expect(&b, "{\"type\":\"register_ack\",\"success\":true,\"message\":\"registered\",\"connected_peers\":2}"));
    /* connected_peers counts every live registration, other networks included */
    REQUIRE(wsc_connect_port(&c, h_relay.port));
    h_register_json(regmsg, sizeof regmsg, "peer-c", "OTHER_NET", NULL);
    REQUIRE(wsc_send_text(&c, regmsg));
    CHECK(expect(&c, "{\"type\":\"register_ack\",\"success\":true,\"message\":\"registered\",\"connected_peers\":3}"));
    wsc_close(&a);
    wsc_close(&b);
    wsc_close(&c);
    STOP_OK();
}

/* The live client writes register and get_peers back to back without waiting for the ack. */
static void test_pipelined_register_and_get_peers(void)
{
    REQUIRE(h_start(NULL));
    ws_client a, b;
    REQUIRE(wsc_connect_port(&a, h_relay.port));
    char regmsg[256], gp[128];
    uint8_t wire[1024];
    h_register_json(regmsg, sizeof regmsg, "node-1", NET, NULL);
    snprintf(gp, sizeof gp, "{\"type\":\"get_peers\",\"network_id\":\"%s\"}", NET);
    size_t n = wsc_build_frame(wire, sizeof wire, 1, true, 0, true, regmsg, strlen(regmsg));
    n += wsc_build_frame(wire + n, sizeof wire - n, 1, true, 0, true, gp, strlen(gp));
    REQUIRE(wsc_send_raw(&a, wire, n));  /* one TCP write */
    CHECK(expect(&a, "{\"type\":\"register_ack\",\"success\":true,\"message\":\"registered\",\"connected_peers\":1}"));
    REQUIRE(wsc_recv_msg(&a, WAIT) == WSC_OK);
    char *m = hj_mask_times((const char *)a.msg);
    CHECK_EQ_STR(m, "{\"type\":\"peers\",\"peers\":[{\"peer_id\":\"node-1\",\"network_id\":\"DIG_MAINNET\","
                    "\"protocol_version\":1,\"connected_at\":T,\"last_seen\":T}]}");
    free(m);
    /* connected_at / last_seen are wall-clock unix seconds */
    const char *peers;
    size_t plen;
    REQUIRE(hj_get((const char *)a.msg, "peers", &peers, &plen));
    uint64_t at = 0;
    CHECK(hj_get_u64(peers + 1, "connected_at", &at));
    uint64_t now = (uint64_t)time(NULL);
    CHECK(at + 10 >= now && at <= now + 10);

    /* a second node pipelines the same way and sees both */
    REQUIRE(wsc_connect_port(&b, h_relay.port));
    h_register_json(regmsg, sizeof regmsg, "node-2", NET, "[\"[::]:9444\"]");
    n = wsc_build_frame(wire, sizeof wire, 1, true, 0, true, regmsg, strlen(regmsg));
    n += wsc_build_frame(wire + n, sizeof wire - n, 1, true, 0, true, gp, strlen(gp));
    REQUIRE(wsc_send_raw(&b, wire, n));
    CHECK(expect(&b, "{\"type\":\"register_ack\",\"success\":true,\"message\":\"registered\",\"connected_peers\":2}"));
    char i1[256], i2[256];
    peer_info(i1, sizeof i1, "node-1", NET, NULL);
    peer_info(i2, sizeof i2, "node-2", NET, "[\"127.0.0.1:9444\"]");
    const char *infos[] = { i1, i2 };
    CHECK(expect_peers(&b, infos, 2));
    wsc_close(&a);
    wsc_close(&b);
    STOP_OK();
}

static void test_duplicate_live_id_is_refused(void)
{
    REQUIRE(h_start(NULL));
    ws_client victim, attacker, carol;
    REQUIRE(reg(&victim, "victim"));
    REQUIRE(wsc_connect_port(&attacker, h_relay.port));
    char regmsg[256];
    h_register_json(regmsg, sizeof regmsg, "victim", NET, NULL);
    REQUIRE(wsc_send_text(&attacker, regmsg));
    REQUIRE(wsc_recv_msg(&attacker, WAIT) == WSC_OK);
    const char *m = (const char *)attacker.msg;
    uint64_t cp = 99;
    CHECK(h_starts_with(m, "{\"type\":\"register_ack\",\"success\":false,\"message\":\""));
    CHECK(hj_get_u64(m, "connected_peers", &cp) && cp == 1);
    CHECK(expect_error(&attacker, 5));
    CHECK(closed_within(&attacker, WAIT) >= 0);

    /* the incumbent keeps its slot: it hears only about carol, and carol's message reaches it */
    REQUIRE(reg(&carol, "carol"));
    CHECK(expect_peer_connected(&victim, "carol", NULL));
    CHECK(wsc_sendf(&carol, "{\"type\":\"relay_message\",\"from\":\"carol\",\"to\":\"victim\",\"payload\":[104,105],\"seq\":1}"));
    CHECK(expect(&victim, "{\"type\":\"relay_message\",\"from\":\"carol\",\"to\":\"victim\",\"payload\":[104,105],\"seq\":1}"));
    CHECK(pong_next(&victim, 11));
    CHECK(pong_next(&carol, 12));
    wsc_close(&attacker);
    wsc_close(&victim);
    wsc_close(&carol);
    STOP_OK();
}

static void test_stale_id_is_reclaimed(void)
{
    REQUIRE(h_start(NULL));
    ws_client obs, first, second;
    REQUIRE(reg(&obs, "observer"));
    REQUIRE(reg(&first, "phoenix"));
    CHECK(expect_peer_connected(&obs, "phoenix", NULL));
    wsc_close(&first);  /* the connection goes away without unregister */
    CHECK(expect(&obs, "{\"type\":\"peer_disconnected\",\"peer_id\":\"phoenix\"}"));
    REQUIRE(wsc_connect_port(&second, h_relay.port));
    char regmsg[256];
    h_register_json(regmsg, sizeof regmsg, "phoenix", NET, NULL);
    REQUIRE(wsc_send_text(&second, regmsg));
    CHECK(expect(&second, "{\"type\":\"register_ack\",\"success\":true,\"message\":\"registered\",\"connected_peers\":2}"));
    CHECK(expect_peer_connected(&obs, "phoenix", NULL));
    CHECK(wsc_sendf(&obs, "{\"type\":\"relay_message\",\"from\":\"observer\",\"to\":\"phoenix\",\"payload\":[1],\"seq\":2}"));
    CHECK(expect(&second, "{\"type\":\"relay_message\",\"from\":\"observer\",\"to\":\"phoenix\",\"payload\":[1],\"seq\":2}"));
    wsc_close(&obs);
    wsc_close(&second);
    STOP_OK();
}

static void test_unregister_notifies_and_closes(void)
{
    REQUIRE(h_start(NULL));
    ws_client a, b, c;
    REQUIRE(reg(&a, "A"));
    REQUIRE(reg(&b, "B"));
    CHECK(expect_peer_connected(&a, "B", NULL));
    CHECK(wsc_sendf(&b, "{\"type\":\"unregister\",\"peer_id\":\"B\"}"));
    CHECK(expect(&a, "{\"type\":\"peer_disconnected\",\"peer_id\":\"B\"}"));
    CHECK(closed_within(&b, WAIT) >= 0);
    /* B no longer counts */
    REQUIRE(wsc_connect_port(&c, h_relay.port));
    char regmsg[256];
    h_register_json(regmsg, sizeof regmsg, "C", NET, NULL);
    REQUIRE(wsc_send_text(&c, regmsg));
    CHECK(expect(&c, "{\"type\":\"register_ack\",\"success\":true,\"message\":\"registered\",\"connected_peers\":2}"));
    CHECK(wsc_sendf(&a, "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"B\",\"payload\":[1],\"seq\":1}"));
    CHECK(expect_peer_connected(&a, "C", NULL));
    CHECK(expect_error(&a, 3));
    wsc_close(&a);
    wsc_close(&b);
    wsc_close(&c);
    STOP_OK();
}

static void test_dropped_connection_notifies_peers(void)
{
    REQUIRE(h_start(NULL));
    ws_client a, b, z;
    REQUIRE(reg(&a, "A"));
    REQUIRE(reg_net(&z, "Z", "OTHER_NET"));
    REQUIRE(reg(&b, "B"));
    CHECK(expect_peer_connected(&a, "B", NULL));
    wsc_close(&b);
    CHECK(expect(&a, "{\"type\":\"peer_disconnected\",\"peer_id\":\"B\"}"));
    CHECK(pong_next(&z, 3));  /* another network hears nothing */
    wsc_close(&a);
    wsc_close(&z);
    STOP_OK();
}

/* ---------------------------------------------------------------- RLY-002 / RLY-003 */

static void test_relay_message_routing(void)
{
    REQUIRE(h_start(NULL));
    ws_client a, b, c;
    REQUIRE(reg(&a, "A"));
    REQUIRE(reg(&b, "B"));
    REQUIRE(reg_net(&c, "C", "OTHER_NET"));
    CHECK(expect_peer_connected(&a, "B", NULL));

    /* from is re-stamped; to, payload and seq pass unchanged */
    CHECK(wsc_sendf(&a, "{\"type\":\"relay_message\",\"from\":\"mallory\",\"to\":\"B\",\"payload\":[1,2,3],\"seq\":7}"));
    CHECK(expect(&b, "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"B\",\"payload\":[1,2,3],\"seq\":7}"));
    CHECK(wsc_sendf(&a, "{\"seq\":18446744073709551615,\"payload\":[0,255],\"to\":\"B\",\"from\":\"A\",\"type\":\"relay_message\"}"));
    CHECK(expect(&b, "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"B\",\"payload\":[0,255],\"seq\":18446744073709551615}"));
    CHECK(wsc_sendf(&a, "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"B\",\"payload\":[],\"seq\":0}"));
    CHECK(expect(&b, "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"B\",\"payload\":[],\"seq\":0}"));
    CHECK(wsc_sendf(&a, "{ \"type\" : \"relay_message\" , \"from\":\"A\", \"to\":\"B\", \"payload\":[10,20] , \"seq\": 3 }"));
    CHECK(expect(&b, "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"B\",\"payload\":[10,20],\"seq\":3}"));

    /* to oneself: delivered back */
    CHECK(wsc_sendf(&a, "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"A\",\"payload\":[9],\"seq\":1}"));
    CHECK(expect(&a, "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"A\",\"payload\":[9],\"seq\":1}"));

    /* unknown target, and a target on another network: error 3, nothing delivered */
    CHECK(wsc_sendf(&a, "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"ghost\",\"payload\":[1],\"seq\":1}"));
    CHECK(expect_error(&a, 3));
    CHECK(wsc_sendf(&a, "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"C\",\"payload\":[1],\"seq\":1}"));
    CHECK(expect_error(&a, 3));
    CHECK(pong_next(&c, 5));
    CHECK(pong_next(&b, 6));
    CHECK(pong_next(&a, 7));
    wsc_close(&a);
    wsc_close(&b);
    wsc_close(&c);
    STOP_OK();
}

/* Queue limits past 32 bits are "no practical limit", not truncated: a message count of 2^32
 * once became a queue of zero messages that dropped everything. A relay built for a 32-bit
 * target (make test-mips runs this suite against one) refuses such values instead, naming the
 * flag; either answer is right, a silent truncation is not. */
static void test_queue_limits_past_32_bits(void)
{
    const char *const args[] = { "--outbound-queue-capacity", "4294967296",
                                 "--outbound-queue-bytes", "18446744073709551615", NULL };
    if (!h_start(args)) {
        char *log = relay_read_log(&h_relay);
        bool refused = h_relay.exited && h_relay.exit_code == 2 && log &&
                       strstr(log, "--outbound-queue-capacity") && strstr(log, "at most 4294967295");
        free(log);
        CHECK(refused);
        if (refused)
            printf("  info: the relay is 32-bit: it refuses a queue of 2^32 messages, naming the flag\n");
        /* that exit status 2 is the answer expected here, not a relay that failed to stop */
        relay_cleanup(&h_relay, !refused);
        memset(&h_relay, 0, sizeof h_relay);
        return;
    }
    ws_client a, b;
    REQUIRE(reg(&a, "A"));
    REQUIRE(reg(&b, "B"));
    CHECK(expect_peer_connected(&a, "B", NULL));
    CHECK(wsc_sendf(&a, "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"B\",\"payload\":[4,2],\"seq\":1}"));
    CHECK(expect(&b, "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"B\",\"payload\":[4,2],\"seq\":1}"));
    CHECK(pong_next(&a, 2));
    wsc_close(&a);
    wsc_close(&b);
    STOP_OK();
}

/* Keepalive coalescing (loop_should_hold) under real sockets: eight reservations ping back to
 * back for over a second (a millisecond apart), JSON pings and WebSocket pings alike, so the
 * relay is holding between passes; a relayed message sent then is still delivered, and every
 * ping still gets its pong. */
static void test_messages_through_keepalive_holds(void)
{
    REQUIRE(h_start(NULL));
    ws_client a, b, p[8];
    char msg[128];
    uint64_t ts = 1, until;
    int relayed = 0;
    REQUIRE(reg(&a, "A"));
    REQUIRE(reg(&b, "B"));
    CHECK(expect_peer_connected(&a, "B", NULL));
    for (int i = 0; i < 8; i++) {
        snprintf(msg, sizeof msg, "pinger-%d", i);
        REQUIRE(reg_net(&p[i], msg, "PINGERS"));
    }
    for (int i = 0; i < 8; i++)   /* the other pingers' peer_connected notices */
        for (int k = i + 1; k < 8; k++)
            CHECK(wsc_recv_type(&p[i], "peer_connected", WAIT) == WSC_OK);
    until = h_now_ms() + 3600;
    for (int round = 0; h_now_ms() < until && !test_cur_failed; round++) {
        ws_client *c = &p[round % 8];
        h_sleep_ms(1);   /* well under the per-connection message rate limit */
        if (round % 3 == 0) {
            snprintf(msg, sizeof msg, "k%d", round);
            CHECK(wsc_send_frame(c, 0x9, true, msg, strlen(msg)));
            int r = wsc_recv_frame(c, WAIT);
            if (r != WSC_OK || c->msg_opcode != 0xA || c->msg_len != strlen(msg) ||
                memcmp(c->msg, msg, c->msg_len) != 0) {
                printf("  ws ping %s: got %d, opcode %d, %.*s\n", msg, r, c->msg_opcode,
                       r == WSC_OK ? (int)c->msg_len : 0, (const char *)c->msg);
                test_cur_failed = 1;
            }
        } else {
            CHECK(pong_next(c, ts++));
        }
        /* once the relay holds (a second of keepalives only), and again once it holds again */
        if ((relayed == 0 && h_now_ms() + 2300 >= until) || (relayed == 1 && h_now_ms() + 150 >= until)) {
            snprintf(msg, sizeof msg, "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"B\",\"payload\":[%d],\"seq\":%d}",
                     relayed, relayed);
            CHECK(wsc_sendf(&a, "%s", msg));
            CHECK(expect(&b, msg));
            relayed++;
        }
    }
    CHECK_EQ_INT(relayed, 2);
    CHECK(pong_next(&a, ts++));
    CHECK(pong_next(&b, ts++));
    for (int i = 0; i < 8; i++)
        wsc_close(&p[i]);
    wsc_close(&a);
    wsc_close(&b);
    STOP_OK();
}

/* The relay's output is compact JSON like the reference's (serde re-serializes the payload), even
 * when a client puts whitespace inside the payload array. */
static void test_forwarded_payload_is_compact(void)
{
    ws_client a, b;
    REQUIRE(start_with_pair(&a, &b));
    CHECK(wsc_sendf(&a, "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"B\",\"payload\":[ 10 ,\n20\t],\"seq\":3}"));
    CHECK(expect(&b, "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"B\",\"payload\":[10,20],\"seq\":3}"));
    CHECK(wsc_sendf(&a, "{\"type\":\"broadcast\",\"from\":\"A\",\"payload\":[ 1 ],\"exclude\":[ ]}"));
    CHECK(expect(&b, "{\"type\":\"broadcast\",\"from\":\"A\",\"payload\":[1],\"exclude\":[]}"));
    wsc_close(&a);
    wsc_close(&b);
    STOP_OK();
}

static void test_relay_message_order_preserved(void)
{
    /* 500 messages in one burst: lift the per-connection message rate limit (256/s by default) */
    static const char *const args[] = { "--messages-per-conn-per-sec", "0", NULL };
    REQUIRE(h_start(args));
    ws_client a, b;
    REQUIRE(reg(&a, "A"));
    REQUIRE(reg(&b, "B"));
    CHECK(expect_peer_connected(&a, "B", NULL));
    enum { COUNT = 500 };
    size_t cap = COUNT * 128, n = 0;
    uint8_t *wire = malloc(cap);
    REQUIRE(wire);
    for (unsigned i = 0; i < COUNT; i++) {
        char m[128];
        int len = snprintf(m, sizeof m, "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"B\",\"payload\":[%u,%u],\"seq\":%u}",
                           i % 256, (i * 7) % 256, i);
        n += wsc_build_frame(wire + n, cap - n, i % 2 ? 2 : 1, true, 0, true, m, (size_t)len);
    }
    REQUIRE(wsc_send_raw(&a, wire, n));
    free(wire);
    unsigned got = 0;
    for (; got < COUNT; got++) {
        char m[128];
        snprintf(m, sizeof m, "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"B\",\"payload\":[%u,%u],\"seq\":%u}",
                 got % 256, (got * 7) % 256, got);
        if (!expect(&b, m))
            break;
    }
    CHECK_EQ_INT(got, COUNT);
    wsc_close(&a);
    wsc_close(&b);
    STOP_OK();
}

static void test_broadcast_with_exclude(void)
{
    REQUIRE(h_start(NULL));
    ws_client a, b, c, d, e;
    REQUIRE(reg_net(&e, "E", "OTHER_NET"));
    REQUIRE(reg(&a, "A"));
    REQUIRE(reg(&b, "B"));
    REQUIRE(reg(&c, "C"));
    REQUIRE(reg(&d, "D"));
    /* drain the arrival notices */
    CHECK(expect_peer_connected(&a, "B", NULL) && expect_peer_connected(&a, "C", NULL) && expect_peer_connected(&a, "D", NULL));
    CHECK(expect_peer_connected(&b, "C", NULL) && expect_peer_connected(&b, "D", NULL));
    CHECK(expect_peer_connected(&c, "D", NULL));

    CHECK(wsc_sendf(&a, "{\"type\":\"broadcast\",\"from\":\"spoof\",\"payload\":[7,8],\"exclude\":[\"C\",\"nobody\"]}"));
    const char *want = "{\"type\":\"broadcast\",\"from\":\"A\",\"payload\":[7,8],\"exclude\":[]}";
    CHECK(expect(&b, want));
    CHECK(expect(&d, want));
    CHECK(pong_next(&c, 1));  /* excluded */
    CHECK(pong_next(&a, 2));  /* the sender */
    CHECK(pong_next(&e, 3));  /* another network */

    CHECK(wsc_sendf(&b, "{\"type\":\"broadcast\",\"from\":\"B\",\"payload\":[],\"exclude\":[]}"));
    want = "{\"type\":\"broadcast\",\"from\":\"B\",\"payload\":[],\"exclude\":[]}";
    CHECK(expect(&a, want) && expect(&c, want) && expect(&d, want));
    CHECK(pong_next(&b, 4));
    wsc_close(&a);
    wsc_close(&b);
    wsc_close(&c);
    wsc_close(&d);
    wsc_close(&e);
    STOP_OK();
}

/* ---------------------------------------------------------------- RLY-005 */

/* peers lists are sorted by peer_id in byte order, whatever the order of registration (the
 * reference's lifecycle test pins it). */
/* Whether msg (a peers answer) lists exactly the n ids of want, in that order. */
static bool peers_in_order(const char *msg, const char *const *want, int n)
{
    const char *at = msg;
    int listed = (int)h_count(msg, "{\"peer_id\":");
    for (int i = 0; i < n; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "{\"peer_id\":\"%s\"", want[i]);
        at = strstr(at, needle);
        if (!at) {
            printf("  %s missing or out of order in %.300s\n", want[i], msg);
            return false;
        }
    }
    if (listed != n)
        printf("  %d entries listed, %d wanted: %.300s\n", listed, n, msg);
    return listed == n;
}

/* Sorted by id as members join one at a time (each answer merges the newcomer into the order
 * kept from the answer before), after one leaves, and when more join after that. */
static void test_peers_sorted_by_id(void)
{
    static const char *const ids[] = { "mm", "zz", "a", "aa", "B", "m", "0" };
    static const char *const sorted_after[][7] = {
        { "mm" }, { "mm", "zz" }, { "a", "mm", "zz" }, { "a", "aa", "mm", "zz" },
        { "B", "a", "aa", "mm", "zz" }, { "B", "a", "aa", "m", "mm", "zz" },
    };
    static const char *const after_leave[] = { "B", "a", "m", "mm", "zz" };
    static const char *const after_rejoin[] = { "0", "B", "a", "m", "mm", "zz" };
    ws_client c[7];
    REQUIRE(h_start(NULL));
    for (int i = 0; i < 6; i++) {
        REQUIRE(reg(&c[i], ids[i]));
        CHECK(wsc_sendf(&c[0], "{\"type\":\"get_peers\",\"network_id\":\"%s\"}", NET));
        REQUIRE(wsc_recv_type(&c[0], "peers", WAIT) == WSC_OK);
        CHECK(peers_in_order((const char *)c[0].msg, sorted_after[i], i + 1));
    }
    wsc_close(&c[3]);   /* "aa" leaves */
    CHECK(wsc_recv_type(&c[0], "peer_disconnected", WAIT) == WSC_OK && strstr((const char *)c[0].msg, "\"aa\""));
    CHECK(wsc_sendf(&c[0], "{\"type\":\"get_peers\",\"network_id\":\"%s\"}", NET));
    REQUIRE(wsc_recv_type(&c[0], "peers", WAIT) == WSC_OK);
    CHECK(peers_in_order((const char *)c[0].msg, after_leave, 5));
    REQUIRE(reg(&c[6], ids[6]));
    CHECK(wsc_sendf(&c[0], "{\"type\":\"get_peers\",\"network_id\":\"%s\"}", NET));
    REQUIRE(wsc_recv_type(&c[0], "peers", WAIT) == WSC_OK);
    CHECK(peers_in_order((const char *)c[0].msg, after_rejoin, 6));
    for (int i = 0; i < 7; i++)
        if (i != 3)
            wsc_close(&c[i]);
    STOP_OK();
}

static void test_get_peers(void)
{
    REQUIRE(h_start(NULL));
    ws_client a, b, z;
    REQUIRE(reg(&a, "alpha"));
    REQUIRE(reg(&b, "bravo"));
    REQUIRE(reg_net(&z, "zulu", "OTHER_NET"));
    CHECK(expect_peer_connected(&a, "bravo", NULL));
    char ia[256], ib[256], iz[256];
    peer_info(ia, sizeof ia, "alpha", NET, NULL);
    peer_info(ib, sizeof ib, "bravo", NET, NULL);
    peer_info(iz, sizeof iz, "zulu", "OTHER_NET", NULL);
    const char *own[] = { ia, ib };
    const char *other[] = { iz };

    CHECK(send_get_peers(&a, "\"" NET "\""));
    CHECK(expect_peers(&a, own, 2));
    CHECK(send_get_peers(&a, "null"));  /* null: the requester's own network */
    CHECK(expect_peers(&a, own, 2));
    CHECK(send_get_peers(&b, NULL));    /* absent: likewise */
    CHECK(expect_peers(&b, own, 2));
    CHECK(send_get_peers(&z, "null"));
    CHECK(expect_peers(&z, other, 1));
    CHECK(send_get_peers(&a, "\"OTHER_NET\""));  /* a named network is listed as asked */
    CHECK(expect_peers(&a, other, 1));
    CHECK(send_get_peers(&a, "\"EMPTY_NET\""));
    CHECK(expect(&a, "{\"type\":\"peers\",\"peers\":[]}"));
    wsc_close(&a);
    wsc_close(&b);
    wsc_close(&z);
    STOP_OK();
}

static void test_peer_connected_after_ack_not_to_self(void)
{
    REQUIRE(h_start(NULL));
    ws_client a, b, z;
    REQUIRE(reg(&a, "A"));
    REQUIRE(reg_net(&z, "Z", "OTHER_NET"));
    REQUIRE(wsc_connect_port(&b, h_relay.port));
    char regmsg[256];
    h_register_json(regmsg, sizeof regmsg, "B", NET, "[\"[::]:9445\"]");
    REQUIRE(wsc_send_text(&b, regmsg));
    /* the newcomer's first message is its ack, and it hears nothing about itself */
    CHECK(expect(&b, "{\"type\":\"register_ack\",\"success\":true,\"message\":\"registered\",\"connected_peers\":3}"));
    CHECK(pong_next(&b, 1));
    CHECK(expect_peer_connected(&a, "B", "[\"127.0.0.1:9445\"]"));
    CHECK(pong_next(&z, 2));
    wsc_close(&a);
    wsc_close(&b);
    wsc_close(&z);
    STOP_OK();
}

/* ---------------------------------------------------------------- RLY-006 / RLY-007 */

/* A connection sent notices alone moments ago holds the next membership notices for up to
 * --notice-hold-ms (2 s here, so the wait shows) so that a stream of them leaves in a few
 * writes. Held or not, they arrive in the order the relay queued them and ahead of whatever was
 * queued after them (here a pong); and they leave on their own once the hold is over: K2's
 * notice, right behind K1's, has no later frame to take it along. */
static void test_held_notices_keep_order_and_leave_on_their_own(void)
{
    enum { JOINERS = 20, HOLD_MS = 2000, SURELY_HELD_MS = 500 };
    ws_client a, k1, k2, joiner[JOINERS];
    char id[16];
    static const char *const args[] = { H_SOURCE_LIMITS_OFF, "--notice-hold-ms", "2000", NULL };
    REQUIRE(h_start(args));
    REQUIRE(reg(&a, "A"));
    for (int i = 0; i < JOINERS; i++) {
        snprintf(id, sizeof id, "J%02d", i);
        REQUIRE(reg(&joiner[i], id));   /* acknowledged: A's notice is queued before the next */
    }
    CHECK(wsc_sendf(&a, "{\"type\":\"ping\",\"timestamp\":7}"));
    for (int i = 0; i < JOINERS; i++) {
        snprintf(id, sizeof id, "J%02d", i);
        CHECK(expect_peer_connected(&a, id, NULL));
    }
    CHECK(expect(&a, "{\"type\":\"pong\",\"timestamp\":7}"));
    /* K1's notice leaves alone (at once, or when an earlier hold ends); K2's, queued within
     * HOLD_MS of it, waits for the hold's timer */
    REQUIRE(reg(&k1, "K1"));
    CHECK(wsc_recv_msg(&a, WAIT + HOLD_MS) == WSC_OK && strstr((const char *)a.msg, "\"peer_id\":\"K1\""));
    REQUIRE(reg(&k2, "K2"));
    CHECK_EQ_INT(wsc_recv_msg(&a, SURELY_HELD_MS), WSC_TIMEOUT);
    CHECK(wsc_recv_msg(&a, WAIT + HOLD_MS) == WSC_OK && strstr((const char *)a.msg, "\"peer_id\":\"K2\""));
    for (int i = 0; i < JOINERS; i++)
        wsc_close(&joiner[i]);
    wsc_close(&k1);
    wsc_close(&k2);
    wsc_close(&a);
    STOP_OK();
}

static void test_ping_pong(void)
{
    REQUIRE(h_start(NULL));
    ws_client a;
    REQUIRE(reg(&a, "A"));
    CHECK(pong_next(&a, 0));
    CHECK(pong_next(&a, 1700000000));
    CHECK(pong_next(&a, 18446744073709551615ull));
    wsc_close(&a);
    STOP_OK();
}

static void test_hole_punch(void)
{
    ws_client a, b;
    REQUIRE(start_with_pair(&a, &b));

    CHECK(wsc_sendf(&a, "{\"type\":\"hole_punch_request\",\"peer_id\":\"spoof\",\"target_peer_id\":\"B\",\"external_addr\":\"203.0.113.9:9444\"}"));
    CHECK(expect(&b, "{\"type\":\"hole_punch_coordinate\",\"peer_id\":\"A\",\"external_addr\":\"203.0.113.9:9444\"}"));
    CHECK(wsc_sendf(&a, "{\"type\":\"hole_punch_request\",\"peer_id\":\"A\",\"target_peer_id\":\"B\",\"external_addr\":\"[2001:db8::1]:9444\"}"));
    CHECK(expect(&b, "{\"type\":\"hole_punch_coordinate\",\"peer_id\":\"A\",\"external_addr\":\"[2001:db8::1]:9444\"}"));

    /* the result goes to the peer named in peer_id */
    CHECK(wsc_sendf(&b, "{\"type\":\"hole_punch_result\",\"peer_id\":\"A\",\"success\":true}"));
    CHECK(expect(&a, "{\"type\":\"hole_punch_result\",\"peer_id\":\"A\",\"success\":true}"));
    CHECK(wsc_sendf(&b, "{\"type\":\"hole_punch_result\",\"peer_id\":\"A\",\"success\":false}"));
    CHECK(expect(&a, "{\"type\":\"hole_punch_result\",\"peer_id\":\"A\",\"success\":false}"));

    CHECK(wsc_sendf(&a, "{\"type\":\"hole_punch_request\",\"peer_id\":\"A\",\"target_peer_id\":\"ghost\",\"external_addr\":\"203.0.113.9:9444\"}"));
    CHECK(expect_error(&a, 3));
    static const char *const bad_addrs[] = { "1.2.3:9444", "203.0.113.9", "[2001:db8::1]", "203.0.113.9:99999",
                                             "2001:db8::1:9444", "host.example:9444", "" };
    for (size_t i = 0; i < sizeof bad_addrs / sizeof bad_addrs[0]; i++) {
        CHECK(wsc_sendf(&a, "{\"type\":\"hole_punch_request\",\"peer_id\":\"A\",\"target_peer_id\":\"B\",\"external_addr\":\"%s\"}", bad_addrs[i]));
        if (!expect_error(&a, 2))
            printf("  (external_addr \"%s\")\n", bad_addrs[i]);
    }
    CHECK(pong_next(&a, 1));
    CHECK(pong_next(&b, 2));  /* nothing reached B from the refused requests */
    wsc_close(&a);
    wsc_close(&b);
    STOP_OK();
}

/* ---------------------------------------------------------------- errors 1 and 2 */

static void test_not_registered_errors(void)
{
    REQUIRE(h_start(NULL));
    ws_client a, b;
    REQUIRE(reg(&b, "B"));
    REQUIRE(wsc_connect_port(&a, h_relay.port));
    static const char *const before[] = {
        "{\"type\":\"get_peers\",\"network_id\":\"" NET "\"}",
        "{\"type\":\"get_peers\",\"network_id\":null}",
        "{\"type\":\"ping\",\"timestamp\":1}",
        "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"B\",\"payload\":[1],\"seq\":1}",
        "{\"type\":\"broadcast\",\"from\":\"A\",\"payload\":[1],\"exclude\":[]}",
        "{\"type\":\"hole_punch_request\",\"peer_id\":\"A\",\"target_peer_id\":\"B\",\"external_addr\":\"203.0.113.9:9444\"}",
        "{\"type\":\"hole_punch_result\",\"peer_id\":\"B\",\"success\":true}",
        "{\"type\":\"unregister\",\"peer_id\":\"A\"}",
    };
    for (size_t i = 0; i < sizeof before / sizeof before[0]; i++) {
        CHECK(wsc_send_text(&a, before[i]));
        if (!expect_error(&a, 1))
            printf("  (for %s)\n", before[i]);
    }
    CHECK(pong_next(&b, 9));  /* nothing leaked to B */
    char regmsg[256];
    h_register_json(regmsg, sizeof regmsg, "A", NET, NULL);
    CHECK(wsc_send_text(&a, regmsg));
    CHECK(expect(&a, "{\"type\":\"register_ack\",\"success\":true,\"message\":\"registered\",\"connected_peers\":2}"));
    wsc_close(&a);
    wsc_close(&b);
    STOP_OK();
}

static void test_bad_messages_get_error_2_and_stay_open(void)
{
    REQUIRE(h_start(NULL));
    ws_client a, pre;
    REQUIRE(wsc_connect_port(&pre, h_relay.port));
    CHECK(wsc_send_text(&pre, "{\"not\":\"a relay message\"}"));
    CHECK(expect_error(&pre, 2));
    CHECK(wsc_send_text(&pre, "{bad json"));
    CHECK(expect_error(&pre, 2));
    CHECK(wsc_register(&pre, "pre", NET));

    REQUIRE(reg(&a, "A"));
    static const char *const bad[] = {
        "{bad json",
        "",
        "[1,2]",
        "\"register\"",
        "{\"type\":\"ping\",\"timestamp\":1} trailing",
        "{\"type\":\"no_such_type\"}",
        "{\"type\":7}",
        "{\"timestamp\":1}",
        "{\"type\":\"ping\"}",
        "{\"type\":\"ping\",\"timestamp\":\"1\"}",
        "{\"type\":\"ping\",\"timestamp\":1.5}",
        "{\"type\":\"ping\",\"timestamp\":1e3}",
        "{\"type\":\"ping\",\"timestamp\":-1}",
        "{\"type\":\"ping\",\"timestamp\":01}",
        "{\"type\":\"ping\",\"timestamp\":18446744073709551616}",
        "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"A\",\"payload\":[256],\"seq\":1}",
        "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"A\",\"payload\":[-1],\"seq\":1}",
        "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"A\",\"payload\":[1.0],\"seq\":1}",
        "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"A\",\"payload\":\"AQI=\",\"seq\":1}",
        "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"A\",\"seq\":1}",
        "{\"type\":\"relay_message\",\"from\":\"A\",\"payload\":[1],\"seq\":1}",
        "{\"type\":\"broadcast\",\"from\":\"A\",\"payload\":[1],\"exclude\":[1]}",
        "{\"type\":\"hole_punch_result\",\"peer_id\":\"A\",\"success\":1}",
        "{\"type\":\"get_peers\",\"network_id\":5}",
        "{\"type\":\"ping\",\"timestamp\":1,\"note\":\"\\ud800\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(wsc_send_text(&a, bad[i]));
        if (!expect_error(&a, 2))
            printf("  (for %s)\n", bad[i]);
    }
    /* unknown fields are ignored, and type may come last */
    CHECK(wsc_send_text(&a, "{\"timestamp\":5,\"extra\":{\"x\":[1,2]},\"type\":\"ping\"}"));
    CHECK(expect(&a, "{\"type\":\"pong\",\"timestamp\":5}"));
    /* frames a client should never send are ignored */
    CHECK(wsc_send_text(&a, "{\"type\":\"pong\",\"timestamp\":1}"));
    CHECK(wsc_send_text(&a, "{\"type\":\"register_ack\",\"success\":true,\"message\":\"registered\",\"connected_peers\":1}"));
    CHECK(wsc_send_text(&a, "{\"type\":\"peers\",\"peers\":[]}"));
    CHECK(wsc_send_text(&a, "{\"type\":\"peer_disconnected\",\"peer_id\":\"pre\"}"));
    CHECK(wsc_send_text(&a, "{\"type\":\"error\",\"code\":3,\"message\":\"x\"}"));
    CHECK(pong_next(&a, 77));
    CHECK(expect_peer_connected(&pre, "A", NULL));
    CHECK(pong_next(&pre, 78));
    wsc_close(&a);
    wsc_close(&pre);
    STOP_OK();
}

/* ---------------------------------------------------------------- §2.9 dialable addresses */

static void test_dialable_addresses(void)
{
    REQUIRE(h_start(NULL));
    ws_client a, b, c, q;
    wsc_opts from5 = { .port = h_relay.port, .src = "127.0.0.5" };
    REQUIRE(wsc_connect(&a, &from5));
    char regmsg[1024];
    /* non-global hosts become the observed IP with the advertised port; a global host that is not
     * the observed address is replaced the same way; duplicates collapse */
    h_register_json(regmsg, sizeof regmsg, "A", NET,
                    "[\"[::]:9445\",\"192.168.7.7:9446\",\"8.8.8.8:9447\",\"0.0.0.0:9445\",\"[fe80::1]:9448\",\"[2606:4700::1]:9449\"]");
    REQUIRE(wsc_send_text(&a, regmsg));
    CHECK(expect(&a, "{\"type\":\"register_ack\",\"success\":true,\"message\":\"registered\",\"connected_peers\":1}"));

    /* more than 8 candidates: at most 8 are emitted */
    REQUIRE(wsc_connect_port(&b, h_relay.port));
    h_register_json(regmsg, sizeof regmsg, "B", NET,
                    "[\"[::]:9001\",\"[::]:9002\",\"[::]:9003\",\"[::]:9004\",\"[::]:9005\",\"[::]:9006\","
                    "\"[::]:9007\",\"[::]:9008\",\"[::]:9009\",\"[::]:9010\"]");
    REQUIRE(wsc_send_text(&b, regmsg));
    CHECK(expect(&b, "{\"type\":\"register_ack\",\"success\":true,\"message\":\"registered\",\"connected_peers\":2}"));

    /* an empty list is the same as none */
    REQUIRE(wsc_connect_port(&c, h_relay.port));
    h_register_json(regmsg, sizeof regmsg, "C", NET, "[]");
    REQUIRE(wsc_send_text(&c, regmsg));
    CHECK(expect(&c, "{\"type\":\"register_ack\",\"success\":true,\"message\":\"registered\",\"connected_peers\":3}"));

    /* a malformed candidate is a bad message; the connection stays usable */
    REQUIRE(wsc_connect_port(&q, h_relay.port));
    h_register_json(regmsg, sizeof regmsg, "Q", NET, "[\"not-an-address\"]");
    REQUIRE(wsc_send_text(&q, regmsg));
    CHECK(expect_error(&q, 2));
    REQUIRE(wsc_register(&q, "Q", NET));

    char ia[512], ib[512], ic[256], iq[256];
    peer_info(ia, sizeof ia, "A", NET,
              "[\"127.0.0.5:9445\",\"127.0.0.5:9446\",\"127.0.0.5:9447\",\"127.0.0.5:9448\",\"127.0.0.5:9449\"]");
    peer_info(ib, sizeof ib, "B", NET,
              "[\"127.0.0.1:9001\",\"127.0.0.1:9002\",\"127.0.0.1:9003\",\"127.0.0.1:9004\",\"127.0.0.1:9005\","
              "\"127.0.0.1:9006\",\"127.0.0.1:9007\",\"127.0.0.1:9008\"]");
    peer_info(ic, sizeof ic, "C", NET, NULL);
    peer_info(iq, sizeof iq, "Q", NET, NULL);
    const char *all[] = { ia, ib, ic, iq };
    CHECK(send_get_peers(&q, "null"));
    CHECK(expect_peers(&q, all, 4));
    wsc_close(&a);
    wsc_close(&b);
    wsc_close(&c);
    wsc_close(&q);
    STOP_OK();
}

/* ---------------------------------------------------------------- WebSocket framing */

/* A relay_message carrying `count` bytes of a pattern picked by seq (every byte value appears),
 * its array elements separated by sep ("," compact, ", " with whitespace). */
static size_t pattern_message_seq(char *out, size_t cap, const char *from, const char *to, unsigned count,
                                  unsigned seq, const char *sep)
{
    size_t n = (size_t)snprintf(out, cap, "{\"type\":\"relay_message\",\"from\":\"%s\",\"to\":\"%s\",\"payload\":[", from, to);
    for (unsigned i = 0; i < count; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%u", i ? sep : "", (i * 131u + 7u + seq * 29u) % 256u);
    n += (size_t)snprintf(out + n, cap - n, "],\"seq\":%u}", seq);
    return n;
}

static size_t pattern_message(char *out, size_t cap, const char *from, const char *to, unsigned count)
{
    return pattern_message_seq(out, cap, from, to, count, 42, ",");
}

static void test_binary_16k_payload_round_trip(void)
{
    ws_client a, b;
    REQUIRE(start_with_pair(&a, &b));
    enum { PAYLOAD = 16384 };
    size_t cap = PAYLOAD * 4 + 256;
    char *sent = malloc(cap), *want = malloc(cap);
    REQUIRE(sent && want);
    size_t n = pattern_message(sent, cap, "spoof", "B", PAYLOAD);
    size_t w = pattern_message(want, cap, "A", "B", PAYLOAD);
    CHECK(wsc_send_binary(&a, sent, n));
    CHECK(wsc_recv_msg(&b, WAIT) == WSC_OK);
    CHECK_EQ_MEM(b.msg, b.msg_len, want, w);
    /* and back, as a text frame */
    n = pattern_message(sent, cap, "B", "A", PAYLOAD);
    CHECK(wsc_send_text(&b, sent));
    CHECK(wsc_recv_msg(&a, WAIT) == WSC_OK);
    CHECK_EQ_MEM(a.msg, a.msg_len, sent, n);
    free(sent);
    free(want);
    wsc_close(&a);
    wsc_close(&b);
    STOP_OK();
}

/* Large payloads are forwarded from the sender's receive buffer (a gathered frame holding it)
 * and small ones copied: 16 KiB and 64 B messages sent back to back in one burst, to a reader
 * that reads at once and one that reads only after the sender has gone (its buffers released by
 * the relay, and the relay's input buffer refilled many times over meanwhile), arrive
 * byte-exact and in order. One payload carries whitespace, which the relay drops (copied). */
static void test_large_and_small_payloads_forwarded_byte_exact(void)
{
    static const char *const args[] = { "--bytes-per-conn-per-sec", "0", "--messages-per-conn-per-sec", "0",
                                        "--max-relayed-bytes-per-conn", "0", NULL };
    relay_opts o = { .args = args };
    REQUIRE(relay_start(&h_relay, &o));
    ws_client a, fast, slow;
    REQUIRE(reg(&fast, "fast"));
    REQUIRE(reg(&slow, "slow"));
    REQUIRE(reg(&a, "A"));
    CHECK(expect_peer_connected(&fast, "slow", NULL));
    CHECK(expect_peer_connected(&fast, "A", NULL));

    enum { N = 32, BIG = 16384 };
    size_t cap = BIG * 6 + 256, burst_cap = N * (cap + 14), burst_len = 0;
    char *json = malloc(cap);
    uint8_t *burst = malloc(burst_cap);
    REQUIRE(json && burst);
    /* message i: 16 KiB when i is even, 64 B when odd; to `fast` for i % 4 < 2, else `slow` */
    for (unsigned i = 0; i < N; i++) {
        const char *to = i % 4 < 2 ? "fast" : "slow";
        size_t n = pattern_message_seq(json, cap, "A", to, i % 2 ? 64 : BIG, i, i == 6 ? ", " : ",");
        burst_len += wsc_build_frame(burst + burst_len, burst_cap - burst_len, i % 3 ? 1 : 2, true, 0,
                                     true, json, n);
    }
    CHECK(wsc_send_raw(&a, burst, burst_len));
    for (unsigned i = 0; i < N; i++) {
        if (i % 4 >= 2)
            continue;
        size_t n = pattern_message_seq(json, cap, "A", "fast", i % 2 ? 64 : BIG, i, ",");
        CHECK(wsc_recv_msg(&fast, WAIT) == WSC_OK);
        CHECK_EQ_MEM(fast.msg, fast.msg_len, json, n);
    }
    /* every message to `fast` arrived, so the relay has read the whole burst: the sender goes */
    wsc_close(&a);
    CHECK(expect(&fast, "{\"type\":\"peer_disconnected\",\"peer_id\":\"A\"}"));
    for (unsigned i = 0; i < N; i++) {
        if (i % 4 < 2)
            continue;
        size_t n = pattern_message_seq(json, cap, "A", "slow", i % 2 ? 64 : BIG, i, ",");
        CHECK(wsc_recv_type(&slow, "relay_message", WAIT) == WSC_OK);
        CHECK_EQ_MEM(slow.msg, slow.msg_len, json, n);
    }
    free(json);
    free(burst);
    wsc_close(&fast);
    wsc_close(&slow);
    STOP_OK();
}

static void test_one_byte_fragments(void)
{
    REQUIRE(h_start(NULL));
    ws_client a, b;
    REQUIRE(reg(&b, "B"));
    REQUIRE(wsc_connect_port(&a, h_relay.port));
    char regmsg[256];
    h_register_json(regmsg, sizeof regmsg, "A", NET, NULL);
    size_t len = strlen(regmsg);
    /* register in 1-byte fragments with a ping in the middle */
    for (size_t i = 0; i < len; i++) {
        REQUIRE(wsc_send_frame(&a, i == 0 ? 1 : 0, i + 1 == len, regmsg + i, 1));
        if (i == len / 2)
            REQUIRE(wsc_send_frame(&a, 9, true, "mid", 3));
    }
    CHECK(wsc_recv_frame(&a, WAIT) == WSC_OK && a.msg_opcode == 10 && a.msg_len == 3 && memcmp(a.msg, "mid", 3) == 0);
    CHECK(expect(&a, "{\"type\":\"register_ack\",\"success\":true,\"message\":\"registered\",\"connected_peers\":2}"));
    /* a binary relay_message in 1-byte fragments, then one in 7-byte fragments */
    const char *rm = "{\"type\":\"relay_message\",\"from\":\"A\",\"to\":\"B\",\"payload\":[200,1],\"seq\":5}";
    CHECK(wsc_send_fragmented(&a, 2, rm, strlen(rm), 1));
    CHECK(expect_peer_connected(&b, "A", NULL));
    CHECK(expect(&b, rm));
    CHECK(wsc_send_fragmented(&a, 1, rm, strlen(rm), 7));
    CHECK(expect(&b, rm));
    /* multi-byte UTF-8 split across fragments is still valid text */
    const char *utf = "{\"type\":\"ping\",\"timestamp\":3,\"note\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}";
    CHECK(wsc_send_fragmented(&a, 1, utf, strlen(utf), 1));
    CHECK(expect(&a, "{\"type\":\"pong\",\"timestamp\":3}"));
    wsc_close(&a);
    wsc_close(&b);
    STOP_OK();
}

/* True when the peer ends the stream with a FIN within ms (whatever it sends before is
 * dropped); false on a reset or when nothing ends. */
static bool stream_ends_orderly(int fd, unsigned ms)
{
    uint64_t deadline = h_now_ms() + ms;
    char sink[4096];
    for (;;) {
        ssize_t n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n == 0)
            return true;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            printf("  the stream ended with: %s\n", strerror(errno));
            return false;
        }
        if (n > 0)
            continue;
        struct pollfd pf = { fd, POLLIN, 0 };
        uint64_t now = h_now_ms();
        if (now >= deadline || poll(&pf, 1, (int)(deadline - now)) < 0)
            return false;
    }
}

static void test_oversized_frames_close_1009(void)
{
    static const char *const args[] = { "--max-message-bytes", "1024", NULL };
    REQUIRE(h_start(args));
    ws_client a, watch;
    REQUIRE(reg(&watch, "watch"));  /* sees each closed peer leave */
    REQUIRE(reg(&a, "A"));
    CHECK(expect_peer_connected(&watch, "A", NULL));
    char msg[2048];
    /* exactly at the limit: accepted */
    int n = snprintf(msg, sizeof msg, "{\"type\":\"ping\",\"timestamp\":8}");
    memset(msg + n, ' ', 1024 - (size_t)n);
    msg[1024] = '\0';
    CHECK(wsc_send_text(&a, msg));
    CHECK(expect(&a, "{\"type\":\"pong\",\"timestamp\":8}"));
    /* one byte over, in a single frame */
    memset(msg + n, ' ', 1025 - (size_t)n);
    msg[1025] = '\0';
    CHECK(wsc_send_text(&a, msg));
    CHECK_EQ_INT(closed_within(&a, WAIT), 1009);
    CHECK(expect(&watch, "{\"type\":\"peer_disconnected\",\"peer_id\":\"A\"}"));
    wsc_close(&a);

    /* fragments that are each small but add up to more than the limit */
    REQUIRE(reg(&a, "A2"));
    CHECK(expect_peer_connected(&watch, "A2", NULL));
    memset(msg, ' ', 1500);
    msg[0] = '[';
    CHECK(wsc_send_frame(&a, 1, false, msg, 500));
    CHECK(wsc_send_frame(&a, 0, false, msg, 500));
    CHECK(wsc_send_frame(&a, 0, true, msg, 500));
    CHECK_EQ_INT(closed_within(&a, WAIT), 1009);
    CHECK(expect(&watch, "{\"type\":\"peer_disconnected\",\"peer_id\":\"A2\"}"));
    wsc_close(&a);

    /* a header announcing 1 MiB is refused before any payload arrives */
    REQUIRE(reg(&a, "A3"));
    CHECK(expect_peer_connected(&watch, "A3", NULL));
    uint8_t hdr[14] = { 0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0x10, 0, 0, 1, 2, 3, 4 };
    CHECK(wsc_send_raw(&a, hdr, sizeof hdr));
    CHECK_EQ_INT(closed_within(&a, WAIT), 1009);
    CHECK(expect(&watch, "{\"type\":\"peer_disconnected\",\"peer_id\":\"A3\"}"));
    wsc_close(&a);

    /* refused while its payload is still arriving: the relay reads and drops the rest, so the
     * close frame is followed by an orderly end of stream, not a reset (a reset may overtake
     * the close frame at a proxy in between) */
    REQUIRE(reg(&a, "A4"));
    CHECK(expect_peer_connected(&watch, "A4", NULL));
    static uint8_t flood[64 * 1024 + 8];
    memset(flood, 'x', sizeof flood);
    uint8_t hdr64k[14] = { 0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0x01, 0, 0, 1, 2, 3, 4 };
    CHECK(wsc_send_raw(&a, hdr64k, sizeof hdr64k) && wsc_send_raw(&a, flood, 32 * 1024));
    CHECK_EQ_INT(closed_within(&a, WAIT), 1009);
    (void)!send(a.fd, flood, 16 * 1024, MSG_NOSIGNAL);  /* more of the refused frame */
    CHECK(stream_ends_orderly(a.fd, WAIT));
    CHECK(expect(&watch, "{\"type\":\"peer_disconnected\",\"peer_id\":\"A4\"}"));
    wsc_close(&a);

    /* an unregistered connection is held to the same limit */
    REQUIRE(wsc_connect_port(&a, h_relay.port));
    memset(msg, 'x', 1100);
    msg[1100] = '\0';
    CHECK(wsc_send_text(&a, msg));
    CHECK_EQ_INT(closed_within(&a, WAIT), 1009);
    wsc_close(&a);
    CHECK(pong_next(&watch, 1));
    wsc_close(&watch);
    STOP_OK();
}

/* A peer that leaves a network with nobody else on it notifies no one, and nothing of that
 * notification reaches anyone else later (on any network, in any message). */
static void test_lonely_departure_leaks_nothing(void)
{
    REQUIRE(h_start(NULL));
    ws_client a, b, c;
    REQUIRE(reg_net(&a, "A", "NET_X"));
    wsc_close(&a);  /* TCP close; nobody else on NET_X */
    h_sleep_ms(100);
    REQUIRE(wsc_connect_port(&b, h_relay.port));
    char regmsg[256];
    h_register_json(regmsg, sizeof regmsg, "B", "NET_Y", NULL);
    CHECK(wsc_send_text(&b, regmsg));
    CHECK(expect(&b, "{\"type\":\"register_ack\",\"success\":true,\"message\":\"registered\",\"connected_peers\":1}"));
    CHECK(wsc_sendf(&b, "{\"type\":\"unregister\",\"peer_id\":\"B\"}"));  /* nobody else on NET_Y */
    CHECK(closed_within(&b, WAIT) >= 0);
    REQUIRE(wsc_connect_port(&c, h_relay.port));
    CHECK(wsc_sendf(&c, "{\"type\":\"ping\",\"timestamp\":1}"));
    CHECK(expect_error(&c, 1));
    wsc_close(&b);
    wsc_close(&c);
    STOP_OK();
}

/* Sends raw frame bytes on a fresh connection and returns the close code seen. */
static int close_code_for(const uint8_t *frame, size_t len)
{
    ws_client a;
    if (!wsc_connect_port(&a, h_relay.port)) {
        wsc_close(&a);
        return -3;
    }
    int code = -1;
    if (wsc_send_raw(&a, frame, len))
        code = closed_within(&a, WAIT);
    wsc_close(&a);
    return code;
}

static void test_websocket_protocol_errors(void)
{
    REQUIRE(h_start(NULL));
    uint8_t f[256];
    const char *ping = "{\"type\":\"ping\",\"timestamp\":1}";
    size_t n;

    n = wsc_build_frame(f, sizeof f, 1, true, 0, false, ping, strlen(ping));  /* unmasked */
    CHECK_EQ_INT(close_code_for(f, n), 1002);
    n = wsc_build_frame(f, sizeof f, 1, true, 4, true, ping, strlen(ping));   /* RSV1 */
    CHECK_EQ_INT(close_code_for(f, n), 1002);
    n = wsc_build_frame(f, sizeof f, 3, true, 0, true, ping, strlen(ping));   /* opcode 3 */
    CHECK_EQ_INT(close_code_for(f, n), 1002);
    n = wsc_build_frame(f, sizeof f, 9, false, 0, true, "x", 1);              /* fragmented ping */
    CHECK_EQ_INT(close_code_for(f, n), 1002);
    uint8_t big[130];
    memset(big, 'p', sizeof big);
    n = wsc_build_frame(f, sizeof f, 9, true, 0, true, big, 126);             /* 126-byte ping */
    CHECK_EQ_INT(close_code_for(f, n), 1002);
    n = wsc_build_frame(f, sizeof f, 0, true, 0, true, ping, strlen(ping));   /* stray continuation */
    CHECK_EQ_INT(close_code_for(f, n), 1002);
    uint8_t nonmin[] = { 0x81, 0x80 | 126, 0, 5, 1, 2, 3, 4, 'a', 'b', 'c', 'd', 'e' };  /* 16-bit length for 5 */
    CHECK_EQ_INT(close_code_for(nonmin, sizeof nonmin), 1002);
    const char *bad_utf8 = "{\"type\":\"ping\",\"timestamp\":1,\"x\":\"\xc3\x28\"}";
    n = wsc_build_frame(f, sizeof f, 1, true, 0, true, bad_utf8, strlen(bad_utf8));
    CHECK_EQ_INT(close_code_for(f, n), 1007);

    /* a ping gets a pong with the same payload; a client close is answered with a close */
    ws_client a;
    REQUIRE(reg(&a, "A"));
    CHECK(wsc_send_frame(&a, 9, true, "hello", 5));
    CHECK(wsc_recv_frame(&a, WAIT) == WSC_OK && a.msg_opcode == 10 && a.msg_len == 5 && memcmp(a.msg, "hello", 5) == 0);
    CHECK(wsc_send_frame(&a, 9, true, "", 0));
    CHECK(wsc_recv_frame(&a, WAIT) == WSC_OK && a.msg_opcode == 10 && a.msg_len == 0);
    CHECK(wsc_send_frame(&a, 10, true, "unsolicited", 11));  /* an unsolicited pong is ignored */
    CHECK(pong_next(&a, 4));
    CHECK(wsc_send_close(&a, 1000));
    CHECK_EQ_INT(closed_within(&a, WAIT), 1000);
    CHECK(tcp_wait_closed(a.fd, WAIT));
    wsc_close(&a);
    STOP_OK();
}

/* ---------------------------------------------------------------- bounded output */

/* A reader that never reads while 100 MB is sent toward it: the relay keeps answering others
 * and its memory stays bounded. The ping bound is starvation, not speed (a loaded or valgrind
 * machine must pass; the latency goal is the benchmark's). */
static void test_slow_reader_does_not_stall_or_grow(void)
{
    static const char *const args[] = { "--bytes-per-conn-per-sec", "0", "--messages-per-conn-per-sec", "0",
                                        "--max-relayed-bytes-per-conn", "0", NULL };
    /* ASan's quarantine would count freed buffers as resident; keep it small for this test */
    char asan[512];
    const char *prev = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof asan, "ASAN_OPTIONS=%s%squarantine_size_mb=4", prev ? prev : "", prev && *prev ? ":" : "");
    const char *const env[] = { asan, NULL };
    relay_opts o = { .args = args, .env = env };
    REQUIRE(relay_start(&h_relay, &o));

    ws_client sink, pinger, sender;
    REQUIRE(reg(&sink, "sink"));  /* never read from again */
    REQUIRE(reg(&pinger, "pinger"));
    REQUIRE(reg(&sender, "sender"));
    for (int i = 0; i < 5; i++)
        CHECK(wsc_ping_rtt(&pinger, 1, WAIT) >= 0);  /* drains the arrival notices */
    uint64_t rss0 = relay_rss_kb(&h_relay);

    /* one ~57 KB relay_message (16 000 payload bytes), sent again and again */
    enum { PAYLOAD = 16000 };
    size_t cap = PAYLOAD * 4 + 256, n;
    char *json = malloc(cap);
    REQUIRE(json);
    n = (size_t)snprintf(json, cap, "{\"type\":\"relay_message\",\"from\":\"sender\",\"to\":\"sink\",\"payload\":[");
    for (unsigned i = 0; i < PAYLOAD; i++)
        n += (size_t)snprintf(json + n, cap - n, i ? ",%u" : "%u", 100u + i % 156u);
    n += (size_t)snprintf(json + n, cap - n, "],\"seq\":1}");
    uint8_t *frame = malloc(n + 14);
    REQUIRE(frame);
    size_t flen = wsc_build_frame(frame, n + 14, 1, true, 0, true, json, n);
    free(json);
    const uint64_t total = 100ull * 1000 * 1000;

    fflush(stdout);
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        uint64_t sent = 0;
        while (sent < total) {
            if (!tcp_send_all(sender.fd, frame, flen, 20000))
                _exit(1);
            sent += flen;
        }
        _exit(0);
    }
    free(frame);

    long worst = 0;
    unsigned pings = 0, lost = 0;
    uint64_t rss_max = rss0, deadline = h_now_ms() + 60000;
    int status = -1;
    while (h_now_ms() < deadline) {
        if (waitpid(child, &status, WNOHANG) == child)
            break;
        long rtt = wsc_ping_rtt(&pinger, 1000 + pings, WAIT);
        pings++;
        if (rtt < 0)
            lost++;
        else if (rtt > worst)
            worst = rtt;
        uint64_t rss = relay_rss_kb(&h_relay);
        if (rss > rss_max)
            rss_max = rss;
        h_sleep_ms(5);
    }
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
        printf("  the sender could not push 100 MB through within 60 s\n");
        test_cur_failed = 1;
    }
    for (int i = 0; i < 10; i++, pings++) {
        long rtt = wsc_ping_rtt(&pinger, 1000 + pings, WAIT);
        if (rtt < 0)
            lost++;
        else if (rtt > worst)
            worst = rtt;
    }
    uint64_t rss = relay_rss_kb(&h_relay);
    if (rss > rss_max)
        rss_max = rss;
    printf("  info: %u pings, worst round trip %ld ms, relay RSS %llu KiB -> peak %llu KiB\n", pings, worst,
           (unsigned long long)rss0, (unsigned long long)rss_max);
    CHECK_EQ_INT(lost, 0);
    CHECK(worst < 2000 * (long)h_slowdown());
    CHECK(pings >= 10);
    CHECK(rss0 > 0 && rss_max - rss0 < 64 * 1024);
    CHECK(pong_next(&sender, 5));  /* the sender was not cut off */
    ws_client late;
    CHECK(reg(&late, "late"));     /* and the relay still takes newcomers */
    wsc_close(&late);
    wsc_close(&sink);
    wsc_close(&pinger);
    wsc_close(&sender);
    STOP_OK();
}

static void test_broadcast_reaches_300_peers(void)
{
    static const char *const args[] = { H_LIMITS_OFF, NULL };
    REQUIRE(h_start(args));
    enum { PEERS = 300 };
    ws_client *c = calloc(PEERS, sizeof *c);
    REQUIRE(c);
    size_t up = 0;
    for (; up < PEERS; up++) {
        char id[32];
        snprintf(id, sizeof id, "peer-%03zu", up);
        if (!reg(&c[up], id))
            break;
    }
    CHECK_EQ_INT(up, PEERS);
    if (up == PEERS) {
        CHECK(wsc_sendf(&c[0], "{\"type\":\"broadcast\",\"from\":\"peer-000\",\"payload\":[1,2,3,4],\"exclude\":[\"peer-299\"]}"));
        const char *want = "{\"type\":\"broadcast\",\"from\":\"peer-000\",\"payload\":[1,2,3,4],\"exclude\":[]}";
        size_t got = 0;
        for (size_t i = 1; i < PEERS - 1; i++) {
            if (wsc_recv_type(&c[i], "broadcast", 5000) == WSC_OK && strcmp((const char *)c[i].msg, want) == 0)
                got++;
            else if (i - got <= 5)
                printf("  peer-%03zu did not receive the broadcast\n", i);
        }
        CHECK_EQ_INT(got, PEERS - 2);
        CHECK(wsc_recv_type(&c[PEERS - 1], "broadcast", 300) == WSC_TIMEOUT);
        CHECK(wsc_recv_type(&c[0], "broadcast", 100) == WSC_TIMEOUT);
        char body[4096];
        CHECK(h_http("127.0.0.1", h_relay.health_port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", body, sizeof body, WAIT) > 0);
        CHECK(strstr(body, "\"connected_peers\":300,") != NULL);
    }
    for (size_t i = 0; i < up; i++)
        wsc_close(&c[i]);
    free(c);
    STOP_OK();
}

/* ---------------------------------------------------------------- reconnect storms */

static const char *const STORM_LIMITS_OFF[] = { H_LIMITS_OFF, NULL };

/* Connects and writes register and get_peers back to back, as the live client does, without
 * reading anything. */
static bool storm_join(ws_client *c, const char *id)
{
    return wsc_connect_port(c, h_relay.port) &&
           wsc_sendf(c, "{\"type\":\"register\",\"peer_id\":\"%s\",\"network_id\":\"%s\","
                     "\"protocol_version\":1}", id, NET) &&
           wsc_sendf(c, "{\"type\":\"get_peers\",\"network_id\":\"%s\"}", NET);
}

/* A peers answer lists the n ids ids[0..n) in byte order with NET and every field, exactly. */
static bool peers_list_exactly(const char *msg, char ids[][16], size_t n)
{
    char *m = hj_mask_times(msg), info[1024];
    size_t at = strlen("{\"type\":\"peers\",\"peers\":["), total = at + 2 + (n > 1 ? n - 1 : 0);
    bool ok = m && h_starts_with(m, "{\"type\":\"peers\",\"peers\":[");
    for (size_t i = 0; ok && i < n; i++) {
        peer_info(info, sizeof info, ids[i], NET, NULL);
        ok = strncmp(m + at, info, strlen(info)) == 0;   /* in order: ids[] is sorted */
        at += strlen(info) + 1;
        total += strlen(info);
    }
    ok = ok && strlen(m) == total;
    if (!ok)
        printf("  peers answer does not list exactly the %zu expected peers: %.300s\n", n, msg);
    free(m);
    return ok;
}

/* Every member asks again; all answers must be the same list (times masked: a second may tick
 * between the answers). */
static bool all_see(ws_client *c, size_t n_clients, const bool *live, char ids[][16], size_t n)
{
    char *first = NULL;
    bool ok = true;
    for (size_t i = 0; i < n_clients; i++)
        if (live[i])
            ok = ok && wsc_sendf(&c[i], "{\"type\":\"get_peers\"}");
    for (size_t i = 0; ok && i < n_clients; i++) {
        if (!live[i])
            continue;
        ok = wsc_recv_type(&c[i], "peers", WAIT) == WSC_OK &&
             peers_list_exactly((const char *)c[i].msg, ids, n);
        char *m = ok ? hj_mask_times((const char *)c[i].msg) : NULL;
        if (m && first && strcmp(m, first) != 0) {
            printf("  member %zu got a different list\n", i);
            ok = false;
        }
        if (!first)
            first = m;
        else
            free(m);
    }
    free(first);
    return ok;
}

/* Members joining at once each get a complete peers answer (the one shared frame encoded at the
 * end of the pass); later answers follow every join and leave. */
static void test_storm_shares_correct_peers_answers(void)
{
    enum { N = 40 };
    ws_client c[N + 1];
    bool live[N + 1] = { false };
    char ids[N + 1][16];
    REQUIRE(h_start(STORM_LIMITS_OFF));
    for (size_t i = 0; i <= N; i++)
        snprintf(ids[i], sizeof ids[i], "storm-%02zu", i);
    for (size_t i = 0; i < N; i++) {
        REQUIRE(storm_join(&c[i], ids[i]));
        live[i] = true;
    }
    for (size_t i = 0; i < N; i++) {
        /* Its own answer: itself and some of the others, sorted, each entry complete. */
        REQUIRE(wsc_recv_type(&c[i], "peers", WAIT) == WSC_OK);
        char *m = hj_mask_times((const char *)c[i].msg), info[1024];
        peer_info(info, sizeof info, ids[i], NET, NULL);
        CHECK(m && strstr(m, info) != NULL);
        size_t listed = m ? h_count(m, "{\"peer_id\":") : 0;
        CHECK(listed >= 1 && listed <= N);
        free(m);
    }
    /* once everyone is in, every member sees all N */
    CHECK(all_see(c, N, live, ids, N));
    /* a leave: the next answers drop it */
    wsc_close(&c[0]);
    live[0] = false;
    for (size_t i = 1; i < N; i++)
        CHECK(wsc_recv_type(&c[i], "peer_disconnected", WAIT) == WSC_OK);
    CHECK(all_see(c, N, live, ids + 1, N - 1));
    /* a join: the next answers add it */
    REQUIRE(reg(&c[N], ids[N]));
    live[N] = true;
    for (size_t i = 1; i < N; i++)
        CHECK(wsc_recv_type(&c[i], "peer_connected", WAIT) == WSC_OK);
    CHECK(all_see(c, N + 1, live, ids + 1, N));
    for (size_t i = 0; i <= N; i++)
        if (live[i])
            wsc_close(&c[i]);
    STOP_OK();
}

/* The last_seen in an answer is current: a member's activity in a later second replaces the
 * answer kept from before it. */
static void test_kept_peers_answer_follows_last_seen(void)
{
    ws_client a, b;
    uint64_t seen1 = 0, seen2 = 0;
    REQUIRE(start_with_pair(&a, &b));
    CHECK(send_get_peers(&a, NULL));
    REQUIRE(wsc_recv_type(&a, "peers", WAIT) == WSC_OK);
    const char *e = strstr((const char *)a.msg, "{\"peer_id\":\"B\"");
    CHECK(e && hj_get_u64(e, "last_seen", &seen1));
    /* until the wall clock has moved past seen1 */
    for (uint64_t deadline = h_now_ms() + 5000; (uint64_t)time(NULL) <= seen1 && h_now_ms() < deadline;)
        h_sleep_ms(20);
    CHECK(pong_next(&b, 7));
    CHECK(send_get_peers(&a, NULL));
    REQUIRE(wsc_recv_type(&a, "peers", WAIT) == WSC_OK);
    e = strstr((const char *)a.msg, "{\"peer_id\":\"B\"");
    CHECK(e && hj_get_u64(e, "last_seen", &seen2));
    CHECK(seen2 > seen1);
    wsc_close(&a);
    wsc_close(&b);
    STOP_OK();
}

/* A member that does not read while a storm piles notifications and peers answers on it still
 * gets every ping answered, each pong correct; nothing else is lost. */
static void test_pings_answered_through_a_storm(void)
{
    enum { N = 200, ASKS = 30, PINGS = 20 };
    ws_client p, *c = calloc(N, sizeof *c);
    char id[32];
    REQUIRE(c);
    REQUIRE(h_start(STORM_LIMITS_OFF));
    REQUIRE(reg(&p, "pinger"));
    for (size_t i = 0; i < N; i++) {
        snprintf(id, sizeof id, "storm-%03zu", i);
        REQUIRE(storm_join(&c[i], id));
    }
    /* Each peers answer lists up to N + 1 members: ASKS of them queue far more than the point
     * past which a pong goes ahead of the backlog. */
    for (size_t k = 0; k < ASKS; k++)
        CHECK(wsc_sendf(&p, "{\"type\":\"get_peers\"}"));
    for (uint64_t ts = 1; ts <= PINGS; ts++)
        CHECK(wsc_sendf(&p, "{\"type\":\"ping\",\"timestamp\":%llu}", (unsigned long long)ts));
    size_t pongs = 0, answers = 0, joined = 0;
    uint64_t next_ts = 1;
    while (pongs < PINGS || answers < ASKS || joined < N) {
        if (wsc_recv_msg(&p, 10000) != WSC_OK)
            break;
        const char *m = (const char *)p.msg;
        uint64_t ts;
        if (hj_is_type(m, "pong") && hj_get_u64(m, "timestamp", &ts)) {
            CHECK_EQ_INT(ts, next_ts);   /* pongs keep their own order */
            next_ts++;
            pongs++;
        } else if (hj_is_type(m, "peers")) {
            CHECK(h_count(m, "{\"peer_id\":") >= 1);
            answers++;
        } else if (hj_is_type(m, "peer_connected")) {
            joined++;
        }
    }
    CHECK_EQ_INT(pongs, PINGS);
    CHECK_EQ_INT(answers, ASKS);
    CHECK_EQ_INT(joined, N);
    wsc_close(&p);
    for (size_t i = 0; i < N; i++)
        wsc_close(&c[i]);
    free(c);
    STOP_OK();
}

/* ---------------------------------------------------------------- listeners */

static void test_ipv4_and_ipv6_on_one_dual_stack_listener(void)
{
    relay_opts o = { .listen_host = "[::]", .health_host = "[::]" };
    REQUIRE(relay_start(&h_relay, &o));
    char resp[2048];
    CHECK(h_http("127.0.0.1", h_relay.health_port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", resp, sizeof resp, WAIT) > 0 &&
          h_http_status(resp) == 200);
    CHECK(h_http("::1", h_relay.health_port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", resp, sizeof resp, WAIT) > 0 &&
          h_http_status(resp) == 200);
    ws_client v4, v6;
    char regmsg[256];
    wsc_opts o4 = { .host = "127.0.0.1", .port = h_relay.port };
    wsc_opts o6 = { .host = "::1", .port = h_relay.port };
    REQUIRE(wsc_connect(&v4, &o4));
    h_register_json(regmsg, sizeof regmsg, "four", NET, "[\"[::]:9445\"]");
    REQUIRE(wsc_send_text(&v4, regmsg));
    CHECK(expect(&v4, "{\"type\":\"register_ack\",\"success\":true,\"message\":\"registered\",\"connected_peers\":1}"));
    REQUIRE(wsc_connect(&v6, &o6));
    h_register_json(regmsg, sizeof regmsg, "six", NET, "[\"0.0.0.0:9446\"]");
    REQUIRE(wsc_send_text(&v6, regmsg));
    CHECK(expect(&v6, "{\"type\":\"register_ack\",\"success\":true,\"message\":\"registered\",\"connected_peers\":2}"));
    CHECK(expect_peer_connected(&v4, "six", "[\"[::1]:9446\"]"));

    char i4[256], i6[256];
    peer_info(i4, sizeof i4, "four", NET, "[\"127.0.0.1:9445\"]");  /* never ::ffff:127.0.0.1 */
    peer_info(i6, sizeof i6, "six", NET, "[\"[::1]:9446\"]");
    const char *both[] = { i4, i6 };
    CHECK(send_get_peers(&v6, "null"));
    CHECK(expect_peers(&v6, both, 2));
    CHECK(strstr((const char *)v6.msg, "ffff") == NULL);
    CHECK(wsc_sendf(&v4, "{\"type\":\"relay_message\",\"from\":\"four\",\"to\":\"six\",\"payload\":[4,6],\"seq\":1}"));
    CHECK(expect(&v6, "{\"type\":\"relay_message\",\"from\":\"four\",\"to\":\"six\",\"payload\":[4,6],\"seq\":1}"));
    CHECK(wsc_sendf(&v6, "{\"type\":\"relay_message\",\"from\":\"six\",\"to\":\"four\",\"payload\":[6,4],\"seq\":2}"));
    CHECK(expect(&v4, "{\"type\":\"relay_message\",\"from\":\"six\",\"to\":\"four\",\"payload\":[6,4],\"seq\":2}"));
    wsc_close(&v4);
    wsc_close(&v6);
    STOP_OK();
}

/* An explicit IPv4 bind is IPv4 only (no dual-stack coercion). */
static void test_explicit_ipv4_listen_is_ipv4_only(void)
{
    relay_opts o = { .listen_host = "0.0.0.0" };
    REQUIRE(relay_start(&h_relay, &o));
    int fd4 = tcp_connect("127.0.0.1", h_relay.port, NULL, WAIT);
    int fd6 = tcp_connect("::1", h_relay.port, NULL, WAIT);
    CHECK(fd4 >= 0);
    CHECK(fd6 < 0);
    if (fd4 >= 0)
        close(fd4);
    if (fd6 >= 0)
        close(fd6);
    STOP_OK();
}

/* ---------------------------------------------------------------- deadlines */

static void test_register_timeout_reaps_silent_sockets(void)
{
    enum { TIMEOUT_MS = 2000, UPGRADE_AT_MS = 1000 };
    static const char *const args[] = { "--register-timeout-secs", "2", NULL };
    REQUIRE(h_start(args));
    uint64_t t0 = h_now_ms();
    int raw = tcp_connect("127.0.0.1", h_relay.port, NULL, WAIT);  /* never sends a byte */
    REQUIRE(raw >= 0);
    int late = tcp_connect("127.0.0.1", h_relay.port, NULL, WAIT); /* upgrades a second after connecting */
    REQUIRE(late >= 0);
    ws_client upgraded, registered;
    REQUIRE(wsc_connect_port(&upgraded, h_relay.port));             /* upgrades, never registers */
    REQUIRE(reg(&registered, "keeper"));

    h_sleep_ms(UPGRADE_AT_MS);
    char req[512], key[32];
    uint8_t raw_key[16];
    h_random(raw_key, sizeof raw_key);
    h_base64(raw_key, sizeof raw_key, key, sizeof key);
    snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n", h_relay.port, key);
    uint64_t upgrade_ms = h_now_ms() - t0;
    CHECK(tcp_send_all(late, req, strlen(req), WAIT));

    CHECK(tcp_wait_closed(raw, WAIT));
    uint64_t raw_ms = h_now_ms() - t0;
    CHECK(closed_within(&upgraded, WAIT) >= 0);
    CHECK(tcp_wait_closed(late, WAIT));
    uint64_t late_ms = h_now_ms() - t0;
    printf("  info: silent socket reaped after %llu ms, late upgrader (upgraded at %llu ms) after %llu ms\n",
           (unsigned long long)raw_ms, (unsigned long long)upgrade_ms, (unsigned long long)late_ms);
    /* Never before the deadline; and the deadline is absolute from accept: the late upgrader
     * goes at the same deadline, before a deadline counted from its upgrade could pass. */
    CHECK(raw_ms >= TIMEOUT_MS - 200);
    CHECK(late_ms >= TIMEOUT_MS - 200 && late_ms < upgrade_ms + TIMEOUT_MS);
    close(raw);
    close(late);
    wsc_close(&upgraded);

    /* a registered connection is not subject to the register deadline */
    while (h_now_ms() - t0 < 1800)
        h_sleep_ms(50);
    CHECK(pong_next(&registered, 1));
    wsc_close(&registered);
    STOP_OK();
}

static void test_idle_timeout(void)
{
    static const char *const args[] = { "--idle-timeout-secs", "2", NULL };
    REQUIRE(h_start(args));
    ws_client quiet, chatty;
    REQUIRE(reg(&chatty, "chatty"));
    REQUIRE(reg(&quiet, "quiet"));
    CHECK(expect_peer_connected(&chatty, "quiet", NULL));
    uint64_t t0 = h_now_ms();
    bool disconnected = false;
    while (h_now_ms() - t0 < 5000 && !disconnected) {
        CHECK(wsc_sendf(&chatty, "{\"type\":\"ping\",\"timestamp\":1}"));
        for (;;) {
            int r = wsc_recv_msg(&chatty, 1000);
            if (r != WSC_OK) {
                printf("  chatty lost its connection (%d)\n", r);
                test_cur_failed = 1;
                break;
            }
            if (strcmp((const char *)chatty.msg, "{\"type\":\"peer_disconnected\",\"peer_id\":\"quiet\"}") == 0)
                disconnected = true;
            else if (strcmp((const char *)chatty.msg, "{\"type\":\"pong\",\"timestamp\":1}") == 0)
                break;
        }
        if (test_cur_failed)
            break;
        h_sleep_ms(300);
    }
    uint64_t ms = h_now_ms() - t0;
    CHECK(disconnected);
    CHECK(ms >= 1800 && ms <= 4500);
    CHECK(closed_within(&quiet, 1000) >= 0);
    CHECK(pong_next(&chatty, 2));  /* traffic kept the other one alive */
    wsc_close(&quiet);
    wsc_close(&chatty);
    STOP_OK();
}

/* ---------------------------------------------------------------- HTTP surfaces */

static void test_health_endpoint(void)
{
    REQUIRE(h_start(NULL));
    char resp[4096], v[128], want[256];
    snprintf(want, sizeof want, "{\"status\":\"ok\",\"connected_peers\":0,\"uptime_secs\":T,\"version\":\"%s\"}", DIG_RELAY_VERSION);
    REQUIRE(h_http("127.0.0.1", h_relay.health_port, "GET /health HTTP/1.1\r\nHost: relay\r\n\r\n", resp, sizeof resp, WAIT) > 0);
    CHECK_EQ_INT(h_http_status(resp), 200);
    CHECK(h_http_header(resp, "Content-Type", v, sizeof v) && strncmp(v, "application/json", 16) == 0);
    const char *body = h_http_body(resp);
    REQUIRE(body);
    char *m = hj_mask_times(body);
    CHECK_EQ_STR(m, want);
    free(m);
    CHECK(h_http_header(resp, "Content-Length", v, sizeof v) && (size_t)atoi(v) == strlen(body));

    ws_client a, b;
    REQUIRE(reg(&a, "A"));
    REQUIRE(reg_net(&b, "B", "OTHER_NET"));
    REQUIRE(h_http("127.0.0.1", h_relay.health_port, "GET /health HTTP/1.0\r\nConnection: close\r\n\r\n", resp, sizeof resp, WAIT) > 0);
    CHECK_EQ_INT(h_http_status(resp), 200);
    body = h_http_body(resp);
    REQUIRE(body);
    snprintf(want, sizeof want, "{\"status\":\"ok\",\"connected_peers\":2,\"uptime_secs\":T,\"version\":\"%s\"}", DIG_RELAY_VERSION);
    m = hj_mask_times(body);
    CHECK_EQ_STR(m, want);
    free(m);
    h_sleep_ms(1100);
    REQUIRE(h_http("127.0.0.1", h_relay.health_port, "GET /health HTTP/1.1\r\nHost: relay\r\n\r\n", resp, sizeof resp, WAIT) > 0);
    uint64_t up = 0;
    body = h_http_body(resp);
    CHECK(body && hj_get_u64(body, "uptime_secs", &up) && up >= 1 && up < 60);

    REQUIRE(h_http("127.0.0.1", h_relay.health_port, "GET /nope HTTP/1.1\r\nHost: relay\r\n\r\n", resp, sizeof resp, WAIT) > 0);
    CHECK_EQ_INT(h_http_status(resp), 404);
    REQUIRE(h_http("127.0.0.1", h_relay.health_port, "GET / HTTP/1.1\r\nHost: relay\r\n\r\n", resp, sizeof resp, WAIT) > 0);
    CHECK_EQ_INT(h_http_status(resp), 404);
    wsc_close(&a);
    wsc_close(&b);
    STOP_OK();
}

static void test_wire_port_http_answers(void)
{
    REQUIRE(h_start(NULL));
    char resp[4096];
    REQUIRE(h_http("127.0.0.1", h_relay.port, "GET / HTTP/1.1\r\nHost: relay\r\n\r\n", resp, sizeof resp, WAIT) > 0);
    CHECK_EQ_INT(h_http_status(resp), 200);
    CHECK(strstr(resp, "<title>dig-relay") != NULL);   /* the dashboard page */
    REQUIRE(h_http("127.0.0.1", h_relay.port, "GET /nope HTTP/1.1\r\nHost: relay\r\n\r\n", resp, sizeof resp, WAIT) > 0);
    CHECK_EQ_INT(h_http_status(resp), 404);

    static const char *const malformed[] = {
        "GET / HTTP/1.1\r\nthis line has no colon\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        "GET\r\n\r\n",
        "GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        int fd = tcp_connect("127.0.0.1", h_relay.port, NULL, WAIT);
        REQUIRE(fd >= 0);
        bool closed = false;
        CHECK(tcp_send_all(fd, malformed[i], strlen(malformed[i]), WAIT));
        tcp_recv_until_close(fd, resp, sizeof resp, WAIT, &closed);
        close(fd);
        if (h_http_status(resp) != 400 || !closed)
            printf("  malformed head #%zu: expected 400 and close, got \"%.40s\"%s\n", i, resp, closed ? "" : " (still open)");
        CHECK(h_http_status(resp) == 400 && closed);
    }

    /* a head over the bound is refused, not buffered */
    {
        int fd = tcp_connect("127.0.0.1", h_relay.port, NULL, WAIT);
        REQUIRE(fd >= 0);
        char *big = malloc(20000);
        REQUIRE(big);
        int n = snprintf(big, 20000, "GET / HTTP/1.1\r\nHost: x\r\nX-Filler: ");
        memset(big + n, 'a', 20000 - (size_t)n);
        bool closed = false;
        tcp_send_all(fd, big, 20000, WAIT);  /* may fail once the relay gives up */
        tcp_recv_until_close(fd, resp, sizeof resp, WAIT, &closed);
        close(fd);
        free(big);
        CHECK(closed);
        CHECK(h_http_status(resp) == 431 || h_http_status(resp) == 400 || resp[0] == '\0');
    }

    /* an upgrade with another version is refused and told which one we speak */
    REQUIRE(h_http("127.0.0.1", h_relay.port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                   "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", resp, sizeof resp, WAIT) > 0);
    char v[64];
    CHECK_EQ_INT(h_http_status(resp), 426);
    CHECK(h_http_header(resp, "Sec-WebSocket-Version", v, sizeof v) && strcmp(v, "13") == 0);

    /* any path upgrades; a requested subprotocol or extension is never chosen (checked by wsc_connect) */
    ws_client a;
    wsc_opts o = { .port = h_relay.port, .path = "/relay/v1?x=1",
                   .extra_headers = "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: permessage-deflate\r\n" };
    CHECK(wsc_connect(&a, &o));
    if (a.err[0])
        printf("  %s\n", a.err);
    CHECK(wsc_register(&a, "A", NET));
    wsc_close(&a);
    STOP_OK();
}

static void test_max_connections_enforced_at_accept(void)
{
    static const char *const args[] = { "--max-connections", "2", NULL };
    REQUIRE(h_start(args));
    int s1 = tcp_connect("127.0.0.1", h_relay.port, NULL, WAIT);  /* open but silent: still counted */
    REQUIRE(s1 >= 0);
    ws_client a;
    REQUIRE(reg(&a, "A"));

    /* the third socket is refused without an upgrade */
    char resp[1024];
    bool closed = false;
    int s3 = tcp_connect("127.0.0.1", h_relay.port, NULL, WAIT);
    REQUIRE(s3 >= 0);
    const char *req = "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    tcp_send_all(s3, req, strlen(req), WAIT);
    tcp_recv_until_close(s3, resp, sizeof resp, WAIT, &closed);
    close(s3);
    CHECK(closed);
    CHECK(strstr(resp, " 101 ") == NULL);
    CHECK(pong_next(&a, 1));

    /* a slot frees when a socket closes */
    close(s1);
    ws_client b;
    bool ok = false;
    for (uint64_t t0 = h_now_ms(); !ok && h_now_ms() - t0 < 2000;) {
        ok = wsc_connect_port(&b, h_relay.port);
        if (!ok) {
            wsc_close(&b);
            h_sleep_ms(50);
        }
    }
    CHECK(ok);
    if (ok) {
        CHECK(wsc_register(&b, "B", NET));
        wsc_close(&b);
    }
    wsc_close(&a);
    STOP_OK();
}

/* ---------------------------------------------------------------- signals and CLI */

static void test_sigterm_closes_with_1001_and_exits_0(void)
{
    REQUIRE(h_start(NULL));
    ws_client a, b, pending;
    REQUIRE(reg(&a, "A"));
    REQUIRE(reg(&b, "B"));
    REQUIRE(wsc_connect_port(&pending, h_relay.port));
    int raw = tcp_connect("127.0.0.1", h_relay.port, NULL, WAIT);
    REQUIRE(raw >= 0);
    h_sleep_ms(50);
    REQUIRE(kill(h_relay.pid, SIGTERM) == 0);
    CHECK_EQ_INT(closed_within(&a, WAIT), 1001);
    CHECK_EQ_INT(closed_within(&b, WAIT), 1001);
    CHECK_EQ_INT(closed_within(&pending, WAIT), 1001);
    CHECK(tcp_wait_closed(raw, WAIT));
    CHECK(wait_exit(5000));
    CHECK_EQ_INT(h_relay.exit_code, 0);
    close(raw);
    wsc_close(&a);
    wsc_close(&b);
    wsc_close(&pending);

    /* SIGINT likewise */
    relay_cleanup(&h_relay, test_cur_failed != 0);
    REQUIRE(h_start(NULL));
    REQUIRE(reg(&a, "A"));
    REQUIRE(kill(h_relay.pid, SIGINT) == 0);
    CHECK_EQ_INT(closed_within(&a, WAIT), 1001);
    CHECK(wait_exit(5000));
    CHECK_EQ_INT(h_relay.exit_code, 0);
    wsc_close(&a);
}

static void test_cli_unknown_flag_and_bad_values(void)
{
    char out[8192], err[8192];
    const char *const unknown[] = { "--no-such-flag", NULL };
    CHECK_EQ_INT(h_run_binary(unknown, NULL, out, sizeof out, err, sizeof err, 5000), 2);
    CHECK(strstr(err, "--no-such-flag") != NULL);

    const char *const *const bad[] = {
        (const char *const[]){ "--max-connections", "abc", NULL },
        (const char *const[]){ "--max-connections", "0", NULL },
        (const char *const[]){ "--idle-timeout-secs", "0", NULL },
        (const char *const[]){ "--register-timeout-secs", "-1", NULL },
        (const char *const[]){ "--max-message-bytes", "0", NULL },
        (const char *const[]){ "--max-message-bytes", "18446744073709551615", NULL },   /* + 1 wraps */
        (const char *const[]){ "--outbound-queue-capacity", "0", NULL },
        (const char *const[]){ "--listen", "not-an-address", NULL },
        (const char *const[]){ "--listen", NULL },
        (const char *const[]){ "--stun-listen", "nowhere", NULL },
        (const char *const[]){ "--dashboard-listen", "1.2.3.4", NULL },
        (const char *const[]){ "--health-listen", "[::1]:70000", NULL },
        /* explicit values that conflict are refused (a lowered value only clamps defaults) */
        (const char *const[]){ "--liveness-deadline-secs", "20", "--idle-timeout-secs", "10", NULL },
        (const char *const[]){ "--max-connections-per-ip", "100", "--max-connections", "10", NULL },
        (const char *const[]){ "--tls-cert", "/tmp/cert.pem", NULL },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int code = h_run_binary(bad[i], NULL, out, sizeof out, err, sizeof err, 5000);
        bool names = strstr(err, bad[i][0]) != NULL || strstr(err, bad[i][0] + 2) != NULL;
        if (code != 2 || !names)
            printf("  %s %s: exit %d, stderr: %.200s\n", bad[i][0], bad[i][1] ? bad[i][1] : "", code, err);
        CHECK(code == 2 && names);
    }
    /* a bad environment value is refused too */
    const char *const env[] = { "DIG_RELAY_MAX_CONNECTIONS=zero", NULL };
    const char *const none[] = { NULL };
    CHECK_EQ_INT(h_run_binary(none, env, out, sizeof out, err, sizeof err, 5000), 2);
    CHECK(strstr(err, "DIG_RELAY_MAX_CONNECTIONS") != NULL || strstr(err, "max-connections") != NULL);
}

#if !DIG_HAVE_TLS
/* A build without TLS refuses --tls-cert/--tls-key (flags or variables) instead of accepting them
 * and serving plain ws:// while --help promised certificate checks. Part of TLS=0 builds' suite
 * only (CI builds one). */
static void test_cli_tls_refused_without_tls(void)
{
    char out[16384], err[4096];
    const char *const flags[] = { "--tls-cert", "/tmp/cert.pem", "--tls-key", "/tmp/key.pem", NULL };
    CHECK_EQ_INT(h_run_binary(flags, NULL, out, sizeof out, err, sizeof err, 5000), 2);
    CHECK(strstr(err, "TLS is not built in") != NULL);
    const char *const env[] = { "DIG_RELAY_TLS_CERT_PATH=/tmp/cert.pem",
                                "DIG_RELAY_TLS_KEY_PATH=/tmp/key.pem", NULL };
    const char *const none[] = { NULL };
    CHECK_EQ_INT(h_run_binary(none, env, out, sizeof out, err, sizeof err, 5000), 2);
    CHECK(strstr(err, "TLS is not built in") != NULL);
    const char *const help[] = { "--help", NULL };
    CHECK_EQ_INT(h_run_binary(help, NULL, out, sizeof out, err, sizeof err, 5000), 0);
    CHECK(strstr(out, "This build has no TLS") != NULL);
}
#endif

static void test_cli_port_in_use(void)
{
    int hold = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(hold >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    REQUIRE(bind(hold, (struct sockaddr *)&sa, sl) == 0 && listen(hold, 1) == 0);
    REQUIRE(getsockname(hold, (struct sockaddr *)&sa, &sl) == 0);
    char busy[32], health[32], stun[32], dash[32], free_listen[32];
    snprintf(busy, sizeof busy, "127.0.0.1:%u", ntohs(sa.sin_port));
    snprintf(health, sizeof health, "127.0.0.1:%u", h_free_port("tcp4"));
    snprintf(stun, sizeof stun, "127.0.0.1:%u", h_free_port("udp4"));
    snprintf(dash, sizeof dash, "127.0.0.1:%u", h_free_port("tcp4"));
    snprintf(free_listen, sizeof free_listen, "127.0.0.1:%u", h_free_port("tcp4"));
    char out[4096], err[8192];

    const char *const wire_busy[] = { "--listen", busy, "--health-listen", health, "--stun-listen", stun,
                                      "--dashboard-listen", dash, NULL };
    int code = h_run_binary(wire_busy, NULL, out, sizeof out, err, sizeof err, 5000);
    CHECK(code > 0 && code < 128);
    CHECK(strstr(err, busy) != NULL);
    if (!strstr(err, busy))
        printf("  stderr: %.300s\n", err);

    const char *const health_busy[] = { "--listen", free_listen, "--health-listen", busy, "--stun-listen", stun,
                                        "--dashboard-listen", dash, NULL };
    code = h_run_binary(health_busy, NULL, out, sizeof out, err, sizeof err, 5000);
    CHECK(code > 0 && code < 128);
    CHECK(strstr(err, busy) != NULL);
    close(hold);
}

static void test_cli_help_lists_every_flag(void)
{
    char out[16384], err[4096];
    const char *const help[] = { "--help", NULL };
    CHECK_EQ_INT(h_run_binary(help, NULL, out, sizeof out, err, sizeof err, 5000), 0);
    static const char *const flags[] = {
        "serve", "--listen", "--health-listen", "--dashboard-listen", "--stun-listen", "--max-connections",
        "--idle-timeout-secs", "--register-timeout-secs", "--outbound-queue-capacity", "--outbound-queue-bytes",
        "--notice-hold-ms", "--max-message-bytes", "--stun-per-ip-rps", "--stun-global-rps", "--health-check-interval-secs",
        "--liveness-deadline-secs", "--max-connections-per-ip", "--registrations-per-ip-per-sec",
        "--max-registrations-per-ip", "--messages-per-conn-per-sec", "--bytes-per-conn-per-sec",
        "--max-relayed-bytes-per-conn", "--ban-threshold", "--ban-duration-secs", "--ban-strike-window-secs",
        "--tls-cert", "--tls-key", "--tls-client-auth", "--tls-client-ca", "--log-level", "--help",
        "--version",
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        /* each flag as a whole word (so --listen is not satisfied by --health-listen) */
        bool found = false;
        size_t fl = strlen(flags[i]);
        for (const char *p = strstr(out, flags[i]); p && !found; p = strstr(p + 1, flags[i])) {
            char before = p == out ? ' ' : p[-1], after = p[fl];
            found = !(before == '-' || (before >= 'a' && before <= 'z')) && !(after == '-' || (after >= 'a' && after <= 'z'));
        }
        if (!found)
            printf("  --help does not mention %s\n", flags[i]);
        CHECK(found);
    }
}

static void test_cli_version(void)
{
    char out[1024], err[1024];
    const char *const version[] = { "--version", NULL };
    CHECK_EQ_INT(h_run_binary(version, NULL, out, sizeof out, err, sizeof err, 5000), 0);
    CHECK(strstr(out, "dig-relay") != NULL);
    CHECK(strstr(out, DIG_RELAY_VERSION) != NULL);
}

/* Env vars configure the relay; a flag beats its env var; "serve" is accepted. */
static void test_env_vars_and_serve_subcommand(void)
{
    uint16_t port = h_free_port("tcp4");
    char listen_env[64];
    snprintf(listen_env, sizeof listen_env, "DIG_RELAY_LISTEN=127.0.0.1:%u", port);
    const char *const env[] = { listen_env, "DIG_RELAY_MAX_MESSAGE_BYTES=300", NULL };
    relay_opts o = { .omit_listen = true, .serve_subcommand = true, .env = env };
    REQUIRE(relay_start(&h_relay, &o));
    h_relay.port = port;
    ws_client a;
    REQUIRE(reg(&a, "A"));
    char msg[600];
    int n = snprintf(msg, sizeof msg, "{\"type\":\"ping\",\"timestamp\":1}");
    memset(msg + n, ' ', 500 - (size_t)n);
    msg[500] = '\0';
    CHECK(wsc_send_text(&a, msg));
    CHECK_EQ_INT(closed_within(&a, WAIT), 1009);  /* the env limit of 300 applies */
    wsc_close(&a);
    STOP_OK();
    relay_cleanup(&h_relay, false);

    static const char *const args[] = { "--max-message-bytes", "4096", NULL };
    relay_opts o2 = { .env = env + 1, .args = args };
    REQUIRE(relay_start(&h_relay, &o2));
    REQUIRE(reg(&a, "A"));
    CHECK(wsc_send_text(&a, msg));
    CHECK(expect(&a, "{\"type\":\"pong\",\"timestamp\":1}"));  /* the flag's 4096 wins */
    wsc_close(&a);
    STOP_OK();
}

/* True when every line of the log starts with a timestamp (a digit) and some line mentions the
 * level word (case-insensitive). */
static bool log_has_level(const char *log, const char *level)
{
    bool found = false;
    for (const char *line = log; *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        if (n > 0 && !(line[0] >= '0' && line[0] <= '9')) {
            printf("  log line without a timestamp: %.*s\n", (int)n, line);
            return false;
        }
        for (size_t i = 0; !found && i + strlen(level) <= n; i++)
            found = strncasecmp(line + i, level, strlen(level)) == 0;
        line += n + (nl ? 1 : 0);
    }
    return found;
}

/* Timestamped lines on stderr; the level comes from --log-level, else RUST_LOG, else info. */
static void test_log_levels(void)
{
    static const struct { const char *flag; const char *rust_log; bool info, debug; } cases[] = {
        { NULL, NULL, true, false },
        { "error", NULL, false, false },
        { "debug", NULL, true, true },
        { NULL, "debug", true, true },
        { NULL, "dig_relay=debug,hyper=warn", true, true },
        { "warn", "debug", false, false },  /* the flag wins */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[] = { "--log-level", cases[i].flag, NULL };
        char env_entry[128];
        snprintf(env_entry, sizeof env_entry, "RUST_LOG=%s", cases[i].rust_log ? cases[i].rust_log : "");
        const char *const env[] = { env_entry, NULL };
        relay_opts o = { .args = cases[i].flag ? args : NULL, .env = cases[i].rust_log ? env : NULL };
        REQUIRE(relay_start(&h_relay, &o));
        ws_client a;
        CHECK(reg(&a, "A"));
        wsc_close(&a);
        STOP_OK();
        char *log = relay_read_log(&h_relay);
        REQUIRE(log);
        bool info = log_has_level(log, "info"), debug = log_has_level(log, "debug");
        if (info != cases[i].info || debug != cases[i].debug) {
            printf("  --log-level %s, RUST_LOG=%s: info lines %s, debug lines %s\n", cases[i].flag ? cases[i].flag : "(unset)",
                   cases[i].rust_log ? cases[i].rust_log : "(unset)", info ? "present" : "absent", debug ? "present" : "absent");
            test_cur_failed = 1;
        }
        free(log);
        relay_cleanup(&h_relay, test_cur_failed != 0);
    }
    memset(&h_relay, 0, sizeof h_relay);
}

/* A client that sends WebSocket pings and never reads: its pongs are held to the queue caps like
 * any message, so the relay's memory stays bounded and another peer is still answered. */
static void test_ping_flood_without_reading_is_bounded(void)
{
    static const char *const args[] = { "--outbound-queue-capacity", "64",
                                        "--messages-per-conn-per-sec", "0",
                                        "--bytes-per-conn-per-sec", "0", NULL };
    static uint8_t burst[131 * 1024 + 14], ping_payload[125];
    ws_client flooder, honest;
    size_t n = 0;
    REQUIRE(h_start(args));
    REQUIRE(reg(&flooder, "flooder"));
    REQUIRE(reg(&honest, "honest"));
    memset(ping_payload, 'p', sizeof ping_payload);
    for (int i = 0; i < 1024; i++)
        n += wsc_build_frame(burst + n, sizeof burst - n, 9, true, 0, true, ping_payload,
                             sizeof ping_payload);
    uint64_t before = relay_rss_kb(&h_relay);
    /* 100 bursts of 1024 full-size pings: 102,400 pongs (13 MB) the flooder never reads */
    for (int i = 0; i < 100; i++)
        REQUIRE(wsc_send_raw(&flooder, burst, n));
    /* once this arrives, the relay has handled every ping before it */
    REQUIRE(wsc_sendf(&flooder, "{\"type\":\"relay_message\",\"from\":\"flooder\",\"to\":\"honest\","
                            "\"payload\":[1],\"seq\":1}"));
    CHECK(wsc_recv_type(&honest, "relay_message", 20000) > 0);
    CHECK(wsc_ping_rtt(&honest, 7, WAIT) >= 0);
    uint64_t after = relay_rss_kb(&h_relay);
    printf("  info: relay RSS %llu KiB -> %llu KiB after 102,400 unread pongs\n",
           (unsigned long long)before, (unsigned long long)after);
    CHECK(after < before + 16 * 1024);
    wsc_close(&flooder);
    wsc_close(&honest);
    STOP_OK();
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    T(test_harness_self_check);
    T(test_register_ack_counts_live_registrations);
    T(test_ping_flood_without_reading_is_bounded);
    T(test_pipelined_register_and_get_peers);
    T(test_duplicate_live_id_is_refused);
    T(test_stale_id_is_reclaimed);
    T(test_unregister_notifies_and_closes);
    T(test_dropped_connection_notifies_peers);
    T(test_relay_message_routing);
    T(test_queue_limits_past_32_bits);
    T(test_forwarded_payload_is_compact);
    T(test_relay_message_order_preserved);
    T(test_messages_through_keepalive_holds);
    T(test_broadcast_with_exclude);
    T(test_get_peers);
    T(test_peers_sorted_by_id);
    T(test_storm_shares_correct_peers_answers);
    T(test_kept_peers_answer_follows_last_seen);
    T(test_pings_answered_through_a_storm);
    T(test_peer_connected_after_ack_not_to_self);
    T(test_held_notices_keep_order_and_leave_on_their_own);
    T(test_ping_pong);
    T(test_hole_punch);
    T(test_not_registered_errors);
    T(test_bad_messages_get_error_2_and_stay_open);
    T(test_dialable_addresses);
    T(test_binary_16k_payload_round_trip);
    T(test_large_and_small_payloads_forwarded_byte_exact);
    T(test_one_byte_fragments);
    T(test_oversized_frames_close_1009);
    T(test_lonely_departure_leaks_nothing);
    T(test_websocket_protocol_errors);
    T(test_slow_reader_does_not_stall_or_grow);
    T(test_broadcast_reaches_300_peers);
    T(test_ipv4_and_ipv6_on_one_dual_stack_listener);
    T(test_explicit_ipv4_listen_is_ipv4_only);
    T(test_register_timeout_reaps_silent_sockets);
    T(test_idle_timeout);
    T(test_health_endpoint);
    T(test_wire_port_http_answers);
    T(test_max_connections_enforced_at_accept);
    T(test_sigterm_closes_with_1001_and_exits_0);
    T(test_cli_unknown_flag_and_bad_values);
#if !DIG_HAVE_TLS
    T(test_cli_tls_refused_without_tls);
#endif
    T(test_cli_port_in_use);
    T(test_cli_help_lists_every_flag);
    T(test_cli_version);
    T(test_env_vars_and_serve_subcommand);
    T(test_log_levels);
    return test_finish();
}
