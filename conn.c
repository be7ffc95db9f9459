/* One connection's life and the server's I/O: accept, read, HTTP head, WebSocket upgrade,
 * frames, messages handed to relay.c, bounded output flushed with gathered writes, and
 * deadlines kept in one min-heap so the loop sleeps exactly until the next one is due. */
#include "http.h"
#include "log.h"
#include "net.h"
#include "server.h"
#include "stund.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACCEPT_PER_PASS 64
/* Room asked for before each read once a connection is open. A frame that needs more gets
 * twice its size in one step (see process_frames), so a 16 KiB record's ~58 KB frame takes one
 * larger block instead of climbing through three, while small frames keep small buffers. */
#define READ_CHUNK 16384
#define READ_BUDGET_PER_PASS (256 * 1024)
#define WRITE_BUDGET_PER_PASS (256 * 1024)
#define CLOSE_GRACE_MS 2000
#define MAX_HEALTH_CONNS 64
#define WRITE_IOVS 64

/* ---- deadline heap ---- */

static uint64_t deadline_of(const conn *c)
{
    const relay_config *cfg = &c->srv->cfg;
    if (c->state == CS_CLOSING)
        return c->close_deadline_ms;
    if (c->reg) {
        /* Registered: the liveness sweep, which runs on a fixed grid of health-check ticks,
         * prunes at the first tick past the liveness deadline; the idle timeout backs it up. */
        uint64_t idle = c->last_in_ms + cfg->idle_timeout_secs * 1000u;
        uint64_t live = c->last_in_ms + cfg->liveness_deadline_secs * 1000u;
        uint64_t step = cfg->health_check_interval_secs * 1000u;
        uint64_t start = c->srv->start_ms;
        if (step > 0 && live > start)
            live = start + (live - start + step - 1) / step * step;
        return live < idle ? live : idle;
    }
    /* Absolute from accept: a socket that never sends a byte is reaped as surely as one that
     * upgrades and never registers. */
    return c->accepted_ms + cfg->register_timeout_secs * 1000u;
}

static void heap_swap(server *s, size_t a, size_t b)
{
    conn *t = s->heap[a];
    s->heap[a] = s->heap[b];
    s->heap[b] = t;
    s->heap[a]->heap_idx = a;
    s->heap[b]->heap_idx = b;
}

static void heap_up(server *s, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (s->heap[p]->heap_key <= s->heap[i]->heap_key)
            break;
        heap_swap(s, p, i);
        i = p;
    }
}

static void heap_down(server *s, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->heap_len && s->heap[l]->heap_key < s->heap[m]->heap_key)
            m = l;
        if (r < s->heap_len && s->heap[r]->heap_key < s->heap[m]->heap_key)
            m = r;
        if (m == i)
            return;
        heap_swap(s, i, m);
        i = m;
    }
}

static void heap_remove(server *s, conn *c)
{
    size_t i = c->heap_idx;
    s->heap_len--;
    if (i != s->heap_len) {
        s->heap[i] = s->heap[s->heap_len];
        s->heap[i]->heap_idx = i;
        heap_down(s, i);
        heap_up(s, i);
    }
}

/* Re-files the connection when its deadline moved earlier (registration, closing). A deadline
 * that only moves later (inbound activity) is left alone and corrected lazily when it fires. */
void conn_touch_deadline(conn *c)
{
    server *s = c->srv;
    uint64_t d = deadline_of(c);
    if (d != c->heap_key) {
        c->heap_key = d;
        heap_down(s, c->heap_idx);
        heap_up(s, c->heap_idx);
    }
}

/* ---- connection teardown ---- */

static void schedule_free(conn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    relay_on_close(c->srv, c);
    c->next_dead = c->srv->dead;
    c->srv->dead = c;
}

static void free_conn(server *s, conn *c)
{
    loop_del(s->lp, c->slot);
    compat_close(c->fd);
    heap_remove(s, c);
    outq_clear(&c->out);
    ws_decoder_free(&c->ws);
    if (c->in)
        pool_put(c->in, c->in_cap);
    if (c->kind == CONN_WIRE) {
        s->n_wire--;
        abuse_conn_closed(&s->abuse, &c->source);
    } else {
        s->n_health--;
    }
    free(c);
}

static void free_dead(server *s)
{
    while (s->dead) {
        conn *c = s->dead;
        s->dead = c->next_dead;
        free_conn(s, c);
    }
}

