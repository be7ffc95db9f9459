/* The TLS transport (tls.h) on BearSSL's engine, driven without ever blocking: every call moves
 * records between the socket and the engine until the engine or the socket has to wait.
 *
 * Client certificates go through our own X.509 policy (peer_check below) instead of BearSSL's
 * chain validator: without --tls-client-ca no chain is checked (a DIG node's key is its
 * identity), but the leaf must parse as X.509 and carry an ECDSA P-256/P-384 or RSA 2048-4096
 * key, and the engine then verifies the client's CertificateVerify signature with that key:
 * the proof of possession. With --tls-client-ca, BearSSL's minimal validator also checks the
 * chain against those anchors. The peer id is computed from the leaf's SPKI bytes (spki.c).
 *
 * Memory: one allocation per connection holds the engine (about 4 KiB), a 16.3 KiB input buffer
 * (a client may send full-size records) and a smaller output buffer (records we send carry at
 * most TLS_OUT_FRAGMENT bytes). Certificate checking state lives only during the handshake. */
#include "tls.h"

#include <stdio.h>

#if DIG_HAVE_TLS

#include "hash.h"
#include "log.h"
#include "loop.h"
#include "tlscreds.h"

#include <stdlib.h>
#include <string.h>

#define TLS_OUT_FRAGMENT 4096
#define TLS_IN_BUF BR_SSL_BUFSIZE_INPUT
#define TLS_OUT_BUF (TLS_OUT_FRAGMENT + 85)   /* BearSSL's largest per-record overhead */

#define LEAF_MAX 8192               /* largest client leaf certificate; DIG's are ~500 bytes */
/* Raw bytes a connection may send without producing one application byte: the whole handshake
 * (a long client chain included) fits well inside, and so does one full record being
 * assembled. Past it the peer is sending nothing but handshake or empty records. */
#define QUIET_MAX (64u * 1024)
#define CACHE_SLOTS 1024            /* session cache entries (power of two) */
#define CACHE_LIFETIME_MS (3600u * 1000)

/* ---- shared server state ------------------------------------------------------------------ */

typedef struct {
    br_ssl_session_parameters params;
    unsigned char peer[32];        /* SHA-256 of the client's SPKI, when has_peer */
    bool used, has_peer;
    uint64_t saved_ms;
} cache_slot;

/* BearSSL's session cache class with the client identity kept beside the session: a resumed
 * handshake carries no certificate, so the peer id must come from the session it resumes. */
typedef struct {
    const br_ssl_session_cache_class *vtable;
    cache_slot *slots;
} session_cache;

struct tls_server {
    enum tls_client_auth auth;
    tls_creds creds;
    br_x500_name any_issuer;       /* asked for when no CA is set: an empty DN */
    uint16_t suites[3];
    session_cache cache;
    br_hmac_drbg_context drbg;     /* per-connection entropy */
};

/* ---- one connection ----------------------------------------------------------------------- */

enum { TS_HANDSHAKE, TS_OPEN, TS_FAILED };

typedef struct tls_conn tls_conn;

/* Certificate checking state, allocated when a client starts sending a chain. */
typedef struct {
    br_x509_decoder_context leaf;
    br_x509_minimal_context *chain;   /* with --tls-client-ca */
    unsigned char *der;               /* the leaf certificate as received */
    size_t der_len, der_cap;
    uint32_t certs;                   /* certificates seen so far */
    unsigned err;                     /* the first problem found (a BR_ERR_X509_* code) */
    unsigned char digest[32];         /* SHA-256 of the leaf's SubjectPublicKeyInfo */
} peer_check;

struct tls_conn {
    xport base;
    tls_server *srv;
    br_ssl_server_context sc;
    const br_x509_class *x509;        /* the engine's X.509 object: points at peer_vtable */
    peer_check *pc;
    xport_prefix prefix;
    size_t quiet;                     /* raw bytes since the last application byte */
    int state;
    bool presented;                   /* the client sent a non-empty certificate chain */
    bool identified;                  /* ... and it passed: peer and peer_id are set */
    bool closing;                     /* close_notify is queued (end_output) */
    unsigned char peer[32];
    char peer_id[65];
    unsigned char io[];               /* TLS_IN_BUF input, then TLS_OUT_BUF output */
};

