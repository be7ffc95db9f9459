/* libFuzzer harness for the PEX engine: its JSON decoder, state machine and scheduling.
 *
 * Input: chunks separated by NUL bytes (which valid JSON never contains raw). A chunk's first
 * byte is a command: its high nibble advances the fake clock by that many 5 s steps, its low
 * nibble picks the action (c is connection (byte 1 & 3) + 1):
 *   0-3  the rest of the chunk is a frame from connection 1-4
 *   4    tick, if due                     8   tick whether due or not
 *   5    register c as peer (byte 2 & 7), dialable if byte 3 is odd
 *   6    unregister c                     7   inbound activity from c
 *   9    advance the clock by bytes 2-3 (ms, little-endian) plus byte 4 minutes
 *   10   a well-formed pex_handshake from c: version 1 (or byte 2 & 127 when byte 2 >= 128),
 *        network "mainnet" ("testnet" when byte 2 & 64), interval bytes 3-4 (s)
 *   11   a pex_snapshot from c with byte 2 & 7 entries (one over the cap if byte 2 >= 128)
 *   12   a pex_delta from c: byte 2 & 7 added, byte 3 & 7 dropped (each one over its cap when
 *        the byte is >= 128), one id in both lists if byte 4 is odd
 *   13   a pex_error from c with code byte 2 & 7 (3 asks the relay to back off)
 *   14   set the wall clock to bytes 2-5 (s, little-endian; it may go backwards)
 *   15   jump the clock to pex_next_due, if that is ahead, and tick
 * Connections 1-3 start registered.
 *
 * The harness keeps a model of registrations, links and what each link was told, and checks
 * every frame the engine sends against it: valid JSON within PEX_MAX_FRAME; frames only from
 * pex_on_frame or pex_tick, only to registered connections; our handshake then snapshot only
 * on a first accepted handshake; pex_error only as the answer its return value names; deltas
 * only from ticks, never empty, at most 50 added and 50 dropped, no id in both, spaced at least
 * the effective interval (ours, doubled by each back-off the model expects, or the node's)
 * after the previous snapshot or delta. Entries: never the link's own peer, only live
 * registrants with their current addresses and flags, network "mainnet", last_seen within
 * PEX_MAX_ENTRY_AGE of the wall clock, never re-advertised unless their content changed;
 * dropped ids only ones the link was told. Scheduling: a tick before pex_next_due sends nothing,
 * after a tick nothing is due, pex_next_due is never past one maximal interval plus jitter, and
 * with no link nothing is ever due. Registrant and link counts agree with the model. */
#include "addr.h"
#include "json.h"
#include "pex.h"

#include <stdlib.h>
#include <string.h>

#define PF_CONNS 4
#define PF_PEERS 8
#define PF_MAX_DUE_AHEAD_MS ((uint64_t)PEX_MAX_INTERVAL * 1100)   /* interval + 10% jitter */

typedef struct {
    int peer;                   /* registered as this peer, -1 when not */
    bool up;                    /* got our handshake: its PEX link is up */
    uint32_t self_s, remote_s;  /* the link's intervals, as the engine should keep them */
    bool has_backoff;
    uint64_t last_data_ms, last_backoff_ms;
    bool told[PF_PEERS];        /* what this link was told and not since dropped */
    bool changed[PF_PEERS];     /* told, and the peer's content changed since */
    size_t frames;              /* frames sent to it during the current call */
    int first_type, last_type;  /* of those frames (PF_T_*) */
    uint64_t error_code;        /* of the last pex_error sent to it */
} pf_conn;

enum { PF_T_NONE, PF_T_HANDSHAKE, PF_T_SNAPSHOT, PF_T_DELTA, PF_T_ERROR };
enum { PF_IDLE, PF_IN_FRAME, PF_IN_TICK };   /* which engine call may send */

typedef struct {
    pex_engine *e;
    pex_time now;
    int phase;
    uint64_t frame_from;        /* PF_IN_FRAME: the connection whose frame is being handled */
    size_t sent;                /* frames during the current call */
    pf_conn c[PF_CONNS + 1];    /* by connection id; [0] unused */
    bool known[PF_PEERS], dialable[PF_PEERS];  /* each peer's latest registered content */
} pf_model;

