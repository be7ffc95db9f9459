/* Unit tests for stats.c, the /stats.json builder: the exact body for a fixed snapshot (field
 * order, sorting, via and address family, connected_secs), peer-id truncation by characters and
 * ?full=1, escaping of hostile ids, and the peer and network caps. */
#include "stats.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>

static stats_peer peer(const char *id, const char *net, const addr_t *addrs, size_t n,
                       uint64_t connected_at)
{
    stats_peer p = { id, strlen(id), net, strlen(net), addrs, n, 1, connected_at };
    return p;
}

static stats_snapshot snapshot(const stats_peer *peers, size_t n)
{
    stats_snapshot s = { 0 };
    s.version = "0.1.0";
    s.now_wall = 1000;
    s.uptime_secs = 99;
    s.connected_peers = n;
    s.open_connections = n + 2;
    s.stun_requests = 42;
    s.hole_punch_requests = 7;
    s.hole_punch_successes = 4;
    s.hole_punch_failures = 3;
    s.bytes_relayed = 4096;
    s.peers = peers;
    s.n_peers = n;
    /* the networks with their counts, as the registry keeps them */
    static stats_network nets[4096];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < k && !(nets[j].network_id_len == peers[i].network_id_len &&
                          memcmp(nets[j].network_id, peers[i].network_id, peers[i].network_id_len) == 0))
            j++;
        if (j == k)
            nets[k++] = (stats_network){ peers[i].network_id, peers[i].network_id_len, 0 };
        nets[j].peers++;
    }
    s.networks = nets;
    s.n_networks = k;
    return s;
}

/* The body for s, NUL-terminated in a static buffer. */
static const char *body_of(const stats_snapshot *s, bool full)
{
    static char out[1 << 20];
    json_writer w;
    jw_init(&w, 0, (size_t)16 << 20);
    bool ok = stats_write_json(&w, s, full);
    size_t n = ok && w.len < sizeof out ? w.len : 0;
    if (!ok)
        printf("  stats_write_json failed\n");
    if (n)
        memcpy(out, w.p, n);
    out[n] = 0;
    const char *why = NULL;
    if (n && !json_validate(out, n, &why))
        printf("  not JSON (%s): %.300s\n", why, out);
    jw_free(&w);
    return out;
}

static addr_t parse(const char *text)
{
    addr_t a;
    memset(&a, 0, sizeof a);
    if (!addr_parse(text, strlen(text), &a))
        printf("  bad address %s\n", text);
    return a;
}

static void test_exact_body(void)
{
    addr_t v4 = parse("203.0.113.7:9444"), v6 = parse("[2001:db8::1]:9444");
    addr_t mapped = parse("[::ffff:198.51.100.1]:9444");
    stats_peer peers[] = {
        peer("cccc", "testnet", &v6, 1, 400),
        peer("aaaa", "mainnet", &v4, 1, 100),
        peer("bbbb", "mainnet", NULL, 0, 2000),   /* registered "after" now: 0 s, never negative */
        peer("dddd", "mainnet", &mapped, 1, 999),
    };
    stats_snapshot s = snapshot(peers, 4);
    CHECK_EQ_STR(body_of(&s, false),
        "{\"schema_version\":1,\"status\":\"ok\",\"version\":\"0.1.0\",\"uptime_secs\":99,"
        "\"active_reservations\":4,\"connected_peers\":4,\"open_connections\":6,\"stun_requests\":42,"
        "\"hole_punch_requests\":7,\"hole_punch_successes\":4,\"hole_punch_failures\":3,"
        "\"bytes_relayed\":4096,"
        "\"networks\":[{\"network_id\":\"mainnet\",\"peers\":3},{\"network_id\":\"testnet\",\"peers\":1}],"
        "\"peers\":["
        "{\"peer_id\":\"aaaa\",\"network_id\":\"mainnet\",\"via\":\"direct\",\"address_family\":\"v4\","
        "\"protocol_version\":1,\"connected_at\":100,\"connected_secs\":900},"
        "{\"peer_id\":\"bbbb\",\"network_id\":\"mainnet\",\"via\":\"relay\",\"address_family\":\"none\","
        "\"protocol_version\":1,\"connected_at\":2000,\"connected_secs\":0},"
        "{\"peer_id\":\"cccc\",\"network_id\":\"testnet\",\"via\":\"direct\",\"address_family\":\"v6\","
        "\"protocol_version\":1,\"connected_at\":400,\"connected_secs\":600},"
        "{\"peer_id\":\"dddd\",\"network_id\":\"mainnet\",\"via\":\"direct\",\"address_family\":\"v4\","
        "\"protocol_version\":1,\"connected_at\":999,\"connected_secs\":1}],"
        "\"peers_truncated\":false,\"networks_truncated\":false}");

    stats_snapshot empty = snapshot(NULL, 0);
    CHECK_EQ_STR(body_of(&empty, false),
        "{\"schema_version\":1,\"status\":\"ok\",\"version\":\"0.1.0\",\"uptime_secs\":99,"
        "\"active_reservations\":0,\"connected_peers\":0,\"open_connections\":2,\"stun_requests\":42,"
        "\"hole_punch_requests\":7,\"hole_punch_successes\":4,\"hole_punch_failures\":3,"
        "\"bytes_relayed\":4096,\"networks\":[],\"peers\":[],\"peers_truncated\":false,"
        "\"networks_truncated\":false}");
}

