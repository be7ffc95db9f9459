/* An encoded answer kept for a short time: the operator pages are public, so a client polling
 * them as fast as it can must not make the relay walk its registry (or its geolocation database)
 * once per request. Whatever the request rate, a body is built at most once per max_age_ms.
 * Pure: the caller passes monotonic milliseconds. */
#ifndef DIG_BODYCACHE_H
#define DIG_BODYCACHE_H

#include "json.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    json_writer body;
    uint64_t built_ms;
    bool valid;
} body_cache;

/* A cache whose body may grow to max_bytes. */
void body_cache_init(body_cache *c, size_t max_bytes);
void body_cache_free(body_cache *c);

/* The body built less than max_age_ms before now_ms, if any (a clock that went back misses). */
bool body_cache_get(const body_cache *c, uint64_t now_ms, uint64_t max_age_ms, json_span *out);
/* The emptied writer to build a new body in; body_cache_done then keeps it. */
json_writer *body_cache_begin(body_cache *c);
/* Keeps what was written as built at now_ms and returns it; false (nothing kept) when the
 * writer failed (out of memory, or past max_bytes). */
bool body_cache_done(body_cache *c, uint64_t now_ms, json_span *out);

#endif
