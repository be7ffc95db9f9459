/* Unit tests for http.c: request-head parsing (accepted and refused heads, limits, incremental
 * arrival), header lookup, token lists, and the exact bytes of responses. */
#include "http.h"
#include "test.h"

#include <stdlib.h>

static long parse(const char *head, http_request *req)
{
    return http_parse_request(head, strlen(head), HTTP_MAX_HEAD, req);
}

static bool span_is(const char *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

static void test_parses_upgrade_request(void)
{
    const char *head =
        "GET /relay?x=1 HTTP/1.1\r\n"
        "Host: relay.example:9450\r\n"
        "Connection: Upgrade\r\n"
        "Upgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key:   dGhlIHNhbXBsZSBub25jZQ==  \t\r\n"
        "X-Empty:\r\n"
        "\r\n";
    http_request req;
    CHECK_EQ_INT(parse(head, &req), (long)strlen(head));
    CHECK(span_is(req.method, req.method_len, "GET"));
    CHECK(span_is(req.target, req.target_len, "/relay?x=1"));
    CHECK(span_is(req.path, req.path_len, "/relay"));
    CHECK_EQ_INT(req.minor_version, 1);
    CHECK_EQ_INT(req.n_headers, 6);
    const http_header *key = http_find_header(&req, "sec-websocket-KEY");
    REQUIRE(key != NULL);
    CHECK(span_is(key->value, key->value_len, "dGhlIHNhbXBsZSBub25jZQ=="));
    const http_header *empty = http_find_header(&req, "x-empty");
    REQUIRE(empty != NULL);
    CHECK_EQ_INT(empty->value_len, 0);
    CHECK(http_find_header(&req, "Origin") == NULL);
    CHECK(http_find_header(&req, "Hos") == NULL);
    CHECK(http_method_is(&req, "GET"));
    CHECK(!http_method_is(&req, "get"));
    CHECK(http_path_is(&req, "/relay"));
    CHECK(!http_path_is(&req, "/relay?x=1"));
    CHECK(!http_path_is(&req, "/"));
}

static void test_head_length_excludes_body(void)
{
    const char *text = "POST /x HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc";
    http_request req;
    CHECK_EQ_INT(parse(text, &req), (long)strlen(text) - 3);
    CHECK_EQ_INT(req.minor_version, 0);
    CHECK(http_method_is(&req, "POST"));
}

static void test_need_more_at_every_prefix(void)
{
    const char *head = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n";
    size_t n = strlen(head);
    http_request req;
    for (size_t i = 0; i < n; i++)
        CHECK_EQ_INT(http_parse_request(head, i, HTTP_MAX_HEAD, &req), HTTP_NEED_MORE);
    CHECK_EQ_INT(http_parse_request(head, n, HTTP_MAX_HEAD, &req), (long)n);
}

static void test_rejects_malformed(void)
{
    static const char *const bad[] = {
        "GET / HTTP/1.1\nHost: a\n\n",                 /* bare LF */
        "GET / HTTP/1.1\r\nHost: a\n\r\n",             /* one bare LF */
        "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",        /* bare CR */
        "GET / HTTP/1.1\r\nHost: a\r\n  folded\r\n\r\n",   /* obs-fold */
        "GET / HTTP/1.1\r\nHost: a\r\n\tfolded\r\n\r\n",   /* obs-fold with a tab */
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",          /* space before the colon */
        "GET / HTTP/1.1\r\nBad Name: a\r\n\r\n",       /* space inside the name */
        "GET / HTTP/1.1\r\nNoColon\r\n\r\n",           /* missing colon */
        "GET / HTTP/1.1\r\n: empty-name\r\n\r\n",      /* empty name */
        "GET / HTTP/1.1\r\nHost: a\001b\r\n\r\n",       /* control character in a value */
        "GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n",       /* DEL */
        "GET / HTTP/1.1\r\nHo\xc3\xa9st: a\r\n\r\n",   /* non-token byte in a name */
        "GET /  HTTP/1.1\r\n\r\n",                     /* two spaces */
        "GET  / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1 \r\n\r\n",                     /* trailing space */
        "GET\t/ HTTP/1.1\r\n\r\n",                     /* tab as separator */
        "GET / HTTP/2.0\r\n\r\n",                      /* not HTTP/1.x */
        "GET / HTTP/1.10\r\n\r\n",
        "GET / HTTP/1.x\r\n\r\n",
        "GET / http/1.1\r\n\r\n",
        "GET /\r\n\r\n",                               /* HTTP/0.9 style */
        "GET HTTP/1.1\r\n\r\n",                        /* no target */
        " GET / HTTP/1.1\r\n\r\n",                     /* leading space */
        "\r\nGET / HTTP/1.1\r\n\r\n",                  /* leading blank line */
        "\r\n\r\n",
        "GE(T / HTTP/1.1\r\n\r\n",                     /* non-token method */
        "GET /\x80 HTTP/1.1\r\n\r\n",                  /* non-ASCII target */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        http_request req;
        long got = parse(bad[i], &req);
        if (got != HTTP_BAD)
            printf("  case %zu: got %ld\n", i, got);
        CHECK_EQ_INT(got, HTTP_BAD);
    }
}

static void test_rejects_garbage_before_head_completes(void)
{
    /* A TLS ClientHello on the plain port is refused at once, not after waiting for CRLFCRLF. */
    const char hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    http_request req;
    CHECK_EQ_INT(http_parse_request(hello, sizeof hello - 1, HTTP_MAX_HEAD, &req), HTTP_BAD);
    CHECK_EQ_INT(http_parse_request("GET / HTTP/1.1\n", 15, HTTP_MAX_HEAD, &req), HTTP_BAD);
}

static void test_accepts_obs_text_in_values(void)
{
    http_request req;
    const char *head = "GET / HTTP/1.1\r\nX-Name: caf\xc3\xa9\r\n\r\n";
    CHECK_EQ_INT(parse(head, &req), (long)strlen(head));
}

static void test_size_limits(void)
{
    http_request req;
    const char *head = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";   /* 27 bytes */
    size_t n = strlen(head);
    CHECK_EQ_INT(http_parse_request(head, n, n, &req), (long)n);          /* exactly the max */
    CHECK_EQ_INT(http_parse_request(head, n, n - 1, &req), HTTP_TOO_LARGE);
    CHECK_EQ_INT(http_parse_request(head, n - 1, n - 1, &req), HTTP_TOO_LARGE);
    CHECK_EQ_INT(http_parse_request(head, n - 2, n - 1, &req), HTTP_NEED_MORE);

    /* A long stream of valid header bytes with no end is refused once it reaches the max. */
    size_t big = HTTP_MAX_HEAD + 100;
    char *flood = malloc(big);
    REQUIRE(flood != NULL);
    memcpy(flood, "GET / HTTP/1.1\r\nX: ", 19);
    memset(flood + 19, 'a', big - 19);
    CHECK_EQ_INT(http_parse_request(flood, big, HTTP_MAX_HEAD, &req), HTTP_TOO_LARGE);
    CHECK_EQ_INT(http_parse_request(flood, HTTP_MAX_HEAD - 1, HTTP_MAX_HEAD, &req), HTTP_NEED_MORE);
    free(flood);
}

static void test_too_many_headers(void)
{
    char head[2048];
    size_t pos = 0;
    pos += (size_t)sprintf(head + pos, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < HTTP_MAX_HEADERS; i++)
        pos += (size_t)sprintf(head + pos, "X-%d: v\r\n", i);
    http_request req;
    memcpy(head + pos, "\r\n", 3);
    CHECK_EQ_INT(parse(head, &req), (long)(pos + 2));
    CHECK_EQ_INT(req.n_headers, HTTP_MAX_HEADERS);
    pos += (size_t)sprintf(head + pos, "X-last: v\r\n\r\n");
    CHECK_EQ_INT(parse(head, &req), HTTP_TOO_LARGE);
}

static void test_header_tokens(void)
{
    http_request req;
    const char *head =
        "GET / HTTP/1.1\r\n"
        "Connection: keep-alive,  UPGRADE \t, x\r\n"
        "Upgrade: websocketx\r\n"
        "Via: up grade\r\n"
        "\r\n";
    REQUIRE(parse(head, &req) > 0);
    const http_header *conn = http_find_header(&req, "connection");
    REQUIRE(conn != NULL);
    CHECK(http_header_has_token(conn, "upgrade"));
    CHECK(http_header_has_token(conn, "Keep-Alive"));
    CHECK(http_header_has_token(conn, "x"));
    CHECK(!http_header_has_token(conn, "keep"));
    CHECK(!http_header_has_token(conn, ""));
    CHECK(!http_header_has_token(http_find_header(&req, "Upgrade"), "websocket"));
    CHECK(!http_header_has_token(http_find_header(&req, "Via"), "upgrade"));
}

static void test_response_bytes(void)
{
    char out[512];
    size_t n = http_response(out, sizeof out, 200, "application/json", "{\"ok\":true}", 11);
    const char *want =
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 11\r\n"
        "Connection: close\r\n"
        "\r\n"
        "{\"ok\":true}";
    CHECK_EQ_MEM(out, n, want, strlen(want));

    n = http_response(out, sizeof out, 404, NULL, NULL, 0);
    want = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    CHECK_EQ_MEM(out, n, want, strlen(want));

    n = http_response_ex(out, sizeof out, 426, "text/plain", "Sec-WebSocket-Version: 13\r\n",
                         "upgrade required\n", 17);
    want = "HTTP/1.1 426 Upgrade Required\r\n"
           "Content-Type: text/plain\r\n"
           "Sec-WebSocket-Version: 13\r\n"
           "Content-Length: 17\r\n"
           "Connection: close\r\n\r\n"
           "upgrade required\n";
    CHECK_EQ_MEM(out, n, want, strlen(want));
}

static void test_reason_phrases(void)
{
    static const struct { int status; const char *line; } cases[] = {
        { 101, "HTTP/1.1 101 Switching Protocols\r\n" },
        { 400, "HTTP/1.1 400 Bad Request\r\n" },
        { 405, "HTTP/1.1 405 Method Not Allowed\r\n" },
        { 431, "HTTP/1.1 431 Request Header Fields Too Large\r\n" },
        { 503, "HTTP/1.1 503 Service Unavailable\r\n" },
        { 299, "HTTP/1.1 299 \r\n" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[256];
        size_t n = http_response(out, sizeof out, cases[i].status, NULL, NULL, 0);
        size_t l = strlen(cases[i].line);
        CHECK(n > l && memcmp(out, cases[i].line, l) == 0);
    }
}

static void test_response_does_not_overflow(void)
{
    char out[128];
    const char *want = "HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno";
    size_t exact = strlen(want);
    memset(out, 'Z', sizeof out);
    CHECK_EQ_INT(http_response(out, exact - 1, 400, NULL, "no", 2), 0);
    CHECK(out[exact - 1] == 'Z');
    CHECK_EQ_INT(http_response(out, exact, 400, NULL, "no", 2), exact);
    CHECK_EQ_INT(http_response(out, sizeof out, 42, NULL, NULL, 0), 0);
}

static void test_parses_response_heads(void)
{
    http_status_head r;
    static const char ok[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             "Sec-WebSocket-Accept:  abc \r\n\r\nframes";
    CHECK_EQ_INT(http_parse_response(ok, sizeof ok - 1, HTTP_MAX_HEAD, &r), (long)(sizeof ok - 1 - 6));
    CHECK_EQ_INT(r.status, 101);
    const http_header *h = http_find_in(r.headers, r.n_headers, "sec-websocket-accept");
    REQUIRE(h != NULL);
    CHECK_EQ_MEM(h->value, h->value_len, "abc", 3);
    CHECK_EQ_INT(http_parse_response(ok, 20, HTTP_MAX_HEAD, &r), HTTP_NEED_MORE);
    static const char empty_reason[] = "HTTP/1.0 200\r\n\r\n";
    CHECK_EQ_INT(http_parse_response(empty_reason, sizeof empty_reason - 1, HTTP_MAX_HEAD, &r), 16);
    CHECK_EQ_INT(r.status, 200);
    static const char *const bad[] = {"HTTP/1.1 20 OK\r\n\r\n", "HTTP/2 200 OK\r\n\r\n",
                                      "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nbad\r\n\r\n",
                                      "HTTP/1.1 200 OK\n\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(http_parse_response(bad[i], strlen(bad[i]), HTTP_MAX_HEAD, &r), HTTP_BAD);
}

int main(void)
{
    RUN(test_parses_response_heads);
    RUN(test_parses_upgrade_request);
    RUN(test_head_length_excludes_body);
    RUN(test_need_more_at_every_prefix);
    RUN(test_rejects_malformed);
    RUN(test_rejects_garbage_before_head_completes);
    RUN(test_accepts_obs_text_in_values);
    RUN(test_size_limits);
    RUN(test_too_many_headers);
    RUN(test_header_tokens);
    RUN(test_response_bytes);
    RUN(test_reason_phrases);
    RUN(test_response_does_not_overflow);
    return test_finish();
}
