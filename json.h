/* Strict RFC 8259 JSON reader (pull style, no tokens, no allocation) and compact writer.
 *
 * The reader walks a caller-owned buffer. Every call validates what it passes over: strings
 * (escapes, surrogate pairs, UTF-8, no raw control characters), numbers (no leading zeros, no
 * lone '-' or '.', exponent digits), literals, and nesting depth (JSON_MAX_DEPTH). The first
 * error is sticky: after it, every call returns false and r->err says what went wrong.
 *
 * The writer appends to a growable buffer bounded by a caller-set maximum and escapes strings
 * exactly as serde_json does (", \, \b \f \n \r \t, other controls as \u00xx, everything else
 * raw), so output is byte-identical with the reference server. */
#ifndef DIG_JSON_H
#define DIG_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 32

typedef struct {
    const char *p;
    size_t n;
} json_span;

enum json_kind {
    JSON_NONE = 0, JSON_OBJECT, JSON_ARRAY, JSON_STRING, JSON_NUMBER, JSON_TRUE, JSON_FALSE, JSON_NULL
};

typedef struct {
    const char *buf;
    size_t len;
    size_t pos;
    unsigned depth;
    const char *err;   /* NULL while fine; a static human-readable reason after the first error */
} json_reader;

void json_reader_init(json_reader *r, const char *buf, size_t len);

/* Kind of the next value (skipping whitespace) judged by its first byte, JSON_NONE at end of
 * input, on error, or when no value starts there. Never sets r->err. */
enum json_kind json_peek(json_reader *r);

/* Objects: json_object_begin consumes '{'. Each json_object_next call yields the next key as its
 * raw validated content (between the quotes, escapes not yet decoded) and consumes the ':';
 * the caller must then read or skip exactly one value. It returns false at the closing '}'
 * (consumed) or on error: check r->err to tell them apart. */
bool json_object_begin(json_reader *r);
bool json_object_next(json_reader *r, json_span *key_raw);

/* Arrays: json_array_begin consumes '['; json_array_next returns true when another element
 * follows (the caller reads or skips it), false at ']' (consumed) or on error. */
bool json_array_begin(json_reader *r);
bool json_array_next(json_reader *r);

/* Scalars. json_read_string yields the raw validated content between the quotes. json_read_u64
 * accepts only a plain non-negative integer that fits in 64 bits (no '-', fraction or exponent). */
bool json_read_string(json_reader *r, json_span *raw);
bool json_read_u64(json_reader *r, uint64_t *v);
bool json_read_bool(json_reader *r, bool *v);
bool json_read_null(json_reader *r);

/* Validates and skips one value of any kind; *raw (may be NULL) spans its exact text. */
bool json_skip(json_reader *r, json_span *raw);

/* True when only whitespace remains; otherwise sets r->err ("trailing characters"). */
bool json_end(json_reader *r);

/* Helpers on raw string content that the reader has already validated. */
bool json_raw_has_escape(json_span raw);
/* Decodes escapes into out (capacity >= raw.n always suffices); returns the decoded length. */
size_t json_unescape(json_span raw, char *out);
/* True when raw string content equals the plain ASCII text s (escapes decoded for the compare). */
bool json_raw_equals(json_span raw, const char *s);

/* Whole-document validation: one value, depth-bounded, nothing after it. */
bool json_validate(const char *buf, size_t len, const char **err);

/* ---- writer ---- */
typedef struct {
    char *p;
    size_t len;
    size_t cap;
    size_t max;      /* growth limit; past it the writer sets failed and stops appending */
    bool failed;     /* allocation failed or max exceeded */
} json_writer;

/* Starts an empty writer that may grow to max bytes, with `reserve` bytes left free at the front
 * (room for a WebSocket header written in place later). Allocates lazily: p stays NULL until the
 * first append. `len` counts the reserve: after jw_init len == reserve, and the text written so
 * far is p[reserve .. len); p[0 .. reserve) is left for the caller. `max` bounds len (reserve
 * included), so the buffer never exceeds max bytes; an append that would pass it sets failed and
 * appends nothing, as does any append after failed. The buffer grows geometrically with realloc.
 * jw_free releases the buffer and leaves p NULL, len and cap 0. */
void jw_init(json_writer *w, size_t reserve, size_t max);
void jw_free(json_writer *w);
/* A writer over a caller-owned buffer of cap bytes: it never reallocates and sets failed
 * instead of growing past cap (jw_free must not be called on it). */
void jw_init_fixed(json_writer *w, char *buf, size_t cap);
/* Empties a writer started without a reserve for its next text, keeping its buffer, and clears
 * failed. */
void jw_clear(json_writer *w);
void jw_raw(json_writer *w, const char *s, size_t n);
void jw_lit(json_writer *w, const char *s);            /* NUL-terminated raw text */
void jw_string(json_writer *w, const char *s, size_t n); /* quoted and escaped like serde_json */
void jw_u64(json_writer *w, uint64_t v);
void jw_bool(json_writer *w, bool v);

#endif