/* ---- output ---- */

static void mark_pending(conn *c)
{
    if (!c->in_pending && !c->dead) {
        c->in_pending = true;
        c->next_pending = c->srv->pending;
        c->srv->pending = c;
    }
}

void conn_send(conn *c, frame *f)
{
    const relay_config *cfg = &c->srv->cfg;
    if (c->dead || c->state == CS_CLOSING)
        return;
    /* A full queue drops the message: a reader that stopped draining never stalls the sender,
     * the loop or any other peer. */
    /* config.c keeps the count within 32 bits and the byte limit within SIZE_MAX */
    if (!outq_push(&c->out, f, (uint32_t)cfg->outbound_queue_capacity,
                   (size_t)cfg->outbound_queue_bytes)) {
        log_debug("conn %llu: outbound queue full, message dropped", (unsigned long long)c->id);
        return;
    }
    mark_pending(c);
}

void conn_send_writer(conn *c)
{
    json_writer *w = &c->srv->jw;
    if (!w->failed) {
        frame *f = frame_text(w->p, w->len);
        if (f) {
            conn_send(c, f);
            frame_unref(f);
        }
    }
    jw_clear(w);
}

static void send_raw_bypassing_limits(conn *c, const uint8_t *bytes, size_t len)
{
    frame *f = frame_raw(bytes, len);
    if (!f)
        return;
    /* One-off answers (the 101, an HTTP response, the close frame: at most one of each per
     * connection) must go out even past the message caps. */
    if (outq_push(&c->out, f, UINT32_MAX, SIZE_MAX))
        mark_pending(c);
    frame_unref(f);
}

/* Stops reading and gives what is queued CLOSE_GRACE_MS to leave before the socket goes. */
static void begin_closing(conn *c)
{
    c->state = CS_CLOSING;
    c->close_deadline_ms = c->srv->now_ms + CLOSE_GRACE_MS;
    conn_touch_deadline(c);
}

/* Pongs obey the queue caps like any message: a client that pings without reading must not
 * grow its queue (a dropped pong is harmless, the next ping gets one). */
static void send_pong(conn *c, const uint8_t *bytes, size_t len)
{
    frame *f = frame_raw(bytes, len);
    if (f) {
        conn_send(c, f);
        frame_unref(f);
    }
}

void conn_close(conn *c, uint16_t code, const char *reason)
{
    uint8_t buf[WS_MAX_HEADER + 2 + 123];
    if (c->dead || c->state == CS_CLOSING)
        return;
    relay_on_close(c->srv, c);
    if (c->state == CS_OPEN)
        send_raw_bypassing_limits(c, buf, ws_close_frame(buf, code, reason));
    begin_closing(c);
    mark_pending(c);
}

static void http_answer_ex(conn *c, int status, const char *type, const char *extra_headers,
                           const char *body)
{
    char buf[1024];
    size_t n = http_response_ex(buf, sizeof buf, status, type, extra_headers, body,
                                body ? strlen(body) : 0);
    if (n > 0)
        send_raw_bypassing_limits(c, (const uint8_t *)buf, n);
    begin_closing(c);
}

static void http_answer(conn *c, int status, const char *type, const char *body)
{
    http_answer_ex(c, status, type, NULL, body);
}

/* Writes queued frames with gathered sends, at most WRITE_BUDGET_PER_PASS bytes so one fast
 * reader cannot starve the rest. Returns false when the connection failed. */
static bool flush(conn *c)
{
    size_t budget = WRITE_BUDGET_PER_PASS;
    while (!outq_empty(&c->out) && budget > 0) {
        const void *bases[WRITE_IOVS];
        size_t lens[WRITE_IOVS];
        struct compat_iov iov[WRITE_IOVS];
        int n = outq_peek(&c->out, bases, lens, WRITE_IOVS);
        ssize_compat_t w;
        for (int i = 0; i < n; i++) {
            iov[i].base = bases[i];
            iov[i].len = lens[i];
        }
        w = compat_sendv(c->fd, iov, n);
        if (w < 0) {
            int e = compat_sock_errno();
            if (compat_would_block(e))
                break;
            if (compat_interrupted(e))
                continue;
            log_debug("conn %llu: write failed: %s", (unsigned long long)c->id, compat_strerror(e));
            return false;
        }
        outq_consume(&c->out, (size_t)w);
        budget = (size_t)w >= budget ? 0 : budget - (size_t)w;
    }
    return true;
}

