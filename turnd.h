/* The TURN server's sockets, driving the pure state machine in turn.c: TURN over UDP through the
 * STUN listener's socket (a stund hook), the TURN-over-TCP listener and its connections, one
 * relayed UDP socket per allocation read in batches like the STUN path, and one loop timer per
 * allocation for its expiry. Everything it holds is bounded: allocations by turn.c, TCP
 * connections by --turn-max-allocations plus a small margin, each connection's input to one
 * frame and its output to TURND_TCP_OUT_MAX bytes (relayed datagrams beyond it are dropped, as
 * a congested UDP path would drop them). */
#ifndef DIG_TURND_H
#define DIG_TURND_H

#include "config.h"
#include "loop.h"
#include "stund.h"
#include "turn.h"

#include <stddef.h>
#include <stdint.h>

#define TURND_TCP_OUT_MAX (256 * 1024)

typedef struct turnd turnd;

/* Starts TURN for cfg on the loop: installs the hook on stun (whose socket TURN over UDP shares)
 * and binds --turn-tcp-listen. secret is copied. NULL with a message naming the flag or the
 * listener in err. */
turnd *turnd_open(const relay_config *cfg, loop *lp, stund *stun, const uint8_t *secret,
                  size_t secret_len, char *err, size_t errlen);
/* Closes every allocation, relayed socket and connection. Call before the STUN listener goes. */
void turnd_close(turnd *t);

/* Counters for logs and the dashboard. */
void turnd_stats(const turnd *t, turn_stats *out);

#endif
