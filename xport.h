/* Transports: how a connection's application bytes reach its socket. conn.c talks to a transport
 * only through this table, so plain TCP (xport.c) and TLS (tls.c) share every other line of the
 * connection code. A transport owns its socket from creation until close.
 *
 * Bytes that arrived before the transport existed (read while looking for a PROXY header) are
 * handed to the constructor as a prefix: the transport consumes them before reading the socket. */
#ifndef DIG_XPORT_H
#define DIG_XPORT_H

#include "compat/compat.h"

#include <stdbool.h>
#include <stddef.h>

enum {
    XPORT_AGAIN = -1,   /* nothing can move until the socket is ready (see wants) */
    XPORT_ERROR = -2    /* the connection failed and must go */
};

typedef struct xport xport;

typedef struct {
    const char *name;   /* "plain", "tls": for logs */
    /* Reads up to len application bytes: > 0 bytes read, 0 the peer ended the stream,
     * XPORT_AGAIN or XPORT_ERROR. */
    long (*read)(xport *x, void *buf, size_t len);
    /* Takes application bytes gathered from iov[0..n): > 0 bytes taken (the transport is
     * responsible for them from then on), XPORT_AGAIN or XPORT_ERROR. */
    long (*writev)(xport *x, const struct compat_iov *iov, int n);
    /* Pushes bytes the transport holds itself (TLS records) toward the socket: 0 when none are
     * left, XPORT_AGAIN when some remain, XPORT_ERROR. */
    int (*flush)(xport *x);
    /* True when application bytes already wait inside the transport: read again before waiting
     * for readiness (a socket that is not readable may still have decrypted data behind it). */
    bool (*has_buffered_input)(const xport *x);
    /* Socket readiness (LOOP_READ | LOOP_WRITE) the transport needs for its own progress, beyond
     * what the caller asks for its data: a handshake to finish, records to send. */
    int (*wants)(const xport *x);
    /* The identity the transport authenticated for the peer (a TLS client certificate's peer
     * id, lowercase hex), or NULL when it authenticated none. */
    const char *(*peer_identity)(const xport *x);
    /* Ends what this side sends, once everything before it is written: the transport's own
     * closing message (a TLS close_notify), then the socket's sending side. 0 when the sending
     * side is shut, XPORT_AGAIN when the closing message waits for the socket (call again when
     * it is writable), XPORT_ERROR. */
    int (*end_output)(xport *x);
    /* Closes the socket and frees the transport. */
    void (*close)(xport *x);
} xport_ops;

/* The part every transport starts with; its own state follows. */
struct xport {
    const xport_ops *ops;
    socket_t fd;
};

/* Makes a transport for an accepted, non-blocking socket; NULL on failure (the caller still owns
 * fd then). ctx is the factory's own (a TLS server context). */
typedef struct {
    xport *(*open)(void *ctx, socket_t fd, const void *prefix, size_t prefix_len);
    void *ctx;
} xport_factory;

/* Plain TCP. */
xport *xport_plain_open(void *ctx, socket_t fd, const void *prefix, size_t prefix_len);

/* For transports: the constructor's prefix, handed out before anything is read from the socket
 * and freed once taken. */
typedef struct {
    unsigned char *bytes;
    size_t off, len;
} xport_prefix;

/* Copies the prefix; false when out of memory. */
bool xport_prefix_init(xport_prefix *p, const void *bytes, size_t len);
/* Copies up to room of the bytes not yet taken into dst; returns how many. */
size_t xport_prefix_take(xport_prefix *p, void *dst, size_t room);
void xport_prefix_free(xport_prefix *p);
static inline bool xport_prefix_pending(const xport_prefix *p) { return p->off < p->len; }
/* Reads the socket itself, for bytes that come before any transport (the PROXY preface) and
 * inside transports: the same results as a transport's read. */
long xport_recv(socket_t fd, void *buf, size_t len);

static inline long xport_read(xport *x, void *buf, size_t len) { return x->ops->read(x, buf, len); }
static inline long xport_writev(xport *x, const struct compat_iov *iov, int n)
{
    return x->ops->writev(x, iov, n);
}
static inline int xport_flush(xport *x) { return x->ops->flush(x); }
static inline bool xport_has_buffered_input(const xport *x) { return x->ops->has_buffered_input(x); }
static inline int xport_wants(const xport *x) { return x->ops->wants(x); }
static inline const char *xport_peer_identity(const xport *x) { return x->ops->peer_identity(x); }
static inline int xport_end_output(xport *x) { return x->ops->end_output(x); }
static inline void xport_close(xport *x) { x->ops->close(x); }

#endif
