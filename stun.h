/* The STUN codec (RFC 8489, RFC 5389) for the Binding responder and for TURN (RFC 8656), SPEC §5.
 * Pure: bytes in, a parsed message or response bytes out. No sockets, no clock, no allocation.
 *
 * Three layers, each built on the one before:
 *   - stun_decode reads any STUN message: header checks, every attribute header checked against
 *     the datagram, FINGERPRINT verified, the attributes Binding and TURN use parsed into a
 *     stun_msg, unknown comprehension-required attributes listed. stun_writer builds messages
 *     (attributes padded with zeros, MESSAGE-INTEGRITY and FINGERPRINT computed in place), and
 *     stun_check_integrity verifies a request's MESSAGE-INTEGRITY against a key.
 *   - ChannelData framing (TURN's 4-byte header for relayed data) and the stream framing that
 *     tells STUN messages and ChannelData apart over TCP.
 *   - The Binding responder (stun_parse / stun_write_response), whose policy is:
 *
 * Only a well-formed Binding Request is answered; everything else is dropped silently, because a
 * UDP responder that answers junk is a reflector. What a request's attributes mean to us:
 *   - FINGERPRINT must be last and correct, else the datagram is dropped; when present the
 *     response carries one too.
 *   - Attributes STUN itself defines (USERNAME, MESSAGE-INTEGRITY[-SHA256], REALM, NONCE, USERHASH,
 *     PASSWORD-ALGORITHM, and the response-only address/error attributes) are understood and
 *     ignored: Binding is not authenticated here (TURN's requests are, in turn.c), so the answer
 *     is not signed. A client that insists on integrity discards our unsigned response, exactly as
 *     if no server were there; a client that does not gets its reflexive address.
 *   - Attributes after MESSAGE-INTEGRITY (other than MESSAGE-INTEGRITY-SHA256 and FINGERPRINT) are
 *     ignored, as RFC 5389 §15.4 requires.
 *   - Any other comprehension-required attribute (type < 0x8000: ICE's PRIORITY, RFC 5780's
 *     CHANGE-REQUEST, TURN's attributes in a Binding...) is unknown to a Binding server and earns
 *     a 420 error listing it (RFC 5389 §7.3.1). Comprehension-optional ones (SOFTWARE,
 *     ICE-CONTROLLED...) are ignored.
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
#define STUN_INTEGRITY_LEN 20           /* HMAC-SHA1 */
#define STUN_INTEGRITY_ATTR_LEN 24      /* its attribute header and value */
#define STUN_FINGERPRINT_ATTR_LEN 8

/* Classes and methods (RFC 8489 §5, RFC 8656 §17). */
enum stun_class { STUN_CLASS_REQUEST = 0, STUN_CLASS_INDICATION = 1, STUN_CLASS_SUCCESS = 2,
                  STUN_CLASS_ERROR = 3 };
enum stun_method {
    STUN_BINDING = 0x001,
    STUN_ALLOCATE = 0x003, STUN_REFRESH = 0x004, STUN_SEND = 0x006, STUN_DATA = 0x007,
    STUN_CREATE_PERMISSION = 0x008, STUN_CHANNEL_BIND = 0x009
};

/* Attribute types (RFC 8489 §18.3, RFC 8656 §18). */
enum stun_attr {
    STUN_ATTR_MAPPED_ADDRESS = 0x0001, STUN_ATTR_USERNAME = 0x0006,
    STUN_ATTR_MESSAGE_INTEGRITY = 0x0008, STUN_ATTR_ERROR_CODE = 0x0009,
    STUN_ATTR_UNKNOWN_ATTRIBUTES = 0x000A, STUN_ATTR_CHANNEL_NUMBER = 0x000C,
    STUN_ATTR_LIFETIME = 0x000D, STUN_ATTR_XOR_PEER_ADDRESS = 0x0012, STUN_ATTR_DATA = 0x0013,
    STUN_ATTR_REALM = 0x0014, STUN_ATTR_NONCE = 0x0015, STUN_ATTR_XOR_RELAYED_ADDRESS = 0x0016,
    STUN_ATTR_REQUESTED_ADDRESS_FAMILY = 0x0017, STUN_ATTR_EVEN_PORT = 0x0018,
    STUN_ATTR_REQUESTED_TRANSPORT = 0x0019, STUN_ATTR_DONT_FRAGMENT = 0x001A,
    STUN_ATTR_MESSAGE_INTEGRITY_SHA256 = 0x001C, STUN_ATTR_PASSWORD_ALGORITHM = 0x001D,
    STUN_ATTR_USERHASH = 0x001E, STUN_ATTR_XOR_MAPPED_ADDRESS = 0x0020,
    STUN_ATTR_RESERVATION_TOKEN = 0x0022,
    STUN_ATTR_SOFTWARE = 0x8022, STUN_ATTR_FINGERPRINT = 0x8028
};

