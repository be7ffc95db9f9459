/* Unit tests for tls.c: the TLS transport driven over a socketpair against BearSSL's own client
 * engine, stepped in this process, with keys and certificates made by openssl for each run.
 *
 * What is proven: the peer id of a client that proves its key (ECDSA P-256, P-384, RSA 2048) is
 * exactly the SHA-256 of its SPKI as openssl computes it; bytes round-trip exactly both ways,
 * gathered writes included; --tls-client-auth required/optional/none and --tls-client-ca behave
 * as the issue says (no certificate fails under required; a presented certificate that fails
 * the policy fails even under optional); a resumed session keeps its identity; bytes read
 * before the transport existed are fed first; garbage, a truncated handshake, a handshake past
 * its byte budget and a stream of empty records all fail; a renegotiation is refused; the loader
 * names the file and what is wrong with it. Skipped without openssl or without TLS built in. */
#include "tests/harness.h"
#include "tests/test.h"
#include "tls.h"
#include "loop.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#if DIG_HAVE_TLS

#include <bearssl.h>

static char dir[64];
static const char *relay_name = "relay";   /* the relay's certificate and key in dir */
static const char *key_override;            /* a client key other than its certificate's */
static size_t padding_certs;                /* copies of the issuer sent after the chain */
static char id_ec256[65], id_ec384[65], id_rsa[65], id_issued[65];

/* ---- a BearSSL client stepped by hand ------------------------------------------------------ */

typedef struct {
    br_ssl_client_context cc;
    br_x509_minimal_context unused;   /* br_ssl_client_init_full wants one; knownkey replaces it */
    br_x509_knownkey_context server_key;
    br_x509_decoder_context server_dc;
    br_x509_certificate chain[2 + 200];
    size_t chain_len;
    br_skey_decoder_context key;
    unsigned char *der[3];
    unsigned char io[BR_SSL_BUFSIZE_BIDI];
    int fd;
    const uint8_t *send;
    size_t send_len, send_off;
    uint8_t *got;
    size_t got_len, got_cap;
    bool eof;
} client;

static unsigned char *read_all(const char *name, size_t *len)
{
    char path[160];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return h_read_file(path, len);
}

/* A client trusting the relay's key directly; cert is the name of its certificate (NULL for
 * none), with an issuer certificate appended to the chain when issuer is set. */
static bool client_init(client *c, const char *cert, const char *issuer)
{
    char name[96];
    size_t len;

    memset(c, 0, sizeof *c);
    c->fd = -1;
    br_ssl_client_init_full(&c->cc, &c->unused, NULL, 0);
    snprintf(name, sizeof name, "%s.crt.der", relay_name);
    c->der[0] = read_all(name, &len);
    if (c->der[0] == NULL)
        return false;
    br_x509_decoder_init(&c->server_dc, NULL, NULL);
    br_x509_decoder_push(&c->server_dc, c->der[0], len);
    br_x509_pkey *pk = br_x509_decoder_get_pkey(&c->server_dc);
    if (pk == NULL)
        return false;
    if (pk->key_type == BR_KEYTYPE_EC)
        br_x509_knownkey_init_ec(&c->server_key, &pk->key.ec, BR_KEYTYPE_SIGN | BR_KEYTYPE_KEYX);
    else
        br_x509_knownkey_init_rsa(&c->server_key, &pk->key.rsa, BR_KEYTYPE_SIGN | BR_KEYTYPE_KEYX);
    br_ssl_engine_set_x509(&c->cc.eng, &c->server_key.vtable);
    if (cert != NULL) {
        snprintf(name, sizeof name, "%s.crt.der", cert);
        c->der[1] = read_all(name, &c->chain[0].data_len);
        c->chain[0].data = c->der[1];
        c->chain_len = 1;
        if (issuer != NULL) {
            snprintf(name, sizeof name, "%s.crt.der", issuer);
            c->der[2] = read_all(name, &c->chain[1].data_len);
            c->chain[1].data = c->der[2];
            c->chain_len = 2;
            for (size_t i = 0; i < padding_certs && c->chain_len < sizeof c->chain / sizeof c->chain[0]; i++)
                c->chain[c->chain_len++] = c->chain[1];
        }
        snprintf(name, sizeof name, "%s.key.der", key_override ? key_override : cert);
        unsigned char *k = read_all(name, &len);
        if (c->der[1] == NULL || k == NULL)
            return false;
        br_skey_decoder_init(&c->key);
        br_skey_decoder_push(&c->key, k, len);
        free(k);
        if (br_skey_decoder_key_type(&c->key) == BR_KEYTYPE_EC)
            br_ssl_client_set_single_ec(&c->cc, c->chain, c->chain_len,
                                        br_skey_decoder_get_ec(&c->key), BR_KEYTYPE_SIGN,
                                        BR_KEYTYPE_EC, br_ec_get_default(),
                                        br_ecdsa_sign_asn1_get_default());
        else if (br_skey_decoder_key_type(&c->key) == BR_KEYTYPE_RSA)
            br_ssl_client_set_single_rsa(&c->cc, c->chain, c->chain_len,
                                         br_skey_decoder_get_rsa(&c->key),
                                         br_rsa_pkcs1_sign_get_default());
        else
            return false;
    }
    br_ssl_engine_set_buffer(&c->cc.eng, c->io, sizeof c->io, 1);
    return br_ssl_client_reset(&c->cc, "relay.test", 0) == 1;
}

