/* The meaning of the relay wire (RLY-001..007): registration, the peer registry, routing of
 * relay_message and broadcast, peer notifications, keepalive and hole-punch signalling.
 * Works on decoded messages and connection queues only; conn.c does the I/O. */
#include "log.h"
#include "pex.h"
#include "server.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest peer or network id accepted. Real ids are 64 hex characters; the bound keeps the
 * registry's memory per connection small whatever a client sends. */
#define ID_MAX 256

/* A keyed 64-bit hash (multiply-mix over 8-byte words) seeded per process, so remote parties
 * cannot aim ids at one chain. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    return x;
}

static uint64_t hash_bytes(const server *s, const char *p, size_t n)
{
    uint64_t h = s->seed[0] ^ (n * 0x9e3779b97f4a7c15ULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = mix(h ^ w ^ s->seed[1]);
        p += 8;
        n -= 8;
    }
    if (n > 0) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = mix(h ^ w ^ (s->seed[1] << 1));
    }
    return mix(h);
}

bool relay_init(server *s, char *err, size_t errlen)
{
    size_t size = 16;
    while (size < s->cfg.max_connections && size < ((size_t)1 << 30))
        size <<= 1;
    s->table_mask = size - 1;
    s->ids = calloc(size, sizeof *s->ids);
    s->nets = calloc(size, sizeof *s->nets);
    if (!s->ids || !s->nets) {
        snprintf(err, errlen,
                 "out of memory sizing the registry for %llu connections (--max-connections)",
                 (unsigned long long)s->cfg.max_connections);
        return false;
    }
    /* config.c caps max_message_bytes below SIZE_MAX, so the +1 cannot wrap */
    s->scratch = malloc((size_t)s->cfg.max_message_bytes + 1);
    if (!s->scratch) {
        snprintf(err, errlen, "out of memory for a %llu-byte message buffer (--max-message-bytes)",
                 (unsigned long long)s->cfg.max_message_bytes);
        return false;
    }
    /* Outgoing messages are bounded by what one peer list can hold. */
    jw_init(&s->jw, 0, (size_t)1 << 30);
    return true;
}

void relay_free(server *s)
{
    for (size_t i = 0; i <= s->table_mask; i++) {
        while (s->nets[i]) {
            network *n = s->nets[i];
            s->nets[i] = n->hnext;
            pex_engine_free(n->pex);
            free(n->id);
            free(n);
        }
    }
    free(s->ids);
    free(s->nets);
    free(s->scratch);
    jw_free(&s->jw);
}

static reg *find_reg(server *s, const char *id, size_t n)
{
    uint64_t h = hash_bytes(s, id, n);
    for (reg *r = s->ids[h & s->table_mask]; r; r = r->hnext)
        if (r->hash == h && r->peer_id_len == n && memcmp(r->peer_id, id, n) == 0)
            return r;
    return NULL;
}

/* PEX engines name links by connection pointer: unique while the connection lives, and an
 * engine forgets an id (pex_registrant_down) before its connection is freed. */
static uint64_t pex_id(const conn *c) { return (uint64_t)(uintptr_t)c; }

static void pex_send(void *ctx, uint64_t id, const char *json, size_t len)
{
    conn *c = (conn *)(uintptr_t)id;
    frame *f = frame_text(json, len);
    (void)ctx;
    if (f) {
        conn_send(c, f);
        frame_unref(f);
    }
}

static pex_time pex_now(const server *s) { return (pex_time){ s->now_ms, s->now_wall }; }

static void note_pex_due(server *s, const network *net)
{
    uint64_t due = pex_next_due(net->pex);
    if (due < s->pex_due_ms)
        s->pex_due_ms = due;
}

void relay_pex_housekeeping(server *s)
{
    s->pex_due_ms = UINT64_MAX;
    for (network *net = s->all_nets; net; net = net->all_next) {
        if (pex_next_due(net->pex) <= s->now_ms)
            pex_tick(net->pex, pex_now(s));
        note_pex_due(s, net);
    }
}

