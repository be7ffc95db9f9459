/* The one place POSIX and Winsock differ: socket handle type, error codes, poll, non-blocking
 * mode, socket options, clocks and shutdown signals. Every other file uses only these names, so
 * no #ifdef _WIN32 appears outside compat/. */
#ifndef DIG_COMPAT_H
#define DIG_COMPAT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef _WIN32
#  ifndef WIN32_LEAN_AND_MEAN
#    define WIN32_LEAN_AND_MEAN
#  endif
#  include <winsock2.h>
#  include <ws2tcpip.h>
#  include <windows.h>
typedef SOCKET socket_t;
typedef int socklen_t_compat;
#  define SOCKET_INVALID INVALID_SOCKET
#  define SOCK_MSG_NOSIGNAL 0
typedef long long ssize_compat_t;
#else
#  include <sys/types.h>
#  include <sys/socket.h>
#  include <netinet/in.h>
#  include <netinet/tcp.h>
#  include <arpa/inet.h>
#  include <poll.h>
#  include <unistd.h>
#  include <errno.h>
typedef int socket_t;
typedef socklen_t socklen_t_compat;
#  define SOCKET_INVALID (-1)
#  ifdef MSG_NOSIGNAL
#    define SOCK_MSG_NOSIGNAL MSG_NOSIGNAL
#  else
#    define SOCK_MSG_NOSIGNAL 0
#  endif
typedef ssize_t ssize_compat_t;
#endif

/* printf-style format checking: mingw's C99 stdio (which understands %zu and %llu) is checked as
 * gnu_printf, everything else as printf. */
#if defined(__MINGW32__)
#  define COMPAT_PRINTF(fmt, args) __attribute__((format(gnu_printf, fmt, args)))
#elif defined(__GNUC__)
#  define COMPAT_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#  define COMPAT_PRINTF(fmt, args)
#endif

/* Process-wide start-up (WSAStartup, ignore SIGPIPE). Returns false with a message in err. */
bool compat_init(char *err, size_t errlen);

/* Socket helpers. All return false / -1 on failure with the error left in compat_sock_errno(). */
int compat_sock_errno(void);
bool compat_would_block(int err);          /* EAGAIN / EWOULDBLOCK / WSAEWOULDBLOCK */
bool compat_interrupted(int err);          /* EINTR / WSAEINTR */
bool compat_addr_in_use(int err);          /* EADDRINUSE / WSAEADDRINUSE */
const char *compat_strerror(int err);      /* human text for a socket error */
bool compat_set_nonblocking(socket_t s);
bool compat_set_v6only(socket_t s, bool on);
bool compat_set_reuseaddr(socket_t s);
bool compat_set_nodelay(socket_t s);
void compat_close(socket_t s);
/* Ends the sending direction (a FIN after what is queued); receiving goes on. */
void compat_shutdown_send(socket_t s);

/* send/recv with the platform's lengths and flags; return bytes or -1. */
ssize_compat_t compat_send(socket_t s, const void *buf, size_t len);
ssize_compat_t compat_recv(socket_t s, void *buf, size_t len);
/* Gathered send of the first COMPAT_IOV_MAX of n buffers (sendmsg on POSIX, WSASend on
 * Windows; fewer where the system's IOV_MAX is lower). 1024 is IOV_MAX on Linux and macOS: a
 * caller's backlog of small frames leaves in one call as far as that goes. */
#define COMPAT_IOV_MAX 1024
struct compat_iov { const void *base; size_t len; };
ssize_compat_t compat_sendv(socket_t s, const struct compat_iov *iov, int n);
ssize_compat_t compat_sendto(socket_t s, const void *buf, size_t len,
                             const struct sockaddr *to, socklen_t_compat tolen);
ssize_compat_t compat_recvfrom(socket_t s, void *buf, size_t len,
                               struct sockaddr *from, socklen_t_compat *fromlen);

/* Name resolution (getaddrinfo): the first address of host for a SOCK_STREAM or SOCK_DGRAM
 * socket, for the command-line probe. False with the resolver's reason in err. */
bool compat_resolve(const char *host, const char *port, int socktype,
                    struct sockaddr_storage *out, size_t *out_len, char *err, size_t errlen);

/* Readiness: struct pollfd and POLLIN/POLLOUT come from <poll.h> or winsock2.h.
 * compat_poll tolerates an empty set (WSAPoll rejects one) by sleeping instead. */
int compat_poll(struct pollfd *fds, size_t n, int timeout_ms);

/* Clocks: monotonic milliseconds for every deadline; wall-clock seconds for wire timestamps. */
uint64_t compat_monotonic_ms(void);
uint64_t compat_monotonic_us(void);        /* for round trips the probe reports */
uint64_t compat_wall_secs(void);
uint64_t compat_wall_ms(void);             /* wall clock in milliseconds, for log timestamps */
void compat_sleep_ms(unsigned ms);

/* SIGINT/SIGTERM (console Ctrl-C/close on Windows) set a flag the loop polls; the handler also
 * makes a blocked poll return promptly (self-pipe on POSIX). compat_shutdown_fd() is that wake-up
 * socket, or SOCKET_INVALID where the platform interrupts poll by itself. */
bool compat_install_shutdown_handler(void);
bool compat_shutdown_requested(void);
/* Takes the same path as SIGTERM (the Windows service's stop and shutdown controls use it). */
void compat_request_shutdown(void);
socket_t compat_shutdown_fd(void);

/* Fills buf with unpredictable bytes for hash keys (the OS generator; a mix of clocks and
 * addresses only if that fails, so start-up never stops for it). */
void compat_random(void *buf, size_t n);

/* Hands free heap memory back to the OS where the C library allows it (glibc's malloc_trim),
 * so a relay's RSS follows what it holds rather than its busiest moment. No-op elsewhere. */
void compat_release_free_memory(void);

/* Resident set size of this process in bytes, 0 where unknown (for logs and tests). */
uint64_t compat_rss_bytes(void);

#endif