static void client_free(client *c)
{
    for (int i = 0; i < 3; i++)
        free(c->der[i]);
    free(c->got);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Moves whatever can move on the client side; true when something did. */
static bool client_step(client *c)
{
    br_ssl_engine_context *eng = &c->cc.eng;
    bool moved = false;
    for (;;) {
        unsigned st = br_ssl_engine_current_state(eng);
        size_t n;
        unsigned char *p;
        bool again = false;
        if (st & BR_SSL_CLOSED)
            return moved;
        if ((st & BR_SSL_SENDREC) && (p = br_ssl_engine_sendrec_buf(eng, &n)) != NULL) {
            ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
            if (w > 0) {
                br_ssl_engine_sendrec_ack(eng, (size_t)w);
                again = true;
            }
        }
        if ((p = br_ssl_engine_recvapp_buf(eng, &n)) != NULL) {
            if (c->got_len + n > c->got_cap) {
                c->got_cap = (c->got_len + n) * 2;
                c->got = realloc(c->got, c->got_cap);
            }
            memcpy(c->got + c->got_len, p, n);
            c->got_len += n;
            br_ssl_engine_recvapp_ack(eng, n);
            again = true;
        }
        if (c->send_off < c->send_len && (p = br_ssl_engine_sendapp_buf(eng, &n)) != NULL) {
            if (n > c->send_len - c->send_off)
                n = c->send_len - c->send_off;
            memcpy(p, c->send + c->send_off, n);
            c->send_off += n;
            br_ssl_engine_sendapp_ack(eng, n);
            br_ssl_engine_flush(eng, 0);
            again = true;
        }
        if (!c->eof && (p = br_ssl_engine_recvrec_buf(eng, &n)) != NULL) {
            ssize_t r = recv(c->fd, p, n, 0);
            if (r > 0) {
                br_ssl_engine_recvrec_ack(eng, (size_t)r);
                again = true;
            } else if (r == 0) {
                c->eof = true;
            }
        }
        if (!again)
            return moved;
        moved = true;
    }
}

static bool client_open(const client *c)
{
    return (br_ssl_engine_current_state(&c->cc.eng) & BR_SSL_SENDAPP) != 0;
}

static bool client_closed(const client *c)
{
    return (br_ssl_engine_current_state(&c->cc.eng) & BR_SSL_CLOSED) != 0 || c->eof;
}

/* ---- the server side: the transport under test ---------------------------------------------- */

typedef struct {
    xport *x;
    uint8_t *got;
    size_t got_len, got_cap;
    size_t echoed;          /* bytes of got already written back (when echoing) */
    bool echo;
    bool ended;             /* read returned 0 */
    bool failed;            /* a call returned XPORT_ERROR */
} server_side;

static void server_step(server_side *s)
{
    uint8_t buf[3000];
    if (s->x == NULL || s->failed || s->ended)
        return;
    for (;;) {
        long n = xport_read(s->x, buf, sizeof buf);
        if (n > 0) {
            if (s->got_len + (size_t)n > s->got_cap) {
                s->got_cap = (s->got_len + (size_t)n) * 2;
                s->got = realloc(s->got, s->got_cap);
            }
            memcpy(s->got + s->got_len, buf, (size_t)n);
            s->got_len += (size_t)n;
            continue;
        }
        if (n == 0)
            s->ended = true;
        if (n == XPORT_ERROR)
            s->failed = true;
        break;
    }
    /* Echo back in three uneven pieces, so writes gather across iov boundaries. */
    while (!s->failed && s->echo && s->echoed < s->got_len) {
        size_t left = s->got_len - s->echoed, a = left / 3, b = left / 5;
        struct compat_iov iov[3] = {
            { s->got + s->echoed, a },
            { s->got + s->echoed + a, b },
            { s->got + s->echoed + a + b, left - a - b },
        };
        long w = xport_writev(s->x, iov, 3);
        if (w > 0)
            s->echoed += (size_t)w;
        if (w == XPORT_ERROR)
            s->failed = true;
        if (w <= 0)
            break;
    }
    if (!s->failed && xport_flush(s->x) == XPORT_ERROR)
        s->failed = true;
}

static void server_free(server_side *s)
{
    if (s->x != NULL)
        xport_close(s->x);
    free(s->got);
    memset(s, 0, sizeof *s);
}

/* A socketpair: the server end goes to tls_open (with prefix), the client end to c. */
static bool connect_pair(tls_server *srv, client *c, server_side *s, const void *prefix,
                         size_t prefix_len)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return false;
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    memset(s, 0, sizeof *s);
    s->x = tls_open(srv, sv[0], prefix, prefix_len);
    if (s->x == NULL) {
        close(sv[0]);
        close(sv[1]);
        return false;
    }
    c->fd = sv[1];
    return true;
}

