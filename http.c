/* HTTP/1.1 request-head parser and response writer (see http.h).
 *
 * The parser is deliberately strict: every line ends in CRLF, the request line is exactly
 * "METHOD SP target SP HTTP/1.x", header names are tokens followed directly by ':', and control
 * characters, bare CR or LF, and obs-fold continuation lines are all refused. The relay only ever
 * needs a WebSocket upgrade or a tiny GET, so anything unusual is more likely an attack or a
 * confused client than something worth interpreting. */
#include "http.h"

#include <string.h>

/* RFC 9110 tchar: the characters allowed in methods and header names. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Bytes that may never appear anywhere in a head (CR and LF are checked as pairs separately). */
static bool is_forbidden_control(unsigned char c)
{
    return (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f;
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static bool equal_nocase(const char *a, size_t a_len, const char *b, size_t b_len)
{
    if (a_len != b_len)
        return false;
    for (size_t i = 0; i < a_len; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

/* Finds the end of the head ("\r\n\r\n") within the first `limit` bytes while rejecting bytes
 * that make the head malformed wherever they sit, so garbage is refused before the whole head
 * arrives. Returns the head length, 0 when not found yet, or -1 when malformed. */
static long find_head_end(const unsigned char *b, size_t limit)
{
    for (size_t i = 0; i < limit; i++) {
        unsigned char c = b[i];
        if (is_forbidden_control(c))
            return -1;
        if (i > 0 && b[i - 1] == '\r' && c != '\n')
            return -1;                                 /* bare CR */
        if (c == '\n') {
            if (i == 0 || b[i - 1] != '\r')
                return -1;                             /* bare LF */
            if (i >= 3 && b[i - 2] == '\n')
                return (long)(i + 1);                  /* b[i-3..i] is CR LF CR LF */
        }
    }
    return 0;
}

/* Parses "METHOD SP target SP HTTP/1.x" (without its CRLF). */
static bool parse_request_line(const char *line, size_t len, http_request *req)
{
    size_t i = 0;

    while (i < len && is_tchar((unsigned char)line[i]))
        i++;
    if (i == 0 || i >= len || line[i] != ' ')
        return false;
    req->method = line;
    req->method_len = i;

    size_t target_start = ++i;
    while (i < len && (unsigned char)line[i] > 0x20 && (unsigned char)line[i] < 0x7f)
        i++;
    if (i == target_start || i >= len || line[i] != ' ')
        return false;
    req->target = line + target_start;
    req->target_len = i - target_start;
    const char *query = memchr(req->target, '?', req->target_len);
    req->path = req->target;
    req->path_len = query ? (size_t)(query - req->target) : req->target_len;

    i++;
    if (len - i != 8 || memcmp(line + i, "HTTP/1.", 7) != 0 || line[i + 7] < '0' || line[i + 7] > '9')
        return false;
    req->minor_version = line[i + 7] - '0';
    return true;
}

/* Parses "name:" OWS value OWS (without its CRLF) into h. */
static bool parse_header_line(const char *line, size_t len, http_header *h)
{
    size_t i = 0;

    while (i < len && is_tchar((unsigned char)line[i]))
        i++;
    /* A leading space or tab (obs-fold), a space before the colon, or no colon at all ends here. */
    if (i == 0 || i >= len || line[i] != ':')
        return false;
    h->name = line;
    h->name_len = i;

    size_t start = i + 1, end = len;
    while (start < end && (line[start] == ' ' || line[start] == '\t'))
        start++;
    while (end > start && (line[end - 1] == ' ' || line[end - 1] == '\t'))
        end--;
    h->value = line + start;
    h->value_len = end - start;
    return true;
}

/* The header lines from `line` to the blank line that ends the head (every LF there is
 * preceded by CR). Returns 0, or HTTP_BAD / HTTP_TOO_LARGE. */
static long parse_headers(const char *line, const char *head_end, http_header *headers, size_t *n)
{
    for (;; line++) {
        const char *eol = memchr(line, '\n', (size_t)(head_end - line));
        size_t line_len = (size_t)(eol - 1 - line);
        if (line_len == 0)
            return 0;                                  /* the blank line ending the head */
        if (*n == HTTP_MAX_HEADERS)
            return HTTP_TOO_LARGE;
        if (!parse_header_line(line, line_len, &headers[*n]))
            return HTTP_BAD;
        (*n)++;
        line = eol;
    }
}

/* The length of the complete head at the start of buf, or HTTP_NEED_MORE / HTTP_BAD /
 * HTTP_TOO_LARGE. */
static long head_length(const char *buf, size_t len, size_t max_head)
{
    size_t limit = len < max_head ? len : max_head;
    long head_len = find_head_end((const unsigned char *)buf, limit);
    if (head_len < 0)
        return HTTP_BAD;
    if (head_len == 0)
        return len >= max_head ? HTTP_TOO_LARGE : HTTP_NEED_MORE;
    return head_len;
}

long http_parse_request(const char *buf, size_t len, size_t max_head, http_request *req)
{
    long head_len = head_length(buf, len, max_head);
    if (head_len <= 0)
        return head_len;

    memset(req, 0, sizeof *req);
    /* Every LF in the head is preceded by CR (find_head_end checked), so lines split on CRLF. */
    const char *line = buf, *head_end = buf + head_len;
    const char *eol = memchr(line, '\n', (size_t)(head_end - line));
    if (!parse_request_line(line, (size_t)(eol - 1 - line), req))
        return HTTP_BAD;

    long rc = parse_headers(eol + 1, head_end, req->headers, &req->n_headers);
    return rc < 0 ? rc : head_len;
}

long http_parse_response(const char *buf, size_t len, size_t max_head, http_status_head *resp)
{
    long head_len = head_length(buf, len, max_head);
    if (head_len <= 0)
        return head_len;
    memset(resp, 0, sizeof *resp);
    const char *head_end = buf + head_len;
    const char *eol = memchr(buf, '\n', (size_t)head_len);
    size_t n = (size_t)(eol - 1 - buf);
    /* "HTTP/1.x NNN" then a reason phrase (which may be empty). */
    if (n < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[7] < '0' || buf[7] > '9' || buf[8] != ' ' ||
        (n > 12 && buf[12] != ' '))
        return HTTP_BAD;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return HTTP_BAD;
        resp->status = resp->status * 10 + (buf[i] - '0');
    }
    long rc = parse_headers(eol + 1, head_end, resp->headers, &resp->n_headers);
    return rc < 0 ? rc : head_len;
}

const http_header *http_find_in(const http_header *headers, size_t n, const char *name)
{
    size_t name_len = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (equal_nocase(headers[i].name, headers[i].name_len, name, name_len))
            return &headers[i];
    return NULL;
}

const http_header *http_find_header(const http_request *req, const char *name)
{
    return http_find_in(req->headers, req->n_headers, name);
}

bool http_header_has_token(const http_header *h, const char *token)
{
    size_t token_len = strlen(token);
    const char *p = h->value, *end = h->value + h->value_len;

    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma ? comma : end;
        const char *s = p, *e = item_end;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (equal_nocase(s, (size_t)(e - s), token, token_len))
            return true;
        p = comma ? comma + 1 : end;
    }
    return false;
}

bool http_method_is(const http_request *req, const char *method)
{
    size_t n = strlen(method);
    return req->method_len == n && memcmp(req->method, method, n) == 0;
}

bool http_path_is(const http_request *req, const char *path)
{
    size_t n = strlen(path);
    return req->path_len == n && memcmp(req->path, path, n) == 0;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 301: return "Moved Permanently";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default:  return "";  /* the reason phrase may be empty (RFC 9112 §4) */
    }
}

/* Appends into out[*pos..cap); on overflow marks *pos past cap so the caller reports failure. */
static void put(char *out, size_t cap, size_t *pos, const char *s, size_t n)
{
    if (*pos > cap || n > cap - *pos) {
        *pos = cap + 1;
        return;
    }
    memcpy(out + *pos, s, n);
    *pos += n;
}

static void put_str(char *out, size_t cap, size_t *pos, const char *s)
{
    put(out, cap, pos, s, strlen(s));
}

static void put_uint(char *out, size_t cap, size_t *pos, size_t v)
{
    char digits[24];
    size_t n = sizeof digits;
    do {
        digits[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    put(out, cap, pos, digits + n, sizeof digits - n);
}

size_t http_response_head(char *out, size_t cap, int status, const char *content_type,
                          const char *extra_headers, size_t body_len)
{
    size_t pos = 0;

    if (status < 100 || status > 999)
        return 0;
    put_str(out, cap, &pos, "HTTP/1.1 ");
    put_uint(out, cap, &pos, (size_t)status);
    put_str(out, cap, &pos, " ");
    put_str(out, cap, &pos, reason_phrase(status));
    put_str(out, cap, &pos, "\r\n");
    if (content_type) {
        put_str(out, cap, &pos, "Content-Type: ");
        put_str(out, cap, &pos, content_type);
        put_str(out, cap, &pos, "\r\n");
    }
    if (extra_headers)
        put_str(out, cap, &pos, extra_headers);
    put_str(out, cap, &pos, "Content-Length: ");
    put_uint(out, cap, &pos, body_len);
    put_str(out, cap, &pos, "\r\nConnection: close\r\n\r\n");
    return pos > cap ? 0 : pos;
}

size_t http_response_ex(char *out, size_t cap, int status, const char *content_type,
                        const char *extra_headers, const char *body, size_t body_len)
{
    size_t pos = http_response_head(out, cap, status, content_type, extra_headers, body_len);
    if (pos == 0)
        return 0;
    if (body_len)
        put(out, cap, &pos, body, body_len);
    return pos > cap ? 0 : pos;
}

size_t http_response(char *out, size_t cap, int status, const char *content_type,
                     const char *body, size_t body_len)
{
    return http_response_ex(out, cap, status, content_type, NULL, body, body_len);
}
