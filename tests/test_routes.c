/* Unit tests for routes.c: exact-path matching with the query ignored, the fallback and 404,
 * HEAD answering headers only with the full Content-Length, 405 for GET-only routes, and the
 * HTTPS redirect (Location built from Host and target, the default host, and refusal of control
 * bytes that could inject headers). */
#include "routes.h"
#include "test.h"

#include <stdlib.h>

static int calls;

static void hello(void *ctx, const http_request *req, route_reply *out)
{
    (void)req;
    calls++;
    out->status = 200;
    out->content_type = "text/plain";
    out->headers = "X-Route: hello\r\n";
    out->body = ctx;
    out->body_len = strlen(ctx);
}

/* Answers one request head through t; returns the response as a malloc'd string. */
static char *answer(const route_table *t, const char *head)
{
    http_request req;
    long n = http_parse_request(head, strlen(head), HTTP_MAX_HEAD, &req);
    frame *f;
    char *s;
    if (n <= 0) {
        printf("  unparsable test head\n");
        return NULL;
    }
    f = routes_answer(t, &req);
    if (!f)
        return NULL;
    s = malloc(f->len + 1);
    memcpy(s, f->data, f->len);
    s[f->len] = '\0';
    frame_unref(f);
    return s;
}

static void test_matching_and_methods(void)
{
    route_table t;
    char body[] = "hello\n";
    const route r = { "/hi", hello, body, false }, g = { "/get", hello, body, true };
    char *s;
    routes_init(&t);
    REQUIRE(routes_add(&t, &r) && routes_add(&t, &g));
    s = answer(&t, "GET /hi?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    REQUIRE(s);
    CHECK_EQ_STR(s, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Route: hello\r\n"
                    "Content-Length: 6\r\nConnection: close\r\n\r\nhello\n");
    free(s);
    s = answer(&t, "HEAD /hi HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK_EQ_STR(s, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Route: hello\r\n"
                    "Content-Length: 6\r\nConnection: close\r\n\r\n");
    free(s);
    s = answer(&t, "POST /hi HTTP/1.1\r\nHost: a\r\n\r\n");     /* any method on a plain route */
    CHECK(strncmp(s, "HTTP/1.1 200 ", 13) == 0);
    free(s);
    calls = 0;
    s = answer(&t, "POST /get HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(strncmp(s, "HTTP/1.1 405 ", 13) == 0 && strstr(s, "Allow: GET, HEAD\r\n") != NULL);
    CHECK_EQ_INT(calls, 0);
    free(s);
    s = answer(&t, "HEAD /get HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(strncmp(s, "HTTP/1.1 200 ", 13) == 0);
    free(s);
    s = answer(&t, "GET /hi/ HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK_EQ_STR(s, "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    "Content-Length: 10\r\nConnection: close\r\n\r\nnot found\n");
    free(s);
    s = answer(&t, "HEAD /nope HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(strncmp(s, "HTTP/1.1 404 ", 13) == 0 && strstr(s, "\r\n\r\n")[4] == '\0');
    free(s);
    /* a full table says so */
    for (size_t i = t.n; i < ROUTES_MAX; i++)
        CHECK(routes_add(&t, &r));
    CHECK(!routes_add(&t, &r));
}

static void test_redirect(void)
{
    static route_redirect rd;
    route_table t;
    const route r = { "", route_redirect_https, &rd, false };
    char *s;
    routes_init(&t);
    routes_set_fallback(&t, &r);
    s = answer(&t, "GET /stats.json?full=1 HTTP/1.1\r\nHost: relay.example.org\r\n\r\n");
    CHECK_EQ_STR(s, "HTTP/1.1 301 Moved Permanently\r\n"
                    "Location: https://relay.example.org/stats.json?full=1\r\n"
                    "Content-Length: 0\r\nConnection: close\r\n\r\n");
    free(s);
    s = answer(&t, "POST / HTTP/1.0\r\n\r\n");
    CHECK(strstr(s, "Location: https://relay.dig.net/\r\n") != NULL);
    free(s);
    s = answer(&t, "GET / HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n");
    CHECK(strstr(s, "Location: https://[2001:db8::1]:8080/\r\n") != NULL);
    free(s);
    /* control bytes (the parser refuses CR/LF itself; tab and DEL get here) and empty hosts */
    static const char *const refused[] = {
        "GET / HTTP/1.1\r\nHost: a\tb\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n",
        "GET / HTTP/1.1\r\nHost:\r\n\r\n",
        "GET /\x7fx HTTP/1.1\r\nHost: a\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        http_request req;
        long n = http_parse_request(refused[i], strlen(refused[i]), HTTP_MAX_HEAD, &req);
        if (n <= 0)
            continue;   /* refused by the parser already: also a 400 on the wire */
        s = answer(&t, refused[i]);
        CHECK(s && strncmp(s, "HTTP/1.1 400 ", 13) == 0 && strstr(s, "Location") == NULL);
        free(s);
    }
}

int main(void)
{
    RUN(test_matching_and_methods);
    RUN(test_redirect);
    return test_finish();
}
