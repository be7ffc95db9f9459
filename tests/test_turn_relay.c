/* TURN end to end against the real relay (issue 15), over loopback sockets:
 *   - credentials over the relay wire: error 1 before register, error 2 with TURN off, and with
 *     it on a REST username/password and URIs that then allocate;
 *   - coturn's turnutils_uclient (-W secret) through our relay to turnutils_peer, over UDP and TCP,
 *     with channels and with indications, sent and received byte counts equal, on a dual-stack
 *     STUN socket and with IPv6 allocations; a wrong secret and an expired username never
 *     allocate;
 *   - the security cases with a client written here: the peers coturn let through get 403;
 *     forged, expired and replayed-nonce requests never allocate; the quotas hold; a Refresh
 *     with LIFETIME 0 closes the relayed port at once; Binding still answered beside TURN;
 *   - the secret file: created 0600 under --state-dir, refused when others can read it;
 *   - the benchmark's load tool (bench/bin/turn_load) relays through us for a second. */
#include "hash.h"
#include "stun.h"
#include "tests/harness.h"
#include "tests/test.h"
#include "turn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WAIT 5000u
#define SECRET "integration-secret"

static char dir[64];
static char secret_path[128];
static uint16_t tcp_port;

static bool have(const char *const *argv)
{
    return h_run(argv, NULL, NULL, 0, NULL, 0, 20000) == 0;
}

static void write_secret(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    chmod(path, mode);
}

static void remove_dir(void)
{
    char rm[96];
    if (!dir[0])
        return;
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    const char *const argv[] = { "/bin/sh", "-c", rm, NULL };
    h_run(argv, NULL, NULL, 0, NULL, 0, 10000);
    dir[0] = '\0';
}

/* A fresh directory for this test's files, with the shared secret written 0600. */
static void make_dir(void)
{
    remove_dir();
    snprintf(dir, sizeof dir, "/tmp/dig-turn.XXXXXX");
    if (!mkdtemp(dir)) {
        printf("  cannot make a temporary directory\n");
        exit(1);
    }
    snprintf(secret_path, sizeof secret_path, "%s/secret", dir);
    write_secret(secret_path, SECRET "\n", 0600);
}

/* Starts the relay with TURN on loopback, public address public_ip, the STUN socket on stun_host
 * ("[::]": dual-stack, as deployed by default; NULL: 127.0.0.1), and extra arguments
 * (NULL-terminated, may be NULL). */
static bool start_turn_on(const char *public_ip, const char *stun_host, const char *const *extra)
{
    static char tcp_listen[64];
    const char *args[RELAY_MAX_ARGS];
    size_t n = 0;
    relay_opts o;
    bool v6 = strchr(public_ip, ':') != NULL;
    tcp_port = h_free_port(v6 ? "tcp6dual" : "tcp4");
    snprintf(tcp_listen, sizeof tcp_listen, v6 ? "[%s]:%u" : "%s:%u", public_ip, tcp_port);
    args[n++] = "--turn";
    args[n++] = "--turn-public-ip";
    args[n++] = public_ip;
    args[n++] = "--turn-secret-file";
    args[n++] = secret_path;
    args[n++] = "--turn-tcp-listen";
    args[n++] = tcp_listen;
    for (size_t i = 0; extra && extra[i]; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    memset(&o, 0, sizeof o);
    o.stun_host = stun_host;
    o.args = args;
    return relay_start(&h_relay, &o);
}

static bool start_turn(const char *const *extra) { return start_turn_on("127.0.0.1", NULL, extra); }

static void rest_credentials(const char *username, char password[29])
{
    turn_rest_password((const uint8_t *)SECRET, strlen(SECRET), username, strlen(username), password);
}

/* ---------------------------------------------------------------- a small TURN client */

typedef struct {
    int fd;
    bool tcp;
    struct sockaddr_in server;
    char username[160];
    uint8_t key[16];
    char nonce[64];
    uint32_t counter;
    uint8_t tid[12];
    uint8_t resp[2048];
    size_t resp_len;
    stun_msg m;
} tclient;

typedef struct {
    uint16_t type;
    const void *value;
    size_t len;
} tattr;

static void tc_set_user(tclient *c, const char *username, const char *password)
{
    snprintf(c->username, sizeof c->username, "%s", username);
    stun_long_term_key(username, strlen(username), "dig.net", password, c->key);
}

static bool tc_open(tclient *c, uint16_t port, bool tcp, const char *username)
{
    char password[29];
    memset(c, 0, sizeof *c);
    c->tcp = tcp;
    c->server.sin_family = AF_INET;
    c->server.sin_port = htons(port);
    c->server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&c->server, sizeof c->server) != 0) {
        printf("  cannot reach 127.0.0.1:%u: %s\n", port, strerror(errno));
        return false;
    }
    rest_credentials(username, password);
    tc_set_user(c, username, password);
    return true;
}

