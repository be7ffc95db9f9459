/* Strict RFC 8259 JSON: a pull reader that validates as it walks a caller-owned buffer (no
 * allocation, no tokens array) and a compact writer whose string escaping matches serde_json
 * byte for byte. See json.h for the contract. */
#include "json.h"

#include <stdlib.h>
#include <string.h>

/* ---- reader internals ---- */

static bool fail(json_reader *r, const char *why)
{
    if (!r->err)
        r->err = why;
    return false;
}

static inline bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static inline bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static inline void skip_ws(json_reader *r)
{
    while (r->pos < r->len && is_ws((unsigned char)r->buf[r->pos]))
        r->pos++;
}

/* Next byte after whitespace, or -1 at end of input. */
static inline int next_byte(json_reader *r)
{
    skip_ws(r);
    return r->pos < r->len ? (unsigned char)r->buf[r->pos] : -1;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads the 4 hex digits after "\u" at p (bounds already checked); -1 when not hex. */
static long hex4(const unsigned char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(p[i]);
        if (h < 0)
            return -1;
        v = (v << 4) | h;
    }
    return v;
}

/* Length of the valid UTF-8 sequence starting at p (lead byte >= 0x80), 0 when invalid:
 * rejects overlongs, UTF-16 surrogates, code points above U+10FFFF and truncation. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;    /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) { need = 2; lo = 0xA0; }
    else if (c == 0xED) { need = 2; hi = 0x9F; }
    else if (c >= 0xE1 && c <= 0xEF) need = 2;
    else if (c == 0xF0) { need = 3; lo = 0x90; }
    else if (c == 0xF4) { need = 3; hi = 0x8F; }
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else return 0;
    if ((size_t)(end - p) <= need)
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i <= need; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return need + 1;
}

/* Validates the string whose opening quote is at r->pos; leaves pos after the closing quote. */
/* True when none of the 8 bytes in w ends or escapes a string or needs UTF-8 checks: no '"',
 * no backslash, no control character, no byte >= 0x80. (Each test is the exact "some byte is
 * zero / below n" word trick: it never misses a matching byte.) */
static inline bool plain8(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
    uint64_t control = (w - ones * 0x20) & ~w;
    quote = (quote - ones) & ~quote;
    backslash = (backslash - ones) & ~backslash;
    return ((control | quote | backslash | w) & highs) == 0;
}

/* Length of the leading run of plain bytes (see plain8) in s[0..n), 8 at a time. */
static size_t plain_run(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (n - i >= 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (!plain8(w))
            break;
        i += 8;
    }
    return i;
}

static bool scan_string(json_reader *r, json_span *raw)
{
    const unsigned char *s = (const unsigned char *)r->buf;
    const unsigned char *p = s + r->pos + 1, *end = s + r->len;
    const unsigned char *start = p;
    for (;;) {
        p += plain_run(p, (size_t)(end - p));
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        if (p >= end)
            return fail(r, "unterminated string");
        unsigned char c = *p;
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(r, "control character in string");
        if (c >= 0x80) {
            size_t n = utf8_seq(p, end);
            if (!n)
                return fail(r, "invalid UTF-8 in string");
            p += n;
            continue;
        }
        /* backslash */
        if (end - p < 2)
            return fail(r, "unterminated string");
        switch (p[1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            p += 2;
            continue;
        case 'u':
            break;
        default:
            return fail(r, "invalid escape in string");
        }
        if (end - p < 6)
            return fail(r, "invalid \\u escape");
        long u = hex4(p + 2);
        if (u < 0)
            return fail(r, "invalid \\u escape");
        p += 6;
        if (u >= 0xDC00 && u <= 0xDFFF)
            return fail(r, "lone surrogate in string");
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
                return fail(r, "lone surrogate in string");
            long lo = hex4(p + 2);
            if (lo < 0xDC00 || lo > 0xDFFF)
                return fail(r, "lone surrogate in string");
            p += 6;
        }
    }
    if (raw) {
        raw->p = (const char *)start;
        raw->n = (size_t)(p - start);
    }
    r->pos = (size_t)(p + 1 - s);
    return true;
}