/* Steps both sides until done() or nothing moves for a while (5 s deadline). */
static void run_until(client *c, server_side *s, bool (*done)(const client *, const server_side *))
{
    uint64_t deadline = h_now_ms() + 5000;
    while (!done(c, s) && h_now_ms() < deadline) {
        bool moved = client_step(c);
        server_step(s);
        if (!moved)
            h_sleep_ms(1);
    }
}

/* Both ends in application data (the server wants nothing more for its handshake), or one of
 * them gave up. */
static bool handshake_over(const client *c, const server_side *s)
{
    return (client_open(c) && s->x != NULL && xport_wants(s->x) == 0) || s->failed ||
           client_closed(c);
}

/* A client with certificate cert (NULL: none) connected and through its handshake. */
static bool open_session(tls_server *srv, const char *cert, client *c, server_side *s)
{
    if (!client_init(c, cert, NULL) || !connect_pair(srv, c, s, NULL, 0))
        return false;
    run_until(c, s, handshake_over);
    return !s->failed && client_open(c);
}

static bool echoed_all(const client *c, const server_side *s)
{
    return c->got_len >= c->send_len || s->failed || s->ended || client_closed(c);
}

static bool client_gave_up(const client *c, const server_side *s)
{
    return client_closed(c) || s->failed;
}

static bool server_read_something(const client *c, const server_side *s)
{
    return s->got_len > 0 || s->failed || s->ended || client_closed(c);
}

static tls_server *server_new(enum tls_client_auth auth, const char *ca)
{
    char cert[128], key[128], capath[128], err[512];
    snprintf(cert, sizeof cert, "%s/%s.crt.pem", dir, relay_name);
    snprintf(key, sizeof key, "%s/%s.key.pem", dir, relay_name);
    snprintf(capath, sizeof capath, "%s/%s.crt.pem", dir, ca ? ca : "");
    tls_server *s = tls_server_new(cert, key, auth, ca ? capath : NULL, err, sizeof err);
    if (s == NULL)
        printf("  tls_server_new: %s\n", err);
    return s;
}

/* Handshakes, then sends len bytes through the echo and checks they come back exactly; returns
 * the server's view of the peer identity (copied to id, "" for none), or false on failure. */
static bool exchange(tls_server *srv, const char *cert, const char *issuer, size_t len,
                     char id[65], const void *prefix_from_client, size_t prefix_len)
{
    client c;
    server_side s;
    uint8_t *data = malloc(len ? len : 1);
    bool ok = false;
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 131 + (i >> 9));
    if (!client_init(&c, cert, issuer) || !connect_pair(srv, &c, &s, prefix_from_client, prefix_len)) {
        printf("  setting up the pair failed\n");
        client_free(&c);
        free(data);
        return false;
    }
    (void)prefix_from_client;
    s.echo = true;
    run_until(&c, &s, handshake_over);
    const char *who = s.failed ? NULL : xport_peer_identity(s.x);
    snprintf(id, 65, "%s", who ? who : "");
    if (!s.failed && client_open(&c)) {
        c.send = data;
        c.send_len = len;
        run_until(&c, &s, echoed_all);
        ok = c.got_len == len && memcmp(c.got, data, len) == 0 && s.got_len == len;
        if (!ok)
            printf("  echo: client got %zu of %zu bytes, server read %zu\n", c.got_len, len,
                   s.got_len);
    }
    server_free(&s);
    client_free(&c);
    free(data);
    return ok;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static bool setup(void)
{
    static int state;   /* 0 not tried, 1 ready, -1 failed */
    if (state != 0)
        return state == 1;
    state = -1;
    snprintf(dir, sizeof dir, "/tmp/dig-tls-test.%ld", (long)getpid());
    char cmd[512];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    if (h_sh(cmd, NULL, 0, 10000) != 0)
        return false;
    if (!h_make_cert(dir, "relay", "ec:P-256", NULL, false, NULL) ||
        !h_make_cert(dir, "relay_rsa", "rsa:2048", NULL, false, NULL) ||
        !h_make_cert(dir, "node", "ec:P-256", NULL, false, id_ec256) ||
        !h_make_cert(dir, "impostor", "ec:P-256", NULL, false, NULL) ||
        !h_make_cert(dir, "node384", "ec:P-384", NULL, false, id_ec384) ||
        !h_make_cert(dir, "node_rsa", "rsa:2048", NULL, false, id_rsa) ||
        !h_make_cert(dir, "node521", "ec:P-521", NULL, false, NULL) ||
        !h_make_cert(dir, "node_rsa1024", "rsa:1024", NULL, false, NULL) ||
        !h_make_cert(dir, "dig_ca", "ec:P-256", NULL, true, NULL) ||
        !h_make_cert(dir, "issued", "ec:P-256", "dig_ca", false, id_issued) ||
        !h_make_cert(dir, "other_ca", "ec:P-256", NULL, true, NULL) ||
        !h_make_cert(dir, "stranger", "ec:P-256", "other_ca", false, NULL))
        return false;
    /* A leaf over 8 KiB: the node key with 700 subject alternative names. */
    snprintf(cmd, sizeof cmd, "cd %s && openssl req -x509 -new -key node.key.pem -subj /CN=big "
             "-days 30 -addext \"subjectAltName=$(seq -f 'DNS:n%%g.example.org' -s, 1 700)\" "
             "-outform DER -out big.crt.der && cp node.key.der big.key.der", dir);
    if (h_sh(cmd, NULL, 0, 30000) != 0)
        return false;
    state = 1;
    return true;
}