static network *find_network(server *s, const char *id, size_t n, bool create)
{
    uint64_t h = hash_bytes(s, id, n);
    network **slot = &s->nets[h & s->table_mask];
    network *net;
    for (net = *slot; net; net = net->hnext)
        if (net->hash == h && net->id_len == n && memcmp(net->id, id, n) == 0)
            return net;
    if (!create)
        return NULL;
    net = calloc(1, sizeof *net);
    if (!net)
        return NULL;
    net->id = malloc(n ? n : 1);
    if (!net->id) {
        free(net);
        return NULL;
    }
    memcpy(net->id, id, n);
    net->id_len = n;
    net->hash = h;
    net->pex = pex_engine_new(id, n, (size_t)s->cfg.max_connections, mix(h ^ s->seed[1]),
                              pex_send, s);
    if (!net->pex) {
        free(net->id);
        free(net);
        return NULL;
    }
    net->hnext = *slot;
    *slot = net;
    net->all_next = s->all_nets;
    if (s->all_nets)
        s->all_nets->all_prev = net;
    s->all_nets = net;
    return net;
}

static void drop_network_if_empty(server *s, network *net)
{
    network **pp = &s->nets[net->hash & s->table_mask];
    if (net->count > 0)
        return;
    while (*pp != net)
        pp = &(*pp)->hnext;
    *pp = net->hnext;
    if (net->all_prev)
        net->all_prev->all_next = net->all_next;
    else
        s->all_nets = net->all_next;
    if (net->all_next)
        net->all_next->all_prev = net->all_prev;
    pex_engine_free(net->pex);
    free(net->id);
    free(net);
}

static wire_str reg_id(const reg *r) { return (wire_str){ r->peer_id, r->peer_id_len }; }

static void peer_info_of(const reg *r, wire_peer_info *p)
{
    p->peer_id = reg_id(r);
    p->network_id = (wire_str){ r->net->id, r->net->id_len };
    p->protocol_version = r->protocol_version;
    p->connected_at = r->connected_at;
    p->last_seen = r->last_seen;
    p->n_addresses = r->n_addrs;
    memcpy(p->addresses, r->addrs, r->n_addrs * sizeof r->addrs[0]);
}

/* Queues a reference to f on every same-network peer except `skip` and those whose
 * exclude_mark equals `mark` (0: none excluded): one frame, however many receive it. */
static void fan_out_frame(network *net, const reg *skip, uint64_t mark, frame *f)
{
    for (reg *r = net->head; r; r = r->nnext)
        if (r != skip && (mark == 0 || r->exclude_mark != mark))
            conn_send(r->c, f);
}

/* Fans out what s->jw holds and empties the writer. */
static void fan_out(server *s, network *net, const reg *skip, uint64_t mark)
{
    frame *f = NULL;
    if (!s->jw.failed && net->count > 0)
        f = frame_text(s->jw.p, s->jw.len);
    jw_clear(&s->jw);
    if (f) {
        fan_out_frame(net, skip, mark, f);
        frame_unref(f);
    }
}

/* Room for a JSON string of n raw bytes once quoted and escaped (\u00xx at worst). */
static size_t quoted_max(size_t n) { return 6 * n + 2; }

/* A frame holding a message of at most max_len bytes, with *w writing straight into it (the
 * forward path's payload is copied once, from the sender's frame into this one). */
static frame *begin_frame(size_t max_len, json_writer *w)
{
    char *out;
    frame *f = frame_begin_text(max_len, &out);
    if (f)
        jw_init_fixed(w, out, max_len);
    return f;
}

/* Completes a frame from begin_frame; NULL (frame released) when the writer ran out of room. */
static frame *end_frame(frame *f, const json_writer *w)
{
    if (w->failed) {
        frame_unref(f);
        return NULL;
    }
    frame_end_text(f, w->len);
    return f;
}

