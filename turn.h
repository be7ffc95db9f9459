/* The TURN server's state machine (RFC 8656 over RFC 8489's long-term credentials, with coturn's
 * REST credential scheme). Pure: messages, datagrams and the time come in; what to send and to
 * whom comes out. Relayed sockets and timers belong to the caller, reached through turn_env.
 *
 * Credentials: a username is "<unix expiry>[:<id>]" and its password base64(HMAC-SHA1(secret,
 * username)), so one secret shared with coturn's use-auth-secret validates the same users. A
 * username whose expiry has passed, a wrong password, a nonce this server did not issue to this
 * client (or issued too long ago: 438) never allocates. Nonces are stateless: an HMAC under a key
 * drawn at start over the issue time and the client's transport address.
 *
 * Allocations are keyed by the client's 5-tuple (transport, address, and for TCP the connection).
 * Everything per allocation is bounded (TURN_MAX_PERMISSIONS, TURN_MAX_CHANNELS); allocations
 * are bounded in total and per user (the username's id part). Peers are filtered by
 * turn_peer_allowed before any permission or channel exists, so data never reaches a refused one.
 *
 * Amplification: answers to requests that did not authenticate (401, 438, 400 before
 * authentication) cost more bytes than they answer, so over UDP they draw on their own per-source
 * and global budget; authenticated answers and relayed data do not. */
#ifndef DIG_TURN_H
#define DIG_TURN_H

#include "addr.h"
#include "cidr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TURN_MAX_PERMISSIONS 32     /* peer IPs per allocation */
#define TURN_MAX_CHANNELS 32        /* channel bindings per allocation */
#define TURN_MAX_REALM 128          /* bytes of --turn-realm */
#define TURN_MAX_USERNAME 512       /* RFC 8489: under 509 bytes; ours are ~80 */
#define TURN_MAX_SECRET 1024        /* bytes of the shared secret */
#define TURN_MAX_OWN_ADDRS 8        /* the relay's own addresses refused as peers */

#define TURN_DEFAULT_LIFETIME 600   /* seconds, RFC 8656 §7.2 */
#define TURN_MAX_LIFETIME 3600
#define TURN_PERMISSION_LIFETIME 300
#define TURN_CHANNEL_LIFETIME 600
/* A channel number stays tied to its peer this long after the binding expires (RFC 8656 §12). */
#define TURN_CHANNEL_QUIET 300
#define TURN_NONCE_LIFETIME 600     /* after this a nonce is stale (438) */
#define TURN_RESERVATION_LIFETIME 30   /* an EVEN-PORT R=1 reservation of the next port */
/* Unauthenticated answers over UDP per source IP and in total, per second. */
#define TURN_CHALLENGES_PER_IP 20
#define TURN_CHALLENGES_GLOBAL 2000

/* Largest reply turn_on_client writes. */
#define TURN_REPLY_MAX 512
/* Room turn_on_peer needs before and after a peer's datagram to wrap it in place: a Data
 * indication's header, XOR-PEER-ADDRESS (IPv6) and DATA header before; padding after. */
#define TURN_PEER_HEADROOM 48
#define TURN_PEER_TAILROOM 3

enum turn_transport { TURN_UDP = 0, TURN_TCP = 1 };

/* Who sent a message: the transport, the source address, and for TCP the connection (any
 * pointer that identifies it while it is open). */
typedef struct {
    enum turn_transport transport;
    addr_t addr;
    const void *conn;
} turn_client;

typedef struct turn_alloc turn_alloc;

/* What the caller provides: the relayed sockets and one timer per allocation. */
typedef struct {
    void *ctx;
    /* Opens a relayed UDP socket of family 4 or 6 reading datagrams for allocation a: on
     * exactly `want` when it is non-zero, else on a free port of the relay range (an even one
     * when even_port is set). Returns the caller's handle and the port, or NULL when that port,
     * or every port, is taken. */
    void *(*relay_open)(void *ctx, turn_alloc *a, uint8_t family, uint16_t want, bool even_port,
                        uint16_t *port);
    /* Closes it at once: nothing is relayed through it afterwards. */
    void (*relay_close)(void *ctx, void *relay);
    /* The allocation behind relay expires at due_ms (monotonic): call turn_on_expiry then. */
    void (*expiry_set)(void *ctx, void *relay, uint64_t due_ms);
} turn_env;

