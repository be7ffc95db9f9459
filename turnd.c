/* TURN's sockets (see turnd.h). Data moves without copies where it can: a client's ChannelData
 * or Send indication is sent to the peer straight from the receive buffer it arrived in, and a
 * peer's datagram is received behind TURN_PEER_HEADROOM spare bytes so turn.c wraps it in place.
 * Datagrams for peers are gathered while a batch is handled and sent per relayed socket with one
 * batched call; datagrams for UDP clients leave through the STUN socket the same way.
 *
 * Relayed sockets and TCP connections that close during a batch are only marked: their memory
 * is freed once the batch's queued datagrams have gone (settle), so nothing queued points at
 * freed memory. A closed relayed socket's descriptor is closed at once, which is what "a Refresh
 * with LIFETIME 0 stops relaying at once" means. */
#include "turnd.h"

#include "compat/udp_batch.h"
#include "log.h"
#include "net.h"
#include "stun.h"
#include "xport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH UDP_BATCH_MAX
#define RELAY_PASS_BUDGET 256
#define PEER_DATAGRAM_MAX 1500
#define ACCEPT_PER_PASS 64
#define PORT_ATTEMPTS 64
/* TCP connections beyond the allocation limit, for clients still authenticating. */
#define TCP_MARGIN 64
/* The largest frame a TCP client may send: a TURN request, or ChannelData carrying as much as a
 * UDP client could send through the STUN socket. A connection sending a longer one is closed, so
 * a connection's input never holds more than this. */
#define TCP_IN_MAX 2052
#define TCP_OUT_START 4096
/* A TCP connection that has not had a TURN request succeed is closed after this much silence;
 * one that has, after the longest allocation lifetime and a minute more. */
#define TCP_HANDSHAKE_MS (30 * 1000)
#define TCP_IDLE_MS ((TURN_MAX_LIFETIME + 60) * 1000ull)

typedef struct relay_sock relay_sock;
typedef struct tcp_conn tcp_conn;

struct relay_sock {
    turnd *t;
    turn_alloc *alloc;
    socket_t fd;
    int slot;
    uint16_t port;
    bool closed;
    loop_timer expiry;
    relay_sock *next_dead;
};

struct tcp_conn {
    turnd *t;
    xport *x;
    int slot;
    turn_client tc;
    bool established;
    bool dead;
    uint64_t last_in_ms;
    loop_timer idle;
    uint8_t in[TCP_IN_MAX];
    size_t in_len;
    uint8_t *out;
    size_t out_off, out_len, out_cap;
    tcp_conn *prev, *next;      /* every live connection */
    tcp_conn *next_dead;
};

struct turnd {
    const relay_config *cfg;
    loop *lp;
    stund *stun;
    turn_server *ts;
    turn_config tcfg;
    uint8_t secret[TURN_MAX_SECRET];
    socket_t tcp_fd;
    int tcp_slot;
    size_t tcp_open, tcp_max;
    tcp_conn *conns;
    relay_sock *dead_relays;
    tcp_conn *dead_conns;
    uint8_t ports_used[65536 / 8];
    uint64_t rng;
    uint64_t tcp_dropped;           /* bytes for TCP clients dropped at TURND_TCP_OUT_MAX */
    /* Datagrams for peers gathered during a batch, each with its relayed socket. */
    udp_datagram to_peer[BATCH];
    relay_sock *to_peer_sock[BATCH];
    int n_to_peer;
    /* Datagrams for UDP clients (through the STUN socket) gathered during a relay batch. */
    udp_datagram to_client[BATCH];
    int n_to_client;
    uint8_t reply[TURN_REPLY_MAX];
    udp_datagram from_peer[BATCH];
    uint8_t from_peer_buf[BATCH][TURN_PEER_HEADROOM + PEER_DATAGRAM_MAX + TURN_PEER_TAILROOM];
};

/* ---- sending ---- */

/* Writes a into a sockaddr for a socket of family sock_family: an IPv4 destination of an IPv6
 * (dual-stack) socket is written IPv4-mapped. */