static void send_error(conn *c, uint64_t code, const char *message)
{
    wire_write_error(&c->srv->jw, code, message);
    conn_send_writer(c);
}

static void refuse_register(server *s, conn *c, uint64_t code, const char *message)
{
    wire_write_register_ack(&s->jw, false, message, s->n_regs);
    conn_send_writer(c);
    send_error(c, code, message);
    conn_close(c, WS_CLOSE_POLICY, message);
}

static void handle_register(server *s, conn *c, const wire_msg *m)
{
    addr_t advertised[ADDR_MAX_DIALABLE * 4];
    size_t n_adv = 0;
    wire_iter it = { 0 };
    addr_t a;
    reg *r, *existing;
    network *net;
    wire_peer_info info;
    enum abuse_verdict verdict;

    if (c->reg) {
        send_error(c, WIRE_ERR_BAD_MESSAGE, "connection is already registered");
        return;
    }
    if (m->peer_id.n == 0 || m->peer_id.n > ID_MAX || m->network_id.n > ID_MAX) {
        send_error(c, WIRE_ERR_BAD_MESSAGE, "peer_id must be 1..256 bytes and network_id at most 256");
        return;
    }
    /* Order of refusals as the reference: source rate, source cap, identity, capacity, id. */
    verdict = abuse_register(&s->abuse, &c->source, s->now_ms);
    if (verdict != ABUSE_OK) {
        log_debug("refusing register from conn %llu: %s", (unsigned long long)c->id,
                  abuse_reason(verdict));
        refuse_register(s, c, WIRE_ERR_RATE_LIMITED, abuse_reason(verdict));
        return;
    }
    if (s->n_regs >= s->cfg.max_connections) {
        abuse_registration_ended(&s->abuse, &c->source);
        refuse_register(s, c, WIRE_ERR_CAPACITY, "relay at capacity");
        return;
    }
    existing = find_reg(s, m->peer_id.p, m->peer_id.n);
    if (existing) {
        /* Registrations leave the registry the moment their connection starts closing, so
         * anything found here is live: refuse rather than let the id be hijacked. */
        log_warn("refusing register of %.*s from conn %llu: id held by a live connection",
                 (int)m->peer_id.n, m->peer_id.p, (unsigned long long)c->id);
        abuse_registration_ended(&s->abuse, &c->source);
        refuse_register(s, c, WIRE_ERR_ID_IN_USE, "peer_id already registered by a live connection");
        return;
    }
    /* Only the first candidates matter: the resolved set is capped at ADDR_MAX_DIALABLE. */
    while (n_adv < sizeof advertised / sizeof advertised[0] &&
           wire_next_addr(&it, m->listen_addrs, &a))
        advertised[n_adv++] = a;

    net = find_network(s, m->network_id.p, m->network_id.n, true);
    r = calloc(1, sizeof *r);
    if (r)
        r->peer_id = malloc(m->peer_id.n);
    if (!net || !r || !r->peer_id) {
        if (r)
            free(r->peer_id);
        free(r);
        if (net)
            drop_network_if_empty(s, net);
        abuse_registration_ended(&s->abuse, &c->source);
        refuse_register(s, c, WIRE_ERR_CAPACITY, "relay out of memory");
        return;
    }
    memcpy(r->peer_id, m->peer_id.p, m->peer_id.n);
    r->peer_id_len = m->peer_id.n;
    r->hash = hash_bytes(s, r->peer_id, r->peer_id_len);
    r->net = net;
    r->c = c;
    r->protocol_version = m->protocol_version;
    r->connected_at = r->last_seen = s->now_wall;
    r->n_addrs = (uint8_t)addr_resolve_dialable(&c->peer, advertised, n_adv, r->addrs);

    r->hnext = s->ids[r->hash & s->table_mask];
    s->ids[r->hash & s->table_mask] = r;
    r->nnext = net->head;
    if (net->head)
        net->head->nprev = r;
    net->head = r;
    net->count++;
    s->n_regs++;
    c->reg = r;
    conn_touch_deadline(c);

    if (LOG_ENABLED(LOG_INFO)) {
        char text[ADDR_STRLEN];
        addr_format(&c->peer, text);
        log_info("registered %.*s on %.*s from %s (%zu connected)", (int)r->peer_id_len, r->peer_id,
                 (int)net->id_len, net->id, text, s->n_regs);
    }
    wire_write_register_ack(&s->jw, true, "registered", s->n_regs);
    conn_send_writer(c);
    peer_info_of(r, &info);
    wire_write_peer_connected(&s->jw, &info);
    fan_out(s, net, r, 0);
    /* Every registration, PEX-capable or not, is advertised to the network's PEX links. */
    if (!pex_registrant_up(net->pex, pex_id(c), r->peer_id, r->peer_id_len, &c->peer, r->addrs,
                           r->n_addrs, pex_now(s)))
        log_warn("PEX: could not mirror %.*s", (int)r->peer_id_len, r->peer_id);
    note_pex_due(s, net);
}

