/* Batched UDP receive and send: recvmmsg/sendmmsg on Linux (one system call per batch), a
 * recvfrom/sendto loop elsewhere. The caller owns every buffer; nothing here allocates. */
#ifndef DIG_COMPAT_UDP_BATCH_H
#define DIG_COMPAT_UDP_BATCH_H

#include "compat/compat.h"

#include <stddef.h>
#include <stdint.h>

#define UDP_BATCH_MAX 64

typedef struct {
    uint8_t *buf;        /* receive: where the datagram lands; send: what to send */
    size_t cap;          /* receive: size of buf */
    size_t len;          /* receive: bytes received (0 when the datagram did not fit); send: bytes */
    struct sockaddr_storage peer;   /* receive: the source; send: the destination */
    socklen_t_compat peer_len;
} udp_datagram;

#define UDP_BATCH_SOCKET_BUFFER (1 << 20)

/* Set-up for a UDP server socket: asks for UDP_BATCH_SOCKET_BUFFER-byte kernel buffers, and on
 * Windows stops ICMP port-unreachable reports from surfacing as errors on later receives.
 * Returns false with compat_sock_errno() set. */
bool udp_batch_prepare(socket_t s);

/* Receives up to n (<= UDP_BATCH_MAX) datagrams from a non-blocking socket. Returns how many
 * arrived (0 when none was waiting), or -1 on another error (compat_sock_errno()). */
int udp_batch_recv(socket_t s, udp_datagram *d, int n);

/* Sends n (<= UDP_BATCH_MAX) datagrams, each to its peer. A datagram the system refuses is
 * skipped; sending stops when the socket buffer is full (UDP: the rest are lost, as on a wire).
 * Returns how many were sent. */
int udp_batch_send(socket_t s, const udp_datagram *d, int n);

#endif
