/* The operator pages (dashboard.h): snapshots of the relay's state handed to the pure builders
 * (stats.c, metrics.c, map.c; dht.c's view is already encoded), each body kept a second in a
 * body_cache; pages and assets straight from the binary (webassets.h). */
#include "dashboard.h"

#include "bodycache.h"
#include "buildinfo.h"
#include "compat/procstat.h"
#include "geo.h"
#include "log.h"
#include "map.h"
#include "metrics.h"
#include "stats.h"
#include "webassets.h"

#include <stdlib.h>
#include <string.h>

#define METRICS_BODY_MAX ((size_t)1 << 20)   /* fixed families and at most 21 network labels */
#define MAP_BODY_MAX ((size_t)1 << 20)       /* at most 36 x 72 cells */

#define NOSNIFF "X-Content-Type-Options: nosniff\r\n"
static const char data_headers[] = "Cache-Control: no-store\r\n" NOSNIFF;
static const char page_headers[] =
    "Cache-Control: no-cache\r\n" NOSNIFF
    "Content-Security-Policy: default-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'\r\n"
    "Referrer-Policy: no-referrer\r\n";
static const char asset_headers[] = "Cache-Control: max-age=300\r\n" NOSNIFF;

struct dashboard {
    dashboard_sources src;
    geo *geo;
    uint64_t start_wall;           /* Unix seconds the relay started (process_start_time_seconds) */
    body_cache stats[2];           /* by ?full=1 */
    body_cache metrics, map;
};

dashboard *dashboard_new(const dashboard_sources *src)
{
    char why[512] = "";
    dashboard *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->src = *src;
    d->geo = geo_open(src->cfg->geoip_db, why, sizeof why);
    if (!d->geo) {
        free(d);
        return NULL;
    }
    /* Without the image's database (a self-hosted relay) an empty map is expected; a path
     * the operator chose that does not work is a mistake worth a warning. */
    if (why[0] && strcmp(src->cfg->geoip_db, CONFIG_DEFAULT_GEOIP_DB) == 0)
        log_info("peer map: every peer is of unknown location: %s (--geoip-db)", why);
    else if (why[0])
        log_warn("peer map: every peer is of unknown location: %s (--geoip-db)", why);
    d->start_wall = loop_wall_secs(src->lp) - relay_uptime_secs(src->relay);
    body_cache_init(&d->stats[0], STATS_BODY_MAX);
    body_cache_init(&d->stats[1], STATS_BODY_MAX);
    body_cache_init(&d->metrics, METRICS_BODY_MAX);
    body_cache_init(&d->map, MAP_BODY_MAX);
    return d;
}

void dashboard_free(dashboard *d)
{
    if (!d)
        return;
    geo_close(d->geo);
    body_cache_free(&d->stats[0]);
    body_cache_free(&d->stats[1]);
    body_cache_free(&d->metrics);
    body_cache_free(&d->map);
    free(d);
}

static void reply(route_reply *out, const char *type, const char *headers, const void *body,
                  size_t len)
{
    out->status = 200;
    out->content_type = type;
    out->headers = headers;
    out->body = body;
    out->body_len = len;
}

/* A body built by build(d, w, full), reused while younger than DASHBOARD_CACHE_MS. */
typedef bool (*body_builder)(dashboard *d, json_writer *w, bool full);

static void serve_cached(dashboard *d, body_cache *c, body_builder build, bool full,
                         const char *type, route_reply *out)
{
    uint64_t now = loop_now_ms(d->src.lp);
    json_span body;
    if (!body_cache_get(c, now, DASHBOARD_CACHE_MS, &body)) {
        json_writer *w = body_cache_begin(c);
        if (!build(d, w, full))
            w->failed = true;
        if (!body_cache_done(c, now, &body)) {
            route_text(out, 503, "out of memory, try again\n");
            out->headers = data_headers;
            return;
        }
    }
    reply(out, type, data_headers, body.p, body.n);
}

/* ---- pages and assets ---- */

static void page_route(void *ctx, const http_request *req, route_reply *out)
{
    const web_file *f = ctx;
    (void)req;
    reply(out, web_content_type(f->name), page_headers, f->data, f->len);
}

static void asset_route(void *ctx, const http_request *req, route_reply *out)
{
    const web_file *f = ctx;
    (void)req;
    reply(out, web_content_type(f->name), asset_headers, f->data, f->len);
}

/* ---- snapshots of the registry ---- */

typedef struct {
    void *items;
    size_t n, cap;
} collected;

static void collect_stats_peer(void *ctx, const relay_peer *p)
{
    collected *c = ctx;
    stats_peer *out = c->items;
    if (c->n < c->cap)
        out[c->n++] = (stats_peer){ p->peer_id, p->peer_id_len, p->network_id, p->network_id_len,
                                    p->addresses, p->n_addresses, p->protocol_version,
                                    p->connected_at };
}

static void collect_map_peer(void *ctx, const relay_peer *p)
{
    collected *c = ctx;
    map_peer *out = c->items;
    if (c->n < c->cap)
        out[c->n++] = (map_peer){ p->addresses, p->n_addresses };
}

