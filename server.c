/* The server (see server.h): listeners and accept, the loop pass (wait, I/O, timers, flushing),
 * keepalive coalescing, the abuse counters log line, TURN's start (turnd.c), and shutdown. What
 * one connection does is conn.c's; what a message means is relay.c's. */
#include "server.h"

#include "cluster.h"
#include "conn.h"
#include "dashboard.h"
#include "dhtsweep.h"
#include "health.h"
#include "log.h"
#include "net.h"
#include "relay.h"
#include "routes.h"
#include "secretfile.h"
#include "stund.h"
#include "tls.h"
#include "turnd.h"
#include "compat/files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACCEPT_PER_PASS 64
#define MAX_HEALTH_CONNS 64
#define MAX_REDIRECT_CONNS 64
#define SHUTDOWN_GRACE_MS 500
/* Free heap is handed back to the OS at most once a second (it walks the heap): when the loop
 * has nothing to do, and when the relay's connections have fallen to half their peak since the
 * last time (the end of an attack or a reconnect wave), which a busy relay needs because its loop
 * is never idle. Steady churn does not trim: it reuses what it frees. */
#define TRIM_IDLE_MS 100
#define TRIM_EVERY_MS 1000
#define TRIM_MIN_FALL 64     /* connections below the peak before "half" counts */

struct server {
    const relay_config *cfg;
    loop *lp;
    abuse_guard abuse;
    relay *relay;
    stund *stun;
    turnd *turn;              /* NULL unless --turn */
    tls_server *tls;          /* the relay listener's TLS, when --tls-cert is set */
    dhtsweep *sweep;
    dashboard *dashboard;
    cluster *cluster;         /* NULL unless --cluster-redis */
    conn_hub hub;
    conn_listener wire, health, redirect;
    route_table wire_routes, health_routes, redirect_routes;
    route_redirect redirect_state;
    socket_t wire_fd, health_fd, redirect_fd;
    abuse_counters logged;    /* counters as last logged, to log only changes */
    uint64_t last_counter_log_ms;
    loop_timer counter_log;
    loop_coalescer coalesce;
};

/* ---- accept ---- */

static void accept_on(conn_listener *ls, socket_t lfd)
{
    ls->hub->pass_busy = true;
    for (int i = 0; i < ACCEPT_PER_PASS; i++) {
        struct sockaddr_storage ss;
        socklen_t_compat sl = (socklen_t_compat)sizeof ss;
        socket_t fd = accept(lfd, (struct sockaddr *)&ss, &sl);
        addr_t from;
        if (fd == SOCKET_INVALID) {
            int e = compat_sock_errno();
            if (!compat_would_block(e) && !compat_interrupted(e))
                log_warn("accept on the %s listener failed: %s", ls->name, compat_strerror(e));
            return;
        }
        /* The open-socket caps count sockets, whatever their source claims to be. */
        if (ls->open >= ls->max_open) {
            ls->refused_at_cap++;
            log_warn("refusing a connection on the %s listener: at its open-connection cap (%zu)",
                     ls->name, ls->max_open);
            compat_close(fd);
            continue;
        }
        addr_from_sockaddr(&ss, (size_t)sl, &from);
        conn_accept(ls, fd, &from);
    }
}

static void on_wire_listener(void *ctx, socket_t fd, int events)
{
    (void)events;
    accept_on(&((server *)ctx)->wire, fd);
}

static void on_health_listener(void *ctx, socket_t fd, int events)
{
    (void)events;
    accept_on(&((server *)ctx)->health, fd);
}

static void on_redirect_listener(void *ctx, socket_t fd, int events)
{
    (void)events;
    accept_on(&((server *)ctx)->redirect, fd);
}

static void on_stun(void *ctx, socket_t fd, int events)
{
    server *s = ctx;
    (void)fd;
    (void)events;
    s->hub.pass_busy = true;
    stund_on_readable(s->stun, loop_now_ms(s->lp));
}

static void on_shutdown_signal(void *ctx, socket_t fd, int events)
{
    char drain[64];
    (void)ctx;
    (void)events;
    while (compat_recv(fd, drain, sizeof drain) > 0) {
    }
}

/* ---- the abuse counters line ---- */

