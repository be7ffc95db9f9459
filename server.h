/* Shared state of the running relay: the server, its connections and its registry. conn.c owns
 * the sockets and the per-connection state machine; relay.c gives messages their meaning;
 * dig-relay.c wires them to the loop. */
#ifndef DIG_SERVER_H
#define DIG_SERVER_H

#include "abuse.h"
#include "addr.h"
#include "buf.h"
#include "compat/compat.h"
#include "config.h"
#include "json.h"
#include "loop.h"
#include "ws.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stund;
typedef struct server server;
typedef struct reg reg;
typedef struct network network;

enum conn_kind { CONN_WIRE, CONN_HEALTH };
enum conn_state { CS_HEAD, CS_OPEN, CS_CLOSING };

typedef struct conn {
    server *srv;
    socket_t fd;
    int slot;
    uint8_t kind, state;
    bool in_pending;          /* on the server's flush list */
    bool dead;                /* on the server's free list: no more I/O */
    addr_t peer;              /* observed source, IPv4-mapped shown as IPv4 */
    source_key source;        /* what per-source limits count against */
    abuse_meter meter;        /* this connection's inbound rate limits */
    uint8_t *in;              /* input bytes in[in_off .. in_len) */
    size_t in_off, in_len, in_cap;
    ws_decoder ws;
    outq out;
    uint64_t accepted_ms, last_in_ms, close_deadline_ms;
    size_t heap_idx;          /* position in the deadline heap */
    uint64_t heap_key;        /* deadline the heap entry was filed under */
    reg *reg;                 /* NULL until registered */
    struct conn *next_pending, *next_dead;
    uint64_t id;              /* for logs */
} conn;

struct reg {
    char *peer_id;
    size_t peer_id_len;
    uint64_t hash;
    network *net;
    conn *c;
    uint64_t protocol_version, connected_at, last_seen;
    addr_t addrs[ADDR_MAX_DIALABLE];
    uint8_t n_addrs;
    uint64_t exclude_mark;    /* broadcast generation that excluded this peer */
    reg *hnext;               /* id hash chain */
    reg *nprev, *nnext;       /* network member list */
};

struct network {
    char *id;
    size_t id_len;
    uint64_t hash;
    reg *head;
    size_t count;
    network *hnext;           /* id hash chain */
    network *all_prev, *all_next;  /* every network, for PEX housekeeping */
    struct pex_engine *pex;   /* this network's Peer Exchange engine */
};

struct server {
    relay_config cfg;
    loop *lp;
    socket_t wire_fd, health_fd;
    struct stund *stun;
    uint64_t now_ms, now_wall, start_ms;
    uint64_t next_conn_id;
    size_t n_wire, n_health;
    conn **heap;              /* min-heap of every connection by deadline */
    size_t heap_len, heap_cap;
    conn *pending, *dead;
    reg **ids;                /* peer id -> registration, chained, fixed size */
    network **nets;           /* network id -> network */
    network *all_nets;
    uint64_t pex_due_ms;      /* earliest time any PEX engine has work (UINT64_MAX: none) */
    size_t table_mask, n_regs;
    uint64_t seed[2];         /* per-process hash key: ids are attacker-chosen */
    uint64_t exclude_gen;
    json_writer jw;           /* reused for every outgoing message */
    char *scratch;            /* decoded strings, max_message_bytes long */
    abuse_guard abuse;
    abuse_counters logged;    /* counters as last logged, to log only changes */
    uint64_t next_counter_log_ms;
    /* What the current loop pass did, for keepalive coalescing (loop.h loop_should_hold). */
    bool pass_busy;           /* anything beyond answering keepalives */
    bool pass_keepalive;      /* answered at least one keepalive */
    loop_coalescer coalesce;
    bool stopping;
};

/* conn.c */
bool server_init(server *s, char *err, size_t errlen);
void server_run(server *s);
void server_shutdown(server *s);
void conn_send(conn *c, frame *f);
/* Sends what s->jw holds as a text frame to c, then empties the writer. */
void conn_send_writer(conn *c);
/* Graceful close: a close frame with code and reason, then the socket once flushed. */
void conn_close(conn *c, uint16_t code, const char *reason);
void conn_touch_deadline(conn *c);

/* relay.c */
bool relay_init(server *s, char *err, size_t errlen);
void relay_free(server *s);
/* Handles one wire message; true when it was only a keepalive (a ping answered with a pong). */
bool relay_on_message(server *s, conn *c, uint8_t *msg, size_t len);
/* The connection is going away: remove its registration and tell its network. */
void relay_on_close(server *s, conn *c);
/* Runs the PEX engines that are due and recomputes s->pex_due_ms. */
void relay_pex_housekeeping(server *s);

#endif
