/* Integration-test support: start the real ./dig-relay binary on fresh loopback ports, talk to it
 * as the live client does over real sockets, and inspect the process from outside.
 *
 * Everything here blocks with a deadline (milliseconds), so a hung or crashed relay makes a test
 * fail instead of hang. POSIX only: tests run on Linux CI; the relay itself stays portable.
 *
 *   relay_*    fork/exec ./dig-relay (or $DIG_RELAY_BIN) with free ports, wait until /health
 *              answers, SIGTERM it and collect the exit status, read its RSS.
 *   tcp_*      raw TCP for HTTP tests and for sockets that never speak.
 *   wsc_*      a WebSocket client that sends exactly the live client's handshake, verifies the
 *              101 byte by byte, sends masked frames (optionally fragmented or malformed) and
 *              receives frames, answering pings on the way.
 *   hj_*       small lookups on the relay's compact JSON output. Tests prefer exact-byte
 *              comparison where the bytes are fully determined; hj_* covers the rest. */
#ifndef DIG_TEST_HARNESS_H
#define DIG_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---------------------------------------------------------------- clocks and ports */

uint64_t h_now_ms(void);                 /* monotonic */
void h_sleep_ms(unsigned ms);
/* How many times slower than native the relay under test runs: $DIG_TEST_SLOWDOWN (tests/cross.sh
 * sets it for a relay under qemu-user or wine, tests/valgrind.sh under valgrind), else 1.
 * Latency bounds scale by it. */
unsigned h_slowdown(void);

/* A currently free port for a listener, below the kernel's ephemeral range and not handed
 * out before by this process. "tcp4"/"udp4" probe 127.0.0.1; "tcp6dual" probes [::] with
 * IPV6_V6ONLY cleared so the port is free on both families. Returns 0 on failure. */
uint16_t h_free_port(const char *kind);
/* Raises this process's descriptor limit (which a relay started afterwards inherits) to at least
 * want, as far as the hard limit allows; true when it is at least want now. */
bool h_raise_fd_limit(unsigned long want);

/* ---------------------------------------------------------------- the relay process */

#define RELAY_MAX_ARGS 64

typedef struct {
    pid_t pid;
    uint16_t port;            /* wire (WebSocket) listener */
    uint16_t health_port;
    uint16_t stun_port;
    uint16_t dashboard_port;
    char listen_host[64];     /* as passed to --listen, without the port ("127.0.0.1", "[::]") */
    char log_path[128];       /* the relay's stderr (and stdout) */
    bool exited;
    int exit_code;            /* valid when exited: exit status, or 128+signal */
} relay_proc;

/* Abuse limits off, for a list of relay arguments: load that comes from one loopback address is
 * not an attack. H_SOURCE_LIMITS_OFF: the per-source ones (and bans); H_LIMITS_OFF: those and
 * the per-connection ones. The relay refuses a flag given twice, so a list that sets one of these
 * itself takes the narrower macro. */
#define H_SOURCE_LIMITS_OFF                                                                       \
    "--max-connections-per-ip", "0", "--registrations-per-ip-per-sec", "0",                       \
    "--max-registrations-per-ip", "0", "--ban-threshold", "0"
#define H_LIMITS_OFF                                                                              \
    H_SOURCE_LIMITS_OFF, "--messages-per-conn-per-sec", "0", "--bytes-per-conn-per-sec", "0",     \
    "--max-relayed-bytes-per-conn", "0"

typedef struct {
    const char *listen_host;       /* default "127.0.0.1" */
    const char *health_host;       /* default "127.0.0.1" ("[::]" for a dual-stack health port) */
    const char *stun_host;         /* default "127.0.0.1" ("[::]" for a dual-stack STUN socket) */
    const char *dashboard_listen;  /* --dashboard-listen value instead of a free loopback port */
    bool omit_listen;              /* do not pass --listen (caller sets it through env/args) */
    bool serve_subcommand;         /* put "serve" first, as an installer would */
    const char *const *args;       /* extra arguments, NULL-terminated (may be NULL) */
    const char *const *env;        /* extra "NAME=value" entries, NULL-terminated (may be NULL) */
} relay_opts;

