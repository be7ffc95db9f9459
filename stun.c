/* STUN Binding request parser and response writer (see stun.h for the policy). Every field is read
 * and written byte by byte, so buffers may sit at any address and no length is trusted before it
 * has been checked against the datagram. */
#include "stun.h"

#include <string.h>

#define TYPE_BINDING_REQUEST 0x0001
#define TYPE_BINDING_SUCCESS 0x0101
#define TYPE_BINDING_ERROR   0x0111

#define ATTR_MAPPED_ADDRESS          0x0001
#define ATTR_USERNAME                0x0006
#define ATTR_MESSAGE_INTEGRITY       0x0008
#define ATTR_ERROR_CODE              0x0009
#define ATTR_UNKNOWN_ATTRIBUTES      0x000A
#define ATTR_REALM                   0x0014
#define ATTR_NONCE                   0x0015
#define ATTR_MESSAGE_INTEGRITY256    0x001C
#define ATTR_PASSWORD_ALGORITHM      0x001D
#define ATTR_USERHASH                0x001E
#define ATTR_XOR_MAPPED_ADDRESS      0x0020
#define ATTR_FINGERPRINT             0x8028

#define FINGERPRINT_XOR 0x5354554Eu
#define FINGERPRINT_ATTR_LEN 8

static const char unknown_attribute_reason[] = "Unknown Attribute";

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static size_t padded(size_t n) { return (n + 3) & ~(size_t)3; }

uint32_t stun_crc32(const uint8_t *p, size_t n)
{
    /* Reflected polynomial 0xEDB88320, four bits at a time: small enough to read, and fingerprints
     * cover only a few dozen bytes. */
    static const uint32_t nibble[16] = {
        0x00000000, 0x1DB71064, 0x3B6E20C8, 0x26D930AC, 0x76DC4190, 0x6B6B51F4, 0x4DB26158, 0x5005713C,
        0xEDB88320, 0xF00F9344, 0xD6D6A3E8, 0xCB61B38C, 0x9B64C2B0, 0x86D3D2D4, 0xA00AE278, 0xBDBDF21C,
    };
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ nibble[crc & 0xF];
        crc = (crc >> 4) ^ nibble[crc & 0xF];
    }
    return crc ^ 0xFFFFFFFFu;
}

/* Attributes RFC 5389/8489 define. In a request they are either authentication we do not use or
 * response-only attributes with no meaning here; either way they are understood, not unknown. */
static bool stun_defines(uint16_t type)
{
    switch (type) {
    case ATTR_MAPPED_ADDRESS:
    case ATTR_USERNAME:
    case ATTR_MESSAGE_INTEGRITY:
    case ATTR_ERROR_CODE:
    case ATTR_UNKNOWN_ATTRIBUTES:
    case ATTR_REALM:
    case ATTR_NONCE:
    case ATTR_MESSAGE_INTEGRITY256:
    case ATTR_PASSWORD_ALGORITHM:
    case ATTR_USERHASH:
    case ATTR_XOR_MAPPED_ADDRESS:
        return true;
    default:
        return false;
    }
}

static void note_unknown(stun_request *r, uint16_t type)
{
    for (size_t i = 0; i < r->n_unknown; i++)
        if (r->unknown[i] == type)
            return;
    if (r->n_unknown < STUN_MAX_UNKNOWN)
        r->unknown[r->n_unknown++] = type;
}

enum stun_verdict stun_parse(const uint8_t *msg, size_t len, stun_request *out)
{
    /* After MESSAGE-INTEGRITY only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT count; after
     * MESSAGE-INTEGRITY-SHA256 only FINGERPRINT does (RFC 8489 §14.5, §14.6). */
    bool after_integrity = false, after_integrity256 = false;
    size_t pos = STUN_HEADER_LEN;

    memset(out, 0, sizeof *out);
    /* The first 16 bits carry the two zero top bits, the method and the class: one compare. */
    if (len < STUN_HEADER_LEN || get16(msg) != TYPE_BINDING_REQUEST ||
        get32(msg + 4) != STUN_MAGIC_COOKIE)
        return STUN_DROP;
    if (get16(msg + 2) % 4 != 0 || (size_t)get16(msg + 2) != len - STUN_HEADER_LEN)
        return STUN_DROP;

