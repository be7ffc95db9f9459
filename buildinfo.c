/* The table of buildinfo.h. */
#include "buildinfo.h"

const feature features[] = {
    {"tls", "BearSSL, libbearssl-dev", DIG_HAVE_TLS},
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
