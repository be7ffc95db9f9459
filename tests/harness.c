/* Integration-test support library (see harness.h): relay process control, raw TCP, a
 * WebSocket client that behaves like the live client, and small JSON lookups. */
#include "tests/harness.h"

#include "hash.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WSC_MAX_FRAME (64u * 1024u * 1024u)  /* the harness refuses server frames above this */
#define HANDSHAKE_MAX 8192

/* ================================================================ clocks and ports */

uint64_t h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void h_sleep_ms(unsigned ms)
{
    struct timespec ts = { (time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Milliseconds left until deadline, clamped to [0, INT_MAX-ish] for poll(). */
static int ms_left(uint64_t deadline)
{
    uint64_t now = h_now_ms();
    if (now >= deadline)
        return 0;
    uint64_t d = deadline - now;
    return d > 1000000u ? 1000000 : (int)d;
}

/* Binds a socket of the given kind to port (0 = let the kernel pick) and returns the bound
 * port, or 0 when the bind fails. The socket is closed again before returning. */
static uint16_t try_bind_port(const char *kind, uint16_t port)
{
    bool udp = strncmp(kind, "udp", 3) == 0;
    bool v6 = strstr(kind, "6") != NULL;
    int fd = socket(v6 ? AF_INET6 : AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    if (v6) {
        int off = 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_any;
        a->sin6_port = htons(port);
        sl = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a->sin_port = htons(port);
        sl = sizeof *a;
    }
    uint16_t bound = 0;
    if (bind(fd, (struct sockaddr *)&ss, sl) == 0 && getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        bound = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    close(fd);
    return bound;
}

/* The kernel's ephemeral range, from which every outgoing connection takes its source port. */
static void ephemeral_range(unsigned *lo, unsigned *hi)
{
    *lo = 32768;
    *hi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        unsigned a, b;
        if (fscanf(f, "%u %u", &a, &b) == 2 && a <= b) {
            *lo = a;
            *hi = b;
        }
        fclose(f);
    }
}

/* A port handed out by the kernel for bind(0) lies in the ephemeral range, where the tests'
 * own outgoing connections (thousands of them, some lingering in TIME_WAIT) take source
 * ports too: between the probe and the relay's bind, one of them can land on it. So ports are
 * drawn at random from below that range, where only listeners live, and a port is never
 * handed out twice by one test process (four are drawn per relay, each probe closed before
 * the next). Falls back to bind(0) when no port below the range is free. */
unsigned h_slowdown(void)
{
    const char *s = getenv("DIG_TEST_SLOWDOWN");
    int n = s ? atoi(s) : 1;
    return n >= 1 && n <= 100 ? (unsigned)n : 1;
}

uint16_t h_free_port(const char *kind)
{
    enum { PORT_FLOOR = 10000, RECENT = 256 };
    static uint16_t recent[RECENT];
    static unsigned recent_next;
    static uint32_t rng;
    unsigned lo, hi;
    ephemeral_range(&lo, &hi);
    if (!rng)
        rng = ((uint32_t)getpid() * 2654435761u ^ (uint32_t)h_now_ms()) | 1u;
    unsigned span = lo > PORT_FLOOR + 1000 ? lo - PORT_FLOOR : 0;
    for (unsigned attempt = 0; span && attempt < 200; attempt++) {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        uint16_t candidate = (uint16_t)(PORT_FLOOR + rng % span);
        bool seen = false;
        for (unsigned i = 0; i < RECENT && !seen; i++)
            seen = recent[i] == candidate;
        if (seen || try_bind_port(kind, candidate) != candidate)
            continue;
        recent[recent_next++ % RECENT] = candidate;
        return candidate;
    }
    return try_bind_port(kind, 0);
}

/* ================================================================ the relay process */

/* Every relay started and not yet reaped, so an early test return cannot leak a process. */
static pid_t live_pids[256];
static size_t n_live_pids;
static bool atexit_installed;
static unsigned log_counter;

static void forget_pid(pid_t pid)
{
    for (size_t i = 0; i < n_live_pids; i++)
        if (live_pids[i] == pid) {
            live_pids[i] = live_pids[--n_live_pids];
            return;
        }
}

static void kill_leftovers(void)
{
    for (size_t i = 0; i < n_live_pids; i++) {
        kill(live_pids[i], SIGKILL);
        waitpid(live_pids[i], NULL, 0);
    }
    n_live_pids = 0;
}

static void remember_pid(pid_t pid)
{
    if (!atexit_installed) {
        atexit(kill_leftovers);
        atexit_installed = true;
    }
    if (n_live_pids < sizeof live_pids / sizeof live_pids[0])
        live_pids[n_live_pids++] = pid;
}

const char *relay_binary(void)
{
    const char *b = getenv("DIG_RELAY_BIN");
    return b && *b ? b : "./dig-relay";
}

/* Applies "NAME=value" entries to this (child) process's environment. */
static void apply_env(const char *const *env)
{
    for (size_t i = 0; env && env[i]; i++) {
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s", env[i]);
        char *eq = strchr(tmp, '=');
        if (!eq)
            continue;
        *eq = '\0';
        setenv(tmp, eq + 1, 1);
    }
}

/* In a forked child: runs argv with env applied and the signal dispositions a program expects. A
 * suite started in the background by a non-interactive shell inherits SIGINT ignored, and a
 * shell (the wine wrapper of tests/cross.sh) cannot trap a signal ignored on entry, so the tests
 * that send SIGINT would depend on how the suite was started. */
static _Noreturn void exec_child(const char *const *argv, const char *const *env)
{
    sigset_t none;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    apply_env(env);
    execvp(argv[0], (char *const *)argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* Starts argv (argv[0] a path, or a name looked up on PATH) with stdout and stderr to log_path
 * and stdin from /dev/null, or with stdin and stdout on io_fd when it is >= 0 (stderr still to
 * the log); the process is killed at exit if a test leaves it running. */
static pid_t spawn_logged(const char *const *argv, const char *const *env, const char *log_path,
                          int io_fd)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid != 0) {
        if (pid > 0)
            remember_pid(pid);
        return pid;
    }
    int logfd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int infd = io_fd >= 0 ? io_fd : open("/dev/null", O_RDONLY);
    if (logfd >= 0) {
        dup2(io_fd >= 0 ? io_fd : logfd, 1);
        dup2(logfd, 2);
    }
    if (infd >= 0)
        dup2(infd, 0);
    exec_child(argv, env);
}

static int decode_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

bool relay_alive(relay_proc *r)
{
    if (r->pid <= 0 || r->exited)
        return false;
    int status;
    pid_t w = waitpid(r->pid, &status, WNOHANG);
    if (w == r->pid) {
        r->exited = true;
        r->exit_code = decode_status(status);
        forget_pid(r->pid);
        return false;
    }
    return true;
}

/* True once GET /health on the health port gets any HTTP answer. */
static bool health_answers(const relay_proc *r)
{
    char resp[2048];
    return h_http("127.0.0.1", r->health_port, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                  resp, sizeof resp, 500) > 0 && h_http_status(resp) > 0;
}

/* True when the wire port accepts a TCP connection (closed again at once). */
static bool wire_accepts(const relay_proc *r)
{
    const char *host = strchr(r->listen_host, ':') ? "::1" : "127.0.0.1";
    if (strcmp(r->listen_host, "[::]") == 0 || strcmp(r->listen_host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    int fd = tcp_connect(host, r->port, NULL, 200);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

typedef enum { START_OK, START_FAILED, START_PORT_TAKEN } start_result;

/* One start attempt on freshly drawn ports. START_PORT_TAKEN: the relay exited at start-up
 * because another process bound one of its ports between the probe and the relay's bind. */
static start_result relay_start_once(relay_proc *r, const relay_opts *o, bool last_attempt)
{
    memset(r, 0, sizeof *r);
    snprintf(r->listen_host, sizeof r->listen_host, "%s", o->listen_host ? o->listen_host : "127.0.0.1");
    bool dual = strchr(r->listen_host, ':') != NULL;
    r->port = h_free_port(dual ? "tcp6dual" : "tcp4");
    const char *health_host = o->health_host ? o->health_host : "127.0.0.1";
    r->health_port = h_free_port(strchr(health_host, ':') ? "tcp6dual" : "tcp4");
    const char *stun_host = o->stun_host ? o->stun_host : "127.0.0.1";
    r->stun_port = h_free_port(strchr(stun_host, ':') ? "udp6dual" : "udp4");
    r->dashboard_port = h_free_port("tcp4");
    if (!r->port || !r->health_port || !r->stun_port || !r->dashboard_port) {
        printf("  relay_start: could not find free ports\n");
        return START_FAILED;
    }
    snprintf(r->log_path, sizeof r->log_path, "/tmp/dig-relay-test.%ld.%u.log", (long)getpid(), log_counter++);

    char listen[96], health[64], stun[64], dash[64];
    snprintf(listen, sizeof listen, "%s:%u", r->listen_host, r->port);
    snprintf(health, sizeof health, "%s:%u", health_host, r->health_port);
    snprintf(stun, sizeof stun, "%s:%u", stun_host, r->stun_port);
    if (o->dashboard_listen)
        snprintf(dash, sizeof dash, "%s", o->dashboard_listen);
    else
        snprintf(dash, sizeof dash, "127.0.0.1:%u", r->dashboard_port);

    const char *argv[RELAY_MAX_ARGS + 16];
    size_t n = 0;
    argv[n++] = relay_binary();
    if (o->serve_subcommand)
        argv[n++] = "serve";
    if (!o->omit_listen) {
        argv[n++] = "--listen";
        argv[n++] = listen;
    }
    argv[n++] = "--health-listen";
    argv[n++] = health;
    argv[n++] = "--stun-listen";
    argv[n++] = stun;
    argv[n++] = "--dashboard-listen";
    argv[n++] = dash;
    for (size_t i = 0; o->args && o->args[i] && i < RELAY_MAX_ARGS; i++)
        argv[n++] = o->args[i];
    argv[n] = NULL;

    pid_t pid = spawn_logged(argv, o->env, r->log_path, -1);
    if (pid < 0) {
        printf("  relay_start: fork: %s\n", strerror(errno));
        return START_FAILED;
    }
    r->pid = pid;

    /* Ready when /health answers. A relay whose health listener does not answer but whose wire
     * port accepts is given a grace second and then used anyway (with a note). */
    uint64_t deadline = h_now_ms() + 10000, wire_seen_at = 0;
    while (h_now_ms() < deadline) {
        if (!relay_alive(r)) {
            char *log = relay_read_log(r);
            bool port_taken = log && strstr(log, "already in use") != NULL;
            free(log);
            if (port_taken && !last_attempt) {
                printf("  note: a port drawn for the relay was taken before it bound; new ports\n");
                unlink(r->log_path);
                return START_PORT_TAKEN;
            }
            printf("  relay_start: %s exited with %d during start-up\n", argv[0], r->exit_code);
            relay_print_log(r, 2000);
            return START_FAILED;
        }
        if (health_answers(r))
            return START_OK;
        if (!wire_seen_at && wire_accepts(r))
            wire_seen_at = h_now_ms();
        if (wire_seen_at && h_now_ms() - wire_seen_at > 1000) {
            printf("  note: /health on 127.0.0.1:%u never answered; using the wire port anyway\n", r->health_port);
            return START_OK;
        }
        h_sleep_ms(20);
    }
    printf("  relay_start: relay not ready after 10 s\n");
    relay_print_log(r, 2000);
    relay_stop(r, 1000);
    return START_FAILED;
}

bool relay_start(relay_proc *r, const relay_opts *o)
{
    static const relay_opts none;
    enum { START_ATTEMPTS = 3 };
    for (unsigned attempt = 1;; attempt++) {
        start_result res = relay_start_once(r, o ? o : &none, attempt == START_ATTEMPTS);
        if (res != START_PORT_TAKEN)
            return res == START_OK;
    }
}

bool relay_start_args(relay_proc *r, const char *const *args)
{
    relay_opts o = { .args = args };
    return relay_start(r, &o);
}

int relay_stop(relay_proc *r, unsigned timeout_ms)
{
    if (r->pid <= 0)
        return -1;
    if (r->exited)
        return r->exit_code;
    kill(r->pid, SIGTERM);
    uint64_t deadline = h_now_ms() + timeout_ms;
    while (h_now_ms() < deadline) {
        if (!relay_alive(r))
            return r->exit_code;
        h_sleep_ms(5);
    }
    printf("  relay_stop: no exit %u ms after SIGTERM; killing\n", timeout_ms);
    kill(r->pid, SIGKILL);
    int status;
    waitpid(r->pid, &status, 0);
    forget_pid(r->pid);
    r->exited = true;
    r->exit_code = decode_status(status);
    return -1;
}

uint64_t relay_rss_kb(const relay_proc *r)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/status", (long)r->pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[256];
    uint64_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtoull(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

bool relay_under_valgrind(const relay_proc *r)
{
    char path[64], exe[512];
    snprintf(path, sizeof path, "/proc/%ld/exe", (long)r->pid);
    ssize_t n = readlink(path, exe, sizeof exe - 1);
    if (n <= 0)
        return false;
    exe[n] = '\0';
    return strstr(exe, "valgrind") != NULL || strstr(exe, "memcheck") != NULL;
}

char *relay_read_log(const relay_proc *r)
{
    return h_read_text(r->log_path);
}

char *h_read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    size_t got;
    while (s && (got = fread(s + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len < 2) {
            char *bigger = realloc(s, cap * 2);
            if (!bigger) {
                free(s);
                s = NULL;
                break;
            }
            s = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (s)
        s[len] = '\0';
    return s;
}

void relay_print_log(const relay_proc *r, size_t max_bytes)
{
    char *s = relay_read_log(r);
    if (!s)
        return;
    size_t len = strlen(s);
    const char *from = len > max_bytes ? s + len - max_bytes : s;
    printf("  ---- relay log (%s)%s\n", r->log_path, from != s ? ", tail" : "");
    for (const char *line = from; *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        printf("  | %.*s\n", (int)n, line);
        line += n + (nl ? 1 : 0);
    }
    printf("  ----\n");
    free(s);
}

void relay_cleanup(relay_proc *r, bool keep_log)
{
    if (r->pid > 0 && !r->exited)
        relay_stop(r, 5000);
    if (!keep_log && r->log_path[0])
        unlink(r->log_path);
}

relay_proc h_relay;

bool h_start(const char *const *args)
{
    return relay_start_args(&h_relay, args);
}

int relay_end_test(relay_proc *r, bool failed)
{
    int status = 0;
    if (r->pid > 0) {
        status = relay_stop(r, 5000);
        if (failed)
            relay_print_log(r, 3000);
        relay_cleanup(r, failed);
    }
    memset(r, 0, sizeof *r);
    return status;
}

/* Reads a whole small file into buf (truncated to cap-1, NUL-terminated). */
static void slurp(const char *path, char *buf, size_t cap)
{
    if (!buf || cap == 0)
        return;
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

int h_run(const char *const *argv, const char *const *env, char *out, size_t out_cap,
          char *err, size_t err_cap, unsigned timeout_ms)
{
    char out_path[64], err_path[64];
    unsigned id = log_counter++;
    snprintf(out_path, sizeof out_path, "/tmp/dig-relay-run.%ld.%u.out", (long)getpid(), id);
    snprintf(err_path, sizeof err_path, "/tmp/dig-relay-run.%ld.%u.err", (long)getpid(), id);

    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nullfd = open("/dev/null", O_RDONLY);
        if (o >= 0)
            dup2(o, 1);
        if (e >= 0)
            dup2(e, 2);
        if (nullfd >= 0)
            dup2(nullfd, 0);
        exec_child(argv, env);
    }
    remember_pid(pid);
    int status = 0, code = -1;
    uint64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            code = decode_status(status);
            break;
        }
        if (h_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            printf("  h_run: %s still running after %u ms; killed\n", argv[0], timeout_ms);
            break;
        }
        h_sleep_ms(5);
    }
    forget_pid(pid);
    slurp(out_path, out, out_cap);
    slurp(err_path, err, err_cap);
    unlink(out_path);
    unlink(err_path);
    return code;
}

uint8_t *h_read_file(const char *path, size_t *len)
{
    const size_t cap = 16u << 20;
    FILE *f = fopen(path, "rb");
    uint8_t *buf = f ? malloc(cap) : NULL;
    if (buf == NULL) {
        printf("  cannot read %s: %s\n", path, f ? "out of memory" : strerror(errno));
        if (f)
            fclose(f);
        return NULL;
    }
    *len = fread(buf, 1, cap, f);
    fclose(f);
    return buf;
}

int h_sh(const char *cmd, char *out, size_t out_cap, unsigned timeout_ms)
{
    char err[2048];
    const char *const argv[] = { "/bin/sh", "-c", cmd, NULL };
    int code = h_run(argv, NULL, out, out_cap, err, sizeof err, timeout_ms);
    if (code != 0)
        printf("  h_sh: '%s' exited %d: %.600s\n", cmd, code, err);
    return code;
}

bool h_have_openssl(void)
{
    const char *const argv[] = { "/bin/sh", "-c", "openssl version", NULL };
    return h_run(argv, NULL, NULL, 0, NULL, 0, 10000) == 0;
}

bool h_make_cert(const char *dir, const char *name, const char *keyspec, const char *issuer,
                 bool ca, char peer_id[65])
{
    char cmd[2048], gen[128], sign[512], out[256];
    int bits = 0;

    if (strncmp(keyspec, "ec:", 3) == 0)
        snprintf(gen, sizeof gen, "-algorithm EC -pkeyopt ec_paramgen_curve:%s", keyspec + 3);
    else if (sscanf(keyspec, "rsa:%d", &bits) == 1)
        snprintf(gen, sizeof gen, "-algorithm RSA -pkeyopt rsa_keygen_bits:%d", bits);
    else {
        printf("  h_make_cert: unknown key spec %s\n", keyspec);
        return false;
    }
    if (issuer == NULL)
        snprintf(sign, sizeof sign, "openssl req -x509 -new -key %s.key.pem -subj /CN=%s -days 3650 "
                 "-addext basicConstraints=critical,CA:%s -out %s.crt.pem", name, name,
                 ca ? "TRUE" : "FALSE", name);
    else
        snprintf(sign, sizeof sign, "openssl req -new -key %s.key.pem -subj /CN=%s -out %s.csr && "
                 "printf 'basicConstraints=critical,CA:%s\\n' > %s.ext && "
                 "openssl x509 -req -in %s.csr -CA %s.crt.pem -CAkey %s.key.pem -set_serial %u "
                 "-days 3650 -extfile %s.ext -out %s.crt.pem", name, name, name,
                 ca ? "TRUE" : "FALSE", name, name, issuer, issuer, (unsigned)(h_now_ms() & 0xffffff),
                 name, name);
    snprintf(cmd, sizeof cmd,
             "set -e; cd '%s'; openssl genpkey %s -out %s.key.pem 2>/dev/null; %s 2>/dev/null; "
             "openssl x509 -in %s.crt.pem -outform DER -out %s.crt.der; "
             "openssl pkey -in %s.key.pem -outform DER -out %s.key.der; "
             "openssl x509 -in %s.crt.pem -pubkey -noout | openssl pkey -pubin -outform DER | "
             "openssl dgst -sha256 -r",
             dir, gen, name, sign, name, name, name, name, name);
    if (h_sh(cmd, out, sizeof out, 60000) != 0)
        return false;
    if (strlen(out) < 64) {
        printf("  h_make_cert: no digest from openssl: %s\n", out);
        return false;
    }
    if (peer_id != NULL) {
        memcpy(peer_id, out, 64);
        peer_id[64] = '\0';
    }
    return true;
}

int h_run_binary(const char *const *args, const char *const *env, char *out, size_t out_cap,
                 char *err, size_t err_cap, unsigned timeout_ms)
{
    const char *argv[RELAY_MAX_ARGS + 2];
    size_t n = 0;
    argv[n++] = relay_binary();
    for (size_t i = 0; args && args[i] && i < RELAY_MAX_ARGS; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return h_run(argv, env, out, out_cap, err, err_cap, timeout_ms);
}

/* ================================================================ other programs */

static bool spawn_proc(h_proc *p, const char *const *argv, const char *const *env, int io_fd)
{
    memset(p, 0, sizeof *p);
    snprintf(p->log_path, sizeof p->log_path, "/tmp/dig-relay-proc.%ld.%u.log", (long)getpid(),
             log_counter++);
    p->pid = spawn_logged(argv, env, p->log_path, io_fd);
    if (p->pid < 0) {
        printf("  cannot start %s: %s\n", argv[0], strerror(errno));
        p->pid = 0;
        return false;
    }
    return true;
}

bool h_spawn(h_proc *p, const char *const *argv, const char *const *env)
{
    return spawn_proc(p, argv, env, -1);
}

int h_tls_tunnel(h_proc *p, uint16_t port, const char *cert, const char *key)
{
    char target[32];
    int sv[2];
    snprintf(target, sizeof target, "127.0.0.1:%u", port);
    const char *const with_cert[] = { "openssl", "s_client", "-quiet", "-tls1_2", "-connect",
                                      target, "-cert", cert, "-key", key, NULL };
    const char *const without[] = { "openssl", "s_client", "-quiet", "-tls1_2", "-connect",
                                     target, NULL };
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return -1;
    if (!spawn_proc(p, cert ? with_cert : without, NULL, sv[1])) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    close(sv[1]);
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    return sv[0];
}

bool h_proc_alive(h_proc *p)
{
    int status;
    if (p->pid <= 0 || p->exited)
        return false;
    if (waitpid(p->pid, &status, WNOHANG) != p->pid)
        return true;
    forget_pid(p->pid);
    p->exited = true;
    p->exit_code = decode_status(status);
    return false;
}

int h_proc_stop(h_proc *p, unsigned timeout_ms)
{
    if (p->pid <= 0)
        return -1;
    if (h_proc_alive(p)) {
        kill(p->pid, SIGTERM);
        uint64_t deadline = h_now_ms() + timeout_ms;
        while (h_proc_alive(p) && h_now_ms() < deadline)
            h_sleep_ms(5);
        if (!p->exited) {
            int status;
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            forget_pid(p->pid);
            p->exited = true;
            p->exit_code = -1;
        }
    }
    return p->exit_code;
}

void h_proc_cleanup(h_proc *p, bool show_log)
{
    h_proc_stop(p, 2000);
    if (show_log) {
        char log[4096];
        slurp(p->log_path, log, sizeof log);
        printf("  ---- %s\n%s\n  ----\n", p->log_path, log);
    }
    unlink(p->log_path);
    p->pid = 0;
}

/* ================================================================ raw TCP */

/* Fills a sockaddr for "1.2.3.4", "::1" or "[::1]" and port; false when unparseable. */
static bool make_sockaddr(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *sl)
{
    char h[64];
    size_t n = strlen(host);
    if (n >= sizeof h)
        return false;
    if (host[0] == '[' && n >= 2 && host[n - 1] == ']') {
        memcpy(h, host + 1, n - 2);
        h[n - 2] = '\0';
    } else {
        memcpy(h, host, n + 1);
    }
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        *sl = sizeof *a4;
        return true;
    }
    if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        *sl = sizeof *a6;
        return true;
    }
    return false;
}

int tcp_connect(const char *host, uint16_t port, const char *src, unsigned timeout_ms)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (!make_sockaddr(host, port, &ss, &sl)) {
        printf("  tcp_connect: bad host %s\n", host);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (src) {
        struct sockaddr_storage bs;
        socklen_t bl;
        if (!make_sockaddr(src, 0, &bs, &bl) || bind(fd, (struct sockaddr *)&bs, bl) != 0) {
            printf("  tcp_connect: cannot bind source %s: %s\n", src, strerror(errno));
            close(fd);
            return -1;
        }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
        if (errno != EINPROGRESS) {
            close(fd);
            return -1;
        }
        struct pollfd p = { fd, POLLOUT, 0 };
        int soerr = 0;
        socklen_t el = sizeof soerr;
        if (poll(&p, 1, (int)timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el) != 0 || soerr != 0) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

bool tcp_send_all(int fd, const void *buf, size_t len, unsigned timeout_ms)
{
    const uint8_t *p = buf;
    uint64_t deadline = h_now_ms() + timeout_ms;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pf = { fd, POLLOUT, 0 };
            int left = ms_left(deadline);
            if (left == 0 || poll(&pf, 1, left) <= 0)
                return false;
            continue;
        }
        return false;
    }
    return true;
}

size_t tcp_recv_until_close(int fd, char *buf, size_t cap, unsigned timeout_ms, bool *closed)
{
    size_t len = 0;
    uint64_t deadline = h_now_ms() + timeout_ms;
    if (closed)
        *closed = false;
    while (len + 1 < cap) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n > 0) {
            len += (size_t)n;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            if (closed)
                *closed = true;
            break;
        }
        struct pollfd pf = { fd, POLLIN, 0 };
        int left = ms_left(deadline);
        if (left == 0 || poll(&pf, 1, left) <= 0)
            break;
    }
    buf[len] = '\0';
    return len;
}

bool tcp_wait_closed(int fd, unsigned timeout_ms)
{
    uint64_t deadline = h_now_ms() + timeout_ms;
    char sink[4096];
    for (;;) {
        ssize_t n = recv(fd, sink, sizeof sink, 0);
        if (n == 0)
            return true;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return true;
        if (n > 0)
            continue;
        struct pollfd pf = { fd, POLLIN, 0 };
        int left = ms_left(deadline);
        if (left == 0 || poll(&pf, 1, left) < 0)
            return false;
    }
}

size_t h_http(const char *host, uint16_t port, const char *req, char *resp, size_t cap,
              unsigned timeout_ms)
{
    if (cap)
        resp[0] = '\0';
    int fd = tcp_connect(host, port, NULL, timeout_ms);
    if (fd < 0)
        return 0;
    size_t n = 0;
    if (tcp_send_all(fd, req, strlen(req), timeout_ms))
        n = tcp_recv_until_close(fd, resp, cap, timeout_ms, NULL);
    close(fd);
    return n;
}

int h_http_status(const char *resp)
{
    if (strncmp(resp, "HTTP/1.", 7) != 0 || !resp[7] || resp[8] != ' ')
        return -1;
    if (!isdigit((unsigned char)resp[9]) || !isdigit((unsigned char)resp[10]) ||
        !isdigit((unsigned char)resp[11]))
        return -1;
    return (resp[9] - '0') * 100 + (resp[10] - '0') * 10 + (resp[11] - '0');
}

bool h_http_header(const char *resp, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *end = strstr(resp, "\r\n\r\n");
    const char *line = strstr(resp, "\r\n");
    while (line && end && line < end) {
        line += 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t vl = (size_t)(e - v);
            while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            if (vl >= cap)
                vl = cap - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return true;
        }
        line = strstr(line, "\r\n");
    }
    return false;
}

const char *h_http_body(const char *resp)
{
    const char *e = strstr(resp, "\r\n\r\n");
    return e ? e + 4 : NULL;
}

/* ================================================================ SHA-1, base64, randomness */

size_t h_base64(const uint8_t *in, size_t len, char *out, size_t cap)
{
    if (cap < BASE64_LEN(len) + 1)
        return 0;
    return base64_encode(in, len, out);
}

void h_accept_key(const char *key, char out[29])
{
    char buf[128];
    int n = snprintf(buf, sizeof buf, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    uint8_t digest[20];
    hash_sha1(buf, (size_t)n, digest);
    h_base64(digest, sizeof digest, out, 29);
}

void h_random(void *buf, size_t len)
{
    static int fd = -2;
    if (fd == -2)
        fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    uint8_t *p = buf;
    size_t got = 0;
    while (fd >= 0 && got < len) {
        ssize_t n = read(fd, p + got, len - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    for (; got < len; got++)
        p[got] = (uint8_t)rand();
}

/* ================================================================ WebSocket client */

static void wsc_init(ws_client *c)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->auto_pong = true;
    c->send_timeout_ms = 5000;
}

static bool grow(uint8_t **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n *= 2;
    uint8_t *q = realloc(*p, n);
    if (!q)
        return false;
    *p = q;
    *cap = n;
    return true;
}

/* Reads what is available (waiting up to the deadline for at least one byte). Returns
 * WSC_OK, WSC_TIMEOUT, WSC_EOF or WSC_ERROR. */
static int fill(ws_client *c, uint64_t deadline)
{
    if (c->off > 0 && (c->off == c->len || c->off > c->cap / 2)) {
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (!grow(&c->buf, &c->cap, c->len + 65536)) {
        snprintf(c->err, sizeof c->err, "out of memory");
        return WSC_ERROR;
    }
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n > 0) {
            c->len += (size_t)n;
            return WSC_OK;
        }
        if (n == 0)
            return WSC_EOF;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return WSC_EOF;  /* reset: the connection is gone */
        struct pollfd pf = { c->fd, POLLIN, 0 };
        int left = ms_left(deadline);
        if (left == 0)
            return WSC_TIMEOUT;
        int pr = poll(&pf, 1, left);
        if (pr == 0)
            return WSC_TIMEOUT;
        if (pr < 0 && errno != EINTR)
            return WSC_ERROR;
    }
}

bool wsc_connect(ws_client *c, const wsc_opts *o)
{
    wsc_init(c);
    const char *host = o->host ? o->host : "127.0.0.1";
    unsigned timeout = o->timeout_ms ? o->timeout_ms : 3000;
    c->fd = o->fd > 0 ? o->fd : tcp_connect(host, o->port, o->src, timeout);
    if (c->fd < 0) {
        snprintf(c->err, sizeof c->err, "connect to %s port %u failed", host, o->port);
        return false;
    }
    if (o->preface_len > 0 && !tcp_send_all(c->fd, o->preface, o->preface_len, timeout)) {
        snprintf(c->err, sizeof c->err, "sending the preface failed");
        return false;
    }
    uint8_t raw[16];
    char key[32], expect[29];
    h_random(raw, sizeof raw);
    h_base64(raw, sizeof raw, key, sizeof key);
    h_accept_key(key, expect);

    char req[2048];
    bool v6 = strchr(host, ':') != NULL && host[0] != '[';
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s%s%s:%u\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n%s\r\n",
                     o->path ? o->path : "/", v6 ? "[" : "", host, v6 ? "]" : "", o->port, key,
                     o->extra_headers ? o->extra_headers : "");
    if (n <= 0 || (size_t)n >= sizeof req || !tcp_send_all(c->fd, req, (size_t)n, timeout)) {
        snprintf(c->err, sizeof c->err, "sending the handshake failed");
        return false;
    }

    uint64_t deadline = h_now_ms() + timeout;
    char *end = NULL;
    while (!end) {
        int r = fill(c, deadline);
        if (r != WSC_OK) {
            snprintf(c->err, sizeof c->err, "no complete handshake response (%s, %zu bytes)",
                     r == WSC_TIMEOUT ? "timeout" : "connection closed", c->len);
            return false;
        }
        if (c->len > HANDSHAKE_MAX) {
            snprintf(c->err, sizeof c->err, "handshake response over %d bytes", HANDSHAKE_MAX);
            return false;
        }
        c->buf[c->len] = '\0';  /* fill() always leaves spare room */
        end = strstr((char *)c->buf, "\r\n\r\n");
    }
    size_t head_len = (size_t)(end - (char *)c->buf) + 4;
    char head[HANDSHAKE_MAX + 1];
    memcpy(head, c->buf, head_len);
    head[head_len] = '\0';
    c->off = head_len;

    char v[256];
    if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
        snprintf(c->err, sizeof c->err, "expected 101, got: %.120s", head);
        return false;
    }
    if (!h_http_header(head, "Upgrade", v, sizeof v) || strcasecmp(v, "websocket") != 0) {
        snprintf(c->err, sizeof c->err, "101 without Upgrade: websocket");
        return false;
    }
    if (!h_http_header(head, "Connection", v, sizeof v) || strcmp(v, "Upgrade") != 0) {
        snprintf(c->err, sizeof c->err, "101 Connection header is not exactly \"Upgrade\"");
        return false;
    }
    if (!h_http_header(head, "Sec-WebSocket-Accept", v, sizeof v) || strcmp(v, expect) != 0) {
        snprintf(c->err, sizeof c->err, "wrong Sec-WebSocket-Accept (want %s)", expect);
        return false;
    }
    if (h_http_header(head, "Sec-WebSocket-Protocol", v, sizeof v)) {
        snprintf(c->err, sizeof c->err, "101 carries Sec-WebSocket-Protocol: %.160s", v);
        return false;
    }
    if (h_http_header(head, "Sec-WebSocket-Extensions", v, sizeof v)) {
        snprintf(c->err, sizeof c->err, "101 carries Sec-WebSocket-Extensions: %.160s", v);
        return false;
    }
    return true;
}

bool wsc_connect_port(ws_client *c, uint16_t port)
{
    wsc_opts o = { .port = port };
    return wsc_connect(c, &o);
}

void wsc_close(ws_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    free(c->msg);
    c->fd = -1;
    c->buf = c->msg = NULL;
    c->off = c->len = c->cap = c->msg_len = c->msg_cap = 0;
}

size_t wsc_build_frame(uint8_t *out, size_t cap, int opcode, bool fin, unsigned rsv, bool mask,
                       const void *payload, size_t len)
{
    if (cap < len + 14)
        return 0;
    size_t o = 0;
    out[o++] = (uint8_t)((fin ? 0x80 : 0) | ((rsv & 7u) << 4) | ((unsigned)opcode & 0x0f));
    uint8_t mbit = mask ? 0x80 : 0;
    if (len < 126) {
        out[o++] = (uint8_t)(mbit | len);
    } else if (len <= 0xffff) {
        out[o++] = (uint8_t)(mbit | 126);
        out[o++] = (uint8_t)(len >> 8);
        out[o++] = (uint8_t)len;
    } else {
        out[o++] = (uint8_t)(mbit | 127);
        for (int i = 7; i >= 0; i--)
            out[o++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint8_t key[4] = { 0, 0, 0, 0 };
    if (mask) {
        h_random(key, 4);
        memcpy(out + o, key, 4);
        o += 4;
    }
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        out[o + i] = (uint8_t)(p[i] ^ key[i & 3]);
    return o + len;
}

bool wsc_send_raw(ws_client *c, const void *data, size_t len)
{
    if (!tcp_send_all(c->fd, data, len, c->send_timeout_ms)) {
        snprintf(c->err, sizeof c->err, "send failed: %s", strerror(errno));
        return false;
    }
    return true;
}

bool wsc_send_frame(ws_client *c, int opcode, bool fin, const void *payload, size_t len)
{
    uint8_t *f = malloc(len + 14);
    if (!f)
        return false;
    size_t n = wsc_build_frame(f, len + 14, opcode, fin, 0, true, payload, len);
    bool ok = wsc_send_raw(c, f, n);
    free(f);
    return ok;
}

bool wsc_send_text(ws_client *c, const char *text)
{
    return wsc_send_frame(c, 1, true, text, strlen(text));
}

bool wsc_sendf(ws_client *c, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf) {
        printf("  wsc_sendf: message longer than %zu bytes\n", sizeof buf);
        return false;
    }
    if (!wsc_send_text(c, buf)) {
        printf("  send failed: %s\n", c->err);
        return false;
    }
    return true;
}

bool wsc_send_binary(ws_client *c, const void *data, size_t len)
{
    return wsc_send_frame(c, 2, true, data, len);
}

bool wsc_send_fragmented(ws_client *c, int opcode, const void *data, size_t len, size_t frag)
{
    const uint8_t *p = data;
    size_t done = 0;
    bool first = true;
    do {
        size_t n = len - done < frag ? len - done : frag;
        bool fin = done + n == len;
        if (!wsc_send_frame(c, first ? opcode : 0, fin, p + done, n))
            return false;
        done += n;
        first = false;
    } while (done < len);
    return true;
}

bool wsc_send_close(ws_client *c, uint16_t code)
{
    uint8_t body[2] = { (uint8_t)(code >> 8), (uint8_t)code };
    return wsc_send_frame(c, 8, true, body, code ? 2 : 0);
}

/* Parses one server frame at buf[off..len). Returns WSC_OK (frame copied into msg and
 * consumed), WSC_TIMEOUT meaning "need more bytes", or WSC_ERROR. */
static int parse_frame(ws_client *c)
{
    const uint8_t *p = c->buf + c->off;
    size_t avail = c->len - c->off;
    if (avail < 2)
        return WSC_TIMEOUT;
    bool fin = (p[0] & 0x80) != 0;
    unsigned rsv = (p[0] >> 4) & 7u;
    int opcode = p[0] & 0x0f;
    if (rsv) {
        snprintf(c->err, sizeof c->err, "server frame has reserved bits set");
        return WSC_ERROR;
    }
    if (p[1] & 0x80) {
        snprintf(c->err, sizeof c->err, "server frame is masked");
        return WSC_ERROR;
    }
    uint64_t plen = p[1] & 0x7fu;
    size_t hdr = 2;
    if (plen == 126) {
        if (avail < 4)
            return WSC_TIMEOUT;
        plen = (uint64_t)p[2] << 8 | p[3];
        hdr = 4;
        if (plen < 126) {
            snprintf(c->err, sizeof c->err, "server frame length not minimally encoded");
            return WSC_ERROR;
        }
    } else if (plen == 127) {
        if (avail < 10)
            return WSC_TIMEOUT;
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | p[2 + i];
        hdr = 10;
        if (plen <= 0xffff || (plen >> 63)) {
            snprintf(c->err, sizeof c->err, "server frame length not minimally encoded");
            return WSC_ERROR;
        }
    }
    if (opcode >= 8 && (!fin || plen > 125)) {
        snprintf(c->err, sizeof c->err, "server control frame fragmented or over 125 bytes");
        return WSC_ERROR;
    }
    if ((opcode > 2 && opcode < 8) || opcode > 10) {
        snprintf(c->err, sizeof c->err, "server frame has unknown opcode %d", opcode);
        return WSC_ERROR;
    }
    if (plen > WSC_MAX_FRAME) {
        snprintf(c->err, sizeof c->err, "server frame of %llu bytes", (unsigned long long)plen);
        return WSC_ERROR;
    }
    if (avail < hdr + plen)
        return WSC_TIMEOUT;
    if (!grow(&c->msg, &c->msg_cap, (size_t)plen + 1)) {
        snprintf(c->err, sizeof c->err, "out of memory");
        return WSC_ERROR;
    }
    memcpy(c->msg, p + hdr, (size_t)plen);
    c->msg[plen] = '\0';
    c->msg_len = (size_t)plen;
    c->msg_opcode = opcode;
    c->msg_fin = fin;
    c->off += hdr + (size_t)plen;
    if (opcode == 8) {
        c->got_close = true;
        c->close_code = (uint16_t)(plen >= 2 ? (c->msg[0] << 8 | c->msg[1]) : 1005);
    }
    return WSC_OK;
}

static int recv_frame_until(ws_client *c, uint64_t deadline)
{
    for (;;) {
        int r = parse_frame(c);
        if (r != WSC_TIMEOUT)
            return r;
        r = fill(c, deadline);
        if (r != WSC_OK)
            return r;
    }
}

int wsc_recv_frame(ws_client *c, unsigned timeout_ms)
{
    return recv_frame_until(c, h_now_ms() + timeout_ms);
}

static int recv_msg_until(ws_client *c, uint64_t deadline)
{
    uint8_t *acc = NULL;
    size_t acc_len = 0, acc_cap = 0;
    int acc_op = 0;
    for (;;) {
        int r = recv_frame_until(c, deadline);
        if (r != WSC_OK) {
            free(acc);
            return r;
        }
        int op = c->msg_opcode;
        if (op == 9) {
            if (c->auto_pong)
                wsc_send_frame(c, 10, true, c->msg, c->msg_len);
            continue;
        }
        if (op == 10)
            continue;
        if (op == 8) {
            free(acc);
            return WSC_CLOSED;
        }
        if (op != 0 && acc_op) {
            snprintf(c->err, sizeof c->err, "server started a new message inside a fragmented one");
            free(acc);
            return WSC_ERROR;
        }
        if (op == 0 && !acc_op) {
            snprintf(c->err, sizeof c->err, "server sent a continuation frame with no message open");
            free(acc);
            return WSC_ERROR;
        }
        if (op != 0 && c->msg_fin)
            return WSC_OK;
        if (op != 0)
            acc_op = op;
        if (!grow(&acc, &acc_cap, acc_len + c->msg_len + 1)) {
            free(acc);
            return WSC_ERROR;
        }
        memcpy(acc + acc_len, c->msg, c->msg_len);
        acc_len += c->msg_len;
        if (c->msg_fin) {
            acc[acc_len] = '\0';
            free(c->msg);
            c->msg = acc;
            c->msg_cap = acc_cap;
            c->msg_len = acc_len;
            c->msg_opcode = acc_op;
            return WSC_OK;
        }
    }
}

int wsc_recv_msg(ws_client *c, unsigned timeout_ms)
{
    return recv_msg_until(c, h_now_ms() + timeout_ms);
}

int wsc_recv_type(ws_client *c, const char *type, unsigned timeout_ms)
{
    uint64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        int r = recv_msg_until(c, deadline);
        if (r != WSC_OK || hj_is_type((const char *)c->msg, type))
            return r;
    }
}

static const char *result_name(int r)
{
    switch (r) {
    case WSC_OK: return "ok";
    case WSC_TIMEOUT: return "timeout";
    case WSC_CLOSED: return "close frame";
    case WSC_EOF: return "connection closed";
    default: return "protocol error";
    }
}

bool wsc_expect_msg(ws_client *c, const char *expected, unsigned timeout_ms)
{
    int r = wsc_recv_msg(c, timeout_ms);
    if (r != WSC_OK) {
        printf("  expected %s\n       got %s", expected, result_name(r));
        if (r == WSC_CLOSED)
            printf(" (code %u)", c->close_code);
        if (r == WSC_ERROR)
            printf(" (%s)", c->err);
        printf("\n");
        return false;
    }
    if (c->msg_len != strlen(expected) || memcmp(c->msg, expected, c->msg_len) != 0) {
        printf("  expected %s\n       got %.*s\n", expected, (int)(c->msg_len > 600 ? 600 : c->msg_len), (const char *)c->msg);
        return false;
    }
    return true;
}

int wsc_expect_close(ws_client *c, unsigned timeout_ms)
{
    uint64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        int r = recv_frame_until(c, deadline);
        if (r == WSC_TIMEOUT)
            return -1;
        if (r == WSC_EOF)
            return 0;
        if (r == WSC_ERROR)
            return -2;
        if (c->msg_opcode == 8) {
            uint16_t code = c->close_code;
            wsc_send_close(c, code == 1005 ? 0 : code);  /* best effort echo */
            return code;
        }
    }
}

long wsc_ping_rtt(ws_client *c, uint64_t ts, unsigned timeout_ms)
{
    char ping[96], pong[96];
    snprintf(ping, sizeof ping, "{\"type\":\"ping\",\"timestamp\":%llu}", (unsigned long long)ts);
    snprintf(pong, sizeof pong, "{\"type\":\"pong\",\"timestamp\":%llu}", (unsigned long long)ts);
    uint64_t start = h_now_ms(), deadline = start + timeout_ms;
    if (!wsc_send_text(c, ping))
        return -1;
    for (;;) {
        if (recv_msg_until(c, deadline) != WSC_OK)
            return -1;
        if (c->msg_len == strlen(pong) && memcmp(c->msg, pong, c->msg_len) == 0)
            return (long)(h_now_ms() - start);
    }
}

void h_register_json(char *out, size_t cap, const char *peer_id, const char *network_id,
                     const char *listen_addrs_json)
{
    if (listen_addrs_json)
        snprintf(out, cap,
                 "{\"type\":\"register\",\"peer_id\":\"%s\",\"network_id\":\"%s\",\"protocol_version\":1,"
                 "\"listen_addrs\":%s}", peer_id, network_id, listen_addrs_json);
    else
        snprintf(out, cap, "{\"type\":\"register\",\"peer_id\":\"%s\",\"network_id\":\"%s\",\"protocol_version\":1}",
                 peer_id, network_id);
}

bool wsc_register(ws_client *c, const char *peer_id, const char *network_id)
{
    char reg[512];
    h_register_json(reg, sizeof reg, peer_id, network_id, NULL);
    if (!wsc_send_text(c, reg))
        return false;
    int r = wsc_recv_msg(c, 3000);
    static const char ok[] = "{\"type\":\"register_ack\",\"success\":true,\"message\":\"registered\",\"connected_peers\":";
    if (r != WSC_OK || strncmp((const char *)c->msg, ok, sizeof ok - 1) != 0) {
        printf("  register %s: expected a successful register_ack, got %s%s\n", peer_id,
               result_name(r), r == WSC_OK ? (const char *)c->msg : "");
        return false;
    }
    return true;
}

bool wsc_connect_register(ws_client *c, uint16_t port, const char *peer_id, const char *network_id)
{
    if (!wsc_connect_port(c, port)) {
        printf("  connect for %s: %s\n", peer_id, c->err);
        return false;
    }
    return wsc_register(c, peer_id, network_id);
}

/* ================================================================ JSON lookups */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* Skips one JSON value (assumed well-formed enough); NULL when malformed or truncated. */
static const char *skip_value(const char *p)
{
    p = skip_ws(p);
    if (*p == '"') {
        for (p++; *p && *p != '"'; p++)
            if (*p == '\\' && !*++p)
                return NULL;
        return *p ? p + 1 : NULL;
    }
    if (*p == '{' || *p == '[') {
        int depth = 0;
        for (; *p; p++) {
            if (*p == '"') {
                p = skip_value(p);
                if (!p)
                    return NULL;
                p--;
            } else if (*p == '{' || *p == '[') {
                depth++;
            } else if (*p == '}' || *p == ']') {
                if (--depth == 0)
                    return p + 1;
            }
        }
        return NULL;
    }
    const char *s = p;
    while (*p && (isalnum((unsigned char)*p) || *p == '-' || *p == '+' || *p == '.'))
        p++;
    return p > s ? p : NULL;
}

bool hj_get(const char *json, const char *key, const char **val, size_t *vlen)
{
    const char *p = skip_ws(json);
    if (*p != '{')
        return false;
    p = skip_ws(p + 1);
    size_t kl = strlen(key);
    while (*p == '"') {
        const char *k = p + 1;
        const char *ke = skip_value(p);
        if (!ke)
            return false;
        bool match = (size_t)(ke - 1 - k) == kl && memcmp(k, key, kl) == 0;
        p = skip_ws(ke);
        if (*p != ':')
            return false;
        const char *v = skip_ws(p + 1);
        const char *ve = skip_value(v);
        if (!ve)
            return false;
        if (match) {
            *val = v;
            *vlen = (size_t)(ve - v);
            return true;
        }
        p = skip_ws(ve);
        if (*p != ',')
            return false;
        p = skip_ws(p + 1);
    }
    return false;
}

bool hj_get_str(const char *json, const char *key, char *out, size_t cap)
{
    const char *v;
    size_t n;
    if (!hj_get(json, key, &v, &n) || n < 2 || v[0] != '"' || n - 2 >= cap)
        return false;
    memcpy(out, v + 1, n - 2);
    out[n - 2] = '\0';
    return true;
}

bool hj_get_u64(const char *json, const char *key, uint64_t *out)
{
    const char *v;
    size_t n;
    if (!hj_get(json, key, &v, &n) || n == 0 || n > 20)
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)v[i]))
            return false;
        x = x * 10u + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return true;
}

