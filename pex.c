/* Peer Exchange engine for the relay's introducer role (see pex.h for the contract).
 *
 * Registrants live in a slot table. A slot is LIVE (advertisable), STALE (registered but silent
 * for longer than PEX_MAX_ENTRY_AGE), GONE (unregistered, but some link was told it and still
 * owes a `dropped`) or FREE. Each link keeps two bitmaps indexed by slot: `told` (this link was
 * told the entry) and `outdated` (told, but its addresses or flags changed since). That is the
 * per-link told-state with its fingerprint, kept as bits: an entry is re-advertised only when
 * its content really changed, and the candidates of a delta fall out of word operations:
 *     added   = live & (~told | outdated)     dropped = told & ~live
 * so a link with nothing pending costs a pass over a few words, whatever the registry size.
 * A GONE slot counts the links still told it and is reused once none is; a registration of the
 * same peer_id adopts that told-state, so a quick reconnect is no churn on anyone's link.
 *
 * Snapshots and deltas pick the freshest entries with a bounded heap (topk.h, no full sort), and are
 * also bounded by encoded bytes: whatever does not fit PEX_MAX_FRAME waits for the next delta.
 * Links that are up wait in a min-heap keyed by their next allowed send; one that was due with
 * nothing to say waits on an idle list until the registry changes, so pex_next_due never names
 * a moment with nothing to do. */
#include "pex.h"

#include "hash.h"
#include "json.h"
#include "topk.h"

#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX
#define SLOT_BLOCK 64                 /* slots grow in whole bitmap words */
/* last_seen is emitted in whole seconds of age; older than PEX_MAX_ENTRY_AGE is never sent. */
#define STALE_AFTER_MS ((uint64_t)(PEX_MAX_ENTRY_AGE + 1) * 1000)
#define WRITER_MAX ((size_t)2 * PEX_MAX_FRAME) /* we stop adding entries at PEX_MAX_FRAME */
#define WRITER_KEEP ((size_t)64 * 1024)        /* a writer grown past this is released */

enum slot_state { SLOT_FREE = 0, SLOT_LIVE, SLOT_STALE, SLOT_GONE };
enum recv_phase { AWAIT_HANDSHAKE = 0, AWAIT_SNAPSHOT, STREAMING };
enum msg_type { MSG_BAD = -1, MSG_HANDSHAKE = 1, MSG_SNAPSHOT, MSG_DELTA, MSG_ERROR };

typedef struct pex_link pex_link;

typedef struct {
    uint64_t id;             /* the relay's connection id (LIVE/STALE) */
    uint64_t touched_ms;     /* last inbound activity, monotonic */
    uint64_t pid_hash;
    char *peer_id;
    uint32_t peer_id_len;
    uint32_t refs;           /* links whose `told` bit is set for this slot */
    uint32_t prev, next;     /* the list of its state (MRU, stale, gone, free) */
    uint32_t id_next, pid_next;
    pex_link *link;          /* this connection's own PEX link, if it sent pex_handshake */
    uint8_t state;
    uint8_t n_addrs;
    bool relay_only;
    addr_t addrs[ADDR_MAX_DIALABLE];
} pex_slot;

struct pex_link {
    uint64_t id;
    uint32_t slot;                     /* the connection's own registrant: never advertised here */
    uint8_t phase, strikes;
    bool muted, up, idle, has_backoff;
    uint32_t self_interval;            /* ours: 60 s, doubled on a plausible pex_error{3} */
    uint32_t remote_interval;          /* the node's declared interval, clamped */
    uint64_t last_arrival_ms, last_send_ms, jitter_ms, due_ms, last_backoff_ms;
    size_t heap_idx;                   /* SIZE_MAX when not in the due heap */
    uint64_t *told, *outdated;         /* one allocation; nwords words each */
    size_t nwords;
    pex_link *prev, *next;             /* every link */
    pex_link *idle_prev, *idle_next;   /* due, nothing to send until the registry changes */
};

typedef struct {
    uint32_t head, tail;
} slot_list;

struct pex_engine {
    char *net_json;                    /* the network id, quoted and escaped once */
    size_t net_json_len;
    char *network_id;
    size_t network_id_len;
    pex_send_fn send;
    void *send_ctx;
    uint64_t rng, hash_key[2];
    pex_slot *slots;
    uint32_t cap, limit;
    uint64_t *live;                    /* cap / 64 words: LIVE slots */
    uint32_t *id_buckets, *pid_buckets;
    uint32_t bucket_mask;
    slot_list mru, stale, gone;        /* mru: freshest at head; gone: oldest at head */
    uint32_t free_head;
    size_t n_registrants, n_links;
    pex_link *links;
    pex_link **heap;
    size_t heap_len, heap_cap;
    pex_link *idle_head;
    bool changed;                      /* the advertisable set changed since the last tick */
    json_writer w, aux;
    uint64_t snapshots_sent, deltas_sent;
};

/* ---------------------------------------------------------------- small helpers */

/* splitmix64: tiny, seedable, and good enough to decorrelate send times. */
static uint64_t rng_next(pex_engine *e)
{
    e->rng += 0x9e3779b97f4a7c15ULL;
    return hash_mix64(e->rng);
}

/* Peer ids come from clients, so their hash is keyed per engine. */
static uint64_t bytes_hash(const pex_engine *e, const char *p, size_t n)
{
    return hash_siphash13(e->hash_key, p, n);
}

static uint32_t clamp_interval(uint64_t secs)
{
    return secs < PEX_MIN_INTERVAL ? PEX_MIN_INTERVAL
         : secs > PEX_MAX_INTERVAL ? PEX_MAX_INTERVAL : (uint32_t)secs;
}

static uint64_t effective_ms(const pex_link *l)
{
    uint32_t s = l->self_interval > l->remote_interval ? l->self_interval : l->remote_interval;
    return (uint64_t)s * 1000;
}

/* Minimum spacing of data messages from a sender that declared `interval` (SPEC §6.4). */
static uint64_t arrival_floor_ms(uint32_t interval)
{
    return (uint64_t)(clamp_interval(interval) - PEX_ARRIVAL_GRACE) * 1000;
}

static uint64_t age_s(const pex_slot *x, uint64_t now_ms)
{
    return now_ms > x->touched_ms ? (now_ms - x->touched_ms) / 1000 : 0;
}

static bool addr_equal(const addr_t *a, const addr_t *b)
{
    return a->family == b->family && a->port == b->port && a->scope_id == b->scope_id &&
           memcmp(a->ip, b->ip, a->family == 4 ? 4 : 16) == 0;
}

