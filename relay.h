/* The relay wire's meaning (RLY-001..008): registration, the peer registry, routing of
 * relay_message and broadcast, peer notifications, keepalive, hole-punch signalling and Peer
 * Exchange. It works on decoded messages and sees connections only through conn.h's narrow
 * interface; its one timer (the PEX schedule) lives on the loop. */
#ifndef DIG_RELAY_H
#define DIG_RELAY_H

#include "abuse.h"
#include "config.h"
#include "loop.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct relay relay;
struct conn;

/* seed: the per-process hash key (ids are attacker-chosen). NULL with a message in err when the
 * registry cannot be sized for cfg. */
relay *relay_new(const relay_config *cfg, loop *lp, abuse_guard *abuse, const uint64_t seed[2],
                 char *err, size_t errlen);
void relay_free(relay *r);

/* Handles one wire message; true when it was only a keepalive (a ping answered with a pong). */
bool relay_on_message(relay *r, struct conn *c, uint8_t *msg, size_t len);
/* The connection is going away: remove its registration and tell its network. */
void relay_on_close(relay *r, struct conn *c);
/* A registered connection has sent nothing for silent_secs: past --idle-timeout-secs when
 * idle_timeout, else past the liveness deadline at a sweep. Logs, counts and closes it. */
void relay_on_silence(relay *r, struct conn *c, uint64_t silent_secs, bool idle_timeout);

/* Live registrations (the health answer's connected_peers). */
size_t relay_peer_count(const relay *r);
/* Seconds since the relay started. */
uint64_t relay_uptime_secs(const relay *r);

#endif