static void tc_close(tclient *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static bool wait_readable(int fd, unsigned timeout_ms)
{
    struct pollfd p = { fd, POLLIN, 0 };
    return poll(&p, 1, (int)timeout_ms) == 1;
}

/* Receives one STUN message (a datagram, or one frame from the stream) into c->resp. */
static bool tc_recv(tclient *c, unsigned timeout_ms)
{
    uint64_t deadline = h_now_ms() + timeout_ms;
    size_t have_bytes = 0;
    c->resp_len = 0;
    for (;;) {
        uint64_t now = h_now_ms();
        if (now >= deadline || !wait_readable(c->fd, (unsigned)(deadline - now)))
            return false;
        ssize_t n = recv(c->fd, c->resp + have_bytes, c->tcp ? (have_bytes < 4 ? 4 - have_bytes : 0) : sizeof c->resp, 0);
        if (n <= 0)
            return false;
        if (!c->tcp) {
            c->resp_len = (size_t)n;
            return stun_decode(c->resp, c->resp_len, &c->m);
        }
        have_bytes += (size_t)n;
        if (have_bytes == 4) {
            long f = stun_stream_frame_len(c->resp, 4);
            if (f <= 4 || (size_t)f > sizeof c->resp)
                return false;
            while (have_bytes < (size_t)f) {
                now = h_now_ms();
                if (now >= deadline || !wait_readable(c->fd, (unsigned)(deadline - now)))
                    return false;
                n = recv(c->fd, c->resp + have_bytes, (size_t)f - have_bytes, 0);
                if (n <= 0)
                    return false;
                have_bytes += (size_t)n;
            }
            c->resp_len = have_bytes;
            return stun_is_channel_data(c->resp[0]) || stun_decode(c->resp, c->resp_len, &c->m);
        }
    }
}

static int error_code(const tclient *c)
{
    for (size_t pos = 20; pos + 8 <= c->resp_len;) {
        unsigned t = (unsigned)c->resp[pos] << 8 | c->resp[pos + 1];
        unsigned l = (unsigned)c->resp[pos + 2] << 8 | c->resp[pos + 3];
        if (t == STUN_ATTR_ERROR_CODE)
            return (c->resp[pos + 6] & 7) * 100 + c->resp[pos + 7];
        pos += 4 + ((l + 3) & ~3u);
    }
    return 0;
}

static size_t xor_peer_value(uint8_t *out, const char *ip, uint16_t port, const uint8_t *tid)
{
    addr_t a;
    stun_writer w;
    uint8_t tmp[64];
    memset(&a, 0, sizeof a);
    if (!addr_parse_ip(ip, strlen(ip), &a))
        return 0;
    a.port = port;
    stun_begin(&w, tmp, sizeof tmp, 0x0001, tid);
    /* stun_put_xor_addr writes mapped addresses as IPv4; a peer given mapped must stay mapped */
    if (a.family == 6) {
        uint8_t mask[16] = { 0x21, 0x12, 0xa4, 0x42 };
        memcpy(mask + 4, tid, 12);
        out[0] = 0;
        out[1] = 2;
        out[2] = (uint8_t)((port ^ 0x2112) >> 8);
        out[3] = (uint8_t)(port ^ 0x2112);
        for (int i = 0; i < 16; i++)
            out[4 + i] = (uint8_t)(a.ip[i] ^ mask[i]);
        return 20;
    }
    stun_put_xor_addr(&w, STUN_ATTR_XOR_PEER_ADDRESS, &a);
    size_t n = stun_finish(&w) - 24;
    memcpy(out, tmp + 24, n);
    return n;
}

/* Builds one message with a fresh transaction id: attrs, then XOR-PEER-ADDRESS for peer_ip (when
 * not NULL; the XOR needs the id), then USERNAME/REALM/NONCE/MESSAGE-INTEGRITY when sign. */
static size_t tc_build(tclient *c, uint16_t type, const tattr *attrs, size_t n, const char *peer_ip,
                       uint16_t peer_port, bool sign, uint8_t *out, size_t cap)
{
    stun_writer w;
    uint8_t peer[20];
    c->counter++;
    memcpy(c->tid, &c->counter, sizeof c->counter);
    h_random(c->tid + 4, 8);
    stun_begin(&w, out, cap, type, c->tid);
    for (size_t i = 0; i < n; i++)
        stun_put(&w, attrs[i].type, attrs[i].value, attrs[i].len);
    if (peer_ip)
        stun_put(&w, STUN_ATTR_XOR_PEER_ADDRESS, peer, xor_peer_value(peer, peer_ip, peer_port, c->tid));
    if (sign) {
        stun_put(&w, STUN_ATTR_USERNAME, c->username, strlen(c->username));
        stun_put(&w, STUN_ATTR_REALM, "dig.net", 7);
        stun_put(&w, STUN_ATTR_NONCE, c->nonce, strlen(c->nonce));
        stun_put_integrity(&w, c->key, sizeof c->key);
    }
    stun_put_fingerprint(&w);
    return stun_finish(&w);
}

static bool tc_send(tclient *c, const uint8_t *msg, size_t len)
{
    return send(c->fd, msg, len, 0) == (ssize_t)len;
}

/* A request as a client makes it: unsigned until a nonce is known, then signed, taking a new
 * nonce from a 401 or 438 once. Returns the error code (0 success, -1 no answer). */
static int tc_request(tclient *c, uint16_t type, const tattr *attrs, size_t n, const char *peer_ip,
                      uint16_t peer_port)
{
    uint8_t msg[1024];
    for (int attempt = 0; attempt < 3; attempt++) {
        size_t len = tc_build(c, type, attrs, n, peer_ip, peer_port, c->nonce[0] != '\0', msg, sizeof msg);
        if (!tc_send(c, msg, len))
            return -1;
        do {
            if (!tc_recv(c, WAIT))
                return -1;
        } while (stun_is_channel_data(c->resp[0]) || memcmp(c->m.transaction_id, c->tid, 12) != 0);
        int code = c->m.cls == STUN_CLASS_SUCCESS ? 0 : error_code(c);
        if ((code == 401 || code == 438) && c->m.nonce.off && attempt < 2) {
            bool had = c->nonce[0] != '\0';
            snprintf(c->nonce, sizeof c->nonce, "%.*s", (int)c->m.nonce.len, (const char *)c->resp + c->m.nonce.off);
            if (code == 438 || !had)
                continue;
        }
        return code;
    }
    return -1;
}

static const uint8_t udp_transport[4] = { 17, 0, 0, 0 };

static int tc_allocate(tclient *c)
{
    tattr rt = { STUN_ATTR_REQUESTED_TRANSPORT, udp_transport, 4 };
    return tc_request(c, stun_type(STUN_ALLOCATE, STUN_CLASS_REQUEST), &rt, 1, NULL, 0);
}

static uint16_t tc_relayed_port(const tclient *c)
{
    for (size_t pos = 20; pos + 4 <= c->resp_len;) {
        unsigned t = (unsigned)c->resp[pos] << 8 | c->resp[pos + 1];
        unsigned l = (unsigned)c->resp[pos + 2] << 8 | c->resp[pos + 3];
        addr_t a;
        if (t == STUN_ATTR_XOR_RELAYED_ADDRESS && stun_read_xor_addr(c->resp + pos + 4, l, c->m.transaction_id, &a))
            return a.port;
        pos += 4 + ((l + 3) & ~3u);
    }
    return 0;
}

/* CreatePermission for one peer. */
static int tc_permit(tclient *c, const char *ip, uint16_t port)
{
    return tc_request(c, stun_type(STUN_CREATE_PERMISSION, STUN_CLASS_REQUEST), NULL, 0, ip, port);
}

static int tc_refresh(tclient *c, uint32_t lifetime)
{
    uint8_t v[4] = { (uint8_t)(lifetime >> 24), (uint8_t)(lifetime >> 16), (uint8_t)(lifetime >> 8), (uint8_t)lifetime };
    tattr l = { STUN_ATTR_LIFETIME, v, 4 };
    return tc_request(c, stun_type(STUN_REFRESH, STUN_CLASS_REQUEST), &l, 1, NULL, 0);
}

static char *valid_user(const char *id)
{
    static char buf[4][96];
    static int next;
    char *out = buf[next++ % 4];
    snprintf(out, 96, "%lld:%s", (long long)time(NULL) + 3600, id);
    return out;
}

/* ---------------------------------------------------------------- tests */

static void test_credentials_over_the_wire(void)
{
    make_dir();
    const char *const ttl[] = { "--turn-credential-ttl-secs", "600", NULL };
    REQUIRE(start_turn(ttl));
    ws_client c;
    REQUIRE(wsc_connect_port(&c, h_relay.port));
    CHECK(wsc_send_text(&c, "{\"type\":\"get_turn_credentials\"}"));
    CHECK(wsc_expect_msg(&c, "{\"type\":\"error\",\"code\":1,\"message\":\"register before sending other "
                             "messages (RLY-001)\"}", WAIT));
    REQUIRE(wsc_register(&c, "node-a1b2", "DIG_MAINNET"));
    CHECK(wsc_send_text(&c, "{\"type\":\"get_turn_credentials\"}"));
    REQUIRE(wsc_recv_type(&c, "turn_credentials", WAIT) == WSC_OK);
    const char *json = (const char *)c.msg;
    char username[128], password[64], expect_pw[29], uris[256];
    uint64_t ttl_secs = 0;
    const char *v;
    size_t vl;
    REQUIRE(hj_get_str(json, "username", username, sizeof username));
    REQUIRE(hj_get_str(json, "password", password, sizeof password));
    REQUIRE(hj_get_u64(json, "ttl_secs", &ttl_secs));
    REQUIRE(hj_get(json, "uris", &v, &vl) && vl < sizeof uris);
    CHECK_EQ_INT(ttl_secs, 600);
    long long expiry = atoll(username);
    CHECK(expiry >= (long long)time(NULL) + 590 && expiry <= (long long)time(NULL) + 610);
    CHECK(strchr(username, ':') && strcmp(strchr(username, ':'), ":node-a1b2") == 0);
    uint8_t mac[20];
    hash_hmac_sha1(SECRET, strlen(SECRET), username, strlen(username), mac);
    base64_encode(mac, sizeof mac, expect_pw);
    CHECK_EQ_STR(password, expect_pw);
    snprintf(uris, sizeof uris, "[\"turn:127.0.0.1:%u?transport=udp\",\"turn:127.0.0.1:%u?transport=tcp\"]",
             h_relay.stun_port, tcp_port);
    CHECK(vl == strlen(uris) && memcmp(v, uris, vl) == 0);

    /* Those credentials allocate, over UDP and over TCP. */
    tclient u, t;
    REQUIRE(tc_open(&u, h_relay.stun_port, false, username));
    tc_set_user(&u, username, password);
    CHECK_EQ_INT(tc_allocate(&u), 0);
    CHECK(tc_relayed_port(&u) >= 49152);
    tc_close(&u);
    REQUIRE(tc_open(&t, tcp_port, true, username));
    tc_set_user(&t, username, password);
    CHECK_EQ_INT(tc_allocate(&t), 0);
    tc_close(&t);
    wsc_close(&c);
    STOP_OK();

    /* TURN off: error 2, and the connection stays. */
    REQUIRE(h_start(NULL));
    REQUIRE(wsc_connect_register(&c, h_relay.port, "node-b", "DIG_MAINNET"));
    CHECK(wsc_send_text(&c, "{\"type\":\"get_turn_credentials\"}"));
    CHECK(wsc_expect_msg(&c, "{\"type\":\"error\",\"code\":2,\"message\":\"turn is not enabled on this relay\"}", WAIT));
    CHECK(wsc_ping_rtt(&c, 7, WAIT) >= 0);
    wsc_close(&c);
    STOP_OK();
}

/* Runs turnutils_uclient with opts against the relay and turnutils_peer; returns its exit code
 * and the last sent/received byte counts it printed. */
static int uclient(const char *const *opts, uint16_t server_port, uint16_t peer_port, bool expect_ok,
                   long *sent, long *received)
{
    static char out[1 << 16], err[1 << 16];
    char peer_port_text[8], server_port_text[8];
    const char *argv[40];
    size_t n = 0;
    snprintf(peer_port_text, sizeof peer_port_text, "%u", peer_port);
    snprintf(server_port_text, sizeof server_port_text, "%u", server_port);
    argv[n++] = "turnutils_uclient";
    for (size_t i = 0; opts[i]; i++)
        argv[n++] = opts[i];
    const char *common[] = { "-e", "127.0.0.1", "-r", peer_port_text, "-p", server_port_text, "-n", "20",
                             "-m", "2", "-l", "120", "-z", "5", "127.0.0.1", NULL };
    for (size_t i = 0; common[i]; i++)
        argv[n++] = common[i];
    argv[n] = NULL;
    *sent = *received = -1;
    int rc = h_run(argv, NULL, out, sizeof out, err, sizeof err, 120000);
    /* "start_mclient: tot_send_bytes ~ 4800, tot_recv_bytes ~ 4800", last occurrence */
    const char *p = NULL;
    for (const char *q = strstr(out, "tot_send_bytes ~ "); q; q = strstr(q + 1, "tot_send_bytes ~ "))
        p = q;
    if (!p) {
        for (const char *q = strstr(err, "tot_send_bytes ~ "); q; q = strstr(q + 1, "tot_send_bytes ~ "))
            p = q;
    }
    if (p) {
        *sent = atol(p + strlen("tot_send_bytes ~ "));
        const char *r = strstr(p, "tot_recv_bytes ~ ");
        if (r)
            *received = atol(r + strlen("tot_recv_bytes ~ "));
    }
    if (expect_ok && (rc != 0 || *sent <= 0 || *sent != *received))
        printf("  uclient exited %d, sent %ld, received %ld\n%.2000s\n%.2000s\n", rc, *sent, *received, out, err);
    return rc;
}

static void test_coturn_clients(void)
{
    const char *const probe[] = { "sh", "-c", "command -v turnutils_uclient && command -v turnutils_peer", NULL };
    if (!have(probe))
        SKIP("coturn not installed");
    make_dir();
    /* The STUN socket dual-stack, as deployed: IPv4 clients arrive IPv4-mapped. */
    const char *const loopback[] = { "--turn-allow-loopback-peers", NULL };
    REQUIRE(start_turn_on("127.0.0.1", "[::]", loopback));
    h_proc peer;
    char peer_port_text[8];
    uint16_t peer_port = h_free_port("udp4");
    snprintf(peer_port_text, sizeof peer_port_text, "%u", peer_port);
    const char *const peer_argv[] = { "turnutils_peer", "-L", "127.0.0.1", "-p", peer_port_text, NULL };
    REQUIRE(h_spawn(&peer, peer_argv, NULL));

    static const struct { const char *name; const char *opts[6]; bool tcp; } runs[] = {
        { "UDP, channels, RTCP pairs (EVEN-PORT and RESERVATION-TOKEN)", { "-u", "chan-udp", NULL }, false },
        { "TCP, channels", { "-t", "-u", "chan-tcp", NULL }, true },
        { "UDP, Send and Data indications", { "-s", "-u", "ind-udp", NULL }, false },
        { "TCP, Send and Data indications", { "-t", "-s", "-u", "ind-tcp", NULL }, true },
        { "UDP, no RTCP, DONT-FRAGMENT", { "-c", "-g", "-u", "plain-udp", NULL }, false },
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        const char *opts[10];
        size_t n = 0;
        opts[n++] = "-W";
        opts[n++] = SECRET;
        for (size_t k = 0; runs[i].opts[k]; k++)
            opts[n++] = runs[i].opts[k];
        opts[n] = NULL;
        long sent, received;
        int rc = uclient(opts, runs[i].tcp ? tcp_port : h_relay.stun_port, peer_port, true, &sent,
                         &received);
        if (rc != 0 || sent <= 0 || sent != received)
            printf("  run: %s\n", runs[i].name);
        CHECK_EQ_INT(rc, 0);
        CHECK(sent > 0 && sent == received);
    }

    /* A wrong secret, an expired username and a user's own static password that is not the
     * REST one never allocate. */
    long sent, received;
    const char *const wrong[] = { "-W", "not-the-secret", "-u", "w", "-c", NULL };
    CHECK(uclient(wrong, h_relay.stun_port, peer_port, false, &sent, &received) != 0);
    char expired[64], expired_pw[29];
    snprintf(expired, sizeof expired, "%lld:late", (long long)time(NULL) - 5);
    rest_credentials(expired, expired_pw);
    const char *const late[] = { "-u", expired, "-w", expired_pw, "-c", NULL };
    CHECK(uclient(late, h_relay.stun_port, peer_port, false, &sent, &received) != 0);
    /* ...while the same scheme with a future expiry works (so the failure above is the expiry). */
    char fine[64], fine_pw[29];
    snprintf(fine, sizeof fine, "%lld:ontime", (long long)time(NULL) + 600);
    rest_credentials(fine, fine_pw);
    const char *const ok[] = { "-u", fine, "-w", fine_pw, "-c", NULL };
    CHECK_EQ_INT(uclient(ok, h_relay.stun_port, peer_port, true, &sent, &received), 0);

    h_proc_cleanup(&peer, test_cur_failed != 0);
    STOP_OK();
}

/* An IPv6 --turn-public-ip gives IPv6 allocations: coturn's client asks for one (-x) over UDP and
 * TCP and relays to turnutils_peer on ::1. */
static void test_coturn_clients_ipv6(void)
{
    const char *const probe[] = { "sh", "-c", "command -v turnutils_uclient && command -v turnutils_peer", NULL };
    if (!have(probe))
        SKIP("coturn not installed");
    int s = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 lo6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    bool has_v6 = s >= 0 && bind(s, (struct sockaddr *)&lo6, sizeof lo6) == 0;
    if (s >= 0)
        close(s);
    if (!has_v6)
        SKIP("no IPv6 loopback here");
    make_dir();
    const char *const loopback[] = { "--turn-allow-loopback-peers", NULL };
    REQUIRE(start_turn_on("::1", "[::]", loopback));
    h_proc peer;
    char peer_port_text[8];
    uint16_t peer_port = h_free_port("udp4");
    snprintf(peer_port_text, sizeof peer_port_text, "%u", peer_port);
    const char *const peer_argv[] = { "turnutils_peer", "-L", "::1", "-p", peer_port_text, NULL };
    REQUIRE(h_spawn(&peer, peer_argv, NULL));
    for (int tcp = 0; tcp < 2; tcp++) {
        char server_port[8];
        static char out[1 << 16], err[1 << 16];
        snprintf(server_port, sizeof server_port, "%u", tcp ? tcp_port : h_relay.stun_port);
        const char *const argv[] = { "turnutils_uclient", "-x", tcp ? "-t" : "-c", "-W", SECRET, "-u", "six",
                                     "-e", "::1", "-r", peer_port_text, "-p", server_port, "-n", "10",
                                     "-m", "1", "-l", "100", "-z", "5", "::1", NULL };
        int rc = h_run(argv, NULL, out, sizeof out, err, sizeof err, 120000);
        const char *p = NULL;
        for (const char *q = strstr(out, "tot_send_bytes ~ "); q; q = strstr(q + 1, "tot_send_bytes ~ "))
            p = q;
        long sent = p ? atol(p + 17) : -1, received = p && strstr(p, "tot_recv_bytes ~ ")
                                                        ? atol(strstr(p, "tot_recv_bytes ~ ") + 17) : -2;
        if (rc != 0 || sent <= 0 || sent != received)
            printf("  IPv6 %s: exited %d, sent %ld, received %ld\n%.1500s\n", tcp ? "TCP" : "UDP", rc, sent,
                   received, out);
        CHECK_EQ_INT(rc, 0);
        CHECK(sent > 0 && sent == received);
    }
    h_proc_cleanup(&peer, test_cur_failed != 0);
    STOP_OK();
}

static void test_refused_peers(void)
{
    static const char *const refused[] = { "127.0.0.1", "::1", "::ffff:127.0.0.1", "0.0.0.0", "::",
                                           "10.0.0.1", "169.254.1.1", "192.168.1.1", "100.64.0.1",
                                           "fc00::1", "224.0.0.1", "255.255.255.255" };
    make_dir();
    REQUIRE(start_turn(NULL));
    tclient c;
    REQUIRE(tc_open(&c, h_relay.stun_port, false, valid_user("policy")));
    REQUIRE(tc_allocate(&c) == 0);
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        int code = tc_permit(&c, refused[i], 3480);
        if (code != 403)
            printf("  peer %s: %d\n", refused[i], code);
        CHECK_EQ_INT(code, 403);
    }
    CHECK_EQ_INT(tc_permit(&c, "198.51.100.20", 3480), 0);
    CHECK_EQ_INT(tc_permit(&c, "2001:db8::20", 3480), 443);
    tc_close(&c);
    STOP_OK();
}