/* Validates the number at r->pos (grammar of RFC 8259 §6). */
static bool scan_number(json_reader *r)
{
    const char *b = r->buf;
    size_t p = r->pos, n = r->len;
    if (p < n && b[p] == '-')
        p++;
    if (p >= n || !is_digit((unsigned char)b[p]))
        return fail(r, "invalid number");
    if (b[p] == '0') {
        p++;
        if (p < n && is_digit((unsigned char)b[p]))
            return fail(r, "invalid number: leading zero");
    } else {
        while (p < n && is_digit((unsigned char)b[p]))
            p++;
    }
    if (p < n && b[p] == '.') {
        p++;
        if (p >= n || !is_digit((unsigned char)b[p]))
            return fail(r, "invalid number: no digit after '.'");
        while (p < n && is_digit((unsigned char)b[p]))
            p++;
    }
    if (p < n && (b[p] == 'e' || b[p] == 'E')) {
        p++;
        if (p < n && (b[p] == '+' || b[p] == '-'))
            p++;
        if (p >= n || !is_digit((unsigned char)b[p]))
            return fail(r, "invalid number: no digit in exponent");
        while (p < n && is_digit((unsigned char)b[p]))
            p++;
    }
    r->pos = p;
    return true;
}

static bool scan_literal(json_reader *r, const char *lit, size_t n)
{
    if (r->len - r->pos < n || memcmp(r->buf + r->pos, lit, n) != 0)
        return fail(r, "invalid literal");
    r->pos += n;
    return true;
}

static bool open_container(json_reader *r)
{
    if (r->depth >= JSON_MAX_DEPTH)
        return fail(r, "nesting too deep");
    r->depth++;
    r->pos++;
    return true;
}

/* ---- reader API ---- */

void json_reader_init(json_reader *r, const char *buf, size_t len)
{
    r->buf = buf;
    r->len = len;
    r->pos = 0;
    r->depth = 0;
    r->err = NULL;
}

enum json_kind json_peek(json_reader *r)
{
    if (r->err)
        return JSON_NONE;
    switch (next_byte(r)) {
    case '{': return JSON_OBJECT;
    case '[': return JSON_ARRAY;
    case '"': return JSON_STRING;
    case 't': return JSON_TRUE;
    case 'f': return JSON_FALSE;
    case 'n': return JSON_NULL;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return JSON_NUMBER;
    default:
        return JSON_NONE;
    }
}

bool json_object_begin(json_reader *r)
{
    if (r->err)
        return false;
    int c = next_byte(r);
    if (c != '{')
        return fail(r, c < 0 ? "unexpected end of input" : "expected object");
    return open_container(r);
}

/* Whether this is the first member/element is read from the byte just before pos: every reader
 * call consumes only leading whitespace, so right after '{' or '[' that byte is the bracket,
 * while after a value it is the value's last byte, which is never '{' or '['. */
/* The step object and array iteration share: at the container's closing byte, consumes it and
 * returns false; otherwise consumes the ',' that must come before any member but the first and
 * leaves the next member's first byte (or -1 at the end of input) in *next. */
static bool container_step(json_reader *r, char open, char close, const char *expected_sep, int *next)
{
    if (r->err)
        return false;
    bool first = r->pos > 0 && r->buf[r->pos - 1] == open;
    int c = next_byte(r);
    if (c == close) {
        r->pos++;
        r->depth--;
        return false;
    }
    if (!first) {
        if (c != ',')
            return fail(r, c < 0 ? "unexpected end of input" : expected_sep);
        r->pos++;
        c = next_byte(r);
    }
    *next = c;
    return true;
}

