/* The operator pages compiled into the binary: the files of web/ (HTML, CSS, JavaScript, the
 * land outline), found by file name, with the Content-Type each is served with. The bytes come
 * from build/web/assets.c, which the build writes with web/embed.c. */
#ifndef DIG_WEBASSETS_H
#define DIG_WEBASSETS_H

#include <stddef.h>

typedef struct {
    const char *name;               /* "index.html", "app.css", ... */
    const char *path;               /* where the file is served: "/assets/app.css" (pages have
                                     * their own paths: /, /dht, /map) */
    const unsigned char *data;
    size_t len;
} web_file;

extern const web_file web_files[];
extern const size_t web_n_files;

/* The file called name[0..n), or NULL. */
const web_file *web_find(const char *name, size_t n);
/* The Content-Type for a file name, by its extension. */
const char *web_content_type(const char *name);

#endif
