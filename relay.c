/* The meaning of the relay wire (see relay.h): the registry of peers and networks, the message
 * handlers, and the PEX engines it mirrors registrations into. Works on decoded messages and
 * connection queues only; conn.c does the I/O. In a cluster (cluster.h) the registry also holds
 * the peers of the other instances (entries without a connection, pointing at their cluster_ref),
 * so lookups stay local and frames for them go out through the cluster. */
#include "relay.h"

#include "cluster.h"
#include "conn.h"
#include "hash.h"
#include "json.h"
#include "log.h"
#include "pex.h"
#include "turn.h"
#include "wire.h"
#include "ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct reg reg;
typedef struct network network;

/* One registered peer. */
struct reg {
    char *peer_id;
    size_t peer_id_len;
    uint64_t hash;
    network *net;
    conn *c;                  /* NULL for a peer on another instance */
    cluster_ref *remote;      /* that peer's cluster entry, NULL for a local one */
    cluster_local *announced; /* a local one's cluster announcement, NULL standalone */
    uint64_t protocol_version, connected_at, last_seen;
    addr_t addrs[ADDR_MAX_DIALABLE];
    uint8_t n_addrs;
    uint64_t exclude_mark;    /* broadcast generation that excluded this peer */
    char *entry;              /* its entry in a peers answer, encoded when last_seen was
                               * entry_seen (NULL: not yet), so each answer copies it */
    uint32_t entry_len;
    uint64_t entry_seen;
    reg *hnext;               /* id hash chain */
    reg *nprev, *nnext;       /* network member list */
};

/* The peers registered under one network id. */
struct network {
    char *id;
    size_t id_len;
    uint64_t hash;
    reg *head;
    size_t count;             /* registrations, the cluster's included */
    size_t local;             /* those on this instance */
    network *hnext;           /* id hash chain */
    network *all_prev, *all_next;  /* every network, for PEX housekeeping */
    struct pex_engine *pex;   /* this network's Peer Exchange engine */
    conn_group *hearers;      /* the local members' connections: who hears membership notices */
    /* The members in peer_id order for the peers answer: order[0 .. order_sorted) sorted, then
     * those that joined since; order_stale once one left (rebuilt from the list when needed). */
    reg **order;
    size_t order_n, order_cap, order_sorted;
    bool order_stale;
    /* The peers answer, encoded once and shared: `peers` is the current answer (NULL once a
     * registration comes or goes or a member's last_seen moves), `peers_due` the deferred frame
     * every get_peers of this pass was queued with, filled at the end of the pass. */
    frame *peers, *peers_due;
    network *due_next;        /* on the relay's list of networks with peers_due */
};

struct relay {
    const relay_config *cfg;
    loop *lp;
    abuse_guard *abuse;
    uint64_t start_ms;
    reg **ids;                /* peer id -> registration, chained, fixed size */
    network **nets;           /* network id -> network */
    network *all_nets;
    size_t table_mask, n_regs;
    uint64_t seed[2];
    uint64_t exclude_gen;
    json_writer jw;           /* reused for every outgoing message */
    json_writer entry_jw;     /* encodes one peers entry at a time (reg.entry) */
    char *scratch;            /* decoded strings, max_message_bytes long */
    loop_timer pex_timer;     /* the earliest time any PEX engine has work */
    uint8_t *turn_secret;     /* NULL while TURN is off */
    size_t turn_secret_len;
    char turn_uris[2][ADDR_STRLEN + 32];
    relay_counters counters;  /* PEX frames: of networks already gone (live engines count theirs) */
    relay_dht_fn dht_sink;
    void *dht_ctx;
    network *peers_due;       /* networks whose deferred peers answer is still to be filled */
    cluster *cl;              /* NULL standalone */
    size_t n_remote;          /* registry entries of peers on other instances */
};

/* Longest peer or network id accepted. Real ids are 64 hex characters; the bound keeps the
 * registry's memory per connection small whatever a client sends. */
#define ID_MAX 256

/* Ids are chosen by clients: the registry's hash is keyed per process. */
static uint64_t hash_bytes(const relay *s, const char *p, size_t n)
{
    return hash_siphash13(s->seed, p, n);
}

static void pex_housekeeping(void *ctx);

relay *relay_new(const relay_config *cfg, loop *lp, abuse_guard *abuse, const uint64_t seed[2],
                 char *err, size_t errlen)
{
    size_t size = 16;
    relay *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    s->lp = lp;
    s->abuse = abuse;
    s->start_ms = loop_now_ms(lp);
    s->seed[0] = seed[0];
    s->seed[1] = seed[1];
    loop_timer_init(&s->pex_timer, pex_housekeeping, s);
    while (size < cfg->max_connections && size < ((size_t)1 << 30))
        size <<= 1;
    s->table_mask = size - 1;
    s->ids = calloc(size, sizeof *s->ids);
    s->nets = calloc(size, sizeof *s->nets);
    if (!s->ids || !s->nets) {
        snprintf(err, errlen,
                 "out of memory sizing the registry for %llu connections (--max-connections)",
                 (unsigned long long)cfg->max_connections);
        relay_free(s);
        return NULL;
    }
    /* config.c caps max_message_bytes below SIZE_MAX, so the +1 cannot wrap */
    s->scratch = malloc((size_t)cfg->max_message_bytes + 1);
    if (!s->scratch) {
        snprintf(err, errlen, "out of memory for a %llu-byte message buffer (--max-message-bytes)",
                 (unsigned long long)cfg->max_message_bytes);
        relay_free(s);
        return NULL;
    }
    /* Outgoing messages are bounded by what one peer list can hold. */
    jw_init(&s->jw, 0, (size_t)1 << 30);
    jw_init(&s->entry_jw, 0, (size_t)1 << 16);
    return s;
}