#define NEED_SETUP() do { \
        if (!h_have_openssl()) SKIP("openssl not installed"); \
        REQUIRE(setup()); \
    } while (0)

static void test_required_binds_the_proven_key(void)
{
    char id[65];
    NEED_SETUP();
    tls_server *srv = server_new(TLS_CLIENT_AUTH_REQUIRED, NULL);
    REQUIRE(srv != NULL);
    CHECK(exchange(srv, "node", NULL, 70000, id, NULL, 0));
    CHECK_EQ_STR(id, id_ec256);
    CHECK(exchange(srv, "node384", NULL, 16384, id, NULL, 0));
    CHECK_EQ_STR(id, id_ec384);
    CHECK(exchange(srv, "node_rsa", NULL, 16384, id, NULL, 0));
    CHECK_EQ_STR(id, id_rsa);
    tls_server_free(srv);

    /* The same with the relay on an RSA key (ECDHE_RSA suites). */
    relay_name = "relay_rsa";
    srv = server_new(TLS_CLIENT_AUTH_REQUIRED, NULL);
    relay_name = "relay";
    REQUIRE(srv != NULL);
    relay_name = "relay_rsa";
    CHECK(exchange(srv, "node", NULL, 20000, id, NULL, 0));
    CHECK_EQ_STR(id, id_ec256);
    CHECK(exchange(srv, "node_rsa", NULL, 20000, id, NULL, 0));
    CHECK_EQ_STR(id, id_rsa);
    relay_name = "relay";
    tls_server_free(srv);
}

static void test_required_refuses_clients_without_a_good_certificate(void)
{
    char id[65];
    NEED_SETUP();
    tls_server *srv = server_new(TLS_CLIENT_AUTH_REQUIRED, NULL);
    REQUIRE(srv != NULL);
    CHECK(!exchange(srv, NULL, NULL, 100, id, NULL, 0));          /* no certificate */
    CHECK_EQ_STR(id, "");
    CHECK(!exchange(srv, "node521", NULL, 100, id, NULL, 0));     /* P-521: not allowed */
    CHECK_EQ_STR(id, "");
    CHECK(!exchange(srv, "node_rsa1024", NULL, 100, id, NULL, 0)); /* RSA below 2048 bits */
    CHECK_EQ_STR(id, "");
    tls_server_free(srv);
}

static void test_optional_and_none(void)
{
    char id[65];
    NEED_SETUP();
    tls_server *srv = server_new(TLS_CLIENT_AUTH_OPTIONAL, NULL);
    REQUIRE(srv != NULL);
    CHECK(exchange(srv, NULL, NULL, 5000, id, NULL, 0));          /* served without identity */
    CHECK_EQ_STR(id, "");
    CHECK(exchange(srv, "node", NULL, 5000, id, NULL, 0));        /* a certificate binds */
    CHECK_EQ_STR(id, id_ec256);
    CHECK(!exchange(srv, "node521", NULL, 100, id, NULL, 0));     /* presented and bad: refused */
    CHECK_EQ_STR(id, "");
    tls_server_free(srv);

    srv = server_new(TLS_CLIENT_AUTH_NONE, NULL);
    REQUIRE(srv != NULL);
    CHECK(exchange(srv, NULL, NULL, 5000, id, NULL, 0));
    CHECK_EQ_STR(id, "");
    CHECK(exchange(srv, "node", NULL, 5000, id, NULL, 0));        /* never asked for */
    CHECK_EQ_STR(id, "");
    tls_server_free(srv);
}

static void test_client_ca(void)
{
    char id[65];
    NEED_SETUP();
    tls_server *srv = server_new(TLS_CLIENT_AUTH_REQUIRED, "dig_ca");
    REQUIRE(srv != NULL);
    CHECK(exchange(srv, "issued", "dig_ca", 3000, id, NULL, 0));
    CHECK_EQ_STR(id, id_issued);
    CHECK(exchange(srv, "issued", NULL, 3000, id, NULL, 0));      /* the anchor completes it */
    CHECK_EQ_STR(id, id_issued);
    CHECK(!exchange(srv, "stranger", "other_ca", 100, id, NULL, 0));
    CHECK(!exchange(srv, "node", NULL, 100, id, NULL, 0));        /* self-signed */
    tls_server_free(srv);

    srv = server_new(TLS_CLIENT_AUTH_OPTIONAL, "dig_ca");
    REQUIRE(srv != NULL);
    CHECK(!exchange(srv, "stranger", "other_ca", 100, id, NULL, 0));
    CHECK(exchange(srv, NULL, NULL, 100, id, NULL, 0));
    CHECK_EQ_STR(id, "");
    tls_server_free(srv);
}

