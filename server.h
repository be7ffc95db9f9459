/* The running relay: its listeners (wire, health, redirect, STUN, and TURN when on), accept with
 * the open-socket caps, the loop run until a shutdown signal, and a clean shutdown that closes
 * every connection with 1001. */
#ifndef DIG_SERVER_H
#define DIG_SERVER_H

#include "config.h"

#include <stddef.h>

typedef struct server server;

/* Binds the listeners for cfg (which must outlive the server). NULL with a message naming the
 * listener or flag in err. */
server *server_new(const relay_config *cfg, char *err, size_t errlen);
/* Runs until SIGINT/SIGTERM (or the console's equivalent). */
void server_run(server *s);
/* Closes every connection (WebSockets with 1001) and releases everything. */
void server_free(server *s);

#endif
