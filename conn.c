/* One connection's life (see conn.h): the PROXY preface from trusted proxies, per-source
 * accounting on the observed source, the transport, the HTTP head, then WebSocket frames for the
 * relay or one answer from the listener's route table; bounded output flushed with gathered
 * writes; one deadline per connection on the loop's timer heap. */
#include "conn.h"

#include "http.h"
#include "log.h"
#include "proxy.h"
#include "ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room asked for before each read once a connection is open. A frame that needs more gets
 * twice its size in one step (see process_frames), so a 16 KiB record's ~58 KB frame takes one
 * larger block instead of climbing through three, while small frames keep small buffers. */
#define READ_CHUNK (16384 - 64)   /* with the block's header, one 16 KiB pool block */
/* Forwarded frames may point into the input block (conn_input_block) when the span is at least
 * this share of it, so a queue's byte count understates the memory it pins by at most this. */
#define HOLD_MIN_SHARE 4
#define READ_BUDGET_PER_PASS (256 * 1024)
#define WRITE_BUDGET_PER_PASS (256 * 1024)
/* A keepalive answer goes ahead of a queue holding more than this; with less, order is kept
 * (a pipelined register and ping are answered in order). */
#define KEEPALIVE_JUMP_BYTES (64 * 1024)
#define CLOSE_GRACE_MS 2000
/* Once the last byte is out, a closing connection shuts its sending side and reads (and drops)
 * what the peer still sends for at most this long or this many bytes before the socket goes:
 * closing with unread input would reset the connection, and a reset can overtake the close frame
 * on its way (a proxy in between drops what it holds for the client when it sees one). */
#define LINGER_MS 1000
#define LINGER_MAX_BYTES (1024 * 1024)
/* The work one pass may start, in frames queued (conn_pass_has_room): once a pass has queued
 * this many, a message whose handler expects to queue many more waits for the next pass, so a
 * registration storm on a large network (each registration one frame for every member, each
 * peers answer as many entries) runs in passes of bounded length and a keepalive anywhere waits
 * for at most one of them. Passes stay large enough that each member's notifications of a pass
 * leave in one write. */
#define FRAMES_PER_PASS (256u * 1024u)
/* Frames per gathered write: as many as the transport takes at once, so a backlog of small
 * notifications leaves in large writes. */
#define WRITE_IOVS COMPAT_IOV_MAX
/* Membership notices (conn_group_send_notice) are written as Nagle writes small segments: the first
 * leaves at the end of its pass, and a connection that was sent notices alone less than
 * --notice-hold-ms ago holds the next ones until --notice-hold-ms after they began to wait.
 * While registrations or departures stream through a large network each member's notices then
 * leave in a few large writes rather than one small write a pass (in a reconnect storm each
 * write is a syscall and a trip through the TCP stack, and those were most of the relay's CPU).
 * Held notices leave sooner once NOTICE_HOLD_BYTES are queued, or with the first other frame
 * queued behind them (a pong, an answer, a relayed message), which keeps every connection's
 * order. */
#define NOTICE_HOLD_BYTES (64 * 1024)

enum conn_state { CS_PROXY, CS_HEAD, CS_OPEN, CS_CLOSING };

struct conn {
    conn_listener *ls;
    conn_hub *hub;
    xport *x;                 /* NULL while the PROXY preface is read */
    socket_t fd;
    int slot;
    uint8_t state;
    bool in_pending;          /* on the hub's flush list */
    bool urgent;              /* queued output other than notices: it leaves this pass */
    bool holding;             /* on the hub's holding list: only notices queued, waiting */
    bool in_again;            /* on the hub's list of input left for the next pass */
    bool held;                /* held_msg was parsed but its handler asked for a later pass */
    bool dead;                /* on the hub's free list: no more I/O */
    bool source_counted;      /* abuse_accept counted it: abuse_conn_closed when it goes */
    addr_t peer;              /* observed source, IPv4-mapped shown as IPv4 */
    source_key source;        /* what per-source limits count against */
    abuse_meter meter;        /* this connection's inbound rate limits */
    frame *in_blk;            /* holds the input; shared with frames forwarding spans of it */
    uint8_t *in;              /* input bytes in[in_off .. in_len), in in_blk */
    size_t in_off, in_len, in_cap;
    ws_decoder ws;
    uint8_t *held_msg;        /* the held message (in the input block or the decoder's buffer,
                               * both left alone while it waits) and the bytes its frame takes */
    size_t held_len, held_used;
    outq out;
    uint64_t accepted_ms, last_in_ms, close_deadline_ms;
    bool lingering;               /* closing, all sent, the sending side shut: draining input */
    size_t lingered_bytes;
    loop_timer deadline;
    void *registration;       /* the relay's, NULL until registered */
    conn *next_pending, *next_dead, *next_again;
    conn *hold_prev, *hold_next;
    conn_group *group;        /* the notices it hears, NULL: none */
    conn *group_prev, *group_next;
    uint32_t heard;           /* of its group's notice log, the bytes already queued here */
    uint64_t hold_since_ms;
    uint64_t notices_sent_ms; /* when a write of notices alone last began (0: never) */
    conn *all_prev, *all_next;
    uint64_t id;              /* for logs */
};

/* Below this many members a group's notices are queued member by member: a shared log block
 * pays for itself only when many members read it. */