/* A client that shows node's certificate but signs with another key never completes: the
 * CertificateVerify is the proof of possession. */
static void test_certificate_without_its_key_is_refused(void)
{
    char id[65];
    NEED_SETUP();
    tls_server *srv = server_new(TLS_CLIENT_AUTH_REQUIRED, NULL);
    REQUIRE(srv != NULL);
    key_override = "impostor";
    CHECK(!exchange(srv, "node", NULL, 100, id, NULL, 0));
    CHECK_EQ_STR(id, "");
    key_override = NULL;
    tls_server_free(srv);
}

/* The second connection resumes the first one's session (no certificate is sent again) and
 * still has the first one's identity. */
static void test_resumed_session_keeps_its_identity(void)
{
    NEED_SETUP();
    tls_server *srv = server_new(TLS_CLIENT_AUTH_REQUIRED, NULL);
    REQUIRE(srv != NULL);
    client c;
    server_side s;
    REQUIRE(open_session(srv, "node", &c, &s) && xport_peer_identity(s.x) != NULL);
    br_ssl_session_parameters first;
    br_ssl_engine_get_session_parameters(&c.cc.eng, &first);
    server_free(&s);
    close(c.fd);
    c.fd = -1;
    c.eof = false;

    REQUIRE(br_ssl_client_reset(&c.cc, "relay.test", 1) == 1);
    REQUIRE(connect_pair(srv, &c, &s, NULL, 0));
    run_until(&c, &s, handshake_over);
    br_ssl_session_parameters second;
    br_ssl_engine_get_session_parameters(&c.cc.eng, &second);
    CHECK(!s.failed);
    CHECK(memcmp(first.session_id, second.session_id, 32) == 0);   /* it was resumed */
    const char *who = s.x ? xport_peer_identity(s.x) : NULL;
    CHECK(who != NULL && strcmp(who, id_ec256) == 0);
    server_free(&s);
    client_free(&c);
    tls_server_free(srv);
}

/* Bytes read before the transport existed (while looking for a PROXY header) are fed to the
 * engine first: part of the ClientHello, or all of it. */
static void test_prefix_is_fed_first(void)
{
    NEED_SETUP();
    tls_server *srv = server_new(TLS_CLIENT_AUTH_REQUIRED, NULL);
    REQUIRE(srv != NULL);
    for (int whole = 0; whole < 2; whole++) {
        client c;
        server_side s;
        int sv[2];
        uint8_t pre[8192];
        REQUIRE(client_init(&c, "node", NULL));
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
        fcntl(sv[0], F_SETFL, O_NONBLOCK);
        fcntl(sv[1], F_SETFL, O_NONBLOCK);
        c.fd = sv[1];
        client_step(&c);
        ssize_t k = recv(sv[0], pre, whole ? sizeof pre : 37, 0);
        REQUIRE(k > 0);
        memset(&s, 0, sizeof s);
        s.x = tls_open(srv, sv[0], pre, (size_t)k);
        REQUIRE(s.x != NULL);
        CHECK(xport_has_buffered_input(s.x));
        s.echo = true;
        run_until(&c, &s, handshake_over);
        CHECK(!s.failed);
        const char *who = s.failed ? NULL : xport_peer_identity(s.x);
        CHECK(who != NULL && strcmp(who, id_ec256) == 0);
        c.send = (const uint8_t *)"after the prefix";
        c.send_len = 16;
        run_until(&c, &s, echoed_all);
        CHECK_EQ_MEM(c.got, c.got_len, "after the prefix", 16);
        server_free(&s);
        client_free(&c);
    }
    tls_server_free(srv);
}

