/* Unit tests for bodycache.c: a body is served until it is max_age_ms old, never after, never
 * from a clock that went back, and a build that failed keeps nothing. */
#include "bodycache.h"
#include "test.h"

static void test_age_and_rebuild(void)
{
    body_cache c;
    json_span body, again;
    body_cache_init(&c, 1024);
    CHECK(!body_cache_get(&c, 5000, 1000, &body));            /* nothing built yet */
    jw_lit(body_cache_begin(&c), "{\"n\":1}");
    REQUIRE(body_cache_done(&c, 5000, &body));
    CHECK_EQ_MEM(body.p, body.n, "{\"n\":1}", 7);
    CHECK(body_cache_get(&c, 5999, 1000, &again));
    CHECK_EQ_MEM(again.p, again.n, "{\"n\":1}", 7);
    CHECK(!body_cache_get(&c, 6000, 1000, &again));           /* a second old: stale */
    CHECK(!body_cache_get(&c, 4999, 1000, &again));           /* a clock gone back */
    jw_lit(body_cache_begin(&c), "{\"n\":2}");
    REQUIRE(body_cache_done(&c, 7000, &again));
    CHECK(body_cache_get(&c, 7500, 1000, &body));
    CHECK_EQ_MEM(body.p, body.n, "{\"n\":2}", 7);
    body_cache_free(&c);
}

static void test_failed_build_keeps_nothing(void)
{
    body_cache c;
    json_span body;
    body_cache_init(&c, 8);
    jw_lit(body_cache_begin(&c), "{}");
    REQUIRE(body_cache_done(&c, 100, &body));
    jw_lit(body_cache_begin(&c), "{\"too\":\"long\"}");     /* past the 8-byte bound */
    CHECK(!body_cache_done(&c, 200, &body));
    CHECK(!body_cache_get(&c, 200, 1000, &body));           /* nor the older body */
    jw_lit(body_cache_begin(&c), "[]");                     /* the writer works again */
    CHECK(body_cache_done(&c, 300, &body));
    CHECK_EQ_MEM(body.p, body.n, "[]", 2);
    body_cache_free(&c);
}

int main(void)
{
    RUN(test_age_and_rebuild);
    RUN(test_failed_build_keeps_nothing);
    return test_finish();
}
