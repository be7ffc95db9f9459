/* The STUN codec (see stun.h for what each layer does and the Binding policy). Every field is
 * read and written byte by byte, so buffers may sit at any address and no length is trusted
 * before it has been checked against the message. */
#include "stun.h"

#include "hash.h"

#include <string.h>

#define FINGERPRINT_XOR 0x5354554Eu

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

uint16_t stun_type(uint16_t method, enum stun_class cls)
{
    unsigned m = method, c = (unsigned)cls;
    return (uint16_t)((m & 0x000Fu) | (m & 0x0070u) << 1 | (m & 0x0F80u) << 2 | (c & 1u) << 4 |
                      (c & 2u) << 7);
}

/* ---------------- decoding ---------------- */

static bool is_turn_method(uint16_t method)
{
    switch (method) {
    case STUN_ALLOCATE:
    case STUN_REFRESH:
    case STUN_SEND:
    case STUN_DATA:
    case STUN_CREATE_PERMISSION:
    case STUN_CHANNEL_BIND:
        return true;
    default:
        return false;
    }
}

/* Attributes RFC 5389/8489 define: in a Binding request they are authentication we do not use
 * or response-only attributes with no meaning here; either way understood, not unknown. */
static bool stun_defines(uint16_t type)
{
    switch (type) {
    case STUN_ATTR_MAPPED_ADDRESS:
    case STUN_ATTR_USERNAME:
    case STUN_ATTR_MESSAGE_INTEGRITY:
    case STUN_ATTR_ERROR_CODE:
    case STUN_ATTR_UNKNOWN_ATTRIBUTES:
    case STUN_ATTR_REALM:
    case STUN_ATTR_NONCE:
    case STUN_ATTR_MESSAGE_INTEGRITY_SHA256:
    case STUN_ATTR_PASSWORD_ALGORITHM:
    case STUN_ATTR_USERHASH:
    case STUN_ATTR_XOR_MAPPED_ADDRESS:
        return true;
    default:
        return false;
    }
}

static bool turn_defines(uint16_t type)
{
    switch (type) {
    case STUN_ATTR_CHANNEL_NUMBER:
    case STUN_ATTR_LIFETIME:
    case STUN_ATTR_XOR_PEER_ADDRESS:
    case STUN_ATTR_DATA:
    case STUN_ATTR_XOR_RELAYED_ADDRESS:
    case STUN_ATTR_REQUESTED_ADDRESS_FAMILY:
    case STUN_ATTR_EVEN_PORT:
    case STUN_ATTR_REQUESTED_TRANSPORT:
    case STUN_ATTR_DONT_FRAGMENT:
    case STUN_ATTR_RESERVATION_TOKEN:
        return true;
    default:
        return false;
    }
}

static void note_unknown(uint16_t *list, size_t *n, uint16_t type)
{
    for (size_t i = 0; i < *n; i++)
        if (list[i] == type)
            return;
    if (*n < STUN_MAX_UNKNOWN)
        list[(*n)++] = type;
}

bool stun_read_xor_addr(const uint8_t *value, size_t len, const uint8_t tid[STUN_TRANSACTION_ID_LEN],
                        addr_t *out)
{
    uint8_t mask[16];
    size_t ip_len;

    if (len < 4 || (value[1] != 0x01 && value[1] != 0x02))
        return false;
    ip_len = value[1] == 0x01 ? 4 : 16;
    if (len != 4 + ip_len)
        return false;
    put32(mask, STUN_MAGIC_COOKIE);
    memcpy(mask + 4, tid, STUN_TRANSACTION_ID_LEN);
    memset(out, 0, sizeof *out);
    out->family = ip_len == 4 ? 4 : 6;
    out->port = (uint16_t)(get16(value + 2) ^ (STUN_MAGIC_COOKIE >> 16));
    for (size_t i = 0; i < ip_len; i++)
        out->ip[i] = (uint8_t)(value[4 + i] ^ mask[i]);
    return true;
}

