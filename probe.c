/* dig-relay probe URL: checks a relay from outside the way a node uses it (see probe.h). Every
 * byte goes through the project's codecs: ws.c for the handshake key and frames, wire.c for the
 * messages, http.c for the 101 and /health answers, stun.c for the Binding exchange; wss:// goes
 * through tlsclient.c. Each step has its own deadline, so a relay that is down or stalls makes
 * the probe fail, not hang. */
#include "probe.h"

#include "buildinfo.h"
#include "client.h"
#include "compat/compat.h"
#include "hash.h"
#include "http.h"
#include "json.h"
#include "stun.h"
#include "tlsclient.h"
#include "wire.h"
#include "ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STEP_MS 5000
#define MAX_FRAME 65536

enum { CONNECT, REGISTER, PING, RELAY, HEALTH, STUN, N_CHECKS };
static const char *const check_names[N_CHECKS] = {"connect", "register", "ping", "relay",
                                                  "health", "stun"};

typedef struct {
    bool ran, ok;
    double ms;
    char detail[320];
} check;

typedef struct {
    socket_t s;
    tls_client *tls;   /* over wss://, NULL over ws:// */
    ws_decoder dec;
    uint8_t in[MAX_FRAME + 16];
    size_t in_len;
    char msg[MAX_FRAME + 1];   /* the last message received, NUL-terminated */
    size_t msg_len;
} wsconn;

static uint64_t now_us(void) { return compat_monotonic_us(); }

static double since_ms(uint64_t start_us) { return (double)(now_us() - start_us) / 1000.0; }

/* Where the common systems keep their CA bundle (Debian and Alpine, Fedora, macOS and the BSDs):
 * the anchors of a wss:// probe unless --probe-ca names others. */
static const char *system_ca_file(void)
{
    static const char *const paths[] = {"/etc/ssl/certs/ca-certificates.crt",
                                        "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        FILE *f = fopen(paths[i], "rb");
        if (f != NULL) {
            fclose(f);
            return paths[i];
        }
    }
    return NULL;
}

/* ws[s]://host[:port][/path]: whether it is TLS, the host as written (for Host:), the port, the
 * path. */
static bool parse_url(const char *url, bool *tls, char *host, size_t host_cap, char *port,
                      char *path, size_t path_cap, char *err, size_t errlen)
{
    const char *p;
    *tls = strncmp(url, "wss://", 6) == 0;
    if (strncmp(url, "ws://", 5) == 0) {
        p = url + 5;
    } else if (*tls && DIG_HAVE_TLS) {
        p = url + 6;
    } else if (*tls) {
        snprintf(err, errlen, "wss:// needs TLS, which this build does not include");
        return false;
    } else {
        snprintf(err, errlen, "'%s' is not a ws:// or wss:// URL", url);
        return false;
    }
    const char *slash = strchr(p, '/');
    size_t authority = slash ? (size_t)(slash - p) : strlen(p);
    const char *host_end = p + authority, *colon = NULL;
    if (*p == '[') {
        const char *close = memchr(p, ']', authority);
        if (close == NULL) {
            snprintf(err, errlen, "'%s': unclosed [ in the host", url);
            return false;
        }
        colon = close + 1 < host_end && close[1] == ':' ? close + 1 : NULL;
        if (close + 1 != host_end && colon == NULL) {
            snprintf(err, errlen, "'%s': unexpected text after the host", url);
            return false;
        }
        snprintf(host, host_cap, "%.*s", (int)(close - p - 1), p + 1);
    } else {
        colon = memchr(p, ':', authority);
        snprintf(host, host_cap, "%.*s", (int)((colon ? colon : host_end) - p), p);
    }
    snprintf(port, 8, "%.*s", colon ? (int)(host_end - colon - 1) : 4, colon ? colon + 1 : "9450");
    snprintf(path, path_cap, "%s", slash ? slash : "/");
    if (host[0] == '\0' || port[0] == '\0' || strspn(port, "0123456789") != strlen(port) ||
        atoi(port) < 1 || atoi(port) > 65535) {
        snprintf(err, errlen, "'%s': expected ws[s]://HOST[:PORT][/PATH]", url);
        return false;
    }
    return true;
}

