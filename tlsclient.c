/* The probe's TLS client (tlsclient.h) on BearSSL's client engine, driven with blocking sends and
 * receives that each get what is left of the caller's deadline. The relay's chain goes through
 * BearSSL's minimal X.509 validator against the --probe-ca anchors; our own certificate, when
 * given, is offered for client authentication with its key (ECDSA or RSA). */
#include "tlsclient.h"

#include "buildinfo.h"

#include <stdio.h>

#if DIG_HAVE_TLS

#include "client.h"
#include "hash.h"
#include "tlscreds.h"

#include <stdlib.h>
#include <string.h>

struct tls_client {
    br_ssl_client_context cc;
    br_x509_minimal_context xc;
    tls_creds creds;
    socket_t s;
    unsigned char io[BR_SSL_BUFSIZE_BIDI];
};

/* PUMP_EOF: the stream ended or was reset (a relay that refuses us after the handshake closes
 * with our records unread, which arrives as a reset). */
enum pump_result { PUMP_READY, PUMP_CLOSED, PUMP_EOF, PUMP_TIMEOUT };

static unsigned remaining(uint64_t deadline)
{
    uint64_t now = compat_monotonic_ms();
    return now < deadline ? (unsigned)(deadline - now) : 0;
}

/* Sends every record the engine has ready. */
static enum pump_result flush_records(tls_client *t, uint64_t deadline)
{
    br_ssl_engine_context *eng = &t->cc.eng;
    unsigned st;
    while ((st = br_ssl_engine_current_state(eng)) & BR_SSL_SENDREC) {
        size_t len;
        unsigned char *buf = br_ssl_engine_sendrec_buf(eng, &len);
        unsigned left = remaining(deadline);
        if (left == 0)
            return PUMP_TIMEOUT;
        if (!client_send_all(t->s, buf, len, left))
            return remaining(deadline) == 0 ? PUMP_TIMEOUT : PUMP_EOF;
        br_ssl_engine_sendrec_ack(eng, len);
    }
    return st & BR_SSL_CLOSED ? PUMP_CLOSED : PUMP_READY;
}

/* Moves records both ways until the engine offers `want` (BR_SSL_SENDAPP or BR_SSL_RECVAPP). */
static enum pump_result pump(tls_client *t, unsigned want, uint64_t deadline)
{
    br_ssl_engine_context *eng = &t->cc.eng;
    for (;;) {
        enum pump_result r = flush_records(t, deadline);
        if (r != PUMP_READY)
            return r;
        unsigned st = br_ssl_engine_current_state(eng);
        if (st & want)
            return PUMP_READY;
        if (!(st & BR_SSL_RECVREC))
            return PUMP_CLOSED;
        size_t len;
        unsigned char *buf = br_ssl_engine_recvrec_buf(eng, &len);
        unsigned left = remaining(deadline);
        long got = left > 0 ? client_recv(t->s, buf, len, left) : -1;
        if (got == 0)
            return PUMP_EOF;
        if (got < 0)
            return remaining(deadline) == 0 ? PUMP_TIMEOUT : PUMP_EOF;
        br_ssl_engine_recvrec_ack(eng, (size_t)got);
    }
}

static void describe_failure(const tls_client *t, const tls_client_opts *o, enum pump_result r,
                             unsigned timeout_ms, char *err, size_t errlen)
{
    int e = br_ssl_engine_last_error(&t->cc.eng);
    if (r == PUMP_TIMEOUT)
        snprintf(err, errlen, "no TLS handshake within %u ms", timeout_ms);
    else if (e == BR_ERR_X509_NOT_TRUSTED)
        snprintf(err, errlen, "the relay's certificate does not lead to a certificate in %s",
                 o->ca_path);
    else if (e == BR_ERR_X509_BAD_SERVER_NAME)
        snprintf(err, errlen, "the relay's certificate does not name %s", o->server_name);
    else if (e == BR_ERR_X509_EXPIRED)
        snprintf(err, errlen, "the relay's certificate is expired or not yet valid");
    else if (e >= BR_ERR_RECV_FATAL_ALERT && e < BR_ERR_RECV_FATAL_ALERT + 256)
        snprintf(err, errlen, "the relay refused the TLS handshake (alert %d)%s",
                 e - BR_ERR_RECV_FATAL_ALERT,
                 t->creds.chain_len == 0 ? "; a relay with --tls-client-auth required wants a "
                                           "client certificate: give --tls-cert and --tls-key"
                                         : "");
    else if (e == 0)
        snprintf(err, errlen, "the relay closed the connection during the TLS handshake%s",
                 t->creds.chain_len == 0 ? " (does it want a client certificate? give --tls-cert "
                                           "and --tls-key)"
                                         : "");
    else
        snprintf(err, errlen, "the TLS handshake failed (BearSSL error %d)", e);
}

