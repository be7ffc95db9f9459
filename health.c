/* GET /health, the same answer on the wire port and the health port (SPEC §6):
 * {"status":"ok","connected_peers":N,"uptime_secs":S,"version":"V"}; in a cluster N counts
 * every instance's peers. */
#include "health.h"

#include <stdio.h>

void health_route(void *ctx, const http_request *req, route_reply *out)
{
    static char body[160];
    const relay *r = ctx;
    int n = snprintf(body, sizeof body,
                     "{\"status\":\"ok\",\"connected_peers\":%zu,\"uptime_secs\":%llu,\"version\":\"%s\"}",
                     relay_cluster_peer_count(r), (unsigned long long)relay_uptime_secs(r), DIG_RELAY_VERSION);
    (void)req;
    out->status = 200;
    out->content_type = "application/json";
    out->headers = "Cache-Control: no-store\r\n";
    out->body = body;
    out->body_len = n > 0 && (size_t)n < sizeof body ? (size_t)n : 0;
}
