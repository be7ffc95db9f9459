/* Integration test of a registration storm against the real relay: hundreds of reservations on
 * one network send register and get_peers while the relay is stopped (SIGSTOP), so its first
 * pass after SIGCONT meets all of them at once and has to spread the work over later passes.
 * Every member must still get its register_ack before its peers answer, learn of every other
 * member exactly as the protocol promises (in its peers answer or by one peer_connected, never of
 * itself), and
 * lose nothing to a full queue; the relay's metrics must show that messages were indeed left for
 * later passes, and a reservation on another network must still have its pings answered. */
#include "tests/harness.h"
#include "tests/test.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Enough members that one pass cannot take every registration: a pass takes about 256k frames
 * of work (conn.c FRAMES_PER_PASS) and n registrations on one network queue n(n-1)/2. */
#define MEMBERS 800
#define ID_PREFIX "\"peer_id\":\"storm-"

static const char *const limits_off[] = {
    H_LIMITS_OFF, "--max-connections", "2000", NULL
};

typedef struct {
    ws_client ws;
    bool acked, got_peers;
    unsigned known;            /* other members it has learnt of */
    uint8_t *seen;             /* seen[j]: member j is known */
    uint8_t *told;             /* told[j]: a peer_connected for member j arrived */
} member;

/* Marks every member id named in msg as known to m; false when msg names an unknown id. */
static bool learn(member *m, size_t self, const char *msg)
{
    for (const char *p = msg; (p = strstr(p, ID_PREFIX)); ) {
        p += strlen(ID_PREFIX);
        char *end;
        unsigned long j = strtoul(p, &end, 10);
        if (end == p || *end != '"' || j >= MEMBERS) {
            printf("  member %zu: unexpected id in %.120s\n", self, msg);
            return false;
        }
        if (j != self && !m->seen[j]) {
            m->seen[j] = 1;
            m->known++;
        }
    }
    return true;
}

/* Handles one message to member i; false on anything the protocol does not allow. */
static bool on_message(member *m, size_t i, const char *msg)
{
    if (!m->acked) {
        if (!hj_is_type(msg, "register_ack") || !strstr(msg, "\"success\":true")) {
            printf("  member %zu: first message is not a successful register_ack: %.200s\n", i, msg);
            return false;
        }
        m->acked = true;
        return true;
    }
    if (hj_is_type(msg, "peers")) {
        if (m->got_peers) {
            printf("  member %zu: a second peers answer\n", i);
            return false;
        }
        m->got_peers = true;
        return learn(m, i, msg);
    }
    if (hj_is_type(msg, "peer_connected")) {
        /* each member is announced to each other one once, never to itself */
        const char *p = strstr(msg, ID_PREFIX);
        unsigned long j = p ? strtoul(p + strlen(ID_PREFIX), NULL, 10) : MEMBERS;
        if (j >= MEMBERS || j == i || m->told[j]) {
            printf("  member %zu: peer_connected repeated, about itself or unknown: %.200s\n", i, msg);
            return false;
        }
        m->told[j] = 1;
        return learn(m, i, msg);
    }
    printf("  member %zu: unexpected message %.200s\n", i, msg);
    return false;
}