static void free_reg(reg *r)
{
    free(r->entry);
    free(r->peer_id);
    free(r);
}

void relay_free(relay *s)
{
    if (!s)
        return;
    loop_timer_stop(s->lp, &s->pex_timer);
    if (s->turn_secret) {
        memset(s->turn_secret, 0, s->turn_secret_len);
        free(s->turn_secret);
    }
    for (size_t i = 0; s->nets && i <= s->table_mask; i++) {
        while (s->nets[i]) {
            network *n = s->nets[i];
            s->nets[i] = n->hnext;
            /* peers elsewhere are the registry's own; local ones leave with their connections */
            for (reg *r = n->head, *next; r; r = next) {
                next = r->nnext;
                if (r->remote)
                    free_reg(r);
            }
            frame_unref(n->peers);
            frame_unref(n->peers_due);
            pex_engine_free(n->pex);
            conn_group_free(n->hearers);
            free(n->order);
            free(n->id);
            free(n);
        }
    }
    free(s->ids);
    free(s->nets);
    free(s->scratch);
    jw_free(&s->jw);
    jw_free(&s->entry_jw);
    free(s);
}

size_t relay_peer_count(const relay *r) { return r->n_regs; }
size_t relay_cluster_peer_count(const relay *r) { return r->n_regs + r->n_remote; }
uint64_t relay_uptime_secs(const relay *r) { return (loop_now_ms(r->lp) - r->start_ms) / 1000u; }

static reg *find_reg(relay *s, const char *id, size_t n)
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

static pex_time pex_now(const relay *s) { return (pex_time){ loop_now_ms(s->lp), loop_wall_secs(s->lp) }; }

/* Brings the PEX timer forward when this network's engine has work sooner. */
static void note_pex_due(relay *s, const network *net)
{
    uint64_t due = pex_next_due(net->pex);
    if (due == UINT64_MAX)
        return;
    if (!loop_timer_armed(&s->pex_timer) || due < s->pex_timer.due_ms) {
        if (!loop_timer_set(s->lp, &s->pex_timer, due))
            log_warn("PEX: out of memory arming the housekeeping timer");
    }
}

/* Runs the engines that are due; the timer is then re-armed for the earliest next one. */
static void pex_housekeeping(void *ctx)
{
    relay *s = ctx;
    uint64_t now = loop_now_ms(s->lp);
    for (network *net = s->all_nets; net; net = net->all_next) {
        if (pex_next_due(net->pex) <= now)
            pex_tick(net->pex, pex_now(s));
        note_pex_due(s, net);
    }
}