typedef struct {
    const char *realm;              /* at most TURN_MAX_REALM bytes */
    const uint8_t *secret;          /* the shared secret (the secret file's text) */
    size_t secret_len;
    addr_t public_ip;               /* put in XOR-RELAYED-ADDRESS; its family is the allocations' */
    uint32_t max_allocations;       /* >= 1 */
    uint32_t max_per_user;          /* >= 1 */
    uint64_t max_bps;               /* bytes per second per allocation and direction; 0: none */
    /* Peer policy (see turn_peer_allowed); NULL lists are empty. */
    const cidr_list *allow;
    const cidr_list *deny;
    bool allow_loopback;
    addr_t own[TURN_MAX_OWN_ADDRS]; /* the relay's own addresses (ports ignored) */
    size_t n_own;
    uint32_t tracked_sources;       /* sources the challenge budget remembers (0: 65536) */
    uint64_t seed[2];               /* secrets for hash tables and the nonce key, from the OS */
    uint8_t nonce_key[32];
} turn_config;

/* ---- peer policy ---- */

/* Whether data may be relayed to (and from) peer. In order: an IPv4-mapped or IPv4-compatible
 * IPv6 address is always refused (it is an IPv4 peer in disguise: ::ffff:127.0.0.1); a peer in
 * a deny block is refused; one in an allow block is allowed; loopback is allowed when
 * allow_loopback is set; then the unspecified, loopback, link-local, private (10/8, 172.16/12,
 * 192.168/16), CGNAT (100.64/10), "this network" (0/8), multicast, broadcast and reserved
 * (240/4) IPv4 blocks, the unspecified, loopback, link-local, unique-local and multicast IPv6
 * blocks, the IPv4 blocks again inside NAT64's 64:ff9b::/96, and the relay's own addresses are
 * refused; everything else is allowed. */
bool turn_peer_allowed(const turn_config *cfg, const addr_t *peer);

/* ---- the server ---- */

typedef struct turn_server turn_server;

/* cfg (and what it points to) must outlive the server. NULL when out of memory. */
turn_server *turn_new(const turn_config *cfg, const turn_env *env);
/* Closes every allocation's relay and frees everything. */
void turn_free(turn_server *s);

enum turn_out_kind {
    TURN_OUT_NONE = 0,   /* nothing to send */
    TURN_OUT_CLIENT,     /* data[0..len) to client over its transport (UDP: a datagram; TCP: the
                          * stream, already framed and padded) */
    TURN_OUT_PEER        /* data[0..len) as one datagram from relay to peer */
};

typedef struct {
    enum turn_out_kind kind;
    const uint8_t *data;
    size_t len;
    const turn_client *client;
    void *relay;
    addr_t peer;
} turn_out;

/* One STUN message or ChannelData from a client (a UDP datagram, or one frame cut from a TCP
 * stream with stun_stream_frame_len). now_ms is monotonic, wall_secs the Unix time (for
 * credential expiry only). A reply is written into reply (TURN_REPLY_MAX bytes); data for a peer
 * points into msg. The result is valid until the next call. */
turn_out turn_on_client(turn_server *s, const turn_client *from, const uint8_t *msg, size_t len,
                        uint64_t now_ms, uint64_t wall_secs, uint8_t *reply);

/* A datagram from peer on allocation a's relayed socket, at data[0..len) with TURN_PEER_HEADROOM
 * writable bytes before it and TURN_PEER_TAILROOM after: it is wrapped in place (ChannelData
 * when a channel is bound to peer, else a Data indication) and returned for a's client. */
turn_out turn_on_peer(turn_server *s, turn_alloc *a, const addr_t *peer, uint8_t *data, size_t len,
                      uint64_t now_ms);

/* The timer set through expiry_set fired: the allocation goes if its time is up (else the timer
 * is set again for its new expiry). */
void turn_on_expiry(turn_server *s, turn_alloc *a, uint64_t now_ms);

/* A TCP client's connection closed: its allocation goes with it. */
void turn_on_client_closed(turn_server *s, const turn_client *c);

typedef struct {
    uint64_t allocations;        /* live now */
    uint64_t allocations_total;  /* ever created */
    uint64_t packets_to_peers, bytes_to_peers;      /* relayed, payload bytes */
    uint64_t packets_to_clients, bytes_to_clients;
    uint64_t auth_failures;      /* 401 and 438 answered or suppressed */
    uint64_t refused_peers;      /* 403 */
    uint64_t challenges_dropped; /* unauthenticated answers over their budget */
} turn_stats;

void turn_get_stats(const turn_server *s, turn_stats *out);

/* The REST password for a username under secret: base64(HMAC-SHA1(secret, username)) into out
 * (29 bytes with the NUL). */
void turn_rest_password(const uint8_t *secret, size_t secret_len, const char *username,
                        size_t username_len, char out[29]);

#endif
