/* Integration tests of abuse protection (issue 5) against the real ./dig-relay over real sockets:
 * the per-source connection cap, register rate and concurrent-registration cap, the refusal
 * order, the per-connection message, byte and lifetime limits, the ban list, 0 disabling each
 * limit, the liveness sweep, configuration validation and the counters log line.
 *
 * Per-source behaviour is exercised from distinct 127.x.y.z source addresses (all of 127/8 is
 * loopback on Linux). Rate windows are whole seconds of the monotonic clock in milliseconds, the
 * same clock h_now_ms reads, so bursts that must land in one window are aligned to its start. */
#include "tests/harness.h"
#include "tests/test.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define NET "DIG_MAINNET"
#define WAIT 3000u  /* default wait for an expected message, ms */


/* ---------------------------------------------------------------- helpers */


/* WebSocket handshake from the local source address src. */
static bool ws_from(ws_client *c, const char *src)
{
    wsc_opts o = { .port = h_relay.port, .src = src };
    if (!wsc_connect(c, &o)) {
        printf("  connect from %s: %s\n", src, c->err);
        wsc_close(c);
        return false;
    }
    return true;
}

static bool reg_from(ws_client *c, const char *src, const char *id)
{
    return ws_from(c, src) && wsc_register(c, id, NET);
}

static bool send_register(ws_client *c, const char *id)
{
    char msg[512];
    h_register_json(msg, sizeof msg, id, NET, NULL);
    return wsc_send_text(c, msg);
}

static bool send_ping(ws_client *c, uint64_t ts)
{
    char msg[80];
    snprintf(msg, sizeof msg, "{\"type\":\"ping\",\"timestamp\":%llu}", (unsigned long long)ts);
    return wsc_send_text(c, msg);
}

/* The connection answers a ping (skipping whatever was queued before the pong). */
static bool alive(ws_client *c, uint64_t ts)
{
    long rtt = wsc_ping_rtt(c, ts, WAIT);
    if (rtt < 0)
        printf("  ping %llu got no pong: the connection is gone\n", (unsigned long long)ts);
    return rtt >= 0;
}

static bool expect_ack_ok(ws_client *c)
{
    static const char ok[] = "{\"type\":\"register_ack\",\"success\":true,\"message\":\"registered\",";
    int r = wsc_recv_msg(c, WAIT);
    if (r != WSC_OK || !h_starts_with((const char *)c->msg, ok)) {
        printf("  expected a successful register_ack, got %s\n", r == WSC_OK ? (const char *)c->msg : "nothing");
        return false;
    }
    return true;
}

/* A refused register: register_ack{success:false}, then error{code}, then a close frame 1008.
 * The error's message text is copied to why (may be NULL). */
static bool expect_refused(ws_client *c, unsigned code, char *why, size_t why_cap)
{
    char prefix[64];
    int r = wsc_recv_msg(c, WAIT);
    if (r != WSC_OK || !h_starts_with((const char *)c->msg, "{\"type\":\"register_ack\",\"success\":false,")) {
        printf("  expected register_ack{success:false}, got %s\n", r == WSC_OK ? (const char *)c->msg : "nothing");
        return false;
    }
    snprintf(prefix, sizeof prefix, "{\"type\":\"error\",\"code\":%u,", code);
    r = wsc_recv_msg(c, WAIT);
    if (r != WSC_OK || !h_starts_with((const char *)c->msg, prefix)) {
        printf("  expected error code %u, got %s\n", code, r == WSC_OK ? (const char *)c->msg : "nothing");
        return false;
    }
    if (why && !hj_get_str((const char *)c->msg, "message", why, why_cap))
        why[0] = '\0';
    int close_code = wsc_expect_close(c, WAIT);
    if (close_code != 1008) {
        printf("  expected a close frame 1008 after the refusal, got %d\n", close_code);
        return false;
    }
    return true;
}

/* The connection ends (close frame 1008 or a plain close) within ms. */
static bool policy_closed(ws_client *c, unsigned ms)
{
    int code = wsc_expect_close(c, ms);
    if (code != 1008 && code != 0) {
        printf("  expected the relay to close the connection (1008), got %d\n", code);
        return false;
    }
    return true;
}

/* Sends n copies of a text message in one write, as a flooder would. */
static bool send_burst(ws_client *c, const char *text, unsigned n)
{
    size_t len = strlen(text), one = len + 14, o = 0;
    uint8_t *buf = malloc(one * n);
    if (!buf)
        return false;
    for (unsigned i = 0; i < n; i++)
        o += wsc_build_frame(buf + o, one, 1, true, 0, true, text, len);
    bool ok = wsc_send_raw(c, buf, o);
    free(buf);
    return ok;
}

/* A relay_message to `to` whose payload has n_numbers entries; its frame is about 2n bytes. */
static char *relay_message_json(const char *to, size_t n_numbers, uint64_t seq)
{
    size_t cap = 2 * n_numbers + 256;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    int o = snprintf(s, cap, "{\"type\":\"relay_message\",\"from\":\"x\",\"to\":\"%s\",\"payload\":[", to);
    for (size_t i = 0; i < n_numbers; i++) {
        s[o++] = '7';
        s[o++] = ',';
    }
    snprintf(s + o - 1, cap - (size_t)o + 1, "],\"seq\":%llu}", (unsigned long long)seq);
    return s;
}

