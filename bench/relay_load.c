/* relay_load: load generator for dig-relay, and for redis-server pub/sub driven the same way, so
 * the relay's per-hop cost can be compared with Redis's (bench/README.md, bench/bench.sh).
 *
 * Relay mode opens N WebSocket reservations exactly as the live client does (GET / upgrade,
 * masked text frames, register then get_peers without waiting, a JSON ping every 30 s, pongs
 * to the relay's pings) and drives M sender->target pairs with relay_message frames. Redis mode
 * drives the same pairs with PUBLISH to one channel per target, each target holding its own
 * SUBSCRIBE connection. Closed loop keeps a window of messages in flight per pair; open loop
 * sends at a fixed total rate. With no pairs the tool only holds the reservations idle, which is
 * how memory and CPU per idle reservation are measured.
 *
 * Every payload carries its send time and a per-pair sequence number in its first 12 bytes, so
 * the receiving side gets one-hop latency and an order check without a second clock. In relay
 * mode those bytes are drawn from 100..255 so each prints as exactly three digits: the frame is
 * built (and masked) once per window slot, and sending patches ~50 bytes in place. Receiving
 * copies only the first bytes of each frame and skips the rest.
 *
 * With --tls (built with BearSSL) relay mode speaks wss://: each connection does a TLS 1.2
 * handshake first (presenting --tls-cert/--tls-key when given, trusting --server-cert's key), so
 * the relay's own TLS and a TLS terminator in front of it can be driven alike. Handshake mode
 * measures full handshakes per second: --connect-burst connections at a time, each closed as
 * soon as its handshake completes and replaced by a new one.
 *
 * Linux only (epoll, /proc); single-threaded. Prints one "key=value ..." line on stdout. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef DIG_HAVE_TLS
#define DIG_HAVE_TLS 0
#endif
#if DIG_HAVE_TLS
#include <bearssl.h>
#endif

#define HEAD_MAX 512            /* bytes of each incoming message kept for parsing */
#define STAMP_BYTES 12          /* payload prefix: 8 time digits + 4 sequence digits */
#define DIGIT_BASE 156u         /* stamp bytes are 100 + a base-156 digit: always 3 chars */
#define SEQ_FIELD_BASE 1000000000ull  /* keeps "seq" ten digits wide for patching */
#define WRITE_IOVS 64
#define RECV_BUF (256 * 1024)
#define CTL_MAX 4096            /* pending control bytes per connection */
#define PER_SOURCE_IP 1000      /* reservations per 127.x.y.z source when spreading */

/* ---------------------------------------------------------------- options */

enum mode { MODE_RELAY, MODE_REDIS, MODE_HANDSHAKE };

typedef struct {
    enum mode mode;
    const char *host;
    uint16_t port;
    uint16_t target_port;     /* 0: targets connect to port too */
    long server_pid;
    long also_pids[4];        /* more processes whose CPU counts as the server's */
    uint32_t n_also;
    long rx_pid;
    uint32_t conns, pairs, window, group;
    size_t size;
    double rate, duration, warmup, ping_secs, setup_secs, ping_batch_ms;
    uint32_t connect_burst;
    double storm_ping_rate;
    bool storm;
    bool spread;
    bool quiet;
    bool tls;
    const char *tls_cert, *tls_key, *server_cert;   /* DER files */
} options;

static options opt = {
    .mode = MODE_RELAY, .host = "127.0.0.1", .port = 0, .server_pid = 0, .rx_pid = 0, .conns = 0,
    .pairs = 1, .window = 16, .group = 0, .size = 64, .rate = 0, .duration = 5, .warmup = 1,
    .ping_secs = 30, .ping_batch_ms = 0, .setup_secs = 0, .connect_burst = 256, .storm_ping_rate = 500, .storm = false, .spread = false, .quiet = false,
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: relay_load --port P [options]\n"
        "  --mode relay|redis|handshake  target: dig-relay WebSocket wire (default), redis-server\n"
        "                         pub/sub, or full TLS handshakes per second (needs --tls)\n"
        "  --host ADDR            server IPv4 address (default 127.0.0.1)\n"
        "  --port P               server port (required)\n"
        "  --server-pid PID[,PID...]  processes to sample CPU seconds from /proc, summed (the\n"
        "                         first one's RSS too): a cluster's relays and Redis\n"
        "  --target-port P        the targets of the pairs connect here instead (another\n"
        "                         instance of a cluster; relay mode)\n"
        "  --rx-pid PID           a second process whose CPU is sampled over the same window and\n"
        "                         printed apart (rx_cpu_pct): the kernel thread doing the server's\n"
        "                         network receive when that runs in a NAPI thread\n"
        "  --conns N              reservations to hold (relay mode; default 2 x pairs)\n"
        "  --pairs M              sender->target pairs; 0 = idle reservations only (default 1)\n"
        "  --size BYTES           payload bytes per message, >= %d (default 64)\n"
        "  --window W             messages in flight per pair (default 16)\n"
        "  --rate R               open loop: total messages/s over all pairs (default 0: closed loop)\n"
        "  --duration S           measured seconds (default 5)\n"
        "  --warmup S             unmeasured seconds before that (default 1)\n"
        "  --ping-secs S          keepalive ping period per reservation (default 30)\n"
        "  --ping-batch-ms B      send due pings together every B ms instead of spread evenly\n"
        "                         (shows what the server's wake-ups cost; default 0)\n"
        "  --group G              reservations per network id (even; default 0: all on \"bench\")\n"
        "  --spread               bind clients to 127.x.y.z sources, %d per address\n"
        "  --setup-secs S         give up if setup takes longer (default 30 + N/500)\n"
        "  --connect-burst K      handshakes in progress at once (default 256)\n"
        "  --storm                a reconnect storm: all --conns reservations on one network id\n"
        "                         connect at once; reports the relay's CPU seconds and the wall\n"
        "                         time until its output settles, the bytes it sent by kind, and\n"
        "                         the round trip of pings sent during the storm\n"
        "  --storm-ping-rate R    storm pings/s over the registered reservations (default 500)\n"
        "  --quiet                no progress lines on stderr\n"
        "  --tls                  TLS 1.2 to the server (wss://; built with BearSSL only)\n"
        "  --server-cert DER      the server's certificate: its key is trusted as it is\n"
        "  --tls-cert DER         client certificate to present, with --tls-key DER (PKCS#8)\n",
        STAMP_BYTES, PER_SOURCE_IP);
}

static bool parse_num(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_options(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--spread")) { opt.spread = true; continue; }
        if (!strcmp(a, "--quiet")) { opt.quiet = true; continue; }
        if (!strcmp(a, "--tls")) { opt.tls = true; continue; }
        if (!strcmp(a, "--storm")) { opt.storm = true; continue; }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        if (i + 1 >= argc) {
            fprintf(stderr, "relay_load: %s needs a value\n", a);
            return false;
        }
        const char *v = argv[++i];
        double d = 0;
        bool ok = true;
        if (!strcmp(a, "--mode")) {
            if (!strcmp(v, "relay")) opt.mode = MODE_RELAY;
            else if (!strcmp(v, "redis")) opt.mode = MODE_REDIS;
            else if (!strcmp(v, "handshake")) opt.mode = MODE_HANDSHAKE;
            else ok = false;
        } else if (!strcmp(a, "--server-cert")) {
            opt.server_cert = v;
        } else if (!strcmp(a, "--tls-cert")) {
            opt.tls_cert = v;
        } else if (!strcmp(a, "--tls-key")) {
            opt.tls_key = v;
        } else if (!strcmp(a, "--host")) {
            opt.host = v;
        } else if (!strcmp(a, "--port")) {
            ok = parse_num(v, 1, 65535, &d); opt.port = (uint16_t)d;
        } else if (!strcmp(a, "--server-pid")) {
            char *end;
            opt.server_pid = strtol(v, &end, 10);
            ok = opt.server_pid > 0;
            while (ok && *end == ',' && opt.n_also < 4) {
                opt.also_pids[opt.n_also] = strtol(end + 1, &end, 10);
                ok = opt.also_pids[opt.n_also++] > 0;
            }
            ok = ok && *end == '\0';
        } else if (!strcmp(a, "--target-port")) {
            ok = parse_num(v, 1, 65535, &d); opt.target_port = (uint16_t)d;
        } else if (!strcmp(a, "--rx-pid")) {
            ok = parse_num(v, 1, 4194304, &d); opt.rx_pid = (long)d;
        } else if (!strcmp(a, "--conns")) {
            ok = parse_num(v, 1, 1000000, &d); opt.conns = (uint32_t)d;
        } else if (!strcmp(a, "--pairs")) {
            ok = parse_num(v, 0, 500000, &d); opt.pairs = (uint32_t)d;
        } else if (!strcmp(a, "--size")) {
            ok = parse_num(v, STAMP_BYTES, 1 << 20, &d); opt.size = (size_t)d;
        } else if (!strcmp(a, "--window")) {
            ok = parse_num(v, 1, 65536, &d); opt.window = (uint32_t)d;
        } else if (!strcmp(a, "--rate")) {
            ok = parse_num(v, 0, 1e8, &opt.rate);
        } else if (!strcmp(a, "--duration")) {
            ok = parse_num(v, 0.1, 86400, &opt.duration);
        } else if (!strcmp(a, "--warmup")) {
            ok = parse_num(v, 0, 3600, &opt.warmup);
        } else if (!strcmp(a, "--ping-secs")) {
            ok = parse_num(v, 0.01, 3600, &opt.ping_secs);
        } else if (!strcmp(a, "--ping-batch-ms")) {
            ok = parse_num(v, 0, 60000, &opt.ping_batch_ms);
        } else if (!strcmp(a, "--group")) {
            ok = parse_num(v, 0, 1000000, &d) && ((uint32_t)d % 2 == 0); opt.group = (uint32_t)d;
        } else if (!strcmp(a, "--setup-secs")) {
            ok = parse_num(v, 1, 3600, &opt.setup_secs);
        } else if (!strcmp(a, "--storm-ping-rate")) {
            ok = parse_num(v, 1, 1e6, &opt.storm_ping_rate);
        } else if (!strcmp(a, "--connect-burst")) {
            ok = parse_num(v, 1, 100000, &d); opt.connect_burst = (uint32_t)d;
        } else {
            fprintf(stderr, "relay_load: unknown option %s (see --help)\n", a);
            return false;
        }
        if (!ok) {
            fprintf(stderr, "relay_load: bad value for %s: %s\n", a, v);
            return false;
        }
    }
    if (!opt.port) {
        fprintf(stderr, "relay_load: --port is required (see --help)\n");
        return false;
    }
    if (opt.tls && !DIG_HAVE_TLS) {
        fprintf(stderr, "relay_load: built without BearSSL, so no --tls\n");
        return false;
    }
    if ((opt.tls && !opt.server_cert) || (opt.mode == MODE_HANDSHAKE && !opt.tls) ||
        (!opt.tls_cert != !opt.tls_key)) {
        fprintf(stderr, "relay_load: --tls needs --server-cert; handshake mode needs --tls; "
                "--tls-cert and --tls-key go together\n");
        return false;
    }
    if (opt.storm) {
        if (opt.mode != MODE_RELAY || opt.tls) {
            fprintf(stderr, "relay_load: --storm is relay mode without --tls\n");
            return false;
        }
        opt.pairs = 0;
        opt.group = 0;
    }
    if (opt.mode == MODE_HANDSHAKE) {
        opt.conns = opt.connect_burst;   /* slots, each reused for handshake after handshake */
        opt.pairs = 0;
    }
    uint32_t need = 2 * opt.pairs;
    if (opt.mode == MODE_HANDSHAKE) {
        /* sized above */
    } else if (opt.mode == MODE_REDIS) {
        opt.conns = need;      /* Redis has no idle reservations: one publisher, one subscriber */
    } else if (!opt.conns) {
        opt.conns = need ? need : 1;
    } else if (opt.conns < need) {
        fprintf(stderr, "relay_load: --conns %u is fewer than 2 x --pairs %u\n", opt.conns, opt.pairs);
        return false;
    }
    if (opt.mode == MODE_REDIS && !opt.pairs) {
        fprintf(stderr, "relay_load: redis mode needs --pairs >= 1\n");
        return false;
    }
    if (opt.setup_secs <= 0)
        opt.setup_secs = 30.0 + opt.conns / 500.0;
    return true;
}

