/* Closed-loop TURN load generator for bench/bench-turn.sh (Linux: recvmmsg/sendmmsg keep the
 * generator cheap). It is both the TURN clients and their far-end peer:
 *
 *   turn_load HOST PORT SECRET [--clients N] [--window W] [--size BYTES] [--seconds S]
 *             [--warmup-ms MS] [--realm R]
 *       N clients each allocate on the server with REST credentials made from SECRET (coturn's
 *       use-auth-secret scheme), bind channel 0x4000 to one shared peer socket of the tool's own,
 *       and keep W ChannelData messages of BYTES payload outstanding. The peer echoes every
 *       datagram back to the relayed address it came from, so each round trip is two relayed
 *       packets (client -> peer and peer -> client); a client sends a new message for every
 *       ChannelData that comes back. A client that hears nothing for 100 ms re-primes its window.
 *       After the warm-up, round trips are counted for S seconds; prints "relayed_per_sec <n>",
 *       "total_relayed <n>" (warm-up included, to set against the server's CPU time) and a
 *       detail line.
 *
 * HOST is a literal IPv4 address. Uses the relay's own STUN codec and hashes (stun.c, hash.c). */
#include "hash.h"
#include "stun.h"

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

#define MAX_CLIENTS 64
#define BATCH 64
#define STALL_MS 100
#define MAX_SIZE 1400
#define CHANNEL 0x4000

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

typedef struct {
    int fd;
    uint8_t key[16];
    char username[64];
    char nonce[128];
    uint64_t last_heard_us;
} client;

static const char *realm = "dig.net";
static struct sockaddr_in peer_addr;

/* One request/answer exchange on a client's connected socket; the answer lands in resp. */
static bool exchange(client *c, const uint8_t *req, size_t len, uint8_t *resp, size_t *resp_len)
{
    for (int attempt = 0; attempt < 20; attempt++) {
        struct pollfd p = { c->fd, POLLIN, 0 };
        if (send(c->fd, req, len, 0) != (ssize_t)len)
            return false;
        if (poll(&p, 1, 250) == 1) {
            ssize_t n = recv(c->fd, resp, 2048, 0);
            if (n > 0 && !stun_is_channel_data(resp[0]) &&
                memcmp(resp + 8, req + 8, STUN_TRANSACTION_ID_LEN) == 0) {
                *resp_len = (size_t)n;
                return true;
            }
        }
    }
    return false;
}

static int error_code(const uint8_t *m, size_t n)
{
    for (size_t pos = 20; pos + 8 <= n;) {
        unsigned t = (unsigned)m[pos] << 8 | m[pos + 1], l = (unsigned)m[pos + 2] << 8 | m[pos + 3];
        if (t == STUN_ATTR_ERROR_CODE)
            return (m[pos + 6] & 7) * 100 + m[pos + 7];
        pos += 4 + ((l + 3) & ~3u);
    }
    return 0;
}

/* A signed request (or an unsigned one before the first nonce), retried once on 401/438.
 * extra: attributes already XORed for tid. Returns the error code, 0 on success, -1 on none. */
static int request(client *c, uint16_t type, void (*add)(stun_writer *w, const uint8_t *tid))
{
    uint8_t req[512], resp[2048], tid[STUN_TRANSACTION_ID_LEN];
    size_t resp_len = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        stun_writer w;
        stun_msg m;
        for (int i = 0; i < STUN_TRANSACTION_ID_LEN; i++)
            tid[i] = (uint8_t)rand();
        stun_begin(&w, req, sizeof req, type, tid);
        add(&w, tid);
        if (c->nonce[0]) {
            stun_put(&w, STUN_ATTR_USERNAME, c->username, strlen(c->username));
            stun_put(&w, STUN_ATTR_REALM, realm, strlen(realm));
            stun_put(&w, STUN_ATTR_NONCE, c->nonce, strlen(c->nonce));
            stun_put_integrity(&w, c->key, sizeof c->key);
        }
        if (!exchange(c, req, stun_finish(&w), resp, &resp_len) || !stun_decode(resp, resp_len, &m))
            return -1;
        if (m.cls == STUN_CLASS_SUCCESS)
            return 0;
        int code = error_code(resp, resp_len);
        if ((code == 401 || code == 438) && m.nonce.off && m.nonce.len < sizeof c->nonce) {
            memcpy(c->nonce, resp + m.nonce.off, m.nonce.len);
            c->nonce[m.nonce.len] = '\0';
            continue;
        }
        return code;
    }
    return -1;
}