static void collect_metrics_network(void *ctx, const char *id, size_t id_len, size_t peers)
{
    collected *c = ctx;
    metrics_network *out = c->items;
    if (c->n < c->cap)
        out[c->n++] = (metrics_network){ id, id_len, peers };
}

static void collect_stats_network(void *ctx, const char *id, size_t id_len, size_t peers)
{
    collected *c = ctx;
    stats_network *out = c->items;
    if (c->n < c->cap)
        out[c->n++] = (stats_network){ id, id_len, peers };
}

/* Room for one item per registration (at least one, so malloc never sees 0). */
static bool collect_begin(collected *c, size_t count, size_t item_size)
{
    c->n = 0;
    c->cap = count;
    c->items = malloc((count ? count : 1) * item_size);
    return c->items != NULL;
}

/* ---- /stats.json ---- */

static bool build_stats(dashboard *d, json_writer *w, bool full)
{
    const relay *r = d->src.relay;
    relay_counters rc;
    collected peers, nets;
    if (!collect_begin(&peers, relay_peer_count(r), sizeof(stats_peer)))
        return false;
    if (!collect_begin(&nets, relay_network_count(r), sizeof(stats_network))) {
        free(peers.items);
        return false;
    }
    relay_each_peer(r, collect_stats_peer, &peers);
    relay_each_network(r, collect_stats_network, &nets);
    relay_get_counters(r, &rc);
    cluster_stats cs;
    bool clustered = relay_cluster_stats(r, &cs);
    stats_snapshot s = {
        .version = DIG_RELAY_VERSION,
        .now_wall = loop_wall_secs(d->src.lp),
        .uptime_secs = relay_uptime_secs(r),
        .connected_peers = relay_peer_count(r),
        .open_connections = d->src.wire->open,
        .stun_requests = stund_requests(d->src.stun),
        .hole_punch_requests = rc.hole_punch_requests,
        .hole_punch_successes = rc.hole_punch_successes,
        .hole_punch_failures = rc.hole_punch_failures,
        .bytes_relayed = rc.relay_message_bytes + rc.broadcast_bytes,
        .peers = peers.items,
        .n_peers = peers.n,
        .networks = nets.items,
        .n_networks = nets.n,
        .clustered = clustered,
        .cluster_peers = relay_cluster_peer_count(r),
    };
    bool ok = stats_write_json(w, &s, full);
    free(peers.items);
    free(nets.items);
    return ok;
}

static void stats_route(void *ctx, const http_request *req, route_reply *out)
{
    dashboard *d = ctx;
    const char *q = memchr(req->target, '?', req->target_len);
    bool full = q && stats_wants_full(q + 1, req->target_len - (size_t)(q + 1 - req->target));
    serve_cached(d, &d->stats[full], build_stats, full, "application/json", out);
}

/* ---- /metrics ---- */

