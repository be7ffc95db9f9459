/* Unit tests for dht.c, the RLY-009 DHT content view: the exact /dht.json text, MAX not sum,
 * corroboration order, the 2000-key cap with the true total, one counted answer per asked peer
 * per sweep, the answer window, and the bounds that keep a Sybil from growing the collection or
 * pushing corroborated keys out (records read per answer, key length, per-answer share of new
 * keys, tracked-key cap). Answers go through the real wire codec. */
#include "dht.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>

static const uint64_t seed[2] = { 0x0123456789abcdefULL, 0xfedcba9876543210ULL };

/* A decoded dht_records answer built with the wire writer; keep it alive while m is used. */
typedef struct {
    json_writer w;
    char *scratch;
    wire_msg m;
} answer;

static void answer_begin(answer *a)
{
    jw_init(&a->w, 0, (size_t)1 << 24);
    a->scratch = NULL;
    wire_write_dht_records_begin(&a->w);
}

static void answer_add(answer *a, const char *key, size_t len, uint64_t providers, bool first)
{
    wire_dht_record r = { { key, len }, providers };
    wire_write_dht_records_item(&a->w, &r, first);
}

static bool answer_end(answer *a, uint64_t total, bool truncated)
{
    char err[128];
    wire_write_dht_records_end(&a->w, total, truncated);
    a->scratch = malloc(a->w.len);
    if (a->w.failed || !a->scratch || !wire_decode(a->w.p, a->w.len, &a->m, a->scratch, err, sizeof err)) {
        printf("  answer did not decode\n");
        return false;
    }
    return true;
}

static void answer_free(answer *a)
{
    jw_free(&a->w);
    free(a->scratch);
}

static enum dht_verdict feed(dht_view *v, uint64_t token, answer *a, uint64_t now_ms)
{
    return dht_answer(v, token, &a->m, a->scratch + (a->m.records.p - a->w.p), now_ms);
}

/* One answer of the listed keys ("key=providers"), fed as token. */
static enum dht_verdict feed_keys(dht_view *v, uint64_t token, uint64_t now_ms, const char *const *keys)
{
    answer a;
    answer_begin(&a);
    for (size_t i = 0; keys[i]; i++) {
        const char *eq = strchr(keys[i], '=');
        answer_add(&a, keys[i], (size_t)(eq - keys[i]), strtoull(eq + 1, NULL, 10), i == 0);
    }
    enum dht_verdict r = answer_end(&a, 0, false) ? feed(v, token, &a, now_ms) : DHT_NO_SWEEP;
    answer_free(&a);
    return r;
}

/* An answer of n keys named prefix<i>, each with the given providers. */
static enum dht_verdict feed_many(dht_view *v, uint64_t token, uint64_t now_ms, const char *prefix,
                                  size_t n, uint64_t providers)
{
    answer a;
    char key[64];
    answer_begin(&a);
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(key, sizeof key, "%s%06zu", prefix, i);
        answer_add(&a, key, (size_t)k, providers, i == 0);
    }
    enum dht_verdict r = answer_end(&a, n, false) ? feed(v, token, &a, now_ms) : DHT_NO_SWEEP;
    answer_free(&a);
    return r;
}

static bool view_is(const dht_view *v, const char *expect)
{
    json_span s = dht_view_json(v);
    if (s.n != strlen(expect) || memcmp(s.p, expect, s.n) != 0) {
        printf("  view %.*s\n  want %s\n", (int)(s.n > 600 ? 600 : s.n), s.p, expect);
        return false;
    }
    return true;
}

/* Pulls a top-level integer field out of the view text. */
static long long view_field(const dht_view *v, const char *name)
{
    json_span s = dht_view_json(v);
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", name);
    const char *at = memmem(s.p, s.n, pat, strlen(pat));
    return at ? strtoll(at + strlen(pat), NULL, 10) : -1;
}

