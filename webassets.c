/* Lookup over the embedded operator pages (webassets.h). */
#include "webassets.h"

#include <string.h>

const web_file *web_find(const char *name, size_t n)
{
    for (size_t i = 0; i < web_n_files; i++)
        if (strlen(web_files[i].name) == n && memcmp(web_files[i].name, name, n) == 0)
            return &web_files[i];
    return NULL;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

const char *web_content_type(const char *name)
{
    if (ends_with(name, ".html"))
        return "text/html; charset=utf-8";
    if (ends_with(name, ".css"))
        return "text/css; charset=utf-8";
    if (ends_with(name, ".js"))
        return "text/javascript; charset=utf-8";
    if (ends_with(name, ".svg"))
        return "image/svg+xml";
    return "application/octet-stream";
}