static void set_span(stun_span *s, size_t value_at, size_t len)
{
    if (s->off == 0) {
        s->off = (uint16_t)value_at;
        s->len = (uint16_t)len;
    }
}

/* Reads one attribute TURN gives meaning to; false when its value is malformed. */
static bool read_turn_attr(stun_msg *m, const uint8_t *msg, uint16_t type, size_t at, size_t len)
{
    const uint8_t *v = msg + at;

    switch (type) {
    case STUN_ATTR_LIFETIME:
        if (len != 4)
            return false;
        if (!m->has_lifetime) {
            m->has_lifetime = true;
            m->lifetime = get32(v);
        }
        return true;
    case STUN_ATTR_REQUESTED_TRANSPORT:
        if (len != 4)
            return false;
        if (!m->has_transport) {
            m->has_transport = true;
            m->transport = v[0];
        }
        return true;
    case STUN_ATTR_REQUESTED_ADDRESS_FAMILY:
        if (len != 4)
            return false;
        if (!m->has_family) {
            m->has_family = true;
            m->family = v[0] == 0x01 ? 4 : v[0] == 0x02 ? 6 : 0;
        }
        return true;
    case STUN_ATTR_EVEN_PORT:
        if (len != 1)
            return false;
        if (!m->has_even_port) {
            m->has_even_port = true;
            m->even_port_reserve = (v[0] & 0x80) != 0;
        }
        return true;
    case STUN_ATTR_CHANNEL_NUMBER:
        if (len != 4)
            return false;
        if (!m->has_channel) {
            m->has_channel = true;
            m->channel = get16(v);
        }
        return true;
    case STUN_ATTR_DONT_FRAGMENT:
        if (len != 0)
            return false;
        m->dont_fragment = true;
        return true;
    case STUN_ATTR_RESERVATION_TOKEN:
        if (len != 8)
            return false;
        if (!m->has_reservation_token) {
            m->has_reservation_token = true;
            memcpy(m->reservation_token, v, 8);
        }
        return true;
    case STUN_ATTR_XOR_PEER_ADDRESS:
        if (m->n_peers == STUN_MAX_PEERS) {
            m->too_many_peers = true;
            return true;
        }
        if (!stun_read_xor_addr(v, len, m->transaction_id, &m->peers[m->n_peers]))
            return false;
        m->n_peers++;
        return true;
    case STUN_ATTR_DATA:
        set_span(&m->data, at, len);
        return true;
    default:
        return true;   /* XOR-RELAYED-ADDRESS: response-only, nothing to read in a request */
    }
}