/* What is not a ClientHello fails the transport at once. */
static void test_garbage_fails(void)
{
    NEED_SETUP();
    tls_server *srv = server_new(TLS_CLIENT_AUTH_REQUIRED, NULL);
    REQUIRE(srv != NULL);
#define INPUT(s) { s, sizeof s - 1 }
    static const struct { const char *bytes; size_t len; } inputs[] = {
        INPUT("GET / HTTP/1.1\r\nHost: relay\r\n\r\n"),
        INPUT("\x16\x03\x01\xff\xff garbage"),      /* a handshake record longer than allowed */
        INPUT("\x15\x03\x03\x00\x02\x02\x28"),   /* a fatal alert instead of a ClientHello */
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        int sv[2];
        server_side s;
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
        fcntl(sv[0], F_SETFL, O_NONBLOCK);
        memset(&s, 0, sizeof s);
        s.x = tls_open(srv, sv[0], NULL, 0);
        REQUIRE(s.x != NULL);
        REQUIRE(send(sv[1], inputs[i].bytes, inputs[i].len, 0) == (ssize_t)inputs[i].len);
        server_step(&s);
        if (!s.failed)
            printf("  input %zu was not refused\n", i);
        CHECK(s.failed);
        server_free(&s);
        close(sv[1]);
    }
    /* Random bytes, 16 KiB of them. */
    uint8_t junk[16384];
    h_random(junk, sizeof junk);
    junk[0] = 0x16;
    int sv[2];
    server_side s;
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    memset(&s, 0, sizeof s);
    s.x = tls_open(srv, sv[0], NULL, 0);
    REQUIRE(send(sv[1], junk, sizeof junk, 0) > 0);
    server_step(&s);
    CHECK(s.failed);
    server_free(&s);
    close(sv[1]);
    tls_server_free(srv);
}

/* The client's bytes cross a middle that forwards them one at a time (a handshake trickled a
 * byte per step), or stops after `cut` bytes and closes (a truncated handshake). */
static void run_through_middle(tls_server *srv, client *c, server_side *s, size_t cut)
{
    int a[2], b[2];
    size_t forwarded = 0;
    bool cut_done = false;
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, a) == 0 && socketpair(AF_UNIX, SOCK_STREAM, 0, b) == 0);
    for (int i = 0; i < 2; i++) {
        fcntl(a[i], F_SETFL, O_NONBLOCK);
        fcntl(b[i], F_SETFL, O_NONBLOCK);
    }
    c->fd = a[1];
    memset(s, 0, sizeof *s);
    s->x = tls_open(srv, b[0], NULL, 0);
    REQUIRE(s->x != NULL);
    uint64_t deadline = h_now_ms() + 20000;
    while (!handshake_over(c, s) && h_now_ms() < deadline && !(cut_done && s->failed)) {
        uint8_t byte, back[4096];
        client_step(c);
        if (!cut_done && recv(a[0], &byte, 1, 0) == 1) {
            REQUIRE(send(b[1], &byte, 1, 0) == 1);
            if (++forwarded == cut) {
                close(b[1]);
                cut_done = true;
            }
        }
        server_step(s);
        ssize_t n = cut_done ? 0 : recv(b[1], back, sizeof back, 0);
        if (n > 0)
            REQUIRE(send(a[0], back, (size_t)n, 0) == n);
        if (cut_done && !s->failed && !s->ended)
            h_sleep_ms(1);
    }
    close(a[0]);
    if (!cut_done)
        close(b[1]);
}

static void test_trickled_and_truncated_handshakes(void)
{
    NEED_SETUP();
    tls_server *srv = server_new(TLS_CLIENT_AUTH_REQUIRED, NULL);
    REQUIRE(srv != NULL);
    client c;
    server_side s;
    REQUIRE(client_init(&c, "node", NULL));
    run_through_middle(srv, &c, &s, SIZE_MAX);
    CHECK(!s.failed);
    const char *who = s.x ? xport_peer_identity(s.x) : NULL;
    CHECK(who != NULL && strcmp(who, id_ec256) == 0);
    server_free(&s);
    client_free(&c);

    /* Cut inside the record header, inside the ClientHello, inside the client's second flight. */
    static const size_t cuts[] = {3, 100, 700};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        REQUIRE(client_init(&c, "node", NULL));
        run_through_middle(srv, &c, &s, cuts[i]);
        CHECK(s.failed);
        CHECK(s.x == NULL || xport_peer_identity(s.x) == NULL);
        server_free(&s);
        client_free(&c);
    }
    tls_server_free(srv);
}

/* A peer that sends nothing but empty records (or a handshake bigger than any real one) is
 * cut off once 64 KiB have gone by without one application byte. */
static void test_records_without_data_are_bounded(void)
{
    NEED_SETUP();
    tls_server *srv = server_new(TLS_CLIENT_AUTH_REQUIRED, NULL);
    REQUIRE(srv != NULL);
    client c;
    server_side s;
    REQUIRE(open_session(srv, "node", &c, &s));
    int records = 0;
    while (!s.failed && records < 20000) {
        br_ssl_engine_flush(&c.cc.eng, 1);   /* an empty application data record */
        client_step(&c);
        server_step(&s);
        records++;
    }
    CHECK(s.failed);
    printf("  info: cut off after %d empty records\n", records);
    CHECK(records > 1000);
    server_free(&s);
    client_free(&c);
    tls_server_free(srv);
}

/* A client asking to renegotiate is turned down with a no_renegotiation alert (BearSSL's client
 * then gives up, its own choice); the server side neither fails nor changes the identity it
 * proved at first. */