static tls_conn *conn_of_x509(const br_x509_class *const *ctx)
{
    return (tls_conn *)(void *)((const char *)ctx - offsetof(tls_conn, x509));
}

static tls_conn *conn_of_server(const br_ssl_server_context *sc)
{
    return (tls_conn *)(void *)((const char *)sc - offsetof(tls_conn, sc));
}

static void set_peer(tls_conn *t, const unsigned char digest[32])
{
    memcpy(t->peer, digest, 32);
    hex_encode(digest, 32, t->peer_id);
    t->identified = true;
}

/* ---- client certificate policy ------------------------------------------------------------ */

/* Only the key types DIG nodes and ordinary clients use: ECDSA on P-256 or P-384, RSA of 2048
 * to 4096 bits. BearSSL verifies CertificateVerify signatures with each of them. */
static unsigned check_client_key(const br_x509_pkey *pk)
{
    if (pk->key_type == BR_KEYTYPE_EC) {
        if (pk->key.ec.curve != BR_EC_secp256r1 && pk->key.ec.curve != BR_EC_secp384r1)
            return BR_ERR_X509_WRONG_KEY_TYPE;
        return 0;
    }
    if (pk->key_type == BR_KEYTYPE_RSA) {
        const unsigned char *n = pk->key.rsa.n;
        size_t len = pk->key.rsa.nlen, bits;
        while (len > 0 && *n == 0) {
            n++;
            len--;
        }
        if (len == 0)
            return BR_ERR_X509_WEAK_PUBLIC_KEY;
        bits = (len - 1) * 8;
        for (unsigned top = *n; top != 0; top >>= 1)
            bits++;
        return bits >= 2048 && bits <= 4096 ? 0 : BR_ERR_X509_WEAK_PUBLIC_KEY;
    }
    return BR_ERR_X509_WRONG_KEY_TYPE;
}

static void pc_start_chain(const br_x509_class **ctx, const char *server_name)
{
    tls_conn *t = conn_of_x509(ctx);
    peer_check *pc = t->pc;

    (void)server_name;
    t->presented = true;
    if (pc == NULL) {
        pc = calloc(1, sizeof *pc);
        if (pc != NULL && t->srv->creds.n_anchors > 0) {
            pc->chain = malloc(sizeof *pc->chain);
            if (pc->chain == NULL) {
                free(pc);
                pc = NULL;
            }
        }
        t->pc = pc;
        if (pc == NULL)
            return;   /* end_chain reports it */
    }
    pc->certs = 0;
    pc->err = 0;
    pc->der_len = 0;
    if (pc->chain != NULL) {
        br_x509_minimal_init_full(pc->chain, t->srv->creds.anchors, t->srv->creds.n_anchors);
        pc->chain->vtable->start_chain(&pc->chain->vtable, NULL);
    }
}

static void pc_start_cert(const br_x509_class **ctx, uint32_t length)
{
    peer_check *pc = conn_of_x509(ctx)->pc;
    if (pc == NULL)
        return;
    if (pc->certs == 0 && pc->err == 0) {
        if (length > LEAF_MAX) {
            pc->err = BR_ERR_X509_LIMIT_EXCEEDED;
        } else {
            free(pc->der);
            pc->der = malloc(length ? length : 1);
            pc->der_cap = length;
            if (pc->der == NULL)
                pc->err = BR_ERR_X509_LIMIT_EXCEEDED;
        }
    }
    if (pc->chain != NULL)
        pc->chain->vtable->start_cert(&pc->chain->vtable, length);
}

