/* Unit tests of the PEX engine with a fake clock: the capability gate, snapshot contents and
 * order, delta timing and jitter, caps and carry-over, told-state and its fingerprint, network
 * scoping, every pex_error code, muting, and the exact bytes of every frame the relay sends. */
#include "test.h"

#include "../addr.h"
#include "../json.h"
#include "../pex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MONO0 10000000ULL      /* arbitrary monotonic origin (ms) */
#define WALL0 1700000000ULL    /* wall clock at MONO0 (s) */

static pex_time at_ms(uint64_t ms)
{
    pex_time t = { MONO0 + ms, WALL0 + ms / 1000 };
    return t;
}

static pex_time at(uint64_t secs)
{
    return at_ms(secs * 1000);
}

/* ---- captured output ---- */

typedef struct {
    uint64_t id;
    char *json;
    size_t len;
} sent_frame;

static sent_frame *frames;
static size_t n_frames, cap_frames;
static int bad_frames;   /* frames that were not valid JSON or exceeded PEX_MAX_FRAME */

static void capture(void *ctx, uint64_t id, const char *json, size_t len)
{
    (void)ctx;
    if (!json_validate(json, len, NULL) || len > PEX_MAX_FRAME)
        bad_frames++;
    if (n_frames == cap_frames) {
        cap_frames = cap_frames ? cap_frames * 2 : 64;
        frames = realloc(frames, cap_frames * sizeof *frames);
    }
    char *copy = malloc(len + 1);
    memcpy(copy, json, len);
    copy[len] = 0;
    frames[n_frames++] = (sent_frame){ id, copy, len };
}

static void clear_frames(void)
{
    for (size_t i = 0; i < n_frames; i++)
        free(frames[i].json);
    n_frames = 0;
}

/* Frames sent to one connection, in order; NULL past the end. */
static const char *frame_to(uint64_t id, size_t k)
{
    for (size_t i = 0; i < n_frames; i++)
        if (frames[i].id == id && k-- == 0)
            return frames[i].json;
    return NULL;
}

static size_t count_to(uint64_t id)
{
    size_t n = 0;
    for (size_t i = 0; i < n_frames; i++)
        n += frames[i].id == id;
    return n;
}

/* ---- fixtures ---- */

static pex_engine *engine(const char *net, size_t max, uint64_t seed)
{
    clear_frames();
    bad_frames = 0;
    return pex_engine_new(net, strlen(net), max, seed, capture, NULL);
}

static const char *pid(unsigned n)
{
    static char buf[8][65];
    static int k;
    char *b = buf[k++ & 7];
    snprintf(b, 65, "%064x", n);
    return b;
}

static addr_t A(const char *s)
{
    addr_t a;
    memset(&a, 0, sizeof a);
    if (!addr_parse(s, strlen(s), &a))
        printf("  bad test address %s\n", s);
    return a;
}

/* Registers connection id as peer n, relay-only from a documentation address. */
static bool reg(pex_engine *e, uint64_t id, unsigned n, pex_time t)
{
    char obs[32];
    snprintf(obs, sizeof obs, "198.51.100.%u:%u", n % 250 + 1, 40000 + n % 20000);
    addr_t o = A(obs);
    const char *p = pid(n);
    return pex_registrant_up(e, id, p, strlen(p), &o, NULL, 0, t);
}

static const char HS_NODE[] =
    "{\"type\":\"pex_handshake\",\"version\":1,\"network_id\":\"mainnet\",\"interval\":60}";
static const char HS_RELAY[] = "{\"type\":\"pex_handshake\",\"version\":1,"
                               "\"network_id\":\"mainnet\",\"interval\":60,\"flags\":[\"introducer\"]}";

static int feed(pex_engine *e, uint64_t id, const char *json, pex_time t)
{
    return pex_on_frame(e, id, json, strlen(json), t);
}

/* Peer ids of the entries in a snapshot or delta frame ("peers"/"added"), in order, and of the
 * dropped ids, read with the JSON reader; returns how many were written to out. */
static size_t list_ids(const char *frame, const char *list, char out[][65], size_t max)
{
    json_reader r;
    json_reader_init(&r, frame, strlen(frame));
    json_span key, v;
    size_t n = 0;
    json_object_begin(&r);
    while (json_object_next(&r, &key)) {
        if (!json_raw_equals(key, list)) {
            json_skip(&r, NULL);
            continue;
        }
        json_array_begin(&r);
        while (json_array_next(&r)) {
            if (json_peek(&r) == JSON_STRING) {
                json_read_string(&r, &v);
                if (n < max)
                    snprintf(out[n], 65, "%.*s", (int)v.n, v.p);
                n++;
                continue;
            }
            json_object_begin(&r);
            while (json_object_next(&r, &key)) {
                if (json_raw_equals(key, "peer_id") && json_read_string(&r, &v)) {
                    if (n < max)
                        snprintf(out[n], 65, "%.*s", (int)v.n, v.p);
                    n++;
                } else {
                    json_skip(&r, NULL);
                }
            }
        }
    }
    return r.err ? (size_t)-1 : n;
}

static size_t count_ids(const char *frame, const char *list)
{
    static char ids[512][65];
    return list_ids(frame, list, ids, 512);
}

static bool has_id(const char *frame, const char *list, const char *id)
{
    static char ids[512][65];
    size_t n = list_ids(frame, list, ids, 512);
    for (size_t i = 0; i < n && i < 512; i++)
        if (strcmp(ids[i], id) == 0)
            return true;
    return false;
}

