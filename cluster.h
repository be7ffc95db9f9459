/* One relay across machines (issue 16): instances share their registries and forward frames to
 * each other through Redis (--cluster-redis), embedded in the loop through hiredis's async API
 * (redisloop.h). What it keeps and says there is clusterwire.h; this is the engine: the Redis
 * connections (non-blocking, bounded, reconnecting with back-off), id leases, instance
 * liveness, the registry's resynchronisation, and routing envelopes.
 *
 * The relay (relay.c) keeps the cluster's peers in its own registry beside its local ones, so
 * get_peers, routing and ID_IN_USE answer from local knowledge without a round trip; it talks to
 * the cluster only through this header: it announces its registrations (cluster_register /
 * cluster_unregister), hands frames for peers elsewhere (cluster_send, cluster_batch_*), and
 * answers the hooks below.
 *
 * In Redis (one shard per URL, chosen by cluster_shard_of): dig:peer:<id> holds a registration
 * record (who holds the id since when), dig:inst:<instance> says an instance is alive (a 3 s
 * lease renewed every second), channel dig:ev carries arrivals (U), departures (D) and
 * heartbeats (H), channel dig:to:<instance> the envelopes for one instance. A peer key is
 * claimed by a script that refuses it while another live instance holds it since earlier, so
 * when instances race (or meet again after Redis was away) the later registration loses and is
 * closed with error 5.
 *
 * While a Redis shard is unreachable each instance keeps serving its own peers and accepts
 * registrations locally; remote peers vanish from its registry (peer_disconnected) once their
 * instances have not been heard for CLUSTER_NODE_DEAD_MS, and come back after reconnecting. */
#ifndef DIG_CLUSTER_H
#define DIG_CLUSTER_H

#include "clusterwire.h"
#include "loop.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLUSTER_HEARTBEAT_MS 1000
#define CLUSTER_INSTANCE_TTL_MS 3000   /* an instance's liveness lease in Redis */
#define CLUSTER_NODE_DEAD_MS 3500      /* unheard this long: its peers leave the registry */

typedef struct cluster cluster;
typedef struct cluster_node cluster_node;     /* another instance */
typedef struct cluster_local cluster_local;   /* one of this instance's registrations */

/* A peer held by another instance, as the relay's registry entry points to it. */
typedef struct cluster_ref {
    cluster_node *node;
    void *user;               /* the relay's registry entry */
    uint64_t reg_ms;
    uint32_t gen;             /* the shard's resynchronisation it was last confirmed by */
    uint16_t shard;
    struct cluster_ref *prev, *next;   /* the node's list */
} cluster_ref;

typedef struct {
    const char *id;
    size_t n;
} cluster_target;

/* What the cluster asks of the relay. */
typedef struct {
    void *ctx;
    /* A peer elsewhere arrived: add it to the registry (ref->user = its entry) and tell the
     * network. False when it could not be added (out of memory, the remote bound). */
    bool (*remote_up)(void *ctx, const cluster_record *r, cluster_ref *ref);
    /* It left (or its record is replaced): remove ref->user and tell the network. */
    void (*remote_down)(void *ctx, cluster_ref *ref);
    /* The entry for id held elsewhere, or NULL. */
    cluster_ref *(*remote_find)(void *ctx, const char *id, size_t n);
    /* This instance's registration of id, or NULL. */
    cluster_local *(*local_of)(void *ctx, const char *id, size_t n);
    /* A local registration lost its id to an earlier one elsewhere: close it with error 5. */
    void (*evict)(void *ctx, void *user);
    /* An envelope's frame for the local peers named in targets (unknown ones are skipped). */
    void (*deliver)(void *ctx, const cluster_target *targets, size_t n, const char *text,
                    size_t len);
} cluster_hooks;

/* Starts connecting (never waits). instance_id NULL: a random one. max_remote bounds the peers
 * elsewhere the registry will hold. busy (may be NULL) is set whenever Redis traffic was
 * handled. NULL with the reason in err. */
cluster *cluster_new(loop *lp, const char *urls, const char *instance_id, size_t max_remote,
                     const cluster_hooks *hooks, bool *busy, char *err, size_t errlen);
void cluster_free(cluster *cl);
/* Sends what the pass queued for Redis; the server calls it at the end of every loop pass. */
void cluster_end_of_pass(cluster *cl);

/* A local registration: r's owner and reg_ms are filled in here. user is the relay's entry
 * (given back to evict). NULL when out of memory. */
cluster_local *cluster_register(cluster *cl, cluster_record *r, void *user);
void cluster_unregister(cluster *cl, cluster_local *l);

/* Frames for peers elsewhere: add every target (its ref and id), then send the frame's text:
 * it joins one envelope per instance that has targets, and each instance's envelopes of the
 * loop pass leave in one publish at its end (cluster_end_of_pass). Past the outgoing bound, or
 * while Redis is away, they are dropped and counted. */
void cluster_batch_add(cluster *cl, const cluster_ref *ref, const char *id, size_t n);
void cluster_batch_send(cluster *cl, const char *text, size_t len);

typedef struct {
    size_t remote_peers;      /* peers elsewhere in the registry */
    size_t instances;         /* other instances heard from */
    size_t shards, shards_up; /* Redis shards, and those fully connected */
    uint64_t envelopes_sent, envelopes_received;
    uint64_t dropped;         /* commands dropped: Redis away or the outgoing bound reached */
    uint64_t reconnects;      /* Redis connections re-established */
    uint64_t conflicts;       /* local registrations closed for an earlier one elsewhere */
} cluster_stats;

void cluster_get_stats(const cluster *cl, cluster_stats *out);

#endif