/* Path of the binary under test: $DIG_RELAY_BIN or "./dig-relay". */
const char *relay_binary(void);

/* Starts the relay with free ports and waits (up to 5 s) until GET /health answers. On failure
 * prints why (and the relay's log) and returns false; any started process is killed. */
bool relay_start(relay_proc *r, const relay_opts *o);
/* Convenience: relay_start with only extra args (NULL-terminated list, may be NULL). */
bool relay_start_args(relay_proc *r, const char *const *args);

/* Sends SIGTERM and waits up to timeout_ms for exit (then SIGKILLs). Returns the exit code
 * (128+signal when killed by one), or -1 when it had to be killed. Idempotent. */
int relay_stop(relay_proc *r, unsigned timeout_ms);
/* True while the process has not exited (reaps it if it has). */
bool relay_alive(relay_proc *r);
/* Resident set size in KiB from /proc/<pid>/status, 0 when unknown. */
uint64_t relay_rss_kb(const relay_proc *r);
/* True when the relay runs under valgrind (tests/valgrind.sh), whose allocator keeps freed
 * memory in quarantine: RSS bounds say nothing there, valgrind's leak check does. */
bool relay_under_valgrind(const relay_proc *r);
/* Prints the last `max_bytes` of the relay's log, prefixed for readability. */
void relay_print_log(const relay_proc *r, size_t max_bytes);
/* True when the binary under test says (dig-relay --version) it has feature built in ("geoip"). */
bool relay_built_in(const char *feature);
/* Stops (if needed) and removes the log file unless keep_log. */
void relay_cleanup(relay_proc *r, bool keep_log);
/* Ends one test's relay: stops one left running (by an early return), shows the end of its log
 * and keeps the file when the test failed, and zeroes *r for the next test. Returns the exit
 * status relay_stop gave (0 when nothing was running). */
int relay_end_test(relay_proc *r, bool failed);
/* Reads the whole log into a malloc'd NUL-terminated string (NULL on error). */
char *relay_read_log(const relay_proc *r);
/* The same for any text file. */
char *h_read_text(const char *path);

/* The relay of the running test, for integration files that run one relay at a time: h_start
 * starts it with extra args (NULL-terminated, may be NULL); T(fn) runs a test and then ends its
 * relay (stops one an early return left running, shows and keeps its log when the test failed;
 * a relay that does not exit with status 0 fails the test);
 * STOP_OK() checks that SIGTERM ends it with exit status 0. T and STOP_OK expand to test.h's
 * RUN/CHECK, so test.h comes first. */
extern relay_proc h_relay;
bool h_start(const char *const *args);
#define T(fn) RUN_AND(fn, if (relay_end_test(&h_relay, test_cur_failed != 0) != 0) { \
    printf("  the relay did not exit cleanly\n"); test_cur_failed = 1; })
#define STOP_OK() CHECK_EQ_INT(relay_stop(&h_relay, 5000), 0)

/* Runs argv[0] (a path, or a name on PATH) to completion with extra env ("NAME=value", NULL-terminated, may be
 * NULL), capturing stdout and stderr (each truncated to cap-1 bytes, NUL-terminated; buffers may
 * be NULL with cap 0). Returns the exit code, or -1 on timeout (the child is killed) or spawn
 * failure. */
int h_run(const char *const *argv, const char *const *env, char *out, size_t out_cap,
          char *err, size_t err_cap, unsigned timeout_ms);
/* h_run of the relay binary with argv[1..] = args (NULL-terminated). */
int h_run_binary(const char *const *args, const char *const *env, char *out, size_t out_cap,
                 char *err, size_t err_cap, unsigned timeout_ms);

/* ---------------------------------------------------------------- other programs */

/* A third-party program run in the background for a test (haproxy, redis-server, ...). */
typedef struct {
    pid_t pid;
    bool exited;
    int exit_code;            /* valid when exited: exit status, 128+signal, -1 when killed */
    char log_path[128];       /* its stdout and stderr */
} h_proc;

/* Starts argv (argv[0] a path or a name on PATH) with extra env ("NAME=value", may be NULL);
 * false when it cannot be started. A process left running is killed when the test exits. */