static bool starts(const char *s, const char *prefix)
{
    return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Brings connection id's PEX up at time t and clears what was sent. */
static void up(pex_engine *e, uint64_t id, pex_time t)
{
    int rc = feed(e, id, HS_NODE, t);
    if (rc != PEX_ACCEPTED)
        printf("  handshake of %llu gave %d\n", (unsigned long long)id, rc);
    clear_frames();
}

/* ---- the gate ---- */

static void test_gate_before_handshake(void)
{
    pex_engine *e = engine("mainnet", 16, 1);
    REQUIRE(e);
    REQUIRE(reg(e, 1, 1, at(0)));
    REQUIRE(reg(e, 2, 2, at(0)));
    CHECK_EQ_INT(feed(e, 9, HS_NODE, at(1)), PEX_NOT_REGISTERED);
    CHECK_EQ_INT(feed(e, 1, "{\"type\":\"pex_snapshot\",\"peers\":[]}", at(1)), PEX_IGNORED);
    CHECK_EQ_INT(feed(e, 1, "{\"type\":\"pex_delta\",\"added\":[],\"dropped\":[]}", at(1)),
                 PEX_IGNORED);
    CHECK_EQ_INT(feed(e, 1, "{\"type\":\"pex_error\",\"code\":3,\"message\":\"x\"}", at(1)),
                 PEX_IGNORED);
    CHECK_EQ_INT(feed(e, 1, "{\"type\":\"pex_handshake\"", at(1)), PEX_IGNORED);
    CHECK_EQ_INT(feed(e, 1, "not json", at(1)), PEX_IGNORED);
    CHECK_EQ_INT((long long)n_frames, 0);
    CHECK_EQ_INT((long long)pex_link_count(e), 0);
    /* Registrations never push anything to a connection that did not handshake. */
    pex_tick(e, at(1000));
    CHECK_EQ_INT((long long)n_frames, 0);
    CHECK_EQ_INT((long long)pex_next_due(e), (long long)UINT64_MAX);
    pex_engine_free(e);
}

/* ---- relay direction ---- */

static void test_handshake_and_snapshot_bytes(void)
{
    pex_engine *e = engine("mainnet", 16, 1);
    REQUIRE(e);
    addr_t obs_a = A("203.0.113.7:51000");
    addr_t dial[2] = { A("[2001:db8::1]:9444"), A("203.0.113.7:9444") };
    const char *a = pid(0xa), *b = pid(0xb);
    REQUIRE(pex_registrant_up(e, 1, a, 64, &obs_a, dial, 2, at(0)));
    addr_t obs_b = A("[::ffff:198.51.100.9]:50123");
    REQUIRE(pex_registrant_up(e, 2, b, 64, &obs_b, NULL, 0, at(5)));
    CHECK_EQ_INT((long long)pex_registrant_count(e), 2);

    CHECK_EQ_INT(feed(e, 1, HS_NODE, at(10)), PEX_ACCEPTED);
    REQUIRE(count_to(1) == 2);
    CHECK_EQ_INT((long long)n_frames, 2);
    CHECK_EQ_STR(frame_to(1, 0), HS_RELAY);
    char want[1024];
    snprintf(want, sizeof want,
             "{\"type\":\"pex_snapshot\",\"peers\":[{\"peer_id\":\"%s\",\"addresses\":[{\"host\":"
             "\"198.51.100.9\",\"port\":50123,\"kind\":\"reflexive\"}],\"network_id\":\"mainnet\","
             "\"last_seen\":%llu,\"via\":\"introducer\",\"flags\":[\"relay-only\"]}]}",
             b, (unsigned long long)(WALL0 + 5));
    CHECK_EQ_STR(frame_to(1, 1), want);

    /* The other side sees the dialable entry: IPv6 host without brackets, listen port, no flag. */
    clear_frames();
    CHECK_EQ_INT(feed(e, 2, HS_NODE, at(20)), PEX_ACCEPTED);
    snprintf(want, sizeof want,
             "{\"type\":\"pex_snapshot\",\"peers\":[{\"peer_id\":\"%s\",\"addresses\":[{\"host\":"
             "\"2001:db8::1\",\"port\":9444,\"kind\":\"reflexive\"},{\"host\":\"203.0.113.7\","
             "\"port\":9444,\"kind\":\"reflexive\"}],\"network_id\":\"mainnet\",\"last_seen\":%llu,"
             "\"via\":\"introducer\",\"flags\":[]}]}",
             a, (unsigned long long)WALL0);
    CHECK_EQ_STR(frame_to(2, 1), want);
    CHECK_EQ_INT((long long)pex_link_count(e), 2);
    CHECK_EQ_INT(bad_frames, 0);
    pex_engine_free(e);
}

static void test_handshake_escapes_network_and_accepts_unknown_fields(void)
{
    pex_engine *e = engine("net\"1", 4, 1);
    REQUIRE(e);
    REQUIRE(reg(e, 1, 1, at(0)));
    const char *hs = "{\"flags\":[\"storage\"],\"future\":{\"x\":[1]},\"interval\":30,"
                     "\"network_id\":\"net\\u00221\",\"version\":1,\"type\":\"pex_handshake\"}";
    CHECK_EQ_INT(feed(e, 1, hs, at(0)), PEX_ACCEPTED);
    CHECK_EQ_STR(frame_to(1, 0), "{\"type\":\"pex_handshake\",\"version\":1,\"network_id\":"
                                 "\"net\\\"1\",\"interval\":60,\"flags\":[\"introducer\"]}");
    CHECK_EQ_STR(frame_to(1, 1), "{\"type\":\"pex_snapshot\",\"peers\":[]}");
    pex_engine_free(e);
}

static void test_snapshot_freshest_first_capped_others_only(void)
{
    pex_engine *e = engine("mainnet", 512, 1);
    REQUIRE(e);
    /* 250 registrants, one per second: 1 is the oldest. Connection 300 subscribes last. */
    for (unsigned i = 1; i <= 250; i++)
        REQUIRE(reg(e, i, i, at(i)));
    /* Same second, registered in reverse id order: ties go by peer id. */
    REQUIRE(reg(e, 252, 252, at(251)));
    REQUIRE(reg(e, 251, 251, at(251)));
    REQUIRE(reg(e, 300, 300, at(251)));
    CHECK_EQ_INT(pex_snapshots_sent(e), 0);
    CHECK_EQ_INT(feed(e, 300, HS_NODE, at(252)), PEX_ACCEPTED);
    const char *snap = frame_to(300, 1);
    REQUIRE(starts(snap, "{\"type\":\"pex_snapshot\""));
    CHECK_EQ_INT(pex_snapshots_sent(e), 1);
    static char ids[256][65];
    size_t n = list_ids(snap, "peers", ids, 256);
    REQUIRE(n == PEX_MAX_SNAPSHOT);
    CHECK_EQ_STR(ids[0], pid(251));
    CHECK_EQ_STR(ids[1], pid(252));
    for (unsigned i = 2; i < 200; i++)
        CHECK_EQ_STR(ids[i], pid(252 - i));
    CHECK(!has_id(snap, "peers", pid(300)));
    /* Of the 52 left (1..52), the 50 freshest follow in the first delta, freshest first. */
    clear_frames();
    pex_tick(e, at(252 + 66));
    const char *d = frame_to(300, 0);
    REQUIRE(starts(d, "{\"type\":\"pex_delta\""));
    n = list_ids(d, "added", ids, 256);
    CHECK_EQ_INT((long long)n, 50);
    CHECK_EQ_STR(ids[0], pid(52));
    CHECK_EQ_STR(ids[49], pid(3));
    CHECK_EQ_INT((long long)count_ids(d, "dropped"), 0);
    CHECK_EQ_INT(bad_frames, 0);
    CHECK_EQ_INT(pex_snapshots_sent(e), 1);
    CHECK_EQ_INT(pex_deltas_sent(e), 1);
    pex_engine_free(e);
}

static void test_last_seen_follows_activity(void)
{
    pex_engine *e = engine("mainnet", 16, 1);
    REQUIRE(e);
    REQUIRE(reg(e, 1, 1, at(0)));
    REQUIRE(reg(e, 2, 2, at(0)));
    pex_registrant_seen(e, 2, at(1700));
    pex_registrant_seen(e, 77, at(1700));      /* unknown ids are ignored */
    CHECK_EQ_INT(feed(e, 1, HS_NODE, at(1750)), PEX_ACCEPTED);
    char want[64];
    snprintf(want, sizeof want, "\"last_seen\":%llu,", (unsigned long long)(WALL0 + 1700));
    CHECK(strstr(frame_to(1, 1), want) != NULL);
    pex_engine_free(e);
}

static void test_stale_entries_not_advertised_then_dropped(void)
{
    pex_engine *e = engine("mainnet", 16, 1);
    REQUIRE(e);
    REQUIRE(reg(e, 1, 1, at(0)));
    REQUIRE(reg(e, 2, 2, at(0)));
    REQUIRE(reg(e, 3, 3, at(0)));
    pex_registrant_seen(e, 3, at(1000));
    /* At 1800 s of silence an entry is still advertised; one second more and it is not. */
    CHECK_EQ_INT(feed(e, 1, HS_NODE, at(1800)), PEX_ACCEPTED);
    CHECK(has_id(frame_to(1, 1), "peers", pid(2)));
    clear_frames();
    pex_registrant_seen(e, 1, at(1801));
    pex_registrant_seen(e, 4, at(1801));
    CHECK_EQ_INT(feed(e, 4, HS_NODE, at(1801)), PEX_NOT_REGISTERED);
    REQUIRE(reg(e, 4, 4, at(1801)));
    CHECK_EQ_INT(feed(e, 4, HS_NODE, at(1801)), PEX_ACCEPTED);
    CHECK(!has_id(frame_to(4, 1), "peers", pid(2)));
    CHECK(has_id(frame_to(4, 1), "peers", pid(3)));
    CHECK(has_id(frame_to(4, 1), "peers", pid(1)));
    /* Link 1 was told entry 2: it is dropped there once due; entry 3 ages out at 2801 s. */
    clear_frames();
    pex_registrant_seen(e, 1, at(1860));
    pex_registrant_seen(e, 4, at(1860));
    pex_tick(e, at(1870));
    const char *d = frame_to(1, 0);
    REQUIRE(d);
    CHECK(has_id(d, "dropped", pid(2)));
    CHECK_EQ_INT((long long)count_ids(d, "added"), 1);      /* entry 4 */
    pex_tick(e, at(2000));
    clear_frames();
    pex_registrant_seen(e, 1, at(2700));
    pex_registrant_seen(e, 4, at(2700));
    uint64_t due = pex_next_due(e);
    CHECK_EQ_INT((long long)due, (long long)(MONO0 + 2801000));
    pex_tick(e, at_ms(due - MONO0));
    CHECK(has_id(frame_to(1, 0), "dropped", pid(3)));
    CHECK(has_id(frame_to(4, 0), "dropped", pid(3)));
    /* Activity brings it back. */
    pex_tick(e, at(2870));
    clear_frames();
    pex_registrant_seen(e, 3, at(2900));
    CHECK_EQ_INT((long long)pex_next_due(e), 0);
    pex_tick(e, at(2900));
    CHECK(has_id(frame_to(1, 0), "added", pid(3)));
    CHECK_EQ_INT((long long)pex_registrant_count(e), 4);
    pex_engine_free(e);
}

static void test_delta_timing_and_jitter_bounds(void)
{
    uint64_t lo = UINT64_MAX, hi = 0;
    for (uint64_t seed = 1; seed <= 200; seed++) {
        pex_engine *e = engine("mainnet", 16, seed);
        REQUIRE(e);
        REQUIRE(reg(e, 1, 1, at(0)));
        up(e, 1, at(100));
        REQUIRE(reg(e, 2, 2, at(101)));
        uint64_t due = pex_next_due(e);
        REQUIRE(due >= MONO0 + 160000 && due <= MONO0 + 166000);
        if (due < lo)
            lo = due;
        if (due > hi)
            hi = due;
        pex_tick(e, at_ms(due - MONO0 - 1));
        CHECK_EQ_INT((long long)n_frames, 0);
        pex_tick(e, at_ms(due - MONO0));
        REQUIRE(count_to(1) == 1);
        CHECK(has_id(frame_to(1, 0), "added", pid(2)));
        /* The next one is spaced from this send, with a fresh draw. */
        REQUIRE(reg(e, 3, 3, at(170)));
        uint64_t next = pex_next_due(e);
        CHECK(next >= due + 60000 && next <= due + 66000);
        pex_engine_free(e);
    }
    /* The draws spread over the 10% window. */
    CHECK(lo < MONO0 + 161000);
    CHECK(hi > MONO0 + 165000);
}

static void test_delta_interval_honours_node_declaration(void)
{
    static const struct { const char *interval; uint64_t eff; } cases[] = {
        { "120", 120 }, { "10", 60 }, { "30", 60 }, { "5000", 3600 }, { "4294967295", 3600 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pex_engine *e = engine("mainnet", 16, 7);
        REQUIRE(e);
        REQUIRE(reg(e, 1, 1, at(0)));
        char hs[160];
        snprintf(hs, sizeof hs, "{\"type\":\"pex_handshake\",\"version\":1,"
                 "\"network_id\":\"mainnet\",\"interval\":%s}", cases[i].interval);
        CHECK_EQ_INT(feed(e, 1, hs, at(0)), PEX_ACCEPTED);
        clear_frames();
        REQUIRE(reg(e, 2, 2, at(1)));
        /* Keep both entries fresh over long intervals. */
        for (uint64_t t = 1000; t < cases[i].eff; t += 1000) {
            pex_registrant_seen(e, 1, at(t));
            pex_registrant_seen(e, 2, at(t));
            pex_tick(e, at(t));
        }
        pex_tick(e, at_ms(cases[i].eff * 1000 - 1));
        CHECK_EQ_INT((long long)n_frames, 0);
        pex_tick(e, at_ms(cases[i].eff * 1100));
        CHECK_EQ_INT((long long)n_frames, 1);
        pex_engine_free(e);
    }
}

static void test_no_empty_delta_and_no_idle_wakeups(void)
{
    pex_engine *e = engine("mainnet", 16, 3);
    REQUIRE(e);
    REQUIRE(reg(e, 1, 1, at(0)));
    REQUIRE(reg(e, 2, 2, at(0)));
    up(e, 1, at(0));
    /* Due, but nothing changed: nothing is sent and nothing is due any more. */
    uint64_t due = pex_next_due(e);
    pex_tick(e, at_ms(due - MONO0));
    CHECK_EQ_INT((long long)n_frames, 0);
    CHECK_EQ_INT((long long)pex_next_due(e), (long long)(MONO0 + 1801000));
    pex_registrant_seen(e, 1, at(500));
    pex_registrant_seen(e, 2, at(500));
    /* Heartbeats alone never re-advertise. */
    pex_tick(e, at(600));
    CHECK_EQ_INT((long long)n_frames, 0);
    /* A change makes the idle link due at once (it already waited its interval). */
    REQUIRE(reg(e, 3, 3, at(700)));
    CHECK_EQ_INT((long long)pex_next_due(e), 0);
    pex_tick(e, at(700));
    CHECK(has_id(frame_to(1, 0), "added", pid(3)));
    /* Another change waits for the interval after that send. */
    clear_frames();
    pex_registrant_down(e, 3);
    due = pex_next_due(e);
    CHECK(due >= MONO0 + 760000 && due <= MONO0 + 766000);
    pex_tick(e, at(740));
    CHECK_EQ_INT((long long)n_frames, 0);
    pex_tick(e, at_ms(due - MONO0));
    CHECK_EQ_STR(frame_to(1, 0), "{\"type\":\"pex_delta\",\"added\":[],\"dropped\":["
                                 "\"0000000000000000000000000000000000000000000000000000000000000003\"]}");
    pex_engine_free(e);
}

static void test_caps_and_carry_over(void)
{
    pex_engine *e = engine("mainnet", 256, 5);
    REQUIRE(e);
    REQUIRE(reg(e, 1, 1, at(0)));
    up(e, 1, at(0));
    for (unsigned i = 2; i <= 121; i++)
        REQUIRE(reg(e, i, i, at_ms(i * 100)));
    size_t got[3];
    uint64_t last = MONO0;
    for (int k = 0; k < 3; k++) {
        uint64_t due = pex_next_due(e);
        CHECK(due >= last + 60000);
        last = due;
        pex_tick(e, at_ms(due - MONO0));
        const char *d = frame_to(1, (size_t)k);
        REQUIRE(d);
        got[k] = count_ids(d, "added");
        /* Freshest first: the first delta starts with the newest registration. */
        if (k == 0)
            CHECK(strstr(d, pid(121)) == strstr(d, "\"peer_id\":\"") + 11);
    }
    CHECK_EQ_INT((long long)got[0], 50);
    CHECK_EQ_INT((long long)got[1], 50);
    CHECK_EQ_INT((long long)got[2], 20);
    /* Told everything: the next due moment passes silently, then only ageing is ahead. */
    pex_tick(e, at_ms(pex_next_due(e) - MONO0));
    CHECK_EQ_INT((long long)n_frames, 3);
    CHECK_EQ_INT((long long)pex_next_due(e), (long long)(MONO0 + 1801000));
    /* Departures: at most 50 dropped per delta, ascending peer id, the rest carried over. */
    clear_frames();
    for (unsigned i = 2; i <= 121; i++)
        pex_registrant_down(e, i);
    CHECK_EQ_INT((long long)pex_next_due(e), 0);
    static char ids[64][65];
    for (int k = 0; k < 3; k++) {
        uint64_t due = pex_next_due(e);
        pex_tick(e, at_ms(due ? due - MONO0 : 300000));
        const char *d = frame_to(1, (size_t)k);
        REQUIRE(d);
        size_t n = list_ids(d, "dropped", ids, 64);
        CHECK_EQ_INT((long long)n, k < 2 ? 50 : 20);
        CHECK_EQ_STR(ids[0], pid(2 + 50 * (unsigned)k));
        CHECK_EQ_INT((long long)count_ids(d, "added"), 0);
    }
    CHECK_EQ_INT(bad_frames, 0);
    pex_engine_free(e);
}

static void test_fingerprint_suppression_and_updates(void)
{
    pex_engine *e = engine("mainnet", 16, 9);
    REQUIRE(e);
    REQUIRE(reg(e, 1, 1, at(0)));
    REQUIRE(reg(e, 2, 2, at(0)));
    up(e, 1, at(0));
    /* Re-registering with the same content: nothing to tell. */
    REQUIRE(reg(e, 2, 2, at(10)));
    pex_tick(e, at(100));
    CHECK_EQ_INT((long long)n_frames, 0);
    /* New listen addresses: an update in `added`, now with dialable addresses and no flag. */
    addr_t o = A("198.51.100.3:40002"), dial = A("198.51.100.3:9444");
    REQUIRE(pex_registrant_up(e, 2, pid(2), 64, &o, &dial, 1, at(120)));
    CHECK_EQ_INT((long long)pex_next_due(e), 0);
    pex_tick(e, at(120));
    const char *d = frame_to(1, 0);
    REQUIRE(d);
    CHECK(has_id(d, "added", pid(2)));
    CHECK(strstr(d, "\"port\":9444,\"kind\":\"reflexive\"}],") != NULL);
    CHECK(strstr(d, "\"flags\":[]}") != NULL);
    CHECK_EQ_INT((long long)count_ids(d, "dropped"), 0);
    /* A port 0 listen address is never published: back to observed + relay-only. */
    clear_frames();
    addr_t zero = A("198.51.100.3:0");
    REQUIRE(pex_registrant_up(e, 2, pid(2), 64, &o, &zero, 1, at(130)));
    pex_tick(e, at(200));
    d = frame_to(1, 0);
    REQUIRE(d);
    CHECK(strstr(d, "\"port\":40002,\"kind\":\"reflexive\"}],") != NULL);
    CHECK(strstr(d, "\"flags\":[\"relay-only\"]}") != NULL);
    /* Seen again and again: never re-advertised. */
    clear_frames();
    for (unsigned t = 200; t < 1000; t += 30)
        pex_registrant_seen(e, 2, at(t));
    pex_tick(e, at(1000));
    CHECK_EQ_INT((long long)n_frames, 0);
    pex_engine_free(e);
}

static void test_reconnect_keeps_told_state(void)
{
    pex_engine *e = engine("mainnet", 16, 9);
    REQUIRE(e);
    REQUIRE(reg(e, 1, 1, at(0)));
    REQUIRE(reg(e, 2, 2, at(0)));
    up(e, 1, at(0));
    /* Peer 2 drops its connection and comes back on another one with the same addresses. */
    pex_registrant_down(e, 2);
    REQUIRE(reg(e, 3, 2, at(30)));
    pex_tick(e, at(100));
    CHECK_EQ_INT((long long)n_frames, 0);
    /* Back again from elsewhere: one update, never the same id in added and dropped. */
    pex_registrant_down(e, 3);
    addr_t o = A("192.0.2.44:1234");
    REQUIRE(pex_registrant_up(e, 4, pid(2), 64, &o, NULL, 0, at(110)));
    pex_tick(e, at(200));
    const char *d = frame_to(1, 0);
    REQUIRE(d);
    CHECK(has_id(d, "added", pid(2)));
    CHECK_EQ_INT((long long)count_ids(d, "dropped"), 0);
    /* A second live registration of the same peer id takes it over from the first. */
    clear_frames();
    REQUIRE(reg(e, 5, 2, at(210)));
    CHECK_EQ_INT((long long)pex_registrant_count(e), 2);
    pex_registrant_down(e, 4);    /* already gone: no effect */
    pex_tick(e, at(300));
    d = frame_to(1, 0);
    REQUIRE(d);
    CHECK(has_id(d, "added", pid(2)));
    CHECK_EQ_INT((long long)count_ids(d, "dropped"), 0);
    pex_engine_free(e);
}

static void test_dropped_only_where_told_and_told_reset(void)
{
    pex_engine *e = engine("mainnet", 16, 11);
    REQUIRE(e);
    REQUIRE(reg(e, 1, 1, at(0)));
    REQUIRE(reg(e, 2, 2, at(0)));
    up(e, 1, at(0));                    /* told 2 */
    REQUIRE(reg(e, 3, 3, at(1)));
    up(e, 3, at(1));                    /* told 1 and 2 */
    REQUIRE(reg(e, 4, 4, at(2)));       /* told to nobody yet */
    pex_registrant_down(e, 4);
    pex_registrant_down(e, 2);
    pex_tick(e, at(100));
    CHECK_EQ_STR(frame_to(1, 0), "{\"type\":\"pex_delta\",\"added\":[{\"peer_id\":"
        "\"0000000000000000000000000000000000000000000000000000000000000003\",\"addresses\":"
        "[{\"host\":\"198.51.100.4\",\"port\":40003,\"kind\":\"reflexive\"}],\"network_id\":"
        "\"mainnet\",\"last_seen\":1700000001,\"via\":\"introducer\",\"flags\":[\"relay-only\"]}],"
        "\"dropped\":[\"0000000000000000000000000000000000000000000000000000000000000002\"]}");
    CHECK_EQ_STR(frame_to(3, 0), "{\"type\":\"pex_delta\",\"added\":[],\"dropped\":["
        "\"0000000000000000000000000000000000000000000000000000000000000002\"]}");
    CHECK_EQ_INT((long long)n_frames, 2);
    /* Link 1 goes away with its connection; the peer comes back on a new one and starts over:
     * a full snapshot again. */
    clear_frames();
    pex_registrant_down(e, 1);
    CHECK_EQ_INT((long long)pex_link_count(e), 1);
    REQUIRE(reg(e, 6, 1, at(150)));
    CHECK_EQ_INT(feed(e, 6, HS_NODE, at(150)), PEX_ACCEPTED);
    CHECK(has_id(frame_to(6, 1), "peers", pid(3)));
    CHECK_EQ_INT((long long)count_ids(frame_to(6, 1), "peers"), 1);
    /* The departed peer 1 came back with the same content: link 3 hears nothing. */
    pex_tick(e, at(400));
    CHECK_EQ_INT((long long)count_to(3), 0);
    pex_engine_free(e);
}

static void test_scoping_across_engines(void)
{
    pex_engine *a = engine("mainnet", 16, 1);
    pex_engine *b = pex_engine_new("testnet", 7, 16, 1, capture, NULL);
    REQUIRE(a && b);
    REQUIRE(reg(a, 1, 1, at(0)));
    REQUIRE(reg(a, 2, 2, at(0)));
    REQUIRE(reg(b, 3, 3, at(0)));
    REQUIRE(reg(b, 4, 4, at(0)));
    CHECK_EQ_INT(feed(a, 1, HS_NODE, at(1)), PEX_ACCEPTED);
    CHECK(has_id(frame_to(1, 1), "peers", pid(2)));
    CHECK(!has_id(frame_to(1, 1), "peers", pid(3)));
    CHECK(!has_id(frame_to(1, 1), "peers", pid(4)));
    /* A testnet registrant claiming mainnet in its handshake is refused. */
    CHECK_EQ_INT(feed(b, 3, HS_NODE, at(1)), PEX_ERR_NETWORK_MISMATCH);
    /* Changes in one network never reach the other's links. */
    clear_frames();
    REQUIRE(reg(b, 5, 5, at(2)));
    pex_tick(a, at(100));
    pex_tick(b, at(100));
    CHECK_EQ_INT((long long)n_frames, 0);
    pex_engine_free(a);
    pex_engine_free(b);
}

/* ---- node direction ---- */

static const char *const ERR[7] = {
    NULL,
    "{\"type\":\"pex_error\",\"code\":1,\"message\":\"bad message\"}",
    "{\"type\":\"pex_error\",\"code\":2,\"message\":\"unsupported version\"}",
    "{\"type\":\"pex_error\",\"code\":3,\"message\":\"rate violation\"}",
    "{\"type\":\"pex_error\",\"code\":4,\"message\":\"oversized\"}",
    "{\"type\":\"pex_error\",\"code\":5,\"message\":\"network mismatch\"}",
    "{\"type\":\"pex_error\",\"code\":6,\"message\":\"protocol violation\"}",
};

static void test_version_and_network_mismatch_mute(void)
{
    pex_engine *e = engine("mainnet", 16, 1);
    REQUIRE(e);
    REQUIRE(reg(e, 1, 1, at(0)));
    REQUIRE(reg(e, 2, 2, at(0)));
    CHECK_EQ_INT(feed(e, 1, "{\"type\":\"pex_handshake\",\"version\":2,\"network_id\":"
                      "\"mainnet\",\"interval\":60}", at(1)), PEX_ERR_UNSUPPORTED_VERSION);
    CHECK_EQ_INT((long long)n_frames, 1);
    CHECK_EQ_STR(frame_to(1, 0), ERR[2]);
    CHECK(pex_link_muted(e, 1));
    CHECK_EQ_INT(feed(e, 1, HS_NODE, at(2)), PEX_IGNORED);
    CHECK_EQ_INT((long long)n_frames, 1);

    CHECK_EQ_INT(feed(e, 2, "{\"type\":\"pex_handshake\",\"version\":1,\"network_id\":"
                      "\"testnet\",\"interval\":60}", at(1)), PEX_ERR_NETWORK_MISMATCH);
    CHECK_EQ_STR(frame_to(2, 0), ERR[5]);
    CHECK_EQ_INT((long long)count_to(2), 1);
    CHECK(pex_link_muted(e, 2));
    /* Neither direction came up: registrations reach neither. */
    clear_frames();
    REQUIRE(reg(e, 3, 3, at(5)));
    pex_tick(e, at(1000));
    CHECK_EQ_INT((long long)n_frames, 0);
    CHECK_EQ_INT((long long)pex_next_due(e), (long long)UINT64_MAX);
    pex_engine_free(e);
}

static void test_state_machine_violations(void)
{
    pex_engine *e = engine("mainnet", 16, 1);
    REQUIRE(e);
    REQUIRE(reg(e, 1, 1, at(0)));
    /* A broken handshake opens the gate (the node speaks PEX) but counts as a bad message;
     * data then arrives before any handshake was accepted. */
    CHECK_EQ_INT(feed(e, 1, "{\"type\":\"pex_handshake\",\"version\":1}", at(0)),
                 PEX_ERR_BAD_MESSAGE);
    CHECK_EQ_STR(frame_to(1, 0), ERR[1]);
    CHECK_EQ_INT(feed(e, 1, "{\"type\":\"pex_snapshot\",\"peers\":[]}", at(0)), PEX_ERR_PROTOCOL);
    CHECK_EQ_STR(frame_to(1, 1), ERR[6]);
    CHECK_EQ_INT((long long)count_to(1), 2);

    REQUIRE(reg(e, 2, 2, at(0)));
    up(e, 2, at(0));
    CHECK_EQ_INT(feed(e, 2, "{\"type\":\"pex_delta\",\"added\":[],\"dropped\":[]}", at(1)),
                 PEX_ERR_PROTOCOL);
    CHECK_EQ_STR(frame_to(2, 0), ERR[6]);
    CHECK_EQ_INT(feed(e, 2, "{\"type\":\"pex_snapshot\",\"peers\":[]}", at(2)), PEX_ACCEPTED);
    CHECK_EQ_INT(feed(e, 2, "{\"type\":\"pex_snapshot\",\"peers\":[]}", at(100)),
                 PEX_ERR_PROTOCOL);
    CHECK_EQ_STR(frame_to(2, 1), ERR[6]);
    CHECK_EQ_INT((long long)count_to(2), 2);
    pex_engine_free(e);

    e = engine("mainnet", 16, 1);
    REQUIRE(reg(e, 1, 1, at(0)));
    up(e, 1, at(0));
    CHECK_EQ_INT(feed(e, 1, HS_NODE, at(1)), PEX_ERR_PROTOCOL);
    CHECK_EQ_STR(frame_to(1, 0), ERR[6]);
    CHECK_EQ_INT((long long)count_to(1), 1);   /* no second handshake or snapshot */
    pex_engine_free(e);
}

static void test_rate_floor(void)
{
    pex_engine *e = engine("mainnet", 16, 1);
    REQUIRE(e);
    REQUIRE(reg(e, 1, 1, at(0)));
    up(e, 1, at(0));
    static const char delta[] = "{\"type\":\"pex_delta\",\"added\":[],\"dropped\":[]}";
    CHECK_EQ_INT(feed(e, 1, "{\"type\":\"pex_snapshot\",\"peers\":[]}", at(10)), PEX_ACCEPTED);
    /* Declared 60 s: the floor is 55 s after the previous data message. */
    CHECK_EQ_INT(pex_on_frame(e, 1, delta, sizeof delta - 1, at_ms(10000 + 54999)), PEX_ERR_RATE);
    CHECK_EQ_STR(frame_to(1, 0), ERR[3]);
    CHECK_EQ_INT(pex_on_frame(e, 1, delta, sizeof delta - 1, at_ms(10000 + 55000)), PEX_ACCEPTED);
    CHECK_EQ_INT(pex_on_frame(e, 1, delta, sizeof delta - 1, at_ms(65000 + 55000)), PEX_ACCEPTED);
    CHECK_EQ_INT((long long)count_to(1), 1);
    pex_engine_free(e);

    /* A short declaration is clamped to 30 s before the 5 s grace. */
    e = engine("mainnet", 16, 1);
    REQUIRE(reg(e, 1, 1, at(0)));
    CHECK_EQ_INT(feed(e, 1, "{\"type\":\"pex_handshake\",\"version\":1,\"network_id\":"
                      "\"mainnet\",\"interval\":1}", at(0)), PEX_ACCEPTED);
    CHECK_EQ_INT(feed(e, 1, "{\"type\":\"pex_snapshot\",\"peers\":[]}", at(0)), PEX_ACCEPTED);
    clear_frames();
    CHECK_EQ_INT(pex_on_frame(e, 1, delta, sizeof delta - 1, at_ms(24999)), PEX_ERR_RATE);
    CHECK_EQ_INT(pex_on_frame(e, 1, delta, sizeof delta - 1, at_ms(25000)), PEX_ACCEPTED);
    pex_engine_free(e);
}

static char *entries_frame(const char *head, unsigned n, const char *tail)
{
    size_t cap = strlen(head) + strlen(tail) + (size_t)n * 220 + 1;
    char *s = malloc(cap);
    size_t k = (size_t)snprintf(s, cap, "%s", head);
    for (unsigned i = 0; i < n; i++)
        k += (size_t)snprintf(s + k, cap - k, "%s{\"peer_id\":\"%s\",\"addresses\":[{\"host\":"
                              "\"203.0.113.9\",\"port\":9444,\"kind\":\"direct\"}],\"network_id\":"
                              "\"mainnet\",\"last_seen\":1700000000,\"via\":\"direct\"}",
                              i ? "," : "", pid(1000 + i));
    snprintf(s + k, cap - k, "%s", tail);
    return s;
}

static char *ids_frame(const char *head, unsigned n, const char *tail)
{
    size_t cap = strlen(head) + strlen(tail) + (size_t)n * 70 + 1;
    char *s = malloc(cap);
    size_t k = (size_t)snprintf(s, cap, "%s", head);
    for (unsigned i = 0; i < n; i++)
        k += (size_t)snprintf(s + k, cap - k, "%s\"%s\"", i ? "," : "", pid(5000 + i));
    snprintf(s + k, cap - k, "%s", tail);
    return s;
}

static void test_list_caps(void)
{
    pex_engine *e = engine("mainnet", 16, 1);
    REQUIRE(e);
    REQUIRE(reg(e, 1, 1, at(0)));
    up(e, 1, at(0));
    char *big = entries_frame("{\"type\":\"pex_snapshot\",\"peers\":[", 201, "]}");
    CHECK_EQ_INT(feed(e, 1, big, at(0)), PEX_ERR_OVERSIZED);
    CHECK_EQ_STR(frame_to(1, 0), ERR[4]);
    free(big);
    char *ok = entries_frame("{\"type\":\"pex_snapshot\",\"peers\":[", 200, "]}");
    CHECK_EQ_INT(feed(e, 1, ok, at(0)), PEX_ACCEPTED);
    free(ok);
    pex_engine_free(e);

    e = engine("mainnet", 16, 1);
    REQUIRE(reg(e, 1, 1, at(0)));
    up(e, 1, at(0));
    CHECK_EQ_INT(feed(e, 1, "{\"type\":\"pex_snapshot\",\"peers\":[]}", at(0)), PEX_ACCEPTED);
    char *added = entries_frame("{\"type\":\"pex_delta\",\"added\":[", 51, "],\"dropped\":[]}");
    CHECK_EQ_INT(feed(e, 1, added, at(60)), PEX_ERR_OVERSIZED);
    free(added);
    char *dropped = ids_frame("{\"type\":\"pex_delta\",\"added\":[],\"dropped\":[", 51, "]}");
    CHECK_EQ_INT(feed(e, 1, dropped, at(120)), PEX_ERR_OVERSIZED);
    free(dropped);
    CHECK(pex_link_muted(e, 1) == false);
    char *fine = ids_frame("{\"type\":\"pex_delta\",\"added\":[],\"dropped\":[", 50, "]}");
    CHECK_EQ_INT(feed(e, 1, fine, at(180)), PEX_ACCEPTED);
    free(fine);
    CHECK_EQ_INT((long long)count_to(1), 2);
    pex_engine_free(e);
}

static void test_oversized_frame(void)
{
    pex_engine *e = engine("mainnet", 16, 1);
    REQUIRE(e);
    REQUIRE(reg(e, 1, 1, at(0)));
    up(e, 1, at(0));
    size_t n = PEX_MAX_FRAME + 1;
    char *f = malloc(n);
    memset(f, ' ', n);
    static const char msg[] = "{\"type\":\"pex_error\",\"code\":1,\"message\":\"x\"}";
    memcpy(f, msg, sizeof msg - 1);
    CHECK_EQ_INT(pex_on_frame(e, 1, f, n, at(1)), PEX_ERR_OVERSIZED);
    CHECK_EQ_STR(frame_to(1, 0), ERR[4]);
    CHECK_EQ_INT(pex_on_frame(e, 1, f, n - 1, at(1)), PEX_ACCEPTED);
    free(f);
    pex_engine_free(e);
}

static void test_bad_messages(void)
{
    static const char *const bad[] = {
        "{\"type\":\"pex_bogus\"}",
        "{\"type\":\"pex_error\",\"code\":3}",
        "{\"type\":\"pex_error\",\"code\":70000,\"message\":\"x\"}",
        "{\"type\":\"pex_error\",\"code\":-1,\"message\":\"x\"}",
        "{\"type\":\"pex_error\",\"code\":1.0,\"message\":\"x\"}",
        "{\"type\":\"pex_error\",\"code\":1,\"message\":\"x\",\"code\":2}",
        "{\"type\":\"pex_error\",\"type\":\"pex_error\",\"code\":1,\"message\":\"x\"}",
        "{\"type\":\"pex_error\",\"code\":1,\"message\":\"x\"} x",
        "{\"type\":\"pex_snapshot\"}",
        "{\"type\":\"pex_snapshot\",\"peers\":{}}",
        "{\"type\":\"pex_snapshot\",\"peers\":[1]}",
        "{\"type\":\"pex_snapshot\",\"peers\":[{\"peer_id\":7}]}",
        "{\"type\":\"pex_snapshot\",\"peers\":[{\"addresses\":[{\"port\":70000}]}]}",
        "{\"type\":\"pex_snapshot\",\"peers\":[{\"addresses\":[{\"host\":\"a\",\"host\":\"b\"}]}]}",
        "{\"type\":\"pex_snapshot\",\"peers\":[{\"flags\":[1]}]}",
        "{\"type\":\"pex_snapshot\",\"peers\":[{\"last_seen\":null}]}",
        "{\"type\":\"pex_delta\",\"added\":[]}",
        "{\"type\":\"pex_delta\",\"added\":[],\"dropped\":[7]}",
        "{\"type\":\"pex_handshake\",\"version\":4294967296,\"network_id\":\"mainnet\","
        "\"interval\":60}",
        "{\"type\":\"pex_handshake\",\"version\":1,\"network_id\":\"mainnet\",\"interval\":60,"
        "\"flags\":null}",
        "[\"pex_error\"]",
        "\"pex_error\"",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pex_engine *e = engine("mainnet", 16, 1);
        REQUIRE(e);
        REQUIRE(reg(e, 1, 1, at(0)));
        up(e, 1, at(0));
        int rc = feed(e, 1, bad[i], at(1));
        if (rc != PEX_ERR_BAD_MESSAGE)
            printf("  case %zu: %s gave %d\n", i, bad[i], rc);
        CHECK_EQ_INT(rc, PEX_ERR_BAD_MESSAGE);
        CHECK_EQ_STR(frame_to(1, 0) ? frame_to(1, 0) : "", ERR[1]);
        pex_engine_free(e);
    }
    /* Tolerated: unknown fields and kinds, missing entry fields, a payment claim. */
    pex_engine *e = engine("mainnet", 16, 1);
    REQUIRE(e);
    REQUIRE(reg(e, 1, 1, at(0)));
    up(e, 1, at(0));
    CHECK_EQ_INT(feed(e, 1, "{\"peers\":[{},{\"peer_id\":\"x\",\"addresses\":[{\"kind\":\"warp\","
                      "\"extra\":1}],\"via\":\"teleport\",\"payment\":{\"address\":\"xch1\"}}],"
                      "\"type\":\"pex_snapshot\",\"more\":null}", at(1)), PEX_ACCEPTED);
    CHECK_EQ_INT((long long)n_frames, 0);
    pex_engine_free(e);
}

static void test_added_and_dropped_overlap(void)
{
    pex_engine *e = engine("mainnet", 16, 1);
    REQUIRE(e);
    REQUIRE(reg(e, 1, 1, at(0)));
    up(e, 1, at(0));
    CHECK_EQ_INT(feed(e, 1, "{\"type\":\"pex_snapshot\",\"peers\":[]}", at(0)), PEX_ACCEPTED);
    CHECK_EQ_INT(feed(e, 1, "{\"type\":\"pex_delta\",\"added\":[{\"peer_id\":\"ab\"}],"
                      "\"dropped\":[\"cd\",\"ab\"]}", at(60)), PEX_ERR_BAD_MESSAGE);
    /* Compared after unescaping. */
    CHECK_EQ_INT(feed(e, 1, "{\"type\":\"pex_delta\",\"added\":[{\"peer_id\":\"a\\u0062\"}],"
                      "\"dropped\":[\"\\u0061b\"]}", at(120)), PEX_ERR_BAD_MESSAGE);
    /* A rejected delta does not move the arrival clock; distinct ids pass. */
    CHECK_EQ_INT(feed(e, 1, "{\"type\":\"pex_delta\",\"added\":[{\"peer_id\":\"a\\u0062\"}],"
                      "\"dropped\":[\"\\u0061c\"]}", at(120)), PEX_ACCEPTED);
    pex_engine_free(e);
}

static void test_three_strikes_mute(void)
{
    pex_engine *e = engine("mainnet", 16, 1);
    REQUIRE(e);
    REQUIRE(reg(e, 1, 1, at(0)));
    REQUIRE(reg(e, 2, 2, at(0)));
    up(e, 1, at(0));
    CHECK_EQ_INT(feed(e, 1, "{}", at(1)), PEX_ERR_BAD_MESSAGE);
    CHECK(!pex_link_muted(e, 1));
    CHECK_EQ_INT(feed(e, 1, "{\"type\":\"pex_delta\",\"added\":[],\"dropped\":[]}", at(2)),
                 PEX_ERR_PROTOCOL);
    CHECK(!pex_link_muted(e, 1));
    CHECK_EQ_INT(feed(e, 1, HS_NODE, at(3)), PEX_ERR_PROTOCOL);
    CHECK(pex_link_muted(e, 1));
    CHECK_EQ_INT((long long)count_to(1), 3);
    CHECK_EQ_INT(feed(e, 1, "{}", at(4)), PEX_IGNORED);
    CHECK_EQ_INT(feed(e, 1, "{\"type\":\"pex_snapshot\",\"peers\":[]}", at(4)), PEX_IGNORED);
    CHECK_EQ_INT((long long)count_to(1), 3);
    /* Muting the node's direction leaves ours running. */
    clear_frames();
    REQUIRE(reg(e, 3, 3, at(5)));
    pex_tick(e, at(100));
    CHECK(has_id(frame_to(1, 0), "added", pid(3)));
    pex_engine_free(e);
}

static void test_node_entries_never_advertised(void)
{
    pex_engine *e = engine("mainnet", 16, 1);
    REQUIRE(e);
    REQUIRE(reg(e, 1, 1, at(0)));
    REQUIRE(reg(e, 2, 2, at(0)));
    up(e, 1, at(0));
    char *snap = entries_frame("{\"type\":\"pex_snapshot\",\"peers\":[", 3, "]}");
    CHECK_EQ_INT(feed(e, 1, snap, at(1)), PEX_ACCEPTED);
    free(snap);
    CHECK_EQ_INT((long long)pex_registrant_count(e), 2);
    CHECK_EQ_INT(feed(e, 2, HS_NODE, at(2)), PEX_ACCEPTED);
    CHECK_EQ_INT((long long)count_ids(frame_to(2, 1), "peers"), 1);
    CHECK(has_id(frame_to(2, 1), "peers", pid(1)));
    CHECK(!has_id(frame_to(2, 1), "peers", pid(1000)));
    clear_frames();
    pex_tick(e, at(200));
    CHECK_EQ_INT((long long)n_frames, 0);
    pex_engine_free(e);
}

static void test_backoff_on_rate_error(void)
{
    pex_engine *e = engine("mainnet", 16, 1);
    REQUIRE(e);
    REQUIRE(reg(e, 1, 1, at(0)));
    up(e, 1, at(0));
    static const char err3[] = "{\"type\":\"pex_error\",\"code\":3,\"message\":\"rate violation\"}";
    /* Long after our last data message a code 3 cannot be about it: ignored. */
    CHECK_EQ_INT(feed(e, 1, err3, at(55)), PEX_ACCEPTED);
    REQUIRE(reg(e, 2, 2, at(56)));
    uint64_t due = pex_next_due(e);
    CHECK(due <= MONO0 + 66000);
    pex_tick(e, at_ms(due - MONO0));
    CHECK_EQ_INT((long long)count_to(1), 1);
    /* Right after our delta it is plausible: the interval doubles, once per interval. */
    CHECK_EQ_INT(feed(e, 1, err3, at_ms(due - MONO0 + 1000)), PEX_ACCEPTED);
    CHECK_EQ_INT(feed(e, 1, err3, at_ms(due - MONO0 + 2000)), PEX_ACCEPTED);
    REQUIRE(reg(e, 3, 3, at_ms(due - MONO0 + 3000)));
    uint64_t next = pex_next_due(e);
    CHECK(next >= due + 120000 && next <= due + 126000);
    CHECK_EQ_INT((long long)n_frames, 1);   /* pex_error never answers a pex_error */
    pex_engine_free(e);
}

static void test_byte_budget_splits_frames(void)
{
    /* Long ids full of control characters escape to six bytes each: 200 such entries cannot
     * fit one frame, so the snapshot stops short and the rest follows in deltas. */
    char net[PEX_MAX_ID_LEN];
    memset(net, 1, sizeof net);
    pex_engine *e = pex_engine_new(net, sizeof net, 512, 1, capture, NULL);
    clear_frames();
    bad_frames = 0;
    REQUIRE(e);
    addr_t o = A("203.0.113.5:4000");
    char id[PEX_MAX_ID_LEN];
    for (unsigned i = 0; i < 260; i++) {
        memset(id, 2, sizeof id);
        snprintf(id, 8, "%06u", i);
        REQUIRE(pex_registrant_up(e, i + 1, id, sizeof id, &o, NULL, 0, at(i)));
    }
    memset(id, 3, sizeof id);
    CHECK(!pex_registrant_up(e, 999, id, PEX_MAX_ID_LEN + 1, &o, NULL, 0, at(0)));
    CHECK(!pex_registrant_up(e, 999, id, 0, &o, NULL, 0, at(0)));
    char hs[2048];
    size_t k = (size_t)snprintf(hs, sizeof hs, "{\"type\":\"pex_handshake\",\"version\":1,"
                                "\"interval\":60,\"network_id\":\"");
    for (size_t i = 0; i < sizeof net; i++)
        k += (size_t)snprintf(hs + k, sizeof hs - k, "\\u0001");
    snprintf(hs + k, sizeof hs - k, "\"}");
    CHECK_EQ_INT(feed(e, 1, hs, at(300)), PEX_ACCEPTED);
    const char *snap = frame_to(1, 1);
    REQUIRE(snap);
    size_t in_snap = count_ids(snap, "peers");
    CHECK(in_snap > 40 && in_snap < 200);
    CHECK(strlen(snap) <= PEX_MAX_FRAME);
    size_t total = in_snap;
    for (int round = 0; round < 10 && total < 259; round++) {
        pex_tick(e, at(300 + 67 * (uint64_t)(round + 1)));
        const char *d = frame_to(1, (size_t)round + 2);
        REQUIRE(d);
        total += count_ids(d, "added");
    }
    CHECK_EQ_INT((long long)total, 259);
    CHECK_EQ_INT(bad_frames, 0);
    pex_engine_free(e);
}

static void test_table_bounds_and_reclaim(void)
{
    /* max 32 registrants: 64 slots, half of them for departed entries owed a `dropped`. */
    pex_engine *e = engine("mainnet", 32, 1);
    REQUIRE(e);
    for (unsigned i = 1; i <= 64; i++)
        REQUIRE(reg(e, i, i, at(0)));
    CHECK(!reg(e, 65, 65, at(0)));
    CHECK_EQ_INT((long long)pex_registrant_count(e), 64);
    for (unsigned i = 3; i <= 64; i++)
        pex_registrant_down(e, i);
    REQUIRE(reg(e, 3, 3, at(1)));
    up(e, 1, at(2));              /* told 2 and 3 */
    up(e, 2, at(2));
    /* Fill the table, then let everything depart while link 1 still owes drops. */
    for (unsigned i = 4; i <= 64; i++)
        REQUIRE(reg(e, i, i, at(3)));
    pex_tick(e, at(100));
    CHECK_EQ_INT((long long)count_ids(frame_to(1, 0), "added"), 50);
    clear_frames();
    for (unsigned i = 3; i <= 64; i++)
        pex_registrant_down(e, i);
    /* New registrations take the oldest departed slots; their drops are given up. */
    for (unsigned i = 100; i < 160; i++)
        REQUIRE(reg(e, i, i, at(110)));
    CHECK_EQ_INT((long long)pex_registrant_count(e), 62);
    size_t dropped = 0, added = 0;
    for (int round = 0; round < 6; round++) {
        pex_tick(e, at(200 + 70 * (uint64_t)round));
        const char *d = frame_to(1, (size_t)round);
        if (!d)
            break;
        dropped += count_ids(d, "dropped");
        added += count_ids(d, "added");
    }
    CHECK(dropped < 51);
    CHECK_EQ_INT((long long)added, 60);
    CHECK_EQ_INT(bad_frames, 0);
    pex_engine_free(e);
}

static void test_engine_arguments(void)
{
    CHECK(pex_engine_new("", 0, 16, 1, capture, NULL) == NULL);
    CHECK(pex_engine_new("n", 1, 0, 1, capture, NULL) == NULL);
    CHECK(pex_engine_new("n", 1, 16, 1, NULL, NULL) == NULL);
    char big[PEX_MAX_ID_LEN + 1];
    memset(big, 'n', sizeof big);
    CHECK(pex_engine_new(big, sizeof big, 16, 1, capture, NULL) == NULL);
    pex_engine *e = pex_engine_new(big, PEX_MAX_ID_LEN, 16, 1, capture, NULL);
    CHECK(e != NULL);
    pex_engine_free(e);
    pex_engine_free(NULL);
}

int main(void)
{
    RUN(test_gate_before_handshake);
    RUN(test_handshake_and_snapshot_bytes);
    RUN(test_handshake_escapes_network_and_accepts_unknown_fields);
    RUN(test_snapshot_freshest_first_capped_others_only);
    RUN(test_last_seen_follows_activity);
    RUN(test_stale_entries_not_advertised_then_dropped);
    RUN(test_delta_timing_and_jitter_bounds);
    RUN(test_delta_interval_honours_node_declaration);
    RUN(test_no_empty_delta_and_no_idle_wakeups);
    RUN(test_caps_and_carry_over);
    RUN(test_fingerprint_suppression_and_updates);
    RUN(test_reconnect_keeps_told_state);
    RUN(test_dropped_only_where_told_and_told_reset);
    RUN(test_scoping_across_engines);
    RUN(test_version_and_network_mismatch_mute);
    RUN(test_state_machine_violations);
    RUN(test_rate_floor);
    RUN(test_list_caps);
    RUN(test_oversized_frame);
    RUN(test_bad_messages);
    RUN(test_added_and_dropped_overlap);
    RUN(test_three_strikes_mute);
    RUN(test_node_entries_never_advertised);
    RUN(test_backoff_on_rate_error);
    RUN(test_byte_budget_splits_frames);
    RUN(test_table_bounds_and_reclaim);
    RUN(test_engine_arguments);
    clear_frames();
    free(frames);
    return test_finish();
}