static void update_interest(conn *c)
{
    int ev = c->state == CS_CLOSING ? 0 : LOOP_READ;
    if (!outq_empty(&c->out))
        ev |= LOOP_WRITE;
    if (loop_events(c->srv->lp, c->slot) != ev)
        loop_set_events(c->srv->lp, c->slot, ev);
}

static void flush_and_settle(conn *c)
{
    if (c->dead)
        return;
    if (!flush(c)) {
        schedule_free(c);
        return;
    }
    if (c->state == CS_CLOSING && outq_empty(&c->out)) {
        schedule_free(c);
        return;
    }
    update_interest(c);
}

/* ---- input ---- */

static bool ensure_in_room(conn *c, size_t need_total)
{
    size_t live = c->in_len - c->in_off;
    if (c->in_off > 0 && (c->in_cap - c->in_len < READ_CHUNK || need_total > c->in_cap - c->in_off)) {
        memmove(c->in, c->in + c->in_off, live);
        c->in_off = 0;
        c->in_len = live;
    }
    if (need_total > c->in_cap) {
        size_t cap = need_total;
        uint8_t *nb = pool_get(&cap);
        if (!nb)
            return false;
        if (c->in) {
            memcpy(nb, c->in + c->in_off, live);
            pool_put(c->in, c->in_cap);
        }
        c->in = nb;
        c->in_cap = cap;
        c->in_off = 0;
        c->in_len = live;
    }
    return true;
}

static void release_in_if_empty(conn *c)
{
    /* An idle connection holds no input buffer: that is most of what keeps a reservation small. */
    if (c->in && c->in_off == c->in_len) {
        pool_put(c->in, c->in_cap);
        c->in = NULL;
        c->in_cap = c->in_off = c->in_len = 0;
    }
}

static void health_request(conn *c, const http_request *req)
{
    server *s = c->srv;
    if (http_path_is(req, "/health")) {
        char body[256];
        if (!http_method_is(req, "GET")) {
            http_answer_ex(c, 405, "text/plain", "Allow: GET\r\n", "method not allowed\n");
            return;
        }
        snprintf(body, sizeof body,
                 "{\"status\":\"ok\",\"connected_peers\":%zu,\"uptime_secs\":%llu,\"version\":\"%s\"}",
                 s->n_regs, (unsigned long long)((s->now_ms - s->start_ms) / 1000u), DIG_RELAY_VERSION);
        http_answer(c, 200, "application/json", body);
        return;
    }
    http_answer(c, 404, "text/plain", "not found\n");
}

static void wire_request(conn *c, const http_request *req)
{
    char resp[512];
    size_t n = 0;
    switch (ws_upgrade(req, resp, sizeof resp, &n)) {
    case WS_UPGRADE_OK:
        send_raw_bypassing_limits(c, (const uint8_t *)resp, n);
        c->state = CS_OPEN;
        ws_decoder_init(&c->ws, (size_t)c->srv->cfg.max_message_bytes);   /* <= SIZE_MAX - 1 */
        break;
    case WS_UPGRADE_NOT_WEBSOCKET:
        http_answer(c, 404, "text/plain", "not found\n");
        break;
    case WS_UPGRADE_BAD_VERSION:
        http_answer_ex(c, 426, "text/plain", "Sec-WebSocket-Version: 13\r\n",
                       "websocket version 13 required\n");
        break;
    default:
        http_answer(c, 400, "text/plain", "bad websocket upgrade request\n");
        break;
    }
}

static void process_head(conn *c)
{
    http_request req;
    long n = http_parse_request((const char *)c->in + c->in_off, c->in_len - c->in_off,
                                HTTP_MAX_HEAD, &req);
    if (n == HTTP_NEED_MORE)
        return;
    if (n == HTTP_BAD) {
        http_answer(c, 400, "text/plain", "malformed request\n");
        return;
    }
    if (n == HTTP_TOO_LARGE) {
        http_answer(c, 431, "text/plain", "request head too large\n");
        return;
    }
    if (c->kind == CONN_HEALTH)
        health_request(c, &req);
    else
        wire_request(c, &req);
    c->in_off += (size_t)n;
}

