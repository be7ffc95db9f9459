/* The dashboard's numbers as JSON: the /stats.json body (reference SPEC §6.1), built from a plain
 * snapshot of the relay's state, and a short-lived cache of the encoded body.
 *
 * Fields, in this order: schema_version, status, version, uptime_secs, active_reservations,
 * connected_peers, open_connections, stun_requests, hole_punch_requests, hole_punch_successes,
 * hole_punch_failures, bytes_relayed, networks [{network_id, peers}] sorted by id, peers
 * [{peer_id, network_id, via, address_family, protocol_version, connected_at, connected_secs}]
 * sorted by peer id, then (ours, additive) peers_truncated and networks_truncated, and in a
 * cluster cluster_peers (every instance's registrations; connected_peers and the lists are this
 * instance's).
 *
 * Privacy: a peer shows only the family of its first dialable address ("v6", "v4", "none") and
 * whether it has one (via "direct" or "relay"), never an address; its id is cut to its first
 * STATS_PEER_ID_PREFIX characters and "…" unless the request asked for full ids.
 *
 * Bounds: a relay with tens of thousands of reservations must not build megabytes per request,
 * so at most STATS_MAX_PEERS peers (the first by id) and STATS_MAX_NETWORKS networks (the first
 * by id) are listed, picked without sorting everything (topk.h),
 * with the *_truncated flags saying so (the caller keeps the body a while, bodycache.h). Pure: the
 * wall clock comes in as a number. */
#ifndef DIG_STATS_H
#define DIG_STATS_H

#include "addr.h"
#include "json.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STATS_SCHEMA_VERSION 1
#define STATS_PEER_ID_PREFIX 12      /* characters (UTF-8 code points) */
#define STATS_MAX_PEERS 1000
#define STATS_MAX_NETWORKS 1000
#define STATS_BODY_MAX ((size_t)8 << 20)   /* the capped lists of 256-byte ids, each byte escaped */

/* One network with its registration count, pointing into the registry. */
typedef struct {
    const char *network_id;
    size_t network_id_len;
    uint64_t peers;
} stats_network;

/* One registration, pointing into the registry (nothing is copied). */
typedef struct {
    const char *peer_id;
    size_t peer_id_len;
    const char *network_id;
    size_t network_id_len;
    const addr_t *addresses;         /* its dialable addresses, first one first */
    size_t n_addresses;
    uint64_t protocol_version;
    uint64_t connected_at;           /* Unix seconds */
} stats_peer;

typedef struct {
    const char *version;
    uint64_t now_wall;               /* Unix seconds, for connected_secs */
    uint64_t uptime_secs;
    uint64_t connected_peers;        /* live registrations (also active_reservations) */
    uint64_t open_connections;       /* wire sockets, registered or not */
    uint64_t stun_requests;          /* STUN answers sent */
    uint64_t hole_punch_requests;    /* inbound hole_punch_request */
    uint64_t hole_punch_successes;   /* inbound hole_punch_result, success true */
    uint64_t hole_punch_failures;    /* ... success false */
    uint64_t bytes_relayed;          /* payload bytes of inbound relay_message and broadcast */
    const stats_peer *peers;         /* every registration, in any order */
    size_t n_peers;
    const stats_network *networks;   /* every network with a registration, in any order */
    size_t n_networks;
    bool clustered;
    uint64_t cluster_peers;          /* registrations on every instance, when clustered */
} stats_snapshot;

/* Appends the /stats.json text to w; `full` keeps peer ids whole. False when w failed (out of
 * memory or past its maximum). */
bool stats_write_json(json_writer *w, const stats_snapshot *s, bool full);

/* True when the query string (after '?', without it) has a parameter full=1, full=true or
 * full=yes. */
bool stats_wants_full(const char *query, size_t n);

#endif
