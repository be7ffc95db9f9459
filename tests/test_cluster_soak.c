/* Cluster churn soak: DIG_SOAK_PEERS peers (default 60) spread over three instances sharing a
 * redis-server, for DIG_SOAK_SECS (default 60) after a warm-up (DIG_SOAK_WARMUP_SECS, default
 * 5), as tests/test_soak.c does for one relay. Every round a tenth of the peers leave (closing
 * abruptly or with unregister) and come back under a new id on the next instance; then every
 * instance must list exactly the live set, in the same order, before each peer relays one
 * message to another (a permutation across instances) and one peer broadcasts. Every message
 * arrives exactly once with its content. At the end the registry is consistent everywhere
 * (/health, get_peers, and Redis holding exactly the live peers' keys), and no instance's
 * resident set grew by more than 10% (+1 MB of allocator slack) since the warm-up. As in
 * tests/test_soak.c, an ASan build runs with its quarantine off and free pages released at once,
 * so RSS measures the relay rather than ASan; its leak check at exit still fails the test. */
#include "tests/test.h"
#include "tests/cluster_harness.h"
#include "tests/harness.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PEERS 300
#define ID_LEN 16
#define ROUND_MS 15000u   /* a round's deadline for visibility and delivery */

static size_t n_peers;
static ws_client peers[MAX_PEERS], observers[HC_INSTANCES];
static char ids[MAX_PEERS][ID_LEN];
static unsigned gens[MAX_PEERS];
static bool live[MAX_PEERS];
static uint64_t rng = 1;

static uint64_t env_u64(const char *name, uint64_t def)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 10) : def;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The live ids plus the observers', sorted, comma-separated. */
static void expected_list(char *out, size_t cap)
{
    const char *all[MAX_PEERS + HC_INSTANCES];
    static const char *const obs[HC_INSTANCES] = { "O0", "O1", "O2" };
    size_t n = 0, len = 0;
    for (size_t i = 0; i < n_peers; i++)
        if (live[i])
            all[n++] = ids[i];
    for (int i = 0; i < HC_INSTANCES; i++)
        all[n++] = obs[i];
    qsort(all, n, sizeof all[0], cmp_str);
    out[0] = '\0';
    for (size_t i = 0; i < n && len + ID_LEN + 2 < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "," : "", all[i]);
}

static bool join_slot(size_t s)
{
    gens[s]++;
    snprintf(ids[s], sizeof ids[s], "S%zug%u", s, gens[s]);
    live[s] = hc_join(&peers[s], (int)((s + gens[s]) % HC_INSTANCES), ids[s]);
    if (!live[s])
        printf("  %s could not register\n", ids[s]);
    return live[s];
}

/* A tenth of the peers leave, half abruptly and half with unregister, and come back under a
 * new id on the next instance. */
static bool churn(void)
{
    for (size_t k = 0; k < n_peers / 10; k++) {
        size_t s = h_below(&rng, n_peers);
        if (h_rand(&rng) & 1)
            wsc_send_text(&peers[s], "{\"type\":\"unregister\"}");
        wsc_close(&peers[s]);
        live[s] = false;
        if (!join_slot(s))
            return false;
    }
    return true;
}

static bool all_see_the_live_set(void)
{
    static char want[MAX_PEERS * ID_LEN + 64];
    expected_list(want, sizeof want);
    for (int i = 0; i < HC_INSTANCES; i++)
        if (!hc_wait_peers(&observers[i], want, ROUND_MS))
            return false;
    return true;
}

/* Every peer sends one relay_message to the peer `shift` slots on (a permutation), and peer
 * `caster` broadcasts; each must arrive exactly once. */
static bool traffic(unsigned round)
{
    size_t shift = 1 + h_below(&rng, n_peers - 1), caster = round % n_peers;
    for (size_t s = 0; s < n_peers; s++)
        if (!wsc_sendf(&peers[s], "{\"type\":\"relay_message\",\"from\":\"%s\",\"to\":\"%s\","
                                  "\"payload\":[%u],\"seq\":%u}",
                       ids[s], ids[(s + shift) % n_peers], (unsigned)(s % 256), round))
            return false;
    if (!wsc_sendf(&peers[caster], "{\"type\":\"broadcast\",\"from\":\"%s\",\"payload\":[%u],\"exclude\":[]}",
                   ids[caster], round % 256))
        return false;
    for (size_t t = 0; t < n_peers; t++) {
        size_t from = (t + n_peers - shift) % n_peers;
        char want_msg[160], want_cast[128];
        snprintf(want_msg, sizeof want_msg,
                 "{\"type\":\"relay_message\",\"from\":\"%s\",\"to\":\"%s\",\"payload\":[%u],\"seq\":%u}",
                 ids[from], ids[t], (unsigned)(from % 256), round);
        snprintf(want_cast, sizeof want_cast,
                 "{\"type\":\"broadcast\",\"from\":\"%s\",\"payload\":[%u],\"exclude\":[]}", ids[caster],
                 round % 256);
        bool got_msg = false, got_cast = t == caster;
        uint64_t deadline = h_now_ms() + ROUND_MS;
        while ((!got_msg || !got_cast) && h_now_ms() < deadline) {
            if (wsc_recv_msg(&peers[t], ROUND_MS) != WSC_OK)
                break;
            const char *m = (const char *)peers[t].msg;
            if (hj_is_type(m, "relay_message") || hj_is_type(m, "broadcast")) {
                bool is_msg = strcmp(m, want_msg) == 0, is_cast = strcmp(m, want_cast) == 0;
                if ((!is_msg && !is_cast) || (is_msg && got_msg) || (is_cast && got_cast)) {
                    printf("  round %u: %s got %s\n", round, ids[t], m);
                    return false;
                }
                got_msg |= is_msg;
                got_cast |= is_cast;
            } else if (hj_is_type(m, "error")) {
                printf("  round %u: %s got %s\n", round, ids[t], m);
                return false;
            }
        }
        if (!got_msg || !got_cast) {
            printf("  round %u: %s missed %s\n", round, ids[t], got_msg ? "the broadcast" : "its message");
            return false;
        }
    }
    return true;
}