static bool same_content(const pex_slot *x, const addr_t *addrs, uint8_t n, bool relay_only)
{
    if (x->n_addrs != n || x->relay_only != relay_only)
        return false;
    for (uint8_t i = 0; i < n; i++)
        if (!addr_equal(&x->addrs[i], &addrs[i]))
            return false;
    return true;
}

static bool same_peer(const pex_slot *x, uint64_t hash, const char *peer_id, size_t len)
{
    return x->pid_hash == hash && x->peer_id_len == len && memcmp(x->peer_id, peer_id, len) == 0;
}

static bool bit_get(const uint64_t *bits, size_t nwords, uint32_t s)
{
    return s / 64 < nwords && (bits[s / 64] >> (s % 64)) & 1;
}

/* ---------------------------------------------------------------- slot lists and hashes */

static slot_list *state_list(pex_engine *e, uint8_t state)
{
    return state == SLOT_LIVE ? &e->mru : state == SLOT_STALE ? &e->stale : &e->gone;
}

static void list_unlink(pex_engine *e, slot_list *l, uint32_t s)
{
    pex_slot *x = &e->slots[s];
    if (x->prev != NIL)
        e->slots[x->prev].next = x->next;
    else
        l->head = x->next;
    if (x->next != NIL)
        e->slots[x->next].prev = x->prev;
    else
        l->tail = x->prev;
    x->prev = x->next = NIL;
}

static void list_push_front(pex_engine *e, slot_list *l, uint32_t s)
{
    pex_slot *x = &e->slots[s];
    x->prev = NIL;
    x->next = l->head;
    if (l->head != NIL)
        e->slots[l->head].prev = s;
    else
        l->tail = s;
    l->head = s;
}

static void list_push_back(pex_engine *e, slot_list *l, uint32_t s)
{
    pex_slot *x = &e->slots[s];
    x->next = NIL;
    x->prev = l->tail;
    if (l->tail != NIL)
        e->slots[l->tail].next = s;
    else
        l->head = s;
    l->tail = s;
}

static uint32_t id_bucket(const pex_engine *e, uint64_t id)
{
    return (uint32_t)(hash_mix64(id ^ e->hash_key[0]) & e->bucket_mask);
}

static uint32_t find_id(const pex_engine *e, uint64_t id)
{
    uint32_t s = e->id_buckets[id_bucket(e, id)];
    while (s != NIL && e->slots[s].id != id)
        s = e->slots[s].id_next;
    return s;
}

static void id_hash_insert(pex_engine *e, uint32_t s)
{
    uint32_t *b = &e->id_buckets[id_bucket(e, e->slots[s].id)];
    e->slots[s].id_next = *b;
    *b = s;
}

static void pid_hash_insert(pex_engine *e, uint32_t s)
{
    uint32_t *b = &e->pid_buckets[e->slots[s].pid_hash & e->bucket_mask];
    e->slots[s].pid_next = *b;
    *b = s;
}

static void id_hash_remove(pex_engine *e, uint32_t s)
{
    uint32_t *p = &e->id_buckets[id_bucket(e, e->slots[s].id)];
    while (*p != s)
        p = &e->slots[*p].id_next;
    *p = e->slots[s].id_next;
}

static void pid_hash_remove(pex_engine *e, uint32_t s)
{
    uint32_t *p = &e->pid_buckets[e->slots[s].pid_hash & e->bucket_mask];
    while (*p != s)
        p = &e->slots[*p].pid_next;
    *p = e->slots[s].pid_next;
}

static void live_set(pex_engine *e, uint32_t s, bool on)
{
    uint64_t m = (uint64_t)1 << (s % 64);
    if (on)
        e->live[s / 64] |= m;
    else
        e->live[s / 64] &= ~m;
}

/* Doubles the slot table (up to the limit) and rehashes. False leaves everything as it was. */
static bool slots_grow(pex_engine *e)
{
    if (e->cap >= e->limit)
        return false;
    uint32_t ncap = e->cap ? e->cap * 2 : SLOT_BLOCK;
    if (ncap > e->limit)
        ncap = e->limit;
    pex_slot *ns = realloc(e->slots, ncap * sizeof *ns);
    if (!ns)
        return false;
    e->slots = ns;
    uint64_t *nl = realloc(e->live, ncap / 64 * sizeof *nl);
    if (!nl)
        return false;
    e->live = nl;
    memset(nl + e->cap / 64, 0, (ncap - e->cap) / 64 * sizeof *nl);
    uint32_t nb = 1;
    while (nb < ncap)
        nb <<= 1;
    uint32_t *ib = malloc(nb * sizeof *ib), *pb = malloc(nb * sizeof *pb);
    if (!ib || !pb) {
        free(ib);
        free(pb);
        return false;
    }
    memset(ib, 0xff, nb * sizeof *ib);
    memset(pb, 0xff, nb * sizeof *pb);
    free(e->id_buckets);
    free(e->pid_buckets);
    e->id_buckets = ib;
    e->pid_buckets = pb;
    e->bucket_mask = nb - 1;
    for (uint32_t s = ncap; s-- > e->cap;) {
        memset(&ns[s], 0, sizeof ns[s]);
        ns[s].prev = NIL;
        ns[s].next = e->free_head;
        e->free_head = s;
    }
    uint32_t old = e->cap;
    e->cap = ncap;
    for (uint32_t s = 0; s < old; s++) {
        if (ns[s].state == SLOT_FREE)
            continue;
        pid_hash_insert(e, s);
        if (ns[s].state != SLOT_GONE)
            id_hash_insert(e, s);
    }
    return true;
}

static void slot_release(pex_engine *e, uint32_t s)
{
    pex_slot *x = &e->slots[s];
    pid_hash_remove(e, s);
    free(x->peer_id);
    memset(x, 0, sizeof *x);
    x->prev = NIL;
    x->next = e->free_head;
    e->free_head = s;
}

/* One fewer link holds the slot as told; a departed entry nobody holds any more is freed. */
static void slot_unref(pex_engine *e, uint32_t s)
{
    pex_slot *x = &e->slots[s];
    if (--x->refs == 0 && x->state == SLOT_GONE) {
        list_unlink(e, &e->gone, s);
        slot_release(e, s);
    }
}

/* ---------------------------------------------------------------- per-link told-state */

