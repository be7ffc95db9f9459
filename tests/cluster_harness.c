/* The cluster tests' shared set-up (tests/test_cluster.c, tests/test_cluster_soak.c): a
 * redis-server on a free loopback port without persistence, HC_INSTANCES relays sharing it
 * (--cluster-redis, instance ids inst0..), and get_peers read as an ordered id list. */
#include "tests/cluster_harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

h_proc hc_redis;
uint16_t hc_redis_port;
relay_proc hc_inst[HC_INSTANCES];
char hc_url[64];

bool hc_have_redis(void)
{
    return access("/usr/bin/redis-server", X_OK) == 0 ||
           access("/usr/local/bin/redis-server", X_OK) == 0;
}

/* ---- redis-server ---- */

size_t hc_redis_cmd(const char *cmd, char *resp, size_t cap, unsigned timeout_ms)
{
    char req[256];
    int fd = tcp_connect("127.0.0.1", hc_redis_port, NULL, timeout_ms);
    if (fd < 0)
        return 0;
    int n = snprintf(req, sizeof req, "%s\r\nQUIT\r\n", cmd);
    bool ok = n > 0 && (size_t)n < sizeof req && tcp_send_all(fd, req, (size_t)n, timeout_ms);
    size_t got = ok ? tcp_recv_until_close(fd, resp, cap, timeout_ms, NULL) : 0;
    close(fd);
    return got;
}

static bool hc_redis_answers(unsigned timeout_ms)
{
    char resp[64];
    /* a Redis with a password answers, refusing */
    return hc_redis_cmd("PING", resp, sizeof resp, timeout_ms) > 0 &&
           (strstr(resp, "+PONG") != NULL || strstr(resp, "-NOAUTH") != NULL);
}

/* Starts redis-server on hc_redis_port (a new free one when 0) with no persistence; slow_limit
 * makes Redis drop a subscriber that falls 256 KB behind. */
bool hc_start_redis_args(const char *const *extra)
{
    char port[8];
    const char *argv[24] = { "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no" };
    size_t n = 9;
    if (hc_redis_port == 0)
        hc_redis_port = h_free_port("tcp4");
    snprintf(port, sizeof port, "%u", hc_redis_port);
    snprintf(hc_url, sizeof hc_url, "redis://127.0.0.1:%u", hc_redis_port);
    for (size_t k = 0; extra && extra[k] && n + 1 < sizeof argv / sizeof argv[0]; k++)
        argv[n++] = extra[k];
    argv[n] = NULL;
    if (!h_spawn(&hc_redis, argv, NULL))
        return false;
    uint64_t deadline = h_now_ms() + 20000;
    while (h_now_ms() < deadline && h_proc_alive(&hc_redis)) {
        if (hc_redis_answers(1000))
            return true;
        h_sleep_ms(50);
    }
    printf("  redis-server did not start\n");
    h_proc_cleanup(&hc_redis, true);
    return false;
}

bool hc_start_redis(bool slow_limit)
{
    static const char *const limited[] = { "--client-output-buffer-limit", "pubsub 256kb 128kb 1",
                                           NULL };
    return hc_start_redis_args(slow_limit ? limited : NULL);
}

/* ---- instances ---- */

bool hc_start_instance(int i, const char *const *extra)
{
    char id[16];
    /* tests send bursts: the per-connection rate limits are not what is tested here */
    const char *args[RELAY_MAX_ARGS] = { "--cluster-redis", hc_url, "--cluster-instance-id", id,
                                         "--messages-per-conn-per-sec", "1000000",
                                         "--bytes-per-conn-per-sec", "1000000000" };
    size_t n = 8;
    snprintf(id, sizeof id, "inst%d", i);
    for (size_t k = 0; extra && extra[k] && n + 1 < RELAY_MAX_ARGS; k++)
        args[n++] = extra[k];
    args[n] = NULL;
    relay_opts o = { .args = args };
    return relay_start(&hc_inst[i], &o);
}

bool hc_start_cluster(bool slow_limit, const char *const *extra)
{
    if (!hc_start_redis(slow_limit))
        return false;
    for (int i = 0; i < HC_INSTANCES; i++)
        if (!hc_start_instance(i, extra))
            return false;
    return true;
}

bool hc_stop_cluster(bool failed)
{
    bool ok = true;
    for (int i = 0; i < HC_INSTANCES; i++)
        if (hc_inst[i].pid > 0) {
            int status = relay_stop(&hc_inst[i], 5000);
            if (!hc_inst[i].exited || (status != 0 && status != 128 + SIGKILL)) {
                printf("  instance %d exited %d\n", i, status);
                ok = false;
            }
            if (failed || !ok)
                relay_print_log(&hc_inst[i], 3000);
            relay_cleanup(&hc_inst[i], failed || !ok);
            memset(&hc_inst[i], 0, sizeof hc_inst[i]);
        }
    h_proc_cleanup(&hc_redis, failed || !ok);
    hc_redis_port = 0;
    return ok;
}

/* ---- clients ---- */

bool hc_join(ws_client *c, int i, const char *id)
{
    if (wsc_connect_register(c, hc_inst[i].port, id, HC_NET))
        return true;
    wsc_close(c);
    return false;
}

/* The peer ids of a get_peers answer in its order, comma-separated. */
bool hc_peer_ids(ws_client *c, char *out, size_t cap)
{
    out[0] = '\0';
    if (!wsc_sendf(c, "{\"type\":\"get_peers\",\"network_id\":\"%s\"}", HC_NET) ||
        wsc_recv_type(c, "peers", HC_WAIT) != WSC_OK)
        return false;
    size_t len = 0;
    for (const char *p = (const char *)c->msg; (p = strstr(p, "\"peer_id\":\"")) != NULL;) {
        p += 11;
        size_t n = strcspn(p, "\"");
        if (len + n + 2 > cap)
            return false;
        if (len)
            out[len++] = ',';
        memcpy(out + len, p, n);
        len += n;
        out[len] = '\0';
        p += n;
    }
    return true;
}

/* Waits until c's get_peers lists exactly `want` (ids in order). */
bool hc_wait_peers(ws_client *c, const char *want, unsigned timeout_ms)
{
    char got[1024] = "";
    uint64_t deadline = h_now_ms() + timeout_ms;
    do {
        if (hc_peer_ids(c, got, sizeof got) && strcmp(got, want) == 0)
            return true;
        h_sleep_ms(100);
    } while (h_now_ms() < deadline);
    printf("  get_peers: \"%s\", wanted \"%s\"\n", got, want);
    return false;
}