void relay_on_close(server *s, conn *c)
{
    reg *r = c->reg;
    reg **pp;
    network *net;
    if (!r)
        return;
    c->reg = NULL;
    net = r->net;
    pp = &s->ids[r->hash & s->table_mask];
    while (*pp != r)
        pp = &(*pp)->hnext;
    *pp = r->hnext;
    if (r->nprev)
        r->nprev->nnext = r->nnext;
    else
        net->head = r->nnext;
    if (r->nnext)
        r->nnext->nprev = r->nprev;
    net->count--;
    s->n_regs--;
    abuse_registration_ended(&s->abuse, &c->source);
    log_info("deregistered %.*s (%zu connected)", (int)r->peer_id_len, r->peer_id, s->n_regs);
    pex_registrant_down(net->pex, pex_id(c));
    note_pex_due(s, net);
    wire_write_peer_disconnected(&s->jw, reg_id(r));
    fan_out(s, net, NULL, 0);
    drop_network_if_empty(s, net);
    free(r->peer_id);
    free(r);
}

static void handle_get_peers(server *s, conn *c, const wire_msg *m)
{
    network *net = m->network_id_null ? c->reg->net
                                      : find_network(s, m->network_id.p, m->network_id.n, false);
    bool first = true;
    wire_write_peers_begin(&s->jw);
    if (net) {
        for (reg *r = net->head; r; r = r->nnext) {
            wire_peer_info info;
            peer_info_of(r, &info);
            wire_write_peers_item(&s->jw, &info, first);
            first = false;
        }
    }
    wire_write_peers_end(&s->jw);
    conn_send_writer(c);
}

/* Target lookup for forwards: the peer must be registered on the sender's network. */
static reg *target_in_network(server *s, conn *c, wire_str id)
{
    reg *t = find_reg(s, id.p, id.n);
    return t && t->net == c->reg->net ? t : NULL;
}

static void peer_not_found(conn *c, wire_str id)
{
    char msg[ID_MAX + 64];
    int shown = id.n > ID_MAX ? ID_MAX : (int)id.n;
    snprintf(msg, sizeof msg, "peer %.*s not connected to this relay", shown, id.p);
    send_error(c, WIRE_ERR_PEER_NOT_FOUND, msg);
}

static void handle_relay_message(server *s, conn *c, const wire_msg *m)
{
    reg *t = target_in_network(s, c, m->to);
    if (!t) {
        peer_not_found(c, m->to);
        return;
    }
    json_writer w;
    frame *f = begin_frame(96 + quoted_max(c->reg->peer_id_len) + quoted_max(m->to.n) + m->payload.n, &w);
    if (!f)
        return;
    wire_write_relay_message(&w, reg_id(c->reg), m->to, m->payload, m->seq);
    f = end_frame(f, &w);
    if (f) {
        conn_send(t->c, f);
        frame_unref(f);
    }
}