/* Sizes a link's bitmaps to the whole slot table, so later tells cannot fail. */
static bool link_reserve(pex_engine *e, pex_link *l)
{
    size_t n = e->cap / 64;
    if (l->nwords == n)
        return true;
    uint64_t *b = calloc(2 * n, sizeof *b);
    if (!b)
        return false;
    if (l->nwords) {
        memcpy(b, l->told, l->nwords * sizeof *b);
        memcpy(b + n, l->outdated, l->nwords * sizeof *b);
        free(l->told);
    }
    l->told = b;
    l->outdated = b + n;
    l->nwords = n;
    return true;
}

/* Records that l now holds the slot's current content (link_reserve done). */
static void tell(pex_engine *e, pex_link *l, uint32_t s)
{
    uint64_t m = (uint64_t)1 << (s % 64);
    if (!(l->told[s / 64] & m)) {
        l->told[s / 64] |= m;
        e->slots[s].refs++;
    }
    l->outdated[s / 64] &= ~m;
}

static void untell(pex_engine *e, pex_link *l, uint32_t s)
{
    if (!bit_get(l->told, l->nwords, s))
        return;
    uint64_t m = (uint64_t)1 << (s % 64);
    l->told[s / 64] &= ~m;
    l->outdated[s / 64] &= ~m;
    slot_unref(e, s);
}

/* Makes room for one more registrant: a free slot, a bigger table, or, at the limit, the oldest
 * departed entry, whose pending `dropped` is given up (dropped is advisory). */
static uint32_t slot_alloc(pex_engine *e)
{
    if (e->free_head == NIL && !slots_grow(e) && e->gone.head != NIL) {
        uint32_t s = e->gone.head;
        for (pex_link *l = e->links; l && e->slots[s].state == SLOT_GONE; l = l->next)
            untell(e, l, s);
    }
    uint32_t s = e->free_head;
    if (s != NIL) {
        e->free_head = e->slots[s].next;
        e->slots[s].next = NIL;
    }
    return s;
}

/* ---------------------------------------------------------------- scheduling */

static bool due_before(const pex_link *a, const pex_link *b)
{
    return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->id < b->id);
}

static void heap_place(pex_engine *e, size_t i, pex_link *l)
{
    e->heap[i] = l;
    l->heap_idx = i;
}

static void heap_sift_up(pex_engine *e, size_t i)
{
    pex_link *l = e->heap[i];
    while (i > 0 && due_before(l, e->heap[(i - 1) / 2])) {
        heap_place(e, i, e->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_place(e, i, l);
}

static void heap_sift_down(pex_engine *e, size_t i)
{
    pex_link *l = e->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= e->heap_len)
            break;
        if (c + 1 < e->heap_len && due_before(e->heap[c + 1], e->heap[c]))
            c++;
        if (!due_before(e->heap[c], l))
            break;
        heap_place(e, i, e->heap[c]);
        i = c;
    }
    heap_place(e, i, l);
}

/* The heap has room for every link (reserved when the link was made). */
static void heap_push(pex_engine *e, pex_link *l)
{
    heap_place(e, e->heap_len++, l);
    heap_sift_up(e, e->heap_len - 1);
}

static void heap_remove(pex_engine *e, pex_link *l)
{
    size_t i = l->heap_idx;
    pex_link *last = e->heap[--e->heap_len];
    l->heap_idx = SIZE_MAX;
    if (i < e->heap_len) {
        heap_place(e, i, last);
        heap_sift_up(e, i);
        heap_sift_down(e, last->heap_idx);
    }
}

static void idle_push(pex_engine *e, pex_link *l)
{
    l->idle = true;
    l->idle_prev = NULL;
    l->idle_next = e->idle_head;
    if (e->idle_head)
        e->idle_head->idle_prev = l;
    e->idle_head = l;
}

static void idle_unlink(pex_engine *e, pex_link *l)
{
    if (l->idle_prev)
        l->idle_prev->idle_next = l->idle_next;
    else
        e->idle_head = l->idle_next;
    if (l->idle_next)
        l->idle_next->idle_prev = l->idle_prev;
    l->idle = false;
    l->idle_prev = l->idle_next = NULL;
}

/* Files a link in the heap under its next allowed send. That time is always ahead: every caller
 * has just sent, or (backing off) is within the arrival floor of its last send, which is shorter
 * than any interval. */
static void schedule(pex_engine *e, pex_link *l)
{
    if (l->heap_idx != SIZE_MAX)
        heap_remove(e, l);
    l->due_ms = l->last_send_ms + effective_ms(l) + l->jitter_ms;
    heap_push(e, l);
}

/* A data message just went out: the next may follow after the effective interval plus a fresh
 * 0-10% jitter (additive only, SPEC §6.3). */
static void sent_data(pex_engine *e, pex_link *l, uint64_t now_ms)
{
    l->last_send_ms = now_ms;
    uint64_t span = effective_ms(l) / 10;
    l->jitter_ms = rng_next(e) % (span + 1);
    schedule(e, l);
}

/* Entries silent for longer than PEX_MAX_ENTRY_AGE leave the advertisable set. */
static void expire_stale(pex_engine *e, uint64_t now_ms)
{
    uint32_t s;
    while ((s = e->mru.tail) != NIL && now_ms >= e->slots[s].touched_ms &&
           now_ms - e->slots[s].touched_ms >= STALE_AFTER_MS) {
        list_unlink(e, &e->mru, s);
        e->slots[s].state = SLOT_STALE;
        list_push_front(e, &e->stale, s);
        live_set(e, s, false);
        e->changed = true;
    }
}

/* ---------------------------------------------------------------- output */

static void writer_reset(json_writer *w)
{
    if (w->failed || w->cap > WRITER_KEEP) {
        jw_free(w);
        jw_init(w, 0, WRITER_MAX);
    } else {
        jw_clear(w);
    }
}

/* Hands what e->w holds to the send callback; false when it failed to build. */
static bool emit(pex_engine *e, uint64_t id)
{
    bool ok = !e->w.failed;
    if (ok)
        e->send(e->send_ctx, id, e->w.p, e->w.len);
    writer_reset(&e->w);
    return ok;
}

static const char *error_text(int code)
{
    switch (code) {
    case PEX_ERR_BAD_MESSAGE: return "bad message";
    case PEX_ERR_UNSUPPORTED_VERSION: return "unsupported version";
    case PEX_ERR_RATE: return "rate violation";
    case PEX_ERR_OVERSIZED: return "oversized";
    case PEX_ERR_NETWORK_MISMATCH: return "network mismatch";
    default: return "protocol violation";
    }
}