bool hj_is_type(const char *json, const char *type)
{
    char t[64];
    return hj_get_str(json, "type", t, sizeof t) && strcmp(t, type) == 0;
}

char *hj_mask_times(const char *json)
{
    static const char *const keys[] = { "\"connected_at\":", "\"last_seen\":", "\"uptime_secs\":" };
    size_t n = strlen(json);
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        bool hit = false;
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            size_t kl = strlen(keys[k]);
            if (strncmp(json + i, keys[k], kl) == 0 && isdigit((unsigned char)json[i + kl])) {
                memcpy(out + o, keys[k], kl);
                o += kl;
                i += kl;
                while (isdigit((unsigned char)json[i]))
                    i++;
                out[o++] = 'T';
                hit = true;
                break;
            }
        }
        if (!hit)
            out[o++] = json[i++];
    }
    out[o] = '\0';
    return out;
}

size_t h_count(const char *hay, const char *needle)
{
    size_t n = 0, nl = strlen(needle);
    if (nl == 0)
        return 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + nl, needle))
        n++;
    return n;
}

bool h_starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ================================================================ random choices */

uint64_t h_rand(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ull;
}

size_t h_below(uint64_t *state, size_t n)
{
    return n ? (size_t)(h_rand(state) % n) : 0;
}

/* ---------------------------------------------------------------- UDP and STUN */