static void handle_broadcast(server *s, conn *c, const wire_msg *m, const uint8_t *msg)
{
    uint64_t mark = ++s->exclude_gen;
    wire_iter it = { 0 };
    wire_str id;
    /* Excluded ids decode into scratch at the array's own offset, clear of the message's strings. */
    char *scratch = s->scratch + (m->exclude.p - (const char *)msg);
    while (wire_next_string(&it, m->exclude, &id, scratch)) {
        reg *r = find_reg(s, id.p, id.n);
        if (r)
            r->exclude_mark = mark;
    }
    json_writer w;
    frame *f = begin_frame(96 + quoted_max(c->reg->peer_id_len) + m->payload.n, &w);
    if (!f)
        return;
    wire_write_broadcast(&w, reg_id(c->reg), m->payload);
    f = end_frame(f, &w);
    if (f) {
        fan_out_frame(c->reg->net, c->reg, mark, f);
        frame_unref(f);
    }
}

static void handle_hole_punch_request(server *s, conn *c, const wire_msg *m)
{
    reg *t = target_in_network(s, c, m->target_peer_id);
    if (!t) {
        peer_not_found(c, m->target_peer_id);
        return;
    }
    wire_write_hole_punch_coordinate(&s->jw, reg_id(c->reg), &m->external_addr);
    conn_send_writer(t->c);
}

static void handle_hole_punch_result(server *s, conn *c, const wire_msg *m)
{
    reg *t = target_in_network(s, c, m->peer_id);
    if (!t) {
        peer_not_found(c, m->peer_id);
        return;
    }
    wire_write_hole_punch_result(&s->jw, m->peer_id, m->success);
    conn_send_writer(t->c);
}

bool relay_on_message(server *s, conn *c, uint8_t *msg, size_t len)
{
    wire_msg m;
    char err[160];

    if (c->reg && c->reg->last_seen != s->now_wall) {
        c->reg->last_seen = s->now_wall;
        pex_registrant_seen(c->reg->net->pex, pex_id(c), pex_now(s));
    }
    if (!wire_decode((const char *)msg, len, &m, s->scratch, err, sizeof err)) {
        log_debug("conn %llu: bad message: %s", (unsigned long long)c->id, err);
        send_error(c, WIRE_ERR_BAD_MESSAGE, "invalid relay JSON");
        return false;
    }
    if (!c->reg && m.type != WT_REGISTER) {
        send_error(c, WIRE_ERR_NOT_REGISTERED,
                   m.type == WT_PEX ? "register before sending PEX (RLY-001)"
                                    : "register before sending other messages (RLY-001)");
        return false;
    }
    switch (m.type) {
    case WT_REGISTER: handle_register(s, c, &m); break;
    case WT_UNREGISTER: conn_close(c, WS_CLOSE_NORMAL, "unregistered"); break;
    case WT_RELAY_MESSAGE: handle_relay_message(s, c, &m); break;
    case WT_BROADCAST: handle_broadcast(s, c, &m, msg); break;
    case WT_GET_PEERS: handle_get_peers(s, c, &m); break;
    case WT_PING:
        wire_write_pong(&s->jw, m.timestamp);
        conn_send_writer(c);
        return true;
    case WT_PONG:
        return true;
    case WT_HOLE_PUNCH_REQUEST: handle_hole_punch_request(s, c, &m); break;
    case WT_HOLE_PUNCH_RESULT: handle_hole_punch_result(s, c, &m); break;
    case WT_PEX:
        if (pex_on_frame(c->reg->net->pex, pex_id(c), (const char *)msg, len, pex_now(s)) ==
            PEX_NOT_REGISTERED)
            send_error(c, WIRE_ERR_NOT_REGISTERED, "register before sending PEX (RLY-001)");
        note_pex_due(s, c->reg->net);
        break;
    default:
        /* Server-to-client messages (acks, peer lists, errors) carry nothing for the relay
         * to act on. */
        break;
    }
    return false;
}