static bool resolve(const char *host, const char *port, int socktype, addr_t *out, char *err,
                    size_t errlen)
{
    struct sockaddr_storage ss;
    size_t len;
    if (!compat_resolve(host, port, socktype, &ss, &len, err, errlen))
        return false;
    if (addr_from_sockaddr(&ss, len, out))
        return true;
    snprintf(err, errlen, "cannot use the address of %s", host);
    return false;
}

/* ---- WebSocket as a client, over TCP or TLS ---- */

static bool conn_send_all(wsconn *c, const void *buf, size_t len, unsigned timeout_ms)
{
    return c->tls ? tls_client_send_all(c->tls, buf, len, timeout_ms)
                  : client_send_all(c->s, buf, len, timeout_ms);
}

static long conn_recv(wsconn *c, void *buf, size_t cap, unsigned timeout_ms)
{
    return c->tls ? tls_client_recv(c->tls, buf, cap, timeout_ms)
                  : client_recv(c->s, buf, cap, timeout_ms);
}

static bool ws_send(wsconn *c, enum ws_opcode op, const char *text, size_t len)
{
    static uint8_t frame[MAX_FRAME + 16];
    uint8_t key[4];
    compat_random(key, sizeof key);
    size_t n = ws_client_frame(frame, sizeof frame, op, text, len, key);
    return n > 0 && conn_send_all(c, frame, n, STEP_MS);
}

/* The next text message within timeout_ms, answering pings; false on close, error or timeout. */
static bool ws_recv(wsconn *c, unsigned timeout_ms, char *err, size_t errlen)
{
    uint64_t deadline = compat_monotonic_ms() + timeout_ms;
    for (;;) {
        ws_result r;
        size_t used = ws_parse(&c->dec, c->in, c->in_len, &r);
        if (r.kind == WS_FAIL || r.kind == WS_CLOSE) {
            snprintf(err, errlen, r.kind == WS_CLOSE ? "the relay closed the connection (%u)"
                                                     : "the relay broke the protocol (%u)",
                     (unsigned)r.close_code);
            return false;
        }
        if (r.kind == WS_MESSAGE && r.len <= MAX_FRAME) {
            memcpy(c->msg, r.data, r.len);
            c->msg[r.len] = '\0';
            c->msg_len = r.len;
        } else if (r.kind == WS_PING) {
            char payload[128];
            memcpy(payload, r.data, r.len);
            ws_send(c, WS_OP_PONG, payload, r.len);
        }
        if (used > 0) {
            memmove(c->in, c->in + used, c->in_len - used);
            c->in_len -= used;
            if (r.kind == WS_MESSAGE)
                return true;
            continue;
        }
        uint64_t now = compat_monotonic_ms();
        long got = now < deadline && c->in_len < sizeof c->in
                       ? conn_recv(c, c->in + c->in_len, sizeof c->in - c->in_len,
                                   (unsigned)(deadline - now))
                       : -1;
        if (got <= 0) {
            snprintf(err, errlen, got == 0 ? "the relay closed the connection"
                                           : "no answer within %u ms", timeout_ms);
            return false;
        }
        c->in_len += (size_t)got;
    }
}