static void pc_append(const br_x509_class **ctx, const unsigned char *buf, size_t len)
{
    peer_check *pc = conn_of_x509(ctx)->pc;
    if (pc == NULL)
        return;
    if (pc->certs == 0 && pc->err == 0) {
        if (len > pc->der_cap - pc->der_len) {
            pc->err = BR_ERR_X509_LIMIT_EXCEEDED;
        } else {
            memcpy(pc->der + pc->der_len, buf, len);
            pc->der_len += len;
        }
    }
    if (pc->chain != NULL)
        pc->chain->vtable->append(&pc->chain->vtable, buf, len);
}

/* The leaf is complete: it must decode as X.509, carry an allowed key, and give a peer id. */
static void pc_end_cert(const br_x509_class **ctx)
{
    tls_conn *t = conn_of_x509(ctx);
    peer_check *pc = t->pc;

    if (pc == NULL)
        return;
    if (pc->certs == 0 && pc->err == 0) {
        br_x509_decoder_init(&pc->leaf, NULL, NULL);
        br_x509_decoder_push(&pc->leaf, pc->der, pc->der_len);
        int e = br_x509_decoder_last_error(&pc->leaf);
        if (e != 0)
            pc->err = (unsigned)e;
        else if (pc->der_len != pc->der_cap || !tls_spki_digest(pc->der, pc->der_len, pc->digest))
            pc->err = BR_ERR_X509_INVALID_VALUE;
        else
            pc->err = check_client_key(br_x509_decoder_get_pkey(&pc->leaf));
    }
    pc->certs++;
    if (pc->chain != NULL)
        pc->chain->vtable->end_cert(&pc->chain->vtable);
}

/* A presented certificate that fails is fatal even under --tls-client-auth optional: the engine
 * would otherwise carry on as if none had been sent, and the client, which meant to prove an
 * identity, would be served without one. */
static unsigned pc_end_chain(const br_x509_class **ctx)
{
    tls_conn *t = conn_of_x509(ctx);
    peer_check *pc = t->pc;
    unsigned err;

    if (pc == NULL)
        err = BR_ERR_X509_LIMIT_EXCEEDED;
    else if (pc->err != 0)
        err = pc->err;
    else if (pc->certs == 0)
        err = BR_ERR_X509_EMPTY_CHAIN;
    else if (pc->chain != NULL)
        err = pc->chain->vtable->end_chain(&pc->chain->vtable);
    else
        err = 0;
    if (err != 0) {
        br_ssl_engine_remove_flags(&t->sc.eng, BR_OPT_TOLERATE_NO_CLIENT_AUTH);
        return err;
    }
    set_peer(t, pc->digest);
    return 0;
}

static const br_x509_pkey *pc_get_pkey(const br_x509_class *const *ctx, unsigned *usages)
{
    tls_conn *t = conn_of_x509(ctx);
    if (!t->identified || t->pc == NULL)
        return NULL;
    if (usages != NULL)
        *usages = BR_KEYTYPE_SIGN;
    return br_x509_decoder_get_pkey(&t->pc->leaf);
}

static const br_x509_class peer_vtable = {
    sizeof(tls_conn), pc_start_chain, pc_start_cert, pc_append, pc_end_cert, pc_end_chain,
    pc_get_pkey,
};

static void pc_free(tls_conn *t)
{
    if (t->pc != NULL) {
        free(t->pc->der);
        free(t->pc->chain);
        free(t->pc);
        t->pc = NULL;
    }
}

/* ---- session cache ------------------------------------------------------------------------ */

/* Session ids are 32 random bytes the server chose, so their first bytes index the table. */
static cache_slot *cache_slot_for(session_cache *c, const unsigned char *id)
{
    uint32_t h = (uint32_t)id[0] | (uint32_t)id[1] << 8 | (uint32_t)id[2] << 16 |
                 (uint32_t)id[3] << 24;
    return &c->slots[h & (CACHE_SLOTS - 1)];
}