static void test_no_renegotiation(void)
{
    NEED_SETUP();
    tls_server *srv = server_new(TLS_CLIENT_AUTH_REQUIRED, NULL);
    REQUIRE(srv != NULL);
    client c;
    server_side s;
    REQUIRE(open_session(srv, "node", &c, &s));
    CHECK(br_ssl_engine_renegotiate(&c.cc.eng) == 1);   /* the client tries */
    run_until(&c, &s, client_gave_up);
    CHECK_EQ_INT(br_ssl_engine_last_error(&c.cc.eng), BR_ERR_RECV_FATAL_ALERT + BR_ALERT_NO_RENEGOTIATION);
    CHECK(!s.failed);
    const char *who = s.failed ? NULL : xport_peer_identity(s.x);
    CHECK(who != NULL && strcmp(who, id_ec256) == 0);
    server_free(&s);
    client_free(&c);
    tls_server_free(srv);
}

/* A handshake bigger than any real one (a chain of 200 certificates) and a leaf certificate
 * over 8 KiB are refused. */
static void test_oversized_handshakes(void)
{
    char id[65];
    NEED_SETUP();
    tls_server *srv = server_new(TLS_CLIENT_AUTH_REQUIRED, NULL);
    REQUIRE(srv != NULL);
    padding_certs = 200;
    CHECK(!exchange(srv, "node", "dig_ca", 10, id, NULL, 0));
    padding_certs = 0;
    CHECK(exchange(srv, "node", "dig_ca", 10, id, NULL, 0));   /* the same, unpadded, passes */
    CHECK_EQ_STR(id, id_ec256);
    size_t len;
    char name[160];
    snprintf(name, sizeof name, "%s/big.crt.der", dir);
    free(h_read_file(name, &len));
    CHECK(len > 8192);
    CHECK(!exchange(srv, "big", NULL, 10, id, NULL, 0));
    tls_server_free(srv);
}

/* Writes the client does not read fill the socket: writev takes what fits, wants() asks for
 * write while records wait, and everything arrives once the client reads. */
static void test_backpressure_loses_nothing(void)
{
    NEED_SETUP();
    tls_server *srv = server_new(TLS_CLIENT_AUTH_NONE, NULL);
    REQUIRE(srv != NULL);
    client c;
    server_side s;
    REQUIRE(open_session(srv, NULL, &c, &s));
    c.send = (const uint8_t *)"x";
    c.send_len = 1;
    run_until(&c, &s, server_read_something);   /* the handshake, and one byte read */
    REQUIRE(!s.failed && s.got_len == 1);
    CHECK_EQ_INT(xport_wants(s.x), 0);

    size_t total = 4u << 20, sent = 0;
    uint8_t *data = malloc(total);
    for (size_t i = 0; i < total; i++)
        data[i] = (uint8_t)(i ^ (i >> 11));
    bool saw_again = false, saw_want_write = false;
    uint64_t deadline = h_now_ms() + 20000;
    while ((sent < total || c.got_len < total) && h_now_ms() < deadline) {
        if (sent < total) {
            struct compat_iov iov[2] = { { data + sent, (total - sent) / 2 },
                                         { data + sent + (total - sent) / 2, total - sent - (total - sent) / 2 } };
            long w = xport_writev(s.x, iov, 2);
            REQUIRE(w != XPORT_ERROR);
            if (w > 0)
                sent += (size_t)w;
            else
                saw_again = true;
            if (xport_wants(s.x) & LOOP_WRITE)
                saw_want_write = true;
        }
        /* read only now and then, so the socket fills */
        if (saw_again || sent == total) {
            client_step(&c);
            REQUIRE(xport_flush(s.x) != XPORT_ERROR);
        }
    }
    CHECK(saw_again && saw_want_write);
    CHECK(c.got_len == total && memcmp(c.got, data, total) == 0);
    CHECK_EQ_INT(xport_flush(s.x), 0);
    CHECK_EQ_INT(xport_wants(s.x), 0);
    free(data);
    server_free(&s);
    client_free(&c);
    tls_server_free(srv);
}

/* Many full handshakes in a row, each torn down: no state is left behind (ASan and valgrind
 * check the memory side). */
static void test_many_handshakes(void)
{
    char id[65];
    NEED_SETUP();
    tls_server *srv = server_new(TLS_CLIENT_AUTH_REQUIRED, NULL);
    REQUIRE(srv != NULL);
    int ok = 0;
    for (int i = 0; i < 200; i++)
        ok += exchange(srv, i % 2 ? "node" : "node_rsa", NULL, 10, id, NULL, 0);
    CHECK_EQ_INT(ok, 200);
    tls_server_free(srv);
}

