/* Geolocation through libmaxminddb (geo.h): MMDB_open in mmap mode once, then one
 * MMDB_lookup_sockaddr and two MMDB_get_value reads (location/latitude, location/longitude) per
 * address. Built without the library, every lookup is unknown. */
#include "geo.h"

#include "buildinfo.h"

#include <stdio.h>
#include <stdlib.h>

#if DIG_HAVE_GEOIP
#include "compat/compat.h"
#include <maxminddb.h>
#endif

struct geo {
    bool open;
#if DIG_HAVE_GEOIP
    MMDB_s db;
#endif
};

bool geo_built_in(void)
{
#if DIG_HAVE_GEOIP
    return true;
#else
    return false;
#endif
}

geo *geo_open(const char *path, char *why, size_t whylen)
{
    geo *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
#if DIG_HAVE_GEOIP
    int rc = MMDB_open(path, MMDB_MODE_MMAP, &g->db);
    if (rc == MMDB_SUCCESS)
        g->open = true;
    else if (why && whylen)
        snprintf(why, whylen, "cannot read geolocation database %s: %s", path, MMDB_strerror(rc));
#else
    if (why && whylen)
        snprintf(why, whylen, "geolocation not built in (libmaxminddb was missing at build time); %s not read", path);
#endif
    return g;
}

void geo_close(geo *g)
{
    if (!g)
        return;
#if DIG_HAVE_GEOIP
    if (g->open)
        MMDB_close(&g->db);
#endif
    free(g);
}

#if DIG_HAVE_GEOIP
static bool read_degrees(MMDB_entry_s *entry, const char *which, double *out)
{
    MMDB_entry_data_s data;
    if (MMDB_get_value(entry, &data, "location", which, NULL) != MMDB_SUCCESS || !data.has_data)
        return false;
    if (data.type == MMDB_DATA_TYPE_DOUBLE)
        *out = data.double_value;
    else if (data.type == MMDB_DATA_TYPE_FLOAT)
        *out = data.float_value;
    else
        return false;
    return true;
}
#endif

bool geo_locate(const geo *g, const addr_t *a, double *lat, double *lon)
{
    addr_t ip = *a;
    addr_unmap(&ip);
    if (!g || !g->open || !addr_is_global(&ip))
        return false;
#if DIG_HAVE_GEOIP
    struct sockaddr_storage ss;
    int err = 0;
    ip.port = 0;
    ip.scope_id = 0;
    if (addr_to_sockaddr(&ip, &ss, sizeof ss) == 0)
        return false;
    MMDB_lookup_result_s r = MMDB_lookup_sockaddr(&g->db, (const struct sockaddr *)&ss, &err);
    if (err != MMDB_SUCCESS || !r.found_entry)
        return false;
    double la, lo;
    if (!read_degrees(&r.entry, "latitude", &la) || !read_degrees(&r.entry, "longitude", &lo))
        return false;
    *lat = la;
    *lon = lo;
    return true;
#else
    (void)lat;
    (void)lon;
    return false;
#endif
}