static void process_frames(conn *c)
{
    server *s = c->srv;
    while (c->state == CS_OPEN && !c->dead) {
        ws_result r;
        size_t used = ws_parse(&c->ws, c->in + c->in_off, c->in_len - c->in_off, &r);
        if (r.kind == WS_NEED_MORE) {
            /* saturating: a need past SIZE_MAX / 2 fails in the allocator, not by wrapping */
            if (!ensure_in_room(c, r.need > SIZE_MAX / 2 ? r.need : r.need * 2)) {
                conn_close(c, WS_CLOSE_INTERNAL, "out of memory");
                return;
            }
            return;
        }
        c->last_in_ms = s->now_ms;
        if (r.kind != WS_FAIL) {
            enum abuse_verdict v = abuse_frame(&s->abuse, &c->meter, &c->source, used, s->now_ms);
            if (v != ABUSE_OK) {
                log_debug("conn %llu: %s, disconnecting", (unsigned long long)c->id, abuse_reason(v));
                conn_close(c, WS_CLOSE_POLICY, abuse_reason(v));
                return;
            }
        }
        switch (r.kind) {
        case WS_MESSAGE:
            if (relay_on_message(s, c, r.data, r.len))
                s->pass_keepalive = true;
            else
                s->pass_busy = true;
            break;
        case WS_PING: {
            uint8_t pong[WS_MAX_HEADER + 125];
            uint8_t *h;
            memcpy(pong + WS_MAX_HEADER, r.data, r.len);
            h = ws_write_header_before(pong + WS_MAX_HEADER, WS_OP_PONG, r.len);
            send_pong(c, h, (size_t)(pong + WS_MAX_HEADER + r.len - h));
            s->pass_keepalive = true;
            break;
        }
        case WS_PONG:
            s->pass_keepalive = true;
            break;
        case WS_CLOSE:
            s->pass_busy = true;
            conn_close(c, r.close_code == WS_CLOSE_NO_STATUS ? WS_CLOSE_NORMAL : r.close_code, "");
            break;
        case WS_FAIL:
            s->pass_busy = true;
            log_debug("conn %llu: websocket error %u: %s", (unsigned long long)c->id, r.close_code,
                      r.reason ? r.reason : "");
            /* An oversized frame is a per-connection limit tripped, so it counts toward a ban. */
            if (r.close_code == WS_CLOSE_TOO_BIG)
                abuse_strike(&s->abuse, &c->source, s->now_ms);
            conn_close(c, r.close_code, r.reason ? r.reason : "protocol error");
            break;
        default:   /* a fragment of a longer message */
            s->pass_busy = true;
            break;
        }
        c->in_off += used;
    }
}

static void on_conn_io(void *ctx, socket_t fd, int events)
{
    conn *c = ctx;
    size_t budget = READ_BUDGET_PER_PASS;
    (void)fd;
    if (c->dead)
        return;
    if (events & LOOP_WRITE) {
        c->srv->pass_busy = true;   /* a backlog draining is traffic, not a keepalive */
        flush_and_settle(c);
        if (c->dead)
            return;
    }
    if (!(events & LOOP_READ) || c->state == CS_CLOSING)
        return;
    while (budget > 0 && !c->dead && c->state != CS_CLOSING) {
        size_t want = c->state == CS_HEAD ? 2048 : READ_CHUNK;
        size_t room;
        ssize_compat_t n;
        if (c->state == CS_HEAD && c->in_len - c->in_off > HTTP_MAX_HEAD) {
            http_answer(c, 431, "text/plain", "request head too large\n");
            break;
        }
        if (!ensure_in_room(c, (c->in_len - c->in_off) + want))
            break;
        room = c->in_cap - c->in_len;
        n = compat_recv(c->fd, c->in + c->in_len, room);
        if (n == 0) {
            c->srv->pass_busy = true;
            schedule_free(c);
            return;
        }
        if (n < 0) {
            int e = compat_sock_errno();
            if (compat_interrupted(e))
                continue;
            if (!compat_would_block(e)) {
                c->srv->pass_busy = true;
                schedule_free(c);
            }
            break;
        }
        c->in_len += (size_t)n;
        budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
        if (c->state == CS_HEAD) {
            c->srv->pass_busy = true;
            process_head(c);
        }
        if (c->state == CS_OPEN)
            process_frames(c);
        if ((size_t)n < room)
            break; /* short read: the socket is drained */
    }
    if (c->dead)
        return;
    if (c->in_off < c->in_len)
        c->srv->pass_busy = true;   /* part of a frame is on its way */
    release_in_if_empty(c);
}

/* ---- accept ---- */

