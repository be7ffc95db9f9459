/* What instances of one relay say to each other through Redis (cluster.h), as pure codecs over
 * buffers: the --cluster-redis URL list and instance ids, the stable shard hash every instance
 * computes alike, the registration record kept under each peer's key and announced on the
 * events channel, and the envelope that carries an already-built wire frame to the instance
 * holding its targets. Nothing here touches a socket or a clock; every length read is checked
 * against the buffer, since a record may come from a Redis anyone on its network can write. */
#ifndef DIG_CLUSTERWIRE_H
#define DIG_CLUSTERWIRE_H

#include "addr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLUSTER_MAX_SHARDS 16
#define CLUSTER_ID_MAX 64        /* instance id length */
#define CLUSTER_PEER_ID_MAX 256  /* as the relay's own bound on peer and network ids */

typedef struct {
    char host[256];
    uint16_t port;
    char password[128];      /* "" when none */
    unsigned db;
} cluster_url;

/* Parses "redis://[:password@]host:port[/db]" entries separated by commas into out (at most
 * CLUSTER_MAX_SHARDS). Returns how many, or 0 with the reason in why. */
size_t cluster_parse_urls(const char *list, cluster_url out[CLUSTER_MAX_SHARDS], char *why,
                          size_t whylen);
/* 1..CLUSTER_ID_MAX of A-Z a-z 0-9 . _ - (ids go into Redis key names and log lines). */
bool cluster_instance_id_valid(const char *id);
/* The shard of a key: FNV-1a, the same on every instance and every build. */
size_t cluster_shard_of(const char *key, size_t n, size_t n_shards);

/* A registration as instances share it. Text fields point into the decoded buffer. The value
 * starts "<owner> <reg_ms> " so the Redis scripts can read who holds it and since when. */
typedef struct {
    const char *owner;           /* instance id */
    size_t owner_len;
    uint64_t reg_ms;             /* wall-clock ms of the registration: the earlier one wins */
    const char *peer_id, *network_id;
    size_t peer_id_len, network_id_len;
    uint64_t protocol_version, connected_at;
    addr_t addrs[ADDR_MAX_DIALABLE];
    size_t n_addrs;
} cluster_record;

/* Longest encoded record. */
#define CLUSTER_RECORD_MAX (CLUSTER_ID_MAX + 3 * 21 + 2 * (CLUSTER_PEER_ID_MAX + 5) + 4 + \
                            ADDR_MAX_DIALABLE * (ADDR_STRLEN + 4) + 8)

/* Writes r into out (CLUSTER_RECORD_MAX bytes); returns the length. */
size_t cluster_record_encode(const cluster_record *r, char *out);
bool cluster_record_decode(const char *p, size_t n, cluster_record *r);

/* "<owner> <number>" followed by a space and the rest (rest may be NULL): the prefix of the
 * record, of a departure ("D" events) and of a heartbeat ("H" events, the number is the count of
 * the owner's peers kept on that shard). */
bool cluster_owner_prefix(const char *p, size_t n, const char **owner, size_t *owner_len,
                          uint64_t *number, const char **rest, size_t *rest_len);

/* ---- envelopes: "<count>:" then "<len>:<peer id>" per target, then the frame's text ----
 * One publish carries the envelopes an instance gathered for another in one loop pass, each as
 * "<len>:<envelope>" (a packet). */

/* Writes the prefix of a packet item of len bytes (at most 22); returns its length. */
size_t cluster_packet_item(char *out, size_t len);
/* The next envelope of the packet [*p, end); false at the end or on a malformed item. */
bool cluster_packet_next(const char **p, const char *end, const char **env, size_t *n);

/* Writes the header for `count` targets; the caller appends each with cluster_envelope_target
 * and then the frame. out must hold 12 bytes; returns the length written. */
size_t cluster_envelope_begin(char *out, size_t count);
/* Writes one target (at most CLUSTER_PEER_ID_MAX + 5 bytes); returns the length. */
size_t cluster_envelope_target(char *out, const char *id, size_t n);

typedef struct {
    const char *p, *end;
    size_t left;                 /* targets not yet read */
} cluster_envelope;

/* Reads the header; false when malformed. */
bool cluster_envelope_open(cluster_envelope *e, const char *p, size_t n);
/* The next target id; false after the last (or on a malformed one: then frame is NULL). */
bool cluster_envelope_next(cluster_envelope *e, const char **id, size_t *n);
/* After every target was read: the frame's text. False when malformed. */
bool cluster_envelope_frame(const cluster_envelope *e, const char **text, size_t *n);

#endif
