/* The HTTP route table (see routes.h) and the generic HTTPS redirect route. */
#include "routes.h"

#include <stdio.h>
#include <string.h>

void routes_init(route_table *t) { memset(t, 0, sizeof *t); }

bool routes_add(route_table *t, const route *r)
{
    if (t->n == ROUTES_MAX)
        return false;
    t->items[t->n++] = *r;
    return true;
}

void routes_set_fallback(route_table *t, const route *r) { t->fallback = *r; }

void route_text(route_reply *out, int status, const char *text)
{
    out->status = status;
    out->content_type = "text/plain; charset=utf-8";
    out->headers = NULL;
    out->body = text;
    out->body_len = strlen(text);
}

static const route *find_route(const route_table *t, const http_request *req)
{
    for (size_t i = 0; i < t->n; i++) {
        size_t n = strlen(t->items[i].path);
        if (req->path_len == n && memcmp(req->path, t->items[i].path, n) == 0)
            return &t->items[i];
    }
    return t->fallback.fn ? &t->fallback : NULL;
}

frame *routes_answer(const route_table *t, const http_request *req)
{
    /* Room for the status line, the fixed headers and a Location as long as any request head. */
    char head[HTTP_MAX_HEAD + 512];
    const route *r = find_route(t, req);
    bool head_only = http_method_is(req, "HEAD");
    route_reply reply = { 0 };
    size_t head_len, body_len;
    uint8_t *room;
    frame *f;

    if (!r)
        route_text(&reply, 404, "not found\n");
    else if (r->get_only && !head_only && !http_method_is(req, "GET")) {
        route_text(&reply, 405, "method not allowed\n");
        reply.headers = "Allow: GET, HEAD\r\n";
    } else
        r->fn(r->ctx, req, &reply);
    head_len = http_response_head(head, sizeof head, reply.status, reply.content_type,
                                  reply.headers, reply.body_len);
    if (head_len == 0)
        return NULL;
    body_len = head_only ? 0 : reply.body_len;
    f = frame_begin_raw(head_len + body_len, &room);
    if (!f)
        return NULL;
    memcpy(room, head, head_len);
    if (body_len)
        memcpy(room + head_len, reply.body, body_len);
    return f;
}

/* ---- routes every listener can mount ---- */

/* Host and target go into a response header: any control byte, space or DEL would let a client
 * write headers of its own (or break the line), so such a request is refused. */
static bool header_safe(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

void route_redirect_https(void *ctx, const http_request *req, route_reply *out)
{
    route_redirect *rd = ctx;
    const http_header *host = http_find_header(req, "Host");
    const char *h = host ? host->value : "relay.dig.net";
    size_t hn = host ? host->value_len : strlen("relay.dig.net");
    int n;
    if (hn == 0 || !header_safe(h, hn) || !header_safe(req->target, req->target_len)) {
        route_text(out, 400, "bad request\n");
        return;
    }
    n = snprintf(rd->location, sizeof rd->location, "Location: https://%.*s%.*s\r\n", (int)hn, h,
                 (int)req->target_len, req->target);
    if (n < 0 || (size_t)n >= sizeof rd->location) {
        route_text(out, 400, "bad request\n");
        return;
    }
    out->status = 301;
    out->content_type = NULL;
    out->headers = rd->location;
    out->body = NULL;
    out->body_len = 0;
}