static bool heap_reserve(server *s)
{
    size_t ncap;
    conn **nh;
    if (s->heap_len < s->heap_cap)
        return true;
    ncap = s->heap_cap ? s->heap_cap * 2 : 64;
    nh = realloc(s->heap, ncap * sizeof *nh);
    if (!nh)
        return false;
    s->heap = nh;
    s->heap_cap = ncap;
    return true;
}

/* Sets up a connection for an accepted socket; NULL (socket left to the caller) on failure. */
static conn *conn_new(server *s, socket_t fd, const addr_t *from, const source_key *key,
                      enum conn_kind kind)
{
    conn *c;
    if (!heap_reserve(s) || !compat_set_nonblocking(fd))
        return NULL;
    c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->slot = loop_add(s->lp, fd, LOOP_READ, on_conn_io, c);
    if (c->slot < 0) {
        free(c);
        return NULL;
    }
    compat_set_nodelay(fd);
    c->srv = s;
    c->fd = fd;
    c->kind = (uint8_t)kind;
    c->state = CS_HEAD;
    c->id = ++s->next_conn_id;
    c->accepted_ms = c->last_in_ms = s->now_ms;
    c->peer = *from;
    addr_unmap(&c->peer);
    c->source = *key;
    c->heap_idx = s->heap_len;
    s->heap[s->heap_len++] = c;
    c->heap_key = deadline_of(c);
    heap_up(s, c->heap_idx);
    if (kind == CONN_WIRE)
        s->n_wire++;
    else
        s->n_health++;
    return c;
}

static void accept_on(server *s, socket_t lfd, enum conn_kind kind)
{
    s->pass_busy = true;
    for (int i = 0; i < ACCEPT_PER_PASS; i++) {
        struct sockaddr_storage ss;
        socklen_t_compat sl = (socklen_t_compat)sizeof ss;
        socket_t fd = accept(lfd, (struct sockaddr *)&ss, &sl);
        addr_t from;
        source_key key;
        conn *c;
        if (fd == SOCKET_INVALID) {
            int e = compat_sock_errno();
            if (!compat_would_block(e) && !compat_interrupted(e))
                log_warn("accept failed: %s", compat_strerror(e));
            return;
        }
        if ((kind == CONN_WIRE && s->n_wire >= s->cfg.max_connections) ||
            (kind == CONN_HEALTH && s->n_health >= MAX_HEALTH_CONNS)) {
            log_warn("refusing connection: at the open-connection cap (%llu)",
                     (unsigned long long)s->cfg.max_connections);
            compat_close(fd);
            continue;
        }
        addr_from_sockaddr(&ss, (size_t)sl, &from);
        source_key_make(&key, &from, SOURCE_IPV6_64);
        if (kind == CONN_WIRE) {
            enum abuse_verdict v = abuse_accept(&s->abuse, &key, s->now_ms);
            if (v != ABUSE_OK) {
                log_debug("refusing connection: %s", abuse_reason(v));
                compat_close(fd);
                continue;
            }
        }
        c = conn_new(s, fd, &from, &key, kind);
        if (!c) {
            log_warn("dropping an accepted connection: out of memory");
            if (kind == CONN_WIRE)
                abuse_conn_closed(&s->abuse, &key);
            compat_close(fd);
            continue;
        }
        if (LOG_ENABLED(LOG_DEBUG)) {
            char text[ADDR_STRLEN];
            addr_format(&c->peer, text);
            log_debug("conn %llu accepted from %s", (unsigned long long)c->id, text);
        }
    }
}

static void on_wire_listener(void *ctx, socket_t fd, int events)
{
    (void)events;
    accept_on(ctx, fd, CONN_WIRE);
}

static void on_health_listener(void *ctx, socket_t fd, int events)
{
    (void)events;
    accept_on(ctx, fd, CONN_HEALTH);
}

static void on_stun(void *ctx, socket_t fd, int events)
{
    server *s = ctx;
    (void)fd;
    (void)events;
    s->pass_busy = true;
    stund_on_readable(s->stun, s->now_ms);
}

static void on_shutdown_signal(void *ctx, socket_t fd, int events)
{
    char drain[64];
    (void)ctx;
    (void)events;
    while (compat_recv(fd, drain, sizeof drain) > 0) {
    }
}

/* ---- timers ---- */