static socklen_t_compat dest_sockaddr(const addr_t *a, uint8_t sock_family, struct sockaddr_storage *ss)
{
    addr_t d = *a;
    if (sock_family == 6 && d.family == 4) {
        memmove(d.ip + 12, d.ip, 4);
        memset(d.ip, 0, 10);
        d.ip[10] = d.ip[11] = 0xff;
        d.family = 6;
    }
    return (socklen_t_compat)addr_to_sockaddr(&d, ss, sizeof *ss);
}

static void flush_to_peers(turnd *t)
{
    int i = 0;
    while (i < t->n_to_peer) {
        relay_sock *r = t->to_peer_sock[i];
        int j = i + 1;
        while (j < t->n_to_peer && t->to_peer_sock[j] == r)
            j++;
        if (!r->closed)
            udp_batch_send(r->fd, &t->to_peer[i], j - i);
        i = j;
    }
    t->n_to_peer = 0;
}

static void flush_to_clients(turnd *t)
{
    if (t->n_to_client > 0)
        udp_batch_send(stund_fd(t->stun), t->to_client, t->n_to_client);
    t->n_to_client = 0;
}

static void queue_to_peer(turnd *t, const turn_out *o)
{
    relay_sock *r = o->relay;
    udp_datagram *d;
    if (t->n_to_peer == BATCH)
        flush_to_peers(t);
    d = &t->to_peer[t->n_to_peer];
    t->to_peer_sock[t->n_to_peer++] = r;
    d->buf = (uint8_t *)(uintptr_t)o->data;
    d->len = o->len;
    d->peer_len = dest_sockaddr(&o->peer, o->peer.family, &d->peer);
}

static void tcp_kill(tcp_conn *c);

/* Switches LOOP_WRITE on while output waits. */
static void tcp_want_write(tcp_conn *c, bool on)
{
    loop_set_events(c->t->lp, c->slot, LOOP_READ | (on ? LOOP_WRITE : 0));
}

static void tcp_flush(tcp_conn *c)
{
    while (c->out_len > 0 && !c->dead) {
        struct compat_iov iov = { c->out + c->out_off, c->out_len };
        long n = xport_writev(c->x, &iov, 1);
        if (n == XPORT_AGAIN)
            break;
        if (n < 0) {
            tcp_kill(c);
            return;
        }
        c->out_off += (size_t)n;
        c->out_len -= (size_t)n;
    }
    if (c->out_len == 0)
        c->out_off = 0;
    if (!c->dead)
        tcp_want_write(c, c->out_len > 0);
}

/* Sends bytes on a TCP connection, queueing what the socket does not take; past
 * TURND_TCP_OUT_MAX queued bytes the message is dropped whole, as UDP would lose it. */
static void tcp_send(tcp_conn *c, const uint8_t *data, size_t len)
{
    if (c->dead)
        return;
    if (c->out_len == 0) {
        struct compat_iov iov = { data, len };
        long n = xport_writev(c->x, &iov, 1);
        if (n < 0 && n != XPORT_AGAIN) {
            tcp_kill(c);
            return;
        }
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        }
        if (len == 0)
            return;
    }
    if (c->out_len + len > TURND_TCP_OUT_MAX) {
        c->t->tcp_dropped += len;
        return;
    }
    if (c->out_off + c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : TCP_OUT_START;
        uint8_t *grown;
        if (c->out_off) {
            memmove(c->out, c->out + c->out_off, c->out_len);
            c->out_off = 0;
        }
        while (cap < c->out_len + len)
            cap *= 2;
        if (cap != c->out_cap) {
            grown = realloc(c->out, cap);
            if (!grown) {
                c->t->tcp_dropped += len;
                return;
            }
            c->out = grown;
            c->out_cap = cap;
        }
    }
    memcpy(c->out + c->out_off + c->out_len, data, len);
    c->out_len += len;
    tcp_want_write(c, true);
}

static void deliver(turnd *t, const turn_out *o)
{
    if (o->client->transport == TURN_TCP) {
        tcp_send((tcp_conn *)(uintptr_t)o->client->conn, o->data, o->len);
        return;
    }
    if (t->n_to_client == BATCH)
        flush_to_clients(t);
    udp_datagram *d = &t->to_client[t->n_to_client++];
    d->buf = (uint8_t *)(uintptr_t)o->data;
    d->len = o->len;
    d->peer_len = dest_sockaddr(&o->client->addr, stund_bound(t->stun)->family, &d->peer);
}

