/* Rate-limit building blocks and the STUN reflection limiter (SPEC §5.1). Pure: time arrives as
 * monotonic milliseconds, memory is allocated once at init and never grows. (Named ratelimit, not
 * limits: a top-level limits.h would shadow the C library's <limits.h> under -I.)
 *
 *   source_key    who a limit counts against: a source IP, optionally widened to its IPv6 /64;
 *                 an IPv4-mapped IPv6 address always counts as the IPv4 address it carries.
 *   rate_window   a counter over fixed one-second windows (window = now_ms / 1000).
 *   source_table  a fixed-capacity hash table from source_key to a small caller-sized value, with
 *                 least-recently-seen eviction, so forged sources can churn it but never grow it.
 *                 Lookup, insert, evict and remove are O(1); the hash is keyed with a caller-given
 *                 secret so chosen source addresses cannot pile into one chain.
 *   stun_limiter  per-source-IP and global response budgets for the STUN responder. */
#ifndef DIG_RATELIMIT_H
#define DIG_RATELIMIT_H

#include "addr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t family;   /* 4 or 6 */
    uint8_t ip[16];   /* IPv4 in ip[0..3]; bytes past the prefix are zero */
} source_key;

enum source_prefix {
    SOURCE_FULL_IP,   /* the whole address */
    SOURCE_IPV6_64    /* IPv6 cut to its /64 (one site's delegation); IPv4 stays whole */
};

void source_key_make(source_key *k, const addr_t *a, enum source_prefix prefix);

typedef struct {
    uint64_t window;  /* now_ms / 1000 of the window `used` belongs to */
    uint64_t used;
} rate_window;

/* True when one more event fits under `limit` in the window holding now_ms (a limit of 0 admits
 * nothing; callers for which 0 means "disabled" skip the check). */
bool rate_window_has_room(const rate_window *w, uint64_t limit, uint64_t now_ms);
/* Counts one event in the window holding now_ms (a new window starts from zero). */
void rate_window_count(rate_window *w, uint64_t now_ms);
/* has_room, then count when there was room. */
bool rate_window_take(rate_window *w, uint64_t limit, uint64_t now_ms);

typedef struct {
    uint8_t *entries;     /* capacity slots of `stride` bytes: link header, then the value */
    uint32_t *buckets;    /* chain heads, slot index + 1 (0: empty) */
    size_t stride;
    size_t value_size;
    uint32_t capacity;
    uint32_t bucket_mask;
    uint32_t count;       /* live entries */
    uint32_t fresh;       /* slots ever handed out; slots past it have never been touched */
    uint32_t free_list;   /* removed slots, index + 1 */
    uint32_t newest, oldest;   /* recency list ends, index + 1 */
    uint64_t hash_key[2];
} source_table;

/* Allocates room for `capacity` entries (>= 1) each carrying `value_size` bytes (<= 256),
 * 8-byte aligned. seed is the hash secret. Returns false when out of memory or the sizes are bad. */
bool source_table_init(source_table *t, uint32_t capacity, size_t value_size, const uint64_t seed[2]);
void source_table_free(source_table *t);
/* The value stored for k, marked most recently seen; NULL when absent. (Every lookup below needs
 * a table that source_table_init accepted.) */
void *source_table_find(source_table *t, const source_key *k);
/* The value for k, marked most recently seen; a new entry gets a zeroed value, evicting the least
 * recently seen entry when the table is full. Never NULL on an initialised table. */
void *source_table_upsert(source_table *t, const source_key *k);
/* Forgets k (no effect when absent). */
void source_table_remove(source_table *t, const source_key *k);

/* How many source IPs the STUN limiter remembers (as the reference server does). */
#define STUN_LIMITER_TRACKED_IPS 65536u

typedef struct {
    uint64_t per_ip_rps;     /* 0: no per-IP limit (and no table) */
    uint64_t global_rps;     /* 0: no global limit */
    source_table per_ip;     /* full-IP keys -> rate_window */
    rate_window global;
} stun_limiter;

bool stun_limiter_init(stun_limiter *l, uint64_t per_ip_rps, uint64_t global_rps,
                       uint32_t tracked_ips, const uint64_t seed[2]);
void stun_limiter_free(stun_limiter *l);
/* Whether a response may go to source at now_ms; spends a token in each enabled budget only when
 * both have room, so a per-IP rejection costs the global budget nothing. */
bool stun_limiter_allow(stun_limiter *l, const addr_t *source, uint64_t now_ms);

#endif
