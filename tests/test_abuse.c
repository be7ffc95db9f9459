/* Unit tests for abuse.c with a fake clock: source keying, per-source caps, register rate and
 * concurrency, per-connection meters, strikes, bans (threshold, window reset, lapse, disabled)
 * and bounded memory under address churn. */
#include "abuse.h"
#include "test.h"

static const uint64_t seed[2] = { 1, 2 };

static relay_config cfg_with_defaults(void)
{
    relay_config c;
    config_defaults(&c);
    return c;
}

static source_key key_of(const char *text)
{
    addr_t a;
    source_key k;
    addr_parse(text, strlen(text), &a);
    source_key_make(&k, &a, SOURCE_IPV6_64);
    return k;
}

static void test_keying_ipv6_by_64_and_mapped_as_ipv4(void)
{
    source_key a = key_of("[2001:db8:1:2:aaaa::1]:1"), b = key_of("[2001:db8:1:2:bbbb::9]:2");
    source_key c = key_of("[2001:db8:1:3::1]:1");
    source_key v4 = key_of("192.0.2.7:5"), mapped = key_of("[::ffff:192.0.2.7]:6");
    source_key v4b = key_of("192.0.2.8:5");
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    CHECK(memcmp(&a, &c, sizeof a) != 0);
    CHECK(memcmp(&v4, &mapped, sizeof v4) == 0);
    CHECK(memcmp(&v4, &v4b, sizeof v4) != 0);
}

static void test_per_source_connection_cap(void)
{
    relay_config cfg = cfg_with_defaults();
    abuse_guard g;
    source_key k = key_of("10.0.0.1:1"), other = key_of("10.0.0.2:1");
    cfg.max_connections_per_ip = 2;
    REQUIRE(abuse_init(&g, &cfg, 64, seed));
    CHECK_EQ_INT(abuse_accept(&g, &k, 0), ABUSE_OK);
    CHECK_EQ_INT(abuse_accept(&g, &k, 0), ABUSE_OK);
    CHECK_EQ_INT(abuse_accept(&g, &k, 0), ABUSE_TOO_MANY_CONNS);
    CHECK_EQ_INT(abuse_accept(&g, &other, 0), ABUSE_OK);
    abuse_conn_closed(&g, &k);
    CHECK_EQ_INT(abuse_accept(&g, &k, 0), ABUSE_OK);
    CHECK_EQ_INT(g.counters.refused_conns, 1);
    CHECK_EQ_INT(g.counters.by_verdict[ABUSE_TOO_MANY_CONNS], 1);
    CHECK_EQ_INT(g.counters.strikes, 1);
    abuse_free(&g);

    cfg.max_connections_per_ip = 0;   /* disabled */
    REQUIRE(abuse_init(&g, &cfg, 64, seed));
    for (int i = 0; i < 1000; i++)
        CHECK_EQ_INT(abuse_accept(&g, &k, 0), ABUSE_OK);
    abuse_free(&g);
}

static void test_register_rate_then_concurrency(void)
{
    relay_config cfg = cfg_with_defaults();
    abuse_guard g;
    source_key k = key_of("10.0.0.1:1");
    cfg.registrations_per_ip_per_sec = 3;
    cfg.max_registrations_per_ip = 4;
    REQUIRE(abuse_init(&g, &cfg, 64, seed));
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(abuse_register(&g, &k, 1000), ABUSE_OK);
    CHECK_EQ_INT(abuse_register(&g, &k, 1999), ABUSE_REGISTER_RATE);
    /* next one-second window: the rate has room again, the concurrent cap takes over at 4 */
    CHECK_EQ_INT(abuse_register(&g, &k, 2000), ABUSE_OK);
    CHECK_EQ_INT(abuse_register(&g, &k, 2001), ABUSE_TOO_MANY_REGS);
    abuse_registration_ended(&g, &k);
    CHECK_EQ_INT(abuse_register(&g, &k, 2002), ABUSE_OK);
    CHECK_EQ_INT(g.counters.refused_regs, 2);
    CHECK_EQ_INT(g.counters.by_verdict[ABUSE_REGISTER_RATE], 1);
    CHECK_EQ_INT(g.counters.by_verdict[ABUSE_TOO_MANY_REGS], 1);
    abuse_free(&g);
}

static void test_connection_meters(void)
{
    relay_config cfg = cfg_with_defaults();
    abuse_guard g;
    abuse_meter m;
    source_key k = key_of("10.0.0.1:1");
    cfg.messages_per_conn_per_sec = 5;
    cfg.bytes_per_conn_per_sec = 1000;
    cfg.max_relayed_bytes_per_conn = 2500;
    REQUIRE(abuse_init(&g, &cfg, 64, seed));

    memset(&m, 0, sizeof m);
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(abuse_frame(&g, &m, &k, 10, 0), ABUSE_OK);
    CHECK_EQ_INT(abuse_frame(&g, &m, &k, 10, 999), ABUSE_MESSAGE_RATE);

    memset(&m, 0, sizeof m);
    CHECK_EQ_INT(abuse_frame(&g, &m, &k, 600, 5000), ABUSE_OK);
    CHECK_EQ_INT(abuse_frame(&g, &m, &k, 600, 5100), ABUSE_BYTE_RATE);

    memset(&m, 0, sizeof m);
    CHECK_EQ_INT(abuse_frame(&g, &m, &k, 900, 10000), ABUSE_OK);
    CHECK_EQ_INT(abuse_frame(&g, &m, &k, 900, 11000), ABUSE_OK);
    CHECK_EQ_INT(abuse_frame(&g, &m, &k, 900, 12000), ABUSE_LIFETIME_BYTES);
    CHECK_EQ_INT(g.counters.disconnects, 3);
    CHECK_EQ_INT(g.counters.by_verdict[ABUSE_MESSAGE_RATE], 1);
    CHECK_EQ_INT(g.counters.by_verdict[ABUSE_BYTE_RATE], 1);
    CHECK_EQ_INT(g.counters.by_verdict[ABUSE_LIFETIME_BYTES], 1);
    abuse_free(&g);
}

