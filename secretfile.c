/* The TURN secret file (see secretfile.h). */
#include "secretfile.h"

#include "compat/compat.h"
#include "compat/files.h"
#include "hash.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define GENERATED_BYTES 32

/* Creates the file with a fresh secret unless it exists. */
static bool create_if_missing(const char *path, bool *created, char *err, size_t errlen)
{
    unsigned char raw[GENERATED_BYTES];
    char text[2 * GENERATED_BYTES + 1], dir[4096];
    const char *slash = strrchr(path, '/');
    const char *backslash = strrchr(path, '\\');
    FILE *f = fopen(path, "rb");
    int rc;

    *created = false;
    if (f) {
        fclose(f);
        return true;
    }
    if (errno != ENOENT) {
        snprintf(err, errlen, "cannot read the TURN secret file '%s': %s", path, strerror(errno));
        return false;
    }
    if (backslash && (!slash || backslash > slash))
        slash = backslash;
    if (slash && slash > path) {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir) {
            snprintf(err, errlen, "the TURN secret file path '%s' is too long", path);
            return false;
        }
        memcpy(dir, path, n);
        dir[n] = '\0';
        if (!compat_make_dirs(dir, err, errlen))
            return false;
    }
    compat_random(raw, sizeof raw);
    hex_encode(raw, sizeof raw, text);
    text[sizeof text - 1] = '\n';   /* in place of the NUL */
    rc = compat_create_private_file(path, text, sizeof text, err, errlen);
    memset(raw, 0, sizeof raw);
    memset(text, 0, sizeof text);
    *created = rc == 1;
    return rc >= 0;   /* 0: another process created it first; read theirs */
}

bool secret_file_load(const char *path, unsigned char *out, size_t cap, size_t *len, bool *created,
                      char *err, size_t errlen)
{
    FILE *f;
    size_t n;
    int others;

    if (!create_if_missing(path, created, err, errlen))
        return false;
    others = compat_file_readable_by_others(path, err, errlen);
    if (others < 0)
        return false;
    if (others) {
        snprintf(err, errlen,
                 "the TURN secret file '%s' can be read by group or others: anyone with it can "
                 "mint TURN credentials (chmod 600 it)",
                 path);
        return false;
    }
    f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read the TURN secret file '%s': %s", path, strerror(errno));
        return false;
    }
    /* One byte more than fits tells an over-long file from one that fills cap exactly; the
     * newline that may end it is dropped first. */
    n = fread(out, 1, cap, f);
    int extra = fgetc(f);
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed) {
        snprintf(err, errlen, "cannot read the TURN secret file '%s'", path);
        return false;
    }
    if (extra != EOF && !(extra == '\n' && n == cap)) {
        snprintf(err, errlen, "the TURN secret file '%s' is longer than %zu bytes", path, cap);
        return false;
    }
    if (n > 0 && out[n - 1] == '\n') {
        n--;
        if (n > 0 && out[n - 1] == '\r')
            n--;
    }
    if (n == 0) {
        snprintf(err, errlen, "the TURN secret file '%s' is empty", path);
        return false;
    }
    *len = n;
    return true;
}