/* A UDP socket bound to host:0 ("127.0.0.7", "::1", or "::" for a dual-stack socket). */
int h_udp_socket(const char *host)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd;

    memset(&ss, 0, sizeof ss);
    if (strchr(host, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        int off = 0;
        a->sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return -1;
        len = sizeof *a;
        fd = socket(AF_INET6, SOCK_DGRAM, 0);
        if (fd >= 0)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return -1;
        len = sizeof *a;
        fd = socket(AF_INET, SOCK_DGRAM, 0);
    }
    if (fd < 0)
        return -1;
    /* Room for a few hundred answers waiting to be counted. */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &(int){ 1 << 20 }, sizeof(int));
    if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
        printf("  cannot bind UDP %s: %s\n", host, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

bool h_udp_send(int fd, const char *host, uint16_t port, const void *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    if (strchr(host, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        inet_pton(AF_INET6, host, &a->sin6_addr);
        sl = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        inet_pton(AF_INET, host, &a->sin_addr);
        sl = sizeof *a;
    }
    return sendto(fd, buf, len, 0, (struct sockaddr *)&ss, sl) == (ssize_t)len;
}

/* Waits up to timeout_ms for one datagram; returns its length, or -1 when none came. */
ssize_t h_udp_recv(int fd, uint8_t *buf, size_t cap, unsigned timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, (int)timeout_ms) <= 0)
        return -1;
    return recv(fd, buf, cap, MSG_DONTWAIT);
}