bool h_spawn(h_proc *p, const char *const *argv, const char *const *env);
bool h_proc_alive(h_proc *p);
/* SIGTERM, then SIGKILL after timeout_ms; returns the exit code (-1 when it had to be killed). */
int h_proc_stop(h_proc *p, unsigned timeout_ms);
/* Stops it, prints its log when show_log, and removes the log. */
void h_proc_cleanup(h_proc *p, bool show_log);
/* A TLS 1.2 connection to 127.0.0.1:port made by `openssl s_client`, presenting cert and key
 * (PEM paths) when cert is not NULL. Returns the non-blocking local end of a stream whose bytes
 * s_client carries over TLS (give it to wsc_opts.fd), or -1; p holds s_client (its stderr in
 * the log). A refused handshake shows as the stream ending. */
int h_tls_tunnel(h_proc *p, uint16_t port, const char *cert, const char *key);

/* ---------------------------------------------------------------- certificates (openssl) */

/* True when the openssl program can be run (tests that need it SKIP without it). */
bool h_have_openssl(void);
/* Makes a private key and a certificate in dir with the openssl program, as a DIG node or an
 * operator would: <name>.key.pem (PKCS#8) and <name>.crt.pem, plus DER copies <name>.key.der
 * and <name>.crt.der for clients that take DER. keyspec is "ec:P-256", "ec:P-384", "ec:P-521" or
 * "rsa:BITS". issuer is NULL for a self-signed certificate, or the name of one made before in
 * dir, which signs this one; ca marks it a CA (basicConstraints CA:TRUE). peer_id (may be NULL)
 * receives what openssl says the DIG peer id is: the lowercase hex SHA-256 of the certificate's
 * SubjectPublicKeyInfo DER. False (reason printed) on failure. */
bool h_make_cert(const char *dir, const char *name, const char *keyspec, const char *issuer,
                 bool ca, char peer_id[65]);
/* Reads a whole file (up to 16 MiB) into a malloc'd buffer; NULL (reason printed) on failure. */
uint8_t *h_read_file(const char *path, size_t *len);
/* Runs a shell command line (/bin/sh -c) to completion; its exit code, -1 on timeout. */
int h_sh(const char *cmd, char *out, size_t out_cap, unsigned timeout_ms);

/* The value of the sample `series` ("name" or "name{labels}", exactly as written) in Prometheus
 * exposition text, or -1 when there is no such line. */
long long h_metric(const char *text, const char *series);
/* True when Prometheus's linter (promtool check metrics, Debian's prometheus) accepts the
 * exposition text body, its complaints printed; *ran is false when promtool is not installed. */
bool h_promtool_accepts(const char *body, bool *ran);

/* ---------------------------------------------------------------- raw TCP */

/* Connects to host ("127.0.0.1", "::1", ...) : port, optionally binding the local source address
 * src first (e.g. "127.0.0.5"); returns a non-blocking fd or -1 (reason printed). */
int tcp_connect(const char *host, uint16_t port, const char *src, unsigned timeout_ms);
/* Writes all of buf; false on error or timeout. */
bool tcp_send_all(int fd, const void *buf, size_t len, unsigned timeout_ms);
/* Reads until the peer closes, the buffer is full, or the deadline; returns bytes read
 * (buf NUL-terminated, so cap must be >= 1). *closed tells whether EOF/reset was seen. */
size_t tcp_recv_until_close(int fd, char *buf, size_t cap, unsigned timeout_ms, bool *closed);
/* Waits until the peer closes (EOF or reset) and returns true, discarding any data; false on
 * timeout. */
bool tcp_wait_closed(int fd, unsigned timeout_ms);
/* One HTTP exchange on a fresh connection: sends req verbatim, reads the response until close.
 * Returns the response length (NUL-terminated in resp) or 0 on failure. */
size_t h_http(const char *host, uint16_t port, const char *req, char *resp, size_t cap,
              unsigned timeout_ms);
/* Status code of an HTTP response ("HTTP/1.1 200 OK..."), -1 when unparseable. */
int h_http_status(const char *resp);
/* Value of a response header (case-insensitive name) copied into out; false when absent. */
bool h_http_header(const char *resp, const char *name, char *out, size_t cap);
/* Pointer to the body (after the blank line), or NULL. */
const char *h_http_body(const char *resp);