/* ---------------------------------------------------------------- clocks, /proc, randomness */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* utime + stime of a process in seconds, negative when unreadable. */
static double proc_cpu_secs(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* Fields after the command name, which may itself hold spaces and parentheses. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long utime = 0, stime = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* A "Vm...:" line of /proc/<pid>/status in KiB, 0 when unknown. */
/* CPU seconds of the server: --server-pid's processes summed. */
static double servers_cpu_secs(long pid)
{
    double sum = proc_cpu_secs(pid);
    for (uint32_t i = 0; i < opt.n_also; i++)
        sum += proc_cpu_secs(opt.also_pids[i]);
    return sum;
}

static uint64_t proc_status_kb(long pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    uint64_t kb = 0;
    size_t flen = strlen(field);
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, field, flen) && line[flen] == ':') {
            kb = strtoull(line + flen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

static double self_cpu_secs(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---------------------------------------------------------------- latency histogram */

/* Log-linear buckets: exact below 64 ns, then 32 buckets per power of two (~3% wide). */
#define HIST_SUB 32
#define HIST_BUCKETS (64 + 58 * HIST_SUB)

typedef struct {
    uint64_t b[HIST_BUCKETS];
    uint64_t n, max;
} histogram;
static histogram lat;          /* one-hop latency; in a storm, the probes' ping round trips */
static histogram member_rtt;   /* storm: the round trips of the storming reservations' pings */

static unsigned hist_index(uint64_t v)
{
    if (v < 64)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);          /* >= 6 */
    unsigned sub = (unsigned)(v >> (e - 5)) & (HIST_SUB - 1);
    unsigned i = 64 + (e - 6) * HIST_SUB + sub;
    return i < HIST_BUCKETS ? i : HIST_BUCKETS - 1;
}

static uint64_t hist_value(unsigned i)   /* middle of bucket i */
{
    if (i < 64)
        return i;
    unsigned e = (i - 64) / HIST_SUB + 6, sub = (i - 64) % HIST_SUB;
    uint64_t lo = ((uint64_t)(HIST_SUB + sub)) << (e - 5);
    return lo + (((uint64_t)1 << (e - 5)) >> 1);
}

static void hist_add(histogram *h, uint64_t v)
{
    h->b[hist_index(v)]++;
    h->n++;
    if (v > h->max)
        h->max = v;
}

static double hist_pct_us(const histogram *h, double q)
{
    if (!h->n)
        return 0;
    uint64_t rank = (uint64_t)((double)h->n * q);
    if (rank >= h->n)
        rank = h->n - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen > rank)
            return (double)hist_value(i) / 1000.0;
    }
    return (double)h->max / 1000.0;
}

/* ---------------------------------------------------------------- connections and pairs */

enum phase { PH_CONNECTING, PH_TLS, PH_HANDSHAKE, PH_OPEN, PH_DEAD };
enum role { ROLE_IDLE, ROLE_SENDER, ROLE_TARGET };
enum rstate { RS_HEAD, RS_BODY, RS_LINE, RS_BULK };

typedef struct pair pair;
typedef struct tls_link tls_link;

typedef struct {
    int fd;
    tls_link *tls;            /* --tls: the connection's TLS engine */
    uint32_t idx;
    uint8_t phase, role;
    bool ready;               /* registered (relay) or subscribed / accepted (redis) */
    bool epollout;            /* EPOLLOUT currently requested */
    bool dirty;               /* on the flush list */
    bool got_peers;           /* storm: its peers answer arrived */
    uint8_t pid_carry_len;    /* storm: tail of the previous chunk, for matches across chunks */
    char pid_carry[9];        /* one byte short of the key counted, so no key lies in it whole */
    uint32_t pid_count;       /* storm: "peer_id" keys in the current frame so far */
    bool pid_skip;            /* storm: the current frame is known not to be a peers answer */
    uint64_t ping_sent;       /* storm: when the outstanding ping left (0: none) */
    pair *pr;
    uint8_t mask[4];
    char peer_id[65];
    /* incoming stream parser */
    uint8_t rs;
    uint8_t hdr[14], hdr_len, hdr_need, opcode;
    uint64_t remain, msg_len;
    uint16_t head_len;
    uint8_t head[HEAD_MAX];
    /* redis: elements left in the current array, index of the current one, its bulk length */
    int64_t arr_left, bulk_len, bulk_pos;
    uint32_t elem;
    char kind[16];
    char line[32];
    uint8_t line_len;
    /* control output (handshake, register, pings, pongs, SUBSCRIBE) */
    char *ctl;
    uint32_t ctl_len, ctl_off;
} conn;

struct pair {
    conn *sender, *target;
    uint8_t **slot;           /* window of pre-built frames, message k in slot k % window */
    size_t frame_len;
    size_t wire_len;          /* bytes the receiver gets per message (JSON text or raw) */
    size_t mask_base;         /* where the masked part of a relay frame starts */
    size_t stamp_off, seq_off;
    uint64_t seq_mod;         /* the payload carries the sequence number modulo this */
    uint64_t queued, written, delivered, expect;
    size_t wpos;              /* bytes of frame `written` already sent */
    uint64_t ooo;
};

static conn *conns;
static pair *pairs;
static conn **flush_list;
static uint32_t flush_n;
static int ep;
static uint8_t *rbuf;
static uint64_t t0;           /* time origin of payload stamps */

static struct {
    uint32_t started, connected, ready, failed, closed;
    uint64_t errors, pongs, pings_sent, pings_answered, bad_frames, window_stalls;
    uint64_t delivered, payload_bytes, wire_bytes;
    uint64_t handshakes;      /* handshake mode: completed while measuring */
    /* storm: what the relay sent, by kind (frames and wire bytes, WebSocket headers included) */
    uint64_t rx_bytes, last_rx, got_peers;
    uint64_t peers_frames, peers_bytes, peers_entries, pc_frames, pc_bytes, pd_frames, pd_bytes;
    bool measuring;
} st;

static char digit3[DIGIT_BASE][3];