static bool send_relay(ws_client *c, const char *to, size_t n_numbers, uint64_t seq)
{
    char *m = relay_message_json(to, n_numbers, seq);
    bool ok = m && wsc_send_text(c, m);
    free(m);
    return ok;
}

/* `count` relay messages (seq, seq+1, ...) in one write. */
static bool send_relay_burst(ws_client *c, const char *to, size_t n_numbers, uint64_t seq, unsigned count)
{
    size_t one = 2 * n_numbers + 256 + 14, o = 0;
    uint8_t *buf = malloc(one * count);
    bool ok = buf != NULL;
    for (unsigned i = 0; ok && i < count; i++) {
        char *m = relay_message_json(to, n_numbers, seq + i);
        ok = m != NULL;
        if (ok)
            o += wsc_build_frame(buf + o, one, 1, true, 0, true, m, strlen(m));
        free(m);
    }
    ok = ok && wsc_send_raw(c, buf, o);
    free(buf);
    return ok;
}

/* Receives relay messages until the one carrying seq arrives. */
static bool expect_relayed(ws_client *c, uint64_t seq)
{
    uint64_t deadline = h_now_ms() + WAIT, got = 0;
    while (h_now_ms() < deadline) {
        if (wsc_recv_type(c, "relay_message", (unsigned)(deadline - h_now_ms())) != WSC_OK)
            break;
        if (hj_get_u64((const char *)c->msg, "seq", &got) && got == seq)
            return true;
    }
    printf("  relay_message seq %llu never arrived\n", (unsigned long long)seq);
    return false;
}

static bool expect_disconnected(ws_client *c, const char *id)
{
    char want[160];
    snprintf(want, sizeof want, "{\"type\":\"peer_disconnected\",\"peer_id\":\"%s\"}", id);
    uint64_t deadline = h_now_ms() + WAIT;
    while (h_now_ms() < deadline) {
        if (wsc_recv_type(c, "peer_disconnected", (unsigned)(deadline - h_now_ms())) != WSC_OK)
            break;
        if (strcmp((const char *)c->msg, want) == 0)
            return true;
    }
    printf("  %s never arrived\n", want);
    return false;
}

/* The relay's rate windows are whole seconds of CLOCK_MONOTONIC milliseconds (the clock h_now_ms
 * reads). Waits until the current window is between lo and hi ms old, so a burst that follows
 * lands inside one window; returns that window. */
static uint64_t align_window(unsigned lo, unsigned hi)
{
    for (;;) {
        uint64_t now = h_now_ms();
        unsigned phase = (unsigned)(now % 1000u);
        if (phase >= lo && phase < hi)
            return now / 1000u;
        h_sleep_ms(phase < lo ? lo - phase : 1000u - phase + lo);
    }
}

static bool same_window(uint64_t window)
{
    if (h_now_ms() / 1000u != window) {
        printf("  the burst straddled a one-second window; the test cannot conclude\n");
        return false;
    }
    return true;
}

enum { REFUSED, ACCEPTED, UNCLEAR };

/* Opens a TCP connection from src and asks for an upgrade. REFUSED: the relay closed it without a
 * byte (refused at accept); ACCEPTED: it answered 101. */
static int probe(const char *src)
{
    int fd = tcp_connect("127.0.0.1", h_relay.port, src, WAIT);
    if (fd < 0)
        return UNCLEAR;
    char req[256], resp[1024];
    snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: Upgrade\r\n"
             "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
             h_relay.port);
    tcp_send_all(fd, req, strlen(req), WAIT);  /* may fail: a refused socket can be gone already */
    size_t len = 0;
    int verdict = UNCLEAR;
    uint64_t deadline = h_now_ms() + 2000;
    while (h_now_ms() < deadline) {
        ssize_t n = recv(fd, resp + len, sizeof resp - 1 - len, 0);
        if (n > 0) {
            len += (size_t)n;
            resp[len] = '\0';
            if (strstr(resp, "\r\n\r\n") || len == sizeof resp - 1) {
                verdict = h_starts_with(resp, "HTTP/1.1 101") ? ACCEPTED : UNCLEAR;
                break;
            }
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            verdict = len == 0 ? REFUSED : UNCLEAR;
            break;
        }
        struct pollfd p = { fd, POLLIN, 0 };
        poll(&p, 1, 50);
    }
    close(fd);
    return verdict;
}

static bool refused_at_accept(const char *src)
{
    int v = probe(src);
    if (v != REFUSED)
        printf("  a connection from %s was %s, expected it refused at accept\n", src,
               v == ACCEPTED ? "accepted" : "neither accepted nor refused");
    return v == REFUSED;
}

static bool accepted_from(const char *src)
{
    int v = probe(src);
    if (v != ACCEPTED)
        printf("  a connection from %s was %s, expected it accepted\n", src,
               v == REFUSED ? "refused" : "neither accepted nor refused");
    return v == ACCEPTED;
}

/* Waits up to ms for the relay's log to contain needle. */
static bool log_shows(const char *needle, unsigned ms)
{
    uint64_t deadline = h_now_ms() + ms;
    do {
        char *log = relay_read_log(&h_relay);
        bool found = log && strstr(log, needle) != NULL;
        free(log);
        if (found)
            return true;
        h_sleep_ms(50);
    } while (h_now_ms() < deadline);
    printf("  the relay log never showed \"%s\"\n", needle);
    return false;
}