static void test_bad_requests_never_allocate(void)
{
    make_dir();
    const char *const quota[] = { "--turn-max-allocations", "3", "--turn-max-allocations-per-user", "2", NULL };
    REQUIRE(start_turn(quota));

    /* Forged: a key from the wrong password. */
    tclient f;
    REQUIRE(tc_open(&f, h_relay.stun_port, false, valid_user("forger")));
    f.key[0] ^= 0x5a;
    CHECK_EQ_INT(tc_allocate(&f), 401);
    char pw[29], name[sizeof f.username];
    snprintf(name, sizeof name, "%s", f.username);
    rest_credentials(name, pw);
    tc_set_user(&f, name, pw);
    CHECK_EQ_INT(tc_refresh(&f, 600), 437);     /* nothing was allocated */
    tc_close(&f);

    /* Expired. */
    tclient e;
    char late[64];
    snprintf(late, sizeof late, "%lld:late", (long long)time(NULL) - 1);
    REQUIRE(tc_open(&e, h_relay.stun_port, false, late));
    CHECK_EQ_INT(tc_allocate(&e), 401);
    tc_close(&e);

    /* Replayed: a good Allocate captured from one client, sent from another address: the nonce
     * is not that address's, so 438 and no allocation. */
    tclient a, b;
    REQUIRE(tc_open(&a, h_relay.stun_port, false, valid_user("victim")));
    REQUIRE(tc_open(&b, h_relay.stun_port, false, valid_user("victim")));
    {
        uint8_t msg[512];
        tattr rt = { STUN_ATTR_REQUESTED_TRANSPORT, udp_transport, 4 };
        size_t len = tc_build(&a, stun_type(STUN_ALLOCATE, STUN_CLASS_REQUEST), &rt, 1, NULL, 0, false, msg,
                              sizeof msg);
        REQUIRE(tc_send(&a, msg, len) && tc_recv(&a, WAIT) && error_code(&a) == 401);
        snprintf(a.nonce, sizeof a.nonce, "%.*s", (int)a.m.nonce.len, (const char *)a.resp + a.m.nonce.off);
        len = tc_build(&a, stun_type(STUN_ALLOCATE, STUN_CLASS_REQUEST), &rt, 1, NULL, 0, true, msg, sizeof msg);
        memcpy(b.tid, a.tid, 12);
        REQUIRE(tc_send(&b, msg, len) && tc_recv(&b, WAIT));
        CHECK_EQ_INT(error_code(&b), 438);
        CHECK_EQ_INT(tc_refresh(&b, 600), 437);
        /* The original, from its own address, allocates. */
        REQUIRE(tc_send(&a, msg, len) && tc_recv(&a, WAIT));
        CHECK_EQ_INT(error_code(&a), 0);
        CHECK(a.m.cls == STUN_CLASS_SUCCESS);
        /* and the same bytes again (a retransmission) get the same success */
        uint8_t first[2048];
        size_t first_len = a.resp_len;
        memcpy(first, a.resp, first_len);
        REQUIRE(tc_send(&a, msg, len) && tc_recv(&a, WAIT));
        CHECK_EQ_MEM(a.resp, a.resp_len, first, first_len);
    }

    /* Quotas: "victim" has one; a second is fine, a third is 486; then the total of 3: 508. */
    CHECK_EQ_INT(tc_allocate(&b), 0);
    tclient third, other, fourth;
    REQUIRE(tc_open(&third, h_relay.stun_port, false, b.username));
    CHECK_EQ_INT(tc_allocate(&third), 486);
    REQUIRE(tc_open(&other, h_relay.stun_port, false, valid_user("other")));
    CHECK_EQ_INT(tc_allocate(&other), 0);
    REQUIRE(tc_open(&fourth, h_relay.stun_port, false, valid_user("fourth")));
    CHECK_EQ_INT(tc_allocate(&fourth), 508);
    /* Deleting one frees its place. */
    CHECK_EQ_INT(tc_refresh(&other, 0), 0);
    CHECK_EQ_INT(tc_allocate(&fourth), 0);
    tc_close(&a);
    tc_close(&b);
    tc_close(&third);
    tc_close(&other);
    tc_close(&fourth);
    STOP_OK();
}

