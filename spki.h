/* Where a certificate's SubjectPublicKeyInfo is: a small, strict DER walk over an X.509
 * certificate (RFC 5280 §4.1) that returns the byte span of the SPKI element, header included.
 * A DIG peer id is the SHA-256 of exactly those bytes. Pure: bytes in, offsets out. */
#ifndef DIG_SPKI_H
#define DIG_SPKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Walks cert[0..len): Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm,
 * signatureValue } with tbsCertificate's fields up to subjectPublicKeyInfo in their order.
 * Lengths must be definite and minimally encoded, every element must lie inside its parent and
 * the certificate must end exactly at len. On success stores the SPKI element's offset and
 * length (tag and length bytes included) and returns true. */
bool spki_find(const uint8_t *cert, size_t len, size_t *off, size_t *spki_len);

#endif
