/* Unit tests for ratelimit.c: source keys, one-second windows, the bounded least-recently-seen
 * source table (checked against a plain model under churn), and the STUN limiter's per-IP and
 * global budgets. */
#include "ratelimit.h"
#include "tests/test.h"

#include <stdint.h>
#include <string.h>

static const uint64_t seed[2] = { 0x0123456789abcdefULL, 0xfedcba9876543210ULL };

static addr_t v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
    addr_t x;
    memset(&x, 0, sizeof x);
    x.family = 4;
    x.ip[0] = a, x.ip[1] = b, x.ip[2] = c, x.ip[3] = d;
    x.port = port;
    return x;
}

static addr_t mapped(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
    addr_t x;
    memset(&x, 0, sizeof x);
    x.family = 6;
    x.ip[10] = 0xff, x.ip[11] = 0xff;
    x.ip[12] = a, x.ip[13] = b, x.ip[14] = c, x.ip[15] = d;
    x.port = port;
    return x;
}

static addr_t v6(uint16_t first, uint16_t last, uint16_t port)
{
    addr_t x;
    memset(&x, 0, sizeof x);
    x.family = 6;
    x.ip[0] = 0x20, x.ip[1] = 0x01, x.ip[2] = 0x0d, x.ip[3] = 0xb8;
    x.ip[4] = (uint8_t)(first >> 8), x.ip[5] = (uint8_t)first;
    x.ip[14] = (uint8_t)(last >> 8), x.ip[15] = (uint8_t)last;
    x.port = port;
    return x;
}

static source_key key_of(const addr_t *a, enum source_prefix p)
{
    source_key k;
    source_key_make(&k, a, p);
    return k;
}

static bool same_key(source_key a, source_key b) { return memcmp(&a, &b, sizeof a) == 0; }

static void test_source_keys(void)
{
    addr_t a = v4(192, 0, 2, 7, 1000), a_other_port = v4(192, 0, 2, 7, 2000);
    addr_t am = mapped(192, 0, 2, 7, 3000), b = v4(192, 0, 2, 8, 1000);
    addr_t six = v6(1, 1, 1), six_same64 = v6(1, 2, 1), six_other64 = v6(2, 1, 1);
    source_key k;

    CHECK(same_key(key_of(&a, SOURCE_FULL_IP), key_of(&a_other_port, SOURCE_FULL_IP)));
    CHECK(same_key(key_of(&a, SOURCE_FULL_IP), key_of(&am, SOURCE_FULL_IP)));
    CHECK(same_key(key_of(&a, SOURCE_IPV6_64), key_of(&am, SOURCE_IPV6_64)));
    CHECK(!same_key(key_of(&a, SOURCE_FULL_IP), key_of(&b, SOURCE_FULL_IP)));
    /* IPv4 is never widened. */
    CHECK(!same_key(key_of(&a, SOURCE_IPV6_64), key_of(&b, SOURCE_IPV6_64)));

    CHECK(!same_key(key_of(&six, SOURCE_FULL_IP), key_of(&six_same64, SOURCE_FULL_IP)));
    CHECK(same_key(key_of(&six, SOURCE_IPV6_64), key_of(&six_same64, SOURCE_IPV6_64)));
    CHECK(!same_key(key_of(&six, SOURCE_IPV6_64), key_of(&six_other64, SOURCE_IPV6_64)));

    k = key_of(&am, SOURCE_FULL_IP);
    CHECK_EQ_INT(k.family, 4);
    CHECK_EQ_MEM(k.ip, 16, "\xc0\x00\x02\x07\0\0\0\0\0\0\0\0\0\0\0\0", 16);
    k = key_of(&six_same64, SOURCE_IPV6_64);
    CHECK_EQ_INT(k.family, 6);
    CHECK_EQ_MEM(k.ip + 8, 8, "\0\0\0\0\0\0\0\0", 8);
}

static void test_rate_window(void)
{
    rate_window w;
    memset(&w, 0, sizeof w);

    for (int i = 0; i < 3; i++)
        CHECK(rate_window_take(&w, 3, 5000 + (uint64_t)i * 300));
    CHECK(!rate_window_take(&w, 3, 5999));
    CHECK(!rate_window_has_room(&w, 3, 5999));
    /* The window is fixed to the second, not sliding: 6000 is a fresh one. */
    CHECK(rate_window_has_room(&w, 3, 6000));
    CHECK(rate_window_take(&w, 3, 6000));
    CHECK_EQ_INT(w.used, 1);
    CHECK_EQ_INT(w.window, 6);
    /* has_room does not count. */
    CHECK(rate_window_has_room(&w, 2, 6001));
    CHECK(rate_window_has_room(&w, 2, 6001));
    CHECK_EQ_INT(w.used, 1);
    /* A zero limit admits nothing; a later window after a long gap starts from zero. */
    CHECK(!rate_window_has_room(&w, 0, 6002));
    rate_window_count(&w, 60000);
    CHECK_EQ_INT(w.used, 1);
    /* A zeroed window at time 0 is simply empty. */
    memset(&w, 0, sizeof w);
    CHECK(rate_window_take(&w, 1, 0));
    CHECK(!rate_window_take(&w, 1, 999));
}