static void send_error(pex_engine *e, uint64_t id, int code)
{
    const char *text = error_text(code);
    jw_lit(&e->w, "{\"type\":\"pex_error\",\"code\":");
    jw_u64(&e->w, (uint64_t)code);
    jw_lit(&e->w, ",\"message\":");
    jw_string(&e->w, text, strlen(text));
    jw_lit(&e->w, "}");
    emit(e, id);
}

/* One peer entry in dig-pex field order. last_seen is the wall clock minus the entry's age, so
 * it always agrees with the staleness rule. */
static void write_entry(pex_engine *e, json_writer *w, const pex_slot *x, pex_time now)
{
    jw_lit(w, "{\"peer_id\":");
    jw_string(w, x->peer_id, x->peer_id_len);
    jw_lit(w, ",\"addresses\":[");
    for (uint8_t i = 0; i < x->n_addrs; i++) {
        char host[ADDR_STRLEN];
        size_t n = addr_format_ip(&x->addrs[i], host);
        jw_lit(w, i ? ",{\"host\":" : "{\"host\":");
        jw_string(w, host, n);
        jw_lit(w, ",\"port\":");
        jw_u64(w, x->addrs[i].port);
        jw_lit(w, ",\"kind\":\"reflexive\"}");
    }
    jw_lit(w, "],\"network_id\":");
    jw_raw(w, e->net_json, e->net_json_len);
    jw_lit(w, ",\"last_seen\":");
    uint64_t age = age_s(x, now.mono_ms);
    jw_u64(w, now.wall_s > age ? now.wall_s - age : 0);
    jw_lit(w, x->relay_only ? ",\"via\":\"introducer\",\"flags\":[\"relay-only\"]}"
                            : ",\"via\":\"introducer\",\"flags\":[]}");
}

/* Appends entries while the text stays within budget bytes; returns how many went in. */
static size_t write_entries(pex_engine *e, json_writer *w, const uint32_t *sel, size_t n,
                            size_t budget, pex_time now)
{
    size_t i;
    for (i = 0; i < n && !w->failed; i++) {
        size_t mark = w->len;
        if (i)
            jw_lit(w, ",");
        write_entry(e, w, &e->slots[sel[i]], now);
        if (w->len > budget) {
            w->len = mark;
            break;
        }
    }
    return i;
}

/* ---------------------------------------------------------------- choosing what to tell */

/* How the offered slots rank (topk.h keeps the k best): entries freshest first, then by peer
 * id; dropped ids by peer id alone. */
typedef struct {
    const pex_engine *e;
    uint64_t now_ms;
    bool by_freshness;
} ranking;

static bool ranks_before(const void *ctx, uint32_t a, uint32_t b)
{
    const ranking *r = ctx;
    const pex_slot *x = &r->e->slots[a], *y = &r->e->slots[b];
    if (r->by_freshness) {
        uint64_t ax = age_s(x, r->now_ms), ay = age_s(y, r->now_ms);
        if (ax != ay)
            return ax < ay;
    }
    size_t n = x->peer_id_len < y->peer_id_len ? x->peer_id_len : y->peer_id_len;
    int c = memcmp(x->peer_id, y->peer_id, n);
    if (c)
        return c < 0;
    if (x->peer_id_len != y->peer_id_len)
        return x->peer_id_len < y->peer_id_len;
    return a < b;
}

static void offer_bits(topk *r, uint64_t bits, size_t word)
{
    while (bits) {
        unsigned b = (unsigned)__builtin_ctzll(bits);
        bits &= bits - 1;
        topk_offer(r, (uint32_t)(word * 64 + b));
    }
}

/* Offers every advertisable entry this link lacks or holds outdated, never its own. */
static void offer_added(const pex_engine *e, const pex_link *l, topk *r)
{
    for (size_t w = 0; w < e->cap / 64; w++) {
        uint64_t bits = e->live[w];
        if (w < l->nwords)
            bits &= ~l->told[w] | l->outdated[w];
        if (l->slot / 64 == w)
            bits &= ~((uint64_t)1 << (l->slot % 64));
        offer_bits(r, bits, w);
    }
}

static void send_snapshot(pex_engine *e, pex_link *l, pex_time now)
{
    uint32_t sel[PEX_MAX_SNAPSHOT];
    const ranking fresh = { e, now.mono_ms, true };
    topk r;
    topk_init(&r, sel, PEX_MAX_SNAPSHOT, ranks_before, &fresh);
    offer_added(e, l, &r);
    topk_finish(&r);
    if (r.n && !link_reserve(e, l))
        r.n = 0;
    jw_lit(&e->w, "{\"type\":\"pex_snapshot\",\"peers\":[");
    size_t fit = write_entries(e, &e->w, sel, r.n, PEX_MAX_FRAME - 2, now);
    jw_lit(&e->w, "]}");
    if (!e->w.failed)
        for (size_t i = 0; i < fit; i++)
            tell(e, l, sel[i]);
    if (emit(e, l->id))
        e->snapshots_sent++;
}

/* Builds and sends the link's next delta; false when there is nothing to say. */
static bool send_delta(pex_engine *e, pex_link *l, pex_time now)
{
    static const char mid[] = "],\"dropped\":[";
    uint32_t add[PEX_MAX_ADDED], drop[PEX_MAX_DROPPED];
    const ranking fresh = { e, now.mono_ms, true }, by_id = { e, now.mono_ms, false };
    topk ra, rd;
    topk_init(&ra, add, PEX_MAX_ADDED, ranks_before, &fresh);
    topk_init(&rd, drop, PEX_MAX_DROPPED, ranks_before, &by_id);
    offer_added(e, l, &ra);
    for (size_t w = 0; w < l->nwords; w++)
        offer_bits(&rd, l->told[w] & ~e->live[w], w);
    if (ra.n && !link_reserve(e, l))
        ra.n = 0;
    if (!ra.n && !rd.n)
        return false;
    topk_finish(&ra);
    topk_finish(&rd);

    /* The dropped ids are written first, aside, so the added entries know their byte budget. */
    json_writer *a = &e->aux;
    for (size_t i = 0; i < rd.n; i++) {
        const pex_slot *x = &e->slots[drop[i]];
        if (i)
            jw_lit(a, ",");
        jw_string(a, x->peer_id, x->peer_id_len);
    }
    jw_lit(&e->w, "{\"type\":\"pex_delta\",\"added\":[");
    size_t tail = sizeof mid - 1 + a->len + 2;
    size_t fit = write_entries(e, &e->w, add, ra.n, PEX_MAX_FRAME - tail, now);
    jw_lit(&e->w, mid);
    jw_raw(&e->w, a->p, a->len);
    jw_lit(&e->w, "]}");
    bool ok = !e->w.failed && !a->failed && (fit || rd.n);
    writer_reset(a);
    if (!ok) {
        writer_reset(&e->w);
        return false;
    }
    for (size_t i = 0; i < fit; i++)
        tell(e, l, add[i]);
    for (size_t i = 0; i < rd.n; i++)
        untell(e, l, drop[i]);
    if (emit(e, l->id))
        e->deltas_sent++;
    return true;
}

