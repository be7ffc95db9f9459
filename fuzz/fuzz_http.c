/* libFuzzer harness for the HTTP request-head parser and the upgrade check behind it, and for
 * the response-head parser the probe reads answers with (same span and prefix rules).
 *
 * A parsed head must lie inside the input, every shorter prefix of it must ask for more, every
 * header must be found again by name, and ws_upgrade on it must either refuse or write exactly
 * the 101 response. Responses are built with the input as body into a small buffer to check
 * the bounds of the writer. */
#include "http.h"
#include "ws.h"

#include <stdlib.h>
#include <string.h>

static void check_span(const char *p, size_t n, const char *buf, size_t len)
{
    if (n && (p < buf || p + n > buf + len))
        abort();
}

static void check_parsed(const char *buf, size_t head_len, const http_request *req)
{
    check_span(req->method, req->method_len, buf, head_len);
    check_span(req->target, req->target_len, buf, head_len);
    check_span(req->path, req->path_len, buf, head_len);
    if (req->method_len == 0 || req->target_len == 0 || req->path_len > req->target_len ||
        req->n_headers > HTTP_MAX_HEADERS || req->minor_version < 0 || req->minor_version > 9)
        abort();
    for (size_t i = 0; i < req->n_headers; i++) {
        const http_header *h = &req->headers[i];
        check_span(h->name, h->name_len, buf, head_len);
        check_span(h->value, h->value_len, buf, head_len);
        if (h->name_len == 0 || memchr(h->name, ':', h->name_len) || memchr(h->value, '\n', h->value_len))
            abort();
        char name[HTTP_MAX_HEAD + 1];
        memcpy(name, h->name, h->name_len);
        name[h->name_len] = '\0';
        const http_header *found = http_find_header(req, name);
        if (!found || found > h)
            abort();
        (void)http_header_has_token(h, "upgrade");
    }

    char out[WS_UPGRADE_RESPONSE_LEN];
    size_t out_len = 12345;
    int up = ws_upgrade(req, out, sizeof out, &out_len);
    if (up == WS_UPGRADE_OK ? out_len != WS_UPGRADE_RESPONSE_LEN || memcmp(out, "HTTP/1.1 101 ", 13) != 0
                            : out_len != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    http_request req;
    long n = http_parse_request(buf, size, HTTP_MAX_HEAD, &req);

    if (n > 0) {
        if ((size_t)n > size || (size_t)n > HTTP_MAX_HEAD)
            abort();
        check_parsed(buf, (size_t)n, &req);
        http_request again;
        if (http_parse_request(buf, (size_t)n, HTTP_MAX_HEAD, &again) != n)
            abort();
        if (http_parse_request(buf, (size_t)n - 1, HTTP_MAX_HEAD, &again) != HTTP_NEED_MORE)
            abort();
    } else if (n != HTTP_NEED_MORE && n != HTTP_BAD && n != HTTP_TOO_LARGE) {
        abort();
    }

    http_status_head resp, resp_again;
    long r = http_parse_response(buf, size, HTTP_MAX_HEAD, &resp);
    if (r > 0) {
        if ((size_t)r > size || resp.status < 0 || resp.status > 999 ||
            resp.n_headers > HTTP_MAX_HEADERS ||
            http_parse_response(buf, (size_t)r - 1, HTTP_MAX_HEAD, &resp_again) != HTTP_NEED_MORE)
            abort();
        for (size_t i = 0; i < resp.n_headers; i++) {
            check_span(resp.headers[i].name, resp.headers[i].name_len, buf, (size_t)r);
            check_span(resp.headers[i].value, resp.headers[i].value_len, buf, (size_t)r);
        }
    } else if (r != HTTP_NEED_MORE && r != HTTP_BAD && r != HTTP_TOO_LARGE) {
        abort();
    }

    char out[256];
    size_t body_len = size > 64 ? 64 : size;
    size_t len = http_response(out, sizeof out, 200 + (size ? data[0] : 0), "text/plain", buf, body_len);
    if (len > sizeof out)
        abort();
    return 0;
}