tls_client *tls_client_open(socket_t s, const tls_client_opts *o, unsigned timeout_ms, char *err,
                            size_t errlen)
{
    uint64_t deadline = compat_monotonic_ms() + timeout_ms;
    unsigned char seed[32];
    tls_client *t = calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->s = s;
    if (!tls_creds_load(&t->creds, o->cert_path, o->key_path, o->ca_path, err, errlen)) {
        free(t);
        return NULL;
    }
    if (t->creds.n_anchors == 0) {
        snprintf(err, errlen, "%s holds no certificate to trust the relay's by", o->ca_path);
        tls_client_close(t, 0);
        return NULL;
    }
    br_ssl_client_init_full(&t->cc, &t->xc, t->creds.anchors, t->creds.n_anchors);
    br_ssl_engine_context *eng = &t->cc.eng;
    br_ssl_engine_set_versions(eng, BR_TLS12, BR_TLS12);
    if (t->creds.chain_len > 0 && t->creds.key_type == BR_KEYTYPE_EC)
        br_ssl_client_set_single_ec(&t->cc, t->creds.chain, t->creds.chain_len,
                                    br_skey_decoder_get_ec(&t->creds.key), BR_KEYTYPE_SIGN,
                                    BR_KEYTYPE_EC, br_ec_get_default(),
                                    br_ecdsa_sign_asn1_get_default());
    else if (t->creds.chain_len > 0)
        br_ssl_client_set_single_rsa(&t->cc, t->creds.chain, t->creds.chain_len,
                                     br_skey_decoder_get_rsa(&t->creds.key),
                                     br_rsa_pkcs1_sign_get_default());
    br_ssl_engine_set_buffer(eng, t->io, sizeof t->io, 1);
    compat_random(seed, sizeof seed);
    br_ssl_engine_inject_entropy(eng, seed, sizeof seed);
    if (!br_ssl_client_reset(&t->cc, o->server_name, 0)) {
        snprintf(err, errlen, "cannot start a TLS session (BearSSL error %d)",
                 br_ssl_engine_last_error(eng));
        tls_client_close(t, 0);
        return NULL;
    }
    enum pump_result r = pump(t, BR_SSL_SENDAPP, deadline);
    if (r != PUMP_READY) {
        describe_failure(t, o, r, timeout_ms, err, errlen);
        tls_client_close(t, 0);
        return NULL;
    }
    return t;
}

bool tls_client_peer_id(const tls_client *t, char out[65])
{
    unsigned char digest[32];
    if (t->creds.chain_len == 0 ||
        !tls_spki_digest(t->creds.chain[0].data, t->creds.chain[0].data_len, digest))
        return false;
    hex_encode(digest, sizeof digest, out);
    return true;
}

bool tls_client_send_all(tls_client *t, const void *buf, size_t len, unsigned timeout_ms)
{
    uint64_t deadline = compat_monotonic_ms() + timeout_ms;
    br_ssl_engine_context *eng = &t->cc.eng;
    const unsigned char *p = buf;
    while (len > 0) {
        size_t room;
        if (pump(t, BR_SSL_SENDAPP, deadline) != PUMP_READY)
            return false;
        unsigned char *out = br_ssl_engine_sendapp_buf(eng, &room);
        size_t n = len < room ? len : room;
        memcpy(out, p, n);
        br_ssl_engine_sendapp_ack(eng, n);
        p += n;
        len -= n;
    }
    br_ssl_engine_flush(eng, 0);
    return flush_records(t, deadline) == PUMP_READY;
}

long tls_client_recv(tls_client *t, void *buf, size_t cap, unsigned timeout_ms)
{
    br_ssl_engine_context *eng = &t->cc.eng;
    enum pump_result r = pump(t, BR_SSL_RECVAPP, compat_monotonic_ms() + timeout_ms);
    if (r == PUMP_READY) {
        size_t len;
        unsigned char *in = br_ssl_engine_recvapp_buf(eng, &len);
        size_t n = len < cap ? len : cap;
        memcpy(buf, in, n);
        br_ssl_engine_recvapp_ack(eng, n);
        return (long)n;
    }
    /* A close_notify, or the end of the stream, is the end of the session. */
    return (r == PUMP_CLOSED || r == PUMP_EOF) && br_ssl_engine_last_error(eng) == BR_ERR_OK ? 0
                                                                                            : -1;
}

void tls_client_close(tls_client *t, unsigned timeout_ms)
{
    if (t == NULL)
        return;
    if (timeout_ms > 0) {
        br_ssl_engine_close(&t->cc.eng);
        flush_records(t, compat_monotonic_ms() + timeout_ms);
    }
    tls_creds_free(&t->creds);
    free(t);
}

#else /* !DIG_HAVE_TLS */

tls_client *tls_client_open(socket_t s, const tls_client_opts *o, unsigned timeout_ms, char *err,
                            size_t errlen)
{
    (void)s;
    (void)o;
    (void)timeout_ms;
    snprintf(err, errlen, "TLS is not built in to this dig-relay (it was built without BearSSL)");
    return NULL;
}

bool tls_client_peer_id(const tls_client *t, char out[65])
{
    (void)t;
    (void)out;
    return false;
}

bool tls_client_send_all(tls_client *t, const void *buf, size_t len, unsigned timeout_ms)
{
    (void)t;
    (void)buf;
    (void)len;
    (void)timeout_ms;
    return false;
}

long tls_client_recv(tls_client *t, void *buf, size_t cap, unsigned timeout_ms)
{
    (void)t;
    (void)buf;
    (void)cap;
    (void)timeout_ms;
    return -1;
}

void tls_client_close(tls_client *t, unsigned timeout_ms)
{
    (void)t;
    (void)timeout_ms;
}

#endif