/* A due link: send what is pending, or wait idle until the registry changes. */
static void service(pex_engine *e, pex_link *l, pex_time now)
{
    if (send_delta(e, l, now))
        sent_data(e, l, now.mono_ms);
    else
        idle_push(e, l);
}

/* ---------------------------------------------------------------- links */

static pex_link *link_new(pex_engine *e, uint32_t s)
{
    if (e->heap_cap <= e->n_links) {
        size_t ncap = e->heap_cap ? e->heap_cap * 2 : 16;
        pex_link **nh = realloc(e->heap, ncap * sizeof *nh);
        if (!nh)
            return NULL;
        e->heap = nh;
        e->heap_cap = ncap;
    }
    pex_link *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->id = e->slots[s].id;
    l->slot = s;
    l->self_interval = PEX_DEFAULT_INTERVAL;
    l->remote_interval = PEX_MIN_INTERVAL;
    l->heap_idx = SIZE_MAX;
    l->next = e->links;
    if (e->links)
        e->links->prev = l;
    e->links = l;
    e->slots[s].link = l;
    e->n_links++;
    return l;
}

static void link_free(pex_engine *e, pex_link *l)
{
    for (size_t w = 0; w < l->nwords; w++) {
        uint64_t bits = l->told[w];
        while (bits) {
            unsigned b = (unsigned)__builtin_ctzll(bits);
            bits &= bits - 1;
            slot_unref(e, (uint32_t)(w * 64 + b));
        }
    }
    if (l->heap_idx != SIZE_MAX)
        heap_remove(e, l);
    if (l->idle)
        idle_unlink(e, l);
    if (l->prev)
        l->prev->next = l->next;
    else
        e->links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    e->slots[l->slot].link = NULL;
    e->n_links--;
    free(l->told);
    free(l);
}

/* The node's handshake was accepted: our handshake, then the snapshot, back to back. */
static void link_up(pex_engine *e, pex_link *l, pex_time now)
{
    expire_stale(e, now.mono_ms);
    jw_lit(&e->w, "{\"type\":\"pex_handshake\",\"version\":1,\"network_id\":");
    jw_raw(&e->w, e->net_json, e->net_json_len);
    jw_lit(&e->w, ",\"interval\":60,\"flags\":[\"introducer\"]}");
    emit(e, l->id);
    send_snapshot(e, l, now);
    l->up = true;
    sent_data(e, l, now.mono_ms);
}

/* ---------------------------------------------------------------- registry mirroring */

static void down_slot(pex_engine *e, uint32_t s)
{
    pex_slot *x = &e->slots[s];
    if (x->link)
        link_free(e, x->link);
    id_hash_remove(e, s);
    list_unlink(e, state_list(e, x->state), s);
    live_set(e, s, false);
    e->n_registrants--;
    e->changed = true;
    if (x->refs) {
        x->state = SLOT_GONE;
        list_push_back(e, &e->gone, s);
    } else {
        slot_release(e, s);
    }
}

static void touch(pex_engine *e, uint32_t s, uint64_t now_ms)
{
    pex_slot *x = &e->slots[s];
    x->touched_ms = now_ms;
    list_unlink(e, state_list(e, x->state), s);
    if (x->state == SLOT_STALE) {
        x->state = SLOT_LIVE;
        live_set(e, s, true);
        e->changed = true;
    }
    list_push_front(e, &e->mru, s);
}

/* A departed entry t of the same peer hands its told-state to the new registration s: links
 * that knew it keep knowing it, and get an update only if its content differs. */
static void adopt(pex_engine *e, uint32_t t, uint32_t s)
{
    const pex_slot *old = &e->slots[t];
    bool same = same_content(&e->slots[s], old->addrs, old->n_addrs, old->relay_only);
    for (pex_link *l = e->links; l && e->slots[t].state == SLOT_GONE; l = l->next) {
        if (!bit_get(l->told, l->nwords, t))
            continue;
        bool was_outdated = bit_get(l->outdated, l->nwords, t);
        if (link_reserve(e, l)) {
            tell(e, l, s);
            if (was_outdated || !same)
                l->outdated[s / 64] |= (uint64_t)1 << (s % 64);
        }
        untell(e, l, t);
    }
}

bool pex_registrant_up(pex_engine *e, uint64_t id, const char *peer_id, size_t peer_id_len,
                       const addr_t *observed, const addr_t *dialable, size_t n_dialable,
                       pex_time now)
{
    if (peer_id_len == 0 || peer_id_len > PEX_MAX_ID_LEN || !observed)
        return false;

    /* Dialable addresses when it advertised listen_addrs (a port 0 would make receivers skip
     * the whole entry); otherwise the observed source, reachable through the relay only. */
    addr_t addrs[ADDR_MAX_DIALABLE];
    uint8_t n = 0;
    for (size_t i = 0; i < n_dialable && n < ADDR_MAX_DIALABLE; i++)
        if (dialable[i].port != 0)
            addrs[n++] = dialable[i];
    bool relay_only = n == 0;
    if (relay_only) {
        addrs[0] = *observed;
        addr_unmap(&addrs[0]);
        n = 1;
    }

    uint64_t ph = bytes_hash(e, peer_id, peer_id_len);
    uint32_t s = find_id(e, id);
    if (s != NIL) {
        pex_slot *x = &e->slots[s];
        if (same_peer(x, ph, peer_id, peer_id_len)) {
            if (!same_content(x, addrs, n, relay_only)) {
                memcpy(x->addrs, addrs, sizeof addrs);
                x->n_addrs = n;
                x->relay_only = relay_only;
                for (pex_link *l = e->links; l; l = l->next)
                    if (bit_get(l->told, l->nwords, s))
                        l->outdated[s / 64] |= (uint64_t)1 << (s % 64);
                e->changed = true;
            }
            touch(e, s, now.mono_ms);
            return true;
        }
        down_slot(e, s);
    }

    /* One live registration per peer id: a newer one takes the id over. */
    for (uint32_t t = e->pid_buckets[ph & e->bucket_mask]; t != NIL;) {
        uint32_t next = e->slots[t].pid_next;
        if (e->slots[t].state != SLOT_GONE && same_peer(&e->slots[t], ph, peer_id, peer_id_len)) {
            down_slot(e, t);
            next = e->pid_buckets[ph & e->bucket_mask];
        }
        t = next;
    }

    char *copy = malloc(peer_id_len);
    if (!copy)
        return false;
    s = slot_alloc(e);
    if (s == NIL) {
        free(copy);
        return false;
    }
    memcpy(copy, peer_id, peer_id_len);
    pex_slot *x = &e->slots[s];
    memset(x, 0, sizeof *x);
    x->id = id;
    x->touched_ms = now.mono_ms;
    x->pid_hash = ph;
    x->peer_id = copy;
    x->peer_id_len = (uint32_t)peer_id_len;
    x->state = SLOT_LIVE;
    x->n_addrs = n;
    x->relay_only = relay_only;
    memcpy(x->addrs, addrs, sizeof addrs);
    id_hash_insert(e, s);
    pid_hash_insert(e, s);
    list_push_front(e, &e->mru, s);
    live_set(e, s, true);
    e->n_registrants++;
    e->changed = true;

    for (uint32_t t = e->pid_buckets[ph & e->bucket_mask]; t != NIL;) {
        uint32_t next = e->slots[t].pid_next;
        if (e->slots[t].state == SLOT_GONE && same_peer(&e->slots[t], ph, peer_id, peer_id_len))
            adopt(e, t, s);
        t = next;
    }
    return true;
}

