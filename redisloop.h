/* hiredis's async API embedded in our loop (loop.h): the adapter hiredis asks to watch a Redis
 * connection's socket for reading and writing, as its own adapters do for other event
 * libraries. The watch lives inside its owner's struct, so it outlives the hiredis context it
 * serves and a callback can tell that the context went away under it. Output leaves at the end
 * of the loop pass (redisloop_flush), a pass's commands in one write. Built only with hiredis
 * (DIG_HAVE_CLUSTER); only cluster.c uses it. */
#ifndef DIG_REDISLOOP_H
#define DIG_REDISLOOP_H

#include "buildinfo.h"
#include "loop.h"

#if DIG_HAVE_CLUSTER
#include <hiredis/async.h>

typedef struct {
    loop *lp;
    redisAsyncContext *ac;   /* NULL once hiredis has let go of it */
    int slot;                /* loop slot, -1 while not watched */
    int events;
    bool want_write;         /* hiredis has output queued */
    bool *busy;              /* set when a callback ran (the server's pass bookkeeping) */
} redisloop_watch;

/* Hooks w (owned by the caller, zeroed or fresh) onto ac: from here on hiredis drives the
 * socket through the loop. busy may be NULL. */
void redisloop_attach(redisloop_watch *w, loop *lp, redisAsyncContext *ac, bool *busy);
/* Queues an already-formatted command (the concatenation of n parts) that Redis will not answer
 * (the caller sends CLIENT REPLY SKIP right before it), so no reply callback is registered for
 * it: hiredis only matches replies to commands, in order. False when out of memory. */
bool redisloop_append_unanswered(redisloop_watch *w, const char *const *parts, const size_t *lens,
                                 size_t n);
/* Writes what hiredis has queued; the owner calls it at the end of every loop pass. */
void redisloop_flush(redisloop_watch *w);
#endif

#endif
