/* HTTP/1.1 request-head parser and response formatting (every answer is one response with
 * Content-Length and Connection: close), and a response-head parser for the probe. Pure: bytes
 * in, parsed head or answer bytes out. */
#ifndef DIG_HTTP_H
#define DIG_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEADERS 32
#define HTTP_MAX_HEAD 8192

typedef struct {
    const char *name;  size_t name_len;
    const char *value; size_t value_len;   /* surrounding whitespace trimmed */
} http_header;

typedef struct {
    const char *method; size_t method_len;
    const char *target; size_t target_len;  /* request target as sent ("/health?x" etc.) */
    const char *path;   size_t path_len;    /* target up to '?' */
    int minor_version;                      /* HTTP/1.x */
    http_header headers[HTTP_MAX_HEADERS];
    size_t n_headers;
} http_request;

enum {
    HTTP_NEED_MORE = 0,     /* no complete head yet (and still within max) */
    HTTP_BAD = -1,          /* malformed: answer 400 and close */
    HTTP_TOO_LARGE = -2     /* head exceeds max or too many headers: answer 431 and close */
};

/* Parses the head at the start of buf. Returns its length in bytes (through the blank line) when
 * complete, or one of the values above. Names and values point into buf. */
long http_parse_request(const char *buf, size_t len, size_t max_head, http_request *req);

/* Case-insensitive header lookup; NULL when absent. */
const http_header *http_find_header(const http_request *req, const char *name);
const http_header *http_find_in(const http_header *headers, size_t n, const char *name);

/* A response head, as the probe reads the relay's 101 and /health answers: "HTTP/1.x NNN
 * reason" and header lines under the same rules as requests. Returns the head length or one of
 * the values above. */
typedef struct {
    int status;
    http_header headers[HTTP_MAX_HEADERS];
    size_t n_headers;
} http_status_head;
long http_parse_response(const char *buf, size_t len, size_t max_head, http_status_head *resp);
/* True when a comma-separated header value contains token (case-insensitive). */
bool http_header_has_token(const http_header *h, const char *token);
bool http_method_is(const http_request *req, const char *method);
bool http_path_is(const http_request *req, const char *path);

/* Formats a response head (status line, Content-Type when given, extra header lines, Content-Length
 * of body_len, Connection: close, blank line); returns its length, or 0 if it does not fit. */
size_t http_response_head(char *out, size_t cap, int status, const char *content_type,
                          const char *extra_headers, size_t body_len);
/* Formats a complete response with Content-Length and Connection: close into out; returns its
 * length, or 0 if it does not fit. */
size_t http_response(char *out, size_t cap, int status, const char *content_type,
                     const char *body, size_t body_len);
/* The same with extra header lines (each ending in "\r\n", e.g. "Sec-WebSocket-Version: 13\r\n"
 * for a 426, "Allow: GET\r\n" for a 405) placed before Content-Length; NULL for none. */
size_t http_response_ex(char *out, size_t cap, int status, const char *content_type,
                        const char *extra_headers, const char *body, size_t body_len);

#endif