/* ---------------------------------------------------------------- per-source limits */

static void test_per_ip_connection_cap(void)
{
    static const char *const args[] = { "--max-connections-per-ip", "3", "--ban-threshold", "0", NULL };
    REQUIRE(h_start(args));
    int held[3];
    for (int i = 0; i < 3; i++) {
        held[i] = tcp_connect("127.0.0.1", h_relay.port, "127.0.1.1", WAIT);  /* open and silent: counted */
        REQUIRE(held[i] >= 0);
    }
    /* The 4th from that source is closed at accept, again and again (more refusals than the
     * default ban threshold: with banning off they never ban). */
    for (int i = 0; i < 25; i++)
        CHECK(refused_at_accept("127.0.1.1"));
    /* another source is not affected */
    ws_client other;
    REQUIRE(reg_from(&other, "127.0.1.2", "other-source"));
    CHECK(accepted_from("127.0.1.2"));
    /* the held sockets stay open: refusing newcomers never touches existing connections */
    for (int i = 0; i < 3; i++)
        CHECK(!tcp_wait_closed(held[i], 100));

    /* a slot frees when one of them closes */
    close(held[0]);
    bool ok = false;
    for (uint64_t t0 = h_now_ms(); !ok && h_now_ms() - t0 < 2000; h_sleep_ms(50))
        ok = probe("127.0.1.1") == ACCEPTED;
    CHECK(ok);
    CHECK(alive(&other, 1));
    close(held[1]);
    close(held[2]);
    wsc_close(&other);
    STOP_OK();
}

static void test_register_rate_per_ip(void)
{
    static const char *const args[] = { "--registrations-per-ip-per-sec", "3", "--ban-threshold", "0", NULL };
    REQUIRE(h_start(args));
    ws_client c[5], other;
    for (int i = 0; i < 5; i++)
        REQUIRE(ws_from(&c[i], "127.0.2.1"));  /* upgrades do not count: only register attempts */
    REQUIRE(ws_from(&other, "127.0.2.2"));

    uint64_t window = align_window(50, 400);
    for (int i = 0; i < 4; i++) {
        char id[32];
        snprintf(id, sizeof id, "rate-%d", i);
        REQUIRE(send_register(&c[i], id));
    }
    for (int i = 0; i < 3; i++)
        CHECK(expect_ack_ok(&c[i]));
    CHECK(expect_refused(&c[3], 7, NULL, 0));
    /* another source registers in the same window */
    CHECK(wsc_register(&other, "rate-other", NET));
    REQUIRE(same_window(window));

    /* the next window admits the source again */
    while (h_now_ms() / 1000u == window)
        h_sleep_ms(10);
    CHECK(wsc_register(&c[4], "rate-4", NET));
    for (int i = 0; i < 3; i++)
        CHECK(alive(&c[i], (uint64_t)i));
    for (int i = 0; i < 5; i++)
        wsc_close(&c[i]);
    wsc_close(&other);
    STOP_OK();
}

static void test_concurrent_registrations_per_ip(void)
{
    static const char *const args[] = { "--max-registrations-per-ip", "2", "--registrations-per-ip-per-sec", "0",
                                        "--ban-threshold", "0", NULL };
    REQUIRE(h_start(args));
    ws_client a, b, c, d, e, f;
    REQUIRE(reg_from(&a, "127.0.3.1", "cap-a"));
    REQUIRE(reg_from(&b, "127.0.3.1", "cap-b"));
    REQUIRE(ws_from(&c, "127.0.3.1"));
    REQUIRE(send_register(&c, "cap-c"));
    CHECK(expect_refused(&c, 7, NULL, 0));
    /* the refused attempt held nothing; another source is not affected */
    CHECK(reg_from(&d, "127.0.3.2", "cap-d"));

    /* a registration ending frees its slot */
    REQUIRE(wsc_send_text(&a, "{\"type\":\"unregister\",\"peer_id\":\"cap-a\"}"));
    CHECK(wsc_expect_close(&a, WAIT) >= 0);
    CHECK(reg_from(&e, "127.0.3.1", "cap-e"));
    REQUIRE(ws_from(&f, "127.0.3.1"));
    REQUIRE(send_register(&f, "cap-f"));
    CHECK(expect_refused(&f, 7, NULL, 0));
    CHECK(alive(&b, 1));
    CHECK(alive(&e, 2));
    wsc_close(&a);
    wsc_close(&b);
    wsc_close(&c);
    wsc_close(&d);
    wsc_close(&e);
    wsc_close(&f);
    STOP_OK();
}

/* Registers id from src, then unregisters and waits for the close (the slot is free again). */
static bool register_and_leave(const char *src, const char *id)
{
    ws_client c;
    char msg[128];
    bool ok = reg_from(&c, src, id);
    snprintf(msg, sizeof msg, "{\"type\":\"unregister\",\"peer_id\":\"%s\"}", id);
    ok = ok && wsc_send_text(&c, msg) && wsc_expect_close(&c, WAIT) >= 0;
    wsc_close(&c);
    return ok;
}