static void cache_save(const br_ssl_session_cache_class **ctx, br_ssl_server_context *sc,
                       const br_ssl_session_parameters *params)
{
    session_cache *c = (session_cache *)(void *)ctx;
    tls_conn *t = conn_of_server(sc);
    cache_slot *s;

    if (params->session_id_len != 32)
        return;
    s = cache_slot_for(c, params->session_id);
    s->params = *params;
    s->used = true;
    s->has_peer = t->identified;
    if (t->identified)
        memcpy(s->peer, t->peer, 32);
    s->saved_ms = compat_monotonic_ms();
}

static int cache_load(const br_ssl_session_cache_class **ctx, br_ssl_server_context *sc,
                      br_ssl_session_parameters *params)
{
    session_cache *c = (session_cache *)(void *)ctx;
    tls_conn *t = conn_of_server(sc);
    cache_slot *s;

    if (params->session_id_len != 32)
        return 0;
    s = cache_slot_for(c, params->session_id);
    if (!s->used || memcmp(s->params.session_id, params->session_id, 32) != 0)
        return 0;
    if (compat_monotonic_ms() - s->saved_ms > CACHE_LIFETIME_MS) {
        s->used = false;
        return 0;
    }
    /* Under 'required' a session is only ever saved with an identity; checking again keeps a
     * resumption from ever being the way in without one. */
    if (!s->has_peer && t->srv->auth == TLS_CLIENT_AUTH_REQUIRED)
        return 0;
    *params = s->params;
    if (s->has_peer) {
        t->presented = true;
        set_peer(t, s->peer);
    }
    return 1;
}

static const br_ssl_session_cache_class cache_vtable = {
    sizeof(session_cache), cache_save, cache_load,
};

tls_server *tls_server_new(const char *cert_path, const char *key_path, enum tls_client_auth auth,
                           const char *client_ca_path, char *err, size_t errlen)
{
    static unsigned char empty_dn[] = {0x30, 0x00};
    tls_server *s = calloc(1, sizeof *s);
    unsigned char seed[32];
    bool ecdsa;

    if (s == NULL) {
        snprintf(err, errlen, "TLS: out of memory");
        return NULL;
    }
    s->auth = auth;
    if (!tls_creds_load(&s->creds, cert_path, key_path, client_ca_path, err, errlen)) {
        free(s);
        return NULL;
    }
    /* With no CA the client is asked for a certificate from any issuer: an empty DN in the
     * request's list (BearSSL only asks when the list is non-empty; clients that have a
     * certificate configured send it whatever the list says). */
    s->any_issuer.data = empty_dn;
    s->any_issuer.len = sizeof empty_dn;

    /* AES-GCM first where the CPU has AES instructions, ChaCha20-Poly1305 first elsewhere
     * (small routers): the faster of the two for this machine, both forward secret. */
    ecdsa = s->creds.key_type == BR_KEYTYPE_EC;
    bool aes_hw = br_aes_x86ni_ctr_get_vtable() != NULL || br_aes_pwr8_ctr_get_vtable() != NULL;
    uint16_t gcm128 = ecdsa ? BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                            : BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256;
    uint16_t gcm256 = ecdsa ? BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
                            : BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384;
    uint16_t chacha = ecdsa ? BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
                            : BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256;
    s->suites[0] = aes_hw ? gcm128 : chacha;
    s->suites[1] = aes_hw ? chacha : gcm128;
    s->suites[2] = gcm256;

    s->cache.vtable = &cache_vtable;
    s->cache.slots = calloc(CACHE_SLOTS, sizeof *s->cache.slots);
    if (s->cache.slots == NULL) {
        snprintf(err, errlen, "TLS: out of memory");
        tls_server_free(s);
        return NULL;
    }
    compat_random(seed, sizeof seed);
    br_hmac_drbg_init(&s->drbg, &br_sha256_vtable, seed, sizeof seed);
    return s;
}

void tls_server_free(tls_server *s)
{
    if (s == NULL)
        return;
    tls_creds_free(&s->creds);
    free(s->cache.slots);
    free(s);
}

