/* Churn soak: 2000 peers (DIG_SOAK_PEERS) on ten networks register, relay messages to each
 * other, broadcast, ask for peer lists and ping, while a tenth of them disconnect (unregister,
 * close frame, plain close or reset) and are replaced by new registrations every round, for a
 * bounded time (DIG_SOAK_SECS, default 60) after a warm-up (DIG_SOAK_WARMUP_SECS, default 30,
 * and at least WARMUP_MIN_ROUNDS rounds).
 *
 * Every round is checked exactly: each relay_message arrives once with its payload intact, each
 * broadcast reaches every other live peer of its network, each ping gets its pong and each
 * get_peers its list. The relay's resident set size is measured after the warm-up (so its
 * pools and the allocator's caches are populated) and again after the churn, with the same
 * number of peers connected and every queue drained; it must not have grown by more than 10%.
 * Finally the relay must exit 0 on SIGTERM and its log must hold no AddressSanitizer,
 * LeakSanitizer or UBSan report (under `make SANITIZER=address test` the relay is the ASan
 * build, which checks for leaks at exit).
 *
 * An ASan relay's RSS would mostly measure ASan: its quarantine keeps freed blocks for hundreds
 * of megabytes, and its size-class allocator holds on to free pages. So the relay runs with the
 * quarantine off and free pages released at once; use-after-free is hunted with the full
 * quarantine by the integration and network-fuzz tests.
 *
 * 2000 peers need about 2050 descriptors in this process and in the relay: the soft
 * RLIMIT_NOFILE is raised towards the hard limit here, and the relay inherits it. */
#include "tests/harness.h"
#include "tests/test.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PEERS 2000
#define NETWORKS 10
#define CHURN_PERCENT 10
#define BROADCAST_ONE_IN 50
#define GET_PEERS_ONE_IN 60        /* the live client refreshes its peer list every 60 s */
#define PING_ONE_IN 30             /* and pings every 30 s; a round takes about a second */
#define MAX_PAYLOAD 1500          /* bytes per relay_message, sent as a JSON number array */
#define DRAIN_TIMEOUT_MS 30000
#define PUMP_EVERY 50              /* peers served between reads, as real peers read all along */
#define RSS_GROWTH_PERCENT 10
#define MAX_ROUNDS 4096
#define QUIET_MS 300               /* pause before RSS is read: closes and frees finish */
#define RSS_WINDOW 5               /* rounds whose median RSS stands for "before" and "after" */
#define WARMUP_MIN_ROUNDS 20       /* RSS settles after about as many rounds, however long they take */

typedef struct {
    ws_client ws;
    bool live;
    unsigned gen;                 /* bumped on every reconnect, part of the peer id */
    char id[32];
} peer;

static peer *peers;
static size_t n_peers;
static uint64_t rng_state;

static size_t below(size_t n) { return h_below(&rng_state, n); }

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 10) : dflt;
}

static unsigned network_of(size_t slot)
{
    return (unsigned)(slot % NETWORKS);
}

/* What one round expects to arrive, and what did. */
typedef struct {
    uint64_t relay_sent, relay_got, relay_bad;
    uint64_t bcast_expected, bcast_got;
    uint64_t pings, pongs;
    uint64_t lists_asked, lists_got;
    uint64_t other;               /* notifications, which churn makes uncountable */
    uint64_t lost;                /* peers whose connection ended unasked */
} round_stats;

static bool connect_peer(size_t slot, uint16_t port)
{
    peer *p = &peers[slot];
    char net[16];
    p->gen++;
    snprintf(p->id, sizeof p->id, "soak-%zu-%u", slot, p->gen);
    snprintf(net, sizeof net, "soak-%u", network_of(slot));
    p->live = wsc_connect_register(&p->ws, port, p->id, net);
    if (!p->live)
        wsc_close(&p->ws);
    return p->live;
}