/* Receives until a message of `type` arrives (others, like peer notices, are passed over). */
static bool ws_expect(wsconn *c, enum wire_type type, wire_msg *m, char *err, size_t errlen)
{
    static char scratch[MAX_FRAME + 1];
    uint64_t deadline = compat_monotonic_ms() + STEP_MS;
    for (;;) {
        uint64_t now = compat_monotonic_ms();
        if (now >= deadline) {
            snprintf(err, errlen, "no answer within %d ms", STEP_MS);
            return false;
        }
        if (!ws_recv(c, (unsigned)(deadline - now), err, errlen))
            return false;
        char why[128];
        if (!wire_decode(c->msg, c->msg_len, m, scratch, why, sizeof why)) {
            snprintf(err, errlen, "the relay sent an undecodable message: %s", why);
            return false;
        }
        if (m->type == WT_ERROR) {
            snprintf(err, errlen, "the relay answered error %llu: %.*s",
                     (unsigned long long)m->code, (int)m->message.n, m->message.p);
            return false;
        }
        if (m->type == type)
            return true;
    }
}

/* Sends one message and waits for the answer of `type`. */
static bool ask(wsconn *c, const char *text, size_t len, enum wire_type type, wire_msg *m,
                char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (!ws_send(c, WS_OP_TEXT, text, len)) {
        snprintf(err, errlen, "cannot send to the relay");
        return false;
    }
    return ws_expect(c, type, m, err, errlen);
}

static void passed(check *k, uint64_t start_us, const char *detail)
{
    k->ok = true;
    k->ms = since_ms(start_us);
    snprintf(k->detail, sizeof k->detail, "%s", detail);
}

static bool ws_handshake(wsconn *c, const char *host_header, const char *path, char *err,
                         size_t errlen)
{
    uint8_t raw[16];
    char key[BASE64_LEN(sizeof raw) + 1], want[29], req[1024], head[HTTP_MAX_HEAD];
    size_t len = 0;
    compat_random(raw, sizeof raw);
    base64_encode(raw, sizeof raw, key);
    ws_accept_key(key, strlen(key), want);
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n",
                     path, host_header, key);
    if (n < 0 || (size_t)n >= sizeof req || !conn_send_all(c, req, (size_t)n, STEP_MS)) {
        snprintf(err, errlen, "cannot send the upgrade request");
        return false;
    }
    http_status_head resp;
    long head_len;
    while ((head_len = http_parse_response(head, len, sizeof head, &resp)) == HTTP_NEED_MORE) {
        long got = conn_recv(c, head + len, sizeof head - len, STEP_MS);
        if (got <= 0) {
            snprintf(err, errlen, "no answer to the WebSocket upgrade");
            return false;
        }
        len += (size_t)got;
    }
    const http_header *accept = head_len > 0 ? http_find_in(resp.headers, resp.n_headers,
                                                           "Sec-WebSocket-Accept")
                                             : NULL;
    if (head_len <= 0 || resp.status != 101 || accept == NULL || accept->value_len != 28 ||
        memcmp(accept->value, want, 28) != 0) {
        snprintf(err, errlen, head_len > 0 ? "the upgrade was answered %d, not a valid 101"
                                           : "the upgrade answer is not HTTP",
                 resp.status);
        return false;
    }
    /* Frames that came in the same read as the 101 stay for the decoder. */
    c->in_len = len - (size_t)head_len;
    memcpy(c->in, head + head_len, c->in_len);
    return true;
}

/* ---- the checks ---- */

