/* The optional features of this build (buildinfo.h), from the HAVE_* macros the Makefile sets
 * for each library it found. */
#include "buildinfo.h"

const char *features_built_in(void)
{
#ifdef HAVE_MAXMINDDB
    return "geoip";
#else
    return "";
#endif
}

const char *features_left_out(void)
{
#ifdef HAVE_MAXMINDDB
    return "";
#else
    return "geoip (libmaxminddb-dev)";
#endif
}
