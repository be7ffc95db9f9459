/* The table of buildinfo.h. */
#include "buildinfo.h"

#include <string.h>

const feature features[] = {
    {"tls", "BearSSL, libbearssl-dev", DIG_HAVE_TLS},
    {"geoip", "libmaxminddb, libmaxminddb-dev", DIG_HAVE_GEOIP},
    {"cluster", "hiredis, libhiredis-dev", DIG_HAVE_CLUSTER},
};
const size_t n_features = sizeof features / sizeof features[0];

void features_print(FILE *out)
{
    size_t in = 0, missing = 0;
    fputs("features:", out);
    for (size_t i = 0; i < n_features; i++)
        if (features[i].built_in && ++in)
            fprintf(out, " %s", features[i].name);
    if (in == 0)
        fputs(" none", out);
    for (size_t i = 0; i < n_features; i++)
        if (!features[i].built_in)
            fprintf(out, "%s%s (needs %s)", missing++ ? ", " : "; not built in: ", features[i].name,
                    features[i].library);
    fputc('\n', out);
}

const char *features_built_in(void)
{
    static char names[128];
    if (names[0] == '\0') {
        size_t len = 0;
        for (size_t i = 0; i < n_features; i++) {
            size_t n = strlen(features[i].name);
            if (!features[i].built_in || len + n + 2 > sizeof names)
                continue;
            if (len > 0)
                names[len++] = ',';
            memcpy(names + len, features[i].name, n);
            len += n;
            names[len] = '\0';
        }
    }
    return names;
}
