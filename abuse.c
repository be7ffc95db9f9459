/* Per-source limits, per-connection meters and the ban list (see abuse.h). */
#include "abuse.h"

#include <string.h>

struct source_state {
    uint32_t open_conns;
    uint32_t live_regs;
    rate_window regs;
    uint64_t strike_window_start_ms;
    uint32_t strikes;
    uint64_t banned_until_ms;   /* 0: not banned */
};

bool abuse_init(abuse_guard *g, const relay_config *cfg, uint32_t capacity, const uint64_t seed[2])
{
    memset(g, 0, sizeof *g);
    g->cfg = cfg;
    return source_table_init(&g->sources, capacity, sizeof(struct source_state), seed);
}

void abuse_free(abuse_guard *g) { source_table_free(&g->sources); }

/* Records a strike; the threshold-th strike inside the window bans the source. */
static void strike(abuse_guard *g, struct source_state *st, uint64_t now_ms)
{
    const relay_config *cfg = g->cfg;
    g->counters.strikes++;
    if (cfg->ban_threshold == 0)
        return;
    if (st->strikes == 0 || now_ms - st->strike_window_start_ms >= cfg->ban_strike_window_secs * 1000u) {
        st->strike_window_start_ms = now_ms;
        st->strikes = 0;
    }
    if (++st->strikes >= cfg->ban_threshold) {
        st->banned_until_ms = now_ms + cfg->ban_duration_secs * 1000u;
        st->strikes = 0;
        g->counters.bans++;
    }
}

static bool banned(struct source_state *st, uint64_t now_ms)
{
    if (st->banned_until_ms == 0)
        return false;
    if (now_ms < st->banned_until_ms)
        return true;
    st->banned_until_ms = 0;   /* the ban lapsed by itself */
    return false;
}

enum abuse_verdict abuse_accept(abuse_guard *g, const source_key *key, uint64_t now_ms)
{
    const relay_config *cfg = g->cfg;
    struct source_state *st = source_table_upsert(&g->sources, key);
    if (cfg->ban_threshold > 0 && banned(st, now_ms)) {
        g->counters.refused_conns++;
        g->counters.by_verdict[ABUSE_BANNED]++;
        return ABUSE_BANNED;
    }
    if (cfg->max_connections_per_ip > 0 && st->open_conns >= cfg->max_connections_per_ip) {
        g->counters.refused_conns++;
        g->counters.by_verdict[ABUSE_TOO_MANY_CONNS]++;
        strike(g, st, now_ms);
        return ABUSE_TOO_MANY_CONNS;
    }
    st->open_conns++;
    return ABUSE_OK;
}

void abuse_conn_closed(abuse_guard *g, const source_key *key)
{
    /* The entry may have been evicted by a churn of other sources; then there is nothing to
     * undo (eviction can only make a limit more lenient, never refuse an honest peer). */
    struct source_state *st = source_table_find(&g->sources, key);
    if (st && st->open_conns > 0)
        st->open_conns--;
}

enum abuse_verdict abuse_register(abuse_guard *g, const source_key *key, uint64_t now_ms)
{
    const relay_config *cfg = g->cfg;
    struct source_state *st = source_table_upsert(&g->sources, key);
    if (cfg->registrations_per_ip_per_sec > 0 &&
        !rate_window_take(&st->regs, cfg->registrations_per_ip_per_sec, now_ms)) {
        g->counters.refused_regs++;
        g->counters.by_verdict[ABUSE_REGISTER_RATE]++;
        strike(g, st, now_ms);
        return ABUSE_REGISTER_RATE;
    }
    if (cfg->max_registrations_per_ip > 0 && st->live_regs >= cfg->max_registrations_per_ip) {
        g->counters.refused_regs++;
        g->counters.by_verdict[ABUSE_TOO_MANY_REGS]++;
        strike(g, st, now_ms);
        return ABUSE_TOO_MANY_REGS;
    }
    st->live_regs++;
    return ABUSE_OK;
}

void abuse_registration_ended(abuse_guard *g, const source_key *key)
{
    struct source_state *st = source_table_find(&g->sources, key);
    if (st && st->live_regs > 0)
        st->live_regs--;
}

enum abuse_verdict abuse_frame(abuse_guard *g, abuse_meter *m, const source_key *key,
                               uint64_t bytes, uint64_t now_ms)
{
    const relay_config *cfg = g->cfg;
    enum abuse_verdict v = ABUSE_OK;
    m->lifetime_bytes += bytes;
    if (cfg->messages_per_conn_per_sec > 0 &&
        !rate_window_take(&m->frames, cfg->messages_per_conn_per_sec, now_ms))
        v = ABUSE_MESSAGE_RATE;
    else if (cfg->bytes_per_conn_per_sec > 0) {
        /* Counted in bytes: the window's `used` grows by the frame size. */
        if (m->bytes.window != now_ms / 1000u) {
            m->bytes.window = now_ms / 1000u;
            m->bytes.used = 0;
        }
        m->bytes.used += bytes;
        if (m->bytes.used > cfg->bytes_per_conn_per_sec)
            v = ABUSE_BYTE_RATE;
    }
    if (v == ABUSE_OK && cfg->max_relayed_bytes_per_conn > 0 &&
        m->lifetime_bytes > cfg->max_relayed_bytes_per_conn)
        v = ABUSE_LIFETIME_BYTES;
    if (v != ABUSE_OK) {
        g->counters.disconnects++;
        g->counters.by_verdict[v]++;
        strike(g, source_table_upsert(&g->sources, key), now_ms);
    }
    return v;
}

void abuse_strike(abuse_guard *g, const source_key *key, uint64_t now_ms)
{
    g->counters.disconnects++;
    g->counters.by_verdict[ABUSE_MESSAGE_TOO_LARGE]++;
    strike(g, source_table_upsert(&g->sources, key), now_ms);
}

const char *abuse_reason(enum abuse_verdict v)
{
    switch (v) {
    case ABUSE_OK: return "ok";
    case ABUSE_BANNED: return "source is temporarily banned";
    case ABUSE_TOO_MANY_CONNS: return "too many open connections from this source";
    case ABUSE_REGISTER_RATE: return "registration rate limit exceeded for your address";
    case ABUSE_TOO_MANY_REGS: return "too many concurrent registrations from your address";
    case ABUSE_MESSAGE_RATE: return "inbound message rate limit exceeded";
    case ABUSE_BYTE_RATE: return "inbound byte rate limit exceeded";
    case ABUSE_LIFETIME_BYTES: return "connection relayed byte limit reached";
    case ABUSE_MESSAGE_TOO_LARGE: return "message too large";
    case ABUSE_VERDICTS: break;
    }
    return "limit exceeded";
}
