/* Blocking client sockets with deadlines, for the command-line side of the binary (status and
 * probe): connect, send everything, receive what arrives. The relay's own sockets never block;
 * they belong to the loop. Errors are described in err, naming the address. */
#ifndef DIG_CLIENT_H
#define DIG_CLIENT_H

#include "addr.h"
#include "compat/compat.h"

#include <stdbool.h>
#include <stddef.h>

/* TCP connect within timeout_ms; SOCKET_INVALID on failure. */
socket_t client_connect(const addr_t *a, unsigned timeout_ms, char *err, size_t errlen);
/* A UDP socket connected to a (so recv only sees its answers). */
socket_t client_udp(const addr_t *a, char *err, size_t errlen);
bool client_send_all(socket_t s, const void *buf, size_t len, unsigned timeout_ms);
/* One receive: bytes read, 0 at end of stream, -1 on error or when nothing came in timeout_ms. */
long client_recv(socket_t s, void *buf, size_t cap, unsigned timeout_ms);

#endif