static void pf_peer_id(unsigned peer, char pid[64])
{
    for (int i = 0; i < 64; i++)
        pid[i] = "0123456789abcdef"[(peer + (unsigned)i) & 15];
}

/* Which of our peers a decoded id names; aborts on anything the engine was never given. */
static int pf_peer_of(const char *p, size_t n)
{
    char pid[64];
    if (n != 64 || p[0] < '0' || p[0] >= '0' + PF_PEERS)
        abort();
    pf_peer_id((unsigned)(p[0] - '0'), pid);   /* peer k's id starts with hex digit k */
    if (memcmp(p, pid, 64) != 0)
        abort();
    return p[0] - '0';
}

static int pf_peer_of_raw(json_span raw)
{
    char buf[64 * 6];
    if (raw.n > sizeof buf)
        abort();
    return pf_peer_of(buf, json_unescape(raw, buf));
}

static uint64_t pf_effective_ms(const pf_conn *c)
{
    return (uint64_t)(c->self_s > c->remote_s ? c->self_s : c->remote_s) * 1000;
}

static bool pf_registered(const pf_model *md, int peer)
{
    for (int id = 1; id <= PF_CONNS; id++)
        if (md->c[id].peer == peer)
            return true;
    return false;
}

/* One advertised entry: whose it is, and whether it is relay-only. */
static void pf_read_entry(pf_model *md, json_reader *r, int *peer, bool *relay_only)
{
    json_span key, s;
    uint64_t v;
    size_t n_addrs = 0;
    *peer = -1;
    *relay_only = false;
    if (!json_object_begin(r))
        abort();
    while (json_object_next(r, &key)) {
        if (json_raw_equals(key, "peer_id")) {
            if (!json_read_string(r, &s))
                abort();
            *peer = pf_peer_of_raw(s);
        } else if (json_raw_equals(key, "addresses")) {
            if (!json_array_begin(r))
                abort();
            while (json_array_next(r)) {
                if (!json_object_begin(r))
                    abort();
                while (json_object_next(r, &key)) {
                    if (json_raw_equals(key, "port")) {
                        if (!json_read_u64(r, &v) || v == 0 || v > 65535)
                            abort();
                    } else if (!json_skip(r, NULL)) {
                        abort();
                    }
                }
                n_addrs++;
            }
        } else if (json_raw_equals(key, "network_id")) {
            if (!json_read_string(r, &s) || !json_raw_equals(s, "mainnet"))
                abort();
        } else if (json_raw_equals(key, "last_seen")) {
            if (!json_read_u64(r, &v) || v > md->now.wall_s ||
                (md->now.wall_s >= PEX_MAX_ENTRY_AGE && v < md->now.wall_s - PEX_MAX_ENTRY_AGE))
                abort();
        } else if (json_raw_equals(key, "flags")) {
            if (!json_array_begin(r))
                abort();
            while (json_array_next(r)) {
                if (!json_read_string(r, &s))
                    abort();
                *relay_only |= json_raw_equals(s, "relay-only");
            }
        } else if (!json_skip(r, NULL)) {
            abort();
        }
    }
    if (*peer < 0 || n_addrs != (*relay_only ? 1u : 2u))
        abort();
}

/* Entries of a snapshot or delta to connection c: checked, then recorded as told. */
static void pf_told(pf_model *md, pf_conn *c, const int *peers, const bool *relay_only, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int p = peers[i];
        if (p == c->peer || !pf_registered(md, p) || relay_only[i] != !md->dialable[p])
            abort();
        if (c->told[p] && !c->changed[p])
            abort();   /* re-advertised with nothing new */
        c->told[p] = true;
        c->changed[p] = false;
    }
}