void pex_registrant_seen(pex_engine *e, uint64_t id, pex_time now)
{
    uint32_t s = find_id(e, id);
    if (s != NIL)
        touch(e, s, now.mono_ms);
}

void pex_registrant_down(pex_engine *e, uint64_t id)
{
    uint32_t s = find_id(e, id);
    if (s != NIL)
        down_slot(e, s);
}

/* ---------------------------------------------------------------- reading node frames */

/* What one frame said, as far as the relay cares: node-sent entries are only checked and
 * counted, never kept. Peer ids of added entries and dropped ids are kept (raw) for the
 * "not in both lists" rule, up to their caps. */
typedef struct {
    uint64_t version, interval, code;
    json_span network_id;
    size_t n_list, n_dropped;           /* peers or added; dropped */
    json_span added_ids[PEX_MAX_ADDED];
    json_span dropped_ids[PEX_MAX_DROPPED];
} pex_msg;

static bool read_uint(json_reader *r, uint64_t max, uint64_t *v)
{
    return json_peek(r) == JSON_NUMBER && json_read_u64(r, v) && *v <= max;
}

static bool read_str(json_reader *r, json_span *s)
{
    return json_peek(r) == JSON_STRING && json_read_string(r, s);
}

static bool read_str_array(json_reader *r, json_span *keep, size_t cap, size_t *count)
{
    if (json_peek(r) != JSON_ARRAY || !json_array_begin(r))
        return false;
    size_t n = 0;
    while (json_array_next(r)) {
        json_span s;
        if (!read_str(r, &s))
            return false;
        if (n < cap)
            keep[n] = s;
        n++;
    }
    *count = n;
    return !r->err;
}

/* Index of key among names (NULL-terminated), or -1. */
static int key_index(json_span key, const char *const *names)
{
    for (int i = 0; names[i]; i++)
        if (json_raw_equals(key, names[i]))
            return i;
    return -1;
}

/* Known fields are type-checked and may appear once; unknown ones are skipped (SPEC §2). */
static bool read_address(json_reader *r)
{
    static const char *const names[] = { "host", "port", "kind", NULL };
    if (json_peek(r) != JSON_OBJECT || !json_object_begin(r))
        return false;
    unsigned seen = 0;
    json_span key, s;
    uint64_t v;
    while (json_object_next(r, &key)) {
        int k = key_index(key, names);
        if (k >= 0 && (seen & (1u << k)))
            return false;
        if (k >= 0)
            seen |= 1u << k;
        bool ok = k == 1 ? read_uint(r, 65535, &v) : k >= 0 ? read_str(r, &s) : json_skip(r, NULL);
        if (!ok)
            return false;
    }
    return !r->err;
}

static bool read_entry(json_reader *r, json_span *peer_id)
{
    static const char *const names[] = { "peer_id", "addresses", "network_id", "last_seen", "via",
                                         "flags", NULL };
    if (json_peek(r) != JSON_OBJECT || !json_object_begin(r))
        return false;
    unsigned seen = 0;
    json_span key, s;
    uint64_t v;
    size_t n;
    while (json_object_next(r, &key)) {
        int k = key_index(key, names);
        if (k >= 0 && (seen & (1u << k)))
            return false;
        if (k >= 0)
            seen |= 1u << k;
        bool ok;
        switch (k) {
        case 0: ok = read_str(r, peer_id); break;
        case 1:
            ok = json_peek(r) == JSON_ARRAY && json_array_begin(r);
            while (ok && json_array_next(r))
                ok = read_address(r);
            ok = ok && !r->err;
            break;
        case 2: case 4: ok = read_str(r, &s); break;
        case 3: ok = read_uint(r, UINT64_MAX, &v); break;
        case 5: ok = read_str_array(r, NULL, 0, &n); break;
        default: ok = json_skip(r, NULL); break;
        }
        if (!ok)
            return false;
    }
    return !r->err;
}

static bool read_entries(json_reader *r, json_span *ids, size_t cap, size_t *count)
{
    if (json_peek(r) != JSON_ARRAY || !json_array_begin(r))
        return false;
    size_t n = 0;
    while (json_array_next(r)) {
        json_span id = { "", 0 };
        if (!read_entry(r, &id))
            return false;
        if (n < cap)
            ids[n] = id;
        n++;
    }
    *count = n;
    return !r->err;
}

/* First pass: the frame is one JSON object with exactly one "type" naming a PEX message. */
static int frame_type(const char *buf, size_t len)
{
    static const char *const types[] = { "pex_handshake", "pex_snapshot", "pex_delta",
                                         "pex_error", NULL };
    json_reader r;
    json_reader_init(&r, buf, len);
    if (json_peek(&r) != JSON_OBJECT || !json_object_begin(&r))
        return MSG_BAD;
    int type = MSG_BAD, n_type = 0;
    json_span key, v;
    while (json_object_next(&r, &key)) {
        if (!json_raw_equals(key, "type")) {
            if (!json_skip(&r, NULL))
                return MSG_BAD;
            continue;
        }
        if (!read_str(&r, &v))
            return MSG_BAD;
        int t = key_index(v, types);
        type = t >= 0 ? t + MSG_HANDSHAKE : MSG_BAD;
        n_type++;
    }
    if (r.err || !json_end(&r) || n_type != 1)
        return MSG_BAD;
    return type;
}