#define GROUP_LOG_MIN_MEMBERS 8

struct conn_group {
    conn_hub *hub;            /* the members' (set by the first to join) */
    conn *members;
    size_t count;
    notice_log log;           /* this pass's notices, when stored once (empty between passes) */
    bool busy;                /* on the hub's busy_groups: the log is handed out at pass end */
    conn_group *next_busy;
};

static void on_deadline(void *ctx);
static void unhold(conn *c);

/* ---- the relay's view ---- */

const addr_t *conn_source(const conn *c) { return &c->peer; }
const source_key *conn_source_key(const conn *c) { return &c->source; }
uint64_t conn_id(const conn *c) { return c->id; }
const char *conn_identity(const conn *c) { return c->x ? xport_peer_identity(c->x) : NULL; }
void *conn_registration(const conn *c) { return c->registration; }

/* ---- deadlines ---- */

static uint64_t deadline_of(const conn *c)
{
    const relay_config *cfg = c->hub->cfg;
    if (c->state == CS_CLOSING)
        return c->close_deadline_ms;
    if (c->registration) {
        /* Registered: the liveness sweep, which runs on a fixed grid of health-check ticks,
         * prunes at the first tick past the liveness deadline; the idle timeout backs it up. */
        uint64_t idle = c->last_in_ms + cfg->idle_timeout_secs * 1000u;
        uint64_t live = c->last_in_ms + cfg->liveness_deadline_secs * 1000u;
        uint64_t step = cfg->health_check_interval_secs * 1000u;
        uint64_t start = c->hub->start_ms;
        if (step > 0 && live > start)
            live = start + (live - start + step - 1) / step * step;
        return live < idle ? live : idle;
    }
    /* A register the relay holds for a later pass arrived in time: the wait is the relay's. */
    if (c->held)
        return loop_now_ms(c->hub->lp) + cfg->register_timeout_secs * 1000u;
    /* Absolute from accept: a socket that never sends a byte (or never finishes its PROXY
     * preface or TLS handshake) is reaped as surely as one that upgrades and never registers. */
    return c->accepted_ms + cfg->register_timeout_secs * 1000u;
}

/* Files the deadline anew. Inbound activity only moves it later, which is left to be noticed
 * when the timer fires; a state change calls this. */
static void rearm_deadline(conn *c)
{
    if (!loop_timer_set(c->hub->lp, &c->deadline, deadline_of(c)))
        log_warn("conn %llu: out of memory arming its deadline", (unsigned long long)c->id);
}

void conn_set_registration(conn *c, void *registration)
{
    c->registration = registration;
    if (!c->dead && c->state != CS_CLOSING)
        rearm_deadline(c);
}

/* ---- teardown ---- */

static void schedule_free(conn *c)
{
    conn_hub *hub = c->hub;
    if (c->dead)
        return;
    c->dead = true;
    if (c->registration)
        hub->handler.on_close(hub->handler.ctx, c);
    c->next_dead = hub->dead;
    hub->dead = c;
}

static void free_conn(conn *c)
{
    conn_hub *hub = c->hub;
    loop_del(hub->lp, c->slot);
    loop_timer_stop(hub->lp, &c->deadline);
    if (c->x)
        xport_close(c->x);
    else
        compat_close(c->fd);
    unhold(c);
    conn_group_leave(c);
    outq_clear(&c->out);
    ws_decoder_free(&c->ws);
    frame_unref(c->in_blk);
    c->ls->open--;
    if (c->source_counted)
        abuse_conn_closed(hub->abuse, &c->source);
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        hub->all = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    free(c);
}

/* ---- output ---- */

static void list_pending(conn *c)
{
    if (!c->in_pending && !c->dead) {
        c->in_pending = true;
        c->next_pending = c->hub->pending;
        c->hub->pending = c;
    }
}

/* Output that must leave at the end of this pass. */
static void mark_pending(conn *c)
{
    c->urgent = true;
    list_pending(c);
}

/* The holding list is in the order connections began to wait, so the oldest is at its head and
 * the hub's timer is due when it is. False when c must be flushed now instead (the timer could
 * not be armed). */
static bool hold(conn *c, uint64_t now)
{
    conn_hub *hub = c->hub;
    if (c->holding)
        return true;
    if (!loop_timer_armed(&hub->hold_timer) &&
        !loop_timer_set(hub->lp, &hub->hold_timer, now + hub->cfg->notice_hold_ms))
        return false;
    c->holding = true;
    c->hold_since_ms = now;
    c->hold_prev = hub->holding_tail;
    c->hold_next = NULL;
    if (hub->holding_tail)
        hub->holding_tail->hold_next = c;
    else
        hub->holding = c;
    hub->holding_tail = c;
    return true;
}

static void unhold(conn *c)
{
    conn_hub *hub = c->hub;
    if (!c->holding)
        return;
    c->holding = false;
    if (c->hold_prev)
        c->hold_prev->hold_next = c->hold_next;
    else
        hub->holding = c->hold_next;
    if (c->hold_next)
        c->hold_next->hold_prev = c->hold_prev;
    else
        hub->holding_tail = c->hold_prev;
    c->hold_prev = c->hold_next = NULL;
}

/* Lists the connections whose notices have waited --notice-hold-ms for this pass's flush (which
 * finds their wait over, see may_hold) and files the timer for the next. */