/* Sends what a batch gathered, then frees what closed during it. */
static void settle(turnd *t)
{
    flush_to_peers(t);
    flush_to_clients(t);
    while (t->dead_relays) {
        relay_sock *r = t->dead_relays;
        t->dead_relays = r->next_dead;
        free(r);
    }
    while (t->dead_conns) {
        tcp_conn *c = t->dead_conns;
        t->dead_conns = c->next_dead;
        free(c->out);
        free(c);
    }
}

/* ---- relayed sockets ---- */

static void on_relay_readable(void *ctx, socket_t fd, int events)
{
    relay_sock *r = ctx;
    turnd *t = r->t;
    int budget = RELAY_PASS_BUDGET;
    (void)fd;
    (void)events;

    while (budget > 0 && !r->closed) {
        int want = budget < BATCH ? budget : BATCH;
        int got = udp_batch_recv(r->fd, t->from_peer, want);
        uint64_t now = loop_now_ms(t->lp);
        if (got <= 0)
            break;
        budget -= got;
        for (int i = 0; i < got && !r->closed; i++) {
            udp_datagram *d = &t->from_peer[i];
            addr_t peer;
            turn_out o;
            if (d->len == 0 || d->peer_len <= 0 ||
                !addr_from_sockaddr(&d->peer, (size_t)d->peer_len, &peer))
                continue;
            o = turn_on_peer(t->ts, r->alloc, &peer, d->buf, d->len, now);
            if (o.kind == TURN_OUT_CLIENT)
                deliver(t, &o);
        }
        flush_to_clients(t);   /* the next receive reuses the buffers */
        if (got < want)
            break;
    }
    settle(t);
}

static void on_relay_expiry(void *ctx)
{
    relay_sock *r = ctx;
    turnd *t = r->t;
    turn_on_expiry(t->ts, r->alloc, loop_now_ms(t->lp));
    settle(t);
}

static bool port_used(const turnd *t, uint16_t p) { return t->ports_used[p / 8] & (1u << (p % 8)); }

static void mark_port(turnd *t, uint16_t p, bool used)
{
    if (used)
        t->ports_used[p / 8] |= (uint8_t)(1u << (p % 8));
    else
        t->ports_used[p / 8] &= (uint8_t)~(1u << (p % 8));
}

static uint64_t next_random(turnd *t)
{
    /* xorshift64*: only spreads port choices; nothing depends on it being secret. */
    t->rng ^= t->rng >> 12;
    t->rng ^= t->rng << 25;
    t->rng ^= t->rng >> 27;
    return t->rng * 0x2545F4914F6CDD1DULL;
}

static socket_t bind_relay(uint8_t family, uint16_t port)
{
    addr_t a;
    char err[160];
    socket_t fd;
    memset(&a, 0, sizeof a);
    a.family = family;
    a.port = port;
    fd = net_bind_udp(&a, err, sizeof err);
    if (fd != SOCKET_INVALID && !udp_batch_prepare(fd)) {
        compat_close(fd);
        fd = SOCKET_INVALID;
    }
    return fd;
}

static void *relay_open(void *ctx, turn_alloc *a, uint8_t family, uint16_t want, bool even,
                        uint16_t *port_out)
{
    turnd *t = ctx;
    uint32_t lo = t->cfg->turn_relay_ports.lo, hi = t->cfg->turn_relay_ports.hi;
    uint32_t span = hi - lo + 1, start = (uint32_t)(next_random(t) % span);
    socket_t fd = SOCKET_INVALID;
    uint16_t port = 0;
    relay_sock *r;

    if (want) {
        if (want >= lo && want <= hi && !port_used(t, want)) {
            port = want;
            fd = bind_relay(family, port);
        }
    } else {
        for (uint32_t k = 0, tried = 0; k < span && tried < PORT_ATTEMPTS; k++) {
            uint16_t p = (uint16_t)(lo + (start + k) % span);
            if ((even && p % 2) || port_used(t, p))
                continue;
            tried++;
            fd = bind_relay(family, p);
            if (fd != SOCKET_INVALID) {
                port = p;
                break;
            }
        }
    }
    if (fd == SOCKET_INVALID)
        return NULL;
    r = calloc(1, sizeof *r);
    if (!r) {
        compat_close(fd);
        return NULL;
    }
    r->t = t;
    r->alloc = a;
    r->fd = fd;
    r->port = port;
    loop_timer_init(&r->expiry, on_relay_expiry, r);
    r->slot = loop_add(t->lp, fd, LOOP_READ, on_relay_readable, r);
    if (r->slot < 0) {
        compat_close(fd);
        free(r);
        return NULL;
    }
    mark_port(t, port, true);
    *port_out = port;
    log_debug("TURN: relayed port %u opened", (unsigned)port);
    return r;
}

