/* Unit tests for loop.c over socket pairs: readiness dispatch, interest changes, removal from
 * inside a callback (including a slot reused in the same pass), the timeout, the clock and the
 * timer heap; and the gathered send (compat_sendv) the loop's connections write with. Run
 * against whichever backend the build selected (epoll on Linux, poll with -DLOOP_USE_POLL). */
#include "compat/compat.h"
#include "loop.h"
#include "test.h"

#include <string.h>

#include <sys/socket.h>

struct probe {
    loop *l;
    int slot;
    int calls;
    int last_events;
    struct probe *victim;   /* removed (and its slot reused) by this probe's callback */
    socket_t reuse_fd;
    struct probe *reuser;
};

static void on_ready(void *ctx, socket_t fd, int events)
{
    struct probe *p = ctx;
    (void)fd;
    p->calls++;
    p->last_events = events;
    if (p->victim && p->victim->slot >= 0) {
        loop_del(p->l, p->victim->slot);
        p->victim->slot = -1;
        if (p->reuser)
            p->reuser->slot = loop_add(p->l, p->reuse_fd, LOOP_READ, on_ready, p->reuser);
    }
}

static void test_read_and_write_readiness(void)
{
    int sv[2];
    loop *l = loop_new(8);
    struct probe p = { 0 };
    REQUIRE(l && socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    p.l = l;
    p.slot = loop_add(l, sv[0], LOOP_READ, on_ready, &p);
    REQUIRE(p.slot >= 0);
    CHECK_EQ_INT(loop_run_once(l, 0), 0);          /* nothing to read yet */
    CHECK_EQ_INT(p.calls, 0);
    CHECK(write(sv[1], "x", 1) == 1);
    CHECK_EQ_INT(loop_run_once(l, 1000), 1);
    CHECK_EQ_INT(p.calls, 1);
    CHECK(p.last_events & LOOP_READ);
    loop_set_events(l, p.slot, LOOP_READ | LOOP_WRITE);
    CHECK_EQ_INT(loop_events(l, p.slot), LOOP_READ | LOOP_WRITE);
    CHECK_EQ_INT(loop_run_once(l, 1000), 1);
    CHECK(p.last_events & LOOP_WRITE);
    loop_del(l, p.slot);
    CHECK_EQ_INT(loop_count(l), 0);
    CHECK_EQ_INT(loop_run_once(l, 10), 0);
    loop_free(l);
    close(sv[0]);
    close(sv[1]);
}

static void test_removal_and_reuse_inside_a_pass(void)
{
    int a[2], b[2], c[2];
    loop *l = loop_new(4);
    struct probe pa = { 0 }, pb = { 0 }, pc = { 0 };
    REQUIRE(l);
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, a) == 0);
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, b) == 0);
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, c) == 0);
    pa.l = pb.l = pc.l = l;
    pa.slot = loop_add(l, a[0], LOOP_READ, on_ready, &pa);
    pb.slot = loop_add(l, b[0], LOOP_READ, on_ready, &pb);
    /* Whichever of a and b is dispatched first removes the other and hands its slot to c; the
     * event still queued for the removed socket must not reach c (whose socket is idle). */
    pa.victim = &pb;
    pb.victim = &pa;
    pa.reuse_fd = pb.reuse_fd = c[0];
    pa.reuser = pb.reuser = &pc;
    CHECK(write(a[1], "x", 1) == 1);
    CHECK(write(b[1], "x", 1) == 1);
    loop_run_once(l, 1000);
    CHECK_EQ_INT(pa.calls + pb.calls, 1);
    CHECK_EQ_INT(pc.calls, 0);
    CHECK(pc.slot >= 0);
    CHECK_EQ_INT(loop_count(l), 2);
    loop_free(l);
    for (int i = 0; i < 2; i++) {
        close(a[i]);
        close(b[i]);
        close(c[i]);
    }
}

