/* What this build has built in among the optional libraries the Makefile detects, named the
 * same way everywhere: --version prints it, /metrics labels its build-info gauge with it. */
#ifndef DIG_BUILDINFO_H
#define DIG_BUILDINFO_H

/* Comma-separated names of the features built in ("" when none): geoip. */
const char *features_built_in(void);
/* Comma-separated names of those left out, each with the Debian package that brings it. */
const char *features_left_out(void);

#endif