static bool run_rounds(uint64_t secs, unsigned *round)
{
    uint64_t until = h_now_ms() + secs * 1000;
    while (h_now_ms() < until) {
        ++*round;
        if (!churn() || !all_see_the_live_set() || !traffic(*round))
            return false;
    }
    return true;
}

static void test_cluster_churn_soak(void)
{
    if (!relay_built_in("cluster"))
        SKIP("hiredis not built in");
    if (!hc_have_redis())
        SKIP("redis-server not installed");
    n_peers = (size_t)env_u64("DIG_SOAK_PEERS", 60);
    if (n_peers < 4)
        n_peers = 4;
    if (n_peers > MAX_PEERS)
        n_peers = MAX_PEERS;
    uint64_t secs = env_u64("DIG_SOAK_SECS", 60), warmup = env_u64("DIG_SOAK_WARMUP_SECS", 5);
    rng = env_u64("DIG_SOAK_SEED", (uint64_t)h_now_ms()) | 1;
    printf("  %zu peers, %llu s after a %llu s warm-up, seed %llu\n", n_peers, (unsigned long long)secs,
           (unsigned long long)warmup, (unsigned long long)rng);

    setenv("ASAN_OPTIONS", "detect_leaks=1:quarantine_size_mb=0:allocator_release_to_os_interval_ms=0", 1);
    /* every peer comes from 127.0.0.1: the per-address limits are off */
    REQUIRE(hc_start_cluster(false, (const char *const[]){ "--log-level", "warn", H_SOURCE_LIMITS_OFF, NULL }));
    for (int i = 0; i < HC_INSTANCES; i++) {
        char id[4];
        snprintf(id, sizeof id, "O%d", i);
        REQUIRE(hc_join(&observers[i], i, id));
    }
    for (size_t s = 0; s < n_peers; s++)
        REQUIRE(join_slot(s));
    REQUIRE(all_see_the_live_set());

    unsigned round = 0;
    REQUIRE(run_rounds(warmup, &round));
    uint64_t rss0[HC_INSTANCES];
    for (int i = 0; i < HC_INSTANCES; i++)
        rss0[i] = relay_rss_kb(&hc_inst[i]);
    unsigned warm_rounds = round;
    CHECK(run_rounds(secs, &round));
    printf("  %u rounds of churn and traffic\n", round - warm_rounds);

    /* consistent everywhere: lists, /health, and Redis's keys (peers + instance leases) */
    CHECK(all_see_the_live_set());
    for (int i = 0; i < HC_INSTANCES; i++) {
        char resp[512];
        uint64_t n = 0;
        CHECK(h_http("127.0.0.1", hc_inst[i].health_port, "GET /health HTTP/1.0\r\n\r\n", resp,
                     sizeof resp, HC_WAIT) > 0 &&
              hj_get_u64(h_http_body(resp), "connected_peers", &n));
        CHECK_EQ_INT(n, n_peers + HC_INSTANCES);
    }
    char dbsize[64] = "", want[32];
    snprintf(want, sizeof want, ":%zu\r\n", n_peers + 2 * HC_INSTANCES);
    uint64_t deadline = h_now_ms() + ROUND_MS;
    while (h_now_ms() < deadline &&
           !(hc_redis_cmd("DBSIZE", dbsize, sizeof dbsize, HC_WAIT) > 0 && strstr(dbsize, want)))
        h_sleep_ms(100);
    if (!strstr(dbsize, want))
        printf("  Redis DBSIZE %s, wanted %s", dbsize, want);
    CHECK(strstr(dbsize, want) != NULL);
    /* no leak: resident memory flat */
    for (int i = 0; i < HC_INSTANCES; i++) {
        uint64_t rss = relay_rss_kb(&hc_inst[i]);
        printf("  instance %d RSS %llu kB after the warm-up, %llu kB at the end\n", i,
               (unsigned long long)rss0[i], (unsigned long long)rss);
        if (!relay_under_valgrind(&hc_inst[i]))
            CHECK(rss <= rss0[i] + rss0[i] / 10 + 1024);
    }
    for (size_t s = 0; s < n_peers; s++)
        wsc_close(&peers[s]);
    for (int i = 0; i < HC_INSTANCES; i++)
        wsc_close(&observers[i]);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN_AND(test_cluster_churn_soak, if (!hc_stop_cluster(test_cur_failed != 0)) test_cur_failed = 1);
    return test_finish();
}
