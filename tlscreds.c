/* Reading and checking the TLS credentials of tlscreds.h with BearSSL's PEM, key and X.509
 * decoders. Only used when TLS is built in (tls.c, tlsclient.c). */
#include "tls.h"

#if DIG_HAVE_TLS

#include "spki.h"
#include "tlscreds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEM_FILE_MAX (1u << 20)     /* a certificate or key file larger than this is refused */

typedef struct {
    char name[128];   /* as long as BearSSL's PEM decoder keeps */
    unsigned char *der;
    size_t len, cap;
} pem_object;

typedef struct {
    pem_object *items;
    size_t n;
    bool overflow;
} pem_list;

static void pem_append(void *ctx, const void *data, size_t len)
{
    pem_list *l = ctx;
    pem_object *o = &l->items[l->n - 1];
    if (l->overflow)
        return;
    if (len > o->cap - o->len) {
        size_t cap = (o->cap ? o->cap * 2 : 2048);
        while (cap - o->len < len)
            cap *= 2;
        unsigned char *grown = realloc(o->der, cap);
        if (grown == NULL) {
            l->overflow = true;
            return;
        }
        o->der = grown;
        o->cap = cap;
    }
    memcpy(o->der + o->len, data, len);
    o->len += len;
}

static void pem_list_free(pem_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i].der);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

/* Reads every PEM object of the file at path. */
static bool pem_read(const char *path, pem_list *out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    unsigned char *text;
    size_t len;
    br_pem_decoder_context pem;
    bool inside = false;

    memset(out, 0, sizeof *out);
    if (f == NULL) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return false;
    }
    text = malloc(PEM_FILE_MAX + 2);
    if (text == NULL) {
        fclose(f);
        snprintf(err, errlen, "cannot read %s: out of memory", path);
        return false;
    }
    len = fread(text, 1, PEM_FILE_MAX + 1, f);
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed || len > PEM_FILE_MAX) {
        snprintf(err, errlen, "cannot read %s: %s", path,
                 failed ? "read error" : "larger than 1 MiB, not a PEM certificate or key file");
        free(text);
        return false;
    }
    text[len++] = '\n';   /* the decoder needs a line end after the last END line */

    br_pem_decoder_init(&pem);
    for (size_t pos = 0; pos < len;) {
        pos += br_pem_decoder_push(&pem, text + pos, len - pos);
        switch (br_pem_decoder_event(&pem)) {
        case BR_PEM_BEGIN_OBJ: {
            pem_object *grown = realloc(out->items, (out->n + 1) * sizeof *grown);
            if (grown == NULL) {
                out->overflow = true;
                break;
            }
            out->items = grown;
            memset(&out->items[out->n], 0, sizeof out->items[0]);
            snprintf(out->items[out->n].name, sizeof out->items[0].name, "%s",
                     br_pem_decoder_name(&pem));
            out->n++;
            br_pem_decoder_setdest(&pem, pem_append, out);
            inside = true;
            break;
        }
        case BR_PEM_END_OBJ:
            inside = false;
            break;
        case BR_PEM_ERROR:
            snprintf(err, errlen, "%s is not valid PEM", path);
            free(text);
            pem_list_free(out);
            return false;
        default:
            break;
        }
        if (out->overflow)
            break;
    }
    free(text);
    if (out->overflow) {
        snprintf(err, errlen, "cannot read %s: out of memory", path);
        pem_list_free(out);
        return false;
    }
    if (inside) {
        snprintf(err, errlen, "%s is not valid PEM: the last object has no END line", path);
        pem_list_free(out);
        return false;
    }
    return true;
}

static bool is_certificate(const pem_object *o)
{
    return strcmp(o->name, "CERTIFICATE") == 0 || strcmp(o->name, "X509 CERTIFICATE") == 0;
}