static network *find_network(relay *s, const char *id, size_t n, bool create)
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
    net->pex = pex_engine_new(id, n, (size_t)s->cfg->max_connections, hash_mix64(h ^ s->seed[1]),
                              pex_send, s);
    net->hearers = conn_group_new();
    if (!net->pex || !net->hearers) {
        pex_engine_free(net->pex);
        conn_group_free(net->hearers);
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

static void fill_peers_due(relay *s, network *net);

static void drop_network_if_empty(relay *s, network *net)
{
    network **pp = &s->nets[net->hash & s->table_mask];
    if (net->count > 0)
        return;
    if (net->peers_due) {
        /* requested earlier in this pass: answered with the network as it is now, empty */
        network **dp = &s->peers_due;
        while (*dp != net)
            dp = &(*dp)->due_next;
        *dp = net->due_next;
        fill_peers_due(s, net);
    }
    frame_unref(net->peers);
    while (*pp != net)
        pp = &(*pp)->hnext;
    *pp = net->hnext;
    if (net->all_prev)
        net->all_prev->all_next = net->all_next;
    else
        s->all_nets = net->all_next;
    if (net->all_next)
        net->all_next->all_prev = net->all_prev;
    s->counters.pex_snapshots += pex_snapshots_sent(net->pex);
    s->counters.pex_deltas += pex_deltas_sent(net->pex);
    pex_engine_free(net->pex);
    conn_group_free(net->hearers);
    free(net->order);
    free(net->id);
    free(net);
}

static reg *reg_of(const conn *c) { return conn_registration(c); }

/* Membership or a member's last_seen changed: the shared peers answer is out of date. */
static void net_changed(network *net)
{
    frame_unref(net->peers);
    net->peers = NULL;
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
        if (r != skip && r->c && (mark == 0 || r->exclude_mark != mark))
            conn_send(r->c, f);
}

/* What s->jw holds as a text frame (NULL when it failed or out of memory); empties the
 * writer. */
static frame *take_writer(relay *s)
{
    frame *f = s->jw.failed ? NULL : frame_text(s->jw.p, s->jw.len);
    jw_clear(&s->jw);
    return f;
}

/* Sends the membership notice s->jw holds to the network's local members but `skip` (NULL:
 * none) and empties the writer. */
static void announce(relay *s, network *net, const reg *skip)
{
    frame *f = net->local > 0 ? take_writer(s) : NULL;
    jw_clear(&s->jw);
    if (f) {
        conn_group_send_notice(net->hearers, skip ? skip->c : NULL, f);
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

/* Sends what s->jw holds as a text frame to c, then empties the writer. */
static void send_writer(relay *s, conn *c)
{
    frame *f = take_writer(s);
    if (f) {
        conn_send(c, f);
        frame_unref(f);
    }
}

static void send_error(relay *s, conn *c, uint64_t code, const char *message)
{
    if (code < RELAY_ERROR_CODES)
        s->counters.errors[code]++;
    wire_write_error(&s->jw, code, message);
    send_writer(s, c);
}

static void refuse_register(relay *s, conn *c, uint64_t code, const char *message)
{
    wire_write_register_ack(&s->jw, false, message, s->n_regs + s->n_remote);
    send_writer(s, c);
    send_error(s, c, code, message);
    conn_close(c, WS_CLOSE_POLICY, message);
}

/* A registry entry for id on network net_id (made when new), not yet filed; NULL, with nothing
 * left behind, when out of memory. */
static reg *new_reg(relay *s, const char *id, size_t n, const char *net_id, size_t net_n)
{
    network *net = find_network(s, net_id, net_n, true);
    reg *r = calloc(1, sizeof *r);
    if (r)
        r->peer_id = malloc(n ? n : 1);
    if (!net || !r || !r->peer_id) {
        if (r)
            free(r->peer_id);
        free(r);
        if (net)
            drop_network_if_empty(s, net);
        return NULL;
    }
    memcpy(r->peer_id, id, n);
    r->peer_id_len = n;
    r->hash = hash_bytes(s, id, n);
    r->net = net;
    return r;
}

/* Files r (its id hashed, its network set) in the id table and its network's list. */
static void link_reg(relay *s, reg *r)
{
    network *net = r->net;
    r->hnext = s->ids[r->hash & s->table_mask];
    s->ids[r->hash & s->table_mask] = r;
    r->nprev = NULL;
    r->nnext = net->head;
    if (net->head)
        net->head->nprev = r;
    net->head = r;
    net->count++;
    net->local += r->c != NULL;
    if (!net->order_stale && net->order_n == net->order_cap) {
        size_t cap = net->order_cap ? 2 * net->order_cap : 16;
        reg **grown = realloc(net->order, cap * sizeof *grown);
        if (grown) {
            net->order = grown;
            net->order_cap = cap;
        } else {
            net->order_stale = true;   /* rebuilt (or the answer refused) when next needed */
        }
    }
    if (!net->order_stale)
        net->order[net->order_n++] = r;
    if (r->c)
        conn_group_join(net->hearers, r->c);
    net_changed(net);
}

/* After r joined the registry: its network hears of it. Every registration, PEX-capable or
 * not, is advertised to the network's PEX links. */
static void announce_new(relay *s, reg *r, uint64_t pex, const addr_t *observed)
{
    wire_peer_info info;
    network *net = r->net;
    peer_info_of(r, &info);
    wire_write_peer_connected(&s->jw, &info);
    announce(s, net, r);
    if (!pex_registrant_up(net->pex, pex, r->peer_id, r->peer_id_len, observed, r->addrs,
                           r->n_addrs, pex_now(s)))
        log_warn("PEX: could not mirror %.*s", (int)r->peer_id_len, r->peer_id);
    note_pex_due(s, net);
}

/* A local registration as the cluster shares it. */
static void record_of(const reg *r, cluster_record *rec)
{
    memset(rec, 0, sizeof *rec);
    rec->peer_id = r->peer_id;
    rec->peer_id_len = r->peer_id_len;
    rec->network_id = r->net->id;
    rec->network_id_len = r->net->id_len;
    rec->protocol_version = r->protocol_version;
    rec->connected_at = r->connected_at;
    rec->n_addrs = r->n_addrs;
    memcpy(rec->addrs, r->addrs, r->n_addrs * sizeof r->addrs[0]);
}

static void handle_register(relay *s, conn *c, const wire_msg *m)
{
    addr_t advertised[ADDR_MAX_DIALABLE * 4];
    size_t n_adv = 0;
    wire_iter it = { 0 };
    addr_t a;
    reg *r, *existing;
    network *net;
    enum abuse_verdict verdict;
    const char *identity;

    if (reg_of(c)) {
        send_error(s, c, WIRE_ERR_BAD_MESSAGE, "connection is already registered");
        return;
    }
    if (m->peer_id.n == 0 || m->peer_id.n > ID_MAX || m->network_id.n > ID_MAX) {
        send_error(s, c, WIRE_ERR_BAD_MESSAGE, "peer_id must be 1..256 bytes and network_id at most 256");
        return;
    }
    /* Order of refusals as the reference: source rate, source cap, identity, capacity, id. */
    verdict = abuse_register(s->abuse, conn_source_key(c), loop_now_ms(s->lp));
    if (verdict != ABUSE_OK) {
        log_debug("refusing register from conn %llu: %s", (unsigned long long)conn_id(c),
                  abuse_reason(verdict));
        refuse_register(s, c, WIRE_ERR_RATE_LIMITED, abuse_reason(verdict));
        return;
    }
    /* Proof of possession (SPEC §3.2): over TLS with a client certificate, the only id a
     * connection may register is the one its certificate's key proves. */
    identity = conn_identity(c);
    if (identity != NULL &&
        (strlen(identity) != m->peer_id.n || memcmp(identity, m->peer_id.p, m->peer_id.n) != 0)) {
        log_debug("refusing register of %.*s from conn %llu: its certificate is %s",
                  (int)m->peer_id.n, m->peer_id.p, (unsigned long long)conn_id(c), identity);
        abuse_registration_ended(s->abuse, conn_source_key(c));
        refuse_register(s, c, WIRE_ERR_IDENTITY_MISMATCH,
                        "peer_id does not match the mTLS client certificate presented");
        return;
    }
    if (s->n_regs >= s->cfg->max_connections) {
        abuse_registration_ended(s->abuse, conn_source_key(c));
        refuse_register(s, c, WIRE_ERR_CAPACITY, "relay at capacity");
        return;
    }
    existing = find_reg(s, m->peer_id.p, m->peer_id.n);
    if (existing) {
        /* Registrations leave the registry the moment their connection starts closing, so
         * anything found here is live (here or, in a cluster, on another instance): refuse
         * rather than let the id be hijacked. */
        log_warn("refusing register of %.*s from conn %llu: id held by a live connection",
                 (int)m->peer_id.n, m->peer_id.p, (unsigned long long)conn_id(c));
        abuse_registration_ended(s->abuse, conn_source_key(c));
        refuse_register(s, c, WIRE_ERR_ID_IN_USE, "peer_id already registered by a live connection");
        return;
    }
    /* Only the first candidates matter: the resolved set is capped at ADDR_MAX_DIALABLE. */
    while (n_adv < sizeof advertised / sizeof advertised[0] &&
           wire_next_addr(&it, m->listen_addrs, &a))
        advertised[n_adv++] = a;

    r = new_reg(s, m->peer_id.p, m->peer_id.n, m->network_id.p, m->network_id.n);
    if (!r) {
        abuse_registration_ended(s->abuse, conn_source_key(c));
        refuse_register(s, c, WIRE_ERR_CAPACITY, "relay out of memory");
        return;
    }
    net = r->net;
    r->c = c;
    r->protocol_version = m->protocol_version;
    r->connected_at = r->last_seen = loop_wall_secs(s->lp);
    r->n_addrs = (uint8_t)addr_resolve_dialable(conn_source(c), advertised, n_adv, r->addrs);

    link_reg(s, r);
    s->n_regs++;
    conn_set_registration(c, r);
    if (s->cl) {
        cluster_record rec;
        record_of(r, &rec);
        r->announced = cluster_register(s->cl, &rec, r);
        if (!r->announced)
            log_warn("cluster: out of memory announcing %.*s: it stays local", (int)r->peer_id_len,
                     r->peer_id);
    }

    if (LOG_ENABLED(LOG_INFO)) {
        char text[ADDR_STRLEN];
        addr_format(conn_source(c), text);
        log_info("registered %.*s on %.*s from %s (%zu connected)", (int)r->peer_id_len, r->peer_id,
                 (int)net->id_len, net->id, text, s->n_regs);
    }
    wire_write_register_ack(&s->jw, true, "registered", s->n_regs + s->n_remote);
    send_writer(s, c);
    announce_new(s, r, pex_id(c), conn_source(c));
}

/* Takes r out of the id table and its network's list. */
static void unlink_reg(relay *s, reg *r)
{
    network *net = r->net;
    reg **pp = &s->ids[r->hash & s->table_mask];
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
    net->local -= r->c != NULL;
    net->order_stale = true;
    if (r->c)
        conn_group_leave(r->c);
    net_changed(net);
}

/* After r left the registry: its network hears of it, and r is freed. */
static void announce_gone(relay *s, reg *r, uint64_t pex)
{
    network *net = r->net;
    pex_registrant_down(net->pex, pex);
    note_pex_due(s, net);
    wire_write_peer_disconnected(&s->jw, reg_id(r));
    announce(s, net, NULL);
    drop_network_if_empty(s, net);
    free_reg(r);
}

static void on_close(void *ctx, conn *c)
{
    relay *s = ctx;
    reg *r = conn_registration(c);
    if (!r)
        return;
    conn_set_registration(c, NULL);
    unlink_reg(s, r);
    s->n_regs--;
    if (r->announced)
        cluster_unregister(s->cl, r->announced);
    abuse_registration_ended(s->abuse, conn_source_key(c));
    log_info("deregistered %.*s (%zu connected)", (int)r->peer_id_len, r->peer_id, s->n_regs);
    announce_gone(s, r, pex_id(c));
}

/* peers lists are sorted by peer_id in byte order, as the reference's registry (a BTreeMap)
 * returns them. */
static int compare_ids(const void *x, const void *y)
{
    const reg *a = *(reg *const *)x, *b = *(reg *const *)y;
    size_t n = a->peer_id_len < b->peer_id_len ? a->peer_id_len : b->peer_id_len;
    int c = memcmp(a->peer_id, b->peer_id, n);
    if (c != 0)
        return c;
    return a->peer_id_len < b->peer_id_len ? -1 : a->peer_id_len > b->peer_id_len;
}

static void on_silence(void *ctx, conn *c, uint64_t silent_secs, bool idle_timeout)
{
    relay *s = ctx;
    reg *r = reg_of(c);
    if (idle_timeout || !r) {
        log_info("conn %llu: idle for %llus, closing", (unsigned long long)conn_id(c),
                 (unsigned long long)silent_secs);
        conn_close(c, WS_CLOSE_GOING_AWAY, "idle timeout");
        return;
    }
    s->abuse->counters.prunes++;
    log_info("liveness sweep: pruning %.*s, silent for %llus", (int)r->peer_id_len, r->peer_id,
             (unsigned long long)silent_secs);
    conn_close(c, WS_CLOSE_GOING_AWAY, "liveness deadline passed");
}

/* Brings r's cached peers entry up to date; false when out of memory. */
static bool refresh_entry(relay *s, reg *r)
{
    wire_peer_info info;
    char *text;
    if (r->entry && r->entry_seen == r->last_seen)
        return true;
    peer_info_of(r, &info);
    wire_write_peers_item(&s->entry_jw, &info, true);
    text = s->entry_jw.failed ? NULL : realloc(r->entry, s->entry_jw.len);
    if (text) {
        memcpy(text, s->entry_jw.p, s->entry_jw.len);
        r->entry = text;
        r->entry_len = (uint32_t)s->entry_jw.len;
        r->entry_seen = r->last_seen;
    }
    jw_clear(&s->entry_jw);
    return text != NULL;
}

/* Puts net->order in peer_id order: a storm's joiners are sorted among themselves and merged
 * into the members sorted before; after a departure the whole list is sorted again. False when
 * out of memory. */
static bool order_members(network *net)
{
    size_t k;
    if (net->order_stale || net->order_n != net->count) {
        if (net->order_cap < net->count) {
            reg **grown = realloc(net->order, net->count * sizeof *grown);
            if (!grown)
                return false;
            net->order = grown;
            net->order_cap = net->count;
        }
        net->order_n = net->order_sorted = 0;
        for (reg *r = net->head; r; r = r->nnext)
            net->order[net->order_n++] = r;
        net->order_stale = false;
    }
    k = net->order_n - net->order_sorted;
    if (k == 0)
        return true;
    qsort(net->order + net->order_sorted, k, sizeof *net->order, compare_ids);
    if (net->order_sorted > 0) {
        /* merged from the back, the new ones copied out of the way first */
        reg **fresh = malloc(k * sizeof *fresh);
        size_t i = net->order_sorted, j = k, out = net->order_n;
        if (!fresh)
            return false;
        memcpy(fresh, net->order + net->order_sorted, k * sizeof *fresh);
        while (j > 0) {
            if (i > 0 && compare_ids(&net->order[i - 1], &fresh[j - 1]) > 0)
                net->order[--out] = net->order[--i];
            else
                net->order[--out] = fresh[--j];
        }
        free(fresh);
    }
    net->order_sorted = net->order_n;
    return true;
}

/* The network's peers answer, sorted by id, written straight into its frame from the members'
 * cached entries (each encoded once, and again only when its last_seen moves): a reconnect storm
 * asks for the answer of a growing network once every pass. */
static frame *encode_peers(relay *s, network *net)
{
    static const char begin[] = WIRE_PEERS_HEAD, end[] = WIRE_PEERS_TAIL;
    reg **sorted;
    size_t n, len = sizeof begin - 1 + sizeof end - 1;
    char *at;
    frame *f;
    if (!order_members(net))
        return NULL;
    sorted = net->order;
    n = net->order_n;
    for (size_t i = 0; i < n; i++) {
        if (!refresh_entry(s, sorted[i]))
            return NULL;
        len += sorted[i]->entry_len + (i > 0);
    }
    f = frame_begin_text(len, &at);
    if (f) {
        memcpy(at, begin, sizeof begin - 1);
        at += sizeof begin - 1;
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                *at++ = ',';
            memcpy(at, sorted[i]->entry, sorted[i]->entry_len);
            at += sorted[i]->entry_len;
        }
        memcpy(at, end, sizeof end - 1);
        frame_end_text(f, len);
    }
    return f;
}

#define OUT_OF_MEMORY_ERROR "{\"type\":\"error\",\"code\":4,\"message\":\"relay out of memory\"}"

/* Fills the network's deferred answer with the network as it is now: one encoding however many
 * asked during the pass. */
static void fill_peers_due(relay *s, network *net)
{
    if (!net->peers)
        net->peers = encode_peers(s, net);
    if (net->peers) {
        frame_fill(net->peers_due, net->peers);
    } else {
        s->counters.errors[WIRE_ERR_CAPACITY]++;
        frame_fill_text(net->peers_due, OUT_OF_MEMORY_ERROR, sizeof OUT_OF_MEMORY_ERROR - 1);
    }
    frame_unref(net->peers_due);
    net->peers_due = NULL;
}

/* End of the pass's input (conn_handler before_flush): every deferred peers answer is filled. */
static void before_flush(void *ctx)
{
    relay *s = ctx;
    while (s->peers_due) {
        network *net = s->peers_due;
        s->peers_due = net->due_next;
        fill_peers_due(s, net);
    }
}

/* A peers answer is queued at once but written at the end of the pass (it then lists the
 * network as it is at that moment, which is after the request and before the answer leaves):
 * however many members ask during a pass, as all of them do when a relay restarts, the list is
 * encoded once and every asker's queue holds the same frame. Between passes the encoded answer
 * is kept until the network changes. */
/* The network a registered peer's get_peers asks about: its own unless it names another. */
static network *network_asked(relay *s, conn *c, const wire_msg *m)
{
    return m->network_id_null ? reg_of(c)->net : find_network(s, m->network_id.p, m->network_id.n, false);
}

static void handle_get_peers(relay *s, conn *c, const wire_msg *m)
{
    network *net = network_asked(s, c, m);
    if (!net || net->count == 0) {
        wire_write_peers_begin(&s->jw);
        wire_write_peers_end(&s->jw);
        send_writer(s, c);
        return;
    }
    /* the answer is one shared frame, but each asker's copy is written: weigh it by its entries */
    conn_pass_charge(c, net->count);
    if (net->peers && !net->peers_due) {
        conn_send(c, net->peers);
        return;
    }
    if (!net->peers_due) {
        net->peers_due = frame_deferred();
        if (!net->peers_due) {
            send_error(s, c, WIRE_ERR_CAPACITY, "relay out of memory");
            return;
        }
        net->due_next = s->peers_due;
        s->peers_due = net;
    }
    conn_send(c, net->peers_due);
}

/* Target lookup for forwards: the peer must be registered on the sender's network. */
static reg *target_in_network(relay *s, conn *c, wire_str id)
{
    reg *t = find_reg(s, id.p, id.n);
    return t && t->net == reg_of(c)->net ? t : NULL;
}

static void peer_not_found(relay *s, conn *c, wire_str id)
{
    char msg[ID_MAX + 64];
    int shown = id.n > ID_MAX ? ID_MAX : (int)id.n;
    snprintf(msg, sizeof msg, "peer %.*s not connected to this relay", shown, id.p);
    send_error(s, c, WIRE_ERR_PEER_NOT_FOUND, msg);
}

/* Sends what s->jw holds to a peer on another instance, then empties the writer. */
static void send_writer_remote(relay *s, const reg *t)
{
    if (!s->jw.failed) {
        cluster_batch_add(s->cl, t->remote, t->peer_id, t->peer_id_len);
        cluster_batch_send(s->cl, s->jw.p, s->jw.len);
    }
    jw_clear(&s->jw);
}

/* Sends what s->jw holds to t, wherever it is. */
static void send_writer_to(relay *s, const reg *t)
{
    if (t->remote)
        send_writer_remote(s, t);
    else
        send_writer(s, t->c);
}

static void handle_relay_message(relay *s, conn *c, const wire_msg *m)
{
    reg *t = target_in_network(s, c, m->to);
    if (!t) {
        peer_not_found(s, c, m->to);
        return;
    }
    if (t->remote) {
        wire_write_relay_message(&s->jw, reg_id(reg_of(c)), m->to, m->payload, m->seq);
        send_writer_remote(s, t);
        return;
    }
    json_writer w;
    /* A large payload still in the received block is sent from there (a gathered frame holding
     * the block), not copied; a small one is copied, which costs less than pinning a block. */
    frame *held = conn_input_block(c, m->payload.p, m->payload.n);
    size_t room = 96 + quoted_max(reg_of(c)->peer_id_len) + quoted_max(m->to.n);
    frame *f = begin_frame(room + (held ? 0 : m->payload.n), &w);
    if (!f)
        return;
    if (held) {
        size_t head;
        wire_write_relay_message_head(&w, reg_id(reg_of(c)), m->to);
        head = w.len;
        wire_write_relay_message_tail(&w, m->seq);
        if (w.failed) {
            frame_unref(f);
            f = NULL;
        } else {
            frame_end_gather(f, head, (const uint8_t *)m->payload.p, m->payload.n, held, w.len - head);
        }
    } else {
        wire_write_relay_message(&w, reg_id(reg_of(c)), m->to, m->payload, m->seq);
        f = end_frame(f, &w);
    }
    if (f) {
        conn_send(t->c, f);
        frame_unref(f);
    }
}

static void handle_broadcast(relay *s, conn *c, const wire_msg *m, const uint8_t *msg)
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
    frame *f = begin_frame(96 + quoted_max(reg_of(c)->peer_id_len) + m->payload.n, &w);
    if (!f)
        return;
    wire_write_broadcast(&w, reg_id(reg_of(c)), m->payload);
    f = end_frame(f, &w);
    if (f) {
        network *net = reg_of(c)->net;
        fan_out_frame(net, reg_of(c), mark, f);
        /* one envelope per instance holding targets, carrying this frame's text */
        if (s->cl && net->count > 0) {
            for (reg *r = net->head; r; r = r->nnext)
                if (r->remote && r->exclude_mark != mark)
                    cluster_batch_add(s->cl, r->remote, r->peer_id, r->peer_id_len);
            cluster_batch_send(s->cl, w.p, w.len);
        }
        frame_unref(f);
    }
}

static void handle_hole_punch_request(relay *s, conn *c, const wire_msg *m)
{
    reg *t = target_in_network(s, c, m->target_peer_id);
    if (!t) {
        peer_not_found(s, c, m->target_peer_id);
        return;
    }
    wire_write_hole_punch_coordinate(&s->jw, reg_id(reg_of(c)), &m->external_addr);
    send_writer_to(s, t);
}

static void handle_hole_punch_result(relay *s, conn *c, const wire_msg *m)
{
    reg *t = target_in_network(s, c, m->peer_id);
    if (!t) {
        peer_not_found(s, c, m->peer_id);
        return;
    }
    wire_write_hole_punch_result(&s->jw, m->peer_id, m->success);
    send_writer_to(s, t);
}

static void handle_get_turn_credentials(relay *s, conn *c)
{
    char username[TURN_MAX_USERNAME + 1], password[29];
    wire_str peer = reg_id(reg_of(c)), uris[2];
    int n;

    if (!s->turn_secret) {
        send_error(s, c, WIRE_ERR_BAD_MESSAGE, "turn is not enabled on this relay");
        return;
    }
    n = snprintf(username, sizeof username, "%llu:%.*s",
                 (unsigned long long)(loop_wall_secs(s->lp) + s->cfg->turn_credential_ttl_secs),
                 (int)peer.n, peer.p);
    if (n < 0 || (size_t)n >= sizeof username) {
        send_error(s, c, WIRE_ERR_BAD_MESSAGE, "peer id too long for a TURN username");
        return;
    }
    turn_rest_password(s->turn_secret, s->turn_secret_len, username, (size_t)n, password);
    for (int i = 0; i < 2; i++)
        uris[i] = (wire_str){ s->turn_uris[i], strlen(s->turn_uris[i]) };
    wire_write_turn_credentials(&s->jw, (wire_str){ username, (size_t)n },
                                (wire_str){ password, strlen(password) },
                                s->cfg->turn_credential_ttl_secs, uris, 2);
    send_writer(s, c);
}

bool relay_enable_turn(relay *r, const uint8_t *secret, size_t secret_len)
{
    char host[ADDR_STRLEN + 2];
    const addr_t *ip = &r->cfg->turn_public_ip;
    free(r->turn_secret);
    r->turn_secret = malloc(secret_len ? secret_len : 1);
    if (!r->turn_secret)
        return false;
    memcpy(r->turn_secret, secret, secret_len);
    r->turn_secret_len = secret_len;
    /* RFC 7065 URIs; an IPv6 host goes in brackets. */
    if (ip->family == 6) {
        host[0] = '[';
        addr_format_ip(ip, host + 1);
        strcat(host, "]");
    } else {
        addr_format_ip(ip, host);
    }
    snprintf(r->turn_uris[0], sizeof r->turn_uris[0], "turn:%s:%u?transport=udp", host,
             (unsigned)r->cfg->stun_listen.port);
    snprintf(r->turn_uris[1], sizeof r->turn_uris[1], "turn:%s:%u?transport=tcp", host,
             (unsigned)r->cfg->turn_tcp_listen.port);
    return true;
}

/* The dashboard's traffic counters (see relay_counters). */
static void count_inbound(relay *s, const wire_msg *m)
{
    switch (m->type) {
    case WT_RELAY_MESSAGE:
        s->counters.relay_messages++;
        s->counters.relay_message_bytes += m->payload_count;
        break;
    case WT_BROADCAST:
        s->counters.broadcasts++;
        s->counters.broadcast_bytes += m->payload_count;
        break;
    case WT_HOLE_PUNCH_REQUEST:
        s->counters.hole_punch_requests++;
        break;
    case WT_HOLE_PUNCH_RESULT:
        if (m->success)
            s->counters.hole_punch_successes++;
        else
            s->counters.hole_punch_failures++;
        break;
    default:
        break;
    }
}

/* About how many frames handling m queues (a peers answer: how many entries it writes), for
 * the pass's work budget: what grows with a network's size is weighed, the rest counts one. */
static size_t work_of(relay *s, conn *c, const wire_msg *m)
{
    network *net;
    switch (m->type) {
    case WT_REGISTER:
        net = reg_of(c) ? NULL : find_network(s, m->network_id.p, m->network_id.n, false);
        break;
    case WT_GET_PEERS:
        if (!reg_of(c))
            return 1;
        net = network_asked(s, c, m);
        break;
    case WT_BROADCAST:
        net = reg_of(c) ? reg_of(c)->net : NULL;
        break;
    default:
        return 1;
    }
    return net ? net->count + 1 : 1;
}

static enum conn_msg_verdict on_message(void *ctx, conn *c, uint8_t *msg, size_t len)
{
    relay *s = ctx;
    wire_msg m;
    char err[160];

    if (reg_of(c) && reg_of(c)->last_seen != loop_wall_secs(s->lp)) {
        reg_of(c)->last_seen = loop_wall_secs(s->lp);
        net_changed(reg_of(c)->net);
        pex_registrant_seen(reg_of(c)->net->pex, pex_id(c), pex_now(s));
    }
    if (!wire_decode((const char *)msg, len, &m, s->scratch, err, sizeof err)) {
        log_debug("conn %llu: bad message: %s", (unsigned long long)conn_id(c), err);
        send_error(s, c, WIRE_ERR_BAD_MESSAGE, "invalid relay JSON");
        return CONN_MSG_DONE;
    }
    if (!conn_pass_has_room(c, work_of(s, c, &m)))
        return CONN_MSG_LATER;
    count_inbound(s, &m);
    if (!reg_of(c) && m.type != WT_REGISTER) {
        send_error(s, c, WIRE_ERR_NOT_REGISTERED,
                   m.type == WT_PEX ? "register before sending PEX (RLY-001)"
                                    : "register before sending other messages (RLY-001)");
        return CONN_MSG_DONE;
    }
    switch (m.type) {
    case WT_REGISTER: handle_register(s, c, &m); break;
    case WT_UNREGISTER: conn_close(c, WS_CLOSE_NORMAL, "unregistered"); break;
    case WT_RELAY_MESSAGE: handle_relay_message(s, c, &m); break;
    case WT_BROADCAST: handle_broadcast(s, c, &m, msg); break;
    case WT_GET_PEERS: handle_get_peers(s, c, &m); break;
    case WT_PING: {
        frame *f;
        wire_write_pong(&s->jw, m.timestamp);
        f = take_writer(s);
        if (f) {
            conn_send_keepalive(c, f);
            frame_unref(f);
        }
        return CONN_MSG_KEEPALIVE;
    }
    case WT_PONG:
        return CONN_MSG_KEEPALIVE;
    case WT_HOLE_PUNCH_REQUEST: handle_hole_punch_request(s, c, &m); break;
    case WT_HOLE_PUNCH_RESULT: handle_hole_punch_result(s, c, &m); break;
    case WT_GET_TURN_CREDENTIALS: handle_get_turn_credentials(s, c); break;
    case WT_GET_DHT_RECORDS:
        send_error(s, c, WIRE_ERR_BAD_MESSAGE, "get_dht_records is relay-to-node only (RLY-009)");
        break;
    case WT_DHT_RECORDS:
        if (s->dht_sink)
            s->dht_sink(s->dht_ctx, c, &m, s->scratch + (m.records.p - (const char *)msg));
        break;
    case WT_PEX:
        if (pex_on_frame(reg_of(c)->net->pex, pex_id(c), (const char *)msg, len, pex_now(s)) ==
            PEX_NOT_REGISTERED)
            send_error(s, c, WIRE_ERR_NOT_REGISTERED, "register before sending PEX (RLY-001)");
        note_pex_due(s, reg_of(c)->net);
        break;
    default:
        /* Server-to-client messages (acks, peer lists, errors) carry nothing for the relay
         * to act on. */
        break;
    }
    return CONN_MSG_DONE;
}

conn_handler relay_conn_handler(relay *r)
{
    conn_handler h = { on_message, on_close, on_silence, before_flush, r };
    return h;
}

/* ---- read-only views ---- */

void relay_each_peer(const relay *s, void (*fn)(void *ctx, const relay_peer *p), void *ctx)
{
    for (const network *net = s->all_nets; net; net = net->all_next)
        for (const reg *r = net->head; r; r = r->nnext) {
            if (!r->c)
                continue;   /* on another instance */
            relay_peer p = { r->peer_id, r->peer_id_len, net->id, net->id_len, r->addrs,
                             r->n_addrs, r->protocol_version, r->connected_at, r->c };
            fn(ctx, &p);
        }
}

size_t relay_network_count(const relay *s)
{
    size_t n = 0;
    for (const network *net = s->all_nets; net; net = net->all_next)
        n += net->local > 0;
    return n;
}

void relay_each_network(const relay *s,
                        void (*fn)(void *ctx, const char *id, size_t id_len, size_t peers), void *ctx)
{
    for (const network *net = s->all_nets; net; net = net->all_next)
        if (net->local > 0)
            fn(ctx, net->id, net->id_len, net->local);
}

void relay_get_counters(const relay *s, relay_counters *out)
{
    *out = s->counters;
    for (const network *net = s->all_nets; net; net = net->all_next) {
        out->pex_snapshots += pex_snapshots_sent(net->pex);
        out->pex_deltas += pex_deltas_sent(net->pex);
    }
}

void relay_set_dht_sink(relay *s, relay_dht_fn fn, void *ctx)
{
    s->dht_sink = fn;
    s->dht_ctx = ctx;
}

/* ---- the cluster's hooks (cluster.h) ---- */

static bool remote_up(void *ctx, const cluster_record *rec, cluster_ref *ref)
{
    relay *s = ctx;
    reg *r;
    if (rec->peer_id_len > ID_MAX || rec->network_id_len > ID_MAX ||
        find_reg(s, rec->peer_id, rec->peer_id_len))
        return false;
    r = new_reg(s, rec->peer_id, rec->peer_id_len, rec->network_id, rec->network_id_len);
    if (!r)
        return false;
    r->remote = ref;
    r->protocol_version = rec->protocol_version;
    r->connected_at = r->last_seen = rec->connected_at;
    r->n_addrs = (uint8_t)rec->n_addrs;
    memcpy(r->addrs, rec->addrs, rec->n_addrs * sizeof r->addrs[0]);
    ref->user = r;
    link_reg(s, r);
    s->n_remote++;
    log_debug("cluster: %.*s joined on another instance (%zu in the cluster)", (int)r->peer_id_len,
              r->peer_id, s->n_regs + s->n_remote);
    /* PEX names a peer elsewhere by its entry (local ones by their connection) */
    announce_new(s, r, (uint64_t)(uintptr_t)r, r->n_addrs ? &r->addrs[0] : &(addr_t){ 0 });
    return true;
}

static void remote_down(void *ctx, cluster_ref *ref)
{
    relay *s = ctx;
    reg *r = ref->user;
    unlink_reg(s, r);
    s->n_remote--;
    announce_gone(s, r, (uint64_t)(uintptr_t)r);
}

static cluster_ref *remote_find(void *ctx, const char *id, size_t n)
{
    reg *r = find_reg(ctx, id, n);
    return r ? r->remote : NULL;
}

static cluster_local *local_of(void *ctx, const char *id, size_t n)
{
    reg *r = find_reg(ctx, id, n);
    return r ? r->announced : NULL;
}

static void evict(void *ctx, void *user)
{
    relay *s = ctx;
    reg *r = user;
    conn *c = r->c;
    send_error(s, c, WIRE_ERR_ID_IN_USE, "peer_id registered earlier on another relay instance");
    conn_close(c, WS_CLOSE_POLICY, "peer_id registered earlier on another relay instance");
}

static void deliver(void *ctx, const cluster_target *targets, size_t n, const char *text, size_t len)
{
    relay *s = ctx;
    frame *f = NULL;
    for (size_t i = 0; i < n; i++) {
        reg *r = find_reg(s, targets[i].id, targets[i].n);
        if (!r || !r->c)
            continue;   /* left meanwhile */
        if (!f && !(f = frame_text(text, len)))
            return;
        conn_send(r->c, f);
    }
    if (f)
        frame_unref(f);
}

cluster_hooks relay_cluster_hooks(relay *r)
{
    cluster_hooks h = { r, remote_up, remote_down, remote_find, local_of, evict, deliver };
    return h;
}

void relay_set_cluster(relay *r, cluster *cl) { r->cl = cl; }

bool relay_cluster_stats(const relay *r, cluster_stats *out)
{
    if (!r->cl)
        return false;
    cluster_get_stats(r->cl, out);
    return true;
}
