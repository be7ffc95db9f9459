/* Closed-loop STUN load generator for bench/bench-stun.sh (Linux: uses recvmmsg/sendmmsg so the
 * generator itself stays cheap).
 *
 *   stun_load HOST PORT [--sockets N] [--window W] [--seconds S] [--warmup-ms MS]
 *       N sockets each keep W Binding Requests outstanding, sending one new request for every
 *       valid Binding Success Response. A socket that hears nothing for 100 ms (its datagrams
 *       were dropped somewhere) re-primes its window. After the warm-up, valid responses are
 *       counted for S seconds; prints "responses_per_sec <n>", "total_responses <n>" (warm-up
 *       included, to set against the server's CPU time) and a detail line.
 *   stun_load --probe HOST PORT      exit 0 once a Binding Request is answered (within 5 s)
 *   stun_load --free-port udp|tcp    print a currently free loopback port
 *
 * HOST is a literal IPv4 or IPv6 address. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SOCKETS 64
#define BATCH 64
#define STALL_MS 100

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static bool parse_target(const char *host, const char *port, struct sockaddr_storage *ss, socklen_t *len)
{
    long p = strtol(port, NULL, 10);
    memset(ss, 0, sizeof *ss);
    if (p <= 0 || p > 65535)
        return false;
    if (strchr(host, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)p);
        *len = sizeof *a;
        return inet_pton(AF_INET6, host, &a->sin6_addr) == 1;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)p);
        *len = sizeof *a;
        return inet_pton(AF_INET, host, &a->sin_addr) == 1;
    }
}

static int open_client(const struct sockaddr_storage *target, socklen_t len)
{
    int fd = socket(target->ss_family, SOCK_DGRAM, 0);
    int buf = 1 << 20;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    /* Connected: the kernel filters strangers and sendmmsg needs no per-message address. */
    if (connect(fd, (const struct sockaddr *)target, len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void make_request(uint8_t req[20], uint64_t serial)
{
    memset(req, 0, 20);
    req[1] = 0x01;
    req[4] = 0x21, req[5] = 0x12, req[6] = 0xa4, req[7] = 0x42;
    for (int i = 0; i < 8; i++)
        req[12 + i] = (uint8_t)(serial >> (8 * i));
}

static bool is_binding_success(const uint8_t *p, size_t n)
{
    return n >= 32 && p[0] == 0x01 && p[1] == 0x01 && p[4] == 0x21 && p[5] == 0x12 &&
           p[6] == 0xa4 && p[7] == 0x42;
}

typedef struct {
    int fd;
    uint64_t last_heard_us;
} client;

static uint64_t serial;

/* Sends n fresh requests on fd; returns how many left. */
static int send_requests(int fd, int n)
{
    static uint8_t reqs[BATCH][20];
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH];
    int sent = 0;

    while (n > 0) {
        int k = n < BATCH ? n : BATCH, r;
        memset(mm, 0, sizeof(mm[0]) * (size_t)k);
        for (int i = 0; i < k; i++) {
            make_request(reqs[i], serial++);
            iov[i].iov_base = reqs[i];
            iov[i].iov_len = 20;
            mm[i].msg_hdr.msg_iov = &iov[i];
            mm[i].msg_hdr.msg_iovlen = 1;
        }
        r = sendmmsg(fd, mm, (unsigned)k, MSG_DONTWAIT);
        if (r <= 0)
            break;
        sent += r;
        n -= r;
    }
    return sent;
}

/* Drains fd; returns the number of valid responses. */
static int receive_responses(int fd)
{
    static uint8_t bufs[BATCH][256];
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH];
    int valid = 0;

    for (;;) {
        int r;
        memset(mm, 0, sizeof mm);
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = sizeof bufs[i];
            mm[i].msg_hdr.msg_iov = &iov[i];
            mm[i].msg_hdr.msg_iovlen = 1;
        }
        r = recvmmsg(fd, mm, BATCH, MSG_DONTWAIT, NULL);
        if (r <= 0)
            return valid;
        for (int i = 0; i < r; i++)
            valid += is_binding_success(bufs[i], mm[i].msg_len);
        if (r < BATCH)
            return valid;
    }
}