static void test_peer_id_truncation(void)
{
    stats_peer peers[] = {
        peer("0123456789abcdef0123456789abcdef", "n", NULL, 0, 0),
        peer("0123456789ab", "n", NULL, 0, 0),                     /* exactly 12: unchanged */
        /* 13 characters, 2 to 4 bytes each: cut after the 12th character, not the 12th byte */
        peer("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80" "abcdefghi" "\xC3\xA9", "n", NULL, 0, 0),
    };
    stats_snapshot s = snapshot(peers, 3);
    const char *b = body_of(&s, false);
    CHECK(strstr(b, "\"peer_id\":\"0123456789ab\xE2\x80\xA6\",") != NULL);
    CHECK(strstr(b, "\"peer_id\":\"0123456789ab\",") != NULL);
    CHECK(strstr(b, "\"peer_id\":\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80" "abcdefghi\xE2\x80\xA6\",") != NULL);
    CHECK(strstr(b, "cdef0123") == NULL);
    b = body_of(&s, true);
    CHECK(strstr(b, "\"peer_id\":\"0123456789abcdef0123456789abcdef\",") != NULL);
    CHECK(strstr(b, "\xE2\x80\xA6") == NULL);
}

static void test_hostile_ids_escaped(void)
{
    stats_peer peers[] = {
        peer("<script>alert(1)</script>", "<img src=x onerror=alert(1)>", NULL, 0, 0),
        peer("q\"uo\\te\n\x01", "net\"\x7f", NULL, 0, 0),
    };
    stats_snapshot s = snapshot(peers, 2);
    const char *b = body_of(&s, true);
    CHECK(strstr(b, "{\"network_id\":\"<img src=x onerror=alert(1)>\",\"peers\":1}") != NULL);
    CHECK(strstr(b, "\"peer_id\":\"<script>alert(1)</script>\"") != NULL);
    CHECK(strstr(b, "\"peer_id\":\"q\\\"uo\\\\te\\n\\u0001\",\"network_id\":\"net\\\"\x7f\"") != NULL);
    b = body_of(&s, false);
    CHECK(strstr(b, "\"peer_id\":\"<script>aler\xE2\x80\xA6\"") != NULL);
    CHECK(strstr(b, "\"peer_id\":\"q\\\"uo\\\\te\\n\\u0001\"") != NULL);   /* 9 characters: whole */
}

static void test_caps(void)
{
    size_t n = STATS_MAX_PEERS + 500;
    stats_peer *peers = calloc(n, sizeof *peers);
    char (*ids)[16] = calloc(n, sizeof *ids), (*nets)[16] = calloc(n, sizeof *nets);
    REQUIRE(peers && ids && nets);
    for (size_t i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "p%06zu", n - i);     /* registry order is not id order */
        snprintf(nets[i], sizeof nets[i], "n%06zu", i % (STATS_MAX_NETWORKS + 200));
        peers[i] = peer(ids[i], nets[i], NULL, 0, 0);
    }
    stats_snapshot s = snapshot(peers, n);
    const char *b = body_of(&s, false);
    CHECK(strstr(b, "\"active_reservations\":1500,") != NULL);
    CHECK(strstr(b, "\"peers\":[{\"peer_id\":\"p000001\",") != NULL);
    CHECK(strstr(b, "\"peer_id\":\"p001000\"") != NULL);
    CHECK(strstr(b, "\"peer_id\":\"p001001\"") == NULL);
    CHECK(strstr(b, "\"networks\":[{\"network_id\":\"n000000\",\"peers\":2},") != NULL);
    CHECK(strstr(b, "{\"network_id\":\"n000999\",\"peers\":1}],\"peers\":[") != NULL);
    CHECK(strstr(b, "{\"network_id\":\"n001000\"") == NULL);
    CHECK(strstr(b, "\"peers_truncated\":true,\"networks_truncated\":true}") != NULL);
    size_t rows = 0;
    for (const char *p = b; (p = strstr(p, "{\"peer_id\":")); p++)
        rows++;
    CHECK_EQ_INT(rows, STATS_MAX_PEERS);
    free(peers);
    free(ids);
    free(nets);
}

static void test_wants_full(void)
{
    CHECK(stats_wants_full("full=1", 6));
    CHECK(stats_wants_full("full=true", 9));
    CHECK(stats_wants_full("a=b&full=yes", 12));
    CHECK(stats_wants_full("full=1&x", 8));
    CHECK(!stats_wants_full("", 0));
    CHECK(!stats_wants_full("full=0", 6));
    CHECK(!stats_wants_full("full=10", 7));
    CHECK(!stats_wants_full("xfull=1", 7));
    CHECK(!stats_wants_full("full", 4));
    CHECK(!stats_wants_full("full=1", 5));   /* only the n bytes given count */
}

int main(void)
{
    RUN(test_exact_body);
    RUN(test_peer_id_truncation);
    RUN(test_hostile_ids_escaped);
    RUN(test_caps);
    RUN(test_wants_full);
    return test_finish();
}
