/* POSIX and Winsock implementations of compat.h. */
#ifdef _WIN32
#  define _CRT_RAND_S   /* rand_s, the CRT's interface to the OS generator */
#endif
#include "compat/compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32

static volatile LONG shutdown_flag;

static BOOL WINAPI console_handler(DWORD type)
{
    (void)type;
    InterlockedExchange(&shutdown_flag, 1);
    return TRUE;
}

bool compat_init(char *err, size_t errlen)
{
    WSADATA wsa;
    int rc = WSAStartup(MAKEWORD(2, 2), &wsa);
    if (rc != 0) {
        snprintf(err, errlen, "WSAStartup failed (%d)", rc);
        return false;
    }
    return true;
}

int compat_sock_errno(void) { return WSAGetLastError(); }
bool compat_would_block(int e) { return e == WSAEWOULDBLOCK || e == WSAEINPROGRESS; }
bool compat_interrupted(int e) { return e == WSAEINTR; }
bool compat_addr_in_use(int e) { return e == WSAEADDRINUSE; }

const char *compat_strerror(int e)
{
    static char text[256];
    DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL,
                             (DWORD)e, 0, text, sizeof text, NULL);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == '.'))
        text[--n] = '\0';
    if (n == 0)
        snprintf(text, sizeof text, "socket error %d", e);
    return text;
}

bool compat_set_nonblocking(socket_t s)
{
    u_long on = 1;
    return ioctlsocket(s, (long)FIONBIO, &on) == 0;
}

static bool set_int_opt(socket_t s, int level, int name, int value)
{
    return setsockopt(s, level, name, (const char *)&value, sizeof value) == 0;
}

bool compat_set_v6only(socket_t s, bool on) { return set_int_opt(s, IPPROTO_IPV6, IPV6_V6ONLY, on ? 1 : 0); }
/* Winsock's SO_REUSEADDR lets another process steal a bound port; exclusive use is the safe
 * equivalent of the POSIX option for a server. */
bool compat_set_reuseaddr(socket_t s) { return set_int_opt(s, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, 1); }
bool compat_set_nodelay(socket_t s) { return set_int_opt(s, IPPROTO_TCP, TCP_NODELAY, 1); }
void compat_close(socket_t s) { closesocket(s); }
void compat_shutdown_send(socket_t s) { shutdown(s, SD_SEND); }

static int clamp_len(size_t len) { return len > 0x7fffffff ? 0x7fffffff : (int)len; }

ssize_compat_t compat_send(socket_t s, const void *buf, size_t len)
{
    return send(s, (const char *)buf, clamp_len(len), 0);
}

ssize_compat_t compat_recv(socket_t s, void *buf, size_t len)
{
    return recv(s, (char *)buf, clamp_len(len), 0);
}

ssize_compat_t compat_sendv(socket_t s, const struct compat_iov *iov, int n)
{
    WSABUF bufs[COMPAT_IOV_MAX];
    DWORD sent = 0;
    if (n > COMPAT_IOV_MAX)
        n = COMPAT_IOV_MAX;
    for (int i = 0; i < n; i++) {
        bufs[i].buf = (char *)iov[i].base;
        bufs[i].len = (ULONG)(iov[i].len > 0x7fffffff ? 0x7fffffff : iov[i].len);
    }
    if (WSASend(s, bufs, (DWORD)n, &sent, 0, NULL, NULL) != 0)
        return -1;
    return (ssize_compat_t)sent;
}

ssize_compat_t compat_sendto(socket_t s, const void *buf, size_t len,
                             const struct sockaddr *to, socklen_t_compat tolen)
{
    return sendto(s, (const char *)buf, clamp_len(len), 0, to, tolen);
}

ssize_compat_t compat_recvfrom(socket_t s, void *buf, size_t len,
                               struct sockaddr *from, socklen_t_compat *fromlen)
{
    return recvfrom(s, (char *)buf, clamp_len(len), 0, from, fromlen);
}

int compat_poll(struct pollfd *fds, size_t n, int timeout_ms)
{
    if (n == 0) {
        Sleep(timeout_ms < 0 ? 1000u : (DWORD)timeout_ms);
        return 0;
    }
    /* Console control events do not interrupt WSAPoll, so wait in short slices. */
    if (timeout_ms < 0 || timeout_ms > 250)
        timeout_ms = 250;
    return WSAPoll(fds, (ULONG)n, timeout_ms);
}