/* Second pass, knowing the type: its fields, each at most once, required ones present. */
static bool decode(int type, const char *buf, size_t len, pex_msg *m)
{
    static const char *const handshake[] = { "version", "network_id", "interval", "flags", NULL };
    static const char *const snapshot[] = { "peers", NULL };
    static const char *const delta[] = { "added", "dropped", NULL };
    static const char *const error[] = { "code", "message", NULL };
    const char *const *names = type == MSG_HANDSHAKE ? handshake : type == MSG_SNAPSHOT ? snapshot
                             : type == MSG_DELTA ? delta : error;
    unsigned required = type == MSG_SNAPSHOT ? 1u : type == MSG_HANDSHAKE ? 7u : 3u;

    json_reader r;
    json_reader_init(&r, buf, len);
    json_object_begin(&r);
    unsigned seen = 0;
    json_span key, s;
    size_t n;
    while (json_object_next(&r, &key)) {
        int k = key_index(key, names);
        if (k >= 0 && (seen & (1u << k)))
            return false;
        if (k >= 0)
            seen |= 1u << k;
        bool ok;
        if (k < 0) {
            ok = json_skip(&r, NULL);
        } else if (type == MSG_HANDSHAKE) {
            ok = k == 0 ? read_uint(&r, UINT32_MAX, &m->version)
               : k == 1 ? read_str(&r, &m->network_id)
               : k == 2 ? read_uint(&r, UINT32_MAX, &m->interval)
               : read_str_array(&r, NULL, 0, &n);
        } else if (type == MSG_SNAPSHOT) {
            ok = read_entries(&r, NULL, 0, &m->n_list);
        } else if (type == MSG_DELTA) {
            ok = k == 0 ? read_entries(&r, m->added_ids, PEX_MAX_ADDED, &m->n_list)
                        : read_str_array(&r, m->dropped_ids, PEX_MAX_DROPPED, &m->n_dropped);
        } else {
            ok = k == 0 ? read_uint(&r, UINT16_MAX, &m->code) : read_str(&r, &s);
        }
        if (!ok)
            return false;
    }
    return !r.err && (seen & required) == required;
}

/* Whether the decoded text of raw equals want[0..n). */
static bool raw_equals_bytes(json_span raw, const char *want, size_t n)
{
    if (!json_raw_has_escape(raw))
        return raw.n == n && memcmp(raw.p, want, n) == 0;
    /* Six raw bytes decode to at least one, so a longer raw form cannot match an id. */
    char buf[6 * PEX_MAX_ID_LEN];
    if (raw.n > sizeof buf)
        return false;
    size_t k = json_unescape(raw, buf);
    return k == n && memcmp(buf, want, n) == 0;
}

/* Whether a peer id is both added and dropped (SPEC §4.4), comparing decoded text. */
static bool lists_overlap(pex_msg *m, size_t len)
{
    size_t na = m->n_list, nd = m->n_dropped;
    if (!na || !nd)
        return false;
    bool escapes = false;
    for (size_t i = 0; i < na; i++)
        escapes |= json_raw_has_escape(m->added_ids[i]);
    for (size_t i = 0; i < nd; i++)
        escapes |= json_raw_has_escape(m->dropped_ids[i]);
    char *scratch = NULL;
    if (escapes) {
        /* Decoded text never outgrows its raw form, and all of it sits in the frame. */
        scratch = malloc(len);
        if (!scratch)
            return false;
        char *p = scratch;
        json_span *all[2] = { m->added_ids, m->dropped_ids };
        size_t counts[2] = { na, nd };
        for (int list = 0; list < 2; list++) {
            for (size_t i = 0; i < counts[list]; i++) {
                size_t k = json_unescape(all[list][i], p);
                all[list][i] = (json_span){ p, k };
                p += k;
            }
        }
    }
    bool hit = false;
    for (size_t i = 0; i < na && !hit; i++)
        for (size_t j = 0; j < nd && !hit; j++)
            hit = m->added_ids[i].n == m->dropped_ids[j].n &&
                  memcmp(m->added_ids[i].p, m->dropped_ids[j].p, m->added_ids[i].n) == 0;
    free(scratch);
    return hit;
}

/* ---------------------------------------------------------------- node direction */

static int strike(pex_engine *e, pex_link *l, int code)
{
    send_error(e, l->id, code);
    if (++l->strikes >= PEX_VIOLATION_LIMIT)
        l->muted = true;
    return code;
}

/* Version and network mismatches are no misbehaviour: the direction is muted at once. */
static int mute(pex_engine *e, pex_link *l, int code)
{
    send_error(e, l->id, code);
    l->muted = true;
    return code;
}

/* pex_error{3} asks us to slow down. Anyone can send one, so it counts only right after a data
 * message of ours (within the node's arrival floor of it) and at most once per interval. */
static void back_off(pex_engine *e, pex_link *l, uint64_t now_ms)
{
    if (!l->up || now_ms < l->last_send_ms ||
        now_ms - l->last_send_ms >= arrival_floor_ms(l->self_interval))
        return;
    if (l->has_backoff && now_ms - l->last_backoff_ms < effective_ms(l))
        return;
    l->has_backoff = true;
    l->last_backoff_ms = now_ms;
    l->self_interval = clamp_interval((uint64_t)l->self_interval * 2);
    schedule(e, l);
}