/* Counts datagrams arriving until none has come for quiet_ms. */
int h_udp_count_replies(int fd, unsigned quiet_ms)
{
    uint8_t buf[1500];
    int n = 0;
    while (h_udp_recv(fd, buf, sizeof buf, quiet_ms) >= 0)
        n++;
    return n;
}

void h_stun_binding_request(uint8_t req[20], uint32_t tag)
{
    memset(req, 0, 20);
    req[1] = 0x01;
    req[4] = 0x21, req[5] = 0x12, req[6] = 0xa4, req[7] = 0x42;
    h_random(req + 8, 12);
    req[8] = (uint8_t)(tag >> 24), req[9] = (uint8_t)(tag >> 16);
    req[10] = (uint8_t)(tag >> 8), req[11] = (uint8_t)tag;
}

int h_stun_burst(int fd, const char *host, uint16_t port, int n)
{
    uint8_t req[20];
    int sent = 0;
    for (int i = 0; i < n; i++) {
        h_stun_binding_request(req, (uint32_t)i);
        sent += h_udp_send(fd, host, port, req, sizeof req);
    }
    return sent;
}

/* ---------------------------------------------------------------- PROXY protocol */

size_t h_proxy_v2(uint8_t out[52], const char *ip, uint16_t port)
{
    static const uint8_t sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };
    bool v6 = strchr(ip, ':') != NULL;
    size_t alen = v6 ? 16 : 4, body = 2 * alen + 4;
    memcpy(out, sig, 12);
    out[12] = 0x21;                        /* version 2, PROXY */
    out[13] = v6 ? 0x21 : 0x11;            /* TCP over IPv6 / IPv4 */
    out[14] = 0;
    out[15] = (uint8_t)body;
    inet_pton(v6 ? AF_INET6 : AF_INET, ip, out + 16);
    inet_pton(v6 ? AF_INET6 : AF_INET, v6 ? "::1" : "127.0.0.1", out + 16 + alen);
    out[16 + 2 * alen] = (uint8_t)(port >> 8);
    out[17 + 2 * alen] = (uint8_t)port;
    out[18 + 2 * alen] = 0x24;             /* destination port 9450 */
    out[19 + 2 * alen] = 0xea;
    return 16 + body;
}