static void test_capacity_is_enforced(void)
{
    int sv[2];
    loop *l = loop_new(1);
    struct probe p = { 0 };
    REQUIRE(l && socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK(loop_add(l, sv[0], LOOP_READ, on_ready, &p) >= 0);
    CHECK_EQ_INT(loop_add(l, sv[1], LOOP_READ, on_ready, &p), -1);
    loop_free(l);
    close(sv[0]);
    close(sv[1]);
}

static uint64_t now_seen_by_callback;

static void note_now(void *ctx, socket_t fd, int events)
{
    char b;
    (void)events;
    now_seen_by_callback = loop_now_ms(ctx);
    CHECK(read(fd, &b, 1) == 1);
}

/* The clock is read after every wait and before the callbacks of that pass, so a callback
 * always sees time refreshed after the sleep. */
static void test_clock_refreshed_before_callbacks(void)
{
    int sv[2];
    loop *l = loop_new(2);
    uint64_t before;
    REQUIRE(l && socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    REQUIRE(loop_add(l, sv[0], LOOP_READ, note_now, l) >= 0);
    before = loop_now_ms(l);
    CHECK_EQ_INT(loop_run_once(l, 30), 0);
    CHECK(loop_now_ms(l) >= before + 25);
    CHECK(write(sv[1], "x", 1) == 1);
    CHECK_EQ_INT(loop_run_once(l, 1000), 1);
    CHECK_EQ_INT(now_seen_by_callback, loop_now_ms(l));
    CHECK(loop_wall_secs(l) > 1700000000u);
    loop_free(l);
    close(sv[0]);
    close(sv[1]);
}

/* ---- timers ---- */

#define N_TIMERS 200

struct tick {
    loop *l;
    loop_timer t;
    int id, fired;
    int *order, *n_order;
    struct tick *stop_other;   /* disarmed by this one's callback */
    uint64_t rearm_ms;         /* re-armed by its own callback once, this far ahead */
};

static void on_tick(void *ctx)
{
    struct tick *k = ctx;
    k->fired++;
    k->order[(*k->n_order)++] = k->id;
    if (k->stop_other)
        loop_timer_stop(k->l, &k->stop_other->t);
    if (k->rearm_ms && k->fired == 1)
        CHECK(loop_timer_set(k->l, &k->t, loop_now_ms(k->l) + k->rearm_ms));
}

/* Timers fire earliest first, whatever order they were armed, moved or stopped in; a fired timer
 * is disarmed; a callback can stop another due timer and re-arm itself; the wait is the distance
 * to the nearest one. */
static void test_timers_fire_in_due_order(void)
{
    static struct tick ticks[N_TIMERS];
    int order[3 * N_TIMERS], n_order = 0;
    loop *l = loop_new(1);
    uint64_t base;
    REQUIRE(l);
    base = loop_now_ms(l);
    CHECK_EQ_INT(loop_next_timeout(l, -1), -1);
    CHECK_EQ_INT(loop_next_timeout(l, 500), 500);
    for (int i = 0; i < N_TIMERS; i++) {
        struct tick *k = &ticks[i];
        memset(k, 0, sizeof *k);
        k->l = l;
        k->id = i;
        k->order = order;
        k->n_order = &n_order;
        loop_timer_init(&k->t, on_tick, k);
        CHECK(!loop_timer_armed(&k->t));
        /* a scrambled arming order: due times i*7 mod N_TIMERS, all in the past once we wait */
        CHECK(loop_timer_set(l, &k->t, base + 1000000 + (uint64_t)((i * 7) % N_TIMERS)));
        CHECK(loop_timer_armed(&k->t));
    }
    /* move every timer to due = base - (N - id): now ordered by id, all already due */
    for (int i = N_TIMERS - 1; i >= 0; i -= 2)
        CHECK(loop_timer_set(l, &ticks[i].t, base - (uint64_t)(N_TIMERS - i)));
    for (int i = 0; i < N_TIMERS; i += 2)
        CHECK(loop_timer_set(l, &ticks[i].t, base - (uint64_t)(N_TIMERS - i)));
    loop_timer_stop(l, &ticks[5].t);                 /* stopped: never fires */
    loop_timer_stop(l, &ticks[5].t);                 /* stopping twice is harmless */
    ticks[10].stop_other = &ticks[11];               /* a due timer stopped by an earlier one */
    ticks[20].rearm_ms = 1000000;                    /* re-arms itself far ahead */
    CHECK_EQ_INT(loop_next_timeout(l, 500), 0);
    loop_run_timers(l);
    CHECK_EQ_INT(n_order, N_TIMERS - 2);
    for (int i = 1; i < n_order; i++)
        CHECK(order[i - 1] < order[i]);
    CHECK_EQ_INT(ticks[5].fired, 0);
    CHECK_EQ_INT(ticks[11].fired, 0);
    CHECK(!loop_timer_armed(&ticks[0].t));
    CHECK(loop_timer_armed(&ticks[20].t));
    CHECK_EQ_INT(loop_next_timeout(l, 500), 500);
    CHECK(loop_next_timeout(l, -1) > 900000);
    loop_timer_stop(l, &ticks[20].t);
    CHECK_EQ_INT(loop_next_timeout(l, -1), -1);
    loop_free(l);
}

/* A timer due shortly makes loop_next_timeout short, and it runs once the clock has passed it. */
static void test_timer_runs_when_due(void)
{
    int order[4], n_order = 0;
    struct tick k = { 0 };
    loop *l = loop_new(1);
    REQUIRE(l);
    k.l = l;
    k.order = order;
    k.n_order = &n_order;
    loop_timer_init(&k.t, on_tick, &k);
    CHECK(loop_timer_set(l, &k.t, loop_now_ms(l) + 30));
    CHECK(loop_next_timeout(l, 1000) <= 30);
    loop_run_timers(l);
    CHECK_EQ_INT(k.fired, 0);                        /* not yet due */
    uint64_t give_up = loop_now_ms(l) + 5000;
    while (k.fired == 0 && loop_now_ms(l) < give_up) {
        CHECK(loop_run_once(l, loop_next_timeout(l, 1000)) >= 0);
        loop_run_timers(l);
    }
    CHECK_EQ_INT(k.fired, 1);
    CHECK_EQ_INT(loop_next_timeout(l, -1), -1);
    loop_free(l);
}

static void test_timeout_elapses(void)
{
    loop *l = loop_new(1);
    uint64_t t0 = compat_monotonic_ms();
    REQUIRE(l);
    CHECK_EQ_INT(loop_run_once(l, 50), 0);
    CHECK(compat_monotonic_ms() - t0 >= 40);
    loop_free(l);
}

/* Keepalive coalescing: holds only after a keepalive-only pass that came quickly, once nothing
 * else has happened for the quiet period; any other work, a slow trickle or an empty wait does
 * not hold, and busy work restarts the quiet period. */
static void test_keepalive_hold_rules(void)
{
    loop_coalescer co = { 0 };
    uint64_t t = 5000;
    /* quiet since start, pings arriving 1 ms apart: hold */
    CHECK(loop_should_hold(&co, t, 1, 3, false, true));
    /* a pass with no keepalive answered, a timeout, or a poll error never holds */
    CHECK(!loop_should_hold(&co, t, 1, 1, false, false));
    CHECK(!loop_should_hold(&co, t, 1, 0, false, false));
    CHECK(!loop_should_hold(&co, t, 1, -1, false, true));
    /* a trickle: the wait blocked a whole hold or more */
    CHECK(!loop_should_hold(&co, t, LOOP_HOLD_MS, 1, false, true));
    CHECK(loop_should_hold(&co, t, LOOP_HOLD_MS - 1, 1, false, true));
    /* busy work (a relayed message, even with pings in the same pass) ends the holding... */
    CHECK(!loop_should_hold(&co, t, 0, 2, true, true));
    CHECK_EQ_INT(co.last_busy_ms, t);
    CHECK(!loop_should_hold(&co, t + 1, 0, 1, false, true));
    CHECK(!loop_should_hold(&co, t + LOOP_HOLD_QUIET_MS - 1, 0, 1, false, true));
    /* ...until a quiet period has passed */
    CHECK(loop_should_hold(&co, t + LOOP_HOLD_QUIET_MS, 0, 1, false, true));
}

/* A backlog of small frames leaves in one call as far as COMPAT_IOV_MAX buffers go (it once
 * stopped at 64, so a member's queued notices left 13 KB a syscall), and no further. Pieces of
 * 4 bytes keep the whole send within the smallest default socket-pair buffer (8 KiB on BSDs). */
static void test_gathered_send_takes_iov_max_buffers(void)
{
    enum { PIECE = 4, N = COMPAT_IOV_MAX + 5 };
    static struct compat_iov iov[N];
    static uint32_t text[N];
    static char got[N * PIECE];
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    for (int i = 0; i < N; i++) {
        text[i] = (uint32_t)i;   /* each piece its own index: a piece out of place shows */
        iov[i].base = &text[i];
        iov[i].len = PIECE;
    }
    long sent = (long)compat_sendv(sv[0], iov, N);
    CHECK_EQ_INT(sent, COMPAT_IOV_MAX * PIECE);
    size_t have = 0;
    while (sent > 0 && have < (size_t)sent) {
        ssize_t n = read(sv[1], got + have, (size_t)sent - have);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    CHECK(have == (size_t)COMPAT_IOV_MAX * PIECE);
    CHECK(memcmp(got, text, have) == 0);   /* in order, each piece whole */
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    RUN(test_read_and_write_readiness);
    RUN(test_removal_and_reuse_inside_a_pass);
    RUN(test_capacity_is_enforced);
    RUN(test_timeout_elapses);
    RUN(test_clock_refreshed_before_callbacks);
    RUN(test_timers_fire_in_due_order);
    RUN(test_timer_runs_when_due);
    RUN(test_keepalive_hold_rules);
    RUN(test_gathered_send_takes_iov_max_buffers);
    return test_finish();
}