bool json_object_next(json_reader *r, json_span *key_raw)
{
    int c;
    if (!container_step(r, '{', '}', "expected ',' or '}'", &c))
        return false;
    if (c != '"')
        return fail(r, c < 0 ? "unexpected end of input" : "expected string key");
    if (!scan_string(r, key_raw))
        return false;
    c = next_byte(r);
    if (c != ':')
        return fail(r, c < 0 ? "unexpected end of input" : "expected ':'");
    r->pos++;
    return true;
}

bool json_array_begin(json_reader *r)
{
    if (r->err)
        return false;
    int c = next_byte(r);
    if (c != '[')
        return fail(r, c < 0 ? "unexpected end of input" : "expected array");
    return open_container(r);
}

bool json_array_next(json_reader *r)
{
    int c;
    if (!container_step(r, '[', ']', "expected ',' or ']'", &c))
        return false;
    if (c < 0)
        return fail(r, "unexpected end of input");
    if (c == ']')   /* only reachable after a ',': the first ']' closed the array above */
        return fail(r, "expected value");
    return true;
}

bool json_read_string(json_reader *r, json_span *raw)
{
    if (r->err)
        return false;
    int c = next_byte(r);
    if (c != '"')
        return fail(r, c < 0 ? "unexpected end of input" : "expected string");
    return scan_string(r, raw);
}

bool json_read_u64(json_reader *r, uint64_t *v)
{
    if (r->err)
        return false;
    int c = next_byte(r);
    if (c < 0)
        return fail(r, "unexpected end of input");
    if (c == '-')
        return fail(r, "expected a non-negative integer");
    if (!is_digit((unsigned char)c))
        return fail(r, "expected integer");
    const char *b = r->buf;
    size_t p = r->pos, n = r->len;
    uint64_t acc = 0;
    if (b[p] == '0') {
        p++;
        if (p < n && is_digit((unsigned char)b[p]))
            return fail(r, "invalid number: leading zero");
    } else {
        while (p < n && is_digit((unsigned char)b[p])) {
            unsigned d = (unsigned)(b[p] - '0');
            if (acc > (UINT64_MAX - d) / 10)
                return fail(r, "integer out of range");
            acc = acc * 10 + d;
            p++;
        }
    }
    if (p < n && (b[p] == '.' || b[p] == 'e' || b[p] == 'E'))
        return fail(r, "expected integer, found a fraction or exponent");
    r->pos = p;
    *v = acc;
    return true;
}

bool json_read_bool(json_reader *r, bool *v)
{
    if (r->err)
        return false;
    int c = next_byte(r);
    if (c == 't' && scan_literal(r, "true", 4)) {
        *v = true;
        return true;
    }
    if (c == 'f' && scan_literal(r, "false", 5)) {
        *v = false;
        return true;
    }
    return fail(r, "expected boolean");
}

bool json_read_null(json_reader *r)
{
    if (r->err)
        return false;
    if (next_byte(r) == 'n' && scan_literal(r, "null", 4))
        return true;
    return fail(r, "expected null");
}

