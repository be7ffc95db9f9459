/* hiredis's async API embedded in our loop (loop.h): the adapter hiredis asks to watch a Redis
 * connection's socket for reading and writing, as its own adapters do for other event
 * libraries. The watch lives inside its owner's struct, so it outlives the hiredis context it
 * serves and a callback can tell that the context went away under it. Built only with hiredis
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
    bool *busy;              /* set when a callback ran (the server's pass bookkeeping) */
} redisloop_watch;

/* Hooks w (owned by the caller, zeroed or fresh) onto ac: from here on hiredis drives the
 * socket through the loop. busy may be NULL. */
void redisloop_attach(redisloop_watch *w, loop *lp, redisAsyncContext *ac, bool *busy);
#endif

#endif
