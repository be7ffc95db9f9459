/* `dig-relay probe URL`: an operator's check of a relay, run the way a node uses it. Connects
 * to URL (ws://HOST[:PORT][/PATH]), registers a throwaway peer id on a throwaway network, pings
 * and times the pong, relays a message to itself, then asks GET /health and a STUN Binding at
 * the same host (on the ports of --health-listen and --stun-listen: 9451 and 3478 unless
 * given). Prints one line per check, or with --json {"ok":...,"result":{<check>:{"detail",
 * "ms","ok"},...,"url"}}. Returns 0 when every check was answered, 1 otherwise, 2 for a URL it
 * cannot use. */
#ifndef DIG_PROBE_H
#define DIG_PROBE_H

#include "config.h"

int probe_run(const relay_config *c);

#endif