/* Opens a connection from src, registers id and expects the refusal with code. */
static bool refused_register(const char *src, const char *id, unsigned code, char *why, size_t cap)
{
    ws_client c;
    bool ok = ws_from(&c, src) && send_register(&c, id) && expect_refused(&c, code, why, cap);
    wsc_close(&c);
    return ok;
}

/* SPEC order: rate, then the concurrent cap, then (after identity and capacity) the id in use.
 * The two per-source refusals share code 7, so their messages tell them apart. */
static void test_register_refusal_order(void)
{
    static const char *const args[] = { "--registrations-per-ip-per-sec", "2", "--max-registrations-per-ip", "1",
                                        "--ban-threshold", "0", NULL };
    REQUIRE(h_start(args));
    char cap_text[256], rate_text[256], both_text[256];
    ws_client s1, s3;
    uint64_t window = align_window(50, 300);

    /* cap alone: the second attempt is within the rate but over the cap */
    REQUIRE(reg_from(&s1, "127.0.4.1", "order-1"));
    CHECK(refused_register("127.0.4.1", "order-1b", 7, cap_text, sizeof cap_text));
    /* rate alone: two registrations that each leave, then a third attempt */
    CHECK(register_and_leave("127.0.4.2", "order-2a"));
    CHECK(register_and_leave("127.0.4.2", "order-2b"));
    CHECK(refused_register("127.0.4.2", "order-2c", 7, rate_text, sizeof rate_text));
    /* both: a held registration, a cap refusal that spends the second token, then an attempt
     * over both limits must be refused by the rate */
    REQUIRE(reg_from(&s3, "127.0.4.3", "order-3"));
    CHECK(refused_register("127.0.4.3", "order-3b", 7, NULL, 0));
    CHECK(refused_register("127.0.4.3", "order-3c", 7, both_text, sizeof both_text));
    /* a per-source refusal comes before the id-in-use check... */
    CHECK(refused_register("127.0.4.3", "order-1", 7, NULL, 0));
    REQUIRE(same_window(window));
    /* ...which a fresh source reaches */
    CHECK(refused_register("127.0.4.4", "order-1", 5, NULL, 0));

    /* the reference's texts, word for word */
    CHECK_EQ_STR(cap_text, "too many concurrent registrations from your address");
    CHECK_EQ_STR(rate_text, "registration rate limit exceeded for your address");
    CHECK_EQ_STR(both_text, rate_text);
    CHECK(alive(&s1, 1));
    CHECK(alive(&s3, 2));
    wsc_close(&s1);
    wsc_close(&s3);
    STOP_OK();
}

/* ---------------------------------------------------------------- per-connection limits */

static void test_message_rate_disconnects(void)
{
    static const char *const args[] = { "--messages-per-conn-per-sec", "20", "--ban-threshold", "0", NULL };
    REQUIRE(h_start(args));
    ws_client steady, flooder, same_source, other_source;
    REQUIRE(reg_from(&steady, "127.0.5.1", "steady"));
    REQUIRE(reg_from(&flooder, "127.0.5.1", "flooder"));
    REQUIRE(reg_from(&same_source, "127.0.5.1", "same-source"));
    REQUIRE(reg_from(&other_source, "127.0.5.2", "other-source"));

    /* ten frames a second for 2.5 s stays under 20 per window whatever the alignment */
    bool kept = true;
    for (uint64_t ts = 1; ts <= 25 && kept; ts++) {
        kept = alive(&steady, ts);
        h_sleep_ms(100);
    }
    CHECK(kept);

    /* 40 in one burst: disconnected, and only that connection */
    (void)send_burst(&flooder, "{\"type\":\"ping\",\"timestamp\":7}", 40);
    CHECK(policy_closed(&flooder, WAIT));
    CHECK(expect_disconnected(&steady, "flooder"));
    CHECK(expect_disconnected(&same_source, "flooder"));
    CHECK(expect_disconnected(&other_source, "flooder"));
    CHECK(alive(&steady, 2));
    CHECK(alive(&same_source, 3));
    CHECK(alive(&other_source, 4));
    wsc_close(&steady);
    wsc_close(&flooder);
    wsc_close(&same_source);
    wsc_close(&other_source);
    STOP_OK();
}

static void test_byte_rate_disconnects(void)
{
    static const char *const args[] = { "--bytes-per-conn-per-sec", "10000", "--ban-threshold", "0", NULL };
    REQUIRE(h_start(args));
    ws_client sender, flooder, receiver, bystander;
    REQUIRE(reg_from(&receiver, "127.0.6.1", "receiver"));
    REQUIRE(reg_from(&bystander, "127.0.6.1", "bystander"));
    REQUIRE(reg_from(&sender, "127.0.6.2", "sender"));
    REQUIRE(reg_from(&flooder, "127.0.6.2", "flooder"));

    /* two ~4 KB frames at once fit under 10000 bytes/s, and again in the next window */
    uint64_t window = align_window(50, 400);
    REQUIRE(send_relay_burst(&sender, "receiver", 2000, 1, 2));
    CHECK(expect_relayed(&receiver, 2));
    REQUIRE(same_window(window));
    while (h_now_ms() / 1000u == window)
        h_sleep_ms(10);
    REQUIRE(send_relay_burst(&sender, "receiver", 2000, 3, 2));
    CHECK(expect_relayed(&receiver, 4));
    CHECK(alive(&sender, 1));

    /* three at once do not: the third is not relayed, the connection is closed */
    (void)send_relay_burst(&flooder, "receiver", 2000, 101, 3);
    CHECK(policy_closed(&flooder, WAIT));
    CHECK(expect_relayed(&receiver, 102));
    CHECK(wsc_recv_msg(&receiver, WAIT) == WSC_OK &&
          strcmp((const char *)receiver.msg, "{\"type\":\"peer_disconnected\",\"peer_id\":\"flooder\"}") == 0);
    CHECK(alive(&sender, 2));
    CHECK(alive(&receiver, 3));
    CHECK(alive(&bystander, 4));
    wsc_close(&sender);
    wsc_close(&flooder);
    wsc_close(&receiver);
    wsc_close(&bystander);
    STOP_OK();
}

