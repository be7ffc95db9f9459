/* The operator pages on the wire port (SPEC §6.1, §6.2, §2.9b, and /metrics beyond the
 * reference): / (dashboard), /dht and /map (HTML, with their scripts and styles under /assets/),
 * /stats.json, /dht.json, /map.json and /metrics. Read-only: every answer is built from the
 * relay's registry and counters, the STUN listener's and the abuse guard's counters, the
 * listener's socket counts and the RLY-009 sweep's published view, and none changes anything.
 *
 * Answers that walk the registry (stats, map, metrics) are kept for DASHBOARD_CACHE_MS, so a
 * client polling as fast as it can costs one build per second. Every answer carries
 * X-Content-Type-Options: nosniff; the JSON and metrics answers Cache-Control: no-store; the
 * pages a Content-Security-Policy that allows nothing but this origin's own files (no inline
 * script), so even a string that got past the pages' text-only rendering could not run. */
#ifndef DIG_DASHBOARD_H
#define DIG_DASHBOARD_H

#include "abuse.h"
#include "config.h"
#include "conn.h"
#include "dhtsweep.h"
#include "loop.h"
#include "relay.h"
#include "routes.h"
#include "stund.h"

#include <stdbool.h>

#define DASHBOARD_CACHE_MS 1000

/* Where the numbers come from; everything must outlive the dashboard. */
typedef struct {
    const relay_config *cfg;
    loop *lp;
    const relay *relay;
    const stund *stun;
    const abuse_guard *abuse;
    const conn_hub *hub;            /* queue drops */
    const conn_listener *wire;      /* open sockets, refusals at --max-connections */
    const dhtsweep *sweep;
} dashboard_sources;

typedef struct dashboard dashboard;

/* Opens the geolocation database (--geoip-db; a missing one is logged, not fatal). NULL when
 * out of memory. */
dashboard *dashboard_new(const dashboard_sources *src);
void dashboard_free(dashboard *d);

/* Adds every route to t; false when t is full. */
bool dashboard_add_routes(dashboard *d, route_table *t);

#endif