bool stun_decode(const uint8_t *msg, size_t len, stun_msg *m)
{
    /* After MESSAGE-INTEGRITY only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT count; after
     * MESSAGE-INTEGRITY-SHA256 only FINGERPRINT does (RFC 8489 §14.5, §14.6). */
    bool after_integrity = false, after_integrity256 = false, turn;
    size_t pos = STUN_HEADER_LEN;
    uint16_t type0;

    memset(m, 0, sizeof *m);
    if (len < STUN_HEADER_LEN || len > 0xFFFF + STUN_HEADER_LEN)
        return false;
    type0 = get16(msg);
    if ((type0 & 0xC000) != 0 || get32(msg + 4) != STUN_MAGIC_COOKIE)
        return false;
    if (get16(msg + 2) % 4 != 0 || (size_t)get16(msg + 2) != len - STUN_HEADER_LEN)
        return false;
    m->method = (uint16_t)((type0 & 0x000F) | (type0 & 0x00E0) >> 1 | (type0 & 0x3E00) >> 2);
    m->cls = (uint8_t)((type0 >> 4 & 1) | (type0 >> 7 & 2));
    memcpy(m->transaction_id, msg + 8, STUN_TRANSACTION_ID_LEN);
    turn = is_turn_method(m->method);

    while (pos < len) {
        /* The total is a multiple of 4, so at least a 4-byte attribute header remains. */
        uint16_t type = get16(msg + pos);
        size_t value_len = get16(msg + pos + 2), at = pos + 4;
        if (padded(value_len) > len - at)
            return false;

        if (type == STUN_ATTR_FINGERPRINT) {
            if (value_len != 4 || at + 4 != len ||
                get32(msg + at) != (stun_crc32(msg, pos) ^ FINGERPRINT_XOR))
                return false;
            m->fingerprint = true;
        } else if (after_integrity256 ||
                   (after_integrity && type != STUN_ATTR_MESSAGE_INTEGRITY_SHA256)) {
            /* ignored: not covered by the integrity the sender computed */
        } else if (type == STUN_ATTR_MESSAGE_INTEGRITY) {
            if (value_len != STUN_INTEGRITY_LEN)
                m->malformed = m->malformed ? m->malformed : type;
            else
                m->integrity_at = (uint16_t)pos;
            after_integrity = true;
        } else if (type == STUN_ATTR_MESSAGE_INTEGRITY_SHA256) {
            after_integrity256 = true;
        } else if (type == STUN_ATTR_USERNAME) {
            set_span(&m->username, at, value_len);
        } else if (type == STUN_ATTR_REALM) {
            set_span(&m->realm, at, value_len);
        } else if (type == STUN_ATTR_NONCE) {
            set_span(&m->nonce, at, value_len);
        } else if (type == STUN_ATTR_SOFTWARE) {
            set_span(&m->software, at, value_len);
        } else if (type == STUN_ATTR_XOR_MAPPED_ADDRESS) {
            set_span(&m->mapped, at, value_len);
        } else if (turn && turn_defines(type)) {
            if (!read_turn_attr(m, msg, type, at, value_len) && !m->malformed)
                m->malformed = type;
        } else if (type < 0x8000 && !stun_defines(type)) {
            note_unknown(m->unknown, &m->n_unknown, type);
        }
        pos = at + padded(value_len);
    }
    return true;
}

bool stun_check_integrity(const uint8_t *msg, const stun_msg *m, const uint8_t *key, size_t key_len)
{
    uint8_t length[2], mac[HASH_SHA1_LEN];
    hash_hmac_sha1_ctx c;
    size_t at = m->integrity_at;

    if (at < STUN_HEADER_LEN)
        return false;
    /* The length the sender signed ends with the integrity attribute itself. */
    put16(length, (uint16_t)(at + STUN_INTEGRITY_ATTR_LEN - STUN_HEADER_LEN));
    hash_hmac_sha1_init(&c, key, key_len);
    hash_hmac_sha1_update(&c, msg, 2);
    hash_hmac_sha1_update(&c, length, 2);
    hash_hmac_sha1_update(&c, msg + 4, at - 4);
    hash_hmac_sha1_final(&c, mac);
    return hash_equal(mac, msg + at + 4, sizeof mac);
}

void stun_long_term_key(const void *username, size_t username_len, const char *realm,
                        const char *password, uint8_t key[16])
{
    hash_md5_ctx c;
    hash_md5_init(&c);
    hash_md5_update(&c, username, username_len);
    hash_md5_update(&c, ":", 1);
    hash_md5_update(&c, realm, strlen(realm));
    hash_md5_update(&c, ":", 1);
    hash_md5_update(&c, password, strlen(password));
    hash_md5_final(&c, key);
}

/* ---------------- writing ---------------- */

void stun_begin(stun_writer *w, uint8_t *buf, size_t cap, uint16_t type,
                const uint8_t tid[STUN_TRANSACTION_ID_LEN])
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->overflow = cap < STUN_HEADER_LEN;
    if (w->overflow)
        return;
    put16(buf, type);
    put16(buf + 2, 0);
    put32(buf + 4, STUN_MAGIC_COOKIE);
    memcpy(buf + 8, tid, STUN_TRANSACTION_ID_LEN);
    w->len = STUN_HEADER_LEN;
}