/* Logs the counters at info when they changed, at most once per health-check interval. */
static void log_counters(void *ctx)
{
    server *s = ctx;
    const abuse_counters *now = &s->abuse.counters;
    if (memcmp(now, &s->logged, sizeof *now) == 0)
        return;
    log_info("abuse counters: refused_connections=%llu refused_registrations=%llu "
             "disconnects=%llu strikes=%llu bans=%llu liveness_prunes=%llu",
             (unsigned long long)now->refused_conns, (unsigned long long)now->refused_regs,
             (unsigned long long)now->disconnects, (unsigned long long)now->strikes,
             (unsigned long long)now->bans, (unsigned long long)now->prunes);
    s->logged = *now;
    s->last_counter_log_ms = loop_now_ms(s->lp);
}

/* A changed counter is logged on time even when nothing else would wake the loop. */
static void schedule_counter_log(server *s)
{
    uint64_t due;
    if (loop_timer_armed(&s->counter_log) ||
        memcmp(&s->abuse.counters, &s->logged, sizeof s->logged) == 0)
        return;
    due = s->last_counter_log_ms == 0
              ? loop_now_ms(s->lp)
              : s->last_counter_log_ms + s->cfg->health_check_interval_secs * 1000u;
    loop_timer_set(s->lp, &s->counter_log, due);
}

/* ---- set-up ---- */

static bool listen_on(server *s, const addr_t *a, int backlog, loop_fn fn, socket_t *out,
                      char *err, size_t errlen)
{
    *out = net_listen_tcp(a, backlog, err, errlen);
    if (*out == SOCKET_INVALID)
        return false;
    if (loop_add(s->lp, *out, LOOP_READ, fn, s) < 0) {
        snprintf(err, errlen, "out of loop slots");
        return false;
    }
    return true;
}

static void init_listener(server *s, conn_listener *ls, const char *name, const route_table *routes,
                          size_t max_open)
{
    memset(ls, 0, sizeof *ls);
    ls->hub = &s->hub;
    ls->name = name;
    ls->routes = routes;
    ls->transport.open = xport_plain_open;
    ls->max_open = max_open;
}

static bool init_routes(server *s)
{
    const route health = { "/health", health_route, s->relay, true };
    const route redirect = { "", route_redirect_https, &s->redirect_state, false };
    routes_init(&s->wire_routes);
    routes_init(&s->health_routes);
    routes_init(&s->redirect_routes);
    routes_set_fallback(&s->redirect_routes, &redirect);
    return routes_add(&s->health_routes, &health) && routes_add(&s->wire_routes, &health);
}

/* The operator pages on the wire port, and the RLY-009 sweep whose view they show. */
static bool init_dashboard(server *s, const uint64_t seed[2], char *err, size_t errlen)
{
    dashboard_sources src = { s->cfg, s->lp, s->relay, s->stun, &s->abuse, &s->hub, &s->wire, NULL };
    s->sweep = dhtsweep_new(s->lp, s->relay, s->cfg->dht_sweep_interval_secs, seed);
    if (s->sweep) {
        src.sweep = s->sweep;
        s->dashboard = dashboard_new(&src);
    }
    if (!s->sweep || !s->dashboard) {
        snprintf(err, errlen, "out of memory for the operator pages");
        return false;
    }
    if (!dashboard_add_routes(s->dashboard, &s->wire_routes)) {
        snprintf(err, errlen, "too many HTTP routes");
        return false;
    }
    return true;
}

/* TURN beside STUN: the shared secret from its file (made on first start), the sockets, and the
 * credentials the relay hands registered nodes. */
static bool start_turn(server *s, char *err, size_t errlen)
{
    char state_dir[1024] = "", path[1200];
    uint8_t secret[TURN_MAX_SECRET];
    size_t len = 0;
    bool created = false, ok;

    if (!s->cfg->state_dir && !s->cfg->turn_secret_file &&
        !compat_default_state_dir(state_dir, sizeof state_dir)) {
        snprintf(err, errlen, "cannot tell where to keep the TURN secret (no HOME): set --state-dir "
                              "or --turn-secret-file");
        return false;
    }
    if (!config_turn_secret_path(s->cfg, state_dir, path, sizeof path)) {
        snprintf(err, errlen, "the TURN secret path is too long (--state-dir, --turn-secret-file)");
        return false;
    }
    if (!secret_file_load(path, secret, sizeof secret, &len, &created, err, errlen))
        return false;
    if (created)
        log_info("TURN: created a new shared secret in %s", path);
    s->turn = turnd_open(s->cfg, s->lp, s->stun, secret, len, err, errlen);
    ok = s->turn && relay_enable_turn(s->relay, secret, len);
    if (s->turn && !ok)
        snprintf(err, errlen, "out of memory starting TURN");
    memset(secret, 0, sizeof secret);
    return ok;
}

