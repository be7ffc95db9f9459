/* Unit tests for metrics.c, the /metrics body: exact families and samples for a fixed snapshot,
 * the bounded network labels (largest by name, the rest and a network called "other" summed as
 * other), escaping of hostile network names, process figures left out when unknown, and
 * Prometheus's own linter (promtool check metrics, Debian's prometheus package) accepting the
 * output. Also reads this process's own figures through compat/procstat. */
#include "compat/procstat.h"
#include "metrics.h"
#include "test.h"
#include "tests/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char text[1 << 20];

static const char *render(const metrics_snapshot *s)
{
    json_writer w;
    jw_init(&w, 0, (size_t)4 << 20);
    bool ok = metrics_write(&w, s);
    size_t n = ok && w.len < sizeof text ? w.len : 0;
    if (!ok)
        printf("  metrics_write failed\n");
    if (n)
        memcpy(text, w.p, n);
    text[n] = 0;
    jw_free(&w);
    return text;
}

static metrics_snapshot base(void)
{
    metrics_snapshot s;
    memset(&s, 0, sizeof s);
    s.version = "0.1.0";
    s.features = "geoip";
    s.start_time_secs = 1700000000;
    s.open_connections = 5;
    s.relayed_messages[METRICS_RELAY_MESSAGE] = 10;
    s.relayed_messages[METRICS_BROADCAST] = 2;
    s.relayed_bytes[METRICS_RELAY_MESSAGE] = 1000;
    s.relayed_bytes[METRICS_BROADCAST] = 64;
    s.queue_drops = 1;
    s.deferred_messages = 7;
    s.refusals[MR_BAD_MESSAGE] = 3;
    s.refusals[MR_BANNED] = 4;
    s.strikes = 6;
    s.bans = 1;
    s.prunes = 2;
    s.stun_responses = 42;
    s.stun_rate_limited = 9;
    s.pex_snapshots = 3;
    s.pex_deltas = 8;
    s.hole_punch_requests = 7;
    s.hole_punch_successes = 4;
    s.hole_punch_failures = 3;
    s.dht_reporting_peers = 2;
    s.dht_keys = 11;
    s.cpu_usec = 1234567;
    s.rss_bytes = 4096000;
    s.open_fds = 12;
    return s;
}

/* promtool must accept t; the test is skipped without it. */
#define CHECK_PROMTOOL(t) do { bool ran_; bool ok_ = h_promtool_accepts((t), &ran_); \
    if (!ran_) { SKIP("prometheus not installed"); } CHECK(ok_); } while (0)

static void test_fixed_snapshot(void)
{
    metrics_network nets[] = { { "mainnet", 7, 3 }, { "testnet", 7, 1 } };
    metrics_snapshot s = base();
    s.networks = nets;
    s.n_networks = 2;
    const char *t = render(&s);
    CHECK(strncmp(t, "# HELP dig_relay_build_info ", 28) == 0);
    CHECK(strstr(t, "\n# TYPE dig_relay_build_info gauge\n"
                    "dig_relay_build_info{version=\"0.1.0\",features=\"geoip\"} 1\n") != NULL);
    CHECK(strstr(t, "\n# TYPE dig_relay_open_connections gauge\ndig_relay_open_connections 5\n") != NULL);
    CHECK(strstr(t, "\n# TYPE dig_relay_registrations gauge\n"
                    "dig_relay_registrations{network=\"mainnet\"} 3\n"
                    "dig_relay_registrations{network=\"testnet\"} 1\n"
                    "dig_relay_registrations{network=\"other\"} 0\n") != NULL);
    CHECK(strstr(t, "\ndig_relay_networks 2\n") != NULL);
    CHECK(strstr(t, "\n# TYPE dig_relay_relayed_messages_total counter\n"
                    "dig_relay_relayed_messages_total{kind=\"relay_message\"} 10\n"
                    "dig_relay_relayed_messages_total{kind=\"broadcast\"} 2\n") != NULL);
    CHECK(strstr(t, "dig_relay_relayed_payload_bytes_total{kind=\"relay_message\"} 1000\n"
                    "dig_relay_relayed_payload_bytes_total{kind=\"broadcast\"} 64\n") != NULL);
    CHECK(strstr(t, "\ndig_relay_queue_drops_total 1\n# HELP dig_relay_deferred_messages_total ") != NULL);
    CHECK(strstr(t, "\ndig_relay_deferred_messages_total 7\n") != NULL);
    CHECK(strstr(t, "\ndig_relay_refusals_total{reason=\"not_registered\",code=\"1\"} 0\n") != NULL);
    CHECK(strstr(t, "\ndig_relay_refusals_total{reason=\"bad_message\",code=\"2\"} 3\n") != NULL);
    CHECK(strstr(t, "\ndig_relay_refusals_total{reason=\"banned\",code=\"none\"} 4\n") != NULL);
    CHECK(strstr(t, "\ndig_relay_refusals_total{reason=\"message_too_large\",code=\"none\"} 0\n") != NULL);
    CHECK(strstr(t, "\ndig_relay_strikes_total 6\n") != NULL);
    CHECK(strstr(t, "\ndig_relay_bans_total 1\n") != NULL);
    CHECK(strstr(t, "\ndig_relay_liveness_prunes_total 2\n") != NULL);
    CHECK(strstr(t, "\ndig_relay_stun_responses_total 42\n") != NULL);
    CHECK(strstr(t, "\ndig_relay_stun_rate_limited_total 9\n") != NULL);
    CHECK(strstr(t, "\ndig_relay_pex_snapshots_total 3\n") != NULL);
    CHECK(strstr(t, "\ndig_relay_pex_deltas_total 8\n") != NULL);
    CHECK(strstr(t, "\ndig_relay_hole_punch_requests_total 7\n") != NULL);
    CHECK(strstr(t, "\ndig_relay_hole_punch_results_total{outcome=\"success\"} 4\n"
                    "dig_relay_hole_punch_results_total{outcome=\"failure\"} 3\n") != NULL);
    CHECK(strstr(t, "\ndig_relay_dht_reporting_peers 2\n") != NULL);
    CHECK(strstr(t, "\ndig_relay_dht_keys 11\n") != NULL);
    CHECK(strstr(t, "\nprocess_start_time_seconds 1700000000\n") != NULL);
    CHECK(strstr(t, "\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.234567\n") != NULL);
    CHECK(strstr(t, "\nprocess_resident_memory_bytes 4096000\n") != NULL);
    CHECK(strstr(t, "\nprocess_open_fds 12\n") != NULL);
    /* Every sample line belongs to a family announced with HELP and TYPE just before. */
    size_t helps = 0, types = 0;
    for (const char *p = t; (p = strstr(p, "# HELP ")); p++)
        helps++;
    for (const char *p = t; (p = strstr(p, "# TYPE ")); p++)
        types++;
    CHECK_EQ_INT(helps, 24);
    CHECK_EQ_INT(types, 24);
    CHECK(t[strlen(t) - 1] == '\n');

    CHECK_PROMTOOL(t);
}

