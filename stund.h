/* The STUN UDP listener: owns the socket bound on --stun-listen, drains it in batches
 * (recvmmsg/sendmmsg on Linux, a plain loop elsewhere) with a per-pass budget so the WebSocket
 * side is never starved, and answers Binding requests through stun.c with the reflection limits
 * of ratelimit.c. TURN's datagrams on the same socket go to a hook (turnd.c). */
#ifndef DIG_STUND_H
#define DIG_STUND_H

#include "addr.h"
#include "compat/compat.h"
#include "compat/udp_batch.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct stund stund;

/* Binds the listener (dual-stack for [::]). per_ip_rps / global_rps: 0 disables that limit.
 * Returns NULL with a message naming the address in err. */
stund *stund_open(const addr_t *bind, uint64_t per_ip_rps, uint64_t global_rps, char *err, size_t errlen);
void stund_close(stund *s);
socket_t stund_fd(const stund *s);
/* TURN shares the socket (RFC 8656 runs on the STUN port): with a hook set, every datagram that
 * is not a Binding request goes to on_datagram, which may write a reply of up to cap bytes
 * (STUND_REPLY_MAX) and returns its length (0: none). A datagram's bytes stay valid until
 * end_of_batch, which runs after each received batch has been answered. */
#define STUND_REPLY_MAX 512
typedef struct {
    size_t (*on_datagram)(void *ctx, udp_datagram *d, uint8_t *reply, size_t cap, uint64_t now_ms);
    void (*end_of_batch)(void *ctx);
    void *ctx;
} stund_hook;
void stund_set_hook(stund *s, const stund_hook *hook);
/* The address the socket is bound to (its family decides how destinations are written). */
const addr_t *stund_bound(const stund *s);

/* Called when the socket is readable: handles at most one pass's budget of datagrams. Returns
 * true when datagrams may still be waiting (the caller should come back without sleeping). */
bool stund_on_readable(stund *s, uint64_t now_ms);
/* Responses sent so far (the dashboard's stun_requests counter). */
uint64_t stund_requests(const stund *s);
/* Valid Binding Requests left unanswered by the per-IP or global rate limit so far. */
uint64_t stund_rate_limited(const stund *s);

#endif