static void die(const char *what)
{
    fprintf(stderr, "relay_load: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "relay_load: out of memory (%zu bytes)\n", n);
        exit(2);
    }
    return p;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    if (opt.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("relay_load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void want_flush(conn *c)
{
    if (!c->dirty && c->phase != PH_DEAD) {
        c->dirty = true;
        flush_list[flush_n++] = c;
    }
}

static void ctl_append(conn *c, const void *data, size_t len)
{
    if (c->phase == PH_DEAD)
        return;
    if (!c->ctl)
        c->ctl = xmalloc(CTL_MAX);
    if (c->ctl_off && c->ctl_off == c->ctl_len)
        c->ctl_off = c->ctl_len = 0;
    if (c->ctl_len + len > CTL_MAX) {
        memmove(c->ctl, c->ctl + c->ctl_off, c->ctl_len - c->ctl_off);
        c->ctl_len -= c->ctl_off;
        c->ctl_off = 0;
        if (c->ctl_len + len > CTL_MAX) {
            fprintf(stderr, "relay_load: connection %u is not draining its control output\n", c->idx);
            exit(2);
        }
    }
    memcpy(c->ctl + c->ctl_len, data, len);
    c->ctl_len += (uint32_t)len;
    want_flush(c);
}

/* A masked client frame around text, as the live client sends. */
static void ws_send(conn *c, int opcode, const void *data, size_t len)
{
    uint8_t f[14 + 256];
    size_t h = 0;
    if (len > 256)
        return;
    f[h++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        f[h++] = (uint8_t)(0x80 | len);
    } else {
        f[h++] = 0x80 | 126;
        f[h++] = (uint8_t)(len >> 8);
        f[h++] = (uint8_t)len;
    }
    memcpy(f + h, c->mask, 4);
    h += 4;
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++)
        f[h + i] = p[i] ^ c->mask[i & 3];
    ctl_append(c, f, h + len);
}

static void ws_send_text(conn *c, const char *text)
{
    ws_send(c, 1, text, strlen(text));
}

static void mark_dead(conn *c, const char *why)
{
    if (c->phase == PH_DEAD)
        return;
    if (c->ready)
        st.closed++;
    else
        st.failed++;
    if (st.closed + st.failed <= 5 || !opt.quiet)
        fprintf(stderr, "relay_load: connection %u lost: %s\n", c->idx, why);
    c->phase = PH_DEAD;
    close(c->fd);
    c->fd = -1;
}


/* ---------------------------------------------------------------- pre-built frames */

/* Relay payloads carry their stamp as base-156 digits in bytes 100..255 (three characters each);
 * Redis payloads carry it as raw little-endian integers. */
#define RELAY_SEQ_MOD ((uint64_t)DIGIT_BASE * DIGIT_BASE * DIGIT_BASE * DIGIT_BASE)
#define REDIS_SEQ_MOD ((uint64_t)1 << 32)

static void put_digits(uint8_t *frame, size_t off, const uint8_t mask[4], size_t mask_base,
                       uint64_t v, unsigned count)
{
    for (unsigned k = count; k-- > 0;) {      /* most significant digit first */
        const char *d = digit3[v % DIGIT_BASE];
        v /= DIGIT_BASE;
        size_t p = off + 4 * k;               /* three characters and a comma per byte */
        for (unsigned j = 0; j < 3; j++, p++)
            frame[p] = (uint8_t)((uint8_t)d[j] ^ mask[(p - mask_base) & 3]);
    }
}

static void put_decimal(uint8_t *frame, size_t off, const uint8_t mask[4], size_t mask_base,
                        uint64_t v, unsigned width)
{
    for (unsigned k = width; k-- > 0;) {
        size_t p = off + k;
        frame[p] = (uint8_t)((uint8_t)('0' + v % 10) ^ mask[(p - mask_base) & 3]);
        v /= 10;
    }
}

static void le_put(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t le_get(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

static void random_payload(uint8_t *payload, size_t n, uint8_t stamp_fill)
{
    memset(payload, stamp_fill, STAMP_BYTES);
    for (size_t i = STAMP_BYTES; i < n; i++)
        payload[i] = (uint8_t)rng_next();
}

static void build_relay_frames(pair *p)
{
    size_t n = opt.size;
    uint8_t *payload = xmalloc(n);
    random_payload(payload, n, 100);
    char *json = xmalloc(n * 4 + 256);
    size_t j = (size_t)sprintf(json, "{\"type\":\"relay_message\",\"from\":\"%s\",\"to\":\"%s\","
                               "\"payload\":[", p->sender->peer_id, p->target->peer_id);
    size_t stamp_at = j;
    for (size_t i = 0; i < n; i++)
        j += (size_t)sprintf(json + j, i ? ",%u" : "%u", payload[i]);
    j += (size_t)sprintf(json + j, "],\"seq\":%llu}", (unsigned long long)SEQ_FIELD_BASE);
    size_t seq_at = j - 11;

    size_t hdr = 2 + (j < 126 ? 0 : j < 65536 ? 2 : 8) + 4;
    p->frame_len = hdr + j;
    p->mask_base = hdr;
    p->stamp_off = hdr + stamp_at;
    p->seq_off = hdr + seq_at;
    p->seq_mod = RELAY_SEQ_MOD;
    p->slot = xmalloc(sizeof *p->slot * opt.window);
    const uint8_t *m = p->sender->mask;
    for (uint32_t s = 0; s < opt.window; s++) {
        uint8_t *f = p->slot[s] = xmalloc(p->frame_len);
        size_t h = 0;
        f[h++] = 0x81;
        if (j < 126) {
            f[h++] = (uint8_t)(0x80 | j);
        } else if (j < 65536) {
            f[h++] = 0x80 | 126;
            f[h++] = (uint8_t)(j >> 8);
            f[h++] = (uint8_t)j;
        } else {
            f[h++] = 0x80 | 127;
            for (int b = 7; b >= 0; b--)
                f[h++] = (uint8_t)(j >> (8 * b));
        }
        memcpy(f + h, m, 4);
        h += 4;
        for (size_t i = 0; i < j; i++)
            f[h + i] = (uint8_t)((uint8_t)json[i] ^ m[i & 3]);
    }
    p->wire_len = j;
    free(json);
    free(payload);
}

static void build_redis_frames(pair *p)
{
    size_t n = opt.size;
    char head[160];
    int h = snprintf(head, sizeof head, "*3\r\n$7\r\nPUBLISH\r\n$64\r\n%s\r\n$%zu\r\n",
                     p->target->peer_id, n);
    p->frame_len = (size_t)h + n + 2;
    p->stamp_off = (size_t)h;
    p->seq_mod = REDIS_SEQ_MOD;
    p->wire_len = n;
    p->slot = xmalloc(sizeof *p->slot * opt.window);
    uint8_t *payload = xmalloc(n);
    random_payload(payload, n, 0);
    for (uint32_t s = 0; s < opt.window; s++) {
        uint8_t *f = p->slot[s] = xmalloc(p->frame_len);
        memcpy(f, head, (size_t)h);
        memcpy(f + h, payload, n);
        memcpy(f + (size_t)h + n, "\r\n", 2);
    }
    free(payload);
}

/* ---------------------------------------------------------------- the transport: TCP or TLS */

static void set_epollout(conn *c, bool on);
static void start_connect(conn *c);

#if DIG_HAVE_TLS
struct tls_link {
    br_ssl_client_context cc;
    unsigned char io[BR_SSL_BUFSIZE_BIDI];
};

static br_x509_decoder_context server_dc;   /* holds the trusted server key */
static br_x509_knownkey_context server_key;
static br_x509_certificate client_chain;
static br_skey_decoder_context client_key;
/* What the relay offers, AES-GCM first: the handshake and records of both setups compared are
 * the same. */
static const uint16_t tls_suites[] = {
    BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
};

static unsigned char *read_der(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = xmalloc(1 << 16);
    if (!f) {
        fprintf(stderr, "relay_load: cannot read %s: %s\n", path, strerror(errno));
        exit(2);
    }
    *len = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

static void tls_setup(void)
{
    size_t len;
    unsigned char *der = read_der(opt.server_cert, &len);
    br_x509_decoder_init(&server_dc, NULL, NULL);
    br_x509_decoder_push(&server_dc, der, len);
    br_x509_pkey *pk = br_x509_decoder_get_pkey(&server_dc);
    if (!pk) {
        fprintf(stderr, "relay_load: %s is not a DER certificate\n", opt.server_cert);
        exit(2);
    }
    if (pk->key_type == BR_KEYTYPE_EC)
        br_x509_knownkey_init_ec(&server_key, &pk->key.ec, BR_KEYTYPE_SIGN | BR_KEYTYPE_KEYX);
    else
        br_x509_knownkey_init_rsa(&server_key, &pk->key.rsa, BR_KEYTYPE_SIGN | BR_KEYTYPE_KEYX);
    if (opt.tls_cert) {
        client_chain.data = read_der(opt.tls_cert, &client_chain.data_len);
        der = read_der(opt.tls_key, &len);
        br_skey_decoder_init(&client_key);
        br_skey_decoder_push(&client_key, der, len);
        if (br_skey_decoder_last_error(&client_key) != 0) {
            fprintf(stderr, "relay_load: %s is not a DER (PKCS#8) key\n", opt.tls_key);
            exit(2);
        }
    }
}

/* A fresh client engine for the connection's next handshake. */
static void tls_begin(conn *c)
{
    if (!c->tls)
        c->tls = xmalloc(sizeof *c->tls);
    br_ssl_client_context *cc = &c->tls->cc;
    br_ssl_engine_context *eng = &cc->eng;
    br_ssl_client_zero(cc);
    br_ssl_engine_set_versions(eng, BR_TLS12, BR_TLS12);
    br_ssl_engine_set_suites(eng, tls_suites, sizeof tls_suites / sizeof tls_suites[0]);
    br_ssl_engine_set_hash(eng, br_sha256_ID, &br_sha256_vtable);
    br_ssl_engine_set_hash(eng, br_sha384_ID, &br_sha384_vtable);
    br_ssl_engine_set_prf_sha256(eng, &br_tls12_sha256_prf);
    br_ssl_engine_set_prf_sha384(eng, &br_tls12_sha384_prf);
    br_ssl_engine_set_default_aes_gcm(eng);
    br_ssl_engine_set_default_chapol(eng);
    br_ssl_engine_set_default_ec(eng);
    br_ssl_engine_set_default_rsavrfy(eng);
    br_ssl_engine_set_default_ecdsa(eng);
    br_ssl_engine_set_x509(eng, &server_key.vtable);
    if (opt.tls_cert && br_skey_decoder_key_type(&client_key) == BR_KEYTYPE_EC)
        br_ssl_client_set_single_ec(cc, &client_chain, 1, br_skey_decoder_get_ec(&client_key),
                                    BR_KEYTYPE_SIGN, BR_KEYTYPE_EC, br_ec_get_default(),
                                    br_ecdsa_sign_asn1_get_default());
    else if (opt.tls_cert)
        br_ssl_client_set_single_rsa(cc, &client_chain, 1, br_skey_decoder_get_rsa(&client_key),
                                     br_rsa_pkcs1_sign_get_default());
    br_ssl_engine_set_buffer(eng, c->tls->io, sizeof c->tls->io, 1);
    if (!br_ssl_client_reset(cc, NULL, 0))
        die("br_ssl_client_reset");
}

/* Sends the records the engine holds: 0 when none are left, 1 when the socket is full, -1. */
static int tls_send_records(conn *c)
{
    br_ssl_engine_context *eng = &c->tls->cc.eng;
    for (;;) {
        size_t len;
        unsigned char *rec = br_ssl_engine_sendrec_buf(eng, &len);
        if (!rec)
            return 0;
        ssize_t w = send(c->fd, rec, len, MSG_NOSIGNAL);
        if (w > 0) {
            br_ssl_engine_sendrec_ack(eng, (size_t)w);
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        return w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 1 : -1;
    }
}

static bool link_pending(const conn *c)
{
    size_t len;
    return c->tls && br_ssl_engine_sendrec_buf(&c->tls->cc.eng, &len) != NULL;
}

/* The handshake, before any application byte: on completion a relay connection goes on to its
 * WebSocket upgrade, a handshake-mode one is counted, closed and replaced. */
static void tls_pump(conn *c)
{
    br_ssl_engine_context *eng = &c->tls->cc.eng;
    for (;;) {
        if (tls_send_records(c) < 0) {
            mark_dead(c, "TLS send failed");
            return;
        }
        unsigned state = br_ssl_engine_current_state(eng);
        if (state & BR_SSL_CLOSED) {
            char why[64];
            snprintf(why, sizeof why, "TLS handshake failed (BearSSL error %d)",
                     br_ssl_engine_last_error(eng));
            mark_dead(c, why);
            return;
        }
        if (state & BR_SSL_SENDAPP) {
            if (opt.mode == MODE_HANDSHAKE) {
                if (st.measuring)
                    st.handshakes++;
                close(c->fd);
                c->fd = -1;
                start_connect(c);
            } else {
                c->phase = PH_HANDSHAKE;
                want_flush(c);
            }
            return;
        }
        size_t room;
        unsigned char *p = br_ssl_engine_recvrec_buf(eng, &room);
        if (!p)
            break;
        ssize_t r = recv(c->fd, p, room, 0);
        if (r > 0) {
            br_ssl_engine_recvrec_ack(eng, (size_t)r);
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            mark_dead(c, r == 0 ? "closed during the TLS handshake" : strerror(errno));
            return;
        }
        break;
    }
    set_epollout(c, link_pending(c));
}

/* Application bytes out: copied into the engine (which encrypts in place), records sent. */
static ssize_t link_writev(conn *c, const struct iovec *iov, int n)
{
    if (!c->tls)
        return writev(c->fd, iov, n);
    br_ssl_engine_context *eng = &c->tls->cc.eng;
    size_t taken = 0, off = 0;
    int i = 0;
    for (;;) {
        if (tls_send_records(c) < 0)
            return -1;
        size_t room;
        unsigned char *dst = br_ssl_engine_sendapp_buf(eng, &room);
        if (!dst)
            break;
        size_t copied = 0;
        while (copied < room && i < n) {
            size_t k = iov[i].iov_len - off;
            if (k > room - copied)
                k = room - copied;
            memcpy(dst + copied, (const uint8_t *)iov[i].iov_base + off, k);
            copied += k;
            off += k;
            if (off == iov[i].iov_len) {
                i++;
                off = 0;
            }
        }
        if (copied)
            br_ssl_engine_sendapp_ack(eng, copied);
        taken += copied;
        if (i == n) {
            br_ssl_engine_flush(eng, 0);
            if (tls_send_records(c) < 0)
                return -1;
            break;
        }
    }
    if (taken)
        return (ssize_t)taken;
    errno = EAGAIN;
    return -1;
}

/* Application bytes in: records read and decrypted until some data comes out. */
static ssize_t link_recv(conn *c, uint8_t *buf, size_t cap)
{
    if (!c->tls)
        return recv(c->fd, buf, cap, 0);
    br_ssl_engine_context *eng = &c->tls->cc.eng;
    for (;;) {
        size_t n;
        unsigned char *p = br_ssl_engine_recvapp_buf(eng, &n);
        if (p) {
            if (n > cap)
                n = cap;
            memcpy(buf, p, n);
            br_ssl_engine_recvapp_ack(eng, n);
            return (ssize_t)n;
        }
        if (br_ssl_engine_current_state(eng) & BR_SSL_CLOSED)
            return 0;
        if (tls_send_records(c) < 0)
            return -1;
        p = br_ssl_engine_recvrec_buf(eng, &n);
        if (!p) {
            errno = EAGAIN;
            return -1;
        }
        ssize_t r = recv(c->fd, p, n, 0);
        if (r <= 0)
            return r;
        br_ssl_engine_recvrec_ack(eng, (size_t)r);
    }
}
#else
static void tls_setup(void) {}
static void tls_begin(conn *c) { (void)c; }
static void tls_pump(conn *c) { (void)c; }
static bool link_pending(const conn *c) { (void)c; return false; }
static ssize_t link_writev(conn *c, const struct iovec *iov, int n) { return writev(c->fd, iov, n); }
static ssize_t link_recv(conn *c, uint8_t *buf, size_t cap) { return recv(c->fd, buf, cap, 0); }
#endif

/* Stamps the next message of p with its sequence number and the current time and queues it. */
static void queue_message(pair *p, uint64_t now)
{
    uint64_t seq = p->queued;
    uint8_t *f = p->slot[seq % opt.window];
    uint64_t ts = now - t0;
    if (opt.mode == MODE_RELAY) {
        const uint8_t *m = p->sender->mask;
        put_digits(f, p->stamp_off, m, p->mask_base, ts, 8);
        put_digits(f, p->stamp_off + 32, m, p->mask_base, seq % RELAY_SEQ_MOD, 4);
        put_decimal(f, p->seq_off, m, p->mask_base, SEQ_FIELD_BASE + seq % 8000000000ull, 10);
    } else {
        le_put(f + p->stamp_off, ts, 8);
        le_put(f + p->stamp_off + 8, seq, 4);
    }
    p->queued++;
}

/* ---------------------------------------------------------------- output */

static bool sending;

static void set_epollout(conn *c, bool on)
{
    if (c->epollout == on || c->phase == PH_DEAD)
        return;
    struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c };
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
        die("epoll_ctl");
    c->epollout = on;
}

/* Writes control bytes and queued frames in order, never splitting a frame with control bytes.
 * In closed loop a sender first tops its window up. */
static void flush(conn *c, uint64_t now)
{
    c->dirty = false;
    if (c->phase == PH_DEAD || c->phase == PH_CONNECTING)
        return;
    pair *p = c->role == ROLE_SENDER && c->phase == PH_OPEN ? c->pr : NULL;
    if (p && sending && opt.rate == 0) {
        while (p->queued - p->delivered < opt.window)
            queue_message(p, now);
    }
    for (;;) {
        struct iovec iov[WRITE_IOVS];
        int n = 0;
        size_t total = 0;
        size_t ctl_pending = c->ctl ? c->ctl_len - c->ctl_off : 0;
        bool mid = p && p->wpos > 0;
        if (mid) {
            iov[n].iov_base = p->slot[p->written % opt.window] + p->wpos;
            iov[n++].iov_len = p->frame_len - p->wpos;
        } else {
            if (ctl_pending) {
                iov[n].iov_base = c->ctl + c->ctl_off;
                iov[n++].iov_len = ctl_pending;
            }
            for (uint64_t k = p ? p->written : 0; p && k < p->queued && n < WRITE_IOVS; k++) {
                iov[n].iov_base = p->slot[k % opt.window];
                iov[n++].iov_len = p->frame_len;
            }
        }
        if (!n)
            break;
        for (int i = 0; i < n; i++)
            total += iov[i].iov_len;
        ssize_t w = link_writev(c, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                set_epollout(c, true);
                return;
            }
            mark_dead(c, strerror(errno));
            return;
        }
        size_t left = (size_t)w;
        if (!mid && ctl_pending) {
            size_t take = left < ctl_pending ? left : ctl_pending;
            c->ctl_off += (uint32_t)take;
            left -= take;
        }
        while (p && left) {
            size_t rem = p->frame_len - p->wpos;
            if (left >= rem) {
                p->written++;
                p->wpos = 0;
                left -= rem;
            } else {
                p->wpos += left;
                left = 0;
            }
        }
        if ((size_t)w < total) {
            set_epollout(c, true);
            return;
        }
    }
    set_epollout(c, link_pending(c));   /* a TLS record the socket did not take yet */
}

static void flush_all(uint64_t now)
{
    /* flush() may not add to the list, so a plain walk is safe. */
    for (uint32_t i = 0; i < flush_n; i++)
        flush(flush_list[i], now);
    flush_n = 0;
}

/* ---------------------------------------------------------------- input: shared */

static void set_ready(conn *c)
{
    if (!c->ready) {
        c->ready = true;
        st.ready++;
    }
}

static void deliver(conn *c, uint64_t ts, uint64_t seq, uint64_t wire_len, uint64_t now)
{
    pair *p = c->pr;
    if (!p || c->role != ROLE_TARGET) {
        st.bad_frames++;
        return;
    }
    if (seq != p->expect % p->seq_mod)
        p->ooo++;
    p->expect++;
    p->delivered++;
    if (st.measuring) {
        st.delivered++;
        st.payload_bytes += opt.size;
        st.wire_bytes += wire_len;
        uint64_t sent = t0 + ts;
        hist_add(&lat, now > sent ? now - sent : 0);
    }
    if (sending && opt.rate == 0)
        want_flush(p->sender);
}

/* ---------------------------------------------------------------- input: relay (WebSocket) */

/* memmem for the short heads the tool parses: glibc's memmem sets up a table on every call,
 * which across a storm's 12.5 million frames cost the tool more than reading them. */
static const char *find_bytes(const uint8_t *h, size_t hl, const char *needle)
{
    size_t nl = strlen(needle);
    const uint8_t *end = h + hl;
    for (const uint8_t *q = h; nl <= (size_t)(end - q) &&
                               (q = memchr(q, needle[0], (size_t)(end - q) - nl + 1)) != NULL; q++)
        if (!memcmp(q, needle, nl))
            return (const char *)q;
    return NULL;
}

static bool read_uint(const char **s, const char *end, uint64_t *v)
{
    const char *p = *s;
    uint64_t x = 0;
    if (p >= end || *p < '0' || *p > '9')
        return false;
    while (p < end && *p >= '0' && *p <= '9')
        x = x * 10 + (uint64_t)(*p++ - '0');
    *s = p;
    *v = x;
    return true;
}

/* The first STAMP_BYTES numbers of the payload array back into time and sequence. */
static void on_relay_message(conn *c, uint64_t now)
{
    const char *end = (const char *)c->head + c->head_len;
    const char *s = find_bytes(c->head, c->head_len, "\"payload\":[");
    if (!s) {
        st.bad_frames++;
        return;
    }
    s += 11;
    uint64_t ts = 0, seq = 0;
    for (unsigned i = 0; i < STAMP_BYTES; i++) {
        uint64_t b;
        if (!read_uint(&s, end, &b) || b < 100 || b > 255 || (s < end && *s != ',' && *s != ']')) {
            st.bad_frames++;
            return;
        }
        s++;
        if (i < 8)
            ts = ts * DIGIT_BASE + (b - 100);
        else
            seq = seq * DIGIT_BASE + (b - 100);
    }
    deliver(c, ts, seq, c->msg_len, now);
}

/* Bytes of an unmasked server frame with this payload length, header included. */
static uint64_t ws_wire_len(uint64_t len)
{
    return len + (len < 126 ? 2 : len <= 0xffff ? 4 : 10);
}

static void on_relay_text(conn *c, uint64_t now)
{
    const uint8_t *h = c->head;
    size_t hl = c->head_len;
    static const char rm[] = "{\"type\":\"relay_message\"";
    if (hl >= sizeof rm - 1 && !memcmp(h, rm, sizeof rm - 1)) {
        on_relay_message(c, now);
        return;
    }
    const char *t = find_bytes(h, hl, "\"type\":\"");
    if (!t) {
        st.bad_frames++;
        return;
    }
    t += 8;
    size_t left = hl - (size_t)((const uint8_t *)t - h);
#define IS(name) (left > sizeof(name) - 1 && !memcmp(t, name "\"", sizeof(name)))
    if (!IS("pong"))
        st.last_rx = now;     /* storm: settled once nothing but pongs arrives */
    if (IS("register_ack")) {
        if (find_bytes(h, hl, "\"success\":true"))
            set_ready(c);
        else
            mark_dead(c, "register refused");
    } else if (IS("pong")) {
        st.pongs++;
        if (opt.storm && c->ping_sent) {
            hist_add(&member_rtt, now - c->ping_sent);
            c->ping_sent = 0;
        }
    } else if (IS("peers")) {
        if (!c->got_peers) {
            c->got_peers = true;
            st.got_peers++;
        }
        st.peers_frames++;
        st.peers_bytes += ws_wire_len(c->msg_len);
        st.peers_entries += c->pid_count;
    } else if (IS("peer_connected")) {
        st.pc_frames++;
        st.pc_bytes += ws_wire_len(c->msg_len);
    } else if (IS("peer_disconnected")) {
        st.pd_frames++;
        st.pd_bytes += ws_wire_len(c->msg_len);
    } else if (IS("ping")) {
        const char *ts = find_bytes(h, hl, "\"timestamp\":");
        uint64_t v = 0;
        if (ts) {
            ts += 12;
            read_uint(&ts, (const char *)h + hl, &v);
        }
        char msg[64];
        snprintf(msg, sizeof msg, "{\"type\":\"pong\",\"timestamp\":%llu}", (unsigned long long)v);
        ws_send_text(c, msg);
        st.pings_answered++;
    } else if (IS("error")) {
        if (st.errors++ < 5)
            fprintf(stderr, "relay_load: connection %u got %.*s\n", c->idx, (int)hl, (const char *)h);
    } else if (IS("relay_message")) {
        on_relay_message(c, now);
    }
#undef IS
}

static void ws_frame_done(conn *c, uint64_t now)
{
    switch (c->opcode) {
    case 1:
    case 2:
        on_relay_text(c, now);
        break;
    case 8: {
        unsigned code = c->head_len >= 2 ? (unsigned)c->head[0] << 8 | c->head[1] : 1005;
        char why[64];
        snprintf(why, sizeof why, "close frame from the server (code %u)", code);
        mark_dead(c, why);
        break;
    }
    case 9:
        ws_send(c, 10, c->head, c->head_len);
        break;
    default:                  /* pongs; continuations never carry a stamp we need */
        break;
    }
}

/* Storm: counts the entries of a peers answer, chunk by chunk, without keeping the body: each
 * is an object whose first key is "peer_id" (a match may straddle two chunks: the last bytes of
 * each are carried over). Found by its '{' (memchr), as memmem over every answer made the tool
 * the slower side of the storm, and a slow reader makes the relay's writes dearer. */
static void count_peer_ids(conn *c, const uint8_t *p, size_t k)
{
    static const char key[] = "{\"peer_id\"";
    _Static_assert(sizeof c->pid_carry + 2 == sizeof key, "the carry is one byte short of the key");
    const size_t kl = sizeof key - 1, keep = sizeof c->pid_carry;
    uint8_t b[2 * sizeof c->pid_carry];
    size_t carry = c->pid_carry_len, m = k < keep ? k : keep;
    memcpy(b, c->pid_carry, carry);
    memcpy(b + carry, p, m);
    for (size_t i = 0; i < carry; i++)
        if (i + kl <= carry + m && !memcmp(b + i, key, kl))
            c->pid_count++;
    for (const uint8_t *q = p, *end = p + k; (q = memchr(q, '{', (size_t)(end - q))) != NULL; q++)
        if ((size_t)(end - q) >= kl && !memcmp(q, key, kl))
            c->pid_count++;
    /* the new carry: the last `keep` bytes of carry + chunk */
    if (k >= keep) {
        memcpy(c->pid_carry, p + k - keep, keep);
        c->pid_carry_len = (uint8_t)keep;
    } else {
        size_t total = carry + k, from = total > keep ? total - keep : 0;
        memmove(b + carry, p, k);
        memcpy(c->pid_carry, b + from, total - from);
        c->pid_carry_len = (uint8_t)(total - from);
    }
}

/* Bytes at the start of a message body that name its type ({"type":"peers", first as the
 * relay writes it, with room to spare). */
#define TYPE_HEAD_BYTES 24

static void ws_consume(conn *c, const uint8_t *p, size_t n, uint64_t now)
{
    while (n && c->phase != PH_DEAD) {
        if (c->rs == RS_HEAD) {
            c->hdr[c->hdr_len++] = *p++;
            n--;
            if (c->hdr_len == 2) {
                if (c->hdr[1] & 0x80) {
                    mark_dead(c, "masked frame from the server");
                    return;
                }
                unsigned l7 = c->hdr[1] & 0x7fu;
                c->hdr_need = (uint8_t)(2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0));
            }
            if (c->hdr_len < 2 || c->hdr_len < c->hdr_need)
                continue;
            uint64_t len = c->hdr[1] & 0x7fu;
            if (len >= 126) {
                len = 0;
                for (unsigned i = 2; i < c->hdr_need; i++)
                    len = len << 8 | c->hdr[i];
            }
            c->opcode = c->hdr[0] & 0x0f;
            c->msg_len = c->remain = len;
            c->head_len = 0;
            c->hdr_len = 0;
            c->hdr_need = 2;
            c->pid_count = 0;
            c->pid_carry_len = 0;
            c->pid_skip = false;
            if (len == 0)
                ws_frame_done(c, now);
            else
                c->rs = RS_BODY;
        } else {
            size_t k = n < c->remain ? n : (size_t)c->remain;
            size_t room = HEAD_MAX - c->head_len, keep = k < room ? k : room;
            memcpy(c->head + c->head_len, p, keep);
            c->head_len = (uint16_t)(c->head_len + keep);
            /* Only peers answers have their entries counted: once the head shows another
             * type, the body is not scanned (the notices are most of a storm's frames). */
            if (opt.storm && !c->pid_skip && c->head_len >= TYPE_HEAD_BYTES &&
                !find_bytes(c->head, TYPE_HEAD_BYTES, "\"type\":\"peers\""))
                c->pid_skip = true;
            if (opt.storm && !c->pid_skip)
                count_peer_ids(c, p, k);
            p += k;
            n -= k;
            c->remain -= k;
            if (!c->remain) {
                c->rs = RS_HEAD;
                ws_frame_done(c, now);
            }
        }
    }
}

static void send_register(conn *c)
{
    char net[32], msg[256];
    if (opt.group)
        snprintf(net, sizeof net, "bench-%u", c->idx / opt.group);
    else
        snprintf(net, sizeof net, "bench");
    snprintf(msg, sizeof msg, "{\"type\":\"register\",\"peer_id\":\"%s\",\"network_id\":\"%s\","
             "\"protocol_version\":1}", c->peer_id, net);
    ws_send_text(c, msg);
    snprintf(msg, sizeof msg, "{\"type\":\"get_peers\",\"network_id\":\"%s\"}", net);
    ws_send_text(c, msg);
}

/* Accumulates the 101 response; returns the bytes it used. */
static size_t hs_consume(conn *c, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (c->head_len >= HEAD_MAX - 1) {
            mark_dead(c, "handshake response too long");
            return n;
        }
        c->head[c->head_len++] = p[i];
        if (c->head_len >= 4 && !memcmp(c->head + c->head_len - 4, "\r\n\r\n", 4)) {
            c->head[c->head_len] = 0;
            const char *r = (const char *)c->head;
            if (strncmp(r, "HTTP/1.1 101 ", 13) != 0 || !strcasestr(r, "\r\nConnection: Upgrade\r\n")) {
                char why[96];
                snprintf(why, sizeof why, "handshake refused: %.60s", r);
                mark_dead(c, why);
                return n;
            }
            c->phase = PH_OPEN;
            c->head_len = 0;
            c->rs = RS_HEAD;
            c->hdr_need = 2;
            send_register(c);
            return i + 1;
        }
    }
    return n;
}

/* ---------------------------------------------------------------- input: Redis (RESP) */

static void resp_message_done(conn *c, uint64_t now)
{
    if (!strcmp(c->kind, "message")) {
        if (c->head_len < STAMP_BYTES) {
            st.bad_frames++;
            return;
        }
        deliver(c, le_get(c->head, 8), le_get(c->head + 8, 4), c->msg_len, now);
    } else if (!strcmp(c->kind, "subscribe")) {
        set_ready(c);
    }
}

static void resp_element_done(conn *c, uint64_t now)
{
    if (c->arr_left <= 0)
        return;               /* a top-level reply, e.g. PUBLISH's subscriber count */
    c->elem++;
    if (--c->arr_left == 0)
        resp_message_done(c, now);
}

static void resp_line(conn *c, uint64_t now)
{
    c->line[c->line_len] = 0;
    long long v = strtoll(c->line + 1, NULL, 10);
    switch (c->line[0]) {
    case '*':
        c->arr_left = v;
        c->elem = 0;
        c->kind[0] = 0;
        c->head_len = 0;
        break;
    case '$':
        if (v < 0) {
            resp_element_done(c, now);
            break;
        }
        c->bulk_len = v;
        c->bulk_pos = 0;
        c->remain = (uint64_t)v + 2;
        c->rs = RS_BULK;
        break;
    case '-':
        if (st.errors++ < 5)
            fprintf(stderr, "relay_load: redis connection %u got %s\n", c->idx, c->line);
        resp_element_done(c, now);
        break;
    default:
        resp_element_done(c, now);
        break;
    }
}

static void resp_consume(conn *c, const uint8_t *p, size_t n, uint64_t now)
{
    while (n && c->phase != PH_DEAD) {
        if (c->rs == RS_BULK) {
            size_t k = n < c->remain ? n : (size_t)c->remain;
            int64_t content_left = c->bulk_len - c->bulk_pos;
            size_t content = content_left > 0 ? ((int64_t)k < content_left ? k : (size_t)content_left) : 0;
            if (c->elem == 0 && c->bulk_pos < (int64_t)sizeof c->kind - 1) {
                size_t keep = sizeof c->kind - 1 - (size_t)c->bulk_pos;
                keep = content < keep ? content : keep;
                memcpy(c->kind + c->bulk_pos, p, keep);
                c->kind[(size_t)c->bulk_pos + keep] = 0;
            } else if (c->elem == 2) {
                size_t room = HEAD_MAX - c->head_len, keep = content < room ? content : room;
                memcpy(c->head + c->head_len, p, keep);
                c->head_len = (uint16_t)(c->head_len + keep);
                c->msg_len = (uint64_t)c->bulk_len;
            }
            c->bulk_pos += (int64_t)k;
            c->remain -= k;
            p += k;
            n -= k;
            if (!c->remain) {
                c->rs = RS_LINE;
                resp_element_done(c, now);
            }
        } else {
            uint8_t ch = *p++;
            n--;
            if (ch == '\n') {
                resp_line(c, now);
                c->line_len = 0;
            } else if (ch != '\r' && c->line_len < sizeof c->line - 1) {
                c->line[c->line_len++] = (char)ch;
            }
        }
    }
}

/* ---------------------------------------------------------------- connection events */

static void on_readable(conn *c, uint64_t now)
{
    ssize_t r = link_recv(c, rbuf, RECV_BUF);
    if (r == 0) {
        mark_dead(c, "closed by the server");
        return;
    }
    if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            mark_dead(c, strerror(errno));
        return;
    }
    const uint8_t *p = rbuf;
    size_t n = (size_t)r;
    st.rx_bytes += n;
    if (c->phase == PH_HANDSHAKE) {
        size_t used = hs_consume(c, p, n);
        p += used;
        n -= used;
    }
    if (c->phase != PH_OPEN || !n)
        return;
    if (opt.mode == MODE_RELAY)
        ws_consume(c, p, n, now);
    else
        resp_consume(c, p, n, now);
}

static void on_connected(conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err) {
        mark_dead(c, strerror(err));
        return;
    }
    st.connected++;
    if (opt.tls) {
        c->phase = PH_TLS;
        tls_begin(c);
        tls_pump(c);
        return;
    }
    if (opt.mode == MODE_RELAY) {
        c->phase = PH_HANDSHAKE;
    } else {
        c->phase = PH_OPEN;
        c->rs = RS_LINE;
        if (c->role == ROLE_SENDER)
            set_ready(c);
    }
    want_flush(c);
}

