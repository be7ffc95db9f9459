/* Listener sockets: TCP listen and UDP bind for an addr_t, dual-stack when the address is the
 * IPv6 unspecified address (IPV6_V6ONLY cleared), verbatim otherwise. Errors name the address. */
#ifndef DIG_NET_H
#define DIG_NET_H

#include "addr.h"
#include "compat/compat.h"

socket_t net_listen_tcp(const addr_t *a, int backlog, char *err, size_t errlen);
socket_t net_bind_udp(const addr_t *a, char *err, size_t errlen);

#endif