static void pf_send(void *ctx, uint64_t id, const char *json, size_t len)
{
    pf_model *md = ctx;
    if (md->phase == PF_IDLE || id < 1 || id > PF_CONNS || len > PEX_MAX_FRAME ||
        !json_validate(json, len, NULL))
        abort();
    pf_conn *c = &md->c[id];
    if (c->peer < 0 || (md->phase == PF_IN_FRAME && id != md->frame_from))
        abort();

    int type = PF_T_NONE, peers[PEX_MAX_SNAPSHOT + 1], dropped[PEX_MAX_DROPPED + 1];
    bool relay_only[PEX_MAX_SNAPSHOT + 1];
    size_t n_peers = 0, n_dropped = 0;
    uint64_t code = 0;
    json_reader r;
    json_span key, s;
    json_reader_init(&r, json, len);
    if (!json_object_begin(&r))
        abort();
    while (json_object_next(&r, &key)) {
        if (json_raw_equals(key, "type")) {
            if (!json_read_string(&r, &s))
                abort();
            type = json_raw_equals(s, "pex_handshake") ? PF_T_HANDSHAKE
                 : json_raw_equals(s, "pex_snapshot") ? PF_T_SNAPSHOT
                 : json_raw_equals(s, "pex_delta") ? PF_T_DELTA
                 : json_raw_equals(s, "pex_error") ? PF_T_ERROR : PF_T_NONE;
        } else if (json_raw_equals(key, "peers") || json_raw_equals(key, "added")) {
            if (!json_array_begin(&r))
                abort();
            while (json_array_next(&r)) {
                if (n_peers == PEX_MAX_SNAPSHOT)
                    abort();
                pf_read_entry(md, &r, &peers[n_peers], &relay_only[n_peers]);
                n_peers++;
            }
        } else if (json_raw_equals(key, "dropped")) {
            if (!json_array_begin(&r))
                abort();
            while (json_array_next(&r)) {
                if (n_dropped == PEX_MAX_DROPPED || !json_read_string(&r, &s))
                    abort();
                dropped[n_dropped++] = pf_peer_of_raw(s);
            }
        } else if (json_raw_equals(key, "code")) {
            if (!json_read_u64(&r, &code))
                abort();
        } else if (!json_skip(&r, NULL)) {
            abort();
        }
    }

    switch (type) {
    case PF_T_HANDSHAKE:   /* first of the answer to a first handshake */
        if (md->phase != PF_IN_FRAME || c->up || c->frames != 0)
            abort();
        c->up = true;
        c->self_s = PEX_DEFAULT_INTERVAL;
        c->remote_s = PEX_MIN_INTERVAL;     /* until the call returns and we read the node's */
        c->has_backoff = false;
        memset(c->told, 0, sizeof c->told);
        memset(c->changed, 0, sizeof c->changed);
        break;
    case PF_T_SNAPSHOT:    /* right after our handshake */
        if (md->phase != PF_IN_FRAME || c->frames != 1 || c->last_type != PF_T_HANDSHAKE)
            abort();
        pf_told(md, c, peers, relay_only, n_peers);
        c->last_data_ms = md->now.mono_ms;
        break;
    case PF_T_DELTA:
        if (md->phase != PF_IN_TICK || !c->up || n_peers > PEX_MAX_ADDED ||
            (n_peers == 0 && n_dropped == 0) ||
            md->now.mono_ms < c->last_data_ms + pf_effective_ms(c))
            abort();
        for (size_t i = 0; i < n_dropped; i++) {
            for (size_t j = 0; j < n_peers; j++)
                if (peers[j] == dropped[i])
                    abort();
            if (!c->told[dropped[i]])
                abort();
            c->told[dropped[i]] = false;
            c->changed[dropped[i]] = false;
        }
        pf_told(md, c, peers, relay_only, n_peers);
        c->last_data_ms = md->now.mono_ms;
        break;
    case PF_T_ERROR:
        if (md->phase != PF_IN_FRAME || code < PEX_ERR_BAD_MESSAGE || code > PEX_ERR_PROTOCOL)
            abort();
        c->error_code = code;
        break;
    default:
        abort();
    }
    if (type != PF_T_SNAPSHOT && type != PF_T_DELTA && (n_peers || n_dropped))
        abort();
    if (c->frames++ == 0)
        c->first_type = type;
    c->last_type = type;
    md->sent++;
}

/* The value of a top-level key of an accepted frame: a number, or whether a string equals want. */
static bool pf_top_u64(const char *json, size_t len, const char *name, uint64_t *v)
{
    json_reader r;
    json_span key;
    json_reader_init(&r, json, len);
    if (!json_object_begin(&r))
        return false;
    while (json_object_next(&r, &key)) {
        if (json_raw_equals(key, name))
            return json_read_u64(&r, v);
        if (!json_skip(&r, NULL))
            return false;
    }
    return false;
}