static void add_transport(stun_writer *w, const uint8_t *tid)
{
    static const uint8_t udp[4] = { 17, 0, 0, 0 };
    (void)tid;
    stun_put(w, STUN_ATTR_REQUESTED_TRANSPORT, udp, 4);
}

static void add_channel(stun_writer *w, const uint8_t *tid)
{
    static const uint8_t number[4] = { CHANNEL >> 8, CHANNEL & 0xff, 0, 0 };
    addr_t a;
    (void)tid;
    memset(&a, 0, sizeof a);
    a.family = 4;
    memcpy(a.ip, &peer_addr.sin_addr, 4);
    a.port = ntohs(peer_addr.sin_port);
    stun_put(w, STUN_ATTR_CHANNEL_NUMBER, number, 4);
    stun_put_xor_addr(w, STUN_ATTR_XOR_PEER_ADDRESS, &a);
}

static bool set_up(client *c, const struct sockaddr_in *server, const char *secret, int index)
{
    char password[BASE64_LEN(HASH_SHA1_LEN) + 1];
    uint8_t mac[HASH_SHA1_LEN];
    int buf = 4 << 20, code;

    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (c->fd < 0 || connect(c->fd, (const struct sockaddr *)server, sizeof *server) != 0)
        return false;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    snprintf(c->username, sizeof c->username, "%lld:bench%d", (long long)time(NULL) + 3600, index);
    hash_hmac_sha1(secret, strlen(secret), c->username, strlen(c->username), mac);
    base64_encode(mac, sizeof mac, password);
    stun_long_term_key(c->username, strlen(c->username), realm, password, c->key);
    code = request(c, stun_type(STUN_ALLOCATE, STUN_CLASS_REQUEST), add_transport);
    if (code != 0) {
        fprintf(stderr, "turn_load: Allocate failed (%d)\n", code);
        return false;
    }
    code = request(c, stun_type(STUN_CHANNEL_BIND, STUN_CLASS_REQUEST), add_channel);
    if (code != 0) {
        fprintf(stderr, "turn_load: ChannelBind failed (%d)\n", code);
        return false;
    }
    return true;
}

static uint8_t out_msg[4 + MAX_SIZE];