/* ---- the transport ------------------------------------------------------------------------ */

static const char *engine_error_text(int err)
{
    static char other[48];
    if (err >= BR_ERR_RECV_FATAL_ALERT && err < BR_ERR_RECV_FATAL_ALERT + 256)
        return "the client sent a fatal alert";
    if (err >= BR_ERR_SEND_FATAL_ALERT && err < BR_ERR_SEND_FATAL_ALERT + 256)
        return "the relay sent a fatal alert";
    switch (err) {
    case BR_ERR_NO_CLIENT_AUTH: return "the client presented no certificate";
    case BR_ERR_BAD_SIGNATURE: return "the client's CertificateVerify did not verify";
    case BR_ERR_UNSUPPORTED_VERSION: return "not TLS 1.2 (another version, or not TLS at all)";
    case BR_ERR_BAD_VERSION: return "not TLS (bad record version)";
    case BR_ERR_BAD_CIPHER_SUITE: return "no cipher suite in common";
    case BR_ERR_BAD_MAC: return "a record failed authentication";
    case BR_ERR_X509_WRONG_KEY_TYPE: return "the client certificate's key type is not allowed";
    case BR_ERR_X509_WEAK_PUBLIC_KEY: return "the client certificate's RSA key size is not allowed";
    case BR_ERR_X509_NOT_TRUSTED: return "the client chain does not lead to --tls-client-ca";
    case BR_ERR_X509_EXPIRED: return "the client certificate is expired or not yet valid";
    case BR_ERR_X509_LIMIT_EXCEEDED: return "the client certificate is too large";
    default:
        if (err >= BR_ERR_X509_OK && err < BR_ERR_X509_OK + 64)
            snprintf(other, sizeof other, "the client certificate is invalid (BearSSL %d)", err);
        else
            snprintf(other, sizeof other, "TLS error (BearSSL %d)", err);
        return other;
    }
}

static long fail(tls_conn *t, const char *why)
{
    if (t->state != TS_FAILED) {
        t->state = TS_FAILED;
        log_debug("tls: connection on socket %lld failed: %s", (long long)t->base.fd, why);
    }
    return XPORT_ERROR;
}

/* Sends the records the engine has ready: 0 when none are left, XPORT_AGAIN, XPORT_ERROR. */
static int send_records(tls_conn *t)
{
    br_ssl_engine_context *eng = &t->sc.eng;
    for (;;) {
        size_t len;
        unsigned char *rec = br_ssl_engine_sendrec_buf(eng, &len);
        ssize_compat_t n;
        if (rec == NULL)
            return 0;
        n = compat_send(t->base.fd, rec, len);
        if (n > 0) {
            br_ssl_engine_sendrec_ack(eng, (size_t)n);
            continue;
        }
        int e = compat_sock_errno();
        if (n < 0 && compat_interrupted(e))
            continue;
        if (n < 0 && compat_would_block(e))
            return XPORT_AGAIN;
        return XPORT_ERROR;
    }
}

/* The engine moved to application data: the client policy gets its last word, and the
 * certificate checking state goes. */
static bool finish_handshake(tls_conn *t)
{
    if (t->state != TS_HANDSHAKE)
        return t->state == TS_OPEN;
    pc_free(t);
    br_ssl_engine_set_x509(&t->sc.eng, NULL);
    if (t->presented && !t->identified) {
        fail(t, "the client's certificate gave no peer id");
        return false;
    }
    if (t->srv->auth == TLS_CLIENT_AUTH_REQUIRED && !t->identified) {
        fail(t, engine_error_text(BR_ERR_NO_CLIENT_AUTH));
        return false;
    }
    t->state = TS_OPEN;
    return true;
}

/* Engine closed: 0 for an orderly close_notify, XPORT_ERROR otherwise. */
static long closed(tls_conn *t)
{
    int err = br_ssl_engine_last_error(&t->sc.eng);
    if (err == BR_ERR_OK)
        return 0;
    return fail(t, engine_error_text(err));
}