static bool view_has(const dht_view *v, const char *text)
{
    json_span s = dht_view_json(v);
    if (memmem(s.p, s.n, text, strlen(text)))
        return true;
    printf("  view lacks %s\n", text);
    return false;
}

static size_t view_key_count(const dht_view *v)
{
    json_span s = dht_view_json(v);
    size_t n = 0;
    for (const char *p = s.p; (p = memmem(p, s.n - (size_t)(p - s.p), "\"content_key\":", 14)); p += 14)
        n++;
    return n;
}

static void test_empty_view(void)
{
    dht_view *v = dht_new(seed);
    REQUIRE(v);
    CHECK_EQ_INT(dht_view_reporting_peers(v), 0);
    CHECK_EQ_INT(dht_view_total_keys(v), 0);
    CHECK(view_is(v, "{\"schema_version\":1,\"generated_at\":0,\"reporting_peers\":0,\"total_keys\":0,"
                     "\"truncated\":false,\"keys\":[]}"));
    CHECK(dht_window_end(v) == UINT64_MAX);
    /* A sweep nobody answers publishes an empty view with its time. */
    REQUIRE(dht_sweep_begin(v, 3, 1000));
    CHECK(dht_asked(v, 7));
    CHECK(dht_window_end(v) == 1000 + DHT_ANSWER_WINDOW_MS);
    CHECK(dht_sweep_end(v, 1700000000));
    CHECK(view_is(v, "{\"schema_version\":1,\"generated_at\":1700000000,\"reporting_peers\":0,"
                     "\"total_keys\":0,\"truncated\":false,\"keys\":[]}"));
    dht_free(v);
}

static void test_max_not_sum_and_order(void)
{
    dht_view *v = dht_new(seed);
    REQUIRE(v);
    REQUIRE(dht_sweep_begin(v, 3, 0));
    CHECK(dht_asked(v, 1) && dht_asked(v, 2) && dht_asked(v, 3));
    CHECK(feed_keys(v, 1, 10, (const char *const[]){ "aa=4", "bb=1", "zz=9", NULL }) == DHT_COUNTED);
    CHECK(feed_keys(v, 2, 20, (const char *const[]){ "aa=3", "bb=2", "cc=1", NULL }) == DHT_COUNTED);
    CHECK(feed_keys(v, 3, 30, (const char *const[]){ "bb=1", "cc=1", "ca=1", NULL }) == DHT_COUNTED);
    REQUIRE(dht_sweep_end(v, 42));
    /* bb by three nodes; aa (providers 4, max of 4 and 3) before cc (1) among the pairs; then the
     * singletons by providers, ties by key. */
    CHECK(view_is(v, "{\"schema_version\":1,\"generated_at\":42,\"reporting_peers\":3,\"total_keys\":5,"
                     "\"truncated\":false,\"keys\":["
                     "{\"content_key\":\"bb\",\"providers\":2,\"reported_by\":3},"
                     "{\"content_key\":\"aa\",\"providers\":4,\"reported_by\":2},"
                     "{\"content_key\":\"cc\",\"providers\":1,\"reported_by\":2},"
                     "{\"content_key\":\"zz\",\"providers\":9,\"reported_by\":1},"
                     "{\"content_key\":\"ca\",\"providers\":1,\"reported_by\":1}]}"));
    CHECK_EQ_INT(dht_view_reporting_peers(v), 3);
    CHECK_EQ_INT(dht_view_total_keys(v), 5);
    /* The next sweep starts from nothing; the view stays until it ends. */
    REQUIRE(dht_sweep_begin(v, 1, 100000));
    CHECK(view_field(v, "reporting_peers") == 3);
    CHECK_EQ_INT(dht_view_reporting_peers(v), 3);
    CHECK(dht_asked(v, 9));
    CHECK(feed_keys(v, 9, 100001, (const char *const[]){ "aa=1", "aa=5", NULL }) == DHT_COUNTED);
    REQUIRE(dht_sweep_end(v, 43));
    CHECK(view_is(v, "{\"schema_version\":1,\"generated_at\":43,\"reporting_peers\":1,\"total_keys\":1,"
                     "\"truncated\":false,\"keys\":[{\"content_key\":\"aa\",\"providers\":5,\"reported_by\":1}]}"));
    dht_free(v);
}

