/* The optional libraries this build was made with. The Makefile finds each one and defines its
 * DIG_HAVE_* macro; --version lists the table, and the flags that need a library refuse to
 * start a build without it. Another optional library adds its macro and one row in features.c. */
#ifndef DIG_BUILDINFO_H
#define DIG_BUILDINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#ifndef DIG_HAVE_TLS
#define DIG_HAVE_TLS 0      /* BearSSL: TLS on the relay listener (tls.c) */
#endif

typedef struct {
    const char *name;       /* what --version calls it: "tls" */
    const char *library;    /* what it is built on, and the Debian package: for "not built in" */
    bool built_in;
} feature;

extern const feature features[];
extern const size_t n_features;

/* One line: "features: tls", or with some missing "features: none; not built in: tls (needs
 * BearSSL, libbearssl-dev)". */
void features_print(FILE *out);

#endif