/* Data reaches the client through the relayed port until a Refresh with LIFETIME 0, which
 * closes that port at once: the test can then bind it itself. Binding stays answered. */
static void test_refresh_zero_and_binding(void)
{
    make_dir();
    const char *const loopback[] = { "--turn-allow-loopback-peers", NULL };
    REQUIRE(start_turn(loopback));
    tclient c;
    REQUIRE(tc_open(&c, h_relay.stun_port, false, valid_user("refresher")));
    REQUIRE(tc_allocate(&c) == 0);
    uint16_t relayed = tc_relayed_port(&c);
    REQUIRE(relayed != 0);

    int peer = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in pa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    REQUIRE(bind(peer, (struct sockaddr *)&pa, sizeof pa) == 0);
    socklen_t pl = sizeof pa;
    getsockname(peer, (struct sockaddr *)&pa, &pl);
    REQUIRE(tc_permit(&c, "127.0.0.1", ntohs(pa.sin_port)) == 0);
    struct sockaddr_in ra = { .sin_family = AF_INET, .sin_port = htons(relayed), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    CHECK(sendto(peer, "from the peer", 13, 0, (struct sockaddr *)&ra, sizeof ra) == 13);
    REQUIRE(tc_recv(&c, WAIT));
    CHECK(c.m.method == STUN_DATA && c.m.cls == STUN_CLASS_INDICATION);
    CHECK_EQ_MEM(c.resp + c.m.data.off, c.m.data.len, "from the peer", 13);

    CHECK_EQ_INT(tc_refresh(&c, 0), 0);
    int probe = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in pr = ra;
    CHECK(bind(probe, (struct sockaddr *)&pr, sizeof pr) == 0);
    close(probe);
    close(peer);

    /* Binding on the shared socket, with TURN on. */
    uint8_t req[20] = { 0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
    CHECK(tc_send(&c, req, sizeof req));
    REQUIRE(tc_recv(&c, WAIT));
    CHECK(c.m.method == STUN_BINDING && c.m.cls == STUN_CLASS_SUCCESS);
    tc_close(&c);
    STOP_OK();
}

/* The benchmark's load tool relays through us for a second, so it never rots. */
static void test_load_tool_smoke(void)
{
    const char *tool = "bench/bin/turn_load";
    char port[8], out[512], err[512];
    if (access(tool, X_OK) != 0)
        SKIP("bench/bin/turn_load not built (make bench/bin/turn_load)");
    make_dir();
    const char *const loopback[] = { "--turn-allow-loopback-peers", NULL };
    REQUIRE(start_turn(loopback));
    snprintf(port, sizeof port, "%u", h_relay.stun_port);
    const char *const argv[] = { tool, "127.0.0.1", port, SECRET, "--clients", "2", "--window", "8",
                                 "--size", "1200", "--seconds", "1", "--warmup-ms", "100", NULL };
    int rc = h_run(argv, NULL, out, sizeof out, err, sizeof err, 30000);
    const char *rate = strstr(out, "relayed_per_sec ");
    if (rc != 0 || !rate || atol(rate + 16) <= 1000)
        printf("  turn_load exited %d: %s %s\n", rc, out, err);
    CHECK_EQ_INT(rc, 0);
    CHECK(rate && atol(rate + 16) > 1000);
    STOP_OK();
}

static void test_secret_file(void)
{
    char state[96], path[160], out[256], err[1024];
    struct stat st;
    make_dir();
    snprintf(state, sizeof state, "%s/state", dir);
    snprintf(path, sizeof path, "%s/turn-secret", state);
    const char *const args[] = { "--turn", "--turn-public-ip", "127.0.0.1", "--state-dir", state,
                                 "--turn-tcp-listen", "127.0.0.1:0", NULL };
    REQUIRE(h_start(args));
    REQUIRE(stat(path, &st) == 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0600);
    CHECK_EQ_INT(st.st_size, 65);
    STOP_OK();

    /* A secret others can read stops the start, naming the file. */
    chmod(path, 0644);
    const char *const again[] = { "--turn", "--turn-public-ip", "127.0.0.1", "--state-dir", state,
                                  "--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0",
                                  "--stun-listen", "127.0.0.1:0", "--dashboard-listen", "127.0.0.1:0",
                                  "--turn-tcp-listen", "127.0.0.1:0", NULL };
    int rc = h_run_binary(again, NULL, out, sizeof out, err, sizeof err, 10000);
    CHECK_EQ_INT(rc, 1);
    CHECK(strstr(err, path) != NULL && strstr(err, "group or others") != NULL);
    /* --turn without --turn-public-ip: a usage error naming the flag. */
    const char *const no_ip[] = { "--turn", NULL };
    rc = h_run_binary(no_ip, NULL, out, sizeof out, err, sizeof err, 10000);
    CHECK_EQ_INT(rc, 2);
    CHECK(strstr(err, "--turn-public-ip") != NULL);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    T(test_credentials_over_the_wire);
    T(test_coturn_clients);
    T(test_coturn_clients_ipv6);
    T(test_refused_peers);
    T(test_bad_requests_never_allocate);
    T(test_refresh_zero_and_binding);
    T(test_load_tool_smoke);
    T(test_secret_file);
    remove_dir();
    return test_finish();
}