static void test_one_answer_per_asked_peer(void)
{
    dht_view *v = dht_new(seed);
    REQUIRE(v);
    const char *const one[] = { "k=1", NULL };
    CHECK(feed_keys(v, 1, 0, one) == DHT_NO_SWEEP);          /* no sweep yet */
    CHECK(!dht_asked(v, 1));
    REQUIRE(dht_sweep_begin(v, 2, 1000));
    CHECK(dht_asked(v, 1));
    CHECK(dht_asked(v, 1));                                  /* asking twice is one peer */
    CHECK(dht_asked(v, 2));
    CHECK(!dht_asked(v, 3));                                 /* past max_peers */
    CHECK(!dht_asked(v, 0));
    CHECK(feed_keys(v, 3, 1001, one) == DHT_NOT_ASKED);
    CHECK(feed_keys(v, 1, 1002, one) == DHT_COUNTED);
    CHECK(feed_keys(v, 1, 1003, one) == DHT_REPEATED);       /* replaying cannot inflate */
    CHECK(feed_keys(v, 2, 1000 + DHT_ANSWER_WINDOW_MS, one) == DHT_NO_SWEEP);   /* too late */
    REQUIRE(dht_sweep_end(v, 1));
    CHECK(view_field(v, "reporting_peers") == 1);
    CHECK(view_is(v, "{\"schema_version\":1,\"generated_at\":1,\"reporting_peers\":1,\"total_keys\":1,"
                     "\"truncated\":false,\"keys\":[{\"content_key\":\"k\",\"providers\":1,\"reported_by\":1}]}"));
    CHECK(feed_keys(v, 2, 1001, one) == DHT_NO_SWEEP);        /* after the sweep ended */
    CHECK(!dht_sweep_end(v, 2));
    dht_free(v);
}

static void test_peer_truncation_and_record_cap(void)
{
    dht_view *v = dht_new(seed);
    REQUIRE(v);
    answer a;
    /* A node that truncated its own answer makes the view truncated. */
    REQUIRE(dht_sweep_begin(v, 2, 0));
    CHECK(dht_asked(v, 1));
    answer_begin(&a);
    answer_add(&a, "aa", 2, 1, true);
    REQUIRE(answer_end(&a, 900, true));
    CHECK(feed(v, 1, &a, 1) == DHT_COUNTED);
    answer_free(&a);
    REQUIRE(dht_sweep_end(v, 5));
    CHECK(view_is(v, "{\"schema_version\":1,\"generated_at\":5,\"reporting_peers\":1,\"total_keys\":1,"
                     "\"truncated\":true,\"keys\":[{\"content_key\":\"aa\",\"providers\":1,\"reported_by\":1}]}"));
    /* Only max_keys records are read from one answer, however many it carries. */
    REQUIRE(dht_sweep_begin(v, 1, 0));
    CHECK(dht_asked(v, 1));
    CHECK(feed_many(v, 1, 1, "k", DHT_MAX_KEYS_PER_PEER + 100, 1) == DHT_COUNTED);
    REQUIRE(dht_sweep_end(v, 6));
    CHECK_EQ_INT(view_field(v, "total_keys"), DHT_MAX_KEYS_PER_PEER);
    CHECK(strstr(dht_view_json(v).p, "\"truncated\":true") != NULL);
    dht_free(v);
}