static int run_load(const char *host, const char *port, int n_sockets, int window, double seconds,
                    unsigned warmup_ms)
{
    struct sockaddr_storage target;
    socklen_t tlen;
    client clients[MAX_SOCKETS];
    struct pollfd pfd[MAX_SOCKETS];
    uint64_t start, measure_from, measure_to, counted = 0, total = 0, reprimes = 0;

    if (!parse_target(host, port, &target, &tlen)) {
        fprintf(stderr, "stun_load: bad target %s %s\n", host, port);
        return 2;
    }
    for (int i = 0; i < n_sockets; i++) {
        clients[i].fd = open_client(&target, tlen);
        if (clients[i].fd < 0) {
            fprintf(stderr, "stun_load: socket: %s\n", strerror(errno));
            return 2;
        }
        pfd[i].fd = clients[i].fd;
        pfd[i].events = POLLIN;
    }
    start = now_us();
    measure_from = start + (uint64_t)warmup_ms * 1000u;
    measure_to = measure_from + (uint64_t)(seconds * 1e6);
    for (int i = 0; i < n_sockets; i++) {
        send_requests(clients[i].fd, window);
        clients[i].last_heard_us = start;
    }

    for (;;) {
        uint64_t t = now_us();
        if (t >= measure_to)
            break;
        if (poll(pfd, (nfds_t)n_sockets, 10) < 0 && errno != EINTR)
            return 2;
        t = now_us();
        for (int i = 0; i < n_sockets; i++) {
            if (pfd[i].revents & POLLIN) {
                int got = receive_responses(clients[i].fd);
                if (got > 0) {
                    total += (uint64_t)got;
                    if (t >= measure_from && t < measure_to)
                        counted += (uint64_t)got;
                    clients[i].last_heard_us = t;
                    send_requests(clients[i].fd, got);
                }
            }
            if (t - clients[i].last_heard_us > STALL_MS * 1000u) {
                send_requests(clients[i].fd, window);
                clients[i].last_heard_us = t;
                reprimes++;
            }
        }
    }
    printf("responses_per_sec %.0f\n", (double)counted / seconds);
    printf("total_responses %llu\n", (unsigned long long)total);
    printf("detail sockets=%d window=%d seconds=%.1f responses=%llu reprimes=%llu\n", n_sockets,
           window, seconds, (unsigned long long)counted, (unsigned long long)reprimes);
    for (int i = 0; i < n_sockets; i++)
        close(clients[i].fd);
    return counted > 0 ? 0 : 1;
}

static int probe(const char *host, const char *port)
{
    struct sockaddr_storage target;
    socklen_t tlen;
    uint64_t deadline = now_us() + 5000000u;
    int fd;

    if (!parse_target(host, port, &target, &tlen) || (fd = open_client(&target, tlen)) < 0)
        return 2;
    while (now_us() < deadline) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        send_requests(fd, 1);
        if (poll(&p, 1, 100) > 0 && receive_responses(fd) > 0) {
            close(fd);
            return 0;
        }
    }
    close(fd);
    return 1;
}

static int free_port(const char *kind)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, strcmp(kind, "tcp") == 0 ? SOCK_STREAM : SOCK_DGRAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return 2;
    printf("%u\n", ntohs(a.sin_port));
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    int sockets = 8, window = 32;
    double seconds = 5;
    unsigned warmup_ms = 1000;

    if (argc == 3 && strcmp(argv[1], "--free-port") == 0)
        return free_port(argv[2]);
    if (argc == 4 && strcmp(argv[1], "--probe") == 0)
        return probe(argv[2], argv[3]);
    if (argc < 3) {
        fprintf(stderr, "usage: stun_load HOST PORT [--sockets N] [--window W] [--seconds S] "
                        "[--warmup-ms MS] | --probe HOST PORT | --free-port udp|tcp\n");
        return 2;
    }
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--sockets") == 0)
            sockets = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--window") == 0)
            window = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--warmup-ms") == 0)
            warmup_ms = (unsigned)atoi(argv[i + 1]);
        else {
            fprintf(stderr, "stun_load: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (sockets < 1 || sockets > MAX_SOCKETS || window < 1 || seconds <= 0) {
        fprintf(stderr, "stun_load: need 1..%d sockets, window >= 1, seconds > 0\n", MAX_SOCKETS);
        return 2;
    }
    return run_load(argv[1], argv[2], sockets, window, seconds, warmup_ms);
}
