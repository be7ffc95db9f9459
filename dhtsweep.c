/* The RLY-009 sweep (dhtsweep.h): the question goes out as one shared frame queued to every
 * registered peer; each answer is counted against the connection id it arrived on, which
 * dht.c only accepts from peers asked in this sweep, once each. */
#include "dhtsweep.h"

#include "buf.h"
#include "conn.h"
#include "log.h"
#include "wire.h"

#include <stdlib.h>

struct dhtsweep {
    loop *lp;
    relay *relay;
    uint64_t interval_ms;
    uint64_t started_ms;       /* when the latest sweep asked */
    dht_view *view;
    loop_timer next, window;
    frame *question;           /* the current sweep's get_dht_records */
    size_t asked;
};

static void ask(void *ctx, const relay_peer *p)
{
    dhtsweep *s = ctx;
    if (dht_asked(s->view, conn_id(p->c))) {
        conn_send(p->c, s->question);
        s->asked++;
    }
}

static void arm(dhtsweep *s, loop_timer *t, uint64_t due)
{
    if (!loop_timer_set(s->lp, t, due))
        log_warn("DHT sweep: out of memory arming its timer; the /dht view stops refreshing");
}

static void start_sweep(void *ctx)
{
    dhtsweep *s = ctx;
    uint64_t now = loop_now_ms(s->lp);
    json_writer w;
    s->started_ms = now;
    if (!dht_sweep_begin(s->view, relay_peer_count(s->relay), now)) {
        log_warn("DHT sweep: out of memory starting a sweep; trying again next interval");
        arm(s, &s->next, now + s->interval_ms);
        return;
    }
    jw_init(&w, 0, 64);
    wire_write_get_dht_records(&w, DHT_MAX_KEYS_PER_PEER);
    s->question = w.failed ? NULL : frame_text(w.p, w.len);
    jw_free(&w);
    s->asked = 0;
    if (s->question) {
        relay_each_peer(s->relay, ask, s);
        frame_unref(s->question);
        s->question = NULL;
    }
    log_debug("DHT sweep: asked %zu registered peers for their records", s->asked);
    arm(s, &s->window, dht_window_end(s->view));
}

static void end_sweep(void *ctx)
{
    dhtsweep *s = ctx;
    uint64_t now = loop_now_ms(s->lp);
    if (dht_sweep_end(s->view, loop_wall_secs(s->lp)))
        log_debug("DHT sweep: view of %zu keys from %zu of %zu peers asked",
                  dht_view_total_keys(s->view), dht_view_reporting_peers(s->view), s->asked);
    else
        log_warn("DHT sweep: out of memory building the view; the previous one stays");
    arm(s, &s->next, s->started_ms + s->interval_ms > now ? s->started_ms + s->interval_ms : now);
}

static void on_records(void *ctx, conn *c, const wire_msg *m, char *scratch)
{
    dhtsweep *s = ctx;
    enum dht_verdict v = dht_answer(s->view, conn_id(c), m, scratch, loop_now_ms(s->lp));
    if (v != DHT_COUNTED)
        log_debug("conn %llu: dht_records not counted (%s)", (unsigned long long)conn_id(c),
                  v == DHT_NO_SWEEP ? "no sweep is collecting"
                  : v == DHT_NOT_ASKED ? "not asked in this sweep" : "already answered");
}

dhtsweep *dhtsweep_new(loop *lp, relay *r, uint64_t interval_secs, const uint64_t seed[2])
{
    dhtsweep *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->lp = lp;
    s->relay = r;
    s->interval_ms = interval_secs * 1000u;   /* config.c caps seconds at 2^32 - 1 */
    s->view = dht_new(seed);
    if (!s->view) {
        free(s);
        return NULL;
    }
    loop_timer_init(&s->next, start_sweep, s);
    loop_timer_init(&s->window, end_sweep, s);
    if (interval_secs > 0) {
        relay_set_dht_sink(r, on_records, s);
        arm(s, &s->next, loop_now_ms(lp) + s->interval_ms);
    }
    return s;
}

void dhtsweep_free(dhtsweep *s)
{
    if (!s)
        return;
    relay_set_dht_sink(s->relay, NULL, NULL);
    loop_timer_stop(s->lp, &s->next);
    loop_timer_stop(s->lp, &s->window);
    dht_free(s->view);
    free(s);
}

const dht_view *dhtsweep_view(const dhtsweep *s) { return s->view; }