static void test_lifetime_bytes_disconnect(void)
{
    static const char *const args[] = { "--max-relayed-bytes-per-conn", "20000", "--ban-threshold", "0", NULL };
    REQUIRE(h_start(args));
    ws_client sender, receiver, fresh;
    REQUIRE(reg_from(&receiver, "127.0.7.1", "receiver"));
    REQUIRE(reg_from(&sender, "127.0.7.2", "sender"));

    /* ~16 KB spread over three windows: under the lifetime cap, whatever the rate */
    for (uint64_t seq = 1; seq <= 4; seq++) {
        REQUIRE(send_relay(&sender, "receiver", 2000, seq));
        CHECK(expect_relayed(&receiver, seq));
        if (seq % 2 == 0)
            h_sleep_ms(1100);
    }
    CHECK(alive(&sender, 1));
    /* the fifth ~4 KB frame passes 20000 bytes over the connection's life */
    send_relay(&sender, "receiver", 2000, 5);
    CHECK(policy_closed(&sender, WAIT));
    CHECK(expect_disconnected(&receiver, "sender"));
    /* the cap is per connection: a new one from the same source starts from zero */
    REQUIRE(reg_from(&fresh, "127.0.7.2", "fresh"));
    for (uint64_t seq = 1; seq <= 2; seq++) {
        REQUIRE(send_relay(&fresh, "receiver", 2000, 100 + seq));
        CHECK(expect_relayed(&receiver, 100 + seq));
    }
    CHECK(alive(&fresh, 2));
    CHECK(alive(&receiver, 3));
    wsc_close(&sender);
    wsc_close(&receiver);
    wsc_close(&fresh);
    STOP_OK();
}

/* ---------------------------------------------------------------- ban list */

static void test_ban_after_threshold_then_lapse(void)
{
    static const char *const args[] = { "--max-connections-per-ip", "1", "--ban-threshold", "3",
                                        "--ban-duration-secs", "2", "--ban-strike-window-secs", "60", NULL };
    REQUIRE(h_start(args));
    ws_client holder, bystander;
    REQUIRE(reg_from(&holder, "127.0.8.1", "holder"));
    /* three trips of the per-source cap are three strikes: the third bans */
    for (int i = 0; i < 3; i++)
        CHECK(refused_at_accept("127.0.8.1"));
    uint64_t banned_at = h_now_ms();
    /* the ban holds even with the cap free again; other sources are untouched */
    wsc_close(&holder);
    h_sleep_ms(200);
    CHECK(refused_at_accept("127.0.8.1"));
    CHECK(reg_from(&bystander, "127.0.8.2", "bystander"));
    while (h_now_ms() - banned_at < 1200)
        h_sleep_ms(20);
    CHECK(refused_at_accept("127.0.8.1"));

    /* and lapses by itself after --ban-duration-secs (attempts refused by the ban are no strikes) */
    uint64_t lapsed_after = 0;
    ws_client back;
    wsc_opts from_banned = { .port = h_relay.port, .src = "127.0.8.1" };
    while (h_now_ms() - banned_at < 4000 && !lapsed_after) {
        if (wsc_connect(&back, &from_banned)) {
            lapsed_after = h_now_ms() - banned_at;
        } else {
            wsc_close(&back);
            h_sleep_ms(100);
        }
    }
    printf("  info: ban lapsed %llu ms after the third strike\n", (unsigned long long)lapsed_after);
    CHECK(lapsed_after >= 1800 && lapsed_after <= 3200);
    CHECK(lapsed_after && wsc_register(&back, "back", NET));
    CHECK(alive(&bystander, 1));
    wsc_close(&back);
    wsc_close(&bystander);
    STOP_OK();
}