static void test_storm_loses_nothing(void)
{
    if (!h_raise_fd_limit(2 * MEMBERS + 64))
        SKIP("the descriptor limit is below what the storm needs");

    REQUIRE(h_start(limits_off));
    member *m = calloc(MEMBERS, sizeof *m);
    uint8_t *seen = calloc((size_t)MEMBERS * MEMBERS, 1);
    uint8_t *told = calloc((size_t)MEMBERS * MEMBERS, 1);
    struct pollfd *pfd = calloc(MEMBERS, sizeof *pfd);
    REQUIRE(m && seen && told && pfd);
    ws_client probe;
    REQUIRE(wsc_connect_register(&probe, h_relay.port, "storm-probe", "elsewhere"));
    for (size_t i = 0; i < MEMBERS; i++) {
        m[i].seen = seen + i * MEMBERS;
        m[i].told = told + i * MEMBERS;
        REQUIRE(wsc_connect_port(&m[i].ws, h_relay.port));
    }

    /* Every register and get_peers is on its way before the relay reads any of them. */
    REQUIRE(kill(h_relay.pid, SIGSTOP) == 0);
    for (size_t i = 0; i < MEMBERS; i++) {
        char id[32], reg[512];
        snprintf(id, sizeof id, "storm-%04zu", i);
        h_register_json(reg, sizeof reg, id, "storm-net", NULL);
        CHECK(wsc_send_text(&m[i].ws, reg));
        CHECK(wsc_send_text(&m[i].ws, "{\"type\":\"get_peers\"}"));
    }
    REQUIRE(kill(h_relay.pid, SIGCONT) == 0);
    if (test_cur_failed)
        goto out;
    CHECK(wsc_ping_rtt(&probe, 42, 60000 * h_slowdown()) >= 0);

    size_t complete = 0;
    uint64_t deadline = h_now_ms() + 120000ull * h_slowdown();
    while (complete < MEMBERS && h_now_ms() < deadline && !test_cur_failed) {
        for (size_t i = 0; i < MEMBERS; i++) {
            pfd[i].fd = m[i].ws.fd;
            pfd[i].events = POLLIN;
        }
        if (poll(pfd, MEMBERS, 1000) < 0)
            break;
        complete = 0;
        for (size_t i = 0; i < MEMBERS && !test_cur_failed; i++) {
            int rc = WSC_TIMEOUT;
            while ((pfd[i].revents || m[i].ws.off < m[i].ws.len) &&
                   (rc = wsc_recv_msg(&m[i].ws, 0)) == WSC_OK)
                CHECK(on_message(&m[i], i, (const char *)m[i].ws.msg));
            if (rc != WSC_OK && rc != WSC_TIMEOUT) {
                printf("  member %zu: connection ended (%d, close code %u, %s)\n", i, rc,
                       m[i].ws.close_code, m[i].ws.err);
                CHECK(false);
            }
            complete += m[i].acked && m[i].got_peers && m[i].known == MEMBERS - 1;
        }
    }
    if (complete < MEMBERS) {
        size_t shown = 0;
        for (size_t i = 0; i < MEMBERS && shown < 5; i++)
            if (!(m[i].acked && m[i].got_peers && m[i].known == MEMBERS - 1)) {
                printf("  member %zu: acked %d, peers %d, knows %u of %d\n", i, m[i].acked,
                       m[i].got_peers, m[i].known, MEMBERS - 1);
                shown++;
            }
    }
    CHECK_EQ_INT(complete, MEMBERS);

    /* The storm did spread over passes, and nothing was dropped on the way. */
    static char resp[1 << 17];
    const char req[] = "GET /metrics HTTP/1.1\r\nHost: relay.test\r\n\r\n";
    REQUIRE(h_http("127.0.0.1", h_relay.port, req, resp, sizeof resp, 10000 * h_slowdown()) > 0);
    const char *body = h_http_body(resp);
    REQUIRE(body != NULL);
    long long deferred = h_metric(body, "dig_relay_deferred_messages_total");
    printf("  info: %lld messages left for a later pass\n", deferred);
    CHECK(deferred > 0);
    CHECK_EQ_INT(h_metric(body, "dig_relay_queue_drops_total"), 0);
    CHECK(wsc_ping_rtt(&probe, 43, 10000 * h_slowdown()) >= 0);
out:
    for (size_t i = 0; i < MEMBERS; i++)
        wsc_close(&m[i].ws);
    wsc_close(&probe);
    free(pfd);
    free(seen);
    free(told);
    free(m);
    STOP_OK();
}

int main(void)
{
    T(test_storm_loses_nothing);
    return test_finish();
}