/* Iterative so a hostile document costs no stack; `in_object` keeps one bit per open level. */
bool json_skip(json_reader *r, json_span *raw)
{
    if (r->err)
        return false;
    const unsigned base = r->depth;
    uint64_t in_object = 0;
    int c = next_byte(r);
    size_t start = r->pos;
    for (;;) {
        /* at the start of a value */
        if (c < 0)
            return fail(r, "unexpected end of input");
        bool done_value = true;
        switch (c) {
        case '{':
        case '[':
            if (!open_container(r))
                return false;
            in_object = (in_object << 1) | (c == '{');
            c = next_byte(r);
            if (c == (in_object & 1 ? '}' : ']')) {
                r->pos++;
                r->depth--;
                in_object >>= 1;
            } else {
                done_value = false;
                if (in_object & 1) {
                    if (c != '"')
                        return fail(r, c < 0 ? "unexpected end of input" : "expected string key");
                    if (!scan_string(r, NULL))
                        return false;
                    if (next_byte(r) != ':')
                        return fail(r, "expected ':'");
                    r->pos++;
                    c = next_byte(r);
                }
            }
            break;
        case '"':
            if (!scan_string(r, NULL))
                return false;
            break;
        case 't':
            if (!scan_literal(r, "true", 4))
                return false;
            break;
        case 'f':
            if (!scan_literal(r, "false", 5))
                return false;
            break;
        case 'n':
            if (!scan_literal(r, "null", 4))
                return false;
            break;
        default:
            if (c != '-' && !is_digit((unsigned char)c))
                return fail(r, "expected value");
            if (!scan_number(r))
                return false;
            break;
        }
        if (!done_value)
            continue;
        /* after a complete value: close finished containers, or move to the next member */
        for (;;) {
            if (r->depth == base) {
                if (raw) {
                    raw->p = r->buf + start;
                    raw->n = r->pos - start;
                }
                return true;
            }
            c = next_byte(r);
            int close = in_object & 1 ? '}' : ']';
            if (c == close) {
                r->pos++;
                r->depth--;
                in_object >>= 1;
                continue;
            }
            if (c != ',')
                return fail(r, c < 0 ? "unexpected end of input"
                                     : (in_object & 1 ? "expected ',' or '}'" : "expected ',' or ']'"));
            r->pos++;
            c = next_byte(r);
            if (in_object & 1) {
                if (c != '"')
                    return fail(r, c < 0 ? "unexpected end of input" : "expected string key");
                if (!scan_string(r, NULL))
                    return false;
                if (next_byte(r) != ':')
                    return fail(r, "expected ':'");
                r->pos++;
                c = next_byte(r);
            }
            break;
        }
    }
}

bool json_end(json_reader *r)
{
    if (r->err)
        return false;
    skip_ws(r);
    if (r->pos != r->len)
        return fail(r, "trailing characters");
    return true;
}

bool json_validate(const char *buf, size_t len, const char **err)
{
    json_reader r;
    json_reader_init(&r, buf, len);
    bool ok = json_skip(&r, NULL) && json_end(&r);
    if (err)
        *err = r.err;
    return ok;
}

/* ---- helpers on validated raw string content ---- */

bool json_raw_has_escape(json_span raw)
{
    return raw.n && memchr(raw.p, '\\', raw.n) != NULL;
}

/* Decodes the escape at p (p[0] == '\\', already validated) into out; returns bytes written and
 * advances *p past the escape. */
