/* The STUN UDP listener: owns the socket bound on --stun-listen, drains it in batches
 * (recvmmsg/sendmmsg on Linux, a plain loop elsewhere) with a per-pass budget so the WebSocket
 * side is never starved, and answers through stun.c with the reflection limits of ratelimit.c. */
#ifndef DIG_STUND_H
#define DIG_STUND_H

#include "addr.h"
#include "compat/compat.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct stund stund;

/* Binds the listener (dual-stack for [::]). per_ip_rps / global_rps: 0 disables that limit.
 * Returns NULL with a message naming the address in err. */
stund *stund_open(const addr_t *bind, uint64_t per_ip_rps, uint64_t global_rps, char *err, size_t errlen);
void stund_close(stund *s);
socket_t stund_fd(const stund *s);
/* Called when the socket is readable: handles at most one pass's budget of datagrams. Returns
 * true when datagrams may still be waiting (the caller should come back without sleeping). */
bool stund_on_readable(stund *s, uint64_t now_ms);
/* Responses sent so far (the dashboard's stun_requests counter). */
uint64_t stund_requests(const stund *s);

#endif