static int on_message(pex_engine *e, pex_link *l, int type, pex_msg *m, size_t len, pex_time now)
{
    switch (type) {
    case MSG_HANDSHAKE:
        if (l->phase != AWAIT_HANDSHAKE)
            return strike(e, l, PEX_ERR_PROTOCOL);
        if (m->version != PEX_VERSION)
            return mute(e, l, PEX_ERR_UNSUPPORTED_VERSION);
        if (!raw_equals_bytes(m->network_id, e->network_id, e->network_id_len))
            return mute(e, l, PEX_ERR_NETWORK_MISMATCH);
        l->remote_interval = clamp_interval(m->interval);
        l->phase = AWAIT_SNAPSHOT;
        link_up(e, l, now);
        return PEX_ACCEPTED;
    case MSG_SNAPSHOT:
        if (l->phase != AWAIT_SNAPSHOT)
            return strike(e, l, PEX_ERR_PROTOCOL);
        if (m->n_list > PEX_MAX_SNAPSHOT)
            return strike(e, l, PEX_ERR_OVERSIZED);
        l->phase = STREAMING;
        l->last_arrival_ms = now.mono_ms;
        return PEX_ACCEPTED;
    case MSG_DELTA:
        if (l->phase != STREAMING)
            return strike(e, l, PEX_ERR_PROTOCOL);
        if (now.mono_ms < l->last_arrival_ms ||
            now.mono_ms - l->last_arrival_ms < arrival_floor_ms(l->remote_interval))
            return strike(e, l, PEX_ERR_RATE);
        if (m->n_list > PEX_MAX_ADDED || m->n_dropped > PEX_MAX_DROPPED)
            return strike(e, l, PEX_ERR_OVERSIZED);
        if (lists_overlap(m, len))
            return strike(e, l, PEX_ERR_BAD_MESSAGE);
        l->last_arrival_ms = now.mono_ms;
        return PEX_ACCEPTED;
    default:
        if (m->code == PEX_ERR_RATE)
            back_off(e, l, now.mono_ms);
        return PEX_ACCEPTED;
    }
}

int pex_on_frame(pex_engine *e, uint64_t id, const char *json, size_t len, pex_time now)
{
    uint32_t s = find_id(e, id);
    if (s == NIL)
        return PEX_NOT_REGISTERED;
    pex_link *l = e->slots[s].link;
    int type = 0;
    if (!l) {
        /* The gate: until a connection sends pex_handshake, PEX does not exist for it. */
        type = frame_type(json, len);
        if (type != MSG_HANDSHAKE || !(l = link_new(e, s)))
            return PEX_IGNORED;
    }
    if (l->muted)
        return PEX_IGNORED;
    if (len > PEX_MAX_FRAME)
        return strike(e, l, PEX_ERR_OVERSIZED);
    if (!type)
        type = frame_type(json, len);
    pex_msg m;
    memset(&m, 0, sizeof m);
    if (type == MSG_BAD || !decode(type, json, len, &m))
        return strike(e, l, PEX_ERR_BAD_MESSAGE);
    return on_message(e, l, type, &m, len, now);
}

/* ---------------------------------------------------------------- clock */

void pex_tick(pex_engine *e, pex_time now)
{
    expire_stale(e, now.mono_ms);
    if (e->changed) {
        e->changed = false;
        pex_link *batch = e->idle_head;
        e->idle_head = NULL;
        while (batch) {
            pex_link *l = batch;
            batch = l->idle_next;
            l->idle = false;
            l->idle_prev = l->idle_next = NULL;
            service(e, l, now);
        }
    }
    while (e->heap_len && e->heap[0]->due_ms <= now.mono_ms) {
        pex_link *l = e->heap[0];
        heap_remove(e, l);
        service(e, l, now);
    }
}

uint64_t pex_next_due(const pex_engine *e)
{
    if (e->changed && e->idle_head)
        return 0;
    uint64_t due = e->heap_len ? e->heap[0]->due_ms : UINT64_MAX;
    /* Ageing out only matters to links that are up. */
    if ((e->heap_len || e->idle_head) && e->mru.tail != NIL) {
        uint64_t stale = e->slots[e->mru.tail].touched_ms + STALE_AFTER_MS;
        if (stale < due)
            due = stale;
    }
    return due;
}

/* ---------------------------------------------------------------- life cycle */

pex_engine *pex_engine_new(const char *network_id, size_t network_id_len, size_t max_registrants,
                           uint64_t seed, pex_send_fn send, void *send_ctx)
{
    if (!network_id || network_id_len == 0 || network_id_len > PEX_MAX_ID_LEN || !send ||
        max_registrants == 0)
        return NULL;
    pex_engine *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->send = send;
    e->send_ctx = send_ctx;
    e->rng = seed;
    e->hash_key[0] = rng_next(e);
    /* The second half is derived, not drawn: the engine's draws are what time its sends. */
    e->hash_key[1] = hash_mix64(e->hash_key[0] ^ 0x9e3779b97f4a7c15ULL);
    /* Room for every registrant plus as many departed ones awaiting their `dropped`. */
    uint64_t limit = max_registrants > ((size_t)1 << 29) ? (uint64_t)1 << 30
                   : (uint64_t)max_registrants * 2;
    e->limit = (uint32_t)((limit + SLOT_BLOCK - 1) / SLOT_BLOCK * SLOT_BLOCK);
    e->mru = e->stale = e->gone = (slot_list){ NIL, NIL };
    e->free_head = NIL;
    jw_init(&e->w, 0, WRITER_MAX);
    jw_init(&e->aux, 0, WRITER_MAX);
    e->network_id = malloc(network_id_len);
    if (e->network_id)
        memcpy(e->network_id, network_id, network_id_len);
    e->network_id_len = network_id_len;
    jw_string(&e->aux, network_id, network_id_len);
    e->net_json = malloc(e->aux.len);
    if (e->net_json && !e->aux.failed)
        memcpy(e->net_json, e->aux.p, e->aux.len);
    e->net_json_len = e->aux.len;
    bool ok = e->network_id && e->net_json && !e->aux.failed;
    writer_reset(&e->aux);
    if (!ok || !slots_grow(e)) {
        pex_engine_free(e);
        return NULL;
    }
    return e;
}

void pex_engine_free(pex_engine *e)
{
    if (!e)
        return;
    while (e->links) {
        pex_link *l = e->links;
        e->links = l->next;
        free(l->told);
        free(l);
    }
    for (uint32_t s = 0; s < e->cap; s++)
        free(e->slots[s].peer_id);
    free(e->slots);
    free(e->live);
    free(e->id_buckets);
    free(e->pid_buckets);
    free(e->heap);
    free(e->network_id);
    free(e->net_json);
    jw_free(&e->w);
    jw_free(&e->aux);
    free(e);
}

size_t pex_registrant_count(const pex_engine *e)
{
    return e->n_registrants;
}

uint64_t pex_snapshots_sent(const pex_engine *e) { return e->snapshots_sent; }
uint64_t pex_deltas_sent(const pex_engine *e) { return e->deltas_sent; }

size_t pex_link_count(const pex_engine *e)
{
    return e->n_links;
}

bool pex_link_muted(const pex_engine *e, uint64_t id)
{
    uint32_t s = find_id(e, id);
    return s != NIL && e->slots[s].link && e->slots[s].link->muted;
}