static void on_hold_due(void *ctx)
{
    conn_hub *hub = ctx;
    uint64_t now = loop_now_ms(hub->lp), hold_ms = hub->cfg->notice_hold_ms;
    conn *c = hub->holding;
    for (; c && now - c->hold_since_ms >= hold_ms; c = c->hold_next)
        list_pending(c);
    if (c && !loop_timer_set(hub->lp, &hub->hold_timer, c->hold_since_ms + hold_ms))
        for (; c; c = c->hold_next)
            mark_pending(c);   /* no timer to end their wait: they leave now */
}

/* Whether c's queue (notices only) may wait past this pass: a backlogged socket already has
 * its write interest, and what it writes then is as large as it can take. Waiting never fills
 * more than half of the queue's caps, so the next pass has room as it would without it. */
static bool may_hold(const conn *c, uint64_t now)
{
    const relay_config *cfg = c->hub->cfg;
    /* urgent first: it is what every pass's answers and forwarded messages stop at */
    if (c->urgent || cfg->notice_hold_ms == 0 || outq_empty(&c->out) || c->dead || c->state != CS_OPEN ||
        !c->x || c->out.bytes >= NOTICE_HOLD_BYTES ||
        c->out.bytes >= cfg->outbound_queue_bytes / 2 || c->out.msgs >= cfg->outbound_queue_capacity / 2 ||
        (loop_events(c->hub->lp, c->slot) & LOOP_WRITE))
        return false;
    return c->holding ? now - c->hold_since_ms < cfg->notice_hold_ms
                      : c->notices_sent_ms != 0 && now - c->notices_sent_ms < cfg->notice_hold_ms;
}

bool conn_pass_has_room(const conn *c, size_t frames)
{
    const conn_hub *hub = c->hub;
    if (hub->pass_frames == 0)
        return true;   /* a pass always takes one message, however large its work */
    return hub->pass_frames < FRAMES_PER_PASS && frames <= FRAMES_PER_PASS - hub->pass_frames;
}

void conn_pass_charge(conn *c, size_t frames)
{
    c->hub->pass_frames += frames;
}

/* Queues, as one entry, the notices of c's group that c has not heard yet: before anything
 * else is queued to c, and for every member at the end of the pass. */
static void hear_notices(conn *c)
{
    conn_group *g = c->group;
    const relay_config *cfg = c->hub->cfg;
    uint32_t from, dropped;
    if (!g || c->heard >= g->log.used)
        return;
    from = c->heard;
    c->heard = g->log.used;
    if (c->dead || c->state == CS_CLOSING)
        return;
    /* config.c keeps the count within 32 bits and the byte limit within SIZE_MAX */
    dropped = outq_push_notices(&c->out, &g->log, from, (uint32_t)cfg->outbound_queue_capacity,
                                (size_t)cfg->outbound_queue_bytes);
    if (dropped > 0) {
        c->hub->queue_drops += dropped;
        log_debug("conn %llu: outbound queue full, %u notices dropped", (unsigned long long)c->id,
                  dropped);
    }
    list_pending(c);
}

/* Queues f within the caps; false when it was not queued. */
static bool push_counted(conn *c, frame *f)
{
    const relay_config *cfg = c->hub->cfg;
    hear_notices(c);
    if (c->dead || c->state == CS_CLOSING)
        return false;
    c->hub->pass_frames++;
    /* A full queue drops the message: a reader that stopped draining never stalls the sender,
     * the loop or any other peer. */
    /* config.c keeps the count within 32 bits and the byte limit within SIZE_MAX */
    if (!outq_push(&c->out, f, (uint32_t)cfg->outbound_queue_capacity,
                   (size_t)cfg->outbound_queue_bytes)) {
        c->hub->queue_drops++;
        log_debug("conn %llu: outbound queue full, message dropped", (unsigned long long)c->id);
        return false;
    }
    return true;
}

void conn_send(conn *c, frame *f)
{
    if (push_counted(c, f))
        mark_pending(c);
}

static void send_notice(conn *c, frame *f)
{
    if (push_counted(c, f))
        list_pending(c);
}

void conn_send_keepalive(conn *c, frame *f)
{
    const relay_config *cfg = c->hub->cfg;
    bool jump;
    hear_notices(c);
    jump = c->out.bytes > KEEPALIVE_JUMP_BYTES;
    if (c->dead || c->state == CS_CLOSING)
        return;
    if (!(jump ? outq_push_urgent : outq_push)(&c->out, f, (uint32_t)cfg->outbound_queue_capacity,
                                               (size_t)cfg->outbound_queue_bytes)) {
        c->hub->queue_drops++;
        return;
    }
    mark_pending(c);
}

/* One-off answers (the 101, an HTTP response, the close frame: at most one of each per
 * connection) must go out even past the message caps. */
static void send_bypassing_limits(conn *c, frame *f)
{
    if (!f)
        return;
    hear_notices(c);
    if (outq_push(&c->out, f, UINT32_MAX, SIZE_MAX))
        mark_pending(c);
    frame_unref(f);
}

/* ---- groups ---- */

conn_group *conn_group_new(void) { return calloc(1, sizeof(conn_group)); }

void conn_group_join(conn_group *g, conn *c)
{
    g->hub = c->hub;
    c->group = g;
    c->heard = g->log.used;
    c->group_prev = NULL;
    c->group_next = g->members;
    if (g->members)
        g->members->group_prev = c;
    g->members = c;
    g->count++;
}