static void relay_close(void *ctx, void *relay)
{
    turnd *t = ctx;
    relay_sock *r = relay;
    r->closed = true;
    loop_del(t->lp, r->slot);
    loop_timer_stop(t->lp, &r->expiry);
    compat_close(r->fd);
    mark_port(t, r->port, false);
    log_debug("TURN: relayed port %u closed", (unsigned)r->port);
    r->next_dead = t->dead_relays;
    t->dead_relays = r;
}

static void expiry_set(void *ctx, void *relay, uint64_t due_ms)
{
    turnd *t = ctx;
    relay_sock *r = relay;
    /* Out of memory for the heap: the allocation lingers until its client touches it again. */
    if (!loop_timer_set(t->lp, &r->expiry, due_ms))
        log_warn("TURN: cannot arm the expiry timer of relayed port %u", (unsigned)r->port);
}

/* ---- TURN over UDP: the STUN socket's hook ---- */

static size_t on_udp_datagram(void *ctx, udp_datagram *d, uint8_t *reply, size_t cap, uint64_t now_ms)
{
    turnd *t = ctx;
    turn_client from;
    turn_out o;

    if (cap < TURN_REPLY_MAX || d->len == 0 || d->peer_len <= 0 ||
        !addr_from_sockaddr(&d->peer, (size_t)d->peer_len, &from.addr))
        return 0;
    from.transport = TURN_UDP;
    from.conn = NULL;
    o = turn_on_client(t->ts, &from, d->buf, d->len, now_ms, loop_wall_secs(t->lp), reply);
    if (o.kind == TURN_OUT_PEER)
        queue_to_peer(t, &o);
    return o.kind == TURN_OUT_CLIENT ? o.len : 0;
}

static void on_udp_batch_end(void *ctx) { settle(ctx); }

/* ---- TURN over TCP ---- */

static void tcp_kill(tcp_conn *c)
{
    turnd *t = c->t;
    if (c->dead)
        return;
    c->dead = true;
    turn_on_client_closed(t->ts, &c->tc);
    loop_del(t->lp, c->slot);
    loop_timer_stop(t->lp, &c->idle);
    xport_close(c->x);
    t->tcp_open--;
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next_dead = t->dead_conns;
    t->dead_conns = c;
}

static void tcp_arm_idle(tcp_conn *c)
{
    uint64_t limit = c->established ? TCP_IDLE_MS : TCP_HANDSHAKE_MS;
    loop_timer_set(c->t->lp, &c->idle, c->last_in_ms + limit);
}

static void on_tcp_idle(void *ctx)
{
    tcp_conn *c = ctx;
    turnd *t = c->t;
    uint64_t limit = c->established ? TCP_IDLE_MS : TCP_HANDSHAKE_MS;
    if (loop_now_ms(t->lp) - c->last_in_ms >= limit)
        tcp_kill(c);
    else
        tcp_arm_idle(c);
    settle(t);
}

/* A success answered to an authenticated TURN request (any but Binding): the connection is a
 * working client's from now on. */
static bool is_turn_success(const turn_out *o)
{
    unsigned type = o->len >= 2 ? (unsigned)o->data[0] << 8 | o->data[1] : 0;
    return (type & 0xC110u) == 0x0100u && type != stun_type(STUN_BINDING, STUN_CLASS_SUCCESS);
}