static bool pf_top_string_is(const char *json, size_t len, const char *name, const char *want)
{
    json_reader r;
    json_span key, s;
    json_reader_init(&r, json, len);
    if (!json_object_begin(&r))
        return false;
    while (json_object_next(&r, &key)) {
        if (json_raw_equals(key, name))
            return json_read_string(&r, &s) && json_raw_equals(s, want);
        if (!json_skip(&r, NULL))
            return false;
    }
    return false;
}

static void pf_begin(pf_model *md, int phase, uint64_t from)
{
    md->phase = phase;
    md->frame_from = from;
    md->sent = 0;
    for (int id = 1; id <= PF_CONNS; id++) {
        md->c[id].frames = 0;
        md->c[id].first_type = md->c[id].last_type = PF_T_NONE;
    }
}

static void pf_counts(const pf_model *md)
{
    size_t reg = 0, up = 0;
    for (int id = 1; id <= PF_CONNS; id++) {
        reg += md->c[id].peer >= 0;
        up += md->c[id].up;
    }
    size_t links = pex_link_count(md->e);
    if (pex_registrant_count(md->e) != reg || links < up || links > reg)
        abort();
    uint64_t due = pex_next_due(md->e);
    if (links == 0 && due != UINT64_MAX)
        abort();
    if (due != UINT64_MAX && due > md->now.mono_ms + PF_MAX_DUE_AHEAD_MS)
        abort();
}

static void pf_frame(pf_model *md, uint64_t id, const char *json, size_t len)
{
    pf_conn *c = &md->c[id];
    bool muted = pex_link_muted(md->e, id), was_up = c->up;
    pex_registrant_seen(md->e, id, md->now);
    pf_begin(md, PF_IN_FRAME, id);
    int res = pex_on_frame(md->e, id, json, len, md->now);
    md->phase = PF_IDLE;
    if ((res == PEX_NOT_REGISTERED) != (c->peer < 0))
        abort();
    if (res == PEX_NOT_REGISTERED || res == PEX_IGNORED || (muted && res != PEX_IGNORED)) {
        if (md->sent != 0 || (muted && res != PEX_IGNORED))
            abort();
    } else if (res > 0) {
        if (md->sent != 1 || c->first_type != PF_T_ERROR || c->error_code != (uint64_t)res)
            abort();
        if ((res == PEX_ERR_UNSUPPORTED_VERSION || res == PEX_ERR_NETWORK_MISMATCH) &&
            !pex_link_muted(md->e, id))
            abort();
    } else if (res == PEX_ACCEPTED) {
        if (md->sent == 2) {
            /* a first handshake: read the node's interval as the engine did */
            uint64_t v = 0;
            if (was_up || c->first_type != PF_T_HANDSHAKE || c->last_type != PF_T_SNAPSHOT ||
                !pf_top_u64(json, len, "interval", &v))
                abort();
            c->remote_s = v < PEX_MIN_INTERVAL ? PEX_MIN_INTERVAL
                        : v > PEX_MAX_INTERVAL ? PEX_MAX_INTERVAL : (uint32_t)v;
        } else if (md->sent != 0) {
            abort();
        } else if (c->up && pf_top_string_is(json, len, "type", "pex_error")) {
            /* pex_error{3} right after our data message, at most once per interval */
            uint64_t code = 0, t = md->now.mono_ms;
            if (pf_top_u64(json, len, "code", &code) && code == PEX_ERR_RATE &&
                t - c->last_data_ms < (uint64_t)(c->self_s - PEX_ARRIVAL_GRACE) * 1000 &&
                (!c->has_backoff || t - c->last_backoff_ms >= pf_effective_ms(c))) {
                c->has_backoff = true;
                c->last_backoff_ms = t;
                c->self_s = c->self_s * 2 > PEX_MAX_INTERVAL ? PEX_MAX_INTERVAL : c->self_s * 2;
            }
        }
    } else {
        abort();
    }
    pf_counts(md);
}