static void base64(const uint8_t *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = 0;
}

static void start_connect(conn *c)
{
    st.started++;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket (raise ulimit -n?)");
    c->fd = fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.spread) {
        /* One source address per PER_SOURCE_IP reservations, as distinct hosts would be; the
         * port is picked at connect time so each address has its own port space. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = { .sin_family = AF_INET };
        src.sin_addr.s_addr = htonl(0x7f010000u + c->idx / PER_SOURCE_IP + 1);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0)
            die("bind to a 127.x.y.z source");
    }
    /* targets (odd reservations) may live on another instance */
    uint16_t port = opt.target_port && c->idx % 2 == 1 ? opt.target_port : opt.port;
    struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(port) };
    if (inet_pton(AF_INET, opt.host, &dst.sin_addr) != 1) {
        fprintf(stderr, "relay_load: --host must be an IPv4 address, got %s\n", opt.host);
        exit(2);
    }
    c->phase = PH_CONNECTING;
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS) {
        mark_dead(c, strerror(errno));
        return;
    }
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
        die("epoll_ctl");
    c->epollout = true;

    char req[512];
    if (opt.mode == MODE_RELAY) {
        uint8_t key[16];
        char key64[32];
        for (int i = 0; i < 16; i++)
            key[i] = (uint8_t)rng_next();
        base64(key, 16, key64);
        int n = snprintf(req, sizeof req,
                         "GET / HTTP/1.1\r\nHost: %s:%u\r\nConnection: Upgrade\r\n"
                         "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                         "Sec-WebSocket-Key: %s\r\n\r\n", opt.host, opt.port, key64);
        ctl_append(c, req, (size_t)n);
    } else if (c->role == ROLE_TARGET) {
        int n = snprintf(req, sizeof req, "*2\r\n$9\r\nSUBSCRIBE\r\n$64\r\n%s\r\n", c->peer_id);
        ctl_append(c, req, (size_t)n);
    }
}