uint8_t *stun_put_space(stun_writer *w, uint16_t type, size_t len)
{
    uint8_t *p;
    size_t total = 4 + padded(len);

    if (w->overflow || len > 0xFFFF || total > w->cap - w->len ||
        w->len + total - STUN_HEADER_LEN > 0xFFFF) {
        w->overflow = true;
        return NULL;
    }
    p = w->buf + w->len;
    put16(p, type);
    put16(p + 2, (uint16_t)len);
    memset(p + 4 + len, 0, padded(len) - len);
    w->len += total;
    return p + 4;
}

void stun_put(stun_writer *w, uint16_t type, const void *value, size_t len)
{
    uint8_t *p = stun_put_space(w, type, len);
    if (p && len)
        memcpy(p, value, len);
}

void stun_put_u32(stun_writer *w, uint16_t type, uint32_t value)
{
    uint8_t *p = stun_put_space(w, type, 4);
    if (p)
        put32(p, value);
}

void stun_put_xor_addr(stun_writer *w, uint16_t type, const addr_t *address)
{
    addr_t a = *address;
    uint8_t mask[16], *p;
    size_t ip_len;

    addr_unmap(&a);
    ip_len = a.family == 4 ? 4 : 16;
    p = stun_put_space(w, type, 4 + ip_len);
    if (!p)
        return;
    put32(mask, STUN_MAGIC_COOKIE);
    memcpy(mask + 4, w->buf + 8, STUN_TRANSACTION_ID_LEN);
    p[0] = 0;
    p[1] = a.family == 4 ? 0x01 : 0x02;
    put16(p + 2, (uint16_t)(a.port ^ (STUN_MAGIC_COOKIE >> 16)));
    for (size_t i = 0; i < ip_len; i++)
        p[4 + i] = (uint8_t)(a.ip[i] ^ mask[i]);
}

void stun_put_error(stun_writer *w, unsigned code, const char *reason)
{
    size_t reason_len = strlen(reason);
    uint8_t *p = stun_put_space(w, STUN_ATTR_ERROR_CODE, 4 + reason_len);
    if (!p)
        return;
    p[0] = 0;
    p[1] = 0;
    p[2] = (uint8_t)(code / 100 % 8);
    p[3] = (uint8_t)(code % 100);
    memcpy(p + 4, reason, reason_len);
}

void stun_put_unknown(stun_writer *w, const uint16_t *types, size_t n)
{
    uint8_t *p = stun_put_space(w, STUN_ATTR_UNKNOWN_ATTRIBUTES, 2 * n);
    for (size_t i = 0; p && i < n; i++)
        put16(p + 2 * i, types[i]);
}

void stun_put_integrity(stun_writer *w, const uint8_t *key, size_t key_len)
{
    size_t at = w->len;
    uint8_t *p = stun_put_space(w, STUN_ATTR_MESSAGE_INTEGRITY, STUN_INTEGRITY_LEN);
    if (!p)
        return;
    put16(w->buf + 2, (uint16_t)(w->len - STUN_HEADER_LEN));
    hash_hmac_sha1(key, key_len, w->buf, at, p);
}

void stun_put_fingerprint(stun_writer *w)
{
    size_t at = w->len;
    uint8_t *p = stun_put_space(w, STUN_ATTR_FINGERPRINT, 4);
    if (!p)
        return;
    /* The length field must already count the FINGERPRINT when its CRC is taken. */
    put16(w->buf + 2, (uint16_t)(w->len - STUN_HEADER_LEN));
    put32(p, stun_crc32(w->buf, at) ^ FINGERPRINT_XOR);
}

size_t stun_finish(stun_writer *w)
{
    if (w->overflow)
        return 0;
    put16(w->buf + 2, (uint16_t)(w->len - STUN_HEADER_LEN));
    return w->len;
}

/* ---------------- ChannelData and stream framing ---------------- */

