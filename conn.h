/* One connection's life, through the layers of an accepted socket: the PROXY preface (only from
 * trusted sources) -> the transport (plain or TLS, xport.h) -> the HTTP request head -> either a
 * WebSocket upgrade, whose messages go to the relay, or the listener's HTTP route table. Output
 * is queued as shared frames, bounded, and flushed with gathered writes at the end of each loop
 * pass (a stream of membership notices may wait a little to leave together); every connection
 * carries one deadline on the loop's timer heap.
 *
 * The relay sees a connection only through the functions in the second half of this header, and
 * is reached from here only through the conn_handler callbacks. */
#ifndef DIG_CONN_H
#define DIG_CONN_H

#include "abuse.h"
#include "addr.h"
#include "buf.h"
#include "cidr.h"
#include "config.h"
#include "loop.h"
#include "routes.h"
#include "xport.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct conn conn;
typedef struct conn_group conn_group;

/* Where a WebSocket connection's messages go (the relay), as callbacks so this layer does not
 * depend on the one above it. */
enum conn_msg_verdict {
    CONN_MSG_DONE,        /* handled */
    CONN_MSG_KEEPALIVE,   /* handled, and it was only a keepalive (an answered ping) */
    CONN_MSG_LATER        /* not handled: the pass has no room for its work (conn_pass_has_room);
                           * the same message comes back in a later pass */
};

typedef struct {
    /* One message. */
    enum conn_msg_verdict (*on_message)(void *ctx, conn *c, uint8_t *msg, size_t len);
    /* A registered connection is going away. */
    void (*on_close)(void *ctx, conn *c);
    /* A registered connection has been silent for silent_secs: past the idle timeout when
     * idle_timeout, else past the liveness deadline. */
    void (*on_silence)(void *ctx, conn *c, uint64_t silent_secs, bool idle_timeout);
    /* The pass's input is handled and nothing is written yet: deferred frames queued during
     * the pass are filled now. */
    void (*before_flush)(void *ctx);
    void *ctx;
} conn_handler;

/* What every connection of one server shares. conn_hub_init fills it; conn.c keeps the lists. */
typedef struct {
    const relay_config *cfg;
    loop *lp;
    abuse_guard *abuse;
    conn_handler handler;
    uint64_t start_ms;        /* the liveness sweep's grid starts here */
    conn *pending;            /* connections with output to flush at the end of the pass */
    conn *holding, *holding_tail; /* connections whose queued notices wait (conn.c), oldest first */
    loop_timer hold_timer;    /* due when the oldest waiting notices must leave */
    conn *again, *again_tail; /* connections with input left for the next pass: held in their
                               * transport, or not handled because the pass's work ran out */
    conn *dead;               /* connections to free at the end of the pass */
    conn_group *busy_groups;  /* groups with notices of this pass still to hand out */
    conn *all;                /* every live connection (shutdown walks it) */
    uint64_t next_id;
    /* What the current pass did, for keepalive coalescing (loop.h loop_should_hold). */
    bool pass_busy;           /* anything beyond answering keepalives */
    bool pass_keepalive;      /* answered at least one keepalive */
    uint64_t queue_drops;     /* messages conn_send dropped on a full outbound queue */
    uint64_t deferred_messages; /* times a message was left for a later pass (CONN_MSG_LATER) */
    size_t pass_frames;       /* frames queued since the pass began (the pass's work so far) */
    bool pass_full;           /* a message was left for a later pass: this pass has no room */
} conn_hub;

/* What one listener's connections share. */
typedef struct {
    conn_hub *hub;
    const char *name;                 /* "relay", "health", "redirect": logs */
    const route_table *routes;        /* answers every request that is not a WebSocket upgrade */
    bool websocket;                   /* upgrades go to the relay (the wire listener only) */
    bool per_source_limits;           /* per-IP caps and bans apply (the wire listener only) */
    xport_factory transport;
    const cidr_list *trusted_proxies; /* NULL or empty: never read a PROXY header */
    size_t open, max_open;            /* sockets open on this listener, and the cap */
    uint64_t refused_at_cap;          /* sockets closed at accept because open was max_open */
} conn_listener;

