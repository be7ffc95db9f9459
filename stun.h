/* STUN Binding responder codec (RFC 5389 / RFC 8489, SPEC §5). Pure: a datagram in, a verdict out,
 * and the response written into a caller buffer. No sockets, no clock, no allocation.
 *
 * Only a well-formed Binding Request is answered; everything else is dropped silently, because a
 * UDP responder that answers junk is a reflector. What a request's attributes mean to us:
 *   - FINGERPRINT must be last and correct, else the datagram is dropped; when present the
 *     response carries one too.
 *   - Attributes STUN itself defines (USERNAME, MESSAGE-INTEGRITY[-SHA256], REALM, NONCE, USERHASH,
 *     PASSWORD-ALGORITHM, and the response-only address/error attributes) are understood and
 *     ignored: this server has no credentials, so it authenticates nothing and cannot sign its
 *     answer. A client that insists on integrity discards our unsigned response, exactly as if
 *     no server were there; a client that does not gets its reflexive address.
 *   - Attributes after MESSAGE-INTEGRITY (other than MESSAGE-INTEGRITY-SHA256 and FINGERPRINT) are
 *     ignored, as RFC 5389 §15.4 requires.
 *   - Any other comprehension-required attribute (type < 0x8000: ICE's PRIORITY, RFC 5780's
 *     CHANGE-REQUEST, TURN attributes...) is unknown to a plain Binding server and earns a 420
 *     error listing it (RFC 5389 §7.3.1). Comprehension-optional ones (SOFTWARE, ICE-CONTROLLED...)
 *     are ignored.
 *
 * No amplification: a success response is 32 (IPv4) or 44 (IPv6) bytes, plus 8 for FINGERPRINT
 * (which the request paid 8 for too); every attribute a 420 lists cost the request at least 4
 * bytes and costs the response 2. Every response is at most STUN_MAX_GROWTH bytes longer than its
 * request. */
#ifndef DIG_STUN_H
#define DIG_STUN_H

#include "addr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STUN_HEADER_LEN 20
#define STUN_MAGIC_COOKIE 0x2112A442u
#define STUN_TRANSACTION_ID_LEN 12

/* At most this many unknown attributes are listed in a 420 (the RFC asks for the unknown ones,
 * not necessarily all; a request naming more is answered about the first ones). */
#define STUN_MAX_UNKNOWN 16

/* Largest response stun_write_response() ever writes: a 420 listing STUN_MAX_UNKNOWN attributes
 * with a FINGERPRINT. */
#define STUN_RESPONSE_MAX 92

/* A response never exceeds its request by more than this many bytes. */
#define STUN_MAX_GROWTH 32

enum stun_verdict {
    STUN_DROP = 0,          /* not a well-formed Binding Request: send nothing */
    STUN_SUCCESS,           /* answer with XOR-MAPPED-ADDRESS */
    STUN_UNKNOWN_ATTRIBUTE  /* answer 420 with UNKNOWN-ATTRIBUTES */
};

/* What a response needs from its request; filled by stun_parse. */
typedef struct {
    enum stun_verdict verdict;
    uint8_t transaction_id[STUN_TRANSACTION_ID_LEN];
    bool fingerprint;       /* the request carried a valid FINGERPRINT, so the response does too */
    size_t n_unknown;
    uint16_t unknown[STUN_MAX_UNKNOWN];   /* distinct unknown comprehension-required types */
} stun_request;

/* Classifies a datagram (any alignment, any length). On STUN_DROP the rest of *out is unspecified. */
enum stun_verdict stun_parse(const uint8_t *msg, size_t len, stun_request *out);

/* Writes the response to a parsed request for the observed source address into out, which must
 * hold STUN_RESPONSE_MAX bytes; an IPv4-mapped IPv6 source is answered with the IPv4 family.
 * Returns the response length, or 0 when cap is below STUN_RESPONSE_MAX or the verdict is
 * STUN_DROP. */
size_t stun_write_response(const stun_request *req, const addr_t *source, uint8_t *out, size_t cap);

/* CRC-32 (ISO-HDLC, the zlib one) that FINGERPRINT is built on. */
uint32_t stun_crc32(const uint8_t *p, size_t n);

#endif
