/* CI smoke run of the benchmark load tools (bench/bin/relay_load and the storm row's
 * bench/bin/tcp_floor, built by `make test`), so they never rot: a few seconds with small counts
 * against a real ./dig-relay (and redis-server when installed), checking that messages were
 * delivered in order, none lost, and that the tool's own failure report works; with TLS built
 * in, its wss:// and handshake modes against a relay terminating TLS. Timing figures are
 * printed by `make bench`, never checked. */
#include "tests/harness.h"
#include "tests/test.h"
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Per-IP abuse limits off, as bench/bench.sh runs the relay: every client is on loopback. */
static const char *const limits_off[] = { H_LIMITS_OFF, NULL };

static const char *load_binary(void)
{
    const char *p = getenv("RELAY_LOAD_BIN");
    return p && *p ? p : "bench/bin/relay_load";
}

/* Runs a load tool (bin) with args, capturing stdout (its one result line) into out; its stderr
 * (diagnostics) passes through unless mute_stderr. Returns the exit code, or -1 on spawn
 * failure or when it overran timeout_ms (it is killed). */
static int run_tool(const char *bin, const char *const *args, char *out, size_t cap,
                    unsigned timeout_ms, bool mute_stderr)
{
    const char *argv[48];
    size_t n = 0;
    argv[n++] = bin;
    for (size_t i = 0; args[i] && n < 47; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    out[0] = '\0';
    int pfd[2];
    if (pipe(pfd) != 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(pfd[1], 1);
        if (mute_stderr) {
            int nullfd = open("/dev/null", O_WRONLY);
            if (nullfd >= 0)
                dup2(nullfd, 2);
        }
        close(pfd[0]);
        close(pfd[1]);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    size_t len = 0;
    uint64_t deadline = h_now_ms() + timeout_ms;
    bool timed_out = false;
    for (;;) {
        uint64_t now = h_now_ms();
        if (now >= deadline) {
            timed_out = true;
            break;
        }
        struct pollfd p = { .fd = pfd[0], .events = POLLIN };
        int r = poll(&p, 1, (int)(deadline - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        char tmp[1024];
        ssize_t got = read(pfd[0], tmp, sizeof tmp);
        if (got <= 0)
            break;
        size_t take = (size_t)got;
        if (take > cap - 1 - len)
            take = cap - 1 - len;
        memcpy(out + len, tmp, take);
        len += take;
    }
    out[len] = '\0';
    close(pfd[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (timed_out) {
        printf("  %s overran %u ms and was killed\n", argv[0], timeout_ms);
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Value of " key=<number>" in the result line; -1 when absent. */
static double field(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, " %s=", key);
    const char *p = strstr(line, pat);
    return p ? strtod(p + strlen(pat), NULL) : -1;
}

static bool load_tool_present(void)
{
    if (access(load_binary(), X_OK) == 0)
        return true;
    printf("  %s is missing: make test builds it (make bench/bin/relay_load)\n", load_binary());
    return false;
}

static bool start_bench_relay(relay_proc *r)
{
    if (!relay_start_args(r, limits_off)) {
        printf("  could not start %s\n", relay_binary());
        return false;
    }
    return true;
}

/* Delivered in order and complete, with no error from the server or the tool. */
static void check_clean(const char *out, int rc)
{
    if (rc != 0)
        printf("  relay_load exited %d: %s\n", rc, out);
    CHECK_EQ_INT(rc, 0);
    CHECK(field(out, "lost") == 0);
    CHECK(field(out, "ooo") == 0);
    CHECK(field(out, "errors") == 0);
    CHECK(field(out, "bad") == 0);
    CHECK(field(out, "conn_lost") == 0);
}

static void test_relay_closed_loop(void)
{
    REQUIRE(load_tool_present());
    relay_proc r;
    REQUIRE(start_bench_relay(&r));
    char port[16], pid[16], out[2048];
    snprintf(port, sizeof port, "%u", r.port);
    snprintf(pid, sizeof pid, "%ld", (long)r.pid);
    const char *args[] = { "--port", port, "--server-pid", pid, "--conns", "24", "--pairs", "4",
                           "--window", "8", "--size", "1024", "--duration", "2", "--warmup",
                           "0.5", "--spread", "--quiet", NULL };
    int rc = run_tool(load_binary(), args, out, sizeof out, 30000, false);
    check_clean(out, rc);
    CHECK(field(out, "delivered") >= 100);
    CHECK(field(out, "msgs_per_s") > 0);
    CHECK(field(out, "p99_us") > 0);
    /* The JSON number array is ~3.6x the raw payload on the wire. */
    CHECK(field(out, "wire_mb_s") > 3 * field(out, "payload_mb_s"));
    CHECK(field(out, "server_cpu_s") > 0);
    CHECK(field(out, "server_rss_kb") > 0);
    CHECK(relay_alive(&r));
    relay_cleanup(&r, false);
}

static void test_relay_open_loop_16k(void)
{
    REQUIRE(load_tool_present());
    relay_proc r;
    REQUIRE(start_bench_relay(&r));
    char port[16], out[2048];
    snprintf(port, sizeof port, "%u", r.port);
    const char *args[] = { "--port", port, "--pairs", "2", "--rate", "200", "--window", "128",
                           "--size", "16384", "--duration", "2", "--warmup", "0.2", "--quiet",
                           NULL };
    int rc = run_tool(load_binary(), args, out, sizeof out, 30000, false);
    check_clean(out, rc);
    /* 200 msgs/s for 2 s: the count is set by the schedule, not by how fast anything is. */
    CHECK(field(out, "delivered") >= 300);
    CHECK(field(out, "delivered") <= 500);
    CHECK(field(out, "stalls") == 0);
    relay_cleanup(&r, false);
}

/* The storm row: every reservation on one network connects at once. Each pair is told of the
 * other exactly once (a peer_connected for the later one, or an entry in the later one's peers
 * answer), every peers answer arrives, and the storm settles. */
static void test_relay_storm(void)
{
    enum { N = 300 };
    REQUIRE(load_tool_present());
    relay_proc r;
    REQUIRE(start_bench_relay(&r));
    char port[16], pid[16], conns[16], out[4096];
    snprintf(port, sizeof port, "%u", r.port);
    snprintf(pid, sizeof pid, "%ld", (long)r.pid);
    snprintf(conns, sizeof conns, "%d", N);
    const char *args[] = { "--port", port, "--server-pid", pid, "--storm", "--spread", "--conns", conns,
                           "--setup-secs", "60", "--quiet", NULL };
    int rc = run_tool(load_binary(), args, out, sizeof out, 120000, false);
    if (rc != 0)
        printf("  relay_load exited %d: %s\n", rc, out);
    CHECK_EQ_INT(rc, 0);
    CHECK(field(out, "settled") == 1);
    CHECK(field(out, "pairs") == N * (N - 1) / 2);
    CHECK(field(out, "peers_frames") == N);
    CHECK(field(out, "pc_frames") + field(out, "peers_entries") >= N * (N - 1) / 2 + N);
    CHECK(field(out, "mandated_bytes") > 0 && field(out, "rx_bytes") >= field(out, "mandated_bytes"));
    CHECK(field(out, "relay_cpu_s") > 0);
    CHECK(relay_alive(&r));
    relay_cleanup(&r, false);
}

/* The storm row's floor (bench/tcp_floor.c) hands the bytes over and says what it cost. */
static void test_tcp_floor(void)
{
    static const char bin[] = "bench/bin/tcp_floor";
    char out[1024];
    if (access(bin, X_OK) != 0)
        printf("  %s is missing: make test builds it (make %s)\n", bin, bin);
    REQUIRE(access(bin, X_OK) == 0);
    const char *args[] = { "--conns", "50", "--bytes", "20000000", "--write", "65536", NULL };
    int rc = run_tool(bin, args, out, sizeof out, 60000, false);
    if (rc != 0)
        printf("  tcp_floor exited %d: %s\n", rc, out);
    CHECK_EQ_INT(rc, 0);
    CHECK(field(out, "conns") == 50);
    CHECK(field(out, "bytes") == 20000000);
    CHECK(field(out, "sends") >= 20000000 / 65536);
    CHECK(field(out, "floor_cpu_s") > 0);
    /* a size it cannot spread over the connections is refused */
    const char *bad[] = { "--conns", "50", "--bytes", "10", NULL };
    CHECK_EQ_INT(run_tool(bin, bad, out, sizeof out, 10000, true), 2);
}

static void test_relay_idle_pings(void)
{
    REQUIRE(load_tool_present());
    relay_proc r;
    REQUIRE(start_bench_relay(&r));
    char port[16], pid[16], out[2048];
    snprintf(port, sizeof port, "%u", r.port);
    snprintf(pid, sizeof pid, "%ld", (long)r.pid);
    /* --rx-pid samples a second process over the same window; given the relay itself, it must
     * read what the server figure reads. */
    const char *args[] = { "--port", port, "--server-pid", pid, "--rx-pid", pid, "--conns", "40",
                           "--pairs", "0", "--group", "10", "--spread", "--ping-secs", "0.5",
                           "--duration", "1.5", "--quiet", NULL };
    int rc = run_tool(load_binary(), args, out, sizeof out, 30000, false);
    check_clean(out, rc);
    CHECK(field(out, "conns") == 40);
    CHECK(field(out, "pings") >= 40);
    CHECK(field(out, "pongs") >= 40);
    CHECK(field(out, "server_rss_ready_kb") > 0);
    double server = field(out, "server_cpu_pct"), rx = field(out, "rx_cpu_pct");
    if (!(rx >= 0 && rx - server < 1.5 && server - rx < 1.5))
        printf("  server_cpu_pct %.2f, rx_cpu_pct %.2f for the same process\n", server, rx);
    CHECK(rx >= 0 && rx - server < 1.5 && server - rx < 1.5);
    relay_cleanup(&r, false);
}

/* The tool must say so when nothing was delivered: here, nothing listens on the port. */
static void test_reports_failure(void)
{
    REQUIRE(load_tool_present());
    uint16_t free_port = h_free_port("tcp4");
    REQUIRE(free_port != 0);
    char port[16], out[2048];
    snprintf(port, sizeof port, "%u", free_port);
    const char *args[] = { "--port", port, "--pairs", "1", "--duration", "0.5", "--setup-secs",
                           "3", "--quiet", NULL };
    int rc = run_tool(load_binary(), args, out, sizeof out, 20000, true);
    CHECK(rc == 1);
    CHECK(field(out, "conn_lost") >= 1);
    CHECK(field(out, "delivered") == 0);
}

static bool have_redis(void)
{
    return access("/usr/bin/redis-server", X_OK) == 0 || access("/usr/local/bin/redis-server", X_OK) == 0;
}

static void test_redis_pubsub(void)
{
    if (!have_redis())
        SKIP("redis-server not installed (apt-get install redis-server)");
    REQUIRE(load_tool_present());
    uint16_t rport = h_free_port("tcp4");
    REQUIRE(rport != 0);
    char port[16], pid[16], out[2048];
    snprintf(port, sizeof port, "%u", rport);
    fflush(stdout);
    pid_t rp = fork();
    REQUIRE(rp >= 0);
    if (rp == 0) {
        int nullfd = open("/dev/null", O_RDWR);
        if (nullfd >= 0) {
            dup2(nullfd, 1);
            dup2(nullfd, 2);
        }
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", (char *)NULL);
        _exit(127);
    }
    bool up = false;
    for (uint64_t end = h_now_ms() + 5000; !up && h_now_ms() < end;) {
        int fd = tcp_connect("127.0.0.1", rport, NULL, 200);
        if (fd >= 0) {
            close(fd);
            up = true;
        } else {
            h_sleep_ms(50);
        }
    }
    if (up) {
        snprintf(pid, sizeof pid, "%ld", (long)rp);
        const char *args[] = { "--mode", "redis", "--port", port, "--server-pid", pid, "--pairs",
                               "2", "--window", "8", "--size", "64", "--duration", "1",
                               "--warmup", "0.2", "--quiet", NULL };
        int rc = run_tool(load_binary(), args, out, sizeof out, 30000, false);
        check_clean(out, rc);
        CHECK(field(out, "delivered") >= 100);
        /* Redis carries the raw bytes: wire and payload rates are the same. */
        CHECK(field(out, "wire_mb_s") == field(out, "payload_mb_s"));
    }
    kill(rp, SIGTERM);
    waitpid(rp, NULL, 0);
    CHECK(up);
}

/* The --tls modes bench/bench-tls.sh uses: messages over wss:// to a relay with TLS, and full
 * handshakes with a client certificate. */
static void test_relay_tls(void)
{
    char dir[64], cmd[128], crt[96], key[96], der[96], ccrt[96], ckey[96];
    if (!DIG_HAVE_TLS)
        SKIP("libbearssl-dev not installed (TLS not built in)");
    if (!h_have_openssl())
        SKIP("openssl not installed");
    REQUIRE(load_tool_present());
    snprintf(dir, sizeof dir, "/tmp/dig-bench-smoke.%ld", (long)getpid());
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    REQUIRE(h_sh(cmd, NULL, 0, 10000) == 0);
    REQUIRE(h_make_cert(dir, "relay", "ec:P-256", NULL, false, NULL));
    REQUIRE(h_make_cert(dir, "client", "ec:P-256", NULL, false, NULL));
    snprintf(crt, sizeof crt, "%s/relay.crt.pem", dir);
    snprintf(key, sizeof key, "%s/relay.key.pem", dir);
    snprintf(der, sizeof der, "%s/relay.crt.der", dir);
    snprintf(ccrt, sizeof ccrt, "%s/client.crt.der", dir);
    snprintf(ckey, sizeof ckey, "%s/client.key.der", dir);
    for (int required = 0; required < 2; required++) {
        const char *args[32];
        size_t n = 0;
        for (size_t i = 0; limits_off[i]; i++)
            args[n++] = limits_off[i];
        args[n++] = "--tls-cert";
        args[n++] = crt;
        args[n++] = "--tls-key";
        args[n++] = key;
        args[n++] = "--tls-client-auth";
        args[n++] = required ? "required" : "none";
        args[n] = NULL;
        relay_proc r;
        REQUIRE(relay_start_args(&r, args));
        char port[16], pid[16], out[2048];
        snprintf(port, sizeof port, "%u", r.port);
        snprintf(pid, sizeof pid, "%ld", (long)r.pid);
        int rc;
        if (!required) {
            const char *load[] = { "--tls", "--server-cert", der, "--port", port, "--server-pid", pid,
                                   "--pairs", "2", "--window", "8", "--size", "16384", "--duration",
                                   "1", "--warmup", "0.2", "--quiet", NULL };
            rc = run_tool(load_binary(), load, out, sizeof out, 30000, false);
            check_clean(out, rc);
            CHECK(field(out, "delivered") >= 10);
        } else {
            const char *load[] = { "--mode", "handshake", "--tls", "--server-cert", der,
                                   "--tls-cert", ccrt, "--tls-key", ckey, "--port", port,
                                   "--server-pid", pid, "--connect-burst", "2", "--duration", "1",
                                   "--warmup", "0.2", "--quiet", NULL };
            rc = run_tool(load_binary(), load, out, sizeof out, 30000, false);
            if (rc != 0)
                printf("  relay_load handshake mode exited %d: %s\n", rc, out);
            CHECK_EQ_INT(rc, 0);
            CHECK(field(out, "handshakes") >= 2);
            CHECK(field(out, "failed") == 0);
        }
        CHECK(relay_alive(&r));
        relay_cleanup(&r, test_cur_failed != 0);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    h_sh(cmd, NULL, 0, 10000);
}

int main(void)
{
    RUN(test_relay_closed_loop);
    RUN(test_relay_tls);
    RUN(test_relay_open_loop_16k);
    RUN(test_relay_idle_pings);
    RUN(test_relay_storm);
    RUN(test_tcp_floor);
    RUN(test_reports_failure);
    RUN(test_redis_pubsub);
    return test_finish();
}
