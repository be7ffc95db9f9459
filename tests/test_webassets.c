/* Unit tests for the embedded operator pages (webassets.c, build/web/assets.c written by web/embed.c):
 * every file of web/ is in the binary byte for byte and found by name, each served with the
 * right Content-Type, and the pages stay self-contained and script-safe: nothing is loaded from
 * another origin, and no script turns text into markup (innerHTML and the like). How the pages
 * behave is checked in a real browser by the integration tests. */
#include "webassets.h"
#include "test.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

static bool served(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcmp(dot, ".html") || !strcmp(dot, ".css") || !strcmp(dot, ".js") || !strcmp(dot, ".svg"));
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *p = NULL;
    long n;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (p = malloc((size_t)n + 1)) && fread(p, 1, (size_t)n, f) == (size_t)n) {
        p[n] = 0;
        *len = (size_t)n;
    } else {
        free(p);
        p = NULL;
    }
    fclose(f);
    return p;
}

static void test_every_file_embedded(void)
{
    DIR *d = opendir("web");
    struct dirent *e;
    size_t found = 0;
    REQUIRE(d);
    while ((e = readdir(d)) != NULL) {
        if (!served(e->d_name))
            continue;
        char path[512];
        size_t len = 0;
        snprintf(path, sizeof path, "web/%s", e->d_name);
        char *disk = slurp(path, &len);
        const web_file *f = web_find(e->d_name, strlen(e->d_name));
        CHECK(disk != NULL);
        CHECK(f != NULL);
        if (disk && f)
            CHECK_EQ_MEM(f->data, f->len, disk, len);
        snprintf(path, sizeof path, "/assets/%s", e->d_name);
        if (f)
            CHECK_EQ_STR(f->path, path);
        free(disk);
        found++;
    }
    closedir(d);
    CHECK_EQ_INT(found, web_n_files);
    CHECK(web_find("index.html", 10) != NULL);
    CHECK(web_find("index.htm", 9) == NULL);
    CHECK(web_find("../index.html", 13) == NULL);
}

static void test_content_types(void)
{
    CHECK_EQ_STR(web_content_type("index.html"), "text/html; charset=utf-8");
    CHECK_EQ_STR(web_content_type("app.css"), "text/css; charset=utf-8");
    CHECK_EQ_STR(web_content_type("app.js"), "text/javascript; charset=utf-8");
    CHECK_EQ_STR(web_content_type("land.svg"), "image/svg+xml");
    CHECK_EQ_STR(web_content_type("x"), "application/octet-stream");
}

/* True when text[0..n) contains needle. */
static bool has(const unsigned char *text, size_t n, const char *needle)
{
    return memmem(text, n, needle, strlen(needle)) != NULL;
}

static void test_self_contained_and_text_only(void)
{
    static const char *const markup_sinks[] = {
        "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
    };
    for (size_t i = 0; i < web_n_files; i++) {
        const web_file *f = &web_files[i];
        /* The only absolute URL allowed is the SVG namespace name, which is never fetched. */
        const unsigned char *p = f->data;
        size_t left = f->len;
        const char *ns = "http://www.w3.org/2000/svg";
        while (left > 0) {
            const unsigned char *at = memmem(p, left, "http", 4);
            if (!at)
                break;
            size_t rest = left - (size_t)(at - p);
            if (!(rest >= strlen(ns) && memcmp(at, ns, strlen(ns)) == 0) &&
                (rest >= 7 && (memcmp(at, "http://", 7) == 0 || memcmp(at, "https:/", 7) == 0))) {
                printf("  %s loads from another origin: %.40s\n", f->name, (const char *)at);
                CHECK(0);
            }
            left = rest - 4;
            p = at + 4;
        }
        CHECK(!has(f->data, f->len, "src=\"//"));
        CHECK(!has(f->data, f->len, "href=\"//"));
        CHECK(!has(f->data, f->len, "url(//"));
        if (strstr(f->name, ".js"))
            for (size_t k = 0; k < sizeof markup_sinks / sizeof markup_sinks[0]; k++)
                if (has(f->data, f->len, markup_sinks[k])) {
                    printf("  %s uses %s\n", f->name, markup_sinks[k]);
                    CHECK(0);
                }
        if (strstr(f->name, ".html"))
            CHECK(!has(f->data, f->len, "<script>"));   /* scripts are files: the CSP allows no inline code */
    }
}

int main(void)
{
    RUN(test_every_file_embedded);
    RUN(test_content_types);
    RUN(test_self_contained_and_text_only);
    return test_finish();
}