uint64_t compat_monotonic_ms(void) { return (uint64_t)GetTickCount64(); }

uint64_t compat_monotonic_us(void)
{
    LARGE_INTEGER now, freq;
    QueryPerformanceCounter(&now);
    QueryPerformanceFrequency(&freq);
    return (uint64_t)(now.QuadPart / freq.QuadPart * 1000000 +
                      now.QuadPart % freq.QuadPart * 1000000 / freq.QuadPart);
}

uint64_t compat_wall_secs(void)
{
    FILETIME ft;
    ULARGE_INTEGER t;
    GetSystemTimeAsFileTime(&ft);
    t.LowPart = ft.dwLowDateTime;
    t.HighPart = ft.dwHighDateTime;
    return (t.QuadPart - 116444736000000000ULL) / 10000000ULL;
}

uint64_t compat_wall_ms(void)
{
    FILETIME ft;
    ULARGE_INTEGER t;
    GetSystemTimeAsFileTime(&ft);
    t.LowPart = ft.dwLowDateTime;
    t.HighPart = ft.dwHighDateTime;
    return (t.QuadPart - 116444736000000000ULL) / 10000ULL;
}

void compat_sleep_ms(unsigned ms) { Sleep(ms); }

bool compat_install_shutdown_handler(void) { return SetConsoleCtrlHandler(console_handler, TRUE) != 0; }
bool compat_shutdown_requested(void) { return InterlockedCompareExchange(&shutdown_flag, 0, 0) != 0; }
void compat_request_shutdown(void) { InterlockedExchange(&shutdown_flag, 1); }
socket_t compat_shutdown_fd(void) { return SOCKET_INVALID; }
uint64_t compat_rss_bytes(void) { return 0; }

static bool os_random(void *buf, size_t n)
{
    unsigned char *p = buf;
    for (size_t i = 0; i < n; i++) {
        unsigned int r;
        if (rand_s(&r) != 0)
            return false;
        p[i] = (unsigned char)r;
    }
    return true;
}

#else /* POSIX */

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/uio.h>
#include <time.h>

/* A system whose sendmsg takes fewer buffers than COMPAT_IOV_MAX gets that many a call: more
 * would fail with EMSGSIZE rather than send part. */
#if defined(IOV_MAX) && IOV_MAX < COMPAT_IOV_MAX
#define SENDV_MAX IOV_MAX
#else
#define SENDV_MAX COMPAT_IOV_MAX
#endif

static volatile sig_atomic_t shutdown_flag;
static int shutdown_pipe[2] = { -1, -1 };

static void on_shutdown_signal(int sig)
{
    int saved = errno;
    (void)sig;
    shutdown_flag = 1;
    if (shutdown_pipe[1] >= 0) {
        char b = 1;
        ssize_t ignored = write(shutdown_pipe[1], &b, 1);
        (void)ignored;
    }
    errno = saved;
}

bool compat_init(char *err, size_t errlen)
{
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        snprintf(err, errlen, "cannot ignore SIGPIPE: %s", strerror(errno));
        return false;
    }
    return true;
}

int compat_sock_errno(void) { return errno; }
bool compat_would_block(int e) { return e == EAGAIN || e == EWOULDBLOCK || e == EINPROGRESS; }
bool compat_interrupted(int e) { return e == EINTR; }
bool compat_addr_in_use(int e) { return e == EADDRINUSE; }
const char *compat_strerror(int e) { return strerror(e); }

bool compat_set_nonblocking(socket_t s)
{
    int fl = fcntl(s, F_GETFL, 0);
    return fl >= 0 && fcntl(s, F_SETFL, fl | O_NONBLOCK) == 0;
}

static bool set_int_opt(socket_t s, int level, int name, int value)
{
    return setsockopt(s, level, name, &value, sizeof value) == 0;
}

bool compat_set_v6only(socket_t s, bool on) { return set_int_opt(s, IPPROTO_IPV6, IPV6_V6ONLY, on ? 1 : 0); }
bool compat_set_reuseaddr(socket_t s) { return set_int_opt(s, SOL_SOCKET, SO_REUSEADDR, 1); }
bool compat_set_nodelay(socket_t s) { return set_int_opt(s, IPPROTO_TCP, TCP_NODELAY, 1); }
void compat_close(socket_t s) { close(s); }
void compat_shutdown_send(socket_t s) { shutdown(s, SHUT_WR); }

