/* The hiredis adapter of redisloop.h: hiredis calls addRead/delRead/addWrite/delWrite, which
 * become loop slot event masks, and cleanup, which removes the slot. Readiness calls back into
 * hiredis, which may free the context (a disconnect) while handling a read: the watch notices
 * through w->ac and does not touch it again. */
#include "redisloop.h"

#if DIG_HAVE_CLUSTER
static void on_ready(void *ctx, socket_t fd, int events)
{
    redisloop_watch *w = ctx;
    (void)fd;
    if (w->busy)
        *w->busy = true;
    /* A connect in progress completes (or fails) on the write side, errors included. */
    if (w->ac && (events & LOOP_READ))
        redisAsyncHandleRead(w->ac);
    if (w->ac && (events & (LOOP_WRITE | LOOP_ERROR)))
        redisAsyncHandleWrite(w->ac);
    if (w->ac && (events & LOOP_ERROR) && !(events & (LOOP_READ | LOOP_WRITE)))
        redisAsyncHandleRead(w->ac);
}

static void set_events(redisloop_watch *w, int events)
{
    w->events = events;
    if (w->slot >= 0)
        loop_set_events(w->lp, w->slot, events);
    else if (events != 0)
        w->slot = loop_add(w->lp, (socket_t)w->ac->c.fd, events, on_ready, w);
}

static void add_read(void *p) { redisloop_watch *w = p; set_events(w, w->events | LOOP_READ); }
static void del_read(void *p) { redisloop_watch *w = p; set_events(w, w->events & ~LOOP_READ); }
static void add_write(void *p) { redisloop_watch *w = p; set_events(w, w->events | LOOP_WRITE); }
static void del_write(void *p) { redisloop_watch *w = p; set_events(w, w->events & ~LOOP_WRITE); }

static void cleanup(void *p)
{
    redisloop_watch *w = p;
    if (w->slot >= 0)
        loop_del(w->lp, w->slot);
    w->slot = -1;
    w->events = 0;
    w->ac = NULL;
}

void redisloop_attach(redisloop_watch *w, loop *lp, redisAsyncContext *ac, bool *busy)
{
    w->lp = lp;
    w->ac = ac;
    w->slot = -1;
    w->events = 0;
    w->busy = busy;
    ac->ev.data = w;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
}
#endif
