/* The relay wire's meaning (RLY-001..008): registration, the peer registry, routing of
 * relay_message and broadcast, peer notifications, keepalive, hole-punch signalling, Peer
 * Exchange, and TURN credentials for registered nodes; for RLY-009, refusing a peer's
 * get_dht_records and handing dht_records answers to the sweep. It works on decoded messages
 * and sees connections only through conn.h's narrow interface; its one timer (the PEX schedule)
 * lives on the loop. Read-only views of the registry and its counters serve the operator pages. */
#ifndef DIG_RELAY_H
#define DIG_RELAY_H

#include "abuse.h"
#include "addr.h"
#include "cluster.h"
#include "config.h"
#include "conn.h"
#include "loop.h"
#include "wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct relay relay;

/* seed: the per-process hash key (ids are attacker-chosen). NULL with a message in err when the
 * registry cannot be sized for cfg. */
relay *relay_new(const relay_config *cfg, loop *lp, abuse_guard *abuse, const uint64_t seed[2],
                 char *err, size_t errlen);
void relay_free(relay *r);

/* The callbacks a WebSocket connection's events go to (conn_handler, ctx the relay):
 * on_message handles one wire message (true when it was only a keepalive: a ping answered);
 * on_close removes the connection's registration and tells its network; on_silence logs, counts
 * and closes a registered connection silent past the idle timeout or the liveness deadline. */
conn_handler relay_conn_handler(relay *r);

/* TURN credentials for get_turn_credentials (issue 15): once enabled with the shared secret
 * (copied), a registered node is answered with username "<expiry>:<peer_id>" valid for
 * --turn-credential-ttl-secs, its REST password and the relay's TURN URIs. Until then the answer
 * is error 2 "turn is not enabled on this relay". False when out of memory. */
bool relay_enable_turn(relay *r, const uint8_t *secret, size_t secret_len);

/* The hooks a cluster (cluster.h) calls, and the cluster this relay shares its registry with
 * (set once, before serving; the relay never frees it). */
cluster_hooks relay_cluster_hooks(relay *r);
void relay_set_cluster(relay *r, cluster *cl);

/* The cluster's figures; false standalone. */
bool relay_cluster_stats(const relay *r, cluster_stats *out);

/* Live registrations on this instance. */
size_t relay_peer_count(const relay *r);
/* Live registrations in the whole cluster (the health answer's connected_peers); standalone,
 * relay_peer_count. */
size_t relay_cluster_peer_count(const relay *r);
/* Seconds since the relay started. */
uint64_t relay_uptime_secs(const relay *r);

/* ---- read-only views, for the operator pages and the RLY-009 sweep ---- */

/* One live registration, pointing into the registry: valid only during the callback. */
typedef struct {
    const char *peer_id;
    size_t peer_id_len;
    const char *network_id;
    size_t network_id_len;
    const addr_t *addresses;       /* its dialable addresses, first one first */
    size_t n_addresses;
    uint64_t protocol_version;
    uint64_t connected_at;         /* Unix seconds */
    conn *c;
} relay_peer;

/* Calls fn for every live registration on this instance, in no particular order. fn must not change the registry
 * (it may queue messages). */
void relay_each_peer(const relay *r, void (*fn)(void *ctx, const relay_peer *p), void *ctx);
/* Networks with at least one registration on this instance. */
size_t relay_network_count(const relay *r);
/* Calls fn for every such network with its registration count on this instance, in no
 * particular order. */
void relay_each_network(const relay *r,
                        void (*fn)(void *ctx, const char *id, size_t id_len, size_t peers), void *ctx);

#define RELAY_ERROR_CODES 8

/* What the relay has done since it started. Inbound counts take every message that decoded,
 * registered sender or not, as the reference counts them. */
typedef struct {
    uint64_t errors[RELAY_ERROR_CODES];    /* wire errors answered, by code (1..7) */
    uint64_t relay_messages, relay_message_bytes;   /* inbound relay_message, payload bytes */
    uint64_t broadcasts, broadcast_bytes;           /* inbound broadcast, payload bytes */
    uint64_t hole_punch_requests;                   /* inbound hole_punch_request */
    uint64_t hole_punch_successes, hole_punch_failures;   /* inbound hole_punch_result */
    uint64_t pex_snapshots, pex_deltas;             /* PEX frames sent */
} relay_counters;

void relay_get_counters(const relay *r, relay_counters *out);

/* Where dht_records answers from registered peers go (the RLY-009 sweep): m is the decoded
 * answer, scratch the room wire_next_dht_record needs for m->records. Without a sink they are
 * dropped; either way they are never answered. */
typedef void (*relay_dht_fn)(void *ctx, conn *c, const wire_msg *m, char *scratch);
void relay_set_dht_sink(relay *r, relay_dht_fn fn, void *ctx);

#endif
