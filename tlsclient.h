/* A blocking TLS 1.2 client over an already connected socket, for the command-line side of the
 * binary (dig-relay probe wss://...), never for the relay's own sockets, which belong to the
 * loop. Every call has a deadline, so a relay that stalls mid-handshake fails the probe instead
 * of hanging it. The relay's certificate is checked against PEM trust anchors (a CA, or the
 * relay's own self-signed certificate) and, for a DNS name, against that name; the client may
 * present a certificate of its own, as a DIG node does under --tls-client-auth required.
 * Built on BearSSL when TLS is built in; otherwise tls_client_open says it is not. */
#ifndef DIG_TLSCLIENT_H
#define DIG_TLSCLIENT_H

#include "compat/compat.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct tls_client tls_client;

typedef struct {
    const char *server_name;   /* SNI and the name the certificate must carry; NULL: an IP
                                  address was dialled, no name is checked */
    const char *ca_path;       /* PEM trust anchors for the relay's chain */
    const char *cert_path;     /* the client's certificate chain and key, or both NULL */
    const char *key_path;
} tls_client_opts;

/* Runs the handshake on s within timeout_ms. NULL with the reason in err (an unreadable file,
 * an untrusted certificate, a relay that wanted a client certificate...). s stays the caller's. */
tls_client *tls_client_open(socket_t s, const tls_client_opts *o, unsigned timeout_ms, char *err,
                            size_t errlen);
/* The DIG peer id our certificate proves (hex SHA-256 of its SubjectPublicKeyInfo); false when
 * we presented none. */
bool tls_client_peer_id(const tls_client *t, char out[65]);
bool tls_client_send_all(tls_client *t, const void *buf, size_t len, unsigned timeout_ms);
/* Application bytes read: as client_recv, 0 at the end of the session, -1 on error or timeout. */
long tls_client_recv(tls_client *t, void *buf, size_t cap, unsigned timeout_ms);
/* Sends close_notify (best effort, within timeout_ms) and frees; the socket is not closed. */
void tls_client_close(tls_client *t, unsigned timeout_ms);

#endif