void conn_group_leave(conn *c)
{
    conn_group *g = c->group;
    if (!g)
        return;
    hear_notices(c);
    if (c->group_prev)
        c->group_prev->group_next = c->group_next;
    else
        g->members = c->group_next;
    if (c->group_next)
        c->group_next->group_prev = c->group_prev;
    c->group_prev = c->group_next = NULL;
    c->group = NULL;
    g->count--;
}

/* Every member queues what it has not heard of the log, which then starts over (full: in a
 * block twice the size). */
static void hand_out(conn_group *g, bool full)
{
    for (conn *m = g->members; m; m = m->group_next) {
        hear_notices(m);
        m->heard = 0;
    }
    notice_log_clear(&g->log, full);
}

void conn_group_free(conn_group *g)
{
    if (!g)
        return;
    while (g->members)
        conn_group_leave(g->members);
    if (g->busy) {
        conn_group **link = &g->hub->busy_groups;
        while (*link != g)
            link = &(*link)->next_busy;
        *link = g->next_busy;
    }
    notice_log_clear(&g->log, false);
    free(g);
}

/* Stored once in the group's log when the group is large (or already has a log this pass), else
 * queued member by member; either way it is a frame queued per member for the pass's budget. */
void conn_group_send_notice(conn_group *g, conn *skip, frame *f)
{
    bool skipping = skip && skip->group == g;
    if (skipping)
        hear_notices(skip);   /* what it had not heard stays ahead of what it is sent next */
    if (g->log.blk || g->count >= GROUP_LOG_MIN_MEMBERS) {
        bool stored = notice_log_append(&g->log, f);
        if (!stored && g->log.blk) {
            hand_out(g, true);
            stored = notice_log_append(&g->log, f);
        }
        if (stored) {
            if (!g->busy) {
                g->busy = true;
                g->next_busy = g->hub->busy_groups;
                g->hub->busy_groups = g;
            }
            if (skipping)
                skip->heard = g->log.used;
            g->hub->pass_frames += g->count - skipping;
            return;
        }
    }
    for (conn *m = g->members; m; m = m->group_next)
        if (m != skip)
            send_notice(m, f);
}

/* Stops reading and gives what is queued CLOSE_GRACE_MS to leave before the socket goes. */
static void begin_closing(conn *c)
{
    c->state = CS_CLOSING;
    c->held = false;
    c->close_deadline_ms = loop_now_ms(c->hub->lp) + CLOSE_GRACE_MS;
    rearm_deadline(c);
    mark_pending(c);
}

/* Pongs obey the queue caps like any message: a client that pings without reading must not
 * grow its queue (a dropped pong is harmless, the next ping gets one). */
static void send_pong(conn *c, const uint8_t *bytes, size_t len)
{
    frame *f = frame_raw(bytes, len);
    if (f) {
        conn_send_keepalive(c, f);
        frame_unref(f);
    }
}

void conn_close(conn *c, uint16_t code, const char *reason)
{
    uint8_t buf[WS_MAX_HEADER + 2 + 123];
    if (c->dead || c->state == CS_CLOSING)
        return;
    if (c->registration)
        c->hub->handler.on_close(c->hub->handler.ctx, c);
    if (c->state == CS_OPEN)
        send_bypassing_limits(c, frame_raw(buf, ws_close_frame(buf, code, reason)));
    begin_closing(c);
}

/* Answers the request with a short text response and closes. */
static void http_answer(conn *c, int status, const char *extra_headers, const char *body)
{
    char buf[1024];
    size_t n = http_response_ex(buf, sizeof buf, status, "text/plain; charset=utf-8", extra_headers,
                                body, strlen(body));
    if (n > 0)
        send_bypassing_limits(c, frame_raw((const uint8_t *)buf, n));
    begin_closing(c);
}

/* Writes queued frames with gathered writes, at most WRITE_BUDGET_PER_PASS bytes so one fast
 * reader cannot starve the rest, then lets the transport push what it holds. Returns false
 * when the connection failed. */
static bool flush(conn *c)
{
    size_t budget = WRITE_BUDGET_PER_PASS;
    if (!c->x)
        return true;
    outq_settle(&c->out);
    while (!outq_empty(&c->out) && budget > 0) {
        const void *bases[WRITE_IOVS];
        size_t lens[WRITE_IOVS];
        struct compat_iov iov[WRITE_IOVS];
        int n = outq_peek(&c->out, bases, lens, WRITE_IOVS);
        long w;
        if (n == 0)
            break;   /* the next frame is a deferred one, filled at the end of the pass */
        for (int i = 0; i < n; i++) {
            iov[i].base = bases[i];
            iov[i].len = lens[i];
        }
        w = xport_writev(c->x, iov, n);
        if (w == XPORT_AGAIN)
            break;
        if (w < 0) {
            log_debug("conn %llu: write failed", (unsigned long long)c->id);
            return false;
        }
        outq_consume(&c->out, (size_t)w);
        budget = (size_t)w >= budget ? 0 : budget - (size_t)w;
    }
    return xport_flush(c->x) != XPORT_ERROR;
}

static bool all_sent(const conn *c)
{
    return outq_empty(&c->out) && (!c->x || (xport_wants(c->x) & LOOP_WRITE) == 0);
}

