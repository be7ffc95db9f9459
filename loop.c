/* The readiness loop of loop.h, its clock and its timer heap. The backend is chosen here, at compile time, in one place:
 * epoll on Linux (cost proportional to ready sockets, which is what keeps tens of thousands of
 * idle reservations cheap), poll()/WSAPoll everywhere else (and on Linux with -DLOOP_USE_POLL,
 * for comparison). Slots are small integers owned by the caller; a slot's generation travels
 * with its kernel registration so an event queued for a socket that was removed, and whose slot
 * was reused within the same pass, is never delivered to the newcomer. */
#include "loop.h"

#include <stdlib.h>

#if defined(__linux__) && !defined(LOOP_USE_POLL)
#  define LOOP_EPOLL 1
#  include <sys/epoll.h>
#endif

/* Readiness events taken per wait (epoll): enough that every ready socket is seen each pass
 * (a keepalive on one socket must not wait behind thousands of busy ones for several passes);
 * how much work a pass does is bounded by its users (conn.c), not here. */
#define LOOP_BATCH_MAX 16384

struct slot {
    socket_t fd;
    loop_fn fn;
    void *ctx;
    int events;
    uint32_t gen;
    int pos;          /* poll backend: index in the pollfd array; -1 when the slot is free */
};

struct loop {
    struct slot *slots;
    int *free_ids;
    size_t n_free, count, max;
    uint64_t now_ms, wall_secs;
    loop_timer **heap;        /* min-heap of armed timers by due_ms */
    size_t heap_len, heap_cap;
#ifdef LOOP_EPOLL
    int epfd;
    struct epoll_event *evs;
    int n_evs;
#else
    struct pollfd *fds;
    int *ids;         /* ids[pos] = slot living at pollfd position pos */
#endif
};

loop *loop_new(size_t max_fds)
{
    loop *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->max = max_fds;
    l->slots = calloc(max_fds, sizeof *l->slots);
    l->free_ids = calloc(max_fds, sizeof *l->free_ids);
#ifdef LOOP_EPOLL
    l->n_evs = max_fds < LOOP_BATCH_MAX ? (int)max_fds : LOOP_BATCH_MAX;
    l->evs = calloc((size_t)l->n_evs, sizeof *l->evs);
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!l->slots || !l->free_ids || !l->evs || l->epfd < 0) {
#else
    l->fds = calloc(max_fds, sizeof *l->fds);
    l->ids = calloc(max_fds, sizeof *l->ids);
    if (!l->slots || !l->free_ids || !l->fds || !l->ids) {
#endif
        loop_free(l);
        return NULL;
    }
    for (size_t i = 0; i < max_fds; i++) {
        l->slots[i].pos = -1;
        l->free_ids[i] = (int)(max_fds - 1 - i);
    }
    l->n_free = max_fds;
    loop_refresh_clock(l);
    return l;
}

void loop_free(loop *l)
{
    if (!l)
        return;
#ifdef LOOP_EPOLL
    if (l->epfd >= 0)
        close(l->epfd);
    free(l->evs);
#else
    free(l->fds);
    free(l->ids);
#endif
    free(l->slots);
    free(l->free_ids);
    free(l->heap);
    free(l);
}

#ifdef LOOP_EPOLL
static uint32_t to_epoll(int events)
{
    return ((events & LOOP_READ) ? (uint32_t)EPOLLIN : 0u) | ((events & LOOP_WRITE) ? (uint32_t)EPOLLOUT : 0u);
}

static bool backend_add(loop *l, int id)
{
    struct epoll_event ev = { 0 };
    ev.events = to_epoll(l->slots[id].events);
    ev.data.u64 = ((uint64_t)l->slots[id].gen << 32) | (uint32_t)id;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->slots[id].fd, &ev) != 0)
        return false;
    l->slots[id].pos = 0;   /* marks the slot live; epoll keeps no array */
    return true;
}

static void backend_mod(loop *l, int id)
{
    struct epoll_event ev = { 0 };
    ev.events = to_epoll(l->slots[id].events);
    ev.data.u64 = ((uint64_t)l->slots[id].gen << 32) | (uint32_t)id;
    epoll_ctl(l->epfd, EPOLL_CTL_MOD, l->slots[id].fd, &ev);
}