static void test_strikes_from_frame_and_register_limits_ban(void)
{
    static const char *const args[] = { "--ban-threshold", "3", "--ban-duration-secs", "60",
                                        "--messages-per-conn-per-sec", "5", "--registrations-per-ip-per-sec", "1",
                                        NULL };
    REQUIRE(h_start(args));
    ws_client bystander;
    REQUIRE(reg_from(&bystander, "127.0.9.9", "bystander"));

    /* three connections disconnected for their message rate ban their source */
    for (int i = 0; i < 3; i++) {
        ws_client f;
        REQUIRE(ws_from(&f, "127.0.9.1"));
        send_burst(&f, "{\"type\":\"ping\",\"timestamp\":1}", 10);
        CHECK(policy_closed(&f, WAIT));
        wsc_close(&f);
    }
    CHECK(refused_at_accept("127.0.9.1"));

    /* three register-rate refusals ban theirs */
    enum { ATTEMPTS = 6 };
    ws_client r[ATTEMPTS];
    for (int i = 0; i < ATTEMPTS; i++)
        REQUIRE(ws_from(&r[i], "127.0.9.2"));
    uint64_t window = align_window(50, 400);
    for (int i = 0; i < ATTEMPTS; i++) {
        char id[32];
        snprintf(id, sizeof id, "storm-%d", i);
        REQUIRE(send_register(&r[i], id));
    }
    int refused = 0, kept = -1;
    for (int i = 0; i < ATTEMPTS; i++) {
        REQUIRE(wsc_recv_type(&r[i], "register_ack", WAIT) == WSC_OK);
        if (h_starts_with((const char *)r[i].msg, "{\"type\":\"register_ack\",\"success\":true,")) {
            kept = i;
            continue;
        }
        CHECK(wsc_recv_type(&r[i], "error", WAIT) == WSC_OK &&
              h_starts_with((const char *)r[i].msg, "{\"type\":\"error\",\"code\":7,"));
        CHECK_EQ_INT(wsc_expect_close(&r[i], WAIT), 1008);
        refused++;
    }
    REQUIRE(same_window(window));
    CHECK_EQ_INT(refused, ATTEMPTS - 1);
    CHECK(refused_at_accept("127.0.9.2"));
    /* a ban refuses new connections only: the registered one stays */
    REQUIRE(kept >= 0);
    CHECK(alive(&r[kept], 1));
    CHECK(alive(&bystander, 2));
    CHECK(accepted_from("127.0.9.3"));
    for (int i = 0; i < ATTEMPTS; i++)
        wsc_close(&r[i]);
    wsc_close(&bystander);
    STOP_OK();
}

/* ---------------------------------------------------------------- 0 disables each limit */

#define MANY 130  /* above the default per-source connection (64) and registration (128) caps */

static void test_zero_disables_each_limit(void)
{
    static const char *const args[] = { H_LIMITS_OFF, NULL };
    REQUIRE(h_start(args));
    static ws_client c[MANY];
    int opened = 0;
    for (; opened < MANY; opened++)
        if (!ws_from(&c[opened], "127.0.10.1"))
            break;
    CHECK_EQ_INT(opened, MANY);
    /* all registered in one window: over the default rate (10/s) and the default cap (128) */
    uint64_t window = align_window(50, 300);
    for (int i = 0; i < opened; i++) {
        char id[32];
        snprintf(id, sizeof id, "many-%d", i);
        CHECK(send_register(&c[i], id));
    }
    int acked = 0;
    for (int i = 0; i < opened; i++) {
        static const char ok[] = "{\"type\":\"register_ack\",\"success\":true,";
        if (wsc_recv_type(&c[i], "register_ack", WAIT) == WSC_OK && h_starts_with((const char *)c[i].msg, ok))
            acked++;
    }
    CHECK_EQ_INT(acked, opened);
    CHECK(same_window(window));

    /* 300 frames in one burst: over the default 256/s */
    REQUIRE(opened > 0);
    CHECK(send_burst(&c[0], "{\"type\":\"ping\",\"timestamp\":5}", 300));
    CHECK(alive(&c[0], 6));

    /* more than 1 GiB over one connection, over 1 MiB/s: past the default lifetime and byte rate.
     * Frames are masked with a zero key (legal, and the bytes need no copying) and are not JSON,
     * so each costs the relay an unmask and an error reply. */
    enum { PAYLOAD = 250000, FRAMES = 4400 };
    uint8_t *frame = malloc(PAYLOAD + 14);
    REQUIRE(frame);
    frame[0] = 0x81;
    frame[1] = 0x80 | 127;
    for (int i = 0; i < 8; i++)
        frame[2 + i] = (uint8_t)((uint64_t)PAYLOAD >> (8 * (7 - i)));
    memset(frame + 10, 0, 4);
    memset(frame + 14, 'x', PAYLOAD);
    uint64_t t0 = h_now_ms();
    bool sent = true;
    for (int i = 0; i < FRAMES && sent; i++)
        sent = tcp_send_all(c[1].fd, frame, PAYLOAD + 14, 10000);
    free(frame);
    CHECK(sent);
    printf("  info: %.2f GB over one connection in %llu ms\n", (double)PAYLOAD * FRAMES / 1e9,
           (unsigned long long)(h_now_ms() - t0));
    /* Read the error replies until quiet (the relay drops those past its queue bound); a pong
     * queued behind a full queue would be dropped too. */
    int r;
    while ((r = wsc_recv_msg(&c[1], 300)) == WSC_OK) {
    }
    CHECK_EQ_INT(r, WSC_TIMEOUT);
    CHECK(alive(&c[1], 7));
    CHECK(alive(&c[MANY - 1], 8));
    for (int i = 0; i < opened; i++)
        wsc_close(&c[i]);
    STOP_OK();
}

/* ---------------------------------------------------------------- liveness sweep */