static void update_interest(conn *c)
{
    /* a held message stops reading: its socket's readiness would only report the same wait */
    int ev = (c->state != CS_CLOSING && !c->held) || c->lingering ? LOOP_READ : 0;
    if (!outq_empty(&c->out) && !c->holding)
        ev |= LOOP_WRITE;
    if (c->x)
        ev |= xport_wants(c->x);
    if (loop_events(c->hub->lp, c->slot) != ev)
        loop_set_events(c->hub->lp, c->slot, ev);
}

static void flush_and_settle(conn *c)
{
    if (c->dead)
        return;
    unhold(c);
    c->urgent = false;
    if (!flush(c)) {
        schedule_free(c);
        return;
    }
    if (c->state == CS_CLOSING && !c->lingering && all_sent(c)) {
        if (!c->x) {
            schedule_free(c);
            return;
        }
        int ended = xport_end_output(c->x);
        if (ended == XPORT_ERROR) {
            schedule_free(c);
            return;
        }
        if (ended == XPORT_AGAIN) {
            update_interest(c);
            return;
        }
        c->lingering = true;
        c->close_deadline_ms = loop_now_ms(c->hub->lp) + LINGER_MS;
        rearm_deadline(c);
    }
    update_interest(c);
}

/* Drops what a lingering connection's peer still sends; the end of its stream, an error or
 * LINGER_MAX_BYTES ends the linger. */
static void drain_lingering(conn *c)
{
    uint8_t sink[16384];
    for (size_t taken = 0; taken < READ_BUDGET_PER_PASS; taken += sizeof sink) {
        long n = xport_recv(c->x->fd, sink, sizeof sink);
        if (n == XPORT_AGAIN)
            return;
        if (n <= 0 || (c->lingered_bytes += (size_t)n) > LINGER_MAX_BYTES) {
            schedule_free(c);
            return;
        }
    }
}

/* ---- input ---- */

static bool ensure_in_room(conn *c, size_t need_total)
{
    size_t live = c->in_len - c->in_off;
    /* Bytes forwarded frames still point into stay where they are: the live bytes move to a new
     * block instead of down to the start of this one. */
    bool shared = c->in_blk && c->in_blk->refs > 1;
    bool compact = c->in_off > 0 && (c->in_cap - c->in_len < READ_CHUNK || need_total > c->in_cap - c->in_off);
    if (compact && !shared) {
        memmove(c->in, c->in + c->in_off, live);
        c->in_off = 0;
        c->in_len = live;
    }
    if (need_total > c->in_cap || (compact && shared)) {
        size_t cap;
        frame *nb = frame_block(need_total > c->in_cap ? need_total : c->in_cap, &cap);
        if (!nb)
            return false;
        if (c->in_blk) {
            memcpy(nb->data, c->in + c->in_off, live);
            frame_unref(c->in_blk);
        }
        c->in_blk = nb;
        c->in = nb->data;
        c->in_cap = cap;
        c->in_off = 0;
        c->in_len = live;
    }
    return true;
}

static void release_in_if_empty(conn *c)
{
    /* An idle connection holds no input buffer: that is most of what keeps a reservation small. */
    if (c->in_blk && c->in_off == c->in_len) {
        frame_unref(c->in_blk);
        c->in_blk = NULL;
        c->in = NULL;
        c->in_cap = c->in_off = c->in_len = 0;
    }
}

frame *conn_input_block(const conn *c, const void *p, size_t n)
{
    uintptr_t at = (uintptr_t)p, lo = (uintptr_t)c->in;
    if (!c->in_blk || at < lo || at - lo > c->in_len || n > c->in_len - (at - lo) ||
        n * HOLD_MIN_SHARE < c->in_cap)
        return NULL;
    return c->in_blk;
}

/* Per-source limits count the connection once its observed source is known: at accept, or after
 * a trusted proxy's preface. False when the source is refused (banned, or over its cap). */
static bool count_source(conn *c)
{
    source_key_make(&c->source, &c->peer, SOURCE_IPV6_64);
    if (!c->ls->per_source_limits)
        return true;
    enum abuse_verdict v = abuse_accept(c->hub->abuse, &c->source, loop_now_ms(c->hub->lp));
    if (v != ABUSE_OK) {
        log_debug("conn %llu: refused: %s", (unsigned long long)c->id, abuse_reason(v));
        return false;
    }
    c->source_counted = true;
    return true;
}

static bool open_transport(conn *c, const void *prefix, size_t prefix_len)
{
    c->x = c->ls->transport.open(c->ls->transport.ctx, c->fd, prefix, prefix_len);
    if (!c->x) {
        log_warn("conn %llu: could not set up its transport", (unsigned long long)c->id);
        return false;
    }
    c->state = CS_HEAD;
    return true;
}

/* The bytes so far may hold a PROXY preface; once it is complete (or known to be absent) the
 * observed source is settled and the rest of the bytes go to the transport. */