static void test_loading_errors_name_the_file(void)
{
    char cert[160], key[160], other[160], err[512];
    NEED_SETUP();
    snprintf(cert, sizeof cert, "%s/relay.crt.pem", dir);
    snprintf(key, sizeof key, "%s/relay.key.pem", dir);
    REQUIRE(h_sh("true", NULL, 0, 5000) == 0);

    CHECK(tls_server_new("/nonexistent/cert.pem", key, TLS_CLIENT_AUTH_REQUIRED, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "cannot read /nonexistent/cert.pem") != NULL);
    CHECK(tls_server_new(cert, "/nonexistent/key.pem", TLS_CLIENT_AUTH_REQUIRED, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "cannot read /nonexistent/key.pem") != NULL);
    /* a key where the certificate belongs, and the other way round */
    CHECK(tls_server_new(key, key, TLS_CLIENT_AUTH_REQUIRED, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "holds no PEM certificate") != NULL && strstr(err, key) != NULL);
    CHECK(tls_server_new(cert, cert, TLS_CLIENT_AUTH_REQUIRED, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "holds no PEM private key") != NULL && strstr(err, cert) != NULL);
    /* another key */
    snprintf(other, sizeof other, "%s/node.key.pem", dir);
    CHECK(tls_server_new(cert, other, TLS_CLIENT_AUTH_REQUIRED, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "does not match the first certificate") != NULL);
    snprintf(other, sizeof other, "%s/node_rsa.key.pem", dir);
    CHECK(tls_server_new(cert, other, TLS_CLIENT_AUTH_REQUIRED, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "does not match") != NULL);
    /* not PEM at all, a broken PEM body, an encrypted key, a CA file without certificates */
    snprintf(other, sizeof other, "%s/relay.crt.der", dir);
    CHECK(tls_server_new(other, key, TLS_CLIENT_AUTH_REQUIRED, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, other) != NULL);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cd %s && printf -- '-----BEGIN CERTIFICATE-----\\nMIIB!!!\\n-----END CERTIFICATE-----\\n' > broken.pem && "
             "openssl pkey -in relay.key.pem -aes128 -passout pass:x -out enc.key.pem", dir);
    REQUIRE(h_sh(cmd, NULL, 0, 10000) == 0);
    snprintf(other, sizeof other, "%s/broken.pem", dir);
    CHECK(tls_server_new(other, key, TLS_CLIENT_AUTH_REQUIRED, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, other) != NULL);
    snprintf(other, sizeof other, "%s/enc.key.pem", dir);
    CHECK(tls_server_new(cert, other, TLS_CLIENT_AUTH_REQUIRED, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "encrypted private key") != NULL);
    CHECK(tls_server_new(cert, key, TLS_CLIENT_AUTH_REQUIRED, key, err, sizeof err) == NULL);
    CHECK(strstr(err, "holds no PEM certificate") != NULL);

    /* The key formats operators have: PKCS#8, PKCS#1 RSA, SEC1 EC; a chain with its CA. */
    snprintf(cmd, sizeof cmd, "cd %s && openssl pkey -in relay.key.pem -traditional -out sec1.key.pem && "
             "openssl pkey -in relay_rsa.key.pem -traditional -out pkcs1.key.pem && "
             "grep -q 'BEGIN EC PRIVATE KEY' sec1.key.pem && grep -q 'BEGIN RSA PRIVATE KEY' pkcs1.key.pem && "
             "cat issued.crt.pem dig_ca.crt.pem > chain.pem", dir);
    REQUIRE(h_sh(cmd, NULL, 0, 10000) == 0);
    tls_server *s;
    snprintf(other, sizeof other, "%s/sec1.key.pem", dir);
    CHECK((s = tls_server_new(cert, other, TLS_CLIENT_AUTH_REQUIRED, NULL, err, sizeof err)) != NULL);
    tls_server_free(s);
    snprintf(cert, sizeof cert, "%s/relay_rsa.crt.pem", dir);
    snprintf(other, sizeof other, "%s/pkcs1.key.pem", dir);
    CHECK((s = tls_server_new(cert, other, TLS_CLIENT_AUTH_REQUIRED, NULL, err, sizeof err)) != NULL);
    tls_server_free(s);
    snprintf(cert, sizeof cert, "%s/chain.pem", dir);
    snprintf(other, sizeof other, "%s/issued.key.pem", dir);
    CHECK((s = tls_server_new(cert, other, TLS_CLIENT_AUTH_NONE, NULL, err, sizeof err)) != NULL);
    tls_server_free(s);
}

int main(void)
{
    RUN(test_required_binds_the_proven_key);
    RUN(test_required_refuses_clients_without_a_good_certificate);
    RUN(test_optional_and_none);
    RUN(test_client_ca);
    RUN(test_certificate_without_its_key_is_refused);
    RUN(test_resumed_session_keeps_its_identity);
    RUN(test_prefix_is_fed_first);
    RUN(test_garbage_fails);
    RUN(test_trickled_and_truncated_handshakes);
    RUN(test_records_without_data_are_bounded);
    RUN(test_oversized_handshakes);
    RUN(test_no_renegotiation);
    RUN(test_backpressure_loses_nothing);
    RUN(test_many_handshakes);
    RUN(test_loading_errors_name_the_file);
    if (dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        h_sh(cmd, NULL, 0, 10000);
    }
    return test_finish();
}

#else

static void test_tls_not_built_in(void) { SKIP("libbearssl-dev not installed (TLS not built in)"); }

int main(void)
{
    RUN(test_tls_not_built_in);
    return test_finish();
}

#endif
