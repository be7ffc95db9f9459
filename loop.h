/* The readiness loop: one small API over epoll / poll() / WSAPoll, plus the process's timers and
 * its notion of "now". Each registered socket gets a slot and a callback; the caller keeps the
 * slot number for O(1) updates and removal. Timers (connection deadlines, the PEX schedule,
 * periodic jobs) live on one min-heap; the wait lasts until the nearest one is due, so an idle
 * relay sleeps until it has something to do. */
#ifndef DIG_LOOP_H
#define DIG_LOOP_H

#include "compat/compat.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOOP_READ  0x1
#define LOOP_WRITE 0x2
#define LOOP_ERROR 0x4   /* hang-up or error reported by the backend */

typedef void (*loop_fn)(void *ctx, socket_t fd, int events);

typedef struct loop loop;

loop *loop_new(size_t max_fds);
void loop_free(loop *l);
/* Registers fd for `events` (LOOP_READ/LOOP_WRITE); returns its slot or -1 when full. */
int loop_add(loop *l, socket_t fd, int events, loop_fn fn, void *ctx);
void loop_set_events(loop *l, int slot, int events);
int loop_events(const loop *l, int slot);
/* Removes the slot; safe from inside a callback (the removed slot is not dispatched again). */
void loop_del(loop *l, int slot);
size_t loop_count(const loop *l);
/* Waits up to timeout_ms (-1 forever), refreshes the clock, and dispatches ready callbacks (so
 * the first event after a long sleep is never handled with stale time). Timers do not run here:
 * see loop_run_timers. Returns the number of ready sockets, 0 on timeout, -1 on a poll error
 * other than an interrupt. */
int loop_run_once(loop *l, int timeout_ms);

/* ---- clock ---- */
/* Monotonic milliseconds and wall-clock seconds as of the latest wake-up (or refresh). Every
 * deadline uses the first; the second is for wire timestamps only. */
uint64_t loop_now_ms(const loop *l);
uint64_t loop_wall_secs(const loop *l);
/* Reads the clocks again (after the owner slept outside loop_run_once). */
void loop_refresh_clock(loop *l);

/* ---- timers ---- */
/* A timer lives inside its owner's struct; the loop files it on its heap while armed. A fired
 * timer is disarmed before its callback runs, and the callback may arm it again. */
typedef struct loop_timer {
    uint64_t due_ms;          /* absolute, on loop_now_ms's clock */
    size_t heap_idx;          /* position on the heap; SIZE_MAX while disarmed */
    void (*fn)(void *ctx);
    void *ctx;
} loop_timer;

void loop_timer_init(loop_timer *t, void (*fn)(void *ctx), void *ctx);
/* Arms t for due_ms, or moves it there when already armed. False only when the heap could not
 * grow (out of memory); t is then disarmed. */
bool loop_timer_set(loop *l, loop_timer *t, uint64_t due_ms);
void loop_timer_stop(loop *l, loop_timer *t);
static inline bool loop_timer_armed(const loop_timer *t) { return t->heap_idx != SIZE_MAX; }
/* Runs every timer due at the current loop_now_ms, earliest first. */
void loop_run_timers(loop *l);
/* Milliseconds until the nearest timer, at most cap_ms; -1 when no timer is armed and cap_ms is
 * negative. */
int loop_next_timeout(const loop *l, int cap_ms);

/* Wake-up coalescing for keepalive traffic (pure: the owner passes its clock and what the pass
 * did). Many idle clients pinging on their own clocks would wake an otherwise quiet loop once per
 * ping, and the wake-up can cost more than the answer. After a pass that only answered
 * keepalives, when nothing else has happened for LOOP_HOLD_QUIET_MS and the previous wake-up was
 * less than LOOP_HOLD_MS ago (keepalives arrive faster than one per hold), the owner should
 * sleep LOOP_HOLD_MS before waiting again, then answer everything that arrived at once. Any other
 * work stops the holding for the next LOOP_HOLD_QUIET_MS, and a trickle of keepalives never
 * starts it, so the only cost is that the first message after a keepalive-only spell can wait up
 * to LOOP_HOLD_MS. */
#define LOOP_HOLD_MS 10
#define LOOP_HOLD_QUIET_MS 1000
typedef struct {
    uint64_t last_busy_ms;   /* when a pass last did more than keepalives */
} loop_coalescer;
/* ready: the wait's return value; busy: the pass did anything beyond keepalives; keepalive: it
 * answered at least one; since_wake_ms: time from the previous wake-up to this one (the pass
 * before the wait, then the wait). Returns true to hold. */
bool loop_should_hold(loop_coalescer *co, uint64_t now_ms, uint64_t since_wake_ms, int ready,
                      bool busy, bool keepalive);

#endif