/* Moves received bytes into the engine's record buffer: the prefix first, then the socket. */
static long feed(tls_conn *t, unsigned char *dst, size_t room)
{
    if (xport_prefix_pending(&t->prefix))
        return (long)xport_prefix_take(&t->prefix, dst, room);
    return xport_recv(t->base.fd, dst, room);
}

/* Decrypts into buf until it is full or the socket has nothing more, so a short read means what
 * it means on plain TCP: the socket is drained (or the next call reports its end or error). */
static long tls_read(xport *x, void *buf, size_t len)
{
    tls_conn *t = (tls_conn *)x;
    br_ssl_engine_context *eng = &t->sc.eng;
    size_t done = 0;
    long end;

    for (;;) {
        size_t n;
        unsigned char *p;
        unsigned st;

        if (t->state == TS_FAILED) {
            end = XPORT_ERROR;
            break;
        }
        p = br_ssl_engine_recvapp_buf(eng, &n);
        if (p != NULL) {
            if (!finish_handshake(t)) {
                end = XPORT_ERROR;
                break;
            }
            if (n > len - done)
                n = len - done;
            memcpy((unsigned char *)buf + done, p, n);
            br_ssl_engine_recvapp_ack(eng, n);
            t->quiet = 0;
            done += n;
            if (done == len)
                return (long)done;
            continue;
        }
        st = br_ssl_engine_current_state(eng);
        if (st & BR_SSL_CLOSED) {
            end = closed(t);
            break;
        }
        if ((st & BR_SSL_SENDAPP) && !finish_handshake(t)) {
            end = XPORT_ERROR;
            break;
        }
        if (st & BR_SSL_SENDREC) {
            int r = send_records(t);
            if (r == XPORT_ERROR) {
                end = fail(t, "send failed");
                break;
            }
            if (r == 0)
                continue;   /* sending may have let the engine move on */
        }
        p = br_ssl_engine_recvrec_buf(eng, &n);
        if (p == NULL) {
            end = XPORT_AGAIN;   /* our records must leave first: wants() asks for write */
            break;
        }
        long got = feed(t, p, n);
        if (got == XPORT_AGAIN) {
            end = XPORT_AGAIN;
            break;
        }
        if (got == XPORT_ERROR) {
            end = fail(t, "receive failed");
            break;
        }
        if (got == 0) {
            /* Closed without close_notify: after the handshake, the end of the stream all the
             * same (the relay's framing tells a cut message from a whole one). */
            end = t->state == TS_HANDSHAKE ? fail(t, "the client closed during the handshake") : 0;
            break;
        }
        t->quiet += (size_t)got;
        if (t->quiet > QUIET_MAX) {
            end = fail(t, t->state == TS_HANDSHAKE ? "handshake larger than 64 KiB"
                                                   : "64 KiB of records without data");
            break;
        }
        br_ssl_engine_recvrec_ack(eng, (size_t)got);
    }
    return done > 0 ? (long)done : end;
}

static long tls_writev(xport *x, const struct compat_iov *iov, int n)
{
    tls_conn *t = (tls_conn *)x;
    br_ssl_engine_context *eng = &t->sc.eng;
    size_t taken = 0, off = 0;
    int i = 0;

    if (t->state == TS_FAILED)
        return XPORT_ERROR;
    while (i < n && iov[i].len == 0)
        i++;
    if (i == n)
        return 0;
    for (;;) {
        size_t room, copied = 0;
        unsigned char *dst;
        if (send_records(t) == XPORT_ERROR)
            return fail(t, "send failed");
        dst = br_ssl_engine_sendapp_buf(eng, &room);
        if (dst == NULL)
            break;   /* a record is waiting for the socket, or the handshake is not done */
        if (!finish_handshake(t))
            return XPORT_ERROR;
        while (copied < room && i < n) {
            size_t k = iov[i].len - off;
            if (k > room - copied)
                k = room - copied;
            memcpy(dst + copied, (const unsigned char *)iov[i].base + off, k);
            copied += k;
            off += k;
            if (off == iov[i].len) {
                off = 0;
                for (i++; i < n && iov[i].len == 0; i++)
                    ;
            }
        }
        br_ssl_engine_sendapp_ack(eng, copied);   /* a full buffer becomes a record by itself */
        taken += copied;
        if (i == n) {
            br_ssl_engine_flush(eng, 0);
            if (send_records(t) == XPORT_ERROR)
                return fail(t, "send failed");
            break;
        }
    }
    if (taken > 0)
        return (long)taken;
    if (br_ssl_engine_current_state(eng) & BR_SSL_CLOSED) {
        (void)closed(t);
        return fail(t, "write after the connection closed");
    }
    return XPORT_AGAIN;
}