void conn_hub_init(conn_hub *hub, const relay_config *cfg, loop *lp, abuse_guard *abuse, conn_handler handler);

/* Takes an accepted socket (its address in `from`). On failure the socket is closed and false
 * returned; the listener's count is only held for connections that were made. */
bool conn_accept(conn_listener *ls, socket_t fd, const addr_t *from);

/* Start-of-pass work, before the wait: the pass's work budget starts again, and input left
 * over from earlier passes is handled first (a TLS engine's decrypted records, which no socket
 * readiness announces, and messages a busy pass left for later), in the order it was left. */
void conn_begin_pass(conn_hub *hub);
/* End-of-pass work: flush what was queued, then free connections that finished. */
void conn_end_of_pass(conn_hub *hub);
/* True when input is left for the next pass: the next wait must not sleep. */
bool conn_hub_has_buffered_input(const conn_hub *hub);
/* Shutdown: close every WebSocket with 1001 and reason, drop every other connection. */
void conn_close_all(conn_hub *hub, const char *reason);
/* Frees every connection now, whatever it still had to send. */
void conn_drop_all(conn_hub *hub);
bool conn_hub_empty(const conn_hub *hub);

/* ---- the relay's view of a connection ---- */

/* Queues a reference to f, bounded by --outbound-queue-capacity/-bytes (dropped past them, and
 * counted in the hub's queue_drops). */
void conn_send(conn *c, frame *f);
/* The connections that hear one network's membership notices (peer_connected,
 * peer_disconnected). A notice is queued for each member like conn_send, with two differences
 * (see conn.c): a connection that was sent notices alone less than --notice-hold-ms ago waits up
 * to that long to send the next ones in one write with those after them, and within a pass a
 * large group's notices are stored once, each member queueing its stretch of them as one entry
 * at the end of the pass or before anything else is queued to it. Either way every
 * connection's order is the order things were sent to it. */
conn_group *conn_group_new(void);
/* Frees a group whose members have all left. */
void conn_group_free(conn_group *g);
/* c (in no group) hears the notices sent to g from now on. */
void conn_group_join(conn_group *g, conn *c);
/* c hears no more of its group's notices; those sent before stay queued, in order. */
void conn_group_leave(conn *c);
/* Queues notice f (a plain frame) for every member of g but skip (NULL: none). */
void conn_group_send_notice(conn_group *g, conn *skip, frame *f);
/* A keepalive answer (a pong): queued like conn_send, but ahead of a backlog (see conn.c), so a
 * connection swamped with notifications still has its pings answered promptly. */
void conn_send_keepalive(conn *c, frame *f);
/* Whether the current pass has room for a message whose handling queues about `frames` frames
 * (always, for the pass's first); when not, the handler answers CONN_MSG_LATER. */
bool conn_pass_has_room(const conn *c, size_t frames);
/* Counts work the pass did beyond the frames it queued (a shared answer as large as many). */
void conn_pass_charge(conn *c, size_t frames);
/* The block holding the received bytes p[0..n) of the message being handled, for a gathered
 * frame to reference instead of copying them (frame_end_gather takes its own reference); NULL
 * when they are not in the input block (a reassembled fragmented message) or are too small a
 * part of it to be worth pinning the block for. */
frame *conn_input_block(const conn *c, const void *p, size_t n);
/* Graceful close: a close frame with code and reason, then the socket once flushed. */
void conn_close(conn *c, uint16_t code, const char *reason);
/* The observed source: the socket's address, or what a trusted proxy declared. */
const addr_t *conn_source(const conn *c);
/* What per-source limits count the connection against (derived from conn_source). */
const source_key *conn_source_key(const conn *c);
uint64_t conn_id(const conn *c);
/* The peer id the transport authenticated (a TLS client certificate), or NULL. */
const char *conn_identity(const conn *c);
/* The relay's registration on this connection (NULL: not registered). Setting it switches the
 * connection from the register deadline to the liveness and idle deadlines. */
void conn_set_registration(conn *c, void *registration);
void *conn_registration(const conn *c);

#endif