/* At most this many unknown attributes are listed in a 420 (the RFC asks for the unknown ones,
 * not necessarily all; a request naming more is answered about the first ones). */
#define STUN_MAX_UNKNOWN 16
/* XOR-PEER-ADDRESS attributes read from one message (CreatePermission may carry several). */
#define STUN_MAX_PEERS 8

/* ---- any message ---- */

/* Where an attribute's value sits in the message; len is its unpadded length. */
typedef struct {
    uint16_t off;   /* 0: absent (values never start inside the header) */
    uint16_t len;
} stun_span;

typedef struct {
    uint16_t method;            /* enum stun_method, or any other 12-bit method */
    uint8_t cls;                /* enum stun_class */
    uint8_t transaction_id[STUN_TRANSACTION_ID_LEN];
    bool fingerprint;           /* carried a valid FINGERPRINT (an invalid one drops the message) */
    /* MESSAGE-INTEGRITY: offset of its attribute header, 0 when absent. */
    uint16_t integrity_at;
    /* The first occurrence of each attribute before MESSAGE-INTEGRITY (RFC 8489 §14: later
     * duplicates need not be processed, and what follows the integrity is not covered by it). */
    stun_span username, realm, nonce, data, software;
    stun_span mapped;           /* XOR-MAPPED-ADDRESS (in a Binding response: the probe reads it) */
    bool has_lifetime, has_transport, has_family, has_even_port, has_channel, has_reservation_token;
    bool dont_fragment;
    uint32_t lifetime;          /* seconds */
    uint8_t transport;          /* REQUESTED-TRANSPORT protocol number (17: UDP) */
    uint8_t family;             /* REQUESTED-ADDRESS-FAMILY as 4 or 6; 0 when the value is neither */
    bool even_port_reserve;     /* EVEN-PORT's R bit */
    uint16_t channel;           /* CHANNEL-NUMBER */
    uint8_t reservation_token[8];
    size_t n_peers;             /* XOR-PEER-ADDRESS, decoded, in order */
    addr_t peers[STUN_MAX_PEERS];
    bool too_many_peers;        /* more than STUN_MAX_PEERS were present */
    /* A known attribute whose value is malformed (wrong length, unknown address family):
     * its type, 0 when none. A request carrying one is answered 400. */
    uint16_t malformed;
    size_t n_unknown;
    uint16_t unknown[STUN_MAX_UNKNOWN];   /* distinct unknown comprehension-required types */
} stun_msg;

/* Parses a datagram or framed message (any alignment, exact length). TURN attributes count as
 * known for the TURN methods only. Returns false when it is not a well-formed STUN message (too
 * short, top bits set, bad cookie or length, an attribute running past the end, a FINGERPRINT that
 * is not last or does not match); *m is then unspecified. */
bool stun_decode(const uint8_t *msg, size_t len, stun_msg *m);

/* True when msg's MESSAGE-INTEGRITY (m->integrity_at must be non-zero) is HMAC-SHA1 under key of
 * everything before it, with the length field counting up to and including the integrity. */
bool stun_check_integrity(const uint8_t *msg, const stun_msg *m, const uint8_t *key, size_t key_len);

/* The long-term credential key (RFC 8489 §9.2.2, MD5): MD5(username ":" realm ":" password),
 * the password already SASLprep'd (TURN REST passwords are base64, which it leaves unchanged). */
void stun_long_term_key(const void *username, size_t username_len, const char *realm,
                        const char *password, uint8_t key[16]);

/* The message type for a method and class. */
uint16_t stun_type(uint16_t method, enum stun_class cls);

/* Builds one message in a caller buffer. Any step that would not fit sets `overflow` and writes
 * nothing more; stun_finish then returns 0. Attributes are padded with zeros. */
typedef struct {
    uint8_t *buf;
    size_t cap, len;
    bool overflow;
} stun_writer;

