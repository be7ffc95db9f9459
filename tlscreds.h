/* The relay's own TLS credentials and the client CA, read from PEM files and checked before the
 * relay starts: the certificate chain (--tls-cert), its private key (--tls-key: PKCS#8, PKCS#1
 * RSA or SEC1 EC, unencrypted, matching the first certificate) and the trust anchors of
 * --tls-client-ca. Every failure names the file and what is wrong with it. */
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

/* Loads everything (client_ca_path may be NULL); false with a message in err. */
bool tls_creds_load(tls_creds *c, const char *cert_path, const char *key_path,
                    const char *client_ca_path, char *err, size_t errlen);
void tls_creds_free(tls_creds *c);

#endif