static void pf_tick(pf_model *md, bool only_if_due)
{
    uint64_t due = pex_next_due(md->e);
    if (only_if_due && due > md->now.mono_ms)
        return;
    pf_begin(md, PF_IN_TICK, 0);
    pex_tick(md->e, md->now);
    md->phase = PF_IDLE;
    if ((due > md->now.mono_ms && md->sent != 0) || pex_next_due(md->e) <= md->now.mono_ms)
        abort();
    pf_counts(md);
}

/* The registration's link is gone with it. */
static void pf_down_model(pf_model *md, uint64_t id)
{
    pf_conn *c = &md->c[id];
    c->peer = -1;
    c->up = false;
}

static void pf_up(pf_model *md, uint64_t id, unsigned peer, bool dialable)
{
    char pid[64];
    pf_peer_id(peer, pid);
    addr_t obs, dial[2];
    memset(&obs, 0, sizeof obs);
    memset(dial, 0, sizeof dial);
    obs.family = 4;
    obs.ip[0] = 203, obs.ip[1] = 0, obs.ip[2] = 113, obs.ip[3] = (uint8_t)peer;
    obs.port = (uint16_t)(40000 + peer);
    dial[0].family = 6;
    dial[0].ip[0] = 0x20, dial[0].ip[1] = 0x01, dial[0].ip[2] = 0x0d, dial[0].ip[3] = 0xb8;
    dial[0].ip[15] = (uint8_t)peer;
    dial[0].port = 9444;
    dial[1] = obs;
    dial[1].port = 9444;
    if (!pex_registrant_up(md->e, id, pid, 64, &obs, dial, dialable ? 2 : 0, md->now))
        abort();   /* four connections never fill a table sized for at least 64 */

    /* A new peer on this connection ends the old registration; the peer leaves any other. */
    if (md->c[id].peer != (int)peer) {
        if (md->c[id].peer >= 0)
            pf_down_model(md, id);
        for (uint64_t j = 1; j <= PF_CONNS; j++)
            if (md->c[j].peer == (int)peer)
                pf_down_model(md, j);
        md->c[id].peer = (int)peer;
    }
    if (md->known[peer] && md->dialable[peer] != dialable)
        for (int j = 1; j <= PF_CONNS; j++)
            if (md->c[j].told[peer])
                md->c[j].changed[peer] = true;
    md->known[peer] = true;
    md->dialable[peer] = dialable;
    pf_counts(md);
}

/* How many entries a built frame has: a few, or one past the cap (big frames make slow runs). */
static unsigned pf_count(uint8_t b, unsigned cap)
{
    return b & 0x80 ? cap + 1 : b & 7u;
}

/* A well-formed frame built from the chunk's bytes (commands 10-13). */
static void pf_built(pf_model *md, uint8_t cmd, const uint8_t *b, size_t n, uint64_t id)
{
    json_writer w;
    jw_init(&w, 0, (size_t)1 << 16);
    uint8_t b2 = n > 2 ? b[2] : 0, b3 = n > 3 ? b[3] : 0, b4 = n > 4 ? b[4] : 0;
    char pid[64];
    switch (cmd) {
    case 10:
        jw_lit(&w, "{\"type\":\"pex_handshake\",\"version\":");
        jw_u64(&w, b2 & 0x80 ? b2 & 0x7f : PEX_VERSION);
        jw_lit(&w, b2 & 0x40 ? ",\"network_id\":\"testnet\",\"interval\":"
                             : ",\"network_id\":\"mainnet\",\"interval\":");
        jw_u64(&w, (uint64_t)b3 | (uint64_t)b4 << 8);
        jw_lit(&w, ",\"flags\":[]}");
        break;
    case 11:
        jw_lit(&w, "{\"type\":\"pex_snapshot\",\"peers\":[");
        for (unsigned i = 0; i < pf_count(b2, PEX_MAX_SNAPSHOT); i++) {
            jw_lit(&w, i ? ",{\"peer_id\":\"n" : "{\"peer_id\":\"n");
            jw_u64(&w, i);
            jw_lit(&w, "\",\"addresses\":[{\"host\":\"198.51.100.1\",\"port\":1}]}");
        }
        jw_lit(&w, "]}");
        break;
    case 12:
        jw_lit(&w, "{\"type\":\"pex_delta\",\"added\":[");
        for (unsigned i = 0; i < pf_count(b2, PEX_MAX_ADDED); i++) {
            jw_lit(&w, i ? ",{\"peer_id\":\"n" : "{\"peer_id\":\"n");
            jw_u64(&w, i);
            jw_lit(&w, "\"}");
        }
        jw_lit(&w, "],\"dropped\":[");
        for (unsigned i = 0; i < pf_count(b3, PEX_MAX_DROPPED); i++) {
            jw_lit(&w, i ? ",\"n" : "\"n");
            jw_u64(&w, b4 & 1 ? i : 1000 + i);   /* odd: "n0" is in both lists */
            jw_lit(&w, "\"");
        }
        jw_lit(&w, "]}");
        break;
    default:
        jw_lit(&w, "{\"type\":\"pex_error\",\"code\":");
        jw_u64(&w, b2 & 7u);
        jw_lit(&w, ",\"message\":\"");
        pf_peer_id(b3, pid);
        jw_raw(&w, pid, b3 & 15u);
        jw_lit(&w, "\"}");
        break;
    }
    if (!w.failed && w.p)
        pf_frame(md, id, w.p, w.len);
    jw_free(&w);
}