/* ---------------------------------------------------------------- the loop */

static bool pwait2_missing;
static uint32_t ping_idx;
static uint64_t ping_due, ping_step;   /* 0: pings off */
static uint64_t ping_batch;            /* ns; pings wait for the next multiple of it */
static uint64_t open_k, open_start;    /* open loop: message k is due at open_start + k/rate */

static uint64_t open_due(uint64_t k)
{
    return open_start + (uint64_t)((double)k * 1e9 / opt.rate);
}

static void send_ping(conn *c, uint64_t now)
{
    char msg[64];
    if (opt.storm)
        c->ping_sent = now;
    snprintf(msg, sizeof msg, "{\"type\":\"ping\",\"timestamp\":%lld}", (long long)time(NULL));
    ws_send_text(c, msg);
    st.pings_sent++;
}

static void run_timers(uint64_t now)
{

    /* With batching, pings due in a window go out together once the window has closed. */
    uint64_t ping_until = ping_batch ? t0 + (now - t0) / ping_batch * ping_batch - 1 : now;
    while (ping_step && ping_due <= ping_until) {
        conn *c = &conns[ping_idx];
        if (c->phase == PH_OPEN && c->ready && !(opt.storm && c->ping_sent))
            send_ping(c, now);
        ping_idx = (ping_idx + 1) % opt.conns;
        ping_due += ping_step;
    }
    while (sending && opt.rate > 0 && open_due(open_k) <= now) {
        pair *p = &pairs[open_k % opt.pairs];
        if (p->sender->phase == PH_OPEN && p->queued - p->delivered < opt.window) {
            queue_message(p, now);
            want_flush(p->sender);
        } else {
            st.window_stalls++;
        }
        open_k++;
    }
}