/* Sends n ChannelData messages on fd; returns how many went. */
static int send_data(int fd, size_t size, int n)
{
    struct mmsghdr mm[BATCH];
    struct iovec iov;
    int sent = 0;
    iov.iov_base = out_msg;
    iov.iov_len = 4 + size;
    while (n > 0) {
        int k = n < BATCH ? n : BATCH, r;
        memset(mm, 0, sizeof(mm[0]) * (size_t)k);
        for (int i = 0; i < k; i++) {
            mm[i].msg_hdr.msg_iov = &iov;
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

static uint8_t in_bufs[BATCH][2048];

/* Points a receive batch at in_bufs (and, when from is given, at source-address slots). */
static void prepare_receive(struct mmsghdr *mm, struct iovec *iov, struct sockaddr_in *from)
{
    memset(mm, 0, sizeof(*mm) * BATCH);
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = in_bufs[i];
        iov[i].iov_len = sizeof in_bufs[i];
        mm[i].msg_hdr.msg_iov = &iov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
        if (from) {
            mm[i].msg_hdr.msg_name = &from[i];
            mm[i].msg_hdr.msg_namelen = sizeof from[i];
        }
    }
}

/* Drains a client socket; returns the ChannelData messages of our channel that came back. */
static int receive_data(int fd, size_t size)
{
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH];
    int valid = 0;
    for (;;) {
        int r;
        prepare_receive(mm, iov, NULL);
        r = recvmmsg(fd, mm, BATCH, MSG_DONTWAIT, NULL);
        if (r <= 0)
            return valid;
        for (int i = 0; i < r; i++)
            valid += mm[i].msg_len >= 4 + size && in_bufs[i][0] == (CHANNEL >> 8) &&
                     in_bufs[i][1] == (CHANNEL & 0xff);
        if (r < BATCH)
            return valid;
    }
}

/* The peer: every datagram goes back where it came from (a relayed address). */
static void echo(int fd)
{
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_in from[BATCH];
    for (;;) {
        int r;
        prepare_receive(mm, iov, from);
        r = recvmmsg(fd, mm, BATCH, MSG_DONTWAIT, NULL);
        if (r <= 0)
            return;
        for (int i = 0; i < r; i++)
            iov[i].iov_len = mm[i].msg_len;
        sendmmsg(fd, mm, (unsigned)r, MSG_DONTWAIT);
        if (r < BATCH)
            return;
    }
}

static int run_load(const char *host, const char *port, const char *secret, int n_clients, int window,
                    size_t size, double seconds, unsigned warmup_ms)
{
    struct sockaddr_in server;
    client clients[MAX_CLIENTS];
    struct pollfd pfd[MAX_CLIENTS + 1];
    socklen_t len = sizeof peer_addr;
    uint64_t start, measure_from, measure_to, counted = 0, total = 0, reprimes = 0;
    int peer, buf = 8 << 20;

    memset(&server, 0, sizeof server);
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)atoi(port));
    if (inet_pton(AF_INET, host, &server.sin_addr) != 1) {
        fprintf(stderr, "turn_load: bad target %s %s\n", host, port);
        return 2;
    }
    peer = socket(AF_INET, SOCK_DGRAM, 0);
    memset(&peer_addr, 0, sizeof peer_addr);
    peer_addr.sin_family = AF_INET;
    peer_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (peer < 0 || bind(peer, (struct sockaddr *)&peer_addr, sizeof peer_addr) != 0 ||
        getsockname(peer, (struct sockaddr *)&peer_addr, &len) != 0)
        return 2;
    setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    setsockopt(peer, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    for (int i = 0; i < n_clients; i++) {
        if (!set_up(&clients[i], &server, secret, i)) {
            fprintf(stderr, "turn_load: client %d could not allocate on %s:%s\n", i, host, port);
            return 2;
        }
        pfd[i].fd = clients[i].fd;
        pfd[i].events = POLLIN;
    }
    pfd[n_clients].fd = peer;
    pfd[n_clients].events = POLLIN;
    out_msg[0] = CHANNEL >> 8;
    out_msg[1] = CHANNEL & 0xff;
    out_msg[2] = (uint8_t)(size >> 8);
    out_msg[3] = (uint8_t)size;
    memset(out_msg + 4, 0x5a, size);

    start = now_us();
    measure_from = start + (uint64_t)warmup_ms * 1000u;
    measure_to = measure_from + (uint64_t)(seconds * 1e6);
    for (int i = 0; i < n_clients; i++) {
        send_data(clients[i].fd, size, window);
        clients[i].last_heard_us = start;
    }
    for (;;) {
        uint64_t t = now_us();
        if (t >= measure_to)
            break;
        if (poll(pfd, (nfds_t)n_clients + 1, 10) < 0 && errno != EINTR)
            return 2;
        t = now_us();
        if (pfd[n_clients].revents & POLLIN)
            echo(peer);
        for (int i = 0; i < n_clients; i++) {
            if (pfd[i].revents & POLLIN) {
                int got = receive_data(clients[i].fd, size);
                if (got > 0) {
                    total += 2u * (uint64_t)got;
                    if (t >= measure_from && t < measure_to)
                        counted += 2u * (uint64_t)got;
                    clients[i].last_heard_us = t;
                    send_data(clients[i].fd, size, got);
                }
            }
            if (t - clients[i].last_heard_us > STALL_MS * 1000u) {
                send_data(clients[i].fd, size, window);
                clients[i].last_heard_us = t;
                reprimes++;
            }
        }
    }
    printf("relayed_per_sec %.0f\n", (double)counted / seconds);
    printf("total_relayed %llu\n", (unsigned long long)total);
    printf("detail clients=%d window=%d size=%zu seconds=%.1f relayed=%llu reprimes=%llu\n", n_clients,
           window, size, seconds, (unsigned long long)counted, (unsigned long long)reprimes);
    for (int i = 0; i < n_clients; i++)
        close(clients[i].fd);
    close(peer);
    return counted > 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    int clients = 4, window = 32;
    size_t size = 120;
    double seconds = 5;
    unsigned warmup_ms = 1000;

    if (argc < 4) {
        fprintf(stderr, "usage: turn_load HOST PORT SECRET [--clients N] [--window W] [--size BYTES] "
                        "[--seconds S] [--warmup-ms MS] [--realm R]\n");
        return 2;
    }
    for (int i = 4; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--clients") == 0)
            clients = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--window") == 0)
            window = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--size") == 0)
            size = (size_t)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--warmup-ms") == 0)
            warmup_ms = (unsigned)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--realm") == 0)
            realm = argv[i + 1];
        else {
            fprintf(stderr, "turn_load: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (clients < 1 || clients > MAX_CLIENTS || window < 1 || seconds <= 0 || size < 1 || size > MAX_SIZE) {
        fprintf(stderr, "turn_load: need 1..%d clients, window >= 1, size 1..%d, seconds > 0\n",
                MAX_CLIENTS, MAX_SIZE);
        return 2;
    }
    srand((unsigned)now_us());
    return run_load(argv[1], argv[2], argv[3], clients, window, size, seconds, warmup_ms);
}