/* Leaves in one of four ways: unregister, close frame, plain close, or reset. */
static void disconnect_peer(size_t slot)
{
    peer *p = &peers[slot];
    char msg[96];
    switch (below(4)) {
    case 0:
        snprintf(msg, sizeof msg, "{\"type\":\"unregister\",\"peer_id\":\"%s\"}", p->id);
        wsc_send_text(&p->ws, msg);
        break;
    case 1:
        wsc_send_close(&p->ws, 1000);
        break;
    case 2:
        break;
    default: {
        struct linger lg = { 1, 0 };
        setsockopt(p->ws.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        break;
    }
    }
    wsc_close(&p->ws);
    p->live = false;
}

/* The payload byte i of message seq; the receiver recomputes it to check the bytes. */
static unsigned payload_byte(uint64_t seq, size_t i)
{
    return (unsigned)((seq * 131u + i * 7u) & 0xffu);
}

static size_t payload_len(uint64_t seq)
{
    return (size_t)(seq * 2654435761u % (MAX_PAYLOAD + 1));
}

/* Checks a received relay_message's payload against what its seq says was sent. */
static bool payload_intact(const char *msg)
{
    uint64_t seq;
    const char *v;
    size_t vlen;
    if (!hj_get_u64(msg, "seq", &seq) || !hj_get(msg, "payload", &v, &vlen) || vlen < 2 ||
        v[0] != '[')
        return false;
    size_t want = payload_len(seq), i = 0;
    const char *p = v + 1, *end = v + vlen - 1;
    while (p < end) {
        char *next;
        unsigned long b = strtoul(p, &next, 10);
        if (next == p || i >= want || b != payload_byte(seq, i))
            return false;
        i++;
        p = next;
        if (p < end && *p == ',')
            p++;
    }
    return i == want;
}

static void count_message(round_stats *rs, const char *msg)
{
    if (hj_is_type(msg, "relay_message")) {
        rs->relay_got++;
        if (!payload_intact(msg))
            rs->relay_bad++;
    } else if (hj_is_type(msg, "broadcast")) {
        rs->bcast_got++;
    } else if (hj_is_type(msg, "pong")) {
        rs->pongs++;
    } else if (hj_is_type(msg, "peers")) {
        rs->lists_got++;
    } else {
        rs->other++;
    }
}

static bool round_complete(const round_stats *rs)
{
    return rs->relay_got >= rs->relay_sent && rs->bcast_got >= rs->bcast_expected &&
           rs->pongs >= rs->pings && rs->lists_got >= rs->lists_asked;
}

static struct pollfd *pfds;

/* One poll over every live peer (waiting up to timeout_ms), reading whatever has arrived.
 * Returns how many peers had something. */
static int pump(round_stats *rs, int timeout_ms)
{
    for (size_t i = 0; i < n_peers; i++) {
        pfds[i].fd = peers[i].live ? peers[i].ws.fd : -1;
        pfds[i].events = POLLIN;
        pfds[i].revents = 0;
    }
    int ready = poll(pfds, (nfds_t)n_peers, timeout_ms);
    for (size_t i = 0; ready > 0 && i < n_peers; i++) {
        if (!peers[i].live || !(pfds[i].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        int r;
        while ((r = wsc_recv_msg(&peers[i].ws, 0)) == WSC_OK)
            count_message(rs, (const char *)peers[i].ws.msg);
        if (r != WSC_TIMEOUT) {
            printf("  peer %s lost its connection (%d: %s)\n", peers[i].id, r, peers[i].ws.err);
            rs->lost++;
            wsc_close(&peers[i].ws);
            peers[i].live = false;
        }
    }
    return ready;
}

/* Reads every live peer until the round's expected messages have all arrived (or the timeout),
 * then until the relay has been quiet for a moment, so no queue holds anything. */
static void drain(round_stats *rs)
{
    uint64_t deadline = h_now_ms() + DRAIN_TIMEOUT_MS;
    unsigned quiet_polls = 0;
    while (h_now_ms() < deadline && (!round_complete(rs) || quiet_polls < 3))
        quiet_polls = pump(rs, 50) == 0 ? quiet_polls + 1 : 0;
}

static size_t live_in_network(unsigned net)
{
    size_t n = 0;
    for (size_t i = net; i < n_peers; i += NETWORKS)
        n += peers[i].live;
    return n;
}

/* A live peer of the same network other than slot (slot itself when it is alone). */
static size_t random_neighbour(size_t slot)
{
    for (int tries = 0; tries < 64; tries++) {
        size_t t = below(n_peers / NETWORKS) * NETWORKS + network_of(slot);
        if (t < n_peers && t != slot && peers[t].live)
            return t;
    }
    return slot;
}

static uint64_t next_seq;

/* Every live peer sends one relay_message; some also broadcast, ask for peers or ping. With
 * read_along the peers read as they go, as real ones do; without it everything is sent before
 * anything is read, so the relay holds the whole round's frames at once. */
static void traffic(round_stats *rs, bool read_along)
{
    char *msg = malloc(64 + MAX_PAYLOAD * 4 + 256);
    if (!msg)
        return;
    for (size_t i = 0; i < n_peers; i++) {
        peer *p = &peers[i];
        if (read_along && i % PUMP_EVERY == 0)
            pump(rs, 0);
        if (!p->live)
            continue;
        size_t t = random_neighbour(i);
        uint64_t seq = ++next_seq;
        int n = snprintf(msg, 256,
                         "{\"type\":\"relay_message\",\"from\":\"%s\",\"to\":\"%s\",\"payload\":[",
                         p->id, peers[t].id);
        size_t len = (size_t)n, plen = payload_len(seq);
        for (size_t k = 0; k < plen; k++)
            len += (size_t)sprintf(msg + len, "%s%u", k ? "," : "", payload_byte(seq, k));
        len += (size_t)sprintf(msg + len, "],\"seq\":%" PRIu64 "}", seq);
        if (wsc_send_frame(&p->ws, 1, true, msg, len))
            rs->relay_sent++;

        if (below(BROADCAST_ONE_IN) == 0) {
            snprintf(msg, 256,
                     "{\"type\":\"broadcast\",\"from\":\"%s\",\"payload\":[1,2,3],\"exclude\":[]}",
                     p->id);
            if (wsc_send_text(&p->ws, msg))
                rs->bcast_expected += live_in_network(network_of(i)) - 1;
        }
        if (below(GET_PEERS_ONE_IN) == 0) {
            snprintf(msg, 256, "{\"type\":\"get_peers\",\"network_id\":\"soak-%u\"}",
                     network_of(i));
            if (wsc_send_text(&p->ws, msg))
                rs->lists_asked++;
        }
        if (below(PING_ONE_IN) == 0) {
            snprintf(msg, 256, "{\"type\":\"ping\",\"timestamp\":%" PRIu64 "}", seq);
            if (wsc_send_text(&p->ws, msg))
                rs->pings++;
        }
    }
    free(msg);
}

/* One round: churn a tenth of the peers, send traffic, drain, and check the counts. */
static bool run_round(uint16_t port, unsigned round_no, bool read_along)
{
    round_stats rs = { 0 };
    size_t churn = n_peers * CHURN_PERCENT / 100, reconnect_failed = 0;
    for (size_t k = 0; k < churn; k++) {
        size_t slot = below(n_peers);
        if (read_along && k % PUMP_EVERY == 0)
            pump(&rs, 0);
        if (peers[slot].live)
            disconnect_peer(slot);
        if (!connect_peer(slot, port))
            reconnect_failed++;
    }
    for (size_t i = 0; i < n_peers; i++)
        if (!peers[i].live && !connect_peer(i, port))
            reconnect_failed++;
    traffic(&rs, read_along);
    drain(&rs);
    bool ok = reconnect_failed == 0 && rs.lost == 0 && rs.relay_bad == 0 &&
              rs.relay_got == rs.relay_sent && rs.bcast_got == rs.bcast_expected &&
              rs.pongs == rs.pings && rs.lists_got == rs.lists_asked;
    if (!ok)
        printf("  round %u: %zu reconnects failed, %" PRIu64 " lost; relay_message %" PRIu64
               "/%" PRIu64 " (%" PRIu64 " corrupt), broadcast %" PRIu64 "/%" PRIu64
               ", pong %" PRIu64 "/%" PRIu64 ", peers %" PRIu64 "/%" PRIu64 "\n",
               round_no, reconnect_failed, rs.lost, rs.relay_got, rs.relay_sent, rs.relay_bad,
               rs.bcast_got, rs.bcast_expected, rs.pongs, rs.pings, rs.lists_got, rs.lists_asked);
    return ok;
}

static bool log_has_sanitizer_report(const relay_proc *r)
{
    char *log = relay_read_log(r);
    if (!log)
        return false;
    bool bad = strstr(log, "ERROR: AddressSanitizer") || strstr(log, "ERROR: LeakSanitizer") ||
               strstr(log, "runtime error:") || strstr(log, "SUMMARY: UndefinedBehaviorSanitizer");
    free(log);
    return bad;
}

/* Up to 12 evenly spaced per-round RSS samples, to tell steady growth from a one-off step. */
static void print_trend(const uint64_t *trend, size_t n)
{
    printf("  relay RSS by round (KiB):");
    size_t step = n > 12 ? n / 12 : 1;
    for (size_t i = 0; i < n; i += step)
        printf(" %" PRIu64, trend[i]);
    if (n)
        printf(" ... %" PRIu64, trend[n - 1]);
    printf("\n");
}

/* RSS with the relay's queues empty. ASan's allocator hands free pages back only from inside its
 * own calls, so after the pause one ping-pong lets it release what the drained round left,
 * instead of RSS depending on which call happened to come last. */
static uint64_t quiet_rss(const relay_proc *r)
{
    h_sleep_ms(QUIET_MS);
    for (size_t i = 0; i < n_peers; i++)
        if (peers[i].live) {
            wsc_ping_rtt(&peers[i].ws, 1, 3000);
            break;
        }
    h_sleep_ms(50);
    return relay_rss_kb(r);
}

/* True when the relay binary is built with AddressSanitizer (which then lists its flags). */
static bool relay_is_asan_build(void)
{
    static const char *const args[] = { "--version", NULL };
    static const char *const env[] = { "ASAN_OPTIONS=help=1", NULL };
    char out[256], err[4096];
    h_run_binary(args, env, out, sizeof out, err, sizeof err, 10000);
    return strstr(err, "AddressSanitizer") != NULL;
}

static uint64_t median(const uint64_t *v, size_t n)
{
    uint64_t sorted[RSS_WINDOW];
    memcpy(sorted, v, n * sizeof *v);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            uint64_t t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    return sorted[n / 2];
}

static void test_churn_soak(void)
{
    n_peers = (size_t)env_u64("DIG_SOAK_PEERS", DEFAULT_PEERS);
    uint64_t secs = env_u64("DIG_SOAK_SECS", 60);
    uint64_t warmup_secs = env_u64("DIG_SOAK_WARMUP_SECS", 30);
    rng_state = env_u64("DIG_SOAK_SEED", (uint64_t)time(NULL)) | 1;
    if (n_peers < 2 * NETWORKS)
        n_peers = 2 * NETWORKS;
    rlim_t want = (rlim_t)(n_peers * 2 + 200);
    if (!h_raise_fd_limit(want)) {
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        printf("  need RLIMIT_NOFILE >= %llu for %zu peers; the hard limit is %llu "
               "(raise it: ulimit -Hn)\n",
               (unsigned long long)want, n_peers, (unsigned long long)rl.rlim_max);
        REQUIRE(false);
    }
    printf("  soak: %zu peers, %" PRIu64 " s of churn, seed %" PRIu64 " (DIG_SOAK_SEED)\n", n_peers,
           secs, rng_state);

    static const char *const args[] = {
        "--max-connections", "4096", H_LIMITS_OFF, "--log-level", "warn", NULL
    };
    static const char *const env[] = {
        "ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=0:allocator_release_to_os_interval_ms=0",
        NULL
    };
    bool asan = relay_is_asan_build();
    relay_opts o = { .args = args, .env = env };
    relay_proc r;
    REQUIRE(relay_start(&r, &o));
    peers = calloc(n_peers, sizeof *peers);
    pfds = calloc(n_peers, sizeof *pfds);
    REQUIRE(peers != NULL && pfds != NULL);

    bool ok = true;
    uint64_t t0 = h_now_ms();
    for (size_t i = 0; i < n_peers && ok; i++)
        ok = connect_peer(i, r.port);
    round_stats settle = { 0 };
    if (ok)
        drain(&settle);
    printf("  %zu peers registered in %" PRIu64 " ms, relay RSS %" PRIu64 " KiB\n", n_peers,
           h_now_ms() - t0, relay_rss_kb(&r));

    /* Warm-up: the same work as the churn rounds, long enough for the relay's pools and the
     * allocator's free memory to reach their working size (a few rounds are not: RSS keeps
     * stepping up for several seconds while the heap's in-use bytes stay flat). It counts
     * rounds as well as seconds: on a busy machine a round takes longer, and RSS settles
     * after a number of rounds, not of seconds. Its rounds do
     * not read along, so the relay's frame pools fill to their caps and the heap reaches the
     * size a whole round's backlog needs; a churn round that happens to queue more than any
     * warm-up round did would otherwise show as a one-off step of RSS. RSS is sampled
     * after every round, once its traffic is drained, and "before" and "after" are the medians
     * of the last RSS_WINDOW samples of the warm-up and of the churn: one sample moves by a
     * few percent with how many frames happened to be queued at once. */
    static uint64_t rss[MAX_ROUNDS];
    unsigned rounds = 0, warm_rounds = 0;
    uint64_t warm_end = h_now_ms() + warmup_secs * 1000u, churn_start = 0, end = 0;
    while (ok && rounds < MAX_ROUNDS) {
        uint64_t now = h_now_ms();
        if (!warm_rounds && rounds >= WARMUP_MIN_ROUNDS && now >= warm_end) {
            warm_rounds = rounds;
            churn_start = now;
            end = now + secs * 1000u;
        }
        if (warm_rounds && (now >= end && rounds >= warm_rounds + RSS_WINDOW))
            break;
        ok = run_round(r.port, rounds, warm_rounds > 0);
        rss[rounds++] = quiet_rss(&r);
        if (!relay_alive(&r)) {
            printf("  the relay died (exit %d) in round %u\n", r.exit_code, rounds);
            ok = false;
        }
    }
    CHECK(ok);
    bool grew = false;
    if (ok && warm_rounds >= RSS_WINDOW && rounds >= warm_rounds + RSS_WINDOW) {
        uint64_t rss_before = median(rss + warm_rounds - RSS_WINDOW, RSS_WINDOW);
        uint64_t rss_after = median(rss + rounds - RSS_WINDOW, RSS_WINDOW);
        uint64_t rss_peak = 0;
        for (unsigned i = warm_rounds; i < rounds; i++)
            rss_peak = rss[i] > rss_peak ? rss[i] : rss_peak;
        printf("  %u warm-up and %u churn rounds, the latter in %" PRIu64 " ms (%" PRIu64
               " relayed messages in all)\n", warm_rounds, rounds - warm_rounds,
               h_now_ms() - churn_start, next_seq);
        printf("  relay RSS %" PRIu64 " KiB after warm-up, %" PRIu64 " KiB after churn (medians "
               "of %d rounds; churn peak %" PRIu64 " KiB)\n", rss_before, rss_after, RSS_WINDOW,
               rss_peak);
        print_trend(rss + warm_rounds, rounds - warm_rounds);
        grew = rss_after * 100 > rss_before * (100 + RSS_GROWTH_PERCENT);
        printf("  relay RSS changed by %+.1f%% over the churn (limit %d%%, %s build)\n",
               100.0 * ((double)rss_after - (double)rss_before) / (double)rss_before,
               RSS_GROWTH_PERCENT, asan ? "ASan" : "plain");
        CHECK(rss_before > 0);
        CHECK(!grew);
    } else if (ok) {
        printf("  too few rounds (%u, %u of warm-up) to compare RSS\n", rounds, warm_rounds);
        CHECK(false);
    }

    for (size_t i = 0; i < n_peers; i++)
        if (peers[i].live)
            disconnect_peer(i);
    int code = relay_stop(&r, 30000);
    if (code != 0)
        printf("  relay exited %d after SIGTERM (a leak report at exit makes it non-zero)\n", code);
    CHECK_EQ_INT(code, 0);
    bool report = log_has_sanitizer_report(&r);
    CHECK(!report);
    bool failed = !ok || code != 0 || report || grew;
    if (failed)
        relay_print_log(&r, 8000);
    relay_cleanup(&r, failed);
    free(peers);
    free(pfds);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN(test_churn_soak);
    return test_finish();
}