static void run_once(uint64_t until)
{
    static struct epoll_event evs[1024];
    uint64_t now = mono_ns(), wake = until;
    flush_all(now);                   /* output queued since the last pass goes out before waiting */
    if (ping_step) {
        uint64_t ping_wake = ping_due;
        if (ping_batch)
            ping_wake = t0 + ((ping_due - t0) / ping_batch + 1) * ping_batch;
        if (ping_wake < wake)
            wake = ping_wake;
    }
    if (sending && opt.rate > 0 && open_due(open_k) < wake)
        wake = open_due(open_k);
    uint64_t wait = wake > now ? wake - now : 0;
    int n;
    if (!pwait2_missing) {
        struct timespec ts = { .tv_sec = (time_t)(wait / 1000000000u), .tv_nsec = (long)(wait % 1000000000u) };
        n = epoll_pwait2(ep, evs, 1024, &ts, NULL);
        if (n < 0 && errno == ENOSYS)
            pwait2_missing = true;
    }
    if (pwait2_missing)
        n = epoll_wait(ep, evs, 1024, (int)((wait + 999999) / 1000000));
    if (n < 0) {
        if (errno == EINTR)
            return;
        die("epoll_wait");
    }
    now = mono_ns();
    for (int i = 0; i < n; i++) {
        conn *c = evs[i].data.ptr;
        uint32_t e = evs[i].events;
        if (c->phase == PH_DEAD)
            continue;
        if (c->phase == PH_CONNECTING) {
            if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                on_connected(c);
            continue;
        }
        if (c->phase == PH_TLS) {
            tls_pump(c);
            continue;
        }
        if (e & (EPOLLIN | EPOLLERR | EPOLLHUP))
            on_readable(c, now);
        if ((e & EPOLLOUT) && c->phase != PH_DEAD)
            want_flush(c);
    }
    run_timers(now);
    flush_all(now);
}