/* Reads a PEM file that must hold at least one certificate; *n counts them. */
static bool pem_read_certs(const char *path, pem_list *l, size_t *n, char *err, size_t errlen)
{
    if (!pem_read(path, l, err, errlen))
        return false;
    *n = 0;
    for (size_t i = 0; i < l->n; i++)
        *n += is_certificate(&l->items[i]);
    if (*n == 0) {
        snprintf(err, errlen, "%s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path);
        pem_list_free(l);
        return false;
    }
    return true;
}

/* Decodes one certificate; the decoder then holds its key. */
static bool decode_cert(const unsigned char *der, size_t len, br_x509_decoder_context *dc,
                        void (*dn)(void *ctx, const void *buf, size_t len), void *dn_ctx)
{
    br_x509_decoder_init(dc, dn, dn_ctx);
    br_x509_decoder_push(dc, der, len);
    return br_x509_decoder_last_error(dc) == 0;
}

static bool load_chain(tls_creds *s, const char *path, br_x509_decoder_context *leaf, char *err,
                       size_t errlen)
{
    pem_list l;
    size_t n;

    if (!pem_read_certs(path, &l, &n, err, errlen))
        return false;
    s->chain = calloc(n, sizeof *s->chain);
    if (s->chain == NULL) {
        snprintf(err, errlen, "cannot load %s: out of memory", path);
        pem_list_free(&l);
        return false;
    }
    for (size_t i = 0; i < l.n; i++) {
        br_x509_decoder_context other;
        pem_object *o = &l.items[i];
        if (!is_certificate(o))
            continue;
        if (!decode_cert(o->der, o->len, s->chain_len == 0 ? leaf : &other, NULL, NULL)) {
            snprintf(err, errlen, "certificate %zu in %s is not valid X.509 (BearSSL error %d)",
                     s->chain_len + 1, path,
                     br_x509_decoder_last_error(s->chain_len == 0 ? leaf : &other));
            pem_list_free(&l);
            return false;
        }
        s->chain[s->chain_len].data = o->der;
        s->chain[s->chain_len].data_len = o->len;
        s->chain_len++;
        o->der = NULL;   /* now owned by the chain */
    }
    pem_list_free(&l);
    return true;
}

/* The private key's public half must be the first certificate's key. */
static bool key_matches(const tls_creds *s, const br_x509_pkey *cert_key)
{
    if (s->key_type == BR_KEYTYPE_EC) {
        const br_ec_private_key *sk = br_skey_decoder_get_ec(&s->key);
        unsigned char q[BR_EC_KBUF_PUB_MAX_SIZE];
        br_ec_public_key pk;
        size_t qlen = br_ec_compute_pub(br_ec_get_default(), &pk, q, sk);
        return cert_key->key_type == BR_KEYTYPE_EC && qlen > 0 &&
               cert_key->key.ec.curve == sk->curve && cert_key->key.ec.qlen == qlen &&
               memcmp(cert_key->key.ec.q, q, qlen) == 0;
    }
    /* RSA: BearSSL can only recompute the public exponent for some keys, so sign a digest
     * and verify it with the certificate's key instead. */
    const br_rsa_private_key *sk = br_skey_decoder_get_rsa(&s->key);
    static const unsigned char digest[32] = "dig-relay: does the key match?";
    unsigned char sig[512], back[32];
    size_t len = (sk->n_bitlen + 7) / 8;
    if (cert_key->key_type != BR_KEYTYPE_RSA || len > sizeof sig)
        return false;
    return br_rsa_pkcs1_sign_get_default()(BR_HASH_OID_SHA256, digest, sizeof digest, sk, sig) &&
           br_rsa_pkcs1_vrfy_get_default()(sig, len, BR_HASH_OID_SHA256, sizeof back,
                                           &cert_key->key.rsa, back) &&
           memcmp(back, digest, sizeof back) == 0;
}

static bool load_key(tls_creds *s, const char *path, const char *cert_path,
                     const br_x509_pkey *cert_key, char *err, size_t errlen)
{
    pem_list l;
    const pem_object *key = NULL;

    if (!pem_read(path, &l, err, errlen))
        return false;
    for (size_t i = 0; i < l.n && key == NULL; i++) {
        const char *name = l.items[i].name;
        if (strcmp(name, "ENCRYPTED PRIVATE KEY") == 0) {
            snprintf(err, errlen,
                     "%s holds an encrypted private key; the relay needs it unencrypted "
                     "(openssl pkey -in %s -out key.pem)",
                     path, path);
            pem_list_free(&l);
            return false;
        }
        if (strcmp(name, "PRIVATE KEY") == 0 || strcmp(name, "RSA PRIVATE KEY") == 0 ||
            strcmp(name, "EC PRIVATE KEY") == 0)
            key = &l.items[i];
    }
    if (key == NULL) {
        snprintf(err, errlen,
                 "%s holds no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)",
                 path);
        pem_list_free(&l);
        return false;
    }
    br_skey_decoder_init(&s->key);
    br_skey_decoder_push(&s->key, key->der, key->len);
    int e = br_skey_decoder_last_error(&s->key);
    pem_list_free(&l);
    if (e != 0) {
        snprintf(err, errlen, "the private key in %s cannot be decoded (BearSSL error %d): %s",
                 path, e,
                 e == BR_ERR_X509_UNSUPPORTED ? "unsupported key type or curve"
                                              : "not a PKCS#8, PKCS#1 RSA or SEC1 EC key");
        return false;
    }
    s->key_type = br_skey_decoder_key_type(&s->key);
    if (s->key_type == BR_KEYTYPE_RSA && br_skey_decoder_get_rsa(&s->key)->n_bitlen > 4096) {
        snprintf(err, errlen, "the RSA key in %s is larger than 4096 bits, which BearSSL cannot "
                 "sign with", path);
        return false;
    }
    if (!key_matches(s, cert_key)) {
        snprintf(err, errlen,
                 "the private key in %s does not match the first certificate in %s (the chain "
                 "must start with the relay's own certificate)",
                 path, cert_path);
        return false;
    }
    return true;
}

typedef struct {
    unsigned char *data;
    size_t len;
    bool overflow;
} dn_buf;

static void dn_append(void *ctx, const void *data, size_t len)
{
    dn_buf *d = ctx;
    unsigned char *grown;
    if (d->overflow)
        return;
    grown = realloc(d->data, d->len + len);
    if (grown == NULL) {
        d->overflow = true;
        return;
    }
    memcpy(grown + d->len, data, len);
    d->data = grown;
    d->len += len;
}

/* Copies a decoded public key out of its decoder into one allocation. */
static bool copy_pkey(br_x509_pkey *dst, const br_x509_pkey *src)
{
    *dst = *src;
    if (src->key_type == BR_KEYTYPE_RSA) {
        unsigned char *b = malloc(src->key.rsa.nlen + src->key.rsa.elen);
        if (b == NULL)
            return false;
        memcpy(b, src->key.rsa.n, src->key.rsa.nlen);
        memcpy(b + src->key.rsa.nlen, src->key.rsa.e, src->key.rsa.elen);
        dst->key.rsa.n = b;
        dst->key.rsa.e = b + src->key.rsa.nlen;
        return true;
    }
    unsigned char *q = malloc(src->key.ec.qlen);
    if (q == NULL)
        return false;
    memcpy(q, src->key.ec.q, src->key.ec.qlen);
    dst->key.ec.q = q;
    return true;
}

static bool load_anchors(tls_creds *s, const char *path, char *err, size_t errlen)
{
    pem_list l;
    size_t n;

    if (!pem_read_certs(path, &l, &n, err, errlen))
        return false;
    s->anchors = calloc(n, sizeof *s->anchors);
    if (s->anchors == NULL) {
        snprintf(err, errlen, "cannot load %s: out of memory", path);
        pem_list_free(&l);
        return false;
    }
    for (size_t i = 0; i < l.n; i++) {
        br_x509_decoder_context dc;
        dn_buf dn = {NULL, 0, false};
        br_x509_trust_anchor *ta = &s->anchors[s->n_anchors];
        if (!is_certificate(&l.items[i]))
            continue;
        if (!decode_cert(l.items[i].der, l.items[i].len, &dc, dn_append, &dn) || dn.overflow ||
            !copy_pkey(&ta->pkey, br_x509_decoder_get_pkey(&dc))) {
            snprintf(err, errlen, "certificate %zu in %s is not valid X.509 (BearSSL error %d)",
                     s->n_anchors + 1, path, br_x509_decoder_last_error(&dc));
            free(dn.data);
            pem_list_free(&l);
            return false;
        }
        ta->dn.data = dn.data;
        ta->dn.len = dn.len;
        ta->flags = BR_X509_TA_CA;
        s->n_anchors++;
    }
    pem_list_free(&l);
    return true;
}

bool tls_creds_load(tls_creds *c, const char *cert_path, const char *key_path,
                    const char *ca_path, char *err, size_t errlen)
{
    br_x509_decoder_context leaf;

    memset(c, 0, sizeof *c);
    if ((cert_path != NULL &&
         (!load_chain(c, cert_path, &leaf, err, errlen) ||
          !load_key(c, key_path, cert_path, br_x509_decoder_get_pkey(&leaf), err, errlen))) ||
        (ca_path != NULL && !load_anchors(c, ca_path, err, errlen))) {
        tls_creds_free(c);
        return false;
    }
    return true;
}

bool tls_spki_digest(const unsigned char *der, size_t len, unsigned char digest[32])
{
    size_t off, n;
    br_sha256_context h;
    if (!spki_find(der, len, &off, &n))
        return false;
    br_sha256_init(&h);
    br_sha256_update(&h, der + off, n);
    br_sha256_out(&h, digest);
    return true;
}

void tls_creds_free(tls_creds *c)
{
    for (size_t i = 0; i < c->chain_len; i++)
        free(c->chain[i].data);
    free(c->chain);
    for (size_t i = 0; i < c->n_anchors; i++) {
        free(c->anchors[i].dn.data);
        free(c->anchors[i].pkey.key_type == BR_KEYTYPE_RSA ? c->anchors[i].pkey.key.rsa.n
                                                           : c->anchors[i].pkey.key.ec.q);
    }
    free(c->anchors);
    memset(c, 0, sizeof *c);   /* the private key too */
}

#endif
