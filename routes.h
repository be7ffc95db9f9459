/* HTTP routes: one table type for every plain-HTTP surface. The wire port's table answers
 * whatever is not a WebSocket upgrade (health, and the dashboard's pages), the health port's
 * table holds /health alone, and the redirect listener's table is a single fallback. A handler
 * fills a reply from the request; routes_answer turns it into one complete response
 * (Connection: close), without the body for HEAD. Pure: no sockets. */
#ifndef DIG_ROUTES_H
#define DIG_ROUTES_H

#include "buf.h"
#include "http.h"

#include <stdbool.h>
#include <stddef.h>

#define ROUTES_MAX 24

typedef struct {
    int status;
    const char *content_type;   /* NULL: no Content-Type (an empty body) */
    const char *headers;        /* extra header lines, each ending in CRLF, or NULL */
    const void *body;           /* must stay valid until routes_answer returns */
    size_t body_len;
} route_reply;

typedef void (*route_fn)(void *ctx, const http_request *req, route_reply *out);

typedef struct {
    const char *path;           /* matched exactly against the path (the target before '?') */
    route_fn fn;
    void *ctx;
    bool get_only;              /* other methods than GET and HEAD get 405 */
} route;

typedef struct {
    route items[ROUTES_MAX];
    size_t n;
    route fallback;             /* for paths no entry matches; fn NULL answers 404 */
} route_table;

void routes_init(route_table *t);
/* False when the table is full (a programming error the caller reports at start-up). */
bool routes_add(route_table *t, const route *r);
void routes_set_fallback(route_table *t, const route *r);
/* The complete response to req as a frame of raw bytes; NULL when out of memory. */
frame *routes_answer(const route_table *t, const http_request *req);

/* Fills a short plain-text reply (404, 405, 400...). */
void route_text(route_reply *out, int status, const char *text);

/* ---- generic routes ---- */

/* Any request: 301 to https://<Host><target> (ctx: a route_redirect holding the Location). */
typedef struct {
    char location[HTTP_MAX_HEAD + 64];
} route_redirect;
void route_redirect_https(void *ctx, const http_request *req, route_reply *out);

#endif
