/* Source keys, one-second rate windows, the bounded least-recently-seen source table, and the STUN
 * reflection limiter built from them (see ratelimit.h). */
#include "ratelimit.h"

#include "hash.h"

#include <stdlib.h>
#include <string.h>

void source_key_make(source_key *k, const addr_t *a, enum source_prefix prefix)
{
    addr_t plain = *a;
    addr_unmap(&plain);
    memset(k, 0, sizeof *k);
    k->family = plain.family;
    if (plain.family == 4)
        memcpy(k->ip, plain.ip, 4);
    else
        memcpy(k->ip, plain.ip, prefix == SOURCE_IPV6_64 ? 8 : 16);
}

bool rate_window_has_room(const rate_window *w, uint64_t limit, uint64_t now_ms)
{
    uint64_t used = w->window == now_ms / 1000 ? w->used : 0;
    return used < limit;
}

void rate_window_count(rate_window *w, uint64_t now_ms)
{
    uint64_t window = now_ms / 1000;
    if (w->window != window) {
        w->window = window;
        w->used = 0;
    }
    w->used++;
}

bool rate_window_take(rate_window *w, uint64_t limit, uint64_t now_ms)
{
    if (!rate_window_has_room(w, limit, now_ms))
        return false;
    rate_window_count(w, now_ms);
    return true;
}

/* Each slot starts with this header; links are slot index + 1 so that 0 means "none". */
typedef struct {
    source_key key;
    uint32_t chain;   /* next slot in the same bucket, or next free slot */
    uint32_t newer;
    uint32_t older;
} slot_head;

#define HEAD_SIZE ((sizeof(slot_head) + 7) & ~(size_t)7)
#define MAX_VALUE_SIZE 256
#define MAX_CAPACITY (1u << 30)

static slot_head *slot(const source_table *t, uint32_t index)
{
    return (slot_head *)(void *)(t->entries + (size_t)index * t->stride);
}

static void *slot_value(slot_head *h) { return (uint8_t *)h + HEAD_SIZE; }

/* Keyed (hash.c's SipHash-1-3), so an attacker choosing source addresses cannot aim them at one
 * bucket without knowing the secret. */
static uint64_t key_hash(const uint64_t secret[2], const source_key *k)
{
    uint8_t bytes[17];
    bytes[0] = k->family;
    memcpy(bytes + 1, k->ip, sizeof k->ip);
    return hash_siphash13(secret, bytes, sizeof bytes);
}

static uint32_t *bucket_of(const source_table *t, const source_key *k)
{
    return &t->buckets[key_hash(t->hash_key, k) & t->bucket_mask];
}

bool source_table_init(source_table *t, uint32_t capacity, size_t value_size, const uint64_t seed[2])
{
    uint32_t buckets = 1;

    memset(t, 0, sizeof *t);
    if (capacity == 0 || capacity > MAX_CAPACITY || value_size > MAX_VALUE_SIZE)
        return false;
    while (buckets < capacity)
        buckets <<= 1;
    t->value_size = value_size;
    t->stride = HEAD_SIZE + ((value_size + 7) & ~(size_t)7);
    t->capacity = capacity;
    t->bucket_mask = buckets - 1;
    t->hash_key[0] = seed[0];
    t->hash_key[1] = seed[1];
    /* Slots are handed out in order (see `fresh`), so untouched pages of a large table cost no
     * resident memory until the table actually fills. */
    t->entries = malloc((size_t)capacity * t->stride);
    t->buckets = calloc(buckets, sizeof *t->buckets);
    if (!t->entries || !t->buckets) {
        source_table_free(t);
        return false;
    }
    return true;
}

void source_table_free(source_table *t)
{
    free(t->entries);
    free(t->buckets);
    memset(t, 0, sizeof *t);
}

static void unlink_recency(source_table *t, uint32_t index)
{
    slot_head *h = slot(t, index);
    if (h->newer)
        slot(t, h->newer - 1)->older = h->older;
    else
        t->newest = h->older;
    if (h->older)
        slot(t, h->older - 1)->newer = h->newer;
    else
        t->oldest = h->newer;
}