static void run_for(double secs)
{
    uint64_t until = mono_ns() + (uint64_t)(secs * 1e9);
    while (mono_ns() < until)
        run_once(until);
}

/* ---------------------------------------------------------------- setup and report */

static void raise_fd_limit(uint32_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("getrlimit");
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < (rlim_t)need + 32) {
        fprintf(stderr, "relay_load: %u connections need %u open files but RLIMIT_NOFILE is %llu "
                "(raise the hard limit: ulimit -Hn / LimitNOFILE)\n", need, need + 32,
                (unsigned long long)rl.rlim_cur);
        exit(2);
    }
}

static void setup_connections(void)
{
    conns = calloc(opt.conns, sizeof *conns);
    pairs = calloc(opt.pairs ? opt.pairs : 1, sizeof *pairs);
    flush_list = xmalloc(sizeof *flush_list * opt.conns);
    rbuf = xmalloc(RECV_BUF);
    if (!conns || !pairs)
        die("calloc");
    uint64_t run_tag = rng_next();
    for (uint32_t i = 0; i < opt.conns; i++) {
        conn *c = &conns[i];
        c->idx = i;
        c->fd = -1;
        c->hdr_need = 2;
        c->role = i < 2 * opt.pairs ? (i % 2 ? ROLE_TARGET : ROLE_SENDER) : ROLE_IDLE;
        c->pr = c->role == ROLE_IDLE ? NULL : &pairs[i / 2];
        uint64_t m = rng_next();
        memcpy(c->mask, &m, 4);
        /* Unique per run, so a rerun never collides with registrations still being torn down. */
        snprintf(c->peer_id, sizeof c->peer_id, "%016llx%016llx%016llx%016llx",
                 (unsigned long long)run_tag, (unsigned long long)i,
                 (unsigned long long)rng_next(), (unsigned long long)rng_next());
    }
    for (uint32_t k = 0; k < opt.pairs; k++) {
        pair *p = &pairs[k];
        p->sender = &conns[2 * k];
        p->target = &conns[2 * k + 1];
        if (opt.mode == MODE_RELAY)
            build_relay_frames(p);
        else
            build_redis_frames(p);
    }
}

static bool connect_all(void)
{
    uint64_t start = mono_ns(), deadline = start + (uint64_t)(opt.setup_secs * 1e9);
    uint64_t next_note = start + 2000000000ull;
    uint32_t next = 0;
    while (st.ready < opt.conns) {
        uint32_t in_progress = st.started - st.ready - st.failed - st.closed;
        while (next < opt.conns && in_progress < opt.connect_burst) {
            start_connect(&conns[next++]);
            in_progress++;
        }
        uint64_t now = mono_ns();
        run_once(now + 50000000ull);
        now = mono_ns();
        if (st.failed || st.closed) {
            fprintf(stderr, "relay_load: setup failed: %u of %u connections lost (%u ready)\n",
                    st.failed + st.closed, opt.conns, st.ready);
            return false;
        }
        if (now > deadline) {
            fprintf(stderr, "relay_load: setup timed out after %.0f s with %u of %u ready\n",
                    opt.setup_secs, st.ready, opt.conns);
            static const char *const phase_name[] = { "connecting", "in TLS handshake", "upgrading",
                                                      "registering", "dead" };
            for (uint32_t i = 0, shown = 0; i < opt.conns && shown < 5; i++) {
                if (!conns[i].ready) {
                    fprintf(stderr, "relay_load:   connection %u still %s\n", i, phase_name[conns[i].phase]);
                    shown++;
                }
            }
            return false;
        }
        if (now > next_note) {
            note("%u/%u ready", st.ready, opt.conns);
            next_note = now + 2000000000ull;
        }
    }
    return true;
}

/* Handshake mode: every slot connects, completes a handshake, closes and starts over. */
static int run_handshakes(void)
{
    long pid = opt.server_pid;
    for (uint32_t i = 0; i < opt.conns; i++)
        start_connect(&conns[i]);
    run_for(opt.warmup);
    st.measuring = true;
    double cpu0 = pid ? proc_cpu_secs(pid) : 0, rx0 = opt.rx_pid ? proc_cpu_secs(opt.rx_pid) : 0;
    uint64_t m0 = mono_ns();
    run_for(opt.duration);
    st.measuring = false;
    double secs = (double)(mono_ns() - m0) / 1e9;
    double cpu = (pid ? proc_cpu_secs(pid) : 0) - cpu0;
    double rx = (opt.rx_pid ? proc_cpu_secs(opt.rx_pid) : 0) - rx0;
    printf("mode=handshake parallel=%u secs=%.2f handshakes=%llu hs_per_s=%.0f failed=%u "
           "server_cpu_s=%.3f rx_cpu_s=%.3f cpu_us_per_hs=%.1f\n",
           opt.conns, secs, (unsigned long long)st.handshakes,
           secs > 0 ? (double)st.handshakes / secs : 0, st.failed, cpu, rx,
           st.handshakes ? (cpu + rx) * 1e6 / (double)st.handshakes : 0);
    fflush(stdout);
    return st.handshakes && !st.failed ? 0 : 1;
}

/* Storm mode: every reservation connects at once on one network id, registers and asks for
 * the peers at once, as the nodes of a network do when their relay restarts. The storm has
 * settled when every reservation is registered and has its peers answer and the relay has sent
 * nothing for STORM_QUIET_NS; its CPU and wall time are counted up to then (the wall time up to
 * the last byte received). Pings go out at --storm-ping-rate throughout, one outstanding per
 * reservation, and their round trips are the latency figures.
 *
 * What the protocol makes the relay send, with n reservations and P = n(n-1)/2 pairs: every
 * pair costs one peer_connected (to the one that registered first) and one entry in a peers
 * answer (the later one's), and each answer lists its asker too. Anything received beyond that
 * (entries a peer also learns from a peer_connected, say) is the relay's own overhead. */
#define STORM_QUIET_NS 500000000ull
#define PROBE_PING_NS 5000000ull

/* The storm's probe: one reservation on a network of its own, on its own thread with blocking
 * sockets (so the tool's busy loop never delays it), pinging every PROBE_PING_NS and timing
 * each pong into `lat`. */
static volatile int probe_stopping;
static int probe_fd = -1;

static bool probe_send(const char *text)
{
    uint8_t f[256];
    size_t n = strlen(text), h = 6;
    f[0] = 0x81;
    f[1] = (uint8_t)(0x80 | n);        /* every probe message is under 126 bytes */
    memset(f + 2, 0, 4);                /* a zero mask key leaves the text as it is */
    memcpy(f + h, text, n);
    return send(probe_fd, f, h + n, MSG_NOSIGNAL) == (ssize_t)(h + n);
}

static bool probe_read(uint8_t *buf, size_t n)
{
    while (n) {
        ssize_t r = recv(probe_fd, buf, n, 0);
        if (r <= 0)
            return false;
        buf += r;
        n -= (size_t)r;
    }
    return true;
}

/* Reads server frames until a text frame holding `type`; false on error. */
static bool probe_wait_for(const char *type)
{
    char want[48];
    snprintf(want, sizeof want, "\"type\":\"%s\"", type);
    for (;;) {
        uint8_t h[10], body[4096];
        if (!probe_read(h, 2))
            return false;
        uint64_t len = h[1] & 0x7f;
        unsigned ext = len == 126 ? 2 : len == 127 ? 8 : 0;
        if (ext && !probe_read(h + 2, ext))
            return false;
        if (ext) {
            len = 0;
            for (unsigned i = 0; i < ext; i++)
                len = len << 8 | h[2 + i];
        }
        size_t keep = len < sizeof body - 1 ? (size_t)len : sizeof body - 1;
        if (!probe_read(body, keep))
            return false;
        for (uint64_t left = len - keep; left;) {
            size_t k = left < sizeof body ? (size_t)left : sizeof body;
            if (!probe_read(body, k))
                return false;
            left -= k;
        }
        body[keep] = 0;
        if (strstr((const char *)body, want))
            return true;
    }
}