/* ---------------------------------------------------------------- other programs' checks */

long long h_metric(const char *text, const char *series)
{
    char needle[256];
    snprintf(needle, sizeof needle, "\n%s ", series);
    const char *at = strstr(text, needle);
    return at ? strtoll(at + strlen(needle), NULL, 10) : -1;
}

bool h_promtool_accepts(const char *body, bool *ran)
{
    *ran = access("/usr/bin/promtool", X_OK) == 0;
    if (!*ran)
        return false;
    char path[] = "/tmp/dig-metrics-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return false;
    size_t n = strlen(body);
    bool wrote = write(fd, body, n) == (ssize_t)n;
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "/usr/bin/promtool check metrics < %s 2>&1", path);
    int rc = wrote ? system(cmd) : -1;
    unlink(path);
    return rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
}

bool relay_built_in(const char *feature)
{
    static const char *const args[] = { "--version", NULL };
    char out[512] = "", line[128];
    if (h_run_binary(args, NULL, out, sizeof out, NULL, 0, 5000) != 0)
        return false;
    /* "features: tls geoip" or "features: tls; not built in: geoip (needs ...)" */
    const char *at = strstr(out, "\nfeatures: ");
    if (!at)
        return false;
    snprintf(line, sizeof line, "%.*s", (int)strcspn(at + 11, ";\n"), at + 11);
    for (char *tok = strtok(line, " "); tok; tok = strtok(NULL, " "))
        if (strcmp(tok, feature) == 0)
            return true;
    return false;
}

bool h_raise_fd_limit(unsigned long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return false;
    if (rl.rlim_cur >= want)
        return true;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur >= want;
}
