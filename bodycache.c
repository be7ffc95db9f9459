/* Short-lived answer bodies (bodycache.h). */
#include "bodycache.h"

#include <string.h>

void body_cache_init(body_cache *c, size_t max_bytes)
{
    memset(c, 0, sizeof *c);
    jw_init(&c->body, 0, max_bytes);
}

void body_cache_free(body_cache *c)
{
    jw_free(&c->body);
    c->valid = false;
}

bool body_cache_get(const body_cache *c, uint64_t now_ms, uint64_t max_age_ms, json_span *out)
{
    if (!c->valid || now_ms < c->built_ms || now_ms - c->built_ms >= max_age_ms)
        return false;
    out->p = c->body.p;
    out->n = c->body.len;
    return true;
}

json_writer *body_cache_begin(body_cache *c)
{
    c->valid = false;
    jw_clear(&c->body);
    return &c->body;
}

bool body_cache_done(body_cache *c, uint64_t now_ms, json_span *out)
{
    c->valid = !c->body.failed;
    if (!c->valid)
        return false;
    c->built_ms = now_ms;
    out->p = c->body.p;
    out->n = c->body.len;
    return true;
}