bool stun_channel_data_read(const uint8_t *p, size_t len, uint16_t *channel, size_t *data_len)
{
    if (len < STUN_CHANNEL_DATA_HEADER)
        return false;
    *channel = get16(p);
    *data_len = get16(p + 2);
    return *channel >= STUN_CHANNEL_MIN && *channel <= STUN_CHANNEL_MAX &&
           *data_len <= len - STUN_CHANNEL_DATA_HEADER;
}

size_t stun_channel_data_header(uint8_t hdr[STUN_CHANNEL_DATA_HEADER], uint16_t channel,
                                size_t data_len, bool stream)
{
    put16(hdr, channel);
    put16(hdr + 2, (uint16_t)data_len);
    return stream ? padded(data_len) - data_len : 0;
}

long stun_stream_frame_len(const uint8_t *p, size_t avail)
{
    size_t len;

    if (avail < 4)
        return 0;
    len = get16(p + 2);
    if ((p[0] & 0xC0) == 0x00)
        return len % 4 ? -1 : (long)(STUN_HEADER_LEN + len);
    if ((p[0] & 0xC0) == 0x40)
        return (long)(STUN_CHANNEL_DATA_HEADER + padded(len));
    return -1;
}

/* ---------------- the Binding responder ---------------- */

enum stun_verdict stun_parse(const uint8_t *msg, size_t len, stun_request *out)
{
    stun_msg m;

    memset(out, 0, sizeof *out);
    if (!stun_decode(msg, len, &m) || m.method != STUN_BINDING || m.cls != STUN_CLASS_REQUEST)
        return STUN_DROP;
    memcpy(out->transaction_id, m.transaction_id, STUN_TRANSACTION_ID_LEN);
    out->fingerprint = m.fingerprint;
    out->n_unknown = m.n_unknown;
    memcpy(out->unknown, m.unknown, sizeof out->unknown);
    out->verdict = out->n_unknown ? STUN_UNKNOWN_ATTRIBUTE : STUN_SUCCESS;
    return out->verdict;
}

size_t stun_write_response(const stun_request *req, const addr_t *source, uint8_t *out, size_t cap)
{
    stun_writer w;

    if (req->verdict == STUN_DROP || cap < STUN_RESPONSE_MAX)
        return 0;
    if (req->verdict == STUN_SUCCESS) {
        stun_begin(&w, out, cap, stun_type(STUN_BINDING, STUN_CLASS_SUCCESS), req->transaction_id);
        stun_put_xor_addr(&w, STUN_ATTR_XOR_MAPPED_ADDRESS, source);
    } else {
        stun_begin(&w, out, cap, stun_type(STUN_BINDING, STUN_CLASS_ERROR), req->transaction_id);
        stun_put_error(&w, 420, unknown_attribute_reason);
        stun_put_unknown(&w, req->unknown, req->n_unknown);
    }
    if (req->fingerprint)
        stun_put_fingerprint(&w);
    return stun_finish(&w);
}

/* ---- the client side, for `dig-relay probe` ---- */

size_t stun_write_binding_request(const uint8_t tid[STUN_TRANSACTION_ID_LEN], uint8_t *out,
                                  size_t cap)
{
    stun_writer w;
    stun_begin(&w, out, cap, stun_type(STUN_BINDING, STUN_CLASS_REQUEST), tid);
    stun_put_fingerprint(&w);
    return stun_finish(&w);
}

bool stun_parse_binding_response(const uint8_t *msg, size_t len,
                                 const uint8_t tid[STUN_TRANSACTION_ID_LEN], addr_t *mapped)
{
    stun_msg m;
    return stun_decode(msg, len, &m) && m.method == STUN_BINDING &&
           m.cls == STUN_CLASS_SUCCESS &&
           memcmp(m.transaction_id, tid, STUN_TRANSACTION_ID_LEN) == 0 && m.mapped.off != 0 &&
           stun_read_xor_addr(msg + m.mapped.off, m.mapped.len, tid, mapped);
}
