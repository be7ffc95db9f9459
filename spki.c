/* The DER walk of spki.h. Only the structure is checked (tags in order, lengths consistent and
 * minimal); what the fields say is left to the X.509 decoder that parses the same bytes. */
#include "spki.h"

enum {
    DER_INTEGER = 0x02,
    DER_BIT_STRING = 0x03,
    DER_SEQUENCE = 0x30,
    DER_VERSION = 0xa0    /* tbsCertificate's [0] EXPLICIT version */
};

typedef struct {
    uint8_t tag;
    size_t start;   /* offset of the tag byte */
    size_t body;    /* offset of the contents */
    size_t end;     /* one past the contents */
} der_elem;

/* Reads the element that starts at pos and must end by end. Tags are single bytes: none of the
 * elements walked here has a high tag number. Lengths of up to four bytes are accepted, which
 * covers every certificate a TLS handshake can carry. */
static bool der_read(const uint8_t *b, size_t pos, size_t end, der_elem *e)
{
    size_t hdr = 2, n = 0;

    if (pos >= end || end - pos < 2 || (b[pos] & 0x1f) == 0x1f)
        return false;
    if (b[pos + 1] < 0x80) {
        n = b[pos + 1];
    } else {
        size_t k = b[pos + 1] & 0x7fu;
        if (k == 0 || k > 4 || end - pos - 2 < k || b[pos + 2] == 0)
            return false;   /* indefinite, too long, or not minimal */
        for (size_t i = 0; i < k; i++)
            n = (n << 8) | b[pos + 2 + i];
        if (n < 0x80)
            return false;   /* the short form was required */
        hdr += k;
    }
    if (n > end - pos - hdr)
        return false;
    e->tag = b[pos];
    e->start = pos;
    e->body = pos + hdr;
    e->end = pos + hdr + n;
    return true;
}

/* Reads the element at *pos, requires its tag, and moves *pos past it. */
static bool der_expect(const uint8_t *b, size_t *pos, size_t end, uint8_t tag, der_elem *e)
{
    if (!der_read(b, *pos, end, e) || e->tag != tag)
        return false;
    *pos = e->end;
    return true;
}

bool spki_find(const uint8_t *cert, size_t len, size_t *off, size_t *spki_len)
{
    der_elem whole, tbs, e, spki;
    size_t pos = 0;

    if (!der_expect(cert, &pos, len, DER_SEQUENCE, &whole) || whole.end != len)
        return false;
    pos = whole.body;
    if (!der_expect(cert, &pos, whole.end, DER_SEQUENCE, &tbs))
        return false;
    /* signatureAlgorithm and signatureValue close the certificate. */
    if (!der_expect(cert, &pos, whole.end, DER_SEQUENCE, &e) ||
        !der_expect(cert, &pos, whole.end, DER_BIT_STRING, &e) || pos != whole.end)
        return false;

    pos = tbs.body;
    if (der_read(cert, pos, tbs.end, &e) && e.tag == DER_VERSION)
        pos = e.end;
    if (!der_expect(cert, &pos, tbs.end, DER_INTEGER, &e) ||      /* serialNumber */
        !der_expect(cert, &pos, tbs.end, DER_SEQUENCE, &e) ||     /* signature */
        !der_expect(cert, &pos, tbs.end, DER_SEQUENCE, &e) ||     /* issuer */
        !der_expect(cert, &pos, tbs.end, DER_SEQUENCE, &e) ||     /* validity */
        !der_expect(cert, &pos, tbs.end, DER_SEQUENCE, &e) ||     /* subject */
        !der_expect(cert, &pos, tbs.end, DER_SEQUENCE, &spki))
        return false;

    /* SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT
     * STRING }, nothing after. */
    pos = spki.body;
    if (!der_expect(cert, &pos, spki.end, DER_SEQUENCE, &e) ||
        !der_expect(cert, &pos, spki.end, DER_BIT_STRING, &e) || pos != spki.end)
        return false;
    *off = spki.start;
    *spki_len = spki.end - spki.start;
    return true;
}