static int tls_flush(xport *x)
{
    tls_conn *t = (tls_conn *)x;
    int r;
    if (t->state == TS_FAILED)
        return XPORT_ERROR;
    r = send_records(t);
    if (r == XPORT_ERROR)
        return (int)fail(t, "send failed");
    return r;
}

static bool tls_has_buffered_input(const xport *x)
{
    const tls_conn *t = (const tls_conn *)x;
    size_t n;
    if (t->state == TS_FAILED)
        return false;
    return xport_prefix_pending(&t->prefix) || br_ssl_engine_recvapp_buf(&t->sc.eng, &n) != NULL;
}

static int tls_wants(const xport *x)
{
    const tls_conn *t = (const tls_conn *)x;
    unsigned st;
    int w = 0;
    if (t->state == TS_FAILED)
        return 0;
    st = br_ssl_engine_current_state(&t->sc.eng);
    if (st & BR_SSL_SENDREC)
        w |= LOOP_WRITE;
    if (t->state == TS_HANDSHAKE && (st & BR_SSL_RECVREC))
        w |= LOOP_READ;
    return w;
}

static const char *tls_peer_identity(const xport *x)
{
    const tls_conn *t = (const tls_conn *)x;
    return t->state == TS_OPEN && t->identified ? t->peer_id : NULL;
}

/* The close_notify goes out before the socket's sending side is shut: a client that checks for
 * it (as it should, to tell the end of the session from a cut) sees an orderly end. */
static int tls_end_output(xport *x)
{
    tls_conn *t = (tls_conn *)x;
    if (t->state == TS_OPEN) {
        if (!t->closing) {
            br_ssl_engine_close(&t->sc.eng);
            t->closing = true;
        }
        int r = send_records(t);
        if (r != 0)
            return r;
    }
    compat_shutdown_send(x->fd);
    return 0;
}

/* Without end_output first (a connection dropped at once), a close_notify goes out if the
 * socket takes it at once; nothing waits for it. */
static void tls_close(xport *x)
{
    tls_conn *t = (tls_conn *)x;
    if (t->state == TS_OPEN && !t->closing) {
        br_ssl_engine_close(&t->sc.eng);
        (void)send_records(t);
    }
    compat_close(x->fd);
    pc_free(t);
    xport_prefix_free(&t->prefix);
    free(t);
}

static const xport_ops tls_ops = {
    "tls", tls_read, tls_writev, tls_flush, tls_has_buffered_input, tls_wants, tls_peer_identity,
    tls_end_output, tls_close,
};

