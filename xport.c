/* The plain TCP transport (xport.h): application bytes are the socket's bytes. The only state
 * beyond the socket is the prefix read before the transport existed, returned by the first
 * reads. Also the prefix and recv helpers every transport uses. */
#include "xport.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    xport base;
    xport_prefix prefix;
} plain_xport;

bool xport_prefix_init(xport_prefix *p, const void *bytes, size_t len)
{
    p->off = p->len = 0;
    p->bytes = NULL;
    if (len == 0)
        return true;
    p->bytes = malloc(len);
    if (p->bytes == NULL)
        return false;
    memcpy(p->bytes, bytes, len);
    p->len = len;
    return true;
}

size_t xport_prefix_take(xport_prefix *p, void *dst, size_t room)
{
    size_t k = p->len - p->off;
    if (k > room)
        k = room;
    memcpy(dst, p->bytes + p->off, k);
    p->off += k;
    if (p->off == p->len)
        xport_prefix_free(p);
    return k;
}

void xport_prefix_free(xport_prefix *p)
{
    free(p->bytes);
    p->bytes = NULL;
    p->off = p->len = 0;
}

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
    if (xport_prefix_pending(&p->prefix))
        return (long)xport_prefix_take(&p->prefix, buf, len);
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
    return xport_prefix_pending(&((const plain_xport *)x)->prefix);
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

static int plain_end_output(xport *x)
{
    compat_shutdown_send(x->fd);
    return 0;
}

static void plain_close(xport *x)
{
    compat_close(x->fd);
    xport_prefix_free(&((plain_xport *)x)->prefix);
    free(x);
}

static const xport_ops plain_ops = {
    "plain", plain_read, plain_writev, plain_flush, plain_has_buffered_input, plain_wants,
    plain_peer_identity, plain_end_output, plain_close,
};

xport *xport_plain_open(void *ctx, socket_t fd, const void *prefix, size_t prefix_len)
{
    plain_xport *p = malloc(sizeof *p);
    (void)ctx;
    if (p == NULL)
        return NULL;
    if (!xport_prefix_init(&p->prefix, prefix, prefix_len)) {
        free(p);
        return NULL;
    }
    p->base.ops = &plain_ops;
    p->base.fd = fd;
    return &p->base;
}