static void test_liveness_sweep_prunes_only_silent_peers(void)
{
    static const char *const args[] = { "--idle-timeout-secs", "10", "--liveness-deadline-secs", "2",
                                        "--health-check-interval-secs", "1", NULL };
    REQUIRE(h_start(args));
    ws_client json_pinger, ws_pinger, silent;
    REQUIRE(reg_from(&json_pinger, "127.0.11.1", "json-pinger"));
    REQUIRE(reg_from(&ws_pinger, "127.0.11.2", "ws-pinger"));
    REQUIRE(reg_from(&silent, "127.0.11.3", "silent"));
    uint64_t silent_since = h_now_ms(), pruned_after = 0;
    bool lost = false;

    /* Five seconds, 2.5 liveness deadlines: one peer pings in JSON, one only with WebSocket
     * control frames, one sends nothing at all. */
    for (uint64_t tick = 1; !lost && h_now_ms() - silent_since < 5000; tick++) {
        char pong[80];
        snprintf(pong, sizeof pong, "{\"type\":\"pong\",\"timestamp\":%llu}", (unsigned long long)tick);
        lost = !send_ping(&json_pinger, tick) || !wsc_send_frame(&ws_pinger, 9, true, "k", 1);
        while (!lost) {
            lost = wsc_recv_msg(&json_pinger, 1000) != WSC_OK;
            const char *m = (const char *)json_pinger.msg;
            if (lost || strcmp(m, pong) == 0)
                break;
            if (strcmp(m, "{\"type\":\"peer_disconnected\",\"peer_id\":\"silent\"}") == 0 && !pruned_after)
                pruned_after = h_now_ms() - silent_since;
            else if (hj_is_type(m, "peer_disconnected"))
                lost = true;
        }
        while (!lost) {
            lost = wsc_recv_frame(&ws_pinger, 1000) != WSC_OK || ws_pinger.msg_opcode == 8 ||
                   (ws_pinger.msg_opcode == 1 && strstr((const char *)ws_pinger.msg, "\"peer_id\":\"json-pinger\"") &&
                    hj_is_type((const char *)ws_pinger.msg, "peer_disconnected"));
            if (ws_pinger.msg_opcode == 10)
                break;
        }
        if (lost)
            printf("  a peer that kept sending frames was disconnected (tick %llu)\n", (unsigned long long)tick);
        h_sleep_ms(250);
    }
    CHECK(!lost);
    printf("  info: silent peer pruned %llu ms after its last frame\n", (unsigned long long)pruned_after);
    CHECK(pruned_after >= 1900 && pruned_after <= 3600);
    int code = wsc_expect_close(&silent, 1000);
    CHECK(code == 1001 || code == 0);

    /* gone from the registry: peers lists the two that kept talking */
    REQUIRE(wsc_send_text(&json_pinger, "{\"type\":\"get_peers\",\"network_id\":\"" NET "\"}"));
    REQUIRE(wsc_recv_type(&json_pinger, "peers", WAIT) == WSC_OK);
    const char *peers = (const char *)json_pinger.msg;
    CHECK_EQ_INT(h_count(peers, "\"peer_id\":"), 2);
    CHECK(strstr(peers, "\"peer_id\":\"json-pinger\"") != NULL);
    CHECK(strstr(peers, "\"peer_id\":\"ws-pinger\"") != NULL);
    char resp[1024];
    CHECK(h_http("127.0.0.1", h_relay.health_port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", resp, sizeof resp, WAIT) > 0);
    CHECK(strstr(resp, "\"connected_peers\":2,") != NULL);
    CHECK(log_shows("liveness_prunes=1", 2500));
    wsc_close(&json_pinger);
    wsc_close(&ws_pinger);
    wsc_close(&silent);
    STOP_OK();
}

/* ---------------------------------------------------------------- configuration */

/* The binary exits 2 and its message names every flag in `flags`. */
static bool config_refused(const char *const *args, const char *const *env, const char *const *flags)
{
    char out[4096], err[4096];
    int code = h_run_binary(args, env, out, sizeof out, err, sizeof err, 5000);
    bool names = true;
    for (size_t i = 0; flags[i]; i++)
        names = names && strstr(err, flags[i]) != NULL;
    if (code != 2 || !names)
        printf("  %s %s ...: exit %d, stderr: %.300s\n", args[0] ? args[0] : "(env)", args[0] && args[1] ? args[1] : "",
               code, err);
    return code == 2 && names;
}

static void test_config_validation_names_the_flags(void)
{
    static const char *const none[] = { NULL };
    CHECK(config_refused((const char *const[]){ "--idle-timeout-secs", "10", "--liveness-deadline-secs", "10", NULL },
                         NULL, (const char *const[]){ "--liveness-deadline-secs", "--idle-timeout-secs", NULL }));
    CHECK(config_refused((const char *const[]){ "--liveness-deadline-secs", "5", "--health-check-interval-secs", "6", NULL },
                         NULL, (const char *const[]){ "--health-check-interval-secs", "--liveness-deadline-secs", NULL }));
    CHECK(config_refused((const char *const[]){ "--max-connections", "10", "--max-connections-per-ip", "11", NULL },
                         NULL, (const char *const[]){ "--max-connections-per-ip", "--max-connections", NULL }));
    CHECK(config_refused((const char *const[]){ "--ban-threshold", "3", "--ban-duration-secs", "0", NULL },
                         NULL, (const char *const[]){ "--ban-duration-secs", "--ban-threshold", NULL }));
    CHECK(config_refused((const char *const[]){ "--ban-strike-window-secs", "0", NULL },  /* banning is on by default */
                         NULL, (const char *const[]){ "--ban-strike-window-secs", "--ban-threshold", NULL }));
    /* values from the environment are explicit too */
    CHECK(config_refused(none, (const char *const[]){ "DIG_RELAY_MAX_CONNECTIONS=10", "DIG_RELAY_MAX_CONNECTIONS_PER_IP=11", NULL },
                         (const char *const[]){ "--max-connections-per-ip", "--max-connections", NULL }));
    CHECK(config_refused(none, (const char *const[]){ "DIG_RELAY_LIVENESS_DEADLINE_SECS=120", NULL },
                         (const char *const[]){ "--liveness-deadline-secs", "--idle-timeout-secs", NULL }));
    CHECK(config_refused(none, (const char *const[]){ "DIG_RELAY_BAN_DURATION_SECS=0", NULL },
                         (const char *const[]){ "--ban-duration-secs", NULL }));

    /* accepted: banning off with zero window and duration; defaults lowered to fit a lowered
     * value; the per-IP cap off; an interval equal to the deadline */
    const char *const *const ok[] = {
        (const char *const[]){ "--ban-threshold", "0", "--ban-duration-secs", "0", "--ban-strike-window-secs", "0", NULL },
        (const char *const[]){ "--max-connections", "10", NULL },
        (const char *const[]){ "--max-connections", "10", "--max-connections-per-ip", "0", NULL },
        (const char *const[]){ "--idle-timeout-secs", "30", NULL },
        (const char *const[]){ "--liveness-deadline-secs", "5", "--health-check-interval-secs", "5", NULL },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        bool started = h_start(ok[i]);
        if (!started)
            printf("  refused: %s %s ...\n", ok[i][0], ok[i][1]);
        CHECK(started);
        if (started)
            STOP_OK();
        relay_cleanup(&h_relay, false);
        memset(&h_relay, 0, sizeof h_relay);
    }
}

/* ---------------------------------------------------------------- counters */

/* Waits up to ms for the last "abuse counters" line of the log to be an INFO line holding every
 * needle. */
static bool counters_show(const char *const *needles, unsigned ms)
{
    uint64_t deadline = h_now_ms() + ms;
    char line[512] = "";
    do {
        char *log = relay_read_log(&h_relay);
        const char *last = NULL;
        for (const char *p = log ? strstr(log, "abuse counters:") : NULL; p; p = strstr(p + 1, "abuse counters:"))
            last = p;
        if (last) {
            const char *bol = last;
            while (bol > log && bol[-1] != '\n')
                bol--;
            size_t n = strcspn(bol, "\n");
            snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), bol);
        }
        free(log);
        bool all = last && strstr(line, " INFO ") != NULL;
        for (size_t i = 0; all && needles[i]; i++)
            all = strstr(line, needles[i]) != NULL;
        if (all)
            return true;
        h_sleep_ms(50);
    } while (h_now_ms() < deadline);
    printf("  last counters line: %s\n", line[0] ? line : "(none)");
    return false;
}