xport *tls_open(void *ctx, socket_t fd, const void *prefix, size_t prefix_len)
{
    tls_server *s = ctx;
    tls_conn *t = malloc(sizeof *t + TLS_IN_BUF + TLS_OUT_BUF);
    br_ssl_server_context *sc;
    br_ssl_engine_context *eng;
    unsigned char entropy[32];

    if (t == NULL)
        return NULL;
    memset(t, 0, sizeof *t);
    t->base.ops = &tls_ops;
    t->base.fd = fd;
    t->srv = s;
    t->state = TS_HANDSHAKE;
    if (!xport_prefix_init(&t->prefix, prefix, prefix_len)) {
        free(t);
        return NULL;
    }

    sc = &t->sc;
    eng = &sc->eng;
    br_ssl_server_zero(sc);
    br_ssl_engine_set_versions(eng, BR_TLS12, BR_TLS12);
    br_ssl_engine_set_suites(eng, s->suites, sizeof s->suites / sizeof s->suites[0]);
    br_ssl_engine_set_hash(eng, br_sha256_ID, &br_sha256_vtable);
    br_ssl_engine_set_hash(eng, br_sha384_ID, &br_sha384_vtable);
    br_ssl_engine_set_hash(eng, br_sha512_ID, &br_sha512_vtable);
    br_ssl_engine_set_prf_sha256(eng, &br_tls12_sha256_prf);
    br_ssl_engine_set_prf_sha384(eng, &br_tls12_sha384_prf);
    br_ssl_engine_set_default_aes_gcm(eng);
    br_ssl_engine_set_default_chapol(eng);
    br_ssl_engine_set_default_ec(eng);
    br_ssl_engine_set_default_rsavrfy(eng);
    br_ssl_engine_set_default_ecdsa(eng);
    const tls_creds *cr = &s->creds;
    if (cr->key_type == BR_KEYTYPE_EC)
        br_ssl_server_set_single_ec(sc, cr->chain, cr->chain_len, br_skey_decoder_get_ec(&cr->key),
                                    BR_KEYTYPE_SIGN, BR_KEYTYPE_EC, br_ssl_engine_get_ec(eng),
                                    br_ecdsa_sign_asn1_get_default());
    else
        br_ssl_server_set_single_rsa(sc, cr->chain, cr->chain_len, br_skey_decoder_get_rsa(&cr->key),
                                     BR_KEYTYPE_SIGN, br_rsa_private_get_default(),
                                     br_rsa_pkcs1_sign_get_default());
    uint32_t flags = BR_OPT_ENFORCE_SERVER_PREFERENCES | BR_OPT_NO_RENEGOTIATION;
    if (s->auth != TLS_CLIENT_AUTH_NONE) {
        t->x509 = &peer_vtable;
        br_ssl_engine_set_x509(eng, &t->x509);
        if (cr->n_anchors > 0)
            br_ssl_server_set_trust_anchor_names_alt(sc, cr->anchors, cr->n_anchors);
        else
            br_ssl_server_set_trust_anchor_names(sc, &s->any_issuer, 1);
        if (s->auth == TLS_CLIENT_AUTH_OPTIONAL)
            flags |= BR_OPT_TOLERATE_NO_CLIENT_AUTH;
    }
    br_ssl_engine_set_all_flags(eng, flags);
    br_ssl_server_set_cache(sc, &s->cache.vtable);
    br_ssl_engine_set_buffers_bidi(eng, t->io, TLS_IN_BUF, t->io + TLS_IN_BUF, TLS_OUT_BUF);
    br_hmac_drbg_generate(&s->drbg, entropy, sizeof entropy);
    br_ssl_engine_inject_entropy(eng, entropy, sizeof entropy);
    if (!br_ssl_server_reset(sc)) {
        xport_prefix_free(&t->prefix);
        free(t);
        return NULL;
    }
    return &t->base;
}

#else /* !DIG_HAVE_TLS */

tls_server *tls_server_new(const char *cert_path, const char *key_path, enum tls_client_auth auth,
                           const char *client_ca_path, char *err, size_t errlen)
{
    (void)cert_path;
    (void)key_path;
    (void)auth;
    (void)client_ca_path;
    snprintf(err, errlen, "TLS is not built in to this dig-relay (it was built without BearSSL)");
    return NULL;
}

void tls_server_free(tls_server *s) { (void)s; }

xport *tls_open(void *ctx, socket_t fd, const void *prefix, size_t prefix_len)
{
    (void)ctx;
    (void)fd;
    (void)prefix;
    (void)prefix_len;
    return NULL;
}

#endif