static void test_key_length_and_escaping(void)
{
    dht_view *v = dht_new(seed);
    REQUIRE(v);
    char longest[DHT_MAX_KEY_LEN + 1];
    memset(longest, 'f', sizeof longest);
    answer a;
    REQUIRE(dht_sweep_begin(v, 1, 0));
    CHECK(dht_asked(v, 5));
    answer_begin(&a);
    answer_add(&a, longest, DHT_MAX_KEY_LEN + 1, 9, true);   /* too long: skipped */
    answer_add(&a, "", 0, 9, false);                          /* empty: skipped */
    answer_add(&a, longest, DHT_MAX_KEY_LEN, 1, false);
    answer_add(&a, "<script>alert(\"x\")</script>\n\x01", 29, 2, false);
    REQUIRE(answer_end(&a, 4, false));
    CHECK(feed(v, 5, &a, 1) == DHT_COUNTED);
    answer_free(&a);
    REQUIRE(dht_sweep_end(v, 7));
    json_span s = dht_view_json(v);
    const char *why = NULL;
    CHECK(json_validate(s.p, s.n, &why));
    CHECK_EQ_INT(view_field(v, "total_keys"), 2);
    CHECK(view_has(v, "\"truncated\":true"));
    CHECK(view_has(v, "{\"content_key\":\"<script>alert(\\\"x\\\")</script>\\n\\u0001\",\"providers\":2,"
                           "\"reported_by\":1}"));
    longest[DHT_MAX_KEY_LEN] = 0;
    CHECK(view_has(v, longest));
    dht_free(v);
}

static void test_published_cap_keeps_true_total(void)
{
    dht_view *v = dht_new(seed);
    REQUIRE(v);
    /* Five nodes with 500 distinct keys each, and one key two of them corroborate. */
    REQUIRE(dht_sweep_begin(v, 5, 0));
    for (uint64_t t = 1; t <= 5; t++)
        CHECK(dht_asked(v, t));
    char prefix[8];
    for (uint64_t t = 1; t <= 3; t++) {
        snprintf(prefix, sizeof prefix, "n%llu-", (unsigned long long)t);
        CHECK(feed_many(v, t, 1, prefix, DHT_MAX_KEYS_PER_PEER, 1) == DHT_COUNTED);
    }
    CHECK(feed_keys(v, 4, 2, (const char *const[]){ "real=5", NULL }) == DHT_COUNTED);
    CHECK(feed_keys(v, 5, 2, (const char *const[]){ "real=4", "n1-000007=3", NULL }) == DHT_COUNTED);
    REQUIRE(dht_sweep_end(v, 8));
    json_span s = dht_view_json(v);
    CHECK_EQ_INT(view_field(v, "total_keys"), 3 * DHT_MAX_KEYS_PER_PEER + 1);
    CHECK_EQ_INT(view_key_count(v), 3 * DHT_MAX_KEYS_PER_PEER + 1);
    CHECK(view_has(v, "\"truncated\":false,\"keys\":[{\"content_key\":\"real\",\"providers\":5,"
                           "\"reported_by\":2},{\"content_key\":\"n1-000007\",\"providers\":3,"
                           "\"reported_by\":2},"));

    /* Past 2000 distinct keys the view keeps the best 2000 and says it is truncated. */
    REQUIRE(dht_sweep_begin(v, 6, 0));
    for (uint64_t t = 1; t <= 6; t++)
        CHECK(dht_asked(v, t));
    for (uint64_t t = 1; t <= 5; t++) {
        snprintf(prefix, sizeof prefix, "m%llu-", (unsigned long long)t);
        CHECK(feed_many(v, t, 1, prefix, DHT_MAX_KEYS_PER_PEER, 1) == DHT_COUNTED);
    }
    CHECK(feed_keys(v, 6, 2, (const char *const[]){ "m5-000499=1", NULL }) == DHT_COUNTED);
    REQUIRE(dht_sweep_end(v, 9));
    s = dht_view_json(v);
    CHECK_EQ_INT(view_field(v, "total_keys"), 5 * DHT_MAX_KEYS_PER_PEER);
    CHECK_EQ_INT(view_key_count(v), DHT_MAX_PUBLISHED_KEYS);
    CHECK(view_has(v, "\"truncated\":true,\"keys\":[{\"content_key\":\"m5-000499\",\"providers\":1,"
                           "\"reported_by\":2}"));
    CHECK(json_validate(s.p, s.n, NULL));
    dht_free(v);
}

