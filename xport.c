/* The plain TCP transport (xport.h): application bytes are the socket's bytes. The only state
 * beyond the socket is the prefix read before the transport existed, returned by the first
 * reads. */
#include "xport.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    xport base;
    size_t prefix_off, prefix_len;
    unsigned char prefix[];
} plain_xport;

long xport_recv(socket_t fd, void *buf, size_t len)
{
    for (;;) {
        ssize_compat_t n = compat_recv(fd, buf, len);
        if (n >= 0)
            return (long)n;
        int e = compat_sock_errno();
        if (compat_interrupted(e))
            continue;
        return compat_would_block(e) ? XPORT_AGAIN : XPORT_ERROR;
    }
}

static long plain_read(xport *x, void *buf, size_t len)
{
    plain_xport *p = (plain_xport *)x;
    if (p->prefix_off < p->prefix_len) {
        size_t k = p->prefix_len - p->prefix_off;
        if (k > len)
            k = len;
        memcpy(buf, p->prefix + p->prefix_off, k);
        p->prefix_off += k;
        return (long)k;
    }
    return xport_recv(x->fd, buf, len);
}

static long plain_writev(xport *x, const struct compat_iov *iov, int n)
{
    for (;;) {
        ssize_compat_t w = compat_sendv(x->fd, iov, n);
        if (w >= 0)
            return (long)w;
        int e = compat_sock_errno();
        if (compat_interrupted(e))
            continue;
        return compat_would_block(e) ? XPORT_AGAIN : XPORT_ERROR;
    }
}

static int plain_flush(xport *x)
{
    (void)x;
    return 0;
}

static bool plain_has_buffered_input(const xport *x)
{
    const plain_xport *p = (const plain_xport *)x;
    return p->prefix_off < p->prefix_len;
}

static int plain_wants(const xport *x)
{
    (void)x;
    return 0;
}

static const char *plain_peer_identity(const xport *x)
{
    (void)x;
    return NULL;
}

static void plain_close(xport *x)
{
    compat_close(x->fd);
    free(x);
}

static const xport_ops plain_ops = {
    "plain", plain_read, plain_writev, plain_flush, plain_has_buffered_input, plain_wants,
    plain_peer_identity, plain_close,
};

xport *xport_plain_open(void *ctx, socket_t fd, const void *prefix, size_t prefix_len)
{
    plain_xport *p = malloc(sizeof *p + prefix_len);
    (void)ctx;
    if (!p)
        return NULL;
    p->base.ops = &plain_ops;
    p->base.fd = fd;
    p->prefix_off = 0;
    p->prefix_len = prefix_len;
    if (prefix_len > 0)
        memcpy(p->prefix, prefix, prefix_len);
    return &p->base;
}
