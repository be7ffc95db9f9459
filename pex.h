/* Peer Exchange (PEX, RLY-008): the relay's introducer role, as a pure engine.
 *
 * One engine serves one network_id; the relay keeps one per network, so nothing ever crosses
 * networks. The relay feeds it registry changes, the pex_ frames its registered connections
 * send, and the clock; the engine hands back the JSON text of every frame to send through a
 * callback, and tells the relay when it next has work (pex_next_due), so the loop never wakes
 * up for nothing. No sockets, no clocks, no globals: time always comes in as a parameter.
 *
 * Identifiers are the relay's own: `id` is one connection's id, naming both its registration
 * and its PEX link (a connection is at most one registrant and one link).
 *
 * What it does (dig-pex SPEC §3-§7, §9, §10.2; reference SPEC §4):
 *  - Registry mirroring: every registration becomes an entry with via:"introducer". With
 *    resolved dialable addresses they are its addresses; without, its observed source address
 *    plus the relay-only flag. last_seen follows pex_registrant_seen.
 *  - Relay direction: a connection's first accepted pex_handshake is answered with the relay's
 *    own handshake (version 1, interval 60, flags ["introducer"]) and one pex_snapshot of the
 *    OTHER live registrants (freshest first, at most 200); then pex_deltas (at most 50 added and
 *    50 dropped, the rest carried over), never empty, spaced at least the effective interval plus
 *    0-10% jitter drawn from a PRNG seeded at creation. An entry told to a link is never
 *    re-advertised there unless its addresses or flags change.
 *  - Node direction: checked against the PEX state machine, caps and arrival floor, answered
 *    with pex_error, three strikes mute it; its contents are discarded, never advertised.
 *  - Nothing is sent to a connection until it has sent a frame typed pex_handshake. */
#ifndef DIG_PEX_H
#define DIG_PEX_H

#include "addr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Protocol constants (dig-pex SPEC §7.1). */
#define PEX_VERSION          1
#define PEX_MAX_ADDED        50
#define PEX_MAX_DROPPED      50
#define PEX_MAX_SNAPSHOT     200
#define PEX_MAX_FRAME        262144
#define PEX_DEFAULT_INTERVAL 60
#define PEX_MIN_INTERVAL     30
#define PEX_MAX_INTERVAL     3600
#define PEX_ARRIVAL_GRACE    5
#define PEX_MAX_ENTRY_AGE    1800
#define PEX_VIOLATION_LIMIT  3

/* Longest peer or network id the engine takes (the registry's own bound). */
#define PEX_MAX_ID_LEN 256

/* pex_error codes (dig-pex SPEC §4.5). */
enum pex_error_code {
    PEX_ERR_BAD_MESSAGE = 1, PEX_ERR_UNSUPPORTED_VERSION = 2, PEX_ERR_RATE = 3,
    PEX_ERR_OVERSIZED = 4, PEX_ERR_NETWORK_MISMATCH = 5, PEX_ERR_PROTOCOL = 6
};

/* What pex_on_frame did with a frame. Positive values are the pex_error code it answered with. */
enum pex_result {
    PEX_ACCEPTED = 0,          /* valid; a first handshake also brought the relay direction up */
    PEX_IGNORED = -1,          /* before any pex_handshake, or the direction is muted */
    PEX_NOT_REGISTERED = -2    /* id is no registrant here: the relay answers error{code:1} */
};

/* Both clocks: monotonic milliseconds for every deadline, wall-clock seconds for last_seen. */
typedef struct {
    uint64_t mono_ms;
    uint64_t wall_s;
} pex_time;

/* Receives each outgoing frame: one complete JSON text for connection `id`. It must queue (or
 * copy) the bytes before returning and must not call back into the engine. */
typedef void (*pex_send_fn)(void *ctx, uint64_t id, const char *json, size_t len);

typedef struct pex_engine pex_engine;

/* A new engine for network_id (1..PEX_MAX_ID_LEN bytes). max_registrants is the relay's
 * connection cap: it bounds the registrant table (room for as many again of departed entries
 * still waiting to be dropped on some link). seed drives the jitter PRNG. NULL on bad arguments
 * or out of memory. */
pex_engine *pex_engine_new(const char *network_id, size_t network_id_len, size_t max_registrants,
                           uint64_t seed, pex_send_fn send, void *send_ctx);
void pex_engine_free(pex_engine *e);

/* A registration (or re-registration) of connection id as peer_id. observed is its source
 * address; dialable/n_dialable the addresses resolved from its listen_addrs (n_dialable 0 when
 * it advertised none, which makes the entry observed-address + relay-only). A re-registration
 * with the same peer_id updates the entry (links that were told it get the new content); with
 * another peer_id it counts as pex_registrant_down then a new registration. Registering a
 * peer_id that another id still holds takes it over from that id. False when the peer_id is
 * empty or too long, the table is full, or memory ran out; the registrant is then not
 * advertised. */
bool pex_registrant_up(pex_engine *e, uint64_t id, const char *peer_id, size_t peer_id_len,
                       const addr_t *observed, const addr_t *dialable, size_t n_dialable,
                       pex_time now);

/* Inbound activity from a registrant (any frame): refreshes its last_seen. Unknown ids are
 * ignored. */
void pex_registrant_seen(pex_engine *e, uint64_t id, pex_time now);

/* The registration ended (unregister, disconnect, idle timeout, liveness prune): its entry is
 * dropped on every link that was told it, and the connection's own PEX link, if any, is freed
 * with all its state. Unknown ids are ignored. */
void pex_registrant_down(pex_engine *e, uint64_t id);

/* A pex_-typed frame from connection id (a registrant of this engine's network): the raw JSON
 * text of one WebSocket message. Any answer (handshake and snapshot, or a pex_error) goes out
 * through the send callback before this returns. */
int pex_on_frame(pex_engine *e, uint64_t id, const char *json, size_t len, pex_time now);

/* Sends every delta that is due. Call when now.mono_ms >= pex_next_due(e). */
void pex_tick(pex_engine *e, pex_time now);

/* Monotonic time (ms) at which pex_tick next has work: a link whose delta is due with changes
 * pending, or an entry about to age out. 0 when work is already waiting; UINT64_MAX when
 * nothing will ever be due without new input. */
uint64_t pex_next_due(const pex_engine *e);

/* Observability. */
size_t pex_registrant_count(const pex_engine *e);   /* live registrations */
size_t pex_link_count(const pex_engine *e);         /* connections that sent pex_handshake */
bool pex_link_muted(const pex_engine *e, uint64_t id);
uint64_t pex_snapshots_sent(const pex_engine *e);   /* pex_snapshot frames sent so far */
uint64_t pex_deltas_sent(const pex_engine *e);      /* pex_delta frames sent so far */

#endif