static void expire(server *s)
{
    while (s->heap_len > 0 && s->heap[0]->heap_key <= s->now_ms) {
        conn *c = s->heap[0];
        uint64_t d = deadline_of(c);
        if (d > s->now_ms) {
            /* Activity pushed the deadline out since it was filed: re-file, nothing expired. */
            c->heap_key = d;
            heap_down(s, 0);
            continue;
        }
        if (c->dead) {
            c->heap_key = UINT64_MAX;
            heap_down(s, 0);
            continue;
        }
        if (c->state == CS_CLOSING) {
            schedule_free(c);
        } else if (c->reg) {
            uint64_t silent = (s->now_ms - c->last_in_ms) / 1000u;
            if (silent >= s->cfg.idle_timeout_secs) {
                log_info("conn %llu: idle for %llus, closing", (unsigned long long)c->id,
                         (unsigned long long)silent);
                conn_close(c, WS_CLOSE_GOING_AWAY, "idle timeout");
            } else {
                s->abuse.counters.prunes++;
                log_info("liveness sweep: pruning %.*s, silent for %llus", (int)c->reg->peer_id_len,
                         c->reg->peer_id, (unsigned long long)silent);
                conn_close(c, WS_CLOSE_GOING_AWAY, "liveness deadline passed");
            }
        } else if (c->state == CS_OPEN) {
            log_debug("conn %llu: not registered in time, closing", (unsigned long long)c->id);
            conn_close(c, WS_CLOSE_POLICY, "register timeout");
        } else {
            log_debug("conn %llu: no request in time, closing", (unsigned long long)c->id);
            schedule_free(c);
        }
        if (c->dead) {
            c->heap_key = UINT64_MAX;
            heap_down(s, 0);
        }
    }
}

/* ---- server ---- */

bool server_init(server *s, char *err, size_t errlen)
{
    const relay_config *cfg = &s->cfg;
    size_t spare = MAX_HEALTH_CONNS + 8;
    size_t max_fds = cfg->max_connections > SIZE_MAX - spare ? SIZE_MAX   /* fails to allocate */
                                                             : (size_t)cfg->max_connections + spare;
    s->now_ms = s->start_ms = compat_monotonic_ms();
    s->now_wall = compat_wall_secs();
    s->wire_fd = s->health_fd = SOCKET_INVALID;
    s->pex_due_ms = UINT64_MAX;
    compat_random(s->seed, sizeof s->seed);
    if (!relay_init(s, err, errlen))
        return false;
    /* Remember at least every possible open source twice over, so live entries are rarely the
     * least recently seen when churn evicts. */
    uint64_t sources = cfg->max_connections > (UINT32_MAX - 1024) / 2
                           ? UINT32_MAX
                           : cfg->max_connections * 2 + 1024;
    if (!abuse_init(&s->abuse, cfg, (uint32_t)sources, s->seed)) {
        snprintf(err, errlen,
                 "out of memory for the per-source limit table of %llu connections (--max-connections)",
                 (unsigned long long)cfg->max_connections);
        return false;
    }
    s->lp = loop_new(max_fds);
    if (!s->lp) {
        snprintf(err, errlen, "out of memory for %zu sockets", max_fds);
        return false;
    }
    s->wire_fd = net_listen_tcp(&cfg->listen, 1024, err, errlen);
    if (s->wire_fd == SOCKET_INVALID)
        return false;
    s->health_fd = net_listen_tcp(&cfg->health_listen, 64, err, errlen);
    if (s->health_fd == SOCKET_INVALID)
        return false;
    s->stun = stund_open(&cfg->stun_listen, cfg->stun_per_ip_rps, cfg->stun_global_rps, err, errlen);
    if (!s->stun)
        return false;
    loop_add(s->lp, s->wire_fd, LOOP_READ, on_wire_listener, s);
    loop_add(s->lp, s->health_fd, LOOP_READ, on_health_listener, s);
    loop_add(s->lp, stund_fd(s->stun), LOOP_READ, on_stun, s);
    if (compat_shutdown_fd() != SOCKET_INVALID)
        loop_add(s->lp, compat_shutdown_fd(), LOOP_READ, on_shutdown_signal, s);
    return true;
}

static void flush_pending(server *s)
{
    while (s->pending) {
        conn *c = s->pending;
        s->pending = c->next_pending;
        c->in_pending = false;
        flush_and_settle(c);
    }
}

