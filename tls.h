/* TLS on the wire listener: a second transport (xport.h) beside plain TCP, built on BearSSL.
 *
 * tls_server holds what every connection shares: the relay's certificate chain and key, the
 * client-certificate policy (--tls-client-auth, --tls-client-ca) and a bounded session cache.
 * tls_open makes one connection's transport; its peer_identity is the DIG peer id (lowercase hex
 * SHA-256 of the client leaf's SubjectPublicKeyInfo DER) once the client proved it holds that
 * key in the handshake's CertificateVerify, and NULL for a client that presented no certificate.
 *
 * TLS 1.2 only (BearSSL has no 1.3), ECDHE with AES-GCM or ChaCha20-Poly1305, no renegotiation.
 * Built in when the Makefile finds BearSSL (DIG_HAVE_TLS); without it tls_server_new says so. */
#ifndef DIG_TLS_H
#define DIG_TLS_H

#include "config.h"
#include "buildinfo.h"
#include "xport.h"

#include <stddef.h>

typedef struct tls_server tls_server;

/* Reads and checks the relay's PEM certificate chain and key (and the client CA file when
 * client_ca_path is set). NULL on failure with a message in err naming the file and what is
 * wrong with it: unreadable, no certificate, not X.509, no or an unsupported or encrypted key, a
 * key that does not match the first certificate. */
tls_server *tls_server_new(const char *cert_path, const char *key_path, enum tls_client_auth auth,
                           const char *client_ca_path, char *err, size_t errlen);
void tls_server_free(tls_server *s);

/* xport_factory.open for TLS; ctx is the tls_server. The handshake runs inside the first reads:
 * until it completes, read returns XPORT_AGAIN (or XPORT_ERROR when it fails), writev takes
 * nothing, and wants() asks for the readiness the handshake needs. */
xport *tls_open(void *ctx, socket_t fd, const void *prefix, size_t prefix_len);

#endif
