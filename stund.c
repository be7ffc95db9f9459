/* The STUN UDP listener (see stund.h): receive a batch, decide each datagram with stun.c and the
 * reflection limits of ratelimit.c (or hand it to the TURN hook), send the answers as one batch.
 * Every buffer is allocated once in stund_open; a datagram costs no allocation. */
#include "stund.h"

#include "compat/udp_batch.h"
#include "net.h"
#include "ratelimit.h"
#include "stun.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STUND_BATCH UDP_BATCH_MAX
/* Datagrams handled per stund_on_readable call before the loop gets to serve everyone else. */
#define STUND_PASS_BUDGET 256
/* Receive buffer per datagram: room for a Binding request or TURN ChannelData carrying a full
 * Ethernet-sized payload; a longer datagram does not fit and is dropped. */
#define STUND_DATAGRAM_MAX 2048

struct stund {
    socket_t fd;
    addr_t bound;
    stun_limiter limiter;
    uint64_t responses;
    stund_hook hook;
    uint64_t rate_limited;   /* valid requests left unanswered by the reflection limits */
    udp_datagram in[STUND_BATCH];
    udp_datagram out[STUND_BATCH];
    uint8_t in_buf[STUND_BATCH][STUND_DATAGRAM_MAX];
    uint8_t out_buf[STUND_BATCH][STUND_REPLY_MAX];
};

stund *stund_open(const addr_t *bind, uint64_t per_ip_rps, uint64_t global_rps, char *err, size_t errlen)
{
    char text[ADDR_STRLEN];
    uint64_t seed[2];
    stund *s = calloc(1, sizeof *s);

    addr_format(bind, text);
    if (!s) {
        snprintf(err, errlen, "out of memory opening the STUN listener on %s", text);
        return NULL;
    }
    s->bound = *bind;
    s->fd = net_bind_udp(bind, err, errlen);
    if (s->fd == SOCKET_INVALID) {
        free(s);
        return NULL;
    }
    if (!udp_batch_prepare(s->fd)) {
        snprintf(err, errlen, "cannot configure the STUN socket on %s: %s", text,
                 compat_strerror(compat_sock_errno()));
        compat_close(s->fd);
        free(s);
        return NULL;
    }
    /* A secret hash key keeps forged sources from being aimed at one chain of the limiter. */
    compat_random(seed, sizeof seed);
    if (!stun_limiter_init(&s->limiter, per_ip_rps, global_rps, STUN_LIMITER_TRACKED_IPS, seed)) {
        snprintf(err, errlen, "out of memory for the STUN rate limiter on %s", text);
        compat_close(s->fd);
        free(s);
        return NULL;
    }
    for (int i = 0; i < STUND_BATCH; i++) {
        s->in[i].buf = s->in_buf[i];
        s->in[i].cap = sizeof s->in_buf[i];
        s->out[i].buf = s->out_buf[i];
        s->out[i].cap = sizeof s->out_buf[i];
    }
    return s;
}

void stund_close(stund *s)
{
    if (!s)
        return;
    compat_close(s->fd);
    stun_limiter_free(&s->limiter);
    free(s);
}

socket_t stund_fd(const stund *s) { return s->fd; }

const addr_t *stund_bound(const stund *s) { return &s->bound; }

void stund_set_hook(stund *s, const stund_hook *hook) { s->hook = *hook; }

uint64_t stund_requests(const stund *s) { return s->responses; }
uint64_t stund_rate_limited(const stund *s) { return s->rate_limited; }

/* A Binding request's first 16 bits: the two zero top bits, the method and the class. */
static bool is_binding_request(const udp_datagram *d)
{
    return d->len >= 2 && d->buf[0] == 0x00 && d->buf[1] == 0x01;
}

/* Builds the answer to one datagram in *reply; false when it gets none (not a Binding Request,
 * or over a budget: the limiter runs only on valid requests, so junk costs no tokens). */
static bool answer(stund *s, udp_datagram *req, udp_datagram *reply, uint64_t now_ms, int *bindings)
{
    stun_request parsed;
    addr_t source;

    if (s->hook.on_datagram && !is_binding_request(req)) {
        reply->len = s->hook.on_datagram(s->hook.ctx, req, reply->buf, reply->cap, now_ms);
        memcpy(&reply->peer, &req->peer, sizeof reply->peer);
        reply->peer_len = req->peer_len;
        return reply->len > 0;
    }
    if (stun_parse(req->buf, req->len, &parsed) == STUN_DROP)
        return false;
    if (req->peer_len <= 0 || (size_t)req->peer_len > sizeof req->peer ||
        !addr_from_sockaddr(&req->peer, (size_t)req->peer_len, &source))
        return false;
    if (!stun_limiter_allow(&s->limiter, &source, now_ms)) {
        s->rate_limited++;
        return false;
    }
    reply->len = stun_write_response(&parsed, &source, reply->buf, reply->cap);
    memcpy(&reply->peer, &req->peer, (size_t)req->peer_len);
    reply->peer_len = req->peer_len;
    *bindings += reply->len > 0;
    return reply->len > 0;
}

bool stund_on_readable(stund *s, uint64_t now_ms)
{
    int budget = STUND_PASS_BUDGET;

    while (budget > 0) {
        int want = budget < STUND_BATCH ? budget : STUND_BATCH;
        int got = udp_batch_recv(s->fd, s->in, want);
        int replies = 0, bindings = 0;

        if (got <= 0)
            return false;   /* drained, or an error the next readiness report will retry */
        budget -= got;
        for (int i = 0; i < got; i++)
            if (answer(s, &s->in[i], &s->out[replies], now_ms, &bindings))
                replies++;
        if (replies > 0) {
            int sent = udp_batch_send(s->fd, s->out, replies);
            s->responses += (uint64_t)(sent < bindings ? sent : bindings);
        }
        if (s->hook.end_of_batch)
            s->hook.end_of_batch(s->hook.ctx);
        if (got < want)
            return false;
    }
    return true;
}
