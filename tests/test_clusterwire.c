/* Unit tests for clusterwire.c: --cluster-redis URL lists, instance ids, the shard hash (fixed
 * values, so every build and instance agrees), registration records (round trip with ids of any
 * bytes, every truncation and malformed field refused), envelopes and the packets carrying
 * several. */
#include "clusterwire.h"
#include "test.h"

#include <stdlib.h>

static void test_urls(void)
{
    cluster_url u[CLUSTER_MAX_SHARDS];
    char why[160];
    CHECK_EQ_INT(cluster_parse_urls("redis://127.0.0.1:6379", u, why, sizeof why), 1);
    CHECK_EQ_STR(u[0].host, "127.0.0.1");
    CHECK_EQ_INT(u[0].port, 6379);
    CHECK_EQ_STR(u[0].password, "");
    CHECK_EQ_INT(u[0].db, 0);
    CHECK_EQ_INT(cluster_parse_urls("redis://:s3cret@redis.example:6380/2,redis://[::1]:7000", u, why,
                                    sizeof why), 2);
    CHECK_EQ_STR(u[0].host, "redis.example");
    CHECK_EQ_STR(u[0].password, "s3cret");
    CHECK_EQ_INT(u[0].port, 6380);
    CHECK_EQ_INT(u[0].db, 2);
    CHECK_EQ_STR(u[1].host, "::1");
    CHECK_EQ_INT(u[1].port, 7000);
    static const char *const bad[] = { "", "127.0.0.1:6379", "redis://127.0.0.1", "redis://:6379",
                                       "redis://h:0", "redis://h:65536", "redis://h:63x9",
                                       "redis://user:pw@h:1", "redis://h:1/x", "redis://h:1,",
                                       "redis://h:1/70000" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        if (cluster_parse_urls(bad[i], u, why, sizeof why) != 0 || why[0] == '\0') {
            printf("  accepted \"%s\"\n", bad[i]);
            test_cur_failed = 1;
        }
    }
    char many[1024] = "";
    for (int i = 0; i <= CLUSTER_MAX_SHARDS; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%sredis://h:%d", i ? "," : "", i + 1);
    CHECK_EQ_INT(cluster_parse_urls(many, u, why, sizeof why), 0);
}

static void test_ids_and_shards(void)
{
    CHECK(cluster_instance_id_valid("edge-1.eu_west"));
    CHECK(!cluster_instance_id_valid(""));
    CHECK(!cluster_instance_id_valid("has space"));
    CHECK(!cluster_instance_id_valid("a:b"));
    char longest[CLUSTER_ID_MAX + 2];
    memset(longest, 'a', sizeof longest);
    longest[CLUSTER_ID_MAX] = '\0';
    CHECK(cluster_instance_id_valid(longest));
    longest[CLUSTER_ID_MAX] = 'a';
    longest[CLUSTER_ID_MAX + 1] = '\0';
    CHECK(!cluster_instance_id_valid(longest));
    /* FNV-1a 64: fixed, whatever the build */
    CHECK_EQ_INT(cluster_shard_of("", 0, 1000), 0xcbf29ce484222325u % 1000);
    CHECK_EQ_INT(cluster_shard_of("a", 1, 1000), 0xaf63dc4c8601ec8cu % 1000);
    CHECK_EQ_INT(cluster_shard_of("anything", 8, 1), 0);
}

static void test_records(void)
{
    static const char id[] = "peer \"one\"\n\x01\xff";
    cluster_record r = { 0 }, back;
    char buf[CLUSTER_RECORD_MAX];
    r.owner = "inst0";
    r.owner_len = 5;
    r.reg_ms = 1760000000123u;
    r.peer_id = id;
    r.peer_id_len = sizeof id - 1;
    r.network_id = "DIG_MAINNET";
    r.network_id_len = 11;
    r.protocol_version = 1;
    r.connected_at = 1760000000;
    CHECK(addr_parse("203.0.113.9:9444", 16, &r.addrs[0]));
    CHECK(addr_parse("[2001:db8::1]:9444", 18, &r.addrs[1]));
    r.n_addrs = 2;
    size_t n = cluster_record_encode(&r, buf);
    CHECK(n <= sizeof buf);
    CHECK(memcmp(buf, "inst0 1760000000123 ", 20) == 0);
    REQUIRE(cluster_record_decode(buf, n, &back));
    CHECK_EQ_MEM(back.owner, back.owner_len, "inst0", 5);
    CHECK(back.reg_ms == r.reg_ms && back.protocol_version == 1 && back.connected_at == r.connected_at);
    CHECK_EQ_MEM(back.peer_id, back.peer_id_len, id, sizeof id - 1);
    CHECK_EQ_MEM(back.network_id, back.network_id_len, "DIG_MAINNET", 11);
    CHECK_EQ_INT(back.n_addrs, 2);
    CHECK(memcmp(&back.addrs[1], &r.addrs[1], sizeof r.addrs[1]) == 0);
    /* every truncation is refused, and so is a byte more */
    for (size_t k = 0; k < n; k++)
        if (cluster_record_decode(buf, k, &back)) {
            printf("  accepted a record cut at %zu of %zu\n", k, n);
            test_cur_failed = 1;
        }
    buf[n] = 'x';
    CHECK(!cluster_record_decode(buf, n + 1, &back));
    static const char *const bad[] = {
        "inst0 1 1 1 0:0 ",                 /* empty peer id */
        "inst0 1 1 1 1:a0:9 ",              /* too many addresses */
        "inst0 1 1 1 1:a0:1 3:xyz",         /* not an address */
        "inst0 1 1 1 999:a0:0 ",            /* length past the end */
        "inst0 x 1 1 1:a0:0 ",              /* not a number */
        "inst0 99999999999999999999 1 1 1:a0:0 ",   /* overflow */
        " 1 1 1 1:a0:0 ",                   /* no owner */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (cluster_record_decode(bad[i], strlen(bad[i]), &back)) {
            printf("  accepted \"%s\"\n", bad[i]);
            test_cur_failed = 1;
        }
    CHECK(cluster_record_decode("inst0 1 1 1 1:a0:0 ", 19, &back));
}

static void test_prefixes(void)
{
    const char *owner, *rest;
    size_t owner_len, rest_len;
    uint64_t v;
    CHECK(cluster_owner_prefix("inst1 42", 8, &owner, &owner_len, &v, NULL, NULL));
    CHECK(owner_len == 5 && v == 42);
    CHECK(!cluster_owner_prefix("inst1 4x", 8, &owner, &owner_len, &v, NULL, NULL));
    CHECK(!cluster_owner_prefix("inst1 ", 6, &owner, &owner_len, &v, NULL, NULL));
    CHECK(cluster_owner_prefix("inst1 7 peer id", 15, &owner, &owner_len, &v, &rest, &rest_len));
    CHECK(v == 7);
    CHECK_EQ_MEM(rest, rest_len, "peer id", 7);
}

static void test_envelopes(void)
{
    char buf[256];
    size_t n = cluster_envelope_begin(buf, 2);
    n += cluster_envelope_target(buf + n, "A", 1);
    n += cluster_envelope_target(buf + n, "B:c", 3);
    memcpy(buf + n, "{\"type\":\"x\"}", 12);
    n += 12;
    cluster_envelope e;
    const char *id, *text;
    size_t len;
    REQUIRE(cluster_envelope_open(&e, buf, n));
    CHECK(cluster_envelope_next(&e, &id, &len) && len == 1 && id[0] == 'A');
    CHECK(cluster_envelope_next(&e, &id, &len) && len == 3 && memcmp(id, "B:c", 3) == 0);
    CHECK(!cluster_envelope_next(&e, &id, &len));
    CHECK(cluster_envelope_frame(&e, &text, &len));
    CHECK_EQ_MEM(text, len, "{\"type\":\"x\"}", 12);
    /* a count larger than what follows, a target past the end */
    REQUIRE(cluster_envelope_open(&e, "3:1:A", 5));
    CHECK(cluster_envelope_next(&e, &id, &len));
    CHECK(!cluster_envelope_next(&e, &id, &len));
    CHECK(!cluster_envelope_frame(&e, &text, &len));
    CHECK(!cluster_envelope_open(&e, "x:", 2));
    CHECK(!cluster_envelope_open(&e, "99:", 3));
}

static void test_packets(void)
{
    char buf[64];
    size_t n = cluster_packet_item(buf, 3);
    memcpy(buf + n, "2:a", 3);
    n += 3;
    size_t m = cluster_packet_item(buf + n, 0);
    n += m;
    const char *p = buf, *env;
    size_t len;
    CHECK(cluster_packet_next(&p, buf + n, &env, &len) && len == 3 && memcmp(env, "2:a", 3) == 0);
    CHECK(cluster_packet_next(&p, buf + n, &env, &len) && len == 0);
    CHECK(!cluster_packet_next(&p, buf + n, &env, &len));
    p = "9:abc";
    CHECK(!cluster_packet_next(&p, p + 5, &env, &len));
}

int main(void)
{
    RUN(test_urls);
    RUN(test_ids_and_shards);
    RUN(test_records);
    RUN(test_prefixes);
    RUN(test_envelopes);
    RUN(test_packets);
    return test_finish();
}
