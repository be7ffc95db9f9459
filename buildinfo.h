/* The optional libraries this build was made with. The Makefile finds each one and defines its
 * DIG_HAVE_* macro to 1; --version lists the table, /metrics labels its build-info gauge with it,
 * and the flags that need a library refuse to start a build without it. Another optional library
 * adds its macro here and one row in buildinfo.c. */
#ifndef DIG_BUILDINFO_H
#define DIG_BUILDINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#ifndef DIG_HAVE_TLS
#define DIG_HAVE_TLS 0      /* BearSSL: TLS on the relay listener (tls.c) */
#endif
#ifndef DIG_HAVE_GEOIP
#define DIG_HAVE_GEOIP 0    /* libmaxminddb: geolocation for the /map peer map (geo.c) */
#endif
#ifndef DIG_HAVE_CLUSTER
#define DIG_HAVE_CLUSTER 0  /* hiredis: instances sharing peers through Redis (cluster.c) */
#endif

typedef struct {
    const char *name;       /* what --version calls it: "tls" */
    const char *library;    /* what it is built on, and the Debian package: for "not built in" */
    bool built_in;
} feature;

extern const feature features[];
extern const size_t n_features;

/* One line: "features: tls geoip", or with some missing "features: tls; not built in: geoip
 * (needs libmaxminddb, libmaxminddb-dev)". */
void features_print(FILE *out);
/* Comma-separated names of the features built in ("" when none), for labels. */
const char *features_built_in(void);

#endif
