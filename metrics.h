/* Prometheus metrics: the /metrics body in the text exposition format 0.0.4, built from a plain
 * snapshot of the relay's counters. Every family has HELP and TYPE lines; counters end in
 * _total; label values are escaped as the format says (backslash, double quote, line feed).
 *
 * Label cardinality is bounded: registrations are labelled by network only for the
 * METRICS_MAX_NETWORKS largest networks (ties by name), the rest summed under network="other"
 * (a network that is itself called "other" is counted there too, so no series repeats). Every
 * other label comes from a fixed list in this header. Pure: the caller reads the clocks and the
 * process figures (compat/procstat.h) and passes numbers. */
#ifndef DIG_METRICS_H
#define DIG_METRICS_H

#include "json.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_NETWORKS 20
#define METRICS_UNKNOWN UINT64_MAX     /* a process figure the platform could not give */

/* The kinds of message whose payload the relay carries. */
enum metrics_kind { METRICS_RELAY_MESSAGE = 0, METRICS_BROADCAST, METRICS_KINDS };

/* Why the relay refused something: the reason label, and the wire error code it answered with
 * ("none" for refusals that close or never open a connection instead). */
enum metrics_refusal {
    MR_NOT_REGISTERED = 0,      /* code 1: a message before register */
    MR_BAD_MESSAGE,             /* code 2: invalid JSON, wrong field, a second register, an id out
                                 * of bounds, an inbound get_dht_records (RLY-009) */
    MR_PEER_NOT_FOUND,          /* code 3 */
    MR_CAPACITY,                /* code 4 */
    MR_ID_IN_USE,               /* code 5 */
    MR_IDENTITY_MISMATCH,       /* code 6 */
    MR_REGISTER_RATE,           /* code 7: --registrations-per-ip-per-sec */
    MR_TOO_MANY_REGISTRATIONS,  /* code 7: --max-registrations-per-ip */
    MR_BANNED,                  /* none: a banned source's connection */
    MR_MAX_CONNECTIONS,         /* none: --max-connections */
    MR_TOO_MANY_CONNECTIONS,    /* none: --max-connections-per-ip */
    MR_MESSAGE_RATE,            /* none: --messages-per-conn-per-sec */
    MR_BYTE_RATE,               /* none: --bytes-per-conn-per-sec */
    MR_LIFETIME_BYTES,          /* none: --max-relayed-bytes-per-conn */
    MR_MESSAGE_TOO_LARGE,       /* none: --max-message-bytes */
    MR_COUNT
};

typedef struct {
    const char *name;
    size_t name_len;
    uint64_t registrations;
} metrics_network;

typedef struct {
    const char *version;
    const char *features;               /* built-in features, comma-separated ("" for none) */
    uint64_t start_time_secs;           /* Unix seconds the process started */
    uint64_t open_connections;
    const metrics_network *networks;    /* every network with a registration, any order */
    size_t n_networks;
    uint64_t relayed_messages[METRICS_KINDS];
    uint64_t relayed_bytes[METRICS_KINDS];   /* payload bytes */
    uint64_t queue_drops;               /* forwards dropped on a full outbound queue */
    uint64_t deferred_messages;         /* messages left for a later loop pass (a full pass) */
    uint64_t refusals[MR_COUNT];
    uint64_t strikes, bans, prunes;
    uint64_t stun_responses, stun_rate_limited;
    uint64_t pex_snapshots, pex_deltas;
    uint64_t hole_punch_requests, hole_punch_successes, hole_punch_failures;
    uint64_t dht_reporting_peers, dht_keys;   /* of the current RLY-009 view */
    uint64_t cpu_usec;                  /* process CPU time, user + system (or METRICS_UNKNOWN) */
    uint64_t rss_bytes;                 /* resident set (or METRICS_UNKNOWN) */
    uint64_t open_fds;                  /* open descriptors or handles (or METRICS_UNKNOWN) */
    /* In a cluster (--cluster-redis); the figures above are this instance's. */
    bool clustered;
    uint64_t cluster_peers, cluster_instances, cluster_shards, cluster_shards_up;
    uint64_t cluster_envelopes_sent, cluster_envelopes_received, cluster_dropped;
    uint64_t cluster_reconnects, cluster_conflicts;
} metrics_snapshot;

/* Appends the exposition text to w. False when w failed or out of memory. */
bool metrics_write(json_writer *w, const metrics_snapshot *s);

/* The Content-Type of the body. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