/* Logs the abuse counters at info when they changed, at most once per health-check interval. */
static void log_counters(server *s)
{
    const abuse_counters *now = &s->abuse.counters;
    if (s->now_ms < s->next_counter_log_ms || memcmp(now, &s->logged, sizeof *now) == 0)
        return;
    log_info("abuse counters: refused_connections=%llu refused_registrations=%llu "
             "disconnects=%llu strikes=%llu bans=%llu liveness_prunes=%llu",
             (unsigned long long)now->refused_conns, (unsigned long long)now->refused_regs,
             (unsigned long long)now->disconnects, (unsigned long long)now->strikes,
             (unsigned long long)now->bans, (unsigned long long)now->prunes);
    s->logged = *now;
    s->next_counter_log_ms = s->now_ms + s->cfg.health_check_interval_secs * 1000u;
}

static int next_timeout(const server *s)
{
    uint64_t d = s->pex_due_ms;
    /* A changed counter is logged on time even when nothing else wakes the loop. */
    if (memcmp(&s->abuse.counters, &s->logged, sizeof s->logged) != 0 && s->next_counter_log_ms < d)
        d = s->next_counter_log_ms;
    if (s->heap_len > 0 && s->heap[0]->heap_key < d)
        d = s->heap[0]->heap_key;
    if (d == UINT64_MAX)
        return -1;
    if (d <= s->now_ms)
        return 0;
    d -= s->now_ms;
    return d > 60000 ? 60000 : (int)d;
}

static void refresh_clock(server *s)
{
    s->now_ms = loop_now_ms(s->lp);
    s->now_wall = loop_wall_secs(s->lp);
}

/* After a burst, once the loop has nothing to do, free heap is handed back to the OS (at most
 * once a second, and never while busy: it walks the heap). */
#define TRIM_IDLE_MS 100
#define TRIM_EVERY_MS 1000

void server_run(server *s)
{
    uint64_t last_trim = 0;
    while (!compat_shutdown_requested()) {
        int timeout = next_timeout(s);
        bool may_trim = (timeout < 0 || timeout >= TRIM_IDLE_MS) && s->now_ms - last_trim >= TRIM_EVERY_MS;
        uint64_t last_wake_ms = s->now_ms;   /* the clock is read once per wake-up */
        int ready = loop_run_once(s->lp, may_trim ? TRIM_IDLE_MS : timeout);
        bool hold;
        refresh_clock(s);
        if (ready < 0) {
            log_error("poll failed: %s", compat_strerror(compat_sock_errno()));
            break;
        }
        if (may_trim && ready == 0) {
            compat_release_free_memory();
            last_trim = s->now_ms;
        }
        hold = loop_should_hold(&s->coalesce, s->now_ms, s->now_ms - last_wake_ms, ready,
                                s->pass_busy, s->pass_keepalive);
        s->pass_busy = s->pass_keepalive = false;
        expire(s);
        if (s->pex_due_ms <= s->now_ms)
            relay_pex_housekeeping(s);
        flush_pending(s);
        free_dead(s);
        log_counters(s);
        if (hold) {
            timeout = next_timeout(s);
            compat_sleep_ms(timeout >= 0 && timeout < LOOP_HOLD_MS ? (unsigned)timeout : LOOP_HOLD_MS);
            loop_refresh_clock(s->lp);
            refresh_clock(s);
        }
    }
}

void server_shutdown(server *s)
{
    /* Tell every peer we are going away, give the close frames a short moment to leave, then
     * release everything. */
    uint64_t until;
    s->stopping = true;
    for (size_t i = 0; i < s->heap_len; i++) {
        conn *c = s->heap[i];
        if (c->state == CS_OPEN)
            conn_close(c, WS_CLOSE_GOING_AWAY, "relay shutting down");
        else if (c->state == CS_HEAD)
            schedule_free(c);
    }
    flush_pending(s);
    free_dead(s);
    until = compat_monotonic_ms() + 500;
    while (s->heap_len > 0 && compat_monotonic_ms() < until) {
        loop_run_once(s->lp, 50);
        flush_pending(s);
        free_dead(s);
    }
    while (s->heap_len > 0) {
        schedule_free(s->heap[0]);
        free_dead(s);
    }
    if (s->stun)
        stund_close(s->stun);
    if (s->wire_fd != SOCKET_INVALID)
        compat_close(s->wire_fd);
    if (s->health_fd != SOCKET_INVALID)
        compat_close(s->health_fd);
    loop_free(s->lp);
    free(s->heap);
    relay_free(s);
    abuse_free(&s->abuse);
    pool_trim();
}