/* The registry shared with the other instances through Redis; connecting never waits. The
 * peers elsewhere it may hold are bounded at CLUSTER_REMOTE_FACTOR times --max-connections. */
#define CLUSTER_REMOTE_FACTOR 64
static bool start_cluster(server *s, char *err, size_t errlen)
{
    cluster_hooks hooks = relay_cluster_hooks(s->relay);
    size_t max_remote = s->cfg->max_connections > SIZE_MAX / CLUSTER_REMOTE_FACTOR
                            ? SIZE_MAX
                            : (size_t)s->cfg->max_connections * CLUSTER_REMOTE_FACTOR;
    s->cluster = cluster_new(s->lp, s->cfg->cluster_redis, s->cfg->cluster_instance_id, max_remote,
                             &hooks, &s->hub.pass_busy, err, errlen);
    if (!s->cluster)
        return false;
    relay_set_cluster(s->relay, s->cluster);
    return true;
}

server *server_new(const relay_config *cfg, char *err, size_t errlen)
{
    size_t spare = MAX_HEALTH_CONNS + MAX_REDIRECT_CONNS + 8 + 2 * CLUSTER_MAX_SHARDS;
    size_t max_fds = cfg->max_connections > SIZE_MAX - spare ? SIZE_MAX   /* fails to allocate */
                                                             : (size_t)cfg->max_connections + spare;
    uint64_t seed[2];
    server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    s->wire_fd = s->health_fd = s->redirect_fd = SOCKET_INVALID;
    loop_timer_init(&s->counter_log, log_counters, s);
    s->lp = loop_new(max_fds);
    if (!s->lp) {
        snprintf(err, errlen, "out of memory for %zu sockets", max_fds);
        free(s);
        return NULL;
    }
    compat_random(seed, sizeof seed);
    /* Remember at least every possible open source twice over, so live entries are rarely the
     * least recently seen when churn evicts. */
    uint64_t sources = cfg->max_connections > (UINT32_MAX - 1024) / 2
                           ? UINT32_MAX
                           : cfg->max_connections * 2 + 1024;
    if (!abuse_init(&s->abuse, cfg, (uint32_t)sources, seed)) {
        snprintf(err, errlen,
                 "out of memory for the per-source limit table of %llu connections (--max-connections)",
                 (unsigned long long)cfg->max_connections);
        loop_free(s->lp);
        free(s);
        return NULL;
    }
    s->relay = relay_new(cfg, s->lp, &s->abuse, seed, err, errlen);
    if (s->relay)   /* before anything that can fail: server_free runs the hub's end of pass */
        conn_hub_init(&s->hub, cfg, s->lp, &s->abuse, relay_conn_handler(s->relay));
    if (!s->relay || !init_routes(s)) {
        if (s->relay)
            snprintf(err, errlen, "too many HTTP routes");
        server_free(s);
        return NULL;
    }
    init_listener(s, &s->wire, "relay", &s->wire_routes, (size_t)cfg->max_connections);
    s->wire.websocket = true;
    s->wire.per_source_limits = true;
    s->wire.trusted_proxies = &cfg->trusted_proxies;
    /* TLS wraps the whole relay listener (WebSocket and its HTTP routes); the health and
     * redirect listeners stay plain. Bad certificate or key files stop the start here. */
    if (cfg->tls_cert_path != NULL) {
        s->tls = tls_server_new(cfg->tls_cert_path, cfg->tls_key_path, cfg->tls_client_auth,
                                cfg->tls_client_ca_path, err, errlen);
        if (!s->tls) {
            server_free(s);
            return NULL;
        }
        s->wire.transport.open = tls_open;
        s->wire.transport.ctx = s->tls;
    }
    init_listener(s, &s->health, "health", &s->health_routes, MAX_HEALTH_CONNS);
    init_listener(s, &s->redirect, "redirect", &s->redirect_routes, MAX_REDIRECT_CONNS);

    if (!listen_on(s, &cfg->listen, 1024, on_wire_listener, &s->wire_fd, err, errlen) ||
        !listen_on(s, &cfg->health_listen, 64, on_health_listener, &s->health_fd, err, errlen)) {
        server_free(s);
        return NULL;
    }
    s->stun = stund_open(&cfg->stun_listen, cfg->stun_per_ip_rps, cfg->stun_global_rps, err, errlen);
    if (!s->stun || loop_add(s->lp, stund_fd(s->stun), LOOP_READ, on_stun, s) < 0 ||
        !init_dashboard(s, seed, err, errlen)) {
        server_free(s);
        return NULL;
    }
    if (cfg->cluster_redis && !start_cluster(s, err, errlen)) {
        server_free(s);
        return NULL;
    }
    if (cfg->turn && !start_turn(s, err, errlen)) {
        server_free(s);
        return NULL;
    }
    /* The redirect listener only bounces plain HTTP to https://; a relay that cannot bind it
     * (a privileged port, a port in use) serves everything else regardless. */
    {
        char why[256];
        if (!listen_on(s, &cfg->dashboard_listen, 64, on_redirect_listener, &s->redirect_fd, why,
                       sizeof why)) {
            log_warn("not serving the HTTP->HTTPS redirect (--dashboard-listen): %s", why);
            if (s->redirect_fd != SOCKET_INVALID)
                compat_close(s->redirect_fd);
            s->redirect_fd = SOCKET_INVALID;
        }
    }
    if (compat_shutdown_fd() != SOCKET_INVALID)
        loop_add(s->lp, compat_shutdown_fd(), LOOP_READ, on_shutdown_signal, s);
    return s;
}