static void pf_advance(pf_model *md, uint64_t ms)
{
    md->now.mono_ms += ms;
    md->now.wall_s += ms / 1000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pf_model md;
    memset(&md, 0, sizeof md);
    md.e = pex_engine_new("mainnet", 7, PF_CONNS, 42, pf_send, &md);
    if (!md.e)
        return 0;
    md.now = (pex_time){ 1000000, 1700000000 };
    for (int id = 0; id <= PF_CONNS; id++)
        md.c[id].peer = -1;
    pf_up(&md, 1, 1, true);
    pf_up(&md, 2, 2, false);
    pf_up(&md, 3, 3, false);

    size_t i = 0;
    while (i < size) {
        const uint8_t *chunk = data + i;
        const uint8_t *end = memchr(chunk, 0, size - i);
        size_t n = end ? (size_t)(end - chunk) : size - i;
        i += n + 1;
        if (n == 0)
            continue;
        uint8_t cmd = chunk[0];
        pf_advance(&md, (uint64_t)(cmd >> 4) * 5000);
        uint64_t who = n > 1 ? (uint64_t)(chunk[1] & 3) + 1 : 1;
        switch (cmd & 15) {
        case 0: case 1: case 2: case 3:
            pf_frame(&md, (uint64_t)(cmd & 3) + 1, (const char *)chunk + 1, n - 1);
            break;
        case 4:
        case 8:
            pf_tick(&md, (cmd & 15) == 4);
            break;
        case 5:
            pf_up(&md, who, n > 2 ? chunk[2] & 7u : 0, n > 3 && (chunk[3] & 1));
            break;
        case 6:
            pex_registrant_down(md.e, who);
            pf_down_model(&md, who);
            pf_counts(&md);
            break;
        case 7:
            pex_registrant_seen(md.e, who, md.now);
            pf_counts(&md);
            break;
        case 9:
            pf_advance(&md, (n > 2 ? chunk[2] : 0u) | (n > 3 ? (unsigned)chunk[3] << 8 : 0u));
            pf_advance(&md, (uint64_t)(n > 4 ? chunk[4] : 0) * 60000);
            break;
        case 14: {
            uint8_t w[4] = { 0, 0, 0, 0 };
            memcpy(w, chunk + 2 > chunk + n ? chunk : chunk + 2, n > 2 ? (n - 2 < 4 ? n - 2 : 4) : 0);
            md.now.wall_s = (uint64_t)w[0] | (uint64_t)w[1] << 8 | (uint64_t)w[2] << 16 |
                            (uint64_t)w[3] << 24;
            break;
        }
        case 15: {
            uint64_t due = pex_next_due(md.e);
            if (due != UINT64_MAX && due > md.now.mono_ms)
                pf_advance(&md, due - md.now.mono_ms);
            pf_tick(&md, true);
            break;
        }
        default:
            pf_built(&md, cmd & 15, chunk, n, who);
            break;
        }
    }
    pex_engine_free(md.e);
    return 0;
}
