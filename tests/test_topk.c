/* Unit tests for topk.c: the k best of a stream come out in order whatever order they arrive
 * in, with fewer items than k, k of 0 and 1, and ties broken by the caller's order. */
#include "topk.h"
#include "test.h"
#include "tests/harness.h"

static const uint32_t *values;

/* Smaller value first, then smaller index. */
static bool smaller(const void *ctx, uint32_t a, uint32_t b)
{
    (void)ctx;
    return values[a] != values[b] ? values[a] < values[b] : a < b;
}

static void test_best_k_in_order(void)
{
    enum { N = 5000, K = 100 };
    static uint32_t v[N], room[K];
    uint64_t seed = 12345;
    values = v;
    for (uint32_t i = 0; i < N; i++)
        v[i] = (uint32_t)h_below(&seed, 1000);   /* many ties */
    topk t;
    topk_init(&t, room, K, smaller, NULL);
    for (uint32_t i = 0; i < N; i++)
        topk_offer(&t, i);
    REQUIRE(topk_finish(&t) == K);
    /* the result is sorted, and nothing left out ranks before the last one kept */
    for (size_t i = 1; i < K; i++)
        CHECK(smaller(NULL, room[i - 1], room[i]));
    size_t better = 0;
    for (uint32_t i = 0; i < N; i++)
        better += smaller(NULL, i, room[K - 1]);
    CHECK_EQ_INT(better, K - 1);
}

static void test_small_cases(void)
{
    static const uint32_t v[] = { 5, 3, 9, 1 };
    uint32_t room[8];
    topk t;
    values = v;
    topk_init(&t, room, 8, smaller, NULL);            /* fewer items than k */
    for (uint32_t i = 0; i < 4; i++)
        topk_offer(&t, i);
    REQUIRE(topk_finish(&t) == 4);
    CHECK(room[0] == 3 && room[1] == 1 && room[2] == 0 && room[3] == 2);
    topk_init(&t, room, 1, smaller, NULL);            /* k of 1: the minimum */
    for (uint32_t i = 0; i < 4; i++)
        topk_offer(&t, i);
    CHECK(topk_finish(&t) == 1 && room[0] == 3);
    topk_init(&t, room, 0, smaller, NULL);            /* k of 0: nothing */
    topk_offer(&t, 0);
    CHECK_EQ_INT(topk_finish(&t), 0);
}

int main(void)
{
    RUN(test_best_k_in_order);
    RUN(test_small_cases);
    return test_finish();
}
