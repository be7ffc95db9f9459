/* Listener sockets for addr_t bind addresses (see net.h). */
#include "net.h"

#include <stdio.h>

static socket_t open_bound(const addr_t *a, int type, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    char text[ADDR_STRLEN];
    size_t sl = addr_to_sockaddr(a, &ss, sizeof ss);
    socket_t s;

    addr_format(a, text);
    s = socket(a->family == 6 ? AF_INET6 : AF_INET, type, 0);
    if (s == SOCKET_INVALID) {
        snprintf(err, errlen, "cannot create socket for %s: %s", text,
                 compat_strerror(compat_sock_errno()));
        return SOCKET_INVALID;
    }
    /* Only the IPv6 wildcard is made dual-stack; a specific IPv6 host stays IPv6-only so it
     * binds exactly what the operator named. */
    if (a->family == 6 && !compat_set_v6only(s, !addr_is_unspecified(a))) {
        snprintf(err, errlen, "cannot set IPV6_V6ONLY on %s: %s", text,
                 compat_strerror(compat_sock_errno()));
        compat_close(s);
        return SOCKET_INVALID;
    }
    if (type == SOCK_STREAM)
        compat_set_reuseaddr(s);
    if (bind(s, (struct sockaddr *)&ss, (socklen_t_compat)sl) != 0) {
        int e = compat_sock_errno();
        snprintf(err, errlen, "cannot bind %s: %s%s", text, compat_strerror(e),
                 compat_addr_in_use(e) ? " (address already in use)" : "");
        compat_close(s);
        return SOCKET_INVALID;
    }
    if (!compat_set_nonblocking(s)) {
        snprintf(err, errlen, "cannot make %s non-blocking: %s", text,
                 compat_strerror(compat_sock_errno()));
        compat_close(s);
        return SOCKET_INVALID;
    }
    return s;
}

socket_t net_listen_tcp(const addr_t *a, int backlog, char *err, size_t errlen)
{
    socket_t s = open_bound(a, SOCK_STREAM, err, errlen);
    if (s != SOCKET_INVALID && listen(s, backlog) != 0) {
        char text[ADDR_STRLEN];
        addr_format(a, text);
        snprintf(err, errlen, "cannot listen on %s: %s", text, compat_strerror(compat_sock_errno()));
        compat_close(s);
        return SOCKET_INVALID;
    }
    return s;
}

socket_t net_bind_udp(const addr_t *a, char *err, size_t errlen)
{
    return open_bound(a, SOCK_DGRAM, err, errlen);
}