static void backend_del(loop *l, int id)
{
    struct epoll_event ev = { 0 };
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, l->slots[id].fd, &ev);
}
#else
static short to_poll(int events)
{
    return (short)(((events & LOOP_READ) ? POLLIN : 0) | ((events & LOOP_WRITE) ? POLLOUT : 0));
}

static bool backend_add(loop *l, int id)
{
    size_t p = l->count;
    l->fds[p].fd = l->slots[id].fd;
    l->fds[p].events = to_poll(l->slots[id].events);
    l->fds[p].revents = 0;
    l->ids[p] = id;
    l->slots[id].pos = (int)p;
    return true;
}

static void backend_mod(loop *l, int id)
{
    l->fds[l->slots[id].pos].events = to_poll(l->slots[id].events);
}

/* Swap the last entry into the hole so the array stays dense: O(1). */
static void backend_del(loop *l, int id)
{
    int p = l->slots[id].pos;
    size_t last = l->count - 1;
    if ((size_t)p != last) {
        l->fds[p] = l->fds[last];
        l->ids[p] = l->ids[last];
        l->slots[l->ids[p]].pos = p;
    }
}
#endif

int loop_add(loop *l, socket_t fd, int events, loop_fn fn, void *ctx)
{
    int id;
    struct slot *s;
    if (l->n_free == 0)
        return -1;
    id = l->free_ids[l->n_free - 1];
    s = &l->slots[id];
    s->fd = fd;
    s->fn = fn;
    s->ctx = ctx;
    s->events = events;
    s->gen++;
    if (!backend_add(l, id))
        return -1;
    l->n_free--;
    l->count++;
    return id;
}

void loop_set_events(loop *l, int slot, int events)
{
    if (l->slots[slot].events == events)
        return;
    l->slots[slot].events = events;
    backend_mod(l, slot);
}

int loop_events(const loop *l, int slot) { return l->slots[slot].events; }

void loop_del(loop *l, int slot)
{
    backend_del(l, slot);
    l->slots[slot].pos = -1;
    l->slots[slot].gen++;
    l->count--;
    l->free_ids[l->n_free++] = slot;
}

size_t loop_count(const loop *l) { return l->count; }

/* ---- clock ---- */

void loop_refresh_clock(loop *l)
{
    l->now_ms = compat_monotonic_ms();
    l->wall_secs = compat_wall_secs();
}

uint64_t loop_now_ms(const loop *l) { return l->now_ms; }
uint64_t loop_wall_secs(const loop *l) { return l->wall_secs; }

static void woke(loop *l) { loop_refresh_clock(l); }

/* ---- timers ---- */

static void heap_place(loop *l, size_t i, loop_timer *t)
{
    l->heap[i] = t;
    t->heap_idx = i;
}

static void heap_up(loop *l, size_t i)
{
    loop_timer *t = l->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (l->heap[p]->due_ms <= t->due_ms)
            break;
        heap_place(l, i, l->heap[p]);
        i = p;
    }
    heap_place(l, i, t);
}

static void heap_down(loop *l, size_t i)
{
    loop_timer *t = l->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->heap_len)
            break;
        if (c + 1 < l->heap_len && l->heap[c + 1]->due_ms < l->heap[c]->due_ms)
            c++;
        if (t->due_ms <= l->heap[c]->due_ms)
            break;
        heap_place(l, i, l->heap[c]);
        i = c;
    }
    heap_place(l, i, t);
}

void loop_timer_init(loop_timer *t, void (*fn)(void *ctx), void *ctx)
{
    t->due_ms = 0;
    t->heap_idx = SIZE_MAX;
    t->fn = fn;
    t->ctx = ctx;
}

void loop_timer_stop(loop *l, loop_timer *t)
{
    size_t i = t->heap_idx;
    if (i == SIZE_MAX)
        return;
    t->heap_idx = SIZE_MAX;
    l->heap_len--;
    if (i != l->heap_len) {
        loop_timer *moved = l->heap[l->heap_len];
        heap_place(l, i, moved);
        heap_down(l, i);
        heap_up(l, moved->heap_idx);
    }
}