static void tcp_read(tcp_conn *c)
{
    turnd *t = c->t;
    size_t off = 0;
    long n;

    n = xport_read(c->x, c->in + c->in_len, TCP_IN_MAX - c->in_len);
    if (n == XPORT_AGAIN)
        return;
    if (n <= 0) {
        tcp_kill(c);
        return;
    }
    c->in_len += (size_t)n;
    c->last_in_ms = loop_now_ms(t->lp);
    while (!c->dead) {
        long f = stun_stream_frame_len(c->in + off, c->in_len - off);
        turn_out o;
        if (f < 0 || f > TCP_IN_MAX) {
            tcp_kill(c);    /* not TURN: nothing further on this stream can be framed */
            return;
        }
        if (f == 0 || (size_t)f > c->in_len - off)
            break;
        o = turn_on_client(t->ts, &c->tc, c->in + off, (size_t)f, c->last_in_ms,
                           loop_wall_secs(t->lp), t->reply);
        if (o.kind == TURN_OUT_CLIENT) {
            if (!c->established && is_turn_success(&o)) {
                c->established = true;
                tcp_arm_idle(c);
            }
            tcp_send(c, o.data, o.len);
        } else if (o.kind == TURN_OUT_PEER) {
            queue_to_peer(t, &o);
        }
        off += (size_t)f;
    }
    flush_to_peers(t);     /* before the frames they point into move */
    if (c->dead)
        return;
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
}

static void on_tcp_event(void *ctx, socket_t fd, int events)
{
    tcp_conn *c = ctx;
    turnd *t = c->t;
    (void)fd;
    if (events & LOOP_WRITE)
        tcp_flush(c);
    if (!c->dead && (events & (LOOP_READ | LOOP_ERROR)))
        tcp_read(c);
    settle(t);
}

static void on_tcp_listener(void *ctx, socket_t lfd, int events)
{
    turnd *t = ctx;
    (void)events;
    for (int i = 0; i < ACCEPT_PER_PASS; i++) {
        struct sockaddr_storage ss;
        socklen_t_compat sl = (socklen_t_compat)sizeof ss;
        socket_t fd = accept(lfd, (struct sockaddr *)&ss, &sl);
        tcp_conn *c;
        if (fd == SOCKET_INVALID) {
            int e = compat_sock_errno();
            if (!compat_would_block(e) && !compat_interrupted(e))
                log_warn("accept on the TURN TCP listener failed: %s", compat_strerror(e));
            return;
        }
        if (t->tcp_open >= t->tcp_max || !compat_set_nonblocking(fd) ||
            !(c = calloc(1, sizeof *c))) {
            compat_close(fd);
            continue;
        }
        compat_set_nodelay(fd);
        c->t = t;
        c->tc.transport = TURN_TCP;
        c->tc.conn = c;
        addr_from_sockaddr(&ss, (size_t)sl, &c->tc.addr);
        c->x = xport_plain_open(NULL, fd, NULL, 0);
        c->slot = c->x ? loop_add(t->lp, fd, LOOP_READ, on_tcp_event, c) : -1;
        if (c->slot < 0) {
            if (c->x)
                xport_close(c->x);
            else
                compat_close(fd);
            free(c);
            continue;
        }
        c->last_in_ms = loop_now_ms(t->lp);
        loop_timer_init(&c->idle, on_tcp_idle, c);
        tcp_arm_idle(c);
        c->next = t->conns;
        if (t->conns)
            t->conns->prev = c;
        t->conns = c;
        t->tcp_open++;
    }
}

/* ---- life ---- */

static void add_own(turn_config *tc, const addr_t *a)
{
    if (tc->n_own < TURN_MAX_OWN_ADDRS && !addr_is_unspecified(a) &&
        !(a->family == 4 && a->ip[0] == 0 && a->ip[1] == 0 && a->ip[2] == 0 && a->ip[3] == 0))
        tc->own[tc->n_own++] = *a;
}