static void process_proxy(conn *c)
{
    proxy_result pr;
    long n = proxy_parse(c->in + c->in_off, c->in_len - c->in_off, &pr);
    bool ok;
    if (n == PROXY_NEED_MORE) {
        if (c->in_len - c->in_off < PROXY_MAX_HEADER)
            return;
        n = PROXY_INVALID;
    }
    if (n == PROXY_INVALID) {
        log_debug("conn %llu: unreadable PROXY preface from a trusted proxy, closing",
                  (unsigned long long)c->id);
        schedule_free(c);
        return;
    }
    if (n > 0) {
        if (pr.has_source) {
            c->peer = pr.source;
            addr_unmap(&c->peer);
        } else {
            log_debug("conn %llu: PROXY v%d preface ignored (%s), keeping the socket address",
                      (unsigned long long)c->id, pr.version, pr.ignored);
        }
        c->in_off += (size_t)n;
    }
    if (LOG_ENABLED(LOG_DEBUG) && n > 0 && pr.has_source) {
        char text[ADDR_STRLEN];
        addr_format(&c->peer, text);
        log_debug("conn %llu: PROXY v%d source %s", (unsigned long long)c->id, pr.version, text);
    }
    ok = count_source(c) && open_transport(c, c->in + c->in_off, c->in_len - c->in_off);
    c->in_off = c->in_len;
    if (!ok)
        schedule_free(c);
}

static void wire_request(conn *c, const http_request *req)
{
    char resp[512];
    size_t n = 0;
    switch (ws_upgrade(req, resp, sizeof resp, &n)) {
    case WS_UPGRADE_OK:
        send_bypassing_limits(c, frame_raw((const uint8_t *)resp, n));
        c->state = CS_OPEN;
        ws_decoder_init(&c->ws, (size_t)c->hub->cfg->max_message_bytes);   /* <= SIZE_MAX - 1 */
        break;
    case WS_UPGRADE_NOT_WEBSOCKET:
        send_bypassing_limits(c, routes_answer(c->ls->routes, req));
        begin_closing(c);
        break;
    case WS_UPGRADE_BAD_VERSION:
        http_answer(c, 426, "Sec-WebSocket-Version: 13\r\n", "websocket version 13 required\n");
        break;
    default:
        http_answer(c, 400, NULL, "bad websocket upgrade request\n");
        break;
    }
}

static void process_head(conn *c)
{
    http_request req;
    long n = http_parse_request((const char *)c->in + c->in_off, c->in_len - c->in_off,
                                HTTP_MAX_HEAD, &req);
    c->hub->pass_busy = true;
    if (n == HTTP_NEED_MORE)
        return;
    if (n == HTTP_BAD) {
        http_answer(c, 400, NULL, "malformed request\n");
        return;
    }
    if (n == HTTP_TOO_LARGE) {
        http_answer(c, 431, NULL, "request head too large\n");
        return;
    }
    if (c->ls->websocket) {
        wire_request(c, &req);
    } else {
        send_bypassing_limits(c, routes_answer(c->ls->routes, &req));
        begin_closing(c);
    }
    c->in_off += (size_t)n;
}

static void mark_again(conn *c)
{
    conn_hub *hub = c->hub;
    if (!c->in_again) {
        c->in_again = true;
        c->next_again = NULL;
        if (hub->again_tail)
            hub->again_tail->next_again = c;
        else
            hub->again = c;
        hub->again_tail = c;
    }
}

/* Hands a message to the relay. Returns false when its handler left it for a later pass: it is
 * held as parsed (not parsed again, not counted again) and the connection waits on the list of
 * input left for the next pass, reading nothing more until it is handled. */
static bool deliver(conn *c, uint8_t *msg, size_t len, size_t used)
{
    conn_hub *hub = c->hub;
    switch (hub->handler.on_message(hub->handler.ctx, c, msg, len)) {
    case CONN_MSG_KEEPALIVE:
        hub->pass_keepalive = true;
        break;
    case CONN_MSG_LATER:
        hub->pass_busy = hub->pass_full = true;
        hub->deferred_messages++;
        c->held = true;
        c->held_msg = msg;
        c->held_len = len;
        c->held_used = used;
        mark_again(c);
        update_interest(c);
        return false;
    default:
        hub->pass_busy = true;
        break;
    }
    c->in_off += used;
    return true;
}

/* Handles the complete frames buffered. Returns false when a message was left for a later
 * pass. */