void stun_begin(stun_writer *w, uint8_t *buf, size_t cap, uint16_t type,
                const uint8_t tid[STUN_TRANSACTION_ID_LEN]);
void stun_put(stun_writer *w, uint16_t type, const void *value, size_t len);
/* Adds an attribute header for a value of len bytes and returns where the value goes (its padding
 * already zeroed), or NULL after an overflow: for a value that already lies there (TURN wraps a
 * peer's datagram in place) or that the caller writes itself. */
uint8_t *stun_put_space(stun_writer *w, uint16_t type, size_t len);
void stun_put_u32(stun_writer *w, uint16_t type, uint32_t value);
/* XOR-MAPPED-ADDRESS, XOR-PEER-ADDRESS, XOR-RELAYED-ADDRESS: XOR with the cookie and the message's
 * transaction id. An IPv4-mapped IPv6 address is written as IPv4. */
void stun_put_xor_addr(stun_writer *w, uint16_t type, const addr_t *a);
/* ERROR-CODE with its reason phrase (RFC 8489 §14.8). */
void stun_put_error(stun_writer *w, unsigned code, const char *reason);
void stun_put_unknown(stun_writer *w, const uint16_t *types, size_t n);
/* MESSAGE-INTEGRITY over everything written so far (sets the length field first). */
void stun_put_integrity(stun_writer *w, const uint8_t *key, size_t key_len);
/* FINGERPRINT; must be the last attribute. */
void stun_put_fingerprint(stun_writer *w);
/* Sets the length field; returns the message length, or 0 after an overflow. */
size_t stun_finish(stun_writer *w);

/* Reads an XOR-PEER-ADDRESS-style value (family, port and address XORed as above). False when the
 * length does not match the family or the family is neither IPv4 nor IPv6. */
bool stun_read_xor_addr(const uint8_t *value, size_t len, const uint8_t tid[STUN_TRANSACTION_ID_LEN],
                        addr_t *out);

/* CRC-32 (ISO-HDLC, the zlib one) that FINGERPRINT is built on. */
uint32_t stun_crc32(const uint8_t *p, size_t n);

/* ---- ChannelData (RFC 8656 §12.4) and stream framing ---- */

#define STUN_CHANNEL_DATA_HEADER 4
/* Channel numbers: RFC 8656 uses 0x4000-0x4FFF; RFC 5766 clients may use up to 0x7FFF. */
#define STUN_CHANNEL_MIN 0x4000
#define STUN_CHANNEL_MAX 0x7FFF

/* True when a datagram's first byte starts ChannelData (top bits 01) rather than STUN (00). */
static inline bool stun_is_channel_data(uint8_t first) { return (first & 0xC0) == 0x40; }

/* Reads a ChannelData message: its channel number and how many data bytes follow the 4-byte
 * header. Over UDP the datagram must hold at least the header and the data (padding optional);
 * false otherwise or when the channel number is outside STUN_CHANNEL_MIN..MAX. */
bool stun_channel_data_read(const uint8_t *p, size_t len, uint16_t *channel, size_t *data_len);
/* Writes a ChannelData header before data (of data_len bytes) into hdr[0..4). Over a stream the
 * message is padded to a multiple of 4: returns the number of zero bytes to append after data. */
size_t stun_channel_data_header(uint8_t hdr[STUN_CHANNEL_DATA_HEADER], uint16_t channel,
                                size_t data_len, bool stream);

/* Over TCP, STUN messages and ChannelData share one byte stream (RFC 8656 §12.5). Given the bytes
 * at the front of the stream, returns the length of the first frame (STUN: 20 + its length;
 * ChannelData: 4 + its length rounded up to 4), 0 when fewer than 4 bytes are there to tell, or
 * -1 when the stream cannot be TURN (top bits 10 or 11, or a STUN length not a multiple of 4). */
long stun_stream_frame_len(const uint8_t *p, size_t avail);

/* ---- the Binding responder ---- */

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

/* The client side, for `dig-relay probe`: a Binding request with a FINGERPRINT (0 when cap is
 * too small), and the reflexive address in the success response to it (false for anything
 * else, or a response to another transaction). */
size_t stun_write_binding_request(const uint8_t tid[STUN_TRANSACTION_ID_LEN], uint8_t *out,
                                  size_t cap);
bool stun_parse_binding_response(const uint8_t *msg, size_t len,
                                 const uint8_t tid[STUN_TRANSACTION_ID_LEN], addr_t *mapped);

#endif