static void *probe_main(void *arg)
{
    (void)arg;
    while (!probe_stopping) {
        uint64_t t = mono_ns();
        if (!probe_send("{\"type\":\"ping\",\"timestamp\":1}") || !probe_wait_for("pong")) {
            fprintf(stderr, "relay_load: the storm's probe lost its connection\n");
            break;
        }
        hist_add(&lat, mono_ns() - t);
        struct timespec ts = { 0, (long)PROBE_PING_NS };
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static bool probe_start(pthread_t *th)
{
    struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(opt.port) };
    char req[256], reg[256];
    uint8_t c;
    unsigned matched = 0;
    int one = 1;
    probe_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe_fd < 0 || inet_pton(AF_INET, opt.host, &dst.sin_addr) != 1 ||
        connect(probe_fd, (struct sockaddr *)&dst, sizeof dst) != 0) {
        fprintf(stderr, "relay_load: the storm's probe could not connect\n");
        return false;
    }
    setsockopt(probe_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: %s:%u\r\nConnection: Upgrade\r\n"
                     "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", opt.host, opt.port);
    if (send(probe_fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        return false;
    while (matched < 4 && probe_read(&c, 1))   /* the 101 response, up to its blank line */
        matched = c == "\r\n\r\n"[matched] ? matched + 1 : c == '\r';
    snprintf(reg, sizeof reg, "{\"type\":\"register\",\"peer_id\":\"probe-%016llx\","
             "\"network_id\":\"bench-probe\",\"protocol_version\":1}", (unsigned long long)rng_next());
    if (matched < 4 || !probe_send(reg) || !probe_wait_for("register_ack")) {
        fprintf(stderr, "relay_load: the storm's probe could not register\n");
        return false;
    }
    return pthread_create(th, NULL, probe_main, NULL) == 0;
}

static void probe_stop(pthread_t th)
{
    probe_stopping = 1;
    pthread_join(th, NULL);
    close(probe_fd);
}

static int run_storm(void)
{
    long pid = opt.server_pid;
    uint64_t n = opt.conns, pairs_n = n * (n - 1) / 2;
    double cpu0 = pid ? proc_cpu_secs(pid) : 0, self0 = self_cpu_secs();
    uint64_t start = mono_ns(), deadline = start + (uint64_t)(opt.setup_secs * 1e9);
    uint64_t next_note = start + 2000000000ull, now = start;
    bool settled = false;
    /* The probe registers first, on a network of its own: its pings wait for nothing but the
     * relay's loop, which is what "never starve keepalives" is about. */
    pthread_t probe_thread;
    if (!probe_start(&probe_thread))
        return 1;
    cpu0 = pid ? proc_cpu_secs(pid) : 0;
    self0 = self_cpu_secs();
    start = now = mono_ns();
    ping_step = (uint64_t)(1e9 / opt.storm_ping_rate);
    ping_due = start + ping_step;
    st.last_rx = start;
    for (uint32_t i = 0; i < opt.conns; i++)
        start_connect(&conns[i]);
    while (now < deadline && !st.failed && !st.closed) {
        run_once(now + 50000000ull);
        now = mono_ns();
        if (st.ready == n && st.got_peers == n && now - st.last_rx >= STORM_QUIET_NS) {
            settled = true;
            break;
        }
        if (now > next_note) {
            note("storm: %u/%u registered, %llu peers answers, %.1f MB received", st.ready,
                 opt.conns, (unsigned long long)st.got_peers, (double)st.rx_bytes / 1e6);
            next_note = now + 2000000000ull;
        }
    }
    double cpu = (pid ? proc_cpu_secs(pid) : 0) - cpu0, self = self_cpu_secs() - self0;
    probe_stop(probe_thread);
    double wall = (double)(st.last_rx - start) / 1e9;
    if (!settled)
        fprintf(stderr, "relay_load: storm did not settle: %u/%u registered, %llu/%u peers "
                "answers, %u connections lost\n", st.ready, opt.conns,
                (unsigned long long)st.got_peers, opt.conns, st.failed + st.closed);
    /* Average sizes as received (entries carry the same fields, so they differ by a few bytes
     * of address at most); a peers answer's frame around its entries is "{"type":"peers",
     * "peers":[...]}" plus the WebSocket header. */
    double pc_size = st.pc_frames ? (double)st.pc_bytes / (double)st.pc_frames : 0;
    double frame_overhead = 27 + 4;
    double entry_size = st.peers_entries ? ((double)st.peers_bytes - (double)st.peers_frames *
                                            frame_overhead) / (double)st.peers_entries : 0;
    double mandated = (double)pairs_n * pc_size + (double)(pairs_n + n) * entry_size +
                      (double)n * frame_overhead;
    double notified = (double)(st.pc_bytes + st.peers_bytes);
    printf("mode=storm conns=%u settled=%d relay_cpu_s=%.3f wall_s=%.3f rx_bytes=%llu "
           "peers_frames=%llu peers_bytes=%llu peers_entries=%llu pc_frames=%llu pc_bytes=%llu "
           "pd_frames=%llu pd_bytes=%llu pairs=%llu mandated_bytes=%.0f extra_bytes=%.0f "
           "extra_items=%lld pings=%llu pongs=%llu probe_pings=%llu ping_p50_us=%.1f "
           "ping_p99_us=%.1f ping_max_us=%.1f member_pings=%llu member_ping_p50_us=%.1f "
           "member_ping_p99_us=%.1f server_rss_kb=%llu tool_cpu_s=%.3f\n",
           opt.conns, settled, cpu, wall, (unsigned long long)st.rx_bytes,
           (unsigned long long)st.peers_frames, (unsigned long long)st.peers_bytes,
           (unsigned long long)st.peers_entries, (unsigned long long)st.pc_frames,
           (unsigned long long)st.pc_bytes, (unsigned long long)st.pd_frames,
           (unsigned long long)st.pd_bytes, (unsigned long long)pairs_n, mandated,
           notified - mandated,
           (long long)(st.pc_frames + st.peers_entries) - (long long)(2 * pairs_n + n),
           (unsigned long long)st.pings_sent, (unsigned long long)st.pongs,
           (unsigned long long)lat.n, hist_pct_us(&lat, 0.50), hist_pct_us(&lat, 0.99),
           (double)lat.max / 1000.0, (unsigned long long)member_rtt.n,
           hist_pct_us(&member_rtt, 0.50), hist_pct_us(&member_rtt, 0.99),
           (unsigned long long)(pid ? proc_status_kb(pid, "VmRSS") : 0), self);
    fflush(stdout);
    return settled && !st.errors ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (!parse_options(argc, argv)) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(opt.conns + 1);
    rng_state = mono_ns() ^ ((uint64_t)getpid() << 32);
    for (unsigned v = 0; v < DIGIT_BASE; v++) {
        digit3[v][0] = (char)('0' + (100 + v) / 100);
        digit3[v][1] = (char)('0' + (100 + v) / 10 % 10);
        digit3[v][2] = (char)('0' + (100 + v) % 10);
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    t0 = mono_ns();
    if (opt.tls)
        tls_setup();
    setup_connections();
    if (opt.mode == MODE_HANDSHAKE)
        return run_handshakes();
    if (opt.storm)
        return run_storm();

    long pid = opt.server_pid;
    uint64_t rss_base = pid ? proc_status_kb(pid, "VmRSS") : 0;
    uint64_t setup_start = mono_ns();
    bool ok = connect_all();
    double setup_s = (double)(mono_ns() - setup_start) / 1e9;
    if (ok)
        note("%u connections ready in %.2f s", opt.conns, setup_s);

    /* Let notifications from the registration burst drain before measuring anything. */
    if (ok)
        run_for(1.0);
    uint64_t rss_ready = pid ? proc_status_kb(pid, "VmRSS") : 0;
    if (opt.mode == MODE_RELAY && ok) {
        ping_step = (uint64_t)(opt.ping_secs * 1e9 / opt.conns);
        if (!ping_step)
            ping_step = 1;
        ping_due = mono_ns() + ping_step;
        ping_batch = (uint64_t)(opt.ping_batch_ms * 1e6);
    }

    double cpu0 = 0, cpu1 = 0, rx0 = 0, rx1 = 0, self0 = 0, self1 = 0, secs = 0;
    uint64_t lost = 0;
    if (ok) {
        if (opt.pairs) {
            sending = true;
            open_start = mono_ns();
            for (uint32_t k = 0; k < opt.pairs; k++)
                want_flush(pairs[k].sender);
            run_for(opt.warmup);
        }
        st.measuring = true;
        cpu0 = pid ? servers_cpu_secs(pid) : 0;
        rx0 = opt.rx_pid ? proc_cpu_secs(opt.rx_pid) : 0;
        self0 = self_cpu_secs();
        uint64_t m0 = mono_ns();
        run_for(opt.duration);
        st.measuring = false;
        sending = false;
        secs = (double)(mono_ns() - m0) / 1e9;
        cpu1 = pid ? servers_cpu_secs(pid) : 0;
        rx1 = opt.rx_pid ? proc_cpu_secs(opt.rx_pid) : 0;
        self1 = self_cpu_secs();
        /* Drain what is in flight so losses can be told from latency. */
        uint64_t drain_until = mono_ns() + 3000000000ull;
        for (;;) {
            lost = 0;
            for (uint32_t k = 0; k < opt.pairs; k++)
                lost += pairs[k].queued - pairs[k].delivered;
            if (!lost || mono_ns() > drain_until)
                break;
            run_once(mono_ns() + 10000000ull);
        }
    }
    uint64_t ooo = 0;
    for (uint32_t k = 0; k < opt.pairs; k++)
        ooo += pairs[k].ooo;
    uint64_t rss_end = pid ? proc_status_kb(pid, "VmRSS") : 0;
    double mps = secs > 0 ? (double)st.delivered / secs : 0;
    double cpu = cpu1 - cpu0;
    double per_conn = rss_ready > rss_base ? (double)(rss_ready - rss_base) * 1024.0 / opt.conns : 0;

    printf("mode=%s conns=%u pairs=%u size=%zu window=%u rate=%.0f secs=%.2f setup_s=%.2f "
           "delivered=%llu msgs_per_s=%.0f payload_mb_s=%.2f wire_mb_s=%.2f "
           "p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f lost=%llu ooo=%llu errors=%llu "
           "bad=%llu conn_lost=%u stalls=%llu pings=%llu pongs=%llu "
           "server_cpu_s=%.3f server_cpu_pct=%.2f server_rss_base_kb=%llu server_rss_ready_kb=%llu "
           "server_rss_kb=%llu rss_per_conn_b=%.0f tool_cpu_pct=%.1f rx_cpu_pct=%.2f\n",
           opt.mode == MODE_RELAY ? "relay" : "redis", opt.conns, opt.pairs, opt.size, opt.window,
           opt.rate, secs, setup_s, (unsigned long long)st.delivered, mps,
           secs > 0 ? (double)st.payload_bytes / secs / 1e6 : 0,
           secs > 0 ? (double)st.wire_bytes / secs / 1e6 : 0,
           hist_pct_us(&lat, 0.50), hist_pct_us(&lat, 0.99), hist_pct_us(&lat, 0.999),
           (double)lat.max / 1000.0,
           (unsigned long long)lost, (unsigned long long)ooo, (unsigned long long)st.errors,
           (unsigned long long)st.bad_frames, st.failed + st.closed,
           (unsigned long long)st.window_stalls, (unsigned long long)st.pings_sent,
           (unsigned long long)st.pongs, cpu, secs > 0 ? 100.0 * cpu / secs : 0,
           (unsigned long long)rss_base, (unsigned long long)rss_ready, (unsigned long long)rss_end,
           per_conn, secs > 0 ? 100.0 * (self1 - self0) / secs : 0,
           secs > 0 ? 100.0 * (rx1 - rx0) / secs : 0);
    fflush(stdout);
    bool clean = ok && !lost && !ooo && !st.errors && !st.bad_frames && !st.failed && !st.closed;
    return clean ? 0 : 1;
}
