/* libFuzzer harness for the strict JSON reader and the writer.
 *
 * Three walks of the same input must agree: json_validate, the iterative json_skip, and a
 * recursive walk through the pull API (object/array iteration, typed reads). An accepted
 * document's skip span must validate on its own. Every string the walk meets is unescaped,
 * written back with jw_string, and the written text must read back to the same bytes.
 *
 * The walk also re-encodes the document compactly with the writer (jw_lit/jw_raw for structure,
 * jw_string for decoded strings and keys, jw_u64 for numbers json_read_u64 takes, the raw text
 * for other numbers, jw_bool, "null") and logs what it decoded (kinds, key order, string bytes,
 * numbers). For an accepted document the encoding must validate, be no longer than the input
 * (escapes only ever shrink or keep their size), decode to the same log, and encode again to
 * the same bytes: encode(decode(encode(decode(x)))) == encode(decode(x)). */
#include "json.h"

#include <stdlib.h>
#include <string.h>

/* The compact re-encoding and the log of decoded values, built by one walk. */
typedef struct {
    json_writer out, log;
} jf_emit;

static void jf_log_bytes(jf_emit *em, char tag, const char *p, size_t n)
{
    jw_raw(&em->log, &tag, 1);
    jw_raw(&em->log, (const char *)&n, sizeof n);
    jw_raw(&em->log, p, n);
}

/* Checks one string's escape handling and emits its decoded bytes as a key or a value. */
static void check_string(json_span raw, jf_emit *em, char tag)
{
    char *dec = malloc(raw.n + 1);
    if (!dec) {
        em->out.failed = true;   /* no memory: this input proves nothing */
        return;
    }
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

    jw_string(&em->out, dec, n);
    jf_log_bytes(em, tag, dec, n);
    free(dec);
}

/* Walks one value through the pull API, emitting it; false when the reader reports an error. */
static bool walk(json_reader *r, jf_emit *em)
{
    json_span s;
    bool b;
    switch (json_peek(r)) {
    case JSON_OBJECT:
        if (!json_object_begin(r))
            return false;
        jw_lit(&em->out, "{");
        jw_lit(&em->log, "{");
        for (bool first = true; json_object_next(r, &s); first = false) {
            if (!first)
                jw_lit(&em->out, ",");
            check_string(s, em, 'k');
            jw_lit(&em->out, ":");
            if (!walk(r, em))
                return false;
        }
        jw_lit(&em->out, "}");
        jw_lit(&em->log, "}");
        return r->err == NULL;
    case JSON_ARRAY:
        if (!json_array_begin(r))
            return false;
        jw_lit(&em->out, "[");
        jw_lit(&em->log, "[");
        for (bool first = true; json_array_next(r); first = false) {
            if (!first)
                jw_lit(&em->out, ",");
            if (!walk(r, em))
                return false;
        }
        jw_lit(&em->out, "]");
        jw_lit(&em->log, "]");
        return r->err == NULL;
    case JSON_STRING:
        if (!json_read_string(r, &s))
            return false;
        check_string(s, em, 's');
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
            /* the integer must also pass json_skip, which is what json_validate judged */
            if (!json_skip(r, &s) || r->pos != probe.pos)
                return false;
            jw_u64(&em->out, v);
            jw_raw(&em->log, "u", 1);
            jw_raw(&em->log, (const char *)&v, sizeof v);
            return true;
        }
        if (!json_skip(r, &s))
            return false;
        jw_raw(&em->out, s.p, s.n);
        jf_log_bytes(em, 'n', s.p, s.n);
        return true;
    }
    case JSON_TRUE:
    case JSON_FALSE:
        if (!json_read_bool(r, &b))
            return false;
        jw_bool(&em->out, b);
        jw_lit(&em->log, b ? "t" : "f");
        return true;
    case JSON_NULL:
        if (!json_read_null(r))
            return false;
        jw_lit(&em->out, "null");
        jw_lit(&em->log, "z");
        return true;
    default:
        return false;
    }
}

/* Walks a whole text; true when it is one accepted document. */
static bool jf_walk_all(const char *buf, size_t size, jf_emit *em)
{
    json_reader r;
    json_reader_init(&r, buf, size);
    jw_init(&em->out, 0, 6 * size + 64);   /* room to notice output longer than the input */
    jw_init(&em->log, 0, (size_t)1 << 26);
    return walk(&r, em) && json_end(&r);
}

static void jf_free(jf_emit *em)
{
    jw_free(&em->out);
    jw_free(&em->log);
}

static bool jf_same(const json_writer *a, const json_writer *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
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

    jf_emit first, second;
    bool walk_ok = jf_walk_all(buf, size, &first);
    if (walk_ok != ok)
        abort();
    if (ok && !first.out.failed && !first.log.failed) {
        /* compact output: never longer than the input, since escapes never grow */
        if (first.out.len > size || !first.out.p || !json_validate(first.out.p, first.out.len, NULL))
            abort();
        if (!jf_walk_all(first.out.p, first.out.len, &second))
            abort();
        if (!second.out.failed && !second.log.failed &&
            (!jf_same(&first.out, &second.out) || !jf_same(&first.log, &second.log)))
            abort();
        jf_free(&second);
    }
    jf_free(&first);
    return 0;
}