static size_t decode_escape(const char **pp, char out[4])
{
    const unsigned char *p = (const unsigned char *)*pp;
    unsigned long u;
    switch (p[1]) {
    case 'b': out[0] = '\b'; *pp += 2; return 1;
    case 'f': out[0] = '\f'; *pp += 2; return 1;
    case 'n': out[0] = '\n'; *pp += 2; return 1;
    case 'r': out[0] = '\r'; *pp += 2; return 1;
    case 't': out[0] = '\t'; *pp += 2; return 1;
    case 'u': break;
    default: out[0] = (char)p[1]; *pp += 2; return 1;   /* " \ / */
    }
    u = (unsigned long)hex4(p + 2);
    *pp += 6;
    if (u >= 0xD800 && u <= 0xDBFF) {
        unsigned long lo = (unsigned long)hex4(p + 8);
        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        *pp += 6;
    }
    if (u < 0x80) {
        out[0] = (char)u;
        return 1;
    }
    if (u < 0x800) {
        out[0] = (char)(0xC0 | (u >> 6));
        out[1] = (char)(0x80 | (u & 0x3F));
        return 2;
    }
    if (u < 0x10000) {
        out[0] = (char)(0xE0 | (u >> 12));
        out[1] = (char)(0x80 | ((u >> 6) & 0x3F));
        out[2] = (char)(0x80 | (u & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (u >> 18));
    out[1] = (char)(0x80 | ((u >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((u >> 6) & 0x3F));
    out[3] = (char)(0x80 | (u & 0x3F));
    return 4;
}

size_t json_unescape(json_span raw, char *out)
{
    const char *p = raw.p, *end = raw.p + raw.n;
    size_t n = 0;
    while (p < end) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        size_t run = (size_t)((bs ? bs : end) - p);
        memmove(out + n, p, run);   /* out may alias raw when decoding in place */
        n += run;
        p += run;
        if (!bs)
            break;
        char tmp[4];
        size_t k = decode_escape(&p, tmp);
        memcpy(out + n, tmp, k);
        n += k;
    }
    return n;
}

bool json_raw_equals(json_span raw, const char *s)
{
    const char *p = raw.p, *end = raw.p + raw.n;
    size_t slen = strlen(s), i = 0;
    while (p < end) {
        if (*p != '\\') {
            if (i >= slen || s[i] != *p)
                return false;
            i++;
            p++;
            continue;
        }
        char tmp[4];
        size_t k = decode_escape(&p, tmp);
        if (slen - i < k || memcmp(s + i, tmp, k) != 0)
            return false;
        i += k;
    }
    return i == slen;
}

/* ---- writer ---- */

#define JW_FIRST_ALLOC 256

void jw_init(json_writer *w, size_t reserve, size_t max)
{
    w->p = NULL;
    w->len = reserve;
    w->cap = 0;
    w->max = max;
    w->failed = reserve > max;
}

void jw_init_fixed(json_writer *w, char *buf, size_t cap)
{
    w->p = buf;
    w->len = 0;
    w->cap = cap;
    w->max = cap;   /* growth stops at max before any realloc, so buf is never reallocated */
    w->failed = false;
}

void jw_free(json_writer *w)
{
    free(w->p);
    w->p = NULL;
    w->len = 0;
    w->cap = 0;
    w->failed = false;
}

void jw_clear(json_writer *w)
{
    w->len = 0;
    w->failed = false;
}

/* Makes room for n more bytes; false (and failed set) when over max or out of memory. */
static bool jw_room(json_writer *w, size_t n)
{
    if (w->failed)
        return false;
    if (n > w->max - w->len) {
        w->failed = true;
        return false;
    }
    size_t need = w->len + n;
    if (need <= w->cap)
        return true;
    size_t cap = w->cap ? w->cap : JW_FIRST_ALLOC;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
    if (cap > w->max)
        cap = w->max;
    char *np = realloc(w->p, cap);
    if (!np) {
        w->failed = true;
        return false;
    }
    w->p = np;
    w->cap = cap;
    return true;
}

void jw_raw(json_writer *w, const char *s, size_t n)
{
    if (!jw_room(w, n))
        return;
    if (n)
        memcpy(w->p + w->len, s, n);
    w->len += n;
}

void jw_lit(json_writer *w, const char *s)
{
    jw_raw(w, s, strlen(s));
}

void jw_string(json_writer *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    jw_raw(w, "\"", 1);
    size_t i = 0;
    while (i < n) {
        size_t run = i + plain_run((const unsigned char *)s + i, n - i);
        while (run < n && (unsigned char)s[run] >= 0x20 && s[run] != '"' && s[run] != '\\')
            run++;
        jw_raw(w, s + i, run - i);
        if (run == n)
            break;
        unsigned char c = (unsigned char)s[run];
        char esc[6] = { '\\', 0, 0, 0, 0, 0 };
        size_t k = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            k = 6;
            break;
        }
        jw_raw(w, esc, k);
        i = run + 1;
    }
    jw_raw(w, "\"", 1);
}

void jw_u64(json_writer *w, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    jw_raw(w, tmp + i, sizeof tmp - i);
}

void jw_bool(json_writer *w, bool v)
{
    if (v)
        jw_raw(w, "true", 4);
    else
        jw_raw(w, "false", 5);
}
