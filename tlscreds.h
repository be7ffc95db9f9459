/* TLS credentials, read from PEM files and checked before the relay (or the probe) starts: the certificate chain (--tls-cert), its private key (--tls-key: PKCS#8, PKCS#1
 * RSA or SEC1 EC, unencrypted, matching the first certificate) and trust anchors (the relay's
 * --tls-client-ca, the probe's --probe-ca). Every failure names the file and what is wrong with it. */
#ifndef DIG_TLSCREDS_H
#define DIG_TLSCREDS_H

#include <bearssl.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    br_x509_certificate *chain;      /* DER, the relay's own certificate first */
    size_t chain_len;
    int key_type;                    /* BR_KEYTYPE_RSA or BR_KEYTYPE_EC */
    br_skey_decoder_context key;     /* holds the decoded private key */
    br_x509_trust_anchor *anchors;   /* --tls-client-ca; none when it is unset */
    size_t n_anchors;
} tls_creds;

/* Loads everything; false with a message in err. ca_path may be NULL (no anchors), and so may
 * cert_path and key_path together (no certificate of our own: the probe as a plain TLS client). */
bool tls_creds_load(tls_creds *c, const char *cert_path, const char *key_path,
                    const char *ca_path, char *err, size_t errlen);
void tls_creds_free(tls_creds *c);

/* The SHA-256 of a DER certificate's SubjectPublicKeyInfo, which a DIG peer id is the hex of;
 * false when the certificate's structure does not lead to one (spki.h). */
bool tls_spki_digest(const unsigned char *der, size_t len, unsigned char digest[32]);

#endif
