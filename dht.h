/* RLY-009, the DHT content view (SPEC §2.9b): what the relay's registered nodes report about the
 * DHT provider records they hold, collected once per sweep and published at /dht.json.
 *
 * The relay is not a DHT node. Every sweep it asks each registered node get_dht_records and
 * feeds the dht_records answers that arrive within DHT_ANSWER_WINDOW_MS into this collection;
 * when the window closes the view is rebuilt and its JSON encoded once, so a request for
 * /dht.json never makes the relay ask anyone anything. Pure: no sockets, no clock (times come in
 * as parameters), memory bounded whatever the nodes send.
 *
 * What a view says, per content key: the MAX of the provider counts reported (nodes near a key
 * hold overlapping provider sets, so a sum would invent replication) and how many nodes reported
 * it; sorted by reported_by, then providers (both descending), then key; at most
 * DHT_MAX_PUBLISHED_KEYS keys, with reporting_peers, total_keys (before that cap) and truncated.
 * No peer id or address ever enters it.
 *
 * Hardening beyond the reference, so a Sybil can neither grow the collection nor push
 * well-corroborated keys out of it:
 *  - only peers the relay asked this sweep are heard, and each once (dht_asked, dht_answer);
 *  - at most DHT_MAX_KEYS_PER_PEER records are read from one answer, and keys that are empty or
 *    longer than DHT_MAX_KEY_LEN bytes are skipped;
 *  - the collection holds at most DHT_MAX_TRACKED_KEYS distinct keys, and one answer may add at
 *    most its share of new keys: the table divided among the peers asked (at least one key
 *    each), so the first answers in cannot fill it before the others arrive; reports of keys
 *    already held always count, so corroboration is never crowded out. Only when more peers are
 *    asked than the table holds keys can it fill in answer order.
 * A record skipped for any of these reasons makes the view `truncated`; total_keys counts the
 * distinct keys the collection holds. */
#ifndef DIG_DHT_H
#define DIG_DHT_H

#include "json.h"
#include "wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DHT_SCHEMA_VERSION 1
#define DHT_MAX_KEYS_PER_PEER 500       /* the max_keys the relay asks for, and reads */
#define DHT_ANSWER_WINDOW_MS 5000       /* answers later than this after the sweep are ignored */
#define DHT_MAX_PUBLISHED_KEYS 2000
#define DHT_MAX_KEY_LEN 128             /* bytes; content keys are 64 hex digits */
#define DHT_MAX_TRACKED_KEYS 8192

typedef struct dht_view dht_view;

enum dht_verdict {
    DHT_COUNTED = 0,                 /* the answer is part of the next view */
    DHT_NO_SWEEP,                    /* no sweep is collecting (none started, or its window closed) */
    DHT_NOT_ASKED,                   /* the relay did not ask this peer in this sweep */
    DHT_REPEATED                     /* this peer's answer for this sweep was already counted */
};

/* A view with nothing reported yet. seed keys the hash of content keys. NULL when out of
 * memory. */
dht_view *dht_new(const uint64_t seed[2]);
void dht_free(dht_view *v);

/* A sweep starts at now_ms: the relay is about to ask up to max_peers registered peers. Drops
 * whatever an unfinished sweep had collected. False when out of memory (no sweep then). */
bool dht_sweep_begin(dht_view *v, size_t max_peers, uint64_t now_ms);
/* The relay queued get_dht_records to the peer known by token (non-zero, unique per connection
 * for the process's life). False when the sweep already has max_peers peers, or none is open. */
bool dht_asked(dht_view *v, uint64_t token);
/* A registered peer's dht_records answer m. scratch is as wire_next_dht_record needs it for
 * m->records. */
enum dht_verdict dht_answer(dht_view *v, uint64_t token, const wire_msg *m, char *scratch,
                            uint64_t now_ms);
/* When the open sweep's window closes (UINT64_MAX when none is open). */
uint64_t dht_window_end(const dht_view *v);
/* Closes the sweep: builds and encodes the view (generated_at = now_wall, Unix seconds) and
 * frees the collection. False when out of memory (the previous view is kept). */
bool dht_sweep_end(dht_view *v, uint64_t now_wall);

/* The current /dht.json text, and two of its numbers: reporting_peers and total_keys. */
json_span dht_view_json(const dht_view *v);
size_t dht_view_reporting_peers(const dht_view *v);
size_t dht_view_total_keys(const dht_view *v);

#endif