static void test_network_labels_bounded_and_escaped(void)
{
    enum { N = METRICS_MAX_NETWORKS + 10 };
    metrics_network nets[N + 3];
    char names[N][16];
    for (int i = 0; i < N; i++) {
        int k = snprintf(names[i], sizeof names[i], "net%02d", i);
        nets[i] = (metrics_network){ names[i], (size_t)k, (uint64_t)(100 + i) };
    }
    static const char hostile[] = "a\"b\\c\nd}e{=,\x01 \xC3\xA9";
    nets[N] = (metrics_network){ hostile, sizeof hostile - 1, 1000 };
    nets[N + 1] = (metrics_network){ "other", 5, 500 };            /* folded into other */
    nets[N + 2] = (metrics_network){ "tie-b", 5, 100 };            /* ties with net00: by name */
    metrics_snapshot s = base();
    s.networks = nets;
    s.n_networks = N + 3;
    s.cpu_usec = s.rss_bytes = s.open_fds = METRICS_UNKNOWN;
    const char *t = render(&s);
    /* The hostile name first (largest), escaped; then net29 .. net11 (19 more); the rest in other. */
    CHECK(strstr(t, "# TYPE dig_relay_registrations gauge\n"
                    "dig_relay_registrations{network=\"a\\\"b\\\\c\\nd}e{=,\x01 \xC3\xA9\"} 1000\n"
                    "dig_relay_registrations{network=\"net29\"} 129\n") != NULL);
    CHECK(strstr(t, "dig_relay_registrations{network=\"net11\"} 111\n"
                    "dig_relay_registrations{network=\"other\"} ") != NULL);
    CHECK(strstr(t, "network=\"net10\"") == NULL);
    CHECK(strstr(t, "network=\"tie-b\"") == NULL);
    uint64_t rest = 500 + 100;   /* "other" itself and tie-b */
    for (int i = 0; i <= 10; i++)
        rest += (uint64_t)(100 + i);
    char want[96];
    snprintf(want, sizeof want, "dig_relay_registrations{network=\"other\"} %llu\n", (unsigned long long)rest);
    CHECK(strstr(t, want) != NULL);
    size_t series = 0;
    for (const char *p = t; (p = strstr(p, "\ndig_relay_registrations{")); p++)
        series++;
    CHECK_EQ_INT(series, METRICS_MAX_NETWORKS + 1);
    CHECK(strstr(t, "\ndig_relay_networks 33\n") != NULL);
    CHECK(strstr(t, "process_cpu_seconds_total") == NULL);
    CHECK(strstr(t, "process_resident_memory_bytes") == NULL);
    CHECK(strstr(t, "process_open_fds") == NULL);

    CHECK_PROMTOOL(t);
}

static void test_process_figures(void)
{
    compat_procstat p;
    compat_procstat_read(&p);
    CHECK(p.cpu_usec != UINT64_MAX);
    CHECK(p.rss_bytes != UINT64_MAX && p.rss_bytes > 100000);
    CHECK(p.open_fds != UINT64_MAX && p.open_fds >= 3);
    /* a descriptor opened is counted */
    int fd = dup(1);
    compat_procstat q;
    compat_procstat_read(&q);
    CHECK_EQ_INT(q.open_fds, p.open_fds + 1);
    close(fd);
}

int main(void)
{
    RUN(test_fixed_snapshot);
    RUN(test_network_labels_bounded_and_escaped);
    RUN(test_process_figures);
    return test_finish();
}
