/* The relay wire's meaning (RLY-001..008): registration, the peer registry, routing of
 * relay_message and broadcast, peer notifications, keepalive, hole-punch signalling, Peer
 * Exchange, and TURN credentials for registered nodes. It works on decoded messages and sees
 * connections only through conn.h's narrow interface; its one timer (the PEX schedule) lives on
 * the loop. */
#ifndef DIG_RELAY_H
#define DIG_RELAY_H

#include "abuse.h"
#include "config.h"
#include "conn.h"
#include "loop.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct relay relay;

/* seed: the per-process hash key (ids are attacker-chosen). NULL with a message in err when the
 * registry cannot be sized for cfg. */
relay *relay_new(const relay_config *cfg, loop *lp, abuse_guard *abuse, const uint64_t seed[2],
                 char *err, size_t errlen);
void relay_free(relay *r);

/* The callbacks a WebSocket connection's events go to (conn_handler, ctx the relay):
 * on_message handles one wire message (true when it was only a keepalive: a ping answered);
 * on_close removes the connection's registration and tells its network; on_silence logs, counts
 * and closes a registered connection silent past the idle timeout or the liveness deadline. */
conn_handler relay_conn_handler(relay *r);

/* TURN credentials for get_turn_credentials (issue 15): once enabled with the shared secret
 * (copied), a registered node is answered with username "<expiry>:<peer_id>" valid for
 * --turn-credential-ttl-secs, its REST password and the relay's TURN URIs. Until then the answer
 * is error 2 "turn is not enabled on this relay". False when out of memory. */
bool relay_enable_turn(relay *r, const uint8_t *secret, size_t secret_len);

/* Live registrations (the health answer's connected_peers). */
size_t relay_peer_count(const relay *r);
/* Seconds since the relay started. */
uint64_t relay_uptime_secs(const relay *r);

#endif
