/* Batched UDP I/O (see udp_batch.h): the Linux mmsg calls, and the one-datagram-per-call loop
 * every other platform uses. */
#include "compat/udp_batch.h"

#include <string.h>

#ifdef _WIN32
#  include <mswsock.h>
#  ifndef SIO_UDP_CONNRESET
#    define SIO_UDP_CONNRESET _WSAIOW(IOC_VENDOR, 12)
#  endif

static bool stop_connreset_reports(socket_t s)
{
    BOOL report = FALSE;
    DWORD unused = 0;
    return WSAIoctl(s, SIO_UDP_CONNRESET, &report, sizeof report, NULL, 0, &unused, NULL, NULL) == 0;
}

#else

static bool stop_connreset_reports(socket_t s)
{
    (void)s;
    return true;
}

#endif

bool udp_batch_prepare(socket_t s)
{
    /* Best effort: larger kernel buffers let a burst wait for the next pass instead of being
     * dropped; the system may cap the size, which is fine. */
    int bytes = UDP_BATCH_SOCKET_BUFFER;
    (void)setsockopt(s, SOL_SOCKET, SO_RCVBUF, (const char *)&bytes, sizeof bytes);
    (void)setsockopt(s, SOL_SOCKET, SO_SNDBUF, (const char *)&bytes, sizeof bytes);
    return stop_connreset_reports(s);
}

#if defined(__linux__)

#include <sys/uio.h>

static void fill_headers(struct mmsghdr *mm, struct iovec *iov, const udp_datagram *d, int n,
                         bool receiving)
{
    for (int i = 0; i < n; i++) {
        iov[i].iov_base = d[i].buf;
        iov[i].iov_len = receiving ? d[i].cap : d[i].len;
        mm[i].msg_hdr.msg_name = (void *)(uintptr_t)&d[i].peer;
        mm[i].msg_hdr.msg_namelen = receiving ? (socklen_t)sizeof d[i].peer : d[i].peer_len;
        mm[i].msg_hdr.msg_iov = &iov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
        mm[i].msg_hdr.msg_control = NULL;
        mm[i].msg_hdr.msg_controllen = 0;
        mm[i].msg_hdr.msg_flags = 0;
        mm[i].msg_len = 0;
    }
}

int udp_batch_recv(socket_t s, udp_datagram *d, int n)
{
    struct mmsghdr mm[UDP_BATCH_MAX];
    struct iovec iov[UDP_BATCH_MAX];
    int got;

    if (n > UDP_BATCH_MAX)
        n = UDP_BATCH_MAX;
    fill_headers(mm, iov, d, n, true);
    do
        got = recvmmsg(s, mm, (unsigned)n, MSG_DONTWAIT, NULL);
    while (got < 0 && compat_interrupted(errno));
    if (got < 0)
        return compat_would_block(errno) ? 0 : -1;
    for (int i = 0; i < got; i++) {
        d[i].len = (mm[i].msg_hdr.msg_flags & MSG_TRUNC) ? 0 : mm[i].msg_len;
        d[i].peer_len = mm[i].msg_hdr.msg_namelen;
    }
    return got;
}

int udp_batch_send(socket_t s, const udp_datagram *d, int n)
{
    struct mmsghdr mm[UDP_BATCH_MAX];
    struct iovec iov[UDP_BATCH_MAX];
    int sent = 0, next = 0;

    if (n > UDP_BATCH_MAX)
        n = UDP_BATCH_MAX;
    fill_headers(mm, iov, d, n, false);
    while (next < n) {
        int r = sendmmsg(s, mm + next, (unsigned)(n - next), MSG_DONTWAIT | SOCK_MSG_NOSIGNAL);
        if (r > 0) {
            sent += r;
            next += r;
        } else if (r < 0 && compat_interrupted(errno)) {
            continue;
        } else if (r < 0 && compat_would_block(errno)) {
            break;
        } else {
            next++;   /* this destination was refused (unreachable, not permitted): skip it */
        }
    }
    return sent;
}

#else

/* Receive errors that still consumed one datagram: on Windows, a datagram too large for the
 * buffer (reported as empty) and a stale ICMP report should the ioctl above be unavailable. */
static bool recv_error_consumed_datagram(int e)
{
#ifdef _WIN32
    return e == WSAEMSGSIZE || e == WSAECONNRESET;
#else
    (void)e;
    return false;
#endif
}

int udp_batch_recv(socket_t s, udp_datagram *d, int n)
{
    int got = 0;

    if (n > UDP_BATCH_MAX)
        n = UDP_BATCH_MAX;
    while (got < n) {
        udp_datagram *g = &d[got];
        ssize_compat_t r;
        int e;
        g->peer_len = (socklen_t_compat)sizeof g->peer;
        r = compat_recvfrom(s, g->buf, g->cap, (struct sockaddr *)&g->peer, &g->peer_len);
        if (r >= 0) {
            g->len = (size_t)r;
            got++;
            continue;
        }
        e = compat_sock_errno();
        if (recv_error_consumed_datagram(e)) {
            g->len = 0;
            got++;
        } else if (!compat_interrupted(e)) {
            if (compat_would_block(e) || got > 0)
                break;
            return -1;
        }
    }
    return got;
}

int udp_batch_send(socket_t s, const udp_datagram *d, int n)
{
    int sent = 0;

    if (n > UDP_BATCH_MAX)
        n = UDP_BATCH_MAX;
    for (int i = 0; i < n; i++) {
        ssize_compat_t r;
        do
            r = compat_sendto(s, d[i].buf, d[i].len, (const struct sockaddr *)&d[i].peer,
                              d[i].peer_len);
        while (r < 0 && compat_interrupted(compat_sock_errno()));
        if (r >= 0)
            sent++;
        else if (compat_would_block(compat_sock_errno()))
            break;
        /* any other refusal: skip this destination */
    }
    return sent;
}

#endif