ssize_compat_t compat_send(socket_t s, const void *buf, size_t len)
{
    return send(s, buf, len, SOCK_MSG_NOSIGNAL);
}

ssize_compat_t compat_recv(socket_t s, void *buf, size_t len) { return recv(s, buf, len, 0); }

ssize_compat_t compat_sendv(socket_t s, const struct compat_iov *iov, int n)
{
    struct iovec v[SENDV_MAX];
    struct msghdr msg;
    if (n > SENDV_MAX)
        n = SENDV_MAX;
    for (int i = 0; i < n; i++) {
        v[i].iov_base = (void *)(uintptr_t)iov[i].base;
        v[i].iov_len = iov[i].len;
    }
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = v;
    msg.msg_iovlen = (__typeof__(msg.msg_iovlen))n;   /* size_t in glibc, int in musl */
    return sendmsg(s, &msg, SOCK_MSG_NOSIGNAL);
}

ssize_compat_t compat_sendto(socket_t s, const void *buf, size_t len,
                             const struct sockaddr *to, socklen_t_compat tolen)
{
    return sendto(s, buf, len, 0, to, tolen);
}

ssize_compat_t compat_recvfrom(socket_t s, void *buf, size_t len,
                               struct sockaddr *from, socklen_t_compat *fromlen)
{
    return recvfrom(s, buf, len, 0, from, fromlen);
}

int compat_poll(struct pollfd *fds, size_t n, int timeout_ms)
{
    return poll(fds, (nfds_t)n, timeout_ms);
}

uint64_t compat_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t compat_monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t compat_wall_secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec < 0 ? 0 : (uint64_t)ts.tv_sec;
}

uint64_t compat_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec < 0 ? 0 : (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void compat_sleep_ms(unsigned ms)
{
    struct timespec ts = { (time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

bool compat_install_shutdown_handler(void)
{
    struct sigaction sa;
    if (pipe(shutdown_pipe) != 0)
        return false;
    compat_set_nonblocking(shutdown_pipe[0]);
    compat_set_nonblocking(shutdown_pipe[1]);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_shutdown_signal;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGINT, &sa, NULL) == 0 && sigaction(SIGTERM, &sa, NULL) == 0;
}

bool compat_shutdown_requested(void) { return shutdown_flag != 0; }
void compat_request_shutdown(void) { on_shutdown_signal(SIGTERM); }
socket_t compat_shutdown_fd(void) { return shutdown_pipe[0]; }

uint64_t compat_rss_bytes(void)
{
    unsigned long long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%llu %llu", &pages, &resident) != 2)
        resident = 0;
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static bool os_random(void *buf, size_t n)
{
    FILE *f = fopen("/dev/urandom", "rb");
    bool ok = f && fread(buf, 1, n, f) == n;
    if (f)
        fclose(f);
    return ok;
}

#endif

#if defined(__GLIBC__)
#include <malloc.h>
void compat_release_free_memory(void) { malloc_trim(0); }
#else
void compat_release_free_memory(void) {}
#endif

void compat_random(void *buf, size_t n)
{
    unsigned char *p = buf;
    uint64_t x;
    if (os_random(buf, n))
        return;
    x = compat_monotonic_ms() * 0x9e3779b97f4a7c15ULL ^ compat_wall_secs() ^ (uint64_t)(uintptr_t)buf;
    for (size_t i = 0; i < n; i++) {
        x ^= x >> 31;
        x *= 0xbf58476d1ce4e5b9ULL;
        x ^= x >> 29;
        p[i] = (unsigned char)x;
    }
}

#ifndef _WIN32
#  include <netdb.h>
#endif

bool compat_resolve(const char *host, const char *port, int socktype,
                    struct sockaddr_storage *out, size_t *out_len, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = socktype;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, rc ? gai_strerror(rc) : "no address");
        return false;
    }
    bool fits = (size_t)res->ai_addrlen <= sizeof *out;
    if (fits) {
        memcpy(out, res->ai_addr, (size_t)res->ai_addrlen);
        *out_len = (size_t)res->ai_addrlen;
    } else {
        snprintf(err, errlen, "cannot use the address of %s", host);
    }
    freeaddrinfo(res);
    return fits;
}