/* ---------------------------------------------------------------- UDP and STUN */

/* A UDP socket bound to host:0 ("127.0.0.7", "::1", or "::" for a dual-stack socket), with room
 * for a few hundred datagrams waiting to be read; -1 on failure (reason printed). */
int h_udp_socket(const char *host);
bool h_udp_send(int fd, const char *host, uint16_t port, const void *buf, size_t len);
/* Waits up to timeout_ms for one datagram; returns its length, or -1 when none came. */
ssize_t h_udp_recv(int fd, uint8_t *buf, size_t cap, unsigned timeout_ms);
/* Counts datagrams arriving until none has come for quiet_ms. */
int h_udp_count_replies(int fd, unsigned quiet_ms);
/* A STUN Binding Request with a random transaction id whose first four bytes are tag. */
void h_stun_binding_request(uint8_t req[20], uint32_t tag);
/* Sends n Binding Requests to host:port; returns how many went out. */
int h_stun_burst(int fd, const char *host, uint16_t port, int n);

/* ---------------------------------------------------------------- PROXY protocol */

/* A PROXY protocol v2 PROXY command for TCP from ip:port (IPv4 or IPv6 text) to loopback, as a
 * trusted load balancer sends it before the client's bytes; returns its length (at most 52). */
size_t h_proxy_v2(uint8_t out[52], const char *ip, uint16_t port);

/* ---------------------------------------------------------------- WebSocket client */

enum {
    WSC_OK = 1,
    WSC_TIMEOUT = 0,
    WSC_CLOSED = -1,    /* a close frame arrived; c->close_code holds its code (1005 if none) */
    WSC_EOF = -2,       /* the connection ended (EOF or reset) without a close frame */
    WSC_ERROR = -3      /* the server broke the protocol, or a local error; c->err says which */
};

typedef struct {
    int fd;
    uint8_t *buf;             /* received bytes; buf[off..len) not yet parsed */
    size_t off, len, cap;
    /* the last message or frame returned (NUL-terminated, valid until the next receive) */
    uint8_t *msg;
    size_t msg_len, msg_cap;
    int msg_opcode;           /* 1 text, 2 binary, or the control opcode for wsc_recv_frame */
    bool msg_fin;
    uint16_t close_code;
    bool got_close;
    bool auto_pong;           /* answer server pings while receiving messages (default true) */
    unsigned send_timeout_ms; /* default 5000 */
    char err[256];
} ws_client;

typedef struct {
    const char *host;         /* "127.0.0.1" (default) or "::1" */
    uint16_t port;
    const char *src;          /* optional local source address to bind first */
    const char *path;         /* default "/" */
    const char *extra_headers;/* appended verbatim after the live client's headers ("X: y\r\n") */
    const void *preface;      /* bytes sent before the handshake (a PROXY protocol header) */
    size_t preface_len;
    int fd;                   /* > 0: speak over this connected stream (h_tls_tunnel) instead */
    unsigned timeout_ms;      /* default 3000 */
} wsc_opts;

/* Connects and performs the handshake exactly as the live client does:
 *   GET / HTTP/1.1, Host, Connection: Upgrade, Upgrade: websocket, Sec-WebSocket-Version: 13,
 *   Sec-WebSocket-Key (16 random bytes, base64)
 * and verifies the answer: status 101, Upgrade: websocket, Connection exactly "Upgrade", the
 * correct Sec-WebSocket-Accept, no Sec-WebSocket-Protocol and no Sec-WebSocket-Extensions.
 * Bytes that follow the 101 in the same read are kept as frames. False with c->err on failure. */
bool wsc_connect(ws_client *c, const wsc_opts *o);
/* Shorthand: 127.0.0.1:port. */
bool wsc_connect_port(ws_client *c, uint16_t port);
void wsc_close(ws_client *c);  /* closes the socket and frees buffers (no close frame) */

/* Builds one masked client frame into out (cap >= len + 14); returns its size. rsv is the 3 RSV
 * bits (0 normally). mask=false writes an unmasked frame (a protocol violation, for tests). */
size_t wsc_build_frame(uint8_t *out, size_t cap, int opcode, bool fin, unsigned rsv, bool mask,
                       const void *payload, size_t len);