static bool build_metrics(dashboard *d, json_writer *w, bool full)
{
    const relay *r = d->src.relay;
    const abuse_counters *ac = &d->src.abuse->counters;
    relay_counters rc;
    compat_procstat ps;
    collected nets;
    (void)full;
    if (!collect_begin(&nets, relay_network_count(r), sizeof(metrics_network)))
        return false;
    relay_each_network(r, collect_metrics_network, &nets);
    relay_get_counters(r, &rc);
    compat_procstat_read(&ps);
    metrics_snapshot s = {
        .version = DIG_RELAY_VERSION,
        .features = features_built_in(),
        .start_time_secs = d->start_wall,
        .open_connections = d->src.wire->open,
        .networks = nets.items,
        .n_networks = nets.n,
        .relayed_messages = { [METRICS_RELAY_MESSAGE] = rc.relay_messages,
                              [METRICS_BROADCAST] = rc.broadcasts },
        .relayed_bytes = { [METRICS_RELAY_MESSAGE] = rc.relay_message_bytes,
                           [METRICS_BROADCAST] = rc.broadcast_bytes },
        .queue_drops = d->src.hub->queue_drops,
        .deferred_messages = d->src.hub->deferred_messages,
        .refusals = {
            [MR_NOT_REGISTERED] = rc.errors[WIRE_ERR_NOT_REGISTERED],
            [MR_BAD_MESSAGE] = rc.errors[WIRE_ERR_BAD_MESSAGE],
            [MR_PEER_NOT_FOUND] = rc.errors[WIRE_ERR_PEER_NOT_FOUND],
            [MR_CAPACITY] = rc.errors[WIRE_ERR_CAPACITY],
            [MR_ID_IN_USE] = rc.errors[WIRE_ERR_ID_IN_USE],
            [MR_IDENTITY_MISMATCH] = rc.errors[WIRE_ERR_IDENTITY_MISMATCH],
            /* code 7 comes from the abuse guard, which knows which limit it was */
            [MR_REGISTER_RATE] = ac->by_verdict[ABUSE_REGISTER_RATE],
            [MR_TOO_MANY_REGISTRATIONS] = ac->by_verdict[ABUSE_TOO_MANY_REGS],
            [MR_BANNED] = ac->by_verdict[ABUSE_BANNED],
            [MR_MAX_CONNECTIONS] = d->src.wire->refused_at_cap,
            [MR_TOO_MANY_CONNECTIONS] = ac->by_verdict[ABUSE_TOO_MANY_CONNS],
            [MR_MESSAGE_RATE] = ac->by_verdict[ABUSE_MESSAGE_RATE],
            [MR_BYTE_RATE] = ac->by_verdict[ABUSE_BYTE_RATE],
            [MR_LIFETIME_BYTES] = ac->by_verdict[ABUSE_LIFETIME_BYTES],
            [MR_MESSAGE_TOO_LARGE] = ac->by_verdict[ABUSE_MESSAGE_TOO_LARGE],
        },
        .strikes = ac->strikes,
        .bans = ac->bans,
        .prunes = ac->prunes,
        .stun_responses = stund_requests(d->src.stun),
        .stun_rate_limited = stund_rate_limited(d->src.stun),
        .pex_snapshots = rc.pex_snapshots,
        .pex_deltas = rc.pex_deltas,
        .hole_punch_requests = rc.hole_punch_requests,
        .hole_punch_successes = rc.hole_punch_successes,
        .hole_punch_failures = rc.hole_punch_failures,
        .dht_reporting_peers = dht_view_reporting_peers(dhtsweep_view(d->src.sweep)),
        .dht_keys = dht_view_total_keys(dhtsweep_view(d->src.sweep)),
        .cpu_usec = ps.cpu_usec,
        .rss_bytes = ps.rss_bytes,
        .open_fds = ps.open_fds,
    };
    cluster_stats cs;
    if (relay_cluster_stats(r, &cs)) {
        s.clustered = true;
        s.cluster_peers = relay_cluster_peer_count(r);
        s.cluster_instances = cs.instances;
        s.cluster_shards = cs.shards;
        s.cluster_shards_up = cs.shards_up;
        s.cluster_envelopes_sent = cs.envelopes_sent;
        s.cluster_envelopes_received = cs.envelopes_received;
        s.cluster_dropped = cs.dropped;
        s.cluster_reconnects = cs.reconnects;
        s.cluster_conflicts = cs.conflicts;
    }
    bool ok = metrics_write(w, &s);
    free(nets.items);
    return ok;
}

static void metrics_route(void *ctx, const http_request *req, route_reply *out)
{
    dashboard *d = ctx;
    (void)req;
    serve_cached(d, &d->metrics, build_metrics, false, METRICS_CONTENT_TYPE, out);
}

/* ---- /map.json ---- */

static bool locate(const void *ctx, const addr_t *a, double *lat, double *lon)
{
    return geo_locate(ctx, a, lat, lon);
}

static bool build_map(dashboard *d, json_writer *w, bool full)
{
    collected peers;
    (void)full;
    if (!collect_begin(&peers, relay_peer_count(d->src.relay), sizeof(map_peer)))
        return false;
    relay_each_peer(d->src.relay, collect_map_peer, &peers);
    bool ok = map_write_json(w, peers.items, peers.n, locate, d->geo, loop_wall_secs(d->src.lp));
    free(peers.items);
    return ok;
}

static void map_route(void *ctx, const http_request *req, route_reply *out)
{
    dashboard *d = ctx;
    (void)req;
    serve_cached(d, &d->map, build_map, false, "application/json", out);
}

/* ---- /dht.json ---- */

static void dht_route(void *ctx, const http_request *req, route_reply *out)
{
    const dashboard *d = ctx;
    json_span body = dht_view_json(dhtsweep_view(d->src.sweep));
    (void)req;
    reply(out, "application/json", data_headers, body.p, body.n);
}

/* ---- the table ---- */

bool dashboard_add_routes(dashboard *d, route_table *t)
{
    static const struct {
        const char *path, *file;
    } pages[] = { { "/", "index.html" }, { "/dht", "dht.html" }, { "/map", "map.html" } };
    const route data[] = {
        { "/stats.json", stats_route, d, false },
        { "/metrics", metrics_route, d, false },
        { "/dht.json", dht_route, d, false },
        { "/map.json", map_route, d, false },
    };
    for (size_t i = 0; i < sizeof data / sizeof data[0]; i++)
        if (!routes_add(t, &data[i]))
            return false;
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        const web_file *f = web_find(pages[i].file, strlen(pages[i].file));
        route r = { pages[i].path, page_route, (void *)(uintptr_t)f, false };
        if (!f || !routes_add(t, &r))
            return false;
    }
    /* Everything but the pages themselves is served under its own /assets/ path. */
    for (size_t i = 0; i < web_n_files; i++) {
        const web_file *f = &web_files[i];
        size_t n = strlen(f->name);
        route r = { f->path, asset_route, (void *)(uintptr_t)f, false };
        if (!(n > 5 && strcmp(f->name + n - 5, ".html") == 0) && !routes_add(t, &r))
            return false;
    }
    return true;
}
