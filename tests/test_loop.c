/* Unit tests for loop.c over socket pairs: readiness dispatch, interest changes, removal from
 * inside a callback (including a slot reused in the same pass), and the timeout. Run against
 * whichever backend the build selected (epoll on Linux, poll with -DLOOP_USE_POLL). */
#include "loop.h"
#include "test.h"

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

static int wakes, wakes_seen_by_callback;

static void count_wake(void *ctx)
{
    (void)ctx;
    wakes++;
}

static void note_wakes(void *ctx, socket_t fd, int events)
{
    char b;
    (void)ctx;
    (void)events;
    wakes_seen_by_callback = wakes;
    CHECK(read(fd, &b, 1) == 1);
}

/* The wake hook runs after every wait and before the callbacks of that pass, so a callback
 * always sees time refreshed after the sleep. */
static void test_wake_hook_runs_before_callbacks(void)
{
    int sv[2];
    loop *l = loop_new(2);
    REQUIRE(l && socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    loop_set_wake_hook(l, count_wake, NULL);
    REQUIRE(loop_add(l, sv[0], LOOP_READ, note_wakes, NULL) >= 0);
    CHECK_EQ_INT(loop_run_once(l, 10), 0);
    CHECK_EQ_INT(wakes, 1);
    CHECK(write(sv[1], "x", 1) == 1);
    CHECK_EQ_INT(loop_run_once(l, 1000), 1);
    CHECK_EQ_INT(wakes, 2);
    CHECK_EQ_INT(wakes_seen_by_callback, 2);
    loop_free(l);
    close(sv[0]);
    close(sv[1]);
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

int main(void)
{
    RUN(test_read_and_write_readiness);
    RUN(test_removal_and_reuse_inside_a_pass);
    RUN(test_capacity_is_enforced);
    RUN(test_timeout_elapses);
    RUN(test_wake_hook_runs_before_callbacks);
    RUN(test_keepalive_hold_rules);
    return test_finish();
}
