/* poll()/WSAPoll backend of loop.h. Slots are stable indexes into a pollfd array; removal swaps
 * the last slot into the hole and tells its owner through the stored slot index, so every
 * operation is O(1) and the array stays dense for the kernel. */
#include "loop.h"

#include <stdlib.h>

struct loop {
    struct pollfd *fds;
    loop_fn *fns;
    void **ctxs;
    int *ids;        /* ids[pos]  = slot id living at array position pos */
    int *pos;        /* pos[id]   = array position of slot id, -1 when free */
    int *free_ids;   /* stack of free slot ids */
    size_t n_free;
    size_t count, max;
};

loop *loop_new(size_t max_fds)
{
    loop *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->max = max_fds;
    l->fds = calloc(max_fds, sizeof *l->fds);
    l->fns = calloc(max_fds, sizeof *l->fns);
    l->ctxs = calloc(max_fds, sizeof *l->ctxs);
    l->ids = calloc(max_fds, sizeof *l->ids);
    l->pos = calloc(max_fds, sizeof *l->pos);
    l->free_ids = calloc(max_fds, sizeof *l->free_ids);
    if (!l->fds || !l->fns || !l->ctxs || !l->ids || !l->pos || !l->free_ids) {
        loop_free(l);
        return NULL;
    }
    for (size_t i = 0; i < max_fds; i++) {
        l->pos[i] = -1;
        l->free_ids[i] = (int)(max_fds - 1 - i);
    }
    l->n_free = max_fds;
    return l;
}

void loop_free(loop *l)
{
    if (!l)
        return;
    free(l->fds);
    free(l->fns);
    free(l->ctxs);
    free(l->ids);
    free(l->pos);
    free(l->free_ids);
    free(l);
}

static short to_poll(int events)
{
    short ev = 0;
    if (events & LOOP_READ)
        ev |= POLLIN;
    if (events & LOOP_WRITE)
        ev |= POLLOUT;
    return ev;
}

int loop_add(loop *l, socket_t fd, int events, loop_fn fn, void *ctx)
{
    int id;
    size_t p;
    if (l->n_free == 0)
        return -1;
    id = l->free_ids[--l->n_free];
    p = l->count++;
    l->fds[p].fd = fd;
    l->fds[p].events = to_poll(events);
    l->fds[p].revents = 0;
    l->fns[p] = fn;
    l->ctxs[p] = ctx;
    l->ids[p] = id;
    l->pos[id] = (int)p;
    return id;
}

void loop_set_events(loop *l, int slot, int events)
{
    l->fds[l->pos[slot]].events = to_poll(events);
}

int loop_events(const loop *l, int slot)
{
    short ev = l->fds[l->pos[slot]].events;
    return ((ev & POLLIN) ? LOOP_READ : 0) | ((ev & POLLOUT) ? LOOP_WRITE : 0);
}

void loop_del(loop *l, int slot)
{
    int p = l->pos[slot];
    size_t last = l->count - 1;
    if ((size_t)p != last) {
        l->fds[p] = l->fds[last];
        l->fns[p] = l->fns[last];
        l->ctxs[p] = l->ctxs[last];
        l->ids[p] = l->ids[last];
        l->pos[l->ids[p]] = p;
    }
    l->count--;
    l->pos[slot] = -1;
    l->free_ids[l->n_free++] = slot;
}

size_t loop_count(const loop *l) { return l->count; }

int loop_run_once(loop *l, int timeout_ms)
{
    int n = compat_poll(l->fds, l->count, timeout_ms);
    int ready;
    if (n < 0)
        return compat_interrupted(compat_sock_errno()) ? 0 : -1;
    ready = n;
    /* Walk by slot id snapshot: callbacks may delete or add slots. A deleted slot's successor is
     * swapped into its position, so iterate from the end towards the start: a swap only ever
     * moves an already-visited (higher) entry down into the hole. */
    for (size_t i = l->count; i-- > 0 && n > 0;) {
        short re;
        int ev = 0;
        if (i >= l->count)
            continue;
        re = l->fds[i].revents;
        if (!re)
            continue;
        l->fds[i].revents = 0;
        n--;
        if (re & (POLLIN | POLLHUP))
            ev |= LOOP_READ;
        if (re & POLLOUT)
            ev |= LOOP_WRITE;
        if (re & (POLLERR | POLLNVAL | POLLHUP))
            ev |= LOOP_ERROR;
        l->fns[i](l->ctxs[i], l->fds[i].fd, ev);
    }
    return ready;
}