static void push_newest(source_table *t, uint32_t index)
{
    slot_head *h = slot(t, index);
    h->newer = 0;
    h->older = t->newest;
    if (t->newest)
        slot(t, t->newest - 1)->newer = index + 1;
    else
        t->oldest = index + 1;
    t->newest = index + 1;
}

static void mark_seen(source_table *t, uint32_t index)
{
    if (t->newest != index + 1) {
        unlink_recency(t, index);
        push_newest(t, index);
    }
}

/* Finds k; returns its slot index + 1 (0: absent) and the chain link that points at it. */
static uint32_t lookup(const source_table *t, const source_key *k, uint32_t **link_out)
{
    uint32_t *link = bucket_of(t, k);
    while (*link) {
        slot_head *h = slot(t, *link - 1);
        if (memcmp(&h->key, k, sizeof *k) == 0)
            break;
        link = &h->chain;
    }
    *link_out = link;
    return *link;
}

/* Takes slot index out of its chain and the recency list. */
static void detach(source_table *t, uint32_t *link, uint32_t index)
{
    *link = slot(t, index)->chain;
    unlink_recency(t, index);
    t->count--;
}

void *source_table_find(source_table *t, const source_key *k)
{
    uint32_t *link;
    uint32_t found = lookup(t, k, &link);
    if (!found)
        return NULL;
    mark_seen(t, found - 1);
    return slot_value(slot(t, found - 1));
}

void *source_table_upsert(source_table *t, const source_key *k)
{
    uint32_t *link, *bucket, index;
    uint32_t found = lookup(t, k, &link);
    slot_head *h;

    if (found) {
        mark_seen(t, found - 1);
        return slot_value(slot(t, found - 1));
    }
    if (t->free_list) {
        index = t->free_list - 1;
        t->free_list = slot(t, index)->chain;
    } else if (t->fresh < t->capacity) {
        index = t->fresh++;
    } else {
        index = t->oldest - 1;
        lookup(t, &slot(t, index)->key, &link);
        detach(t, link, index);
    }

    h = slot(t, index);
    bucket = bucket_of(t, k);
    h->key = *k;
    h->chain = *bucket;
    *bucket = index + 1;
    push_newest(t, index);
    t->count++;
    memset(slot_value(h), 0, t->value_size);
    return slot_value(h);
}

void source_table_remove(source_table *t, const source_key *k)
{
    uint32_t *link;
    uint32_t found = lookup(t, k, &link);
    if (!found)
        return;
    detach(t, link, found - 1);
    slot(t, found - 1)->chain = t->free_list;
    t->free_list = found;
}

bool stun_limiter_init(stun_limiter *l, uint64_t per_ip_rps, uint64_t global_rps,
                       uint32_t tracked_ips, const uint64_t seed[2])
{
    memset(l, 0, sizeof *l);
    l->per_ip_rps = per_ip_rps;
    l->global_rps = global_rps;
    return per_ip_rps == 0 || source_table_init(&l->per_ip, tracked_ips, sizeof(rate_window), seed);
}

void stun_limiter_free(stun_limiter *l) { source_table_free(&l->per_ip); }

bool stun_limiter_allow(stun_limiter *l, const addr_t *source, uint64_t now_ms)
{
    rate_window *per_ip = NULL;

    if (l->per_ip_rps) {
        source_key k;
        source_key_make(&k, source, SOURCE_FULL_IP);
        /* Looking the source up marks it seen even when it is refused, so an address that keeps
         * probing stays remembered (and refused) rather than being evicted into a fresh budget. */
        per_ip = source_table_upsert(&l->per_ip, &k);
        if (!rate_window_has_room(per_ip, l->per_ip_rps, now_ms))
            return false;
    }
    if (l->global_rps && !rate_window_has_room(&l->global, l->global_rps, now_ms))
        return false;
    if (per_ip)
        rate_window_count(per_ip, now_ms);
    if (l->global_rps)
        rate_window_count(&l->global, now_ms);
    return true;
}
