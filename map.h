/* The peer map's data: the /map.json body (reference SPEC §6.2). Each registered peer is placed
 * by the first of its dialable addresses the locator can place, snapped at once to the centre of
 * its MAP_CELL_DEG-degree cell; only cells and counts are written, never an address, an id or a
 * precise coordinate. A peer with no dialable address, or none the locator places, is unknown.
 *
 * Fields: schema_version, generated_at, cell_deg (5.0), total_peers, located_peers,
 * unknown_peers, cells [{lat, lon, count}] sorted by lat then lon. Latitudes are clamped to
 * [-90, 90] and longitudes to [-180, 180] first, so a point on the pole or the antimeridian lands
 * in the edge cell instead of one past it. Pure: the locator and the time come in. */
#ifndef DIG_MAP_H
#define DIG_MAP_H

#include "addr.h"
#include "json.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAP_SCHEMA_VERSION 1
#define MAP_CELL_DEG 5

/* Where an address is (degrees); false when unknown. geo_locate fits. */
typedef bool (*map_locate_fn)(const void *ctx, const addr_t *a, double *lat, double *lon);

typedef struct {
    const addr_t *addresses;      /* a peer's dialable addresses, in order */
    size_t n_addresses;
} map_peer;

/* Appends the /map.json text for peers to w. False when w failed. */
bool map_write_json(json_writer *w, const map_peer *peers, size_t n, map_locate_fn locate,
                    const void *ctx, uint64_t generated_at);

#endif