/* tls: how to speak TLS to the relay (wss://), NULL for ws://. */
static void run_ws_checks(wsconn *c, const addr_t *relay, const tls_client_opts *tls,
                          const char *host_header, const char *path, check *k)
{
    char err[256], text[ADDR_STRLEN], peer[65], net[40];
    uint8_t rnd[36];
    json_writer w;
    static char out[1024], scratch[1024];
    wire_msg m, sent;

    uint64_t t0 = now_us();
    addr_format(relay, text);
    c->s = client_connect(relay, STEP_MS, err, sizeof err);
    k[CONNECT].ran = true;
    if (c->s != SOCKET_INVALID && tls != NULL)
        c->tls = tls_client_open(c->s, tls, STEP_MS, err, sizeof err);
    if (c->s == SOCKET_INVALID || (tls != NULL && c->tls == NULL) ||
        !ws_handshake(c, host_header, path, err, sizeof err)) {
        snprintf(k[CONNECT].detail, sizeof k[CONNECT].detail, "%s", err);
        return;
    }
    if (tls == NULL)
        snprintf(err, sizeof err, "WebSocket upgrade at %s", text);
    else if (tls->server_name != NULL)
        snprintf(err, sizeof err, "WebSocket upgrade at %s over TLS (certificate for %s, trusted "
                 "by %s)", text, tls->server_name, tls->ca_path);
    else
        snprintf(err, sizeof err, "WebSocket upgrade at %s over TLS (certificate trusted by %s; "
                 "an IP address has no name to check)", text, tls->ca_path);
    passed(&k[CONNECT], t0, err);

    /* A throwaway identity on a throwaway network: nobody else is told about it. Over mTLS the
     * identity is the one our certificate proves, the only one the relay lets us register. */
    compat_random(rnd, sizeof rnd);
    if (c->tls == NULL || !tls_client_peer_id(c->tls, peer))
        hex_encode(rnd, 32, peer);
    memcpy(net, "dig-relay-probe-", 16);
    hex_encode(rnd + 32, 4, net + 16);
    memset(&sent, 0, sizeof sent);
    sent.type = WT_REGISTER;
    sent.peer_id = (wire_str){peer, 64};
    sent.network_id = (wire_str){net, strlen(net)};
    sent.protocol_version = 1;
    jw_init_fixed(&w, out, sizeof out);
    wire_encode(&w, &sent, scratch);
    t0 = now_us();
    k[REGISTER].ran = true;
    if (!ask(c, out, w.len, WT_REGISTER_ACK, &m, err, sizeof err) || !m.success) {
        snprintf(k[REGISTER].detail, sizeof k[REGISTER].detail, "%s",
                 m.type == WT_REGISTER_ACK ? "register_ack says success:false" : err);
        return;
    }
    snprintf(err, sizeof err, "peer %.12s... on network %s", peer, net);
    passed(&k[REGISTER], t0, err);

    uint64_t stamp = compat_wall_secs();
    jw_init_fixed(&w, out, sizeof out);
    wire_write_ping(&w, stamp);
    t0 = now_us();
    k[PING].ran = true;
    if (!ask(c, out, w.len, WT_PONG, &m, err, sizeof err) || m.timestamp != stamp) {
        snprintf(k[PING].detail, sizeof k[PING].detail, "%s",
                 m.type == WT_PONG ? "pong carries another timestamp" : err);
        return;
    }
    passed(&k[PING], t0, "pong");

    static const char payload[] = "[100,105,103,45,114,101,108,97,121]";   /* "dig-relay" */
    memset(&sent, 0, sizeof sent);
    sent.type = WT_RELAY_MESSAGE;
    sent.from = sent.to = (wire_str){peer, 64};
    sent.payload = (json_span){payload, sizeof payload - 1};
    sent.seq = stamp;
    jw_init_fixed(&w, out, sizeof out);
    wire_encode(&w, &sent, scratch);
    t0 = now_us();
    k[RELAY].ran = true;
    if (!ask(c, out, w.len, WT_RELAY_MESSAGE, &m, err, sizeof err) || m.seq != stamp ||
        m.payload.n != sizeof payload - 1 || memcmp(m.payload.p, payload, m.payload.n) != 0) {
        snprintf(k[RELAY].detail, sizeof k[RELAY].detail, "%s",
                 m.type == WT_RELAY_MESSAGE ? "the message came back changed" : err);
        return;
    }
    passed(&k[RELAY], t0, "a message to itself came back intact");

    uint8_t close[8];
    size_t n = ws_close_frame(close, WS_CLOSE_NORMAL, NULL);
    uint8_t key[4] = {0, 0, 0, 0};
    static uint8_t frame[16];
    n = ws_client_frame(frame, sizeof frame, WS_OP_CLOSE, close + 2, n - 2, key);
    conn_send_all(c, frame, n, 1000);
}