static bool process_frames(conn *c)
{
    conn_hub *hub = c->hub;
    if (c->held && c->state == CS_OPEN && !c->dead) {
        c->held = false;
        if (!deliver(c, c->held_msg, c->held_len, c->held_used))
            return false;
        update_interest(c);
    }
    while (c->state == CS_OPEN && !c->dead) {
        ws_result r;
        uint64_t now = loop_now_ms(hub->lp);
        size_t used = ws_parse(&c->ws, c->in + c->in_off, c->in_len - c->in_off, &r);
        if (r.kind == WS_NEED_MORE) {
            /* saturating: a need past SIZE_MAX / 2 fails in the allocator, not by wrapping */
            if (!ensure_in_room(c, r.need > SIZE_MAX / 2 ? r.need : r.need * 2))
                conn_close(c, WS_CLOSE_INTERNAL, "out of memory");
            return true;
        }
        c->last_in_ms = now;
        if (r.kind != WS_FAIL) {
            enum abuse_verdict v = abuse_frame(hub->abuse, &c->meter, &c->source, used, now);
            if (v != ABUSE_OK) {
                log_debug("conn %llu: %s, disconnecting", (unsigned long long)c->id, abuse_reason(v));
                conn_close(c, WS_CLOSE_POLICY, abuse_reason(v));
                return true;
            }
        }
        switch (r.kind) {
        case WS_MESSAGE:
            if (!deliver(c, r.data, r.len, used))
                return false;
            continue;   /* deliver moved past the frame */
        case WS_PING: {
            uint8_t pong[WS_MAX_HEADER + 125];
            uint8_t *h;
            memcpy(pong + WS_MAX_HEADER, r.data, r.len);
            h = ws_write_header_before(pong + WS_MAX_HEADER, WS_OP_PONG, r.len);
            send_pong(c, h, (size_t)(pong + WS_MAX_HEADER + r.len - h));
            hub->pass_keepalive = true;
            break;
        }
        case WS_PONG:
            hub->pass_keepalive = true;
            break;
        case WS_CLOSE:
            hub->pass_busy = true;
            conn_close(c, r.close_code == WS_CLOSE_NO_STATUS ? WS_CLOSE_NORMAL : r.close_code, "");
            break;
        case WS_FAIL:
            hub->pass_busy = true;
            log_debug("conn %llu: websocket error %u: %s", (unsigned long long)c->id, r.close_code,
                      r.reason ? r.reason : "");
            /* An oversized frame is a per-connection limit tripped, so it counts toward a ban. */
            if (r.close_code == WS_CLOSE_TOO_BIG)
                abuse_strike(hub->abuse, &c->source, now);
            conn_close(c, r.close_code, r.reason ? r.reason : "protocol error");
            break;
        default:   /* a fragment of a longer message */
            hub->pass_busy = true;
            break;
        }
        c->in_off += used;
    }
    return true;
}

/* Reads what the socket (or the transport's buffer) holds, up to the pass's budget, handing
 * each chunk to the current layer. */
static void read_input(conn *c)
{
    size_t budget = READ_BUDGET_PER_PASS;
    /* Messages an earlier pass left come first; while they wait, nothing more is read. */
    if (c->state == CS_OPEN && c->held && !process_frames(c))
        return;
    while (budget > 0 && !c->dead && c->state != CS_CLOSING) {
        size_t want = c->state == CS_OPEN ? READ_CHUNK : 2048;
        size_t room;
        long n;
        if (c->state == CS_HEAD && c->in_len - c->in_off > HTTP_MAX_HEAD) {
            http_answer(c, 431, NULL, "request head too large\n");
            break;
        }
        if (!ensure_in_room(c, (c->in_len - c->in_off) + want))
            break;
        room = c->in_cap - c->in_len;
        if (c->state == CS_PROXY && room > PROXY_MAX_HEADER - (c->in_len - c->in_off))
            room = PROXY_MAX_HEADER - (c->in_len - c->in_off);
        n = c->x ? xport_read(c->x, c->in + c->in_len, room) : xport_recv(c->fd, c->in + c->in_len, room);
        if (n == XPORT_AGAIN)
            break;
        if (n <= 0) {
            c->hub->pass_busy = true;
            schedule_free(c);
            return;
        }
        c->in_len += (size_t)n;
        budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
        if (c->state == CS_PROXY) {
            c->hub->pass_busy = true;
            process_proxy(c);
        }
        if (c->state == CS_HEAD && c->in_off < c->in_len)
            process_head(c);
        if (c->state == CS_OPEN && !process_frames(c))
            break;
        if ((size_t)n < room && !(c->x && xport_has_buffered_input(c->x)))
            break; /* short read and nothing held back: the socket is drained */
    }
    if (c->dead)
        return;
    if (c->in_off < c->in_len)
        c->hub->pass_busy = true;   /* part of a frame is on its way */
    /* A transport holding input the budget left unread gets another turn before the next wait:
     * no readiness event would announce it. */
    if (c->state != CS_CLOSING && c->x && xport_has_buffered_input(c->x))
        mark_again(c);
    release_in_if_empty(c);
}

static void on_conn_io(void *ctx, socket_t fd, int events)
{
    conn *c = ctx;
    (void)fd;
    if (c->dead)
        return;
    if (events & LOOP_WRITE) {
        c->hub->pass_busy = true;   /* a backlog draining is traffic, not a keepalive */
        flush_and_settle(c);
        if (c->dead)
            return;
    }
    if ((events & (LOOP_READ | LOOP_ERROR)) && c->state != CS_CLOSING)
        read_input(c);
    else if ((events & (LOOP_READ | LOOP_ERROR)) && c->lingering)
        drain_lingering(c);
    /* A transport may need the socket for its own progress (a handshake answer to send). */
    if (!c->dead && c->x && (xport_wants(c->x) & ~loop_events(c->hub->lp, c->slot)))
        mark_pending(c);
}

/* ---- accept ---- */

