/* dig-relay probe against a real relay and against one that is down: every check answered and
 * exit 0 (text and --json), then every check failing within its deadlines and exit 1; a URL it
 * cannot use is a usage error (2). */
#include "test.h"
#include "harness.h"

#include <stdlib.h>

static char out[16384], err[4096];

static int probe(const relay_proc *r, bool json)
{
    char url[96], health[64], stun[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", r->port);
    snprintf(health, sizeof health, "--health-listen=127.0.0.1:%u", r->health_port);
    snprintf(stun, sizeof stun, "--stun-listen=127.0.0.1:%u", r->stun_port);
    const char *args[] = {"probe", url, health, stun, json ? "--json" : NULL, NULL};
    return h_run_binary(args, NULL, out, sizeof out, err, sizeof err, 60000);
}

static void test_probe_answers(void)
{
    relay_proc r;
    REQUIRE(relay_start_args(&r, NULL));
    CHECK_EQ_INT(probe(&r, false), 0);
    static const char *const lines[] = {"  connect   ok", "  register  ok", "  ping      ok",
                                        "  relay     ok", "  health    ok", "  stun      ok",
                                        "6 of 6 checks answered"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        CHECK(strstr(out, lines[i]) != NULL);
    CHECK(strstr(out, "sees this host as 127.0.0.1:") != NULL);
    CHECK(strstr(out, "answered 200") != NULL);
    CHECK_EQ_INT(probe(&r, true), 0);
    static const char ok_prefix[] = "{\"ok\":true,\"result\":{\"connect\":{\"detail\":";
    CHECK(strncmp(out, ok_prefix, sizeof ok_prefix - 1) == 0);
    CHECK_EQ_INT(h_count(out, "\"ok\":true"), 7);
    if (test_cur_failed)
        printf("%s%s", out, err);
    /* The probe's throwaway registration is gone: the relay holds no peer afterwards. */
    char resp[2048];
    uint64_t peers = 1;
    for (uint64_t end = h_now_ms() + 5000; h_now_ms() < end && peers != 0; h_sleep_ms(20)) {
        if (h_http("127.0.0.1", r.health_port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", resp,
                   sizeof resp, 2000) > 0)
            hj_get_u64(h_http_body(resp), "connected_peers", &peers);
    }
    CHECK_EQ_INT(peers, 0);
    relay_end_test(&r, test_cur_failed);
}

static void test_probe_relay_down(void)
{
    relay_proc r;
    REQUIRE(relay_start_args(&r, NULL));
    relay_stop(&r, 5000);
    uint64_t start = h_now_ms();
    CHECK_EQ_INT(probe(&r, false), 1);
    CHECK(h_now_ms() - start < 20000);
    CHECK(strstr(out, "  connect   FAIL") != NULL);
    CHECK(strstr(out, "  register  --   not tried") != NULL);
    CHECK(strstr(out, "  health    FAIL") != NULL);
    CHECK(strstr(out, "  stun      FAIL") != NULL);
    CHECK(strstr(out, "0 of 6 checks answered") != NULL);
    CHECK_EQ_INT(probe(&r, true), 1);
    static const char failed_prefix[] = "{\"ok\":false,\"result\":";
    CHECK(strncmp(out, failed_prefix, sizeof failed_prefix - 1) == 0);
    if (test_cur_failed)
        printf("%s%s", out, err);
    relay_end_test(&r, test_cur_failed);

    const char *bad[] = {"probe", "http://127.0.0.1:1", NULL};
    CHECK_EQ_INT(h_run_binary(bad, NULL, out, sizeof out, err, sizeof err, 10000), 2);
    CHECK(strstr(err, "is not a ws:// or wss:// URL") != NULL);
}

int main(void)
{
    RUN(test_probe_answers);
    RUN(test_probe_relay_down);
    return test_finish();
}