static void run_health(const addr_t *a, check *k)
{
    char err[256], text[ADDR_STRLEN], req[160], head[HTTP_MAX_HEAD];
    size_t len = 0;
    uint64_t t0 = now_us();
    addr_format(a, text);
    k->ran = true;
    socket_t s = client_connect(a, STEP_MS, err, sizeof err);
    if (s == SOCKET_INVALID) {
        snprintf(k->detail, sizeof k->detail, "%s", err);
        return;
    }
    int n = snprintf(req, sizeof req, "GET /health HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     text);
    http_status_head resp;
    long head_len = HTTP_NEED_MORE;
    if (client_send_all(s, req, (size_t)n, STEP_MS)) {
        while ((head_len = http_parse_response(head, len, sizeof head, &resp)) == HTTP_NEED_MORE) {
            long got = client_recv(s, head + len, sizeof head - len, STEP_MS);
            if (got <= 0)
                break;
            len += (size_t)got;
        }
    }
    compat_close(s);
    if (head_len <= 0) {
        snprintf(k->detail, sizeof k->detail, "http://%s/health gave no HTTP answer", text);
        return;
    }
    k->ok = resp.status == 200;
    k->ms = since_ms(t0);
    snprintf(k->detail, sizeof k->detail, "http://%s/health answered %d", text, resp.status);
}

static void run_stun(const addr_t *a, check *k)
{
    char err[256], text[ADDR_STRLEN], mapped_text[ADDR_STRLEN];
    uint8_t tid[STUN_TRANSACTION_ID_LEN], req[64], resp[512];
    addr_t mapped;
    addr_format(a, text);
    k->ran = true;
    socket_t s = client_udp(a, err, sizeof err);
    if (s == SOCKET_INVALID) {
        snprintf(k->detail, sizeof k->detail, "%s", err);
        return;
    }
    compat_random(tid, sizeof tid);
    size_t n = stun_write_binding_request(tid, req, sizeof req);
    uint64_t t0 = now_us();
    /* UDP may lose a datagram: three tries, a second apart. */
    for (int attempt = 0; attempt < 3 && !k->ok; attempt++) {
        if (compat_send(s, req, n) < 0)
            break;
        uint64_t deadline = compat_monotonic_ms() + 1000;
        for (uint64_t now; !k->ok && (now = compat_monotonic_ms()) < deadline;) {
            long got = client_recv(s, resp, sizeof resp, (unsigned)(deadline - now));
            if (got <= 0)
                break;
            k->ok = stun_parse_binding_response(resp, (size_t)got, tid, &mapped);
        }
    }
    compat_close(s);
    if (!k->ok) {
        snprintf(k->detail, sizeof k->detail, "no Binding answer from udp %s", text);
        return;
    }
    k->ms = since_ms(t0);
    addr_format(&mapped, mapped_text);
    snprintf(k->detail, sizeof k->detail, "udp %s sees this host as %s", text, mapped_text);
}

/* ---- report ---- */

static void print_report(const char *url, const check *k, bool json)
{
    size_t answered = 0, ran = 0;
    for (int i = 0; i < N_CHECKS; i++) {
        answered += k[i].ok;
        ran += k[i].ran;
    }
    if (!json) {
        printf("dig-relay probe %s\n", url);
        for (int i = 0; i < N_CHECKS; i++) {
            if (!k[i].ran)
                printf("  %-9s --   not tried\n", check_names[i]);
            else if (k[i].ok)
                printf("  %-9s ok   %8.1f ms  %s\n", check_names[i], k[i].ms, k[i].detail);
            else
                printf("  %-9s FAIL             %s\n", check_names[i], k[i].detail);
        }
        printf("%zu of %d checks answered\n", answered, N_CHECKS);
        return;
    }
    static char out[8192];
    char ms[32];
    json_writer w;
    jw_init_fixed(&w, out, sizeof out - 1);
    jw_lit(&w, answered == N_CHECKS ? "{\"ok\":true,\"result\":{" : "{\"ok\":false,\"result\":{");
    /* Keys in sorted order, like every other --json answer. */
    static const int order[N_CHECKS] = {CONNECT, HEALTH, PING, REGISTER, RELAY, STUN};
    for (int j = 0; j < N_CHECKS; j++) {
        const check *c = &k[order[j]];
        if (j)
            jw_lit(&w, ",");
        jw_string(&w, check_names[order[j]], strlen(check_names[order[j]]));
        jw_lit(&w, ":{\"detail\":");
        jw_string(&w, c->ran ? c->detail : "not tried", strlen(c->ran ? c->detail : "not tried"));
        snprintf(ms, sizeof ms, "%.3f", c->ms);
        jw_lit(&w, ",\"ms\":");
        jw_lit(&w, c->ok ? ms : "null");
        jw_lit(&w, ",\"ok\":");
        jw_bool(&w, c->ok);
        jw_lit(&w, "}");
    }
    jw_lit(&w, ",\"url\":");
    jw_string(&w, url, strlen(url));
    jw_lit(&w, "}}");
    out[w.len] = '\0';
    puts(w.failed ? "{\"error\":{\"message\":\"the report does not fit\"},\"ok\":false}" : out);
    (void)ran;
}

int probe_run(const relay_config *c)
{
    static check k[N_CHECKS];
    static wsconn conn;
    char host[256], port[8], path[512], err[256], host_header[300], hport[8], sport[8];
    addr_t relay, health, stun, literal;
    bool tls;

    if (!parse_url(c->probe_url, &tls, host, sizeof host, port, path, sizeof path, err,
                   sizeof err)) {
        fprintf(stderr, "dig-relay: error: %s\n", err);
        return 2;
    }
    if (!compat_init(err, sizeof err) || !resolve(host, port, SOCK_STREAM, &relay, err, sizeof err)) {
        snprintf(k[CONNECT].detail, sizeof k[CONNECT].detail, "%s", err);
        k[CONNECT].ran = true;
        print_report(c->probe_url, k, c->json);
        return 1;
    }
    snprintf(host_header, sizeof host_header, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
    tls_client_opts to = {
        .server_name = addr_parse_ip(host, strlen(host), &literal) ? NULL : host,
        .ca_path = c->probe_ca != NULL ? c->probe_ca : system_ca_file(),
        .cert_path = c->tls_cert_path,
        .key_path = c->tls_key_path,
    };
    ws_decoder_init(&conn.dec, MAX_FRAME);
    conn.dec.from_server = true;
    conn.s = SOCKET_INVALID;
    if (tls && to.ca_path == NULL) {
        k[CONNECT].ran = true;
        snprintf(k[CONNECT].detail, sizeof k[CONNECT].detail,
                 "no CA certificates found on this system to trust the relay's by: give "
                 "--probe-ca");
    } else {
        run_ws_checks(&conn, &relay, tls ? &to : NULL, host_header, path, k);
    }
    tls_client_close(conn.tls, 1000);
    if (conn.s != SOCKET_INVALID)
        compat_close(conn.s);
    ws_decoder_free(&conn.dec);

    /* /health and STUN at the same host, on the ports --health-listen and --stun-listen name. */
    snprintf(hport, sizeof hport, "%u", c->health_listen.port);
    snprintf(sport, sizeof sport, "%u", c->stun_listen.port);
    if (resolve(host, hport, SOCK_STREAM, &health, err, sizeof err))
        run_health(&health, &k[HEALTH]);
    if (resolve(host, sport, SOCK_DGRAM, &stun, err, sizeof err))
        run_stun(&stun, &k[STUN]);
    print_report(c->probe_url, k, c->json);
    for (int i = 0; i < N_CHECKS; i++)
        if (!k[i].ok)
            return 1;
    return 0;
}
