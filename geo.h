/* IP geolocation for the peer map: an offline MaxMind-format database (.mmdb) read through
 * Debian's libmaxminddb when the build has it (the Makefile detects it; GEOIP=0 leaves it out).
 * The database is opened once and each lookup reads it directly: there is no per-address cache
 * for a peer cycling source addresses to grow. Only globally routable addresses are looked up
 * (addr_is_global); an IPv4-mapped address is looked up as the IPv4 address it carries.
 *
 * Without the library, or when the file is missing or unreadable, geo_open still succeeds and
 * every lookup answers "unknown", so the map is empty rather than an error. */
#ifndef DIG_GEO_H
#define DIG_GEO_H

#include "addr.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct geo geo;

/* True when this build can read .mmdb files. */
bool geo_built_in(void);

/* Opens path (--geoip-db). Never fails for a missing or bad file: the reason goes to
 * why (may be NULL) and lookups answer unknown. NULL only when out of memory. */
geo *geo_open(const char *path, char *why, size_t whylen);
void geo_close(geo *g);

/* The database's location for a, in degrees; false when unknown. */
bool geo_locate(const geo *g, const addr_t *a, double *lat, double *lon);

#endif