    while (pos < len) {
        /* The total is a multiple of 4, so at least a 4-byte attribute header remains. */
        uint16_t type = get16(msg + pos);
        size_t value_len = get16(msg + pos + 2);
        if (padded(value_len) > len - pos - 4)
            return STUN_DROP;

        if (type == ATTR_FINGERPRINT) {
            if (value_len != 4 || pos + FINGERPRINT_ATTR_LEN != len ||
                get32(msg + pos + 4) != (stun_crc32(msg, pos) ^ FINGERPRINT_XOR))
                return STUN_DROP;
            out->fingerprint = true;
        } else if (after_integrity256 || (after_integrity && type != ATTR_MESSAGE_INTEGRITY256)) {
            /* ignored: not covered by the integrity the sender computed */
        } else if (type < 0x8000 && !stun_defines(type)) {
            note_unknown(out, type);
        }
        if (type == ATTR_MESSAGE_INTEGRITY)
            after_integrity = true;
        if (type == ATTR_MESSAGE_INTEGRITY256)
            after_integrity256 = true;
        pos += 4 + padded(value_len);
    }

    memcpy(out->transaction_id, msg + 8, STUN_TRANSACTION_ID_LEN);
    out->verdict = out->n_unknown ? STUN_UNKNOWN_ATTRIBUTE : STUN_SUCCESS;
    return out->verdict;
}

/* XOR-MAPPED-ADDRESS (RFC 5389 §15.2): port XOR the cookie's top half, address XOR the cookie
 * (IPv4) or the cookie followed by the transaction id (IPv6). Returns bytes written. */
static size_t write_xor_mapped(uint8_t *p, const addr_t *a, const uint8_t tid[STUN_TRANSACTION_ID_LEN])
{
    uint8_t mask[16];
    size_t ip_len = a->family == 4 ? 4 : 16;

    put32(mask, STUN_MAGIC_COOKIE);
    memcpy(mask + 4, tid, STUN_TRANSACTION_ID_LEN);
    put16(p, ATTR_XOR_MAPPED_ADDRESS);
    put16(p + 2, (uint16_t)(4 + ip_len));
    p[4] = 0;
    p[5] = a->family == 4 ? 0x01 : 0x02;
    put16(p + 6, (uint16_t)(a->port ^ (STUN_MAGIC_COOKIE >> 16)));
    for (size_t i = 0; i < ip_len; i++)
        p[8 + i] = (uint8_t)(a->ip[i] ^ mask[i]);
    return 8 + ip_len;
}

/* ERROR-CODE 420 (RFC 5389 §15.6) then UNKNOWN-ATTRIBUTES (§15.9), padding zeroed. */
static size_t write_unknown_attributes(uint8_t *p, const stun_request *req)
{
    size_t reason_len = sizeof unknown_attribute_reason - 1;
    size_t n = 0, list_len = 2 * req->n_unknown;

    put16(p, ATTR_ERROR_CODE);
    put16(p + 2, (uint16_t)(4 + reason_len));
    p[4] = 0;
    p[5] = 0;
    p[6] = 4;    /* class: 4xx */
    p[7] = 20;   /* number: 420 */
    memcpy(p + 8, unknown_attribute_reason, reason_len);
    n = 8 + reason_len;
    while (n % 4)
        p[n++] = 0;

    put16(p + n, ATTR_UNKNOWN_ATTRIBUTES);
    put16(p + n + 2, (uint16_t)list_len);
    n += 4;
    for (size_t i = 0; i < req->n_unknown; i++, n += 2)
        put16(p + n, req->unknown[i]);
    while (n % 4)
        p[n++] = 0;
    return n;
}

size_t stun_write_response(const stun_request *req, const addr_t *source, uint8_t *out, size_t cap)
{
    addr_t a = *source;
    size_t n = STUN_HEADER_LEN;

    if (req->verdict == STUN_DROP || cap < STUN_RESPONSE_MAX)
        return 0;
    addr_unmap(&a);

    put16(out, req->verdict == STUN_SUCCESS ? TYPE_BINDING_SUCCESS : TYPE_BINDING_ERROR);
    put32(out + 4, STUN_MAGIC_COOKIE);
    memcpy(out + 8, req->transaction_id, STUN_TRANSACTION_ID_LEN);
    if (req->verdict == STUN_SUCCESS)
        n += write_xor_mapped(out + n, &a, req->transaction_id);
    else
        n += write_unknown_attributes(out + n, req);

    if (req->fingerprint) {
        /* The length field must already count the FINGERPRINT when its CRC is taken. */
        put16(out + 2, (uint16_t)(n + FINGERPRINT_ATTR_LEN - STUN_HEADER_LEN));
        put16(out + n, ATTR_FINGERPRINT);
        put16(out + n + 2, 4);
        put32(out + n + 4, stun_crc32(out, n) ^ FINGERPRINT_XOR);
        n += FINGERPRINT_ATTR_LEN;
    } else {
        put16(out + 2, (uint16_t)(n - STUN_HEADER_LEN));
    }
    return n;
}
