/* The floor under a reconnect storm's relay CPU (bench/README.md, "Reconnect storms"): writes
 * --bytes over --conns loopback TCP connections, an even share each, in writes of at most
 * --write bytes and at most 256 KiB per connection per wake-up (as the relay's write budget),
 * to a child process that only drains them, and prints the writer's CPU. No framing, no
 * queues, no parsing: what any server pays in this kernel to hand the storm's mandated bytes to
 * loopback TCP (on loopback the receiver's TCP work is charged to the writer, as it is to the
 * relay). Linux only, like the other load tools. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAKE_BUDGET (256u * 1024u)
#define READ_BUF (1u << 20)

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        die("fcntl");
}

/* The child: connects n sockets and reads until `total` bytes have arrived. */
static int drain(const struct sockaddr_in *to, size_t n, uint64_t total)
{
    int ep = epoll_create1(0);
    char *buf = malloc(READ_BUF);
    uint64_t got = 0;
    if (ep < 0 || !buf)
        die("drain setup");
    for (size_t i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
        if (fd < 0 || connect(fd, (const struct sockaddr *)to, sizeof *to) < 0)
            die("connect");
        set_nonblocking(fd);
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
            die("epoll_ctl");
    }
    while (got < total) {
        struct epoll_event evs[256];
        int k = epoll_wait(ep, evs, 256, 60000);
        if (k <= 0)
            die("drain: nothing arrived for 60 s");
        for (int i = 0; i < k; i++) {
            ssize_t r;
            while ((r = recv(evs[i].data.fd, buf, READ_BUF, 0)) > 0)
                got += (uint64_t)r;
            if (r == 0)
                die("drain: a writer closed early");
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    size_t conns = 0, wsize = 64 * 1024;
    uint64_t bytes = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--conns") == 0)
            conns = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--bytes") == 0)
            bytes = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--write") == 0)
            wsize = strtoull(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "tcp_floor: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (conns == 0 || bytes < conns || wsize == 0) {
        fprintf(stderr, "usage: tcp_floor --conns N --bytes B [--write BYTES]\n");
        return 2;
    }

    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in at = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof at;
    if (ls < 0 || bind(ls, (struct sockaddr *)&at, sizeof at) < 0 || listen(ls, 4096) < 0 ||
        getsockname(ls, (struct sockaddr *)&at, &alen) < 0)
        die("listen");
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        close(ls);
        return drain(&at, conns, bytes);
    }

    int *fd = malloc(conns * sizeof *fd);
    uint64_t *left = malloc(conns * sizeof *left);
    static const char pattern[] = "{\"type\":\"peer_connected\",\"peer_id\":\"0123456789abcdef\"}";
    char *src = malloc(wsize);
    int ep = epoll_create1(0);
    if (!fd || !left || !src || ep < 0)
        die("setup");
    /* notice-like bytes, one buffer written again and again as a shared frame would be */
    for (size_t i = 0; i < wsize; i++)
        src[i] = pattern[i % (sizeof pattern - 1)];
    for (size_t i = 0; i < conns; i++) {
        int one = 1;
        fd[i] = accept(ls, NULL, NULL);
        if (fd[i] < 0)
            die("accept");
        setsockopt(fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        set_nonblocking(fd[i]);
        left[i] = bytes / conns + (i < bytes % conns);
    }

    double wall0 = now_s(), cpu0 = cpu_s();
    uint64_t writes = 0;
    size_t open_conns = conns;
    for (size_t i = 0; i < conns; i++) {
        struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = i };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd[i], &ev) < 0)
            die("epoll_ctl");
    }
    while (open_conns > 0) {
        struct epoll_event evs[1024];
        int k = epoll_wait(ep, evs, 1024, 60000);
        if (k <= 0)
            die("writer: no socket writable for 60 s");
        for (int e = 0; e < k; e++) {
            size_t i = (size_t)evs[e].data.u64;
            uint64_t budget = WAKE_BUDGET;
            while (left[i] > 0 && budget > 0) {
                size_t n = left[i] < wsize ? (size_t)left[i] : wsize;
                ssize_t w = send(fd[i], src, n, MSG_NOSIGNAL);
                writes++;
                if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;
                if (w <= 0)
                    die("send");
                left[i] -= (uint64_t)w;
                budget = (uint64_t)w >= budget ? 0 : budget - (uint64_t)w;
            }
            if (left[i] == 0) {
                epoll_ctl(ep, EPOLL_CTL_DEL, fd[i], NULL);
                open_conns--;
            }
        }
    }
    double cpu = cpu_s() - cpu0, wall = now_s() - wall0;
    int status;
    if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "tcp_floor: the reader failed\n");
        return 1;
    }
    printf("mode=floor conns=%zu bytes=%llu write=%zu floor_cpu_s=%.3f wall_s=%.3f sends=%llu\n",
           conns, (unsigned long long)bytes, wsize, cpu, wall, (unsigned long long)writes);
    return 0;
}