static void test_counters_logged_at_info(void)
{
    static const char *const args[] = { "--max-connections-per-ip", "1", "--ban-threshold", "2",
                                        "--health-check-interval-secs", "1", NULL };
    REQUIRE(h_start(args));
    ws_client holder;
    REQUIRE(reg_from(&holder, "127.0.12.1", "holder"));
    /* two cap refusals are two strikes and a ban; the third is refused by the ban, no strike */
    for (int i = 0; i < 3; i++)
        CHECK(refused_at_accept("127.0.12.1"));
    /* The line is written at most once per interval, and on time without other traffic. */
    CHECK(counters_show((const char *const[]){ "refused_connections=3 ", "strikes=2 ", "bans=1 ",
                                               "refused_registrations=0 ", NULL }, 3000));
    wsc_close(&holder);
    STOP_OK();
    relay_cleanup(&h_relay, test_cur_failed != 0);
    memset(&h_relay, 0, sizeof h_relay);

    /* an info line: absent at warn */
    static const char *const quiet[] = { "--max-connections-per-ip", "1", "--ban-threshold", "2",
                                         "--health-check-interval-secs", "1", "--log-level", "warn", NULL };
    REQUIRE(h_start(quiet));
    REQUIRE(reg_from(&holder, "127.0.12.1", "holder"));
    for (int i = 0; i < 3; i++)
        CHECK(refused_at_accept("127.0.12.1"));
    h_sleep_ms(1500);
    char *log = relay_read_log(&h_relay);
    CHECK(log && strstr(log, "abuse counters") == NULL);
    free(log);
    wsc_close(&holder);
    STOP_OK();
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    T(test_per_ip_connection_cap);
    T(test_register_rate_per_ip);
    T(test_concurrent_registrations_per_ip);
    T(test_register_refusal_order);
    T(test_message_rate_disconnects);
    T(test_byte_rate_disconnects);
    T(test_lifetime_bytes_disconnect);
    T(test_ban_after_threshold_then_lapse);
    T(test_strikes_from_frame_and_register_limits_ban);
    T(test_zero_disables_each_limit);
    T(test_liveness_sweep_prunes_only_silent_peers);
    T(test_config_validation_names_the_flags);
    T(test_counters_logged_at_info);
    return test_finish();
}