bool wsc_send_frame(ws_client *c, int opcode, bool fin, const void *payload, size_t len);
bool wsc_send_text(ws_client *c, const char *text);
/* wsc_send_text of a printf-formatted message (at most 4 KiB); prints why when it fails. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
bool wsc_sendf(ws_client *c, const char *fmt, ...);
bool wsc_send_binary(ws_client *c, const void *data, size_t len);
/* One message as a first frame plus continuation frames of at most frag bytes each. */
bool wsc_send_fragmented(ws_client *c, int opcode, const void *data, size_t len, size_t frag);
bool wsc_send_raw(ws_client *c, const void *data, size_t len);
/* A close frame with code (0: empty body). */
bool wsc_send_close(ws_client *c, uint16_t code);

/* Receives the next frame of any kind (control frames included, not answered). */
int wsc_recv_frame(ws_client *c, unsigned timeout_ms);
/* Receives the next complete data message (text or binary; reassembles fragments), answering
 * pings and skipping pongs. The message is in c->msg / c->msg_len (NUL-terminated). */
int wsc_recv_msg(ws_client *c, unsigned timeout_ms);
/* Like wsc_recv_msg, skipping messages whose "type" is not `type`. */
int wsc_recv_type(ws_client *c, const char *type, unsigned timeout_ms);
/* True when the next message arrives within timeout_ms and equals `expected` byte for byte;
 * prints what arrived otherwise. */
bool wsc_expect_msg(ws_client *c, const char *expected, unsigned timeout_ms);
/* Reads until a close frame or EOF (answering a close frame with one). Returns the close code,
 * 0 for EOF/reset without a close frame, -1 on timeout, -2 on a protocol error by the server
 * (data messages on the way are discarded). */
int wsc_expect_close(ws_client *c, unsigned timeout_ms);

/* Sends {"type":"ping","timestamp":ts} and waits for the matching pong (skipping other
 * messages). Returns the round trip in ms, or -1 on timeout/close. */
long wsc_ping_rtt(ws_client *c, uint64_t ts, unsigned timeout_ms);

/* Register helpers (register frame as the live client writes it; listen_addrs_json is a JSON
 * array text like ["[::]:9445"] or NULL to omit the field). */
void h_register_json(char *out, size_t cap, const char *peer_id, const char *network_id,
                     const char *listen_addrs_json);
/* Sends register and waits for a successful register_ack. */
bool wsc_register(ws_client *c, const char *peer_id, const char *network_id);
/* Connects to 127.0.0.1:port and registers. */
bool wsc_connect_register(ws_client *c, uint16_t port, const char *peer_id, const char *network_id);

/* ---------------------------------------------------------------- crypto for the handshake */

size_t h_base64(const uint8_t *in, size_t len, char *out, size_t cap); /* returns chars written */
void h_accept_key(const char *key, char out[29]);
void h_random(void *buf, size_t len);

/* ---------------------------------------------------------------- JSON lookups */

/* Raw span of the top-level member `key` of a JSON object (value text, e.g. "\"abc\"", "12",
 * "[...]"); false when absent or the text is not an object. */
bool hj_get(const char *json, const char *key, const char **val, size_t *vlen);
/* String member without its quotes (escapes left as they are); false when absent/not a string. */
bool hj_get_str(const char *json, const char *key, char *out, size_t cap);
bool hj_get_u64(const char *json, const char *key, uint64_t *v);
bool hj_is_type(const char *json, const char *type);
/* Copy of json with every "connected_at":<n>, "last_seen":<n> and "uptime_secs":<n> value
 * replaced by T, for exact comparison of messages carrying wall-clock times (malloc'd). */
char *hj_mask_times(const char *json);
/* Counts non-overlapping occurrences of needle. */
size_t h_count(const char *hay, const char *needle);
bool h_starts_with(const char *s, const char *prefix);

/* ---------------------------------------------------------------- random choices */

/* A small xorshift generator for reproducible test choices: *state must start non-zero (a test
 * prints its seed so a failure can be replayed). h_below returns 0..n-1 (0 when n is 0). */
uint64_t h_rand(uint64_t *state);
size_t h_below(uint64_t *state, size_t n);

#endif
