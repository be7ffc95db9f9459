/* The RLY-009 sweep (SPEC §2.9b) on the loop: every --dht-sweep-interval-secs the relay asks
 * each registered node {"type":"get_dht_records","max_keys":500} through that node's bounded
 * outbound queue, feeds the dht_records answers that arrive within DHT_ANSWER_WINDOW_MS into
 * dht.c's collection, and publishes the view when the window closes. A request for /dht.json
 * only reads the published view: nobody is ever asked anything on a visitor's behalf.
 *
 * Two loop timers: the next sweep, then the end of its answer window. A sweep starts no sooner
 * than the previous window closed, so sweeps never overlap however short the interval. */
#ifndef DIG_DHTSWEEP_H
#define DIG_DHTSWEEP_H

#include "dht.h"
#include "loop.h"
#include "relay.h"

#include <stdint.h>

typedef struct dhtsweep dhtsweep;

/* Sweeps r's registrations every interval_secs (0: never; the view then stays empty) and
 * becomes r's dht_records sink. seed keys dht.c's table of content keys. NULL when out of
 * memory. */
dhtsweep *dhtsweep_new(loop *lp, relay *r, uint64_t interval_secs, const uint64_t seed[2]);
void dhtsweep_free(dhtsweep *s);

/* The published view (/dht.json). */
const dht_view *dhtsweep_view(const dhtsweep *s);

#endif