turnd *turnd_open(const relay_config *cfg, loop *lp, stund *stun, const uint8_t *secret,
                  size_t secret_len, char *err, size_t errlen)
{
    turn_env env;
    stund_hook hook;
    char text[3][ADDR_STRLEN];
    turnd *t;

    if (secret_len == 0 || secret_len > TURN_MAX_SECRET) {
        snprintf(err, errlen, "the TURN secret must be 1 to %d bytes", TURN_MAX_SECRET);
        return NULL;
    }
    t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory starting TURN");
        return NULL;
    }
    t->cfg = cfg;
    t->lp = lp;
    t->stun = stun;
    t->tcp_fd = SOCKET_INVALID;
    t->tcp_slot = -1;
    t->tcp_max = (size_t)cfg->turn_max_allocations + TCP_MARGIN;
    memcpy(t->secret, secret, secret_len);
    compat_random(&t->rng, sizeof t->rng);
    t->rng |= 1;
    for (int i = 0; i < BATCH; i++) {
        t->from_peer[i].buf = t->from_peer_buf[i] + TURN_PEER_HEADROOM;
        t->from_peer[i].cap = PEER_DATAGRAM_MAX;
    }

    t->tcfg.realm = cfg->turn_realm;
    t->tcfg.secret = t->secret;
    t->tcfg.secret_len = secret_len;
    t->tcfg.public_ip = cfg->turn_public_ip;
    t->tcfg.max_allocations = (uint32_t)cfg->turn_max_allocations;
    t->tcfg.max_per_user = (uint32_t)cfg->turn_max_allocations_per_user;
    t->tcfg.max_bps = cfg->turn_max_bps;
    t->tcfg.allow = &cfg->turn_allow_peers;
    t->tcfg.deny = &cfg->turn_deny_peers;
    t->tcfg.allow_loopback = cfg->turn_allow_loopback_peers;
    add_own(&t->tcfg, &cfg->turn_public_ip);
    add_own(&t->tcfg, &cfg->listen);
    add_own(&t->tcfg, &cfg->health_listen);
    add_own(&t->tcfg, &cfg->dashboard_listen);
    add_own(&t->tcfg, &cfg->stun_listen);
    add_own(&t->tcfg, &cfg->turn_tcp_listen);
    compat_random(t->tcfg.seed, sizeof t->tcfg.seed);
    compat_random(t->tcfg.nonce_key, sizeof t->tcfg.nonce_key);

    env.ctx = t;
    env.relay_open = relay_open;
    env.relay_close = relay_close;
    env.expiry_set = expiry_set;
    t->ts = turn_new(&t->tcfg, &env);
    if (!t->ts) {
        snprintf(err, errlen, "out of memory for %llu TURN allocations (--turn-max-allocations)",
                 (unsigned long long)cfg->turn_max_allocations);
        free(t);
        return NULL;
    }
    t->tcp_fd = net_listen_tcp(&cfg->turn_tcp_listen, 128, err, errlen);
    if (t->tcp_fd == SOCKET_INVALID ||
        (t->tcp_slot = loop_add(lp, t->tcp_fd, LOOP_READ, on_tcp_listener, t)) < 0) {
        if (t->tcp_fd != SOCKET_INVALID)
            snprintf(err, errlen, "out of loop slots for the TURN TCP listener");
        turnd_close(t);
        return NULL;
    }
    hook.on_datagram = on_udp_datagram;
    hook.end_of_batch = on_udp_batch_end;
    hook.ctx = t;
    stund_set_hook(stun, &hook);

    addr_format(stund_bound(stun), text[0]);
    addr_format(&cfg->turn_tcp_listen, text[1]);
    addr_format_ip(&cfg->turn_public_ip, text[2]);
    log_info("TURN on udp %s and tcp %s, relaying from %s ports %u-%u, realm %s", text[0], text[1],
             text[2], (unsigned)cfg->turn_relay_ports.lo, (unsigned)cfg->turn_relay_ports.hi,
             cfg->turn_realm);
    if (cfg->turn_allow_loopback_peers)
        log_warn("TURN relays to loopback peers (--turn-allow-loopback-peers): for tests only");
    return t;
}

void turnd_close(turnd *t)
{
    stund_hook none;
    if (!t)
        return;
    memset(&none, 0, sizeof none);
    stund_set_hook(t->stun, &none);
    while (t->conns)
        tcp_kill(t->conns);
    turn_free(t->ts);
    settle(t);
    if (t->tcp_slot >= 0)
        loop_del(t->lp, t->tcp_slot);
    if (t->tcp_fd != SOCKET_INVALID)
        compat_close(t->tcp_fd);
    memset(t->secret, 0, sizeof t->secret);
    free(t);
}

void turnd_stats(const turnd *t, turn_stats *out) { turn_get_stats(t->ts, out); }