/* ---- running ---- */

void server_run(server *s)
{
    uint64_t last_trim = 0;
    size_t open_peak = 0;     /* the most wire connections open at once since the last trim */
    while (!compat_shutdown_requested()) {
        int timeout;
        conn_begin_pass(&s->hub);
        timeout = conn_hub_has_buffered_input(&s->hub) ? 0 : loop_next_timeout(s->lp, 60000);
        uint64_t now = loop_now_ms(s->lp);
        size_t open = s->wire.open;
        open_peak = open > open_peak ? open : open_peak;
        bool may_trim = now - last_trim >= TRIM_EVERY_MS;
        bool idle_trim = may_trim && (timeout < 0 || timeout >= TRIM_IDLE_MS);
        bool fallen = open_peak - open >= TRIM_MIN_FALL && open <= open_peak / 2;
        int ready = loop_run_once(s->lp, idle_trim ? TRIM_IDLE_MS : timeout);
        bool hold;
        if (ready < 0) {
            log_error("poll failed: %s", compat_strerror(compat_sock_errno()));
            break;
        }
        if ((idle_trim && ready == 0) || (may_trim && fallen)) {
            compat_release_free_memory();
            last_trim = loop_now_ms(s->lp);
            open_peak = s->wire.open;
        }
        hold = loop_should_hold(&s->coalesce, loop_now_ms(s->lp), loop_now_ms(s->lp) - now, ready,
                                s->hub.pass_busy, s->hub.pass_keepalive);
        s->hub.pass_busy = s->hub.pass_keepalive = false;
        loop_run_timers(s->lp);
        if (s->cluster)
            cluster_end_of_pass(s->cluster);
        conn_end_of_pass(&s->hub);
        schedule_counter_log(s);
        if (hold) {
            timeout = loop_next_timeout(s->lp, LOOP_HOLD_MS);
            compat_sleep_ms(timeout >= 0 && timeout < LOOP_HOLD_MS ? (unsigned)timeout : LOOP_HOLD_MS);
            loop_refresh_clock(s->lp);
        }
    }
}

void server_free(server *s)
{
    if (!s)
        return;
    /* Tell every peer we are going away, give the close frames a short moment to leave, then
     * release everything. */
    if (s->relay) {
        uint64_t until;
        conn_close_all(&s->hub, "relay shutting down");
        conn_end_of_pass(&s->hub);
        /* the cluster hears of the departures now rather than when the leases run out */
        if (s->cluster)
            cluster_end_of_pass(s->cluster);
        until = compat_monotonic_ms() + SHUTDOWN_GRACE_MS;
        while (!conn_hub_empty(&s->hub) && compat_monotonic_ms() < until) {
            loop_run_once(s->lp, 50);
            conn_end_of_pass(&s->hub);
            if (s->cluster)
                cluster_end_of_pass(s->cluster);
        }
        conn_drop_all(&s->hub);
    }
    turnd_close(s->turn);
    if (s->stun)
        stund_close(s->stun);
    if (s->wire_fd != SOCKET_INVALID)
        compat_close(s->wire_fd);
    if (s->health_fd != SOCKET_INVALID)
        compat_close(s->health_fd);
    if (s->redirect_fd != SOCKET_INVALID)
        compat_close(s->redirect_fd);
    dashboard_free(s->dashboard);
    dhtsweep_free(s->sweep);
    cluster_free(s->cluster);
    relay_free(s->relay);
    tls_server_free(s->tls);
    loop_timer_stop(s->lp, &s->counter_log);
    abuse_free(&s->abuse);
    loop_free(s->lp);
    free(s);
    pool_trim();
}
