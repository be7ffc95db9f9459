/* The hiredis adapter of redisloop.h: hiredis calls addRead/delRead/addWrite/delWrite, which
 * become loop slot event masks, and cleanup, which removes the slot. Readiness calls back into
 * hiredis, which may free the context (a disconnect) while handling a read: the watch notices
 * through w->ac and does not touch it again.
 *
 * Output is written at the end of the loop pass (redisloop_flush), like the relay's own
 * connections, rather than by waiting for writability: the commands of a whole pass leave in
 * one write, and the socket is watched for writing only while the kernel will not take more
 * (or while connecting, which completes on the write side). */
#include "redisloop.h"

#if DIG_HAVE_CLUSTER
#include <hiredis/sds.h>
#include <sys/ioctl.h>

/* hiredis reads at most 16 KB per call; a pass reads on while the kernel holds more, up to
 * this many calls, rather than going round the loop for every 16 KB of a burst. */
#define READS_PER_PASS 16

static void on_ready(void *ctx, socket_t fd, int events)
{
    redisloop_watch *w = ctx;
    if (w->busy)
        *w->busy = true;
    for (int i = 0; i < READS_PER_PASS && w->ac && (events & LOOP_READ); i++) {
        int waiting = 0;
        redisAsyncHandleRead(w->ac);
        if (!w->ac || ioctl((int)fd, FIONREAD, &waiting) != 0 || waiting <= 0)
            break;
    }
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

static bool connected(const redisloop_watch *w) { return (w->ac->c.flags & REDIS_CONNECTED) != 0; }

static void add_read(void *p) { redisloop_watch *w = p; set_events(w, w->events | LOOP_READ); }
static void del_read(void *p) { redisloop_watch *w = p; set_events(w, w->events & ~LOOP_READ); }

static void add_write(void *p)
{
    redisloop_watch *w = p;
    w->want_write = true;
    /* a connect in progress is only told apart from a connected socket by writability */
    if (!connected(w) || (w->events & LOOP_WRITE))
        set_events(w, w->events | LOOP_WRITE);
}

static void del_write(void *p)
{
    redisloop_watch *w = p;
    w->want_write = false;
    set_events(w, w->events & ~LOOP_WRITE);
}

static void cleanup(void *p)
{
    redisloop_watch *w = p;
    if (w->slot >= 0)
        loop_del(w->lp, w->slot);
    w->slot = -1;
    w->events = 0;
    w->want_write = false;
    w->ac = NULL;
}

void redisloop_attach(redisloop_watch *w, loop *lp, redisAsyncContext *ac, bool *busy)
{
    w->lp = lp;
    w->ac = ac;
    w->slot = -1;
    w->events = 0;
    w->want_write = false;
    w->busy = busy;
    ac->ev.data = w;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
}

bool redisloop_append_unanswered(redisloop_watch *w, const char *const *parts, const size_t *lens,
                                 size_t n)
{
    size_t total = 0;
    sds out;
    for (size_t i = 0; i < n; i++)
        total += lens[i];
    /* room first, so the command is queued whole or not at all */
    out = sdsMakeRoomFor(w->ac->c.obuf, total);
    if (!out)
        return false;
    for (size_t i = 0; i < n; i++)
        out = sdscatlen(out, parts[i], lens[i]);
    w->ac->c.obuf = out;
    add_write(w);
    return true;
}

void redisloop_flush(redisloop_watch *w)
{
    if (!w->ac || !w->want_write || !connected(w) || (w->events & LOOP_WRITE))
        return;
    redisAsyncHandleWrite(w->ac);
    /* what the kernel did not take waits for writability */
    if (w->ac && w->want_write)
        set_events(w, w->events | LOOP_WRITE);
}
#endif
