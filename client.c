/* Blocking client sockets with deadlines (see client.h): non-blocking sockets waited on with
 * compat_poll, so every step has a bound. */
#include "client.h"

#include <stdio.h>
#include <string.h>

static bool wait_for(socket_t s, short events, unsigned timeout_ms)
{
    struct pollfd p;
    memset(&p, 0, sizeof p);
    p.fd = s;
    p.events = events;
    uint64_t deadline = compat_monotonic_ms() + timeout_ms;
    for (;;) {
        uint64_t now = compat_monotonic_ms();
        if (now >= deadline)
            return false;
        int n = compat_poll(&p, 1, (int)(deadline - now));
        if (n > 0)
            return true;
        if (n < 0 && !compat_interrupted(compat_sock_errno()))
            return false;
    }
}

static socket_t open_socket(const addr_t *a, int type, struct sockaddr_storage *ss, size_t *len,
                            char *err, size_t errlen)
{
    char text[ADDR_STRLEN];
    *len = addr_to_sockaddr(a, ss, sizeof *ss);
    socket_t s = socket(ss->ss_family, type, 0);
    if (s == SOCKET_INVALID || !compat_set_nonblocking(s)) {
        addr_format(a, text);
        snprintf(err, errlen, "cannot open a socket for %s: %s", text,
                 compat_strerror(compat_sock_errno()));
        if (s != SOCKET_INVALID)
            compat_close(s);
        return SOCKET_INVALID;
    }
    return s;
}

socket_t client_connect(const addr_t *a, unsigned timeout_ms, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    size_t len;
    char text[ADDR_STRLEN];
    socket_t s = open_socket(a, SOCK_STREAM, &ss, &len, err, errlen);
    if (s == SOCKET_INVALID)
        return s;
    addr_format(a, text);
    if (connect(s, (struct sockaddr *)&ss, (socklen_t_compat)len) != 0 &&
        !compat_would_block(compat_sock_errno()) && compat_sock_errno() != EINPROGRESS) {
        snprintf(err, errlen, "cannot connect to %s: %s", text, compat_strerror(compat_sock_errno()));
        compat_close(s);
        return SOCKET_INVALID;
    }
    if (!wait_for(s, POLLOUT, timeout_ms)) {
        snprintf(err, errlen, "cannot connect to %s: no answer within %u ms", text, timeout_ms);
        compat_close(s);
        return SOCKET_INVALID;
    }
    int so_error = 0;
    socklen_t_compat so_len = sizeof so_error;
    if (getsockopt(s, SOL_SOCKET, SO_ERROR, (char *)&so_error, &so_len) != 0 || so_error != 0) {
        snprintf(err, errlen, "cannot connect to %s: %s", text,
                 compat_strerror(so_error ? so_error : compat_sock_errno()));
        compat_close(s);
        return SOCKET_INVALID;
    }
    compat_set_nodelay(s);
    return s;
}

socket_t client_udp(const addr_t *a, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    size_t len;
    char text[ADDR_STRLEN];
    socket_t s = open_socket(a, SOCK_DGRAM, &ss, &len, err, errlen);
    if (s == SOCKET_INVALID)
        return s;
    if (connect(s, (struct sockaddr *)&ss, (socklen_t_compat)len) != 0) {
        addr_format(a, text);
        snprintf(err, errlen, "cannot address %s: %s", text, compat_strerror(compat_sock_errno()));
        compat_close(s);
        return SOCKET_INVALID;
    }
    return s;
}

bool client_send_all(socket_t s, const void *buf, size_t len, unsigned timeout_ms)
{
    const char *p = buf;
    uint64_t deadline = compat_monotonic_ms() + timeout_ms;
    while (len > 0) {
        ssize_compat_t n = compat_send(s, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        uint64_t now = compat_monotonic_ms();
        if (n < 0 && !compat_would_block(compat_sock_errno()) &&
            !compat_interrupted(compat_sock_errno()))
            return false;
        if (now >= deadline || !wait_for(s, POLLOUT, (unsigned)(deadline - now)))
            return false;
    }
    return true;
}

long client_recv(socket_t s, void *buf, size_t cap, unsigned timeout_ms)
{
    uint64_t deadline = compat_monotonic_ms() + timeout_ms;
    for (;;) {
        ssize_compat_t n = compat_recv(s, buf, cap);
        if (n >= 0)
            return (long)n;
        if (!compat_would_block(compat_sock_errno()) && !compat_interrupted(compat_sock_errno()))
            return -1;
        uint64_t now = compat_monotonic_ms();
        if (now >= deadline || !wait_for(s, POLLIN, (unsigned)(deadline - now)))
            return -1;
    }
}