bool loop_timer_set(loop *l, loop_timer *t, uint64_t due_ms)
{
    if (t->heap_idx != SIZE_MAX) {
        uint64_t old = t->due_ms;
        t->due_ms = due_ms;
        if (due_ms < old)
            heap_up(l, t->heap_idx);
        else if (due_ms > old)
            heap_down(l, t->heap_idx);
        return true;
    }
    if (l->heap_len == l->heap_cap) {
        size_t cap = l->heap_cap ? l->heap_cap * 2 : 64;
        loop_timer **nh = realloc(l->heap, cap * sizeof *nh);
        if (!nh)
            return false;
        l->heap = nh;
        l->heap_cap = cap;
    }
    t->due_ms = due_ms;
    heap_place(l, l->heap_len++, t);
    heap_up(l, t->heap_idx);
    return true;
}

void loop_run_timers(loop *l)
{
    while (l->heap_len > 0 && l->heap[0]->due_ms <= l->now_ms) {
        loop_timer *t = l->heap[0];
        loop_timer_stop(l, t);
        t->fn(t->ctx);
    }
}

int loop_next_timeout(const loop *l, int cap_ms)
{
    uint64_t due;
    if (l->heap_len == 0)
        return cap_ms;
    due = l->heap[0]->due_ms;
    if (due <= l->now_ms)
        return 0;
    due -= l->now_ms;
    if (cap_ms >= 0 && due > (uint64_t)cap_ms)
        return cap_ms;
    return due > INT32_MAX ? INT32_MAX : (int)due;
}

#ifdef LOOP_EPOLL
int loop_run_once(loop *l, int timeout_ms)
{
    struct epoll_event *evs = l->evs;
    int n = epoll_wait(l->epfd, evs, l->n_evs, timeout_ms);
    woke(l);
    if (n < 0)
        return compat_interrupted(compat_sock_errno()) ? 0 : -1;
    for (int i = 0; i < n; i++) {
        int id = (int)(uint32_t)evs[i].data.u64;
        uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
        struct slot *s = &l->slots[id];
        int ev = 0;
        if (s->pos < 0 || s->gen != gen)
            continue;   /* removed (and maybe reused) earlier in this pass */
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
            ev |= LOOP_READ;
        if (evs[i].events & EPOLLOUT)
            ev |= LOOP_WRITE;
        if (evs[i].events & (EPOLLERR | EPOLLHUP))
            ev |= LOOP_ERROR;
        s->fn(s->ctx, s->fd, ev);
    }
    return n;
}
#else
int loop_run_once(loop *l, int timeout_ms)
{
    int n = compat_poll(l->fds, l->count, timeout_ms);
    int ready;
    woke(l);
    if (n < 0)
        return compat_interrupted(compat_sock_errno()) ? 0 : -1;
    ready = n;
    /* Walk from the end: a removal swaps an already-visited (higher) entry into the hole, and
     * its revents were cleared when it was visited, so nothing is dispatched twice. */
    for (size_t i = l->count; i-- > 0 && n > 0;) {
        struct slot *s;
        short re;
        int ev = 0;
        if (i >= l->count)
            continue;
        re = l->fds[i].revents;
        if (!re)
            continue;
        l->fds[i].revents = 0;
        n--;
        s = &l->slots[l->ids[i]];
        if (re & (POLLIN | POLLHUP))
            ev |= LOOP_READ;
        if (re & POLLOUT)
            ev |= LOOP_WRITE;
        if (re & (POLLERR | POLLNVAL | POLLHUP))
            ev |= LOOP_ERROR;
        s->fn(s->ctx, s->fd, ev);
    }
    return ready;
}
#endif

bool loop_should_hold(loop_coalescer *co, uint64_t now_ms, uint64_t since_wake_ms, int ready,
                      bool busy, bool keepalive)
{
    if (ready <= 0)
        return false;
    if (busy) {
        co->last_busy_ms = now_ms;
        return false;
    }
    return keepalive && since_wake_ms < LOOP_HOLD_MS && now_ms - co->last_busy_ms >= LOOP_HOLD_QUIET_MS;
}