static void test_ban_threshold_window_and_lapse(void)
{
    relay_config cfg = cfg_with_defaults();
    abuse_guard g;
    source_key k = key_of("10.0.0.9:1");
    cfg.max_connections_per_ip = 1;
    cfg.ban_threshold = 3;
    cfg.ban_strike_window_secs = 10;
    cfg.ban_duration_secs = 60;
    REQUIRE(abuse_init(&g, &cfg, 64, seed));
    CHECK_EQ_INT(abuse_accept(&g, &k, 0), ABUSE_OK);
    /* two strikes, then the window expires: the count starts over */
    CHECK_EQ_INT(abuse_accept(&g, &k, 1000), ABUSE_TOO_MANY_CONNS);
    CHECK_EQ_INT(abuse_accept(&g, &k, 2000), ABUSE_TOO_MANY_CONNS);
    CHECK_EQ_INT(abuse_accept(&g, &k, 20000), ABUSE_TOO_MANY_CONNS);
    CHECK_EQ_INT(abuse_accept(&g, &k, 21000), ABUSE_TOO_MANY_CONNS);
    CHECK_EQ_INT(g.counters.bans, 0);
    CHECK_EQ_INT(abuse_accept(&g, &k, 22000), ABUSE_TOO_MANY_CONNS);  /* third in window */
    CHECK_EQ_INT(g.counters.bans, 1);
    abuse_conn_closed(&g, &k);
    CHECK_EQ_INT(abuse_accept(&g, &k, 30000), ABUSE_BANNED);
    CHECK_EQ_INT(abuse_accept(&g, &k, 81999), ABUSE_BANNED);
    CHECK_EQ_INT(abuse_accept(&g, &k, 82000), ABUSE_OK);              /* the ban lapsed */
    abuse_free(&g);
}

static void test_ban_disabled_by_zero_threshold(void)
{
    relay_config cfg = cfg_with_defaults();
    abuse_guard g;
    source_key k = key_of("10.0.0.9:1");
    cfg.max_connections_per_ip = 1;
    cfg.ban_threshold = 0;
    REQUIRE(abuse_init(&g, &cfg, 64, seed));
    CHECK_EQ_INT(abuse_accept(&g, &k, 0), ABUSE_OK);
    for (int i = 0; i < 100; i++)
        CHECK_EQ_INT(abuse_accept(&g, &k, (uint64_t)i), ABUSE_TOO_MANY_CONNS);
    CHECK_EQ_INT(g.counters.bans, 0);
    abuse_free(&g);
}

static void test_oversized_frames_strike(void)
{
    relay_config cfg = cfg_with_defaults();
    abuse_guard g;
    source_key k = key_of("10.0.0.7:1");
    cfg.ban_threshold = 2;
    REQUIRE(abuse_init(&g, &cfg, 64, seed));
    abuse_strike(&g, &k, 0);
    CHECK_EQ_INT(abuse_accept(&g, &k, 1), ABUSE_OK);
    abuse_strike(&g, &k, 2);
    CHECK_EQ_INT(abuse_accept(&g, &k, 3), ABUSE_BANNED);
    CHECK_EQ_INT(g.counters.strikes, 2);
    CHECK_EQ_INT(g.counters.disconnects, 2);
    CHECK_EQ_INT(g.counters.by_verdict[ABUSE_MESSAGE_TOO_LARGE], 2);
    CHECK_EQ_INT(g.counters.by_verdict[ABUSE_BANNED], 1);
    abuse_free(&g);
}

static void test_source_churn_is_bounded(void)
{
    relay_config cfg = cfg_with_defaults();
    abuse_guard g;
    REQUIRE(abuse_init(&g, &cfg, 128, seed));
    for (uint32_t i = 0; i < 100000; i++) {
        char text[32];
        source_key k;
        snprintf(text, sizeof text, "10.%u.%u.%u:1", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        k = key_of(text);
        abuse_accept(&g, &k, i);
        abuse_conn_closed(&g, &k);
    }
    CHECK(g.sources.count <= 128);
    abuse_free(&g);
}

int main(void)
{
    RUN(test_keying_ipv6_by_64_and_mapped_as_ipv4);
    RUN(test_per_source_connection_cap);
    RUN(test_register_rate_then_concurrency);
    RUN(test_connection_meters);
    RUN(test_ban_threshold_window_and_lapse);
    RUN(test_ban_disabled_by_zero_threshold);
    RUN(test_oversized_frames_strike);
    RUN(test_source_churn_is_bounded);
    return test_finish();
}