static void test_sybil_cannot_crowd_out(void)
{
    dht_view *v = dht_new(seed);
    REQUIRE(v);
    /* 1000 peers asked: one answer may add only its share of new keys, so the first answers in
     * (here the Sybils) cannot fill the table before the honest nodes answer. */
    REQUIRE(dht_sweep_begin(v, 1000, 0));
    for (uint64_t t = 1; t <= 1000; t++)
        CHECK(dht_asked(v, t));
    char prefix[16];
    for (uint64_t t = 1; t <= 990; t++) {
        snprintf(prefix, sizeof prefix, "s%llu-", (unsigned long long)t);
        CHECK(feed_many(v, t, 1, prefix, DHT_MAX_KEYS_PER_PEER, 1000000) == DHT_COUNTED);
    }
    for (uint64_t t = 991; t <= 1000; t++)
        CHECK(feed_keys(v, t, 2, (const char *const[]){ "honest-a=3", "honest-b=2", NULL }) == DHT_COUNTED);
    REQUIRE(dht_sweep_end(v, 10));
    json_span s = dht_view_json(v);
    /* 8 new keys per Sybil answer (8192 / 1000), and the corroborated keys lead the view. */
    CHECK_EQ_INT(view_field(v, "total_keys"), 990 * 8 + 2);
    CHECK_EQ_INT(view_key_count(v), DHT_MAX_PUBLISHED_KEYS);
    CHECK(view_has(v, "\"truncated\":true,\"keys\":[{\"content_key\":\"honest-a\",\"providers\":3,"
                           "\"reported_by\":10},{\"content_key\":\"honest-b\",\"providers\":2,"
                           "\"reported_by\":10},"));
    /* ... and each Sybil got at most its share in. */
    CHECK(view_has(v, "\"s1-000007\""));
    CHECK(!memmem(s.p, s.n, "\"s1-000008\"", strlen("\"s1-000008\"")));
    dht_free(v);

    /* More peers than the table holds keys: each answer adds at most one, the table stops at its
     * cap, and keys it holds are still corroborated. */
    v = dht_new(seed);
    REQUIRE(v);
    REQUIRE(dht_sweep_begin(v, DHT_MAX_TRACKED_KEYS + 100, 0));
    for (uint64_t t = 1; t <= DHT_MAX_TRACKED_KEYS + 100; t++)
        CHECK(dht_asked(v, t));
    for (uint64_t t = 1; t <= DHT_MAX_TRACKED_KEYS + 99; t++) {
        snprintf(prefix, sizeof prefix, "x%llu-", (unsigned long long)t);
        if (feed_many(v, t, 1, prefix, 3, 1) != DHT_COUNTED)
            CHECK(0);
    }
    CHECK(feed_keys(v, DHT_MAX_TRACKED_KEYS + 100, 2, (const char *const[]){ "x1-000000=7", NULL }) == DHT_COUNTED);
    REQUIRE(dht_sweep_end(v, 11));
    s = dht_view_json(v);
    CHECK_EQ_INT(view_field(v, "total_keys"), DHT_MAX_TRACKED_KEYS);
    CHECK(view_has(v, "\"keys\":[{\"content_key\":\"x1-000000\",\"providers\":7,\"reported_by\":2}"));
    dht_free(v);
}

int main(void)
{
    RUN(test_empty_view);
    RUN(test_max_not_sum_and_order);
    RUN(test_one_answer_per_asked_peer);
    RUN(test_peer_truncation_and_record_cap);
    RUN(test_key_length_and_escaping);
    RUN(test_published_cap_keeps_true_total);
    RUN(test_sybil_cannot_crowd_out);
    return test_finish();
}