static source_key numbered(uint32_t n)
{
    addr_t a = v4((uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n, 0);
    return key_of(&a, SOURCE_FULL_IP);
}

static void test_table_basics_and_eviction(void)
{
    source_table t;
    source_key a = numbered(1), b = numbered(2), c = numbered(3), d = numbered(4);
    uint64_t *v;

    CHECK(!source_table_init(&t, 0, 8, seed));
    CHECK(!source_table_init(&t, 4, 1000, seed));
    REQUIRE(source_table_init(&t, 3, sizeof(uint64_t), seed));
    CHECK(source_table_find(&t, &a) == NULL);

    v = source_table_upsert(&t, &a);
    REQUIRE(v != NULL);
    CHECK_EQ_INT(*v, 0);
    *v = 11;
    *(uint64_t *)source_table_upsert(&t, &b) = 22;
    *(uint64_t *)source_table_upsert(&t, &c) = 33;
    CHECK_EQ_INT(t.count, 3);
    CHECK_EQ_INT(*(uint64_t *)source_table_upsert(&t, &a), 11);

    /* a was just seen, so b is now the least recently seen and makes room for d. */
    v = source_table_upsert(&t, &d);
    CHECK_EQ_INT(*v, 0);
    CHECK_EQ_INT(t.count, 3);
    CHECK(source_table_find(&t, &b) == NULL);
    REQUIRE(source_table_find(&t, &c) != NULL);
    /* find counts as seen too: after c and d, a is the oldest. */
    REQUIRE(source_table_find(&t, &d) != NULL);
    *(uint64_t *)source_table_upsert(&t, &b) = 44;
    CHECK(source_table_find(&t, &a) == NULL);
    CHECK_EQ_INT(*(uint64_t *)source_table_find(&t, &b), 44);

    /* remove frees a slot: the next insert evicts nobody. */
    source_table_remove(&t, &c);
    source_table_remove(&t, &c);
    CHECK_EQ_INT(t.count, 2);
    CHECK(source_table_find(&t, &c) == NULL);
    v = source_table_upsert(&t, &a);
    CHECK_EQ_INT(*v, 0);
    CHECK_EQ_INT(t.count, 3);
    CHECK(source_table_find(&t, &b) != NULL && source_table_find(&t, &d) != NULL);
    source_table_free(&t);

    REQUIRE(source_table_init(&t, 1, 0, seed));
    source_table_upsert(&t, &a);
    source_table_upsert(&t, &b);
    CHECK(source_table_find(&t, &a) == NULL);
    CHECK(source_table_find(&t, &b) != NULL);
    CHECK_EQ_INT(t.count, 1);
    source_table_free(&t);
}

/* The table against a straightforward model (an array ordered by recency) under random
 * find/upsert/remove churn over a key space four times its capacity. */
#define MODEL_CAP 37
static source_key model_keys[MODEL_CAP];
static uint64_t model_values[MODEL_CAP];
static size_t model_n;   /* index 0 = least recently seen */

static int model_index(source_key k)
{
    for (size_t i = 0; i < model_n; i++)
        if (same_key(model_keys[i], k))
            return (int)i;
    return -1;
}

static void model_to_newest(size_t i)
{
    source_key k = model_keys[i];
    uint64_t v = model_values[i];
    memmove(&model_keys[i], &model_keys[i + 1], (model_n - i - 1) * sizeof k);
    memmove(&model_values[i], &model_values[i + 1], (model_n - i - 1) * sizeof v);
    model_keys[model_n - 1] = k;
    model_values[model_n - 1] = v;
}

static void model_remove(size_t i)
{
    model_to_newest(i);
    model_n--;
}

static void test_table_matches_model_under_churn(void)
{
    source_table t;
    uint64_t rng = 42;
    int mismatches = 0;

    REQUIRE(source_table_init(&t, MODEL_CAP, sizeof(uint64_t), seed));
    model_n = 0;
    for (int step = 0; step < 200000 && mismatches < 5; step++) {
        uint32_t r, op;
        source_key k;
        int mi;
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        r = (uint32_t)(rng >> 33);
        op = r % 10;
        k = numbered((r >> 8) % (MODEL_CAP * 4));
        mi = model_index(k);
        if (op < 3) {
            uint64_t *v = source_table_find(&t, &k);
            if ((v == NULL) != (mi < 0) || (v && *v != model_values[mi]))
                mismatches++;
            if (mi >= 0)
                model_to_newest((size_t)mi);
        } else if (op < 9) {
            uint64_t *v = source_table_upsert(&t, &k);
            if (mi >= 0) {
                if (*v != model_values[mi])
                    mismatches++;
                model_to_newest((size_t)mi);
            } else {
                if (*v != 0)
                    mismatches++;
                if (model_n == MODEL_CAP)
                    model_remove(0);
                model_keys[model_n] = k;
                model_values[model_n++] = 0;
            }
            *v = (uint64_t)step;
            model_values[model_n - 1] = (uint64_t)step;
        } else {
            source_table_remove(&t, &k);
            if (mi >= 0)
                model_remove((size_t)mi);
        }
        if (t.count != model_n)
            mismatches++;
    }
    CHECK_EQ_INT(mismatches, 0);
    /* And every key the model holds is in the table with its value. */
    for (size_t i = 0; i < model_n; i++) {
        uint64_t *v = source_table_find(&t, &model_keys[i]);
        CHECK(v != NULL && *v == model_values[i]);
    }
    source_table_free(&t);
}

/* Many more distinct keys than capacity: memory stays put and the newest keys are all there. */
static void test_table_flood_stays_bounded(void)
{
    source_table t;
    REQUIRE(source_table_init(&t, 1024, sizeof(rate_window), seed));
    for (uint32_t n = 0; n < 200000; n++) {
        source_key k = numbered(n);
        source_table_upsert(&t, &k);
    }
    CHECK_EQ_INT(t.count, 1024);
    CHECK_EQ_INT(t.fresh, 1024);
    for (uint32_t n = 200000 - 1024; n < 200000; n++) {
        source_key k = numbered(n);
        CHECK(source_table_find(&t, &k) != NULL);
    }
    {
        source_key k = numbered(200000 - 1025);
        CHECK(source_table_find(&t, &k) == NULL);
    }
    source_table_free(&t);
}

/* Keys spread over the buckets, and where they land depends on the secret. */
static size_t fill_and_count_buckets(source_table *t, const uint64_t secret[2])
{
    size_t used = 0;
    if (!source_table_init(t, 1024, 0, secret))
        return 0;
    for (uint32_t n = 0; n < 1024; n++) {
        source_key k = numbered(0x0a000000u + n);
        source_table_upsert(t, &k);
    }
    for (uint32_t b = 0; b <= t->bucket_mask; b++)
        used += t->buckets[b] != 0;
    return used;
}

static void test_table_hash_is_spread_and_keyed(void)
{
    static const uint64_t other_seed[2] = { 1, 2 };
    source_table a, b;
    size_t used_a = fill_and_count_buckets(&a, seed), used_b = fill_and_count_buckets(&b, other_seed);
    size_t same = 0;

    /* 1024 keys in 1024 buckets: about 1024 * (1 - 1/e) = 647 buckets hold something. */
    CHECK(used_a > 580 && used_a < 720);
    CHECK(used_b > 580 && used_b < 720);
    for (uint32_t i = 0; i <= a.bucket_mask; i++)
        same += a.buckets[i] == b.buckets[i];
    CHECK(same < 600);
    source_table_free(&a);
    source_table_free(&b);
}

static void test_stun_limiter_per_ip_window_and_sharing(void)
{
    stun_limiter l;
    addr_t a = v4(198, 51, 100, 1, 1000), am = mapped(198, 51, 100, 1, 2000);
    addr_t b = v4(198, 51, 100, 2, 1000);

    REQUIRE(stun_limiter_init(&l, 5, 0, 64, seed));
    /* Plain and mapped forms of one address share five a second. */
    for (int i = 0; i < 5; i++)
        CHECK(stun_limiter_allow(&l, i % 2 ? &am : &a, 10000 + (uint64_t)i));
    CHECK(!stun_limiter_allow(&l, &a, 10500));
    CHECK(!stun_limiter_allow(&l, &am, 10999));
    /* Another address has its own budget. */
    for (int i = 0; i < 5; i++)
        CHECK(stun_limiter_allow(&l, &b, 10999));
    CHECK(!stun_limiter_allow(&l, &b, 10999));
    /* Next second: fresh budgets. */
    CHECK(stun_limiter_allow(&l, &a, 11000));
    CHECK(stun_limiter_allow(&l, &b, 11000));
    stun_limiter_free(&l);
}

static void test_stun_limiter_global_and_token_accounting(void)
{
    stun_limiter l;
    addr_t flood = v4(203, 0, 113, 1, 1);

    /* Per-IP 2, global 10: one flooding source uses 2 global tokens, its 8 rejected requests
     * none, so eight other sources still get answers this second. */
    REQUIRE(stun_limiter_init(&l, 2, 10, 64, seed));
    for (int i = 0; i < 10; i++)
        CHECK_EQ_INT(stun_limiter_allow(&l, &flood, 20000), i < 2);
    for (uint8_t i = 0; i < 8; i++) {
        addr_t other = v4(203, 0, 113, (uint8_t)(10 + i), 1);
        CHECK(stun_limiter_allow(&l, &other, 20100));
    }
    /* Global spent: even a fresh source is refused... */
    {
        addr_t fresh = v4(203, 0, 113, 99, 1), fresh2 = v4(203, 0, 113, 98, 1);
        CHECK(!stun_limiter_allow(&l, &fresh, 20200));
        CHECK(!stun_limiter_allow(&l, &fresh, 20300));
        /* ...and those refusals did not eat its per-IP budget: next second it gets both. */
        CHECK(stun_limiter_allow(&l, &fresh, 21000));
        CHECK(stun_limiter_allow(&l, &fresh, 21000));
        CHECK(!stun_limiter_allow(&l, &fresh, 21000));
        CHECK(stun_limiter_allow(&l, &fresh2, 21000));
    }
    stun_limiter_free(&l);

    /* Global alone. */
    REQUIRE(stun_limiter_init(&l, 0, 3, 64, seed));
    CHECK(l.per_ip.entries == NULL);
    for (uint8_t i = 0; i < 5; i++) {
        addr_t s = v4(10, 0, 0, i, 1);
        CHECK_EQ_INT(stun_limiter_allow(&l, &s, 30000), i < 3);
    }
    stun_limiter_free(&l);
}

static void test_stun_limiter_zero_disables(void)
{
    stun_limiter l;
    addr_t a = v4(192, 0, 2, 1, 1);

    REQUIRE(stun_limiter_init(&l, 0, 0, 64, seed));
    for (int i = 0; i < 10000; i++)
        CHECK(stun_limiter_allow(&l, &a, 40000));
    CHECK(l.per_ip.entries == NULL);
    stun_limiter_free(&l);

    REQUIRE(stun_limiter_init(&l, 3, 0, 64, seed));
    for (int i = 0; i < 3; i++)
        CHECK(stun_limiter_allow(&l, &a, 40000));
    CHECK(!stun_limiter_allow(&l, &a, 40000));
    for (uint32_t i = 0; i < 5000; i++) {
        addr_t s = v4(10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i, 1);
        CHECK(stun_limiter_allow(&l, &s, 40000));
    }
    stun_limiter_free(&l);
}

/* The per-IP table is bounded: forged sources evict the least recently seen, and a source that
 * keeps asking (even when refused) stays remembered and refused. */
static void test_stun_limiter_eviction(void)
{
    stun_limiter l;
    addr_t persistent = v4(192, 0, 2, 200, 1), quiet = v4(192, 0, 2, 201, 1);

    REQUIRE(stun_limiter_init(&l, 1, 0, 4, seed));
    CHECK(stun_limiter_allow(&l, &quiet, 50000));
    CHECK(stun_limiter_allow(&l, &persistent, 50000));
    for (uint8_t i = 0; i < 20; i++) {
        addr_t forged = v4(198, 18, 0, i, 1);
        CHECK(stun_limiter_allow(&l, &forged, 50100));
        CHECK(!stun_limiter_allow(&l, &persistent, 50100));
    }
    CHECK(l.per_ip.count <= 4);
    /* quiet was evicted long ago: it comes back with a fresh budget in the same second. */
    CHECK(stun_limiter_allow(&l, &quiet, 50200));
    stun_limiter_free(&l);
}

int main(void)
{
    RUN(test_source_keys);
    RUN(test_rate_window);
    RUN(test_table_basics_and_eviction);
    RUN(test_table_matches_model_under_churn);
    RUN(test_table_flood_stays_bounded);
    RUN(test_table_hash_is_spread_and_keyed);
    RUN(test_stun_limiter_per_ip_window_and_sharing);
    RUN(test_stun_limiter_global_and_token_accounting);
    RUN(test_stun_limiter_zero_disables);
    RUN(test_stun_limiter_eviction);
    return test_finish();
}
