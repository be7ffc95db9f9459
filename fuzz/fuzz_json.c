/* libFuzzer harness for the strict JSON reader and the string writer.
 *
 * Three walks of the same input must agree: json_validate, the iterative json_skip, and a
 * recursive walk through the pull API (object/array iteration, typed reads). An accepted
 * document's skip span must validate on its own. Every string the walk meets is unescaped,
 * written back with jw_string, and the written text must read back to the same bytes. */
#include "json.h"

#include <stdlib.h>
#include <string.h>

static void check_string(json_span raw)
{
    char *dec = malloc(raw.n + 1);
    if (!dec)
        return;
    size_t n = json_unescape(raw, dec);
    if (n > raw.n || json_raw_has_escape(raw) != (memchr(raw.p, '\\', raw.n) != NULL))
        abort();
    dec[n] = '\0';
    if (!memchr(dec, '\0', n) && !json_raw_equals(raw, dec))
        abort();

    json_writer w;
    jw_init(&w, 3, 6 * raw.n + 16);
    jw_string(&w, dec, n);
    if (w.failed)
        abort();
    json_reader r;
    json_span again;
    json_reader_init(&r, w.p + 3, w.len - 3);
    if (!json_read_string(&r, &again) || !json_end(&r))
        abort();
    char *dec2 = malloc(again.n + 1);
    if (dec2) {
        size_t n2 = json_unescape(again, dec2);
        if (n2 != n || memcmp(dec, dec2, n) != 0)
            abort();
        free(dec2);
    }
    jw_free(&w);
    free(dec);
}

/* Walks one value through the pull API; false when the reader reports an error. */
static bool walk(json_reader *r)
{
    json_span s;
    bool b;
    switch (json_peek(r)) {
    case JSON_OBJECT:
        if (!json_object_begin(r))
            return false;
        while (json_object_next(r, &s)) {
            check_string(s);
            if (!walk(r))
                return false;
        }
        return r->err == NULL;
    case JSON_ARRAY:
        if (!json_array_begin(r))
            return false;
        while (json_array_next(r))
            if (!walk(r))
                return false;
        return r->err == NULL;
    case JSON_STRING:
        if (!json_read_string(r, &s))
            return false;
        check_string(s);
        return true;
    case JSON_NUMBER: {
        json_reader probe = *r;
        uint64_t v;
        if (json_read_u64(&probe, &v)) {
            /* an accepted integer is plain digits whose value is v */
            uint64_t again = 0;
            size_t i = r->pos;
            while (i < r->len && (r->buf[i] == ' ' || r->buf[i] == '\t' || r->buf[i] == '\n' || r->buf[i] == '\r'))
                i++;
            for (; i < probe.pos; i++) {
                if (r->buf[i] < '0' || r->buf[i] > '9')
                    abort();
                again = again * 10 + (uint64_t)(r->buf[i] - '0');
            }
            if (again != v)
                abort();
        }
        return json_skip(r, NULL);
    }
    case JSON_TRUE:
    case JSON_FALSE:
        return json_read_bool(r, &b);
    case JSON_NULL:
        return json_read_null(r);
    default:
        return false;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    const char *err = NULL;
    bool ok = json_validate(buf, size, &err);
    if (ok != (err == NULL))
        abort();

    json_reader r;
    json_span raw;
    json_reader_init(&r, buf, size);
    bool skip_ok = json_skip(&r, &raw) && json_end(&r);
    if (skip_ok != ok)
        abort();
    if (ok) {
        if (raw.p < buf || raw.p + raw.n > buf + size || !json_validate(raw.p, raw.n, NULL))
            abort();
        if (r.depth != 0)
            abort();
    }

    json_reader_init(&r, buf, size);
    bool walk_ok = walk(&r) && json_end(&r);
    if (walk_ok != ok)
        abort();
    return 0;
}