bool conn_accept(conn_listener *ls, socket_t fd, const addr_t *from)
{
    conn_hub *hub = ls->hub;
    bool trusted;
    conn *c;
    if (!compat_set_nonblocking(fd) || !(c = calloc(1, sizeof *c))) {
        compat_close(fd);
        return false;
    }
    c->slot = loop_add(hub->lp, fd, LOOP_READ, on_conn_io, c);
    if (c->slot < 0) {
        free(c);
        compat_close(fd);
        return false;
    }
    compat_set_nodelay(fd);
    c->ls = ls;
    c->hub = hub;
    c->fd = fd;
    c->id = ++hub->next_id;
    c->accepted_ms = c->last_in_ms = loop_now_ms(hub->lp);
    c->peer = *from;
    addr_unmap(&c->peer);
    loop_timer_init(&c->deadline, on_deadline, c);
    c->all_next = hub->all;
    if (hub->all)
        hub->all->all_prev = c;
    hub->all = c;
    ls->open++;
    trusted = ls->trusted_proxies && cidr_list_contains(ls->trusted_proxies, &c->peer);
    if (trusted) {
        c->state = CS_PROXY;
    } else if (!count_source(c) || !open_transport(c, NULL, 0)) {
        c->dead = true;
        free_conn(c);
        return false;
    }
    rearm_deadline(c);
    if (LOG_ENABLED(LOG_DEBUG)) {
        char text[ADDR_STRLEN];
        addr_format(&c->peer, text);
        log_debug("conn %llu accepted on the %s listener from %s%s", (unsigned long long)c->id,
                  ls->name, text, trusted ? " (a trusted proxy)" : "");
    }
    return true;
}

/* ---- deadlines firing ---- */

static void on_deadline(void *ctx)
{
    conn *c = ctx;
    conn_hub *hub = c->hub;
    uint64_t now = loop_now_ms(hub->lp);
    uint64_t d = deadline_of(c);
    if (c->dead)
        return;
    if (d > now) {
        /* Activity pushed the deadline out since it was filed: re-file, nothing expired. */
        rearm_deadline(c);
        return;
    }
    if (c->state == CS_CLOSING) {
        schedule_free(c);
    } else if (c->registration) {
        uint64_t silent = (now - c->last_in_ms) / 1000u;
        hub->handler.on_silence(hub->handler.ctx, c, silent, silent >= hub->cfg->idle_timeout_secs);
    } else if (c->state == CS_OPEN) {
        log_debug("conn %llu: not registered in time, closing", (unsigned long long)c->id);
        conn_close(c, WS_CLOSE_POLICY, "register timeout");
    } else {
        log_debug("conn %llu: no request in time, closing", (unsigned long long)c->id);
        schedule_free(c);
    }
}

/* ---- end of pass and shutdown ---- */

bool conn_hub_has_buffered_input(const conn_hub *hub) { return hub->again != NULL; }

void conn_hub_init(conn_hub *hub, const relay_config *cfg, loop *lp, abuse_guard *abuse, conn_handler handler)
{
    memset(hub, 0, sizeof *hub);
    hub->cfg = cfg;
    hub->lp = lp;
    hub->abuse = abuse;
    hub->handler = handler;
    hub->start_ms = loop_now_ms(lp);
    loop_timer_init(&hub->hold_timer, on_hold_due, hub);
}

void conn_begin_pass(conn_hub *hub)
{
    conn *again = hub->again;
    hub->pass_frames = 0;
    hub->pass_full = false;
    hub->again = hub->again_tail = NULL;
    while (again) {
        conn *c = again;
        again = c->next_again;
        c->in_again = false;
        if (c->held && hub->pass_full)
            mark_again(c);   /* this pass has no more room: keep its place in the line */
        else if (!c->dead && c->state != CS_CLOSING)
            read_input(c);
    }
}

/* Takes connections about to be freed off the list of input left for later. */
static void unlist_dead_from_again(conn_hub *hub)
{
    conn **link = &hub->again;
    hub->again_tail = NULL;
    while (*link) {
        conn *c = *link;
        if (c->dead) {
            *link = c->next_again;
            c->in_again = false;
        } else {
            hub->again_tail = c;
            link = &c->next_again;
        }
    }
}

void conn_end_of_pass(conn_hub *hub)
{
    uint64_t now = loop_now_ms(hub->lp);
    if (hub->handler.before_flush)
        hub->handler.before_flush(hub->handler.ctx);
    /* Again while the flushes had notices sent: a write that fails closes its connection, and
     * a registration leaving tells its network now, not at the next pass. */
    do {
        while (hub->busy_groups) {
            conn_group *g = hub->busy_groups;
            hub->busy_groups = g->next_busy;
            g->busy = false;
            hand_out(g, false);
        }
        while (hub->pending) {
            conn *c = hub->pending;
            hub->pending = c->next_pending;
            c->in_pending = false;
            if (may_hold(c, now) && hold(c, now))
                continue;
            if (!c->urgent && !outq_empty(&c->out))
                c->notices_sent_ms = now;   /* notices alone: the next ones within the hold wait */
            flush_and_settle(c);
        }
    } while (hub->busy_groups);
    if (hub->dead && hub->again)
        unlist_dead_from_again(hub);
    while (hub->dead) {
        conn *c = hub->dead;
        hub->dead = c->next_dead;
        free_conn(c);
    }
}

void conn_close_all(conn_hub *hub, const char *reason)
{
    for (conn *c = hub->all; c; c = c->all_next) {
        if (c->state == CS_OPEN)
            conn_close(c, WS_CLOSE_GOING_AWAY, reason);
        else if (c->state != CS_CLOSING)
            schedule_free(c);
    }
}

void conn_drop_all(conn_hub *hub)
{
    for (conn *c = hub->all; c; c = c->all_next)
        schedule_free(c);
    conn_end_of_pass(hub);
}

bool conn_hub_empty(const conn_hub *hub) { return hub->all == NULL; }
