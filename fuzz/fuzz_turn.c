/* libFuzzer harness for TURN: the STUN decoder and writer as TURN uses them, ChannelData and TCP
 * stream framing, and the allocation state machine (turn.c) on a fake clock with fake relayed
 * sockets.
 *
 * Input: records of [command byte][length byte][length bytes of payload]. The command's low 3
 * bits pick the action, its high bits are a client or relay index where one is needed:
 *   0  the payload is a datagram from UDP client (cmd >> 3) & 3
 *   1  a request the harness signs for client (cmd >> 3) & 3 with the nonce it was last given:
 *      payload[0] picks the method (Allocate, Refresh, CreatePermission, ChannelBind, Binding,
 *      or a Send indication, unsigned), payload[1] the username (valid, other user, expired,
 *      not REST) and whether to add FINGERPRINT; the rest is appended as raw attributes (cut to
 *      a multiple of 4)
 *   2  the payload is a datagram from peer payload[0] % 8 (of a fixed set that includes refused
 *      addresses) to open relay (cmd >> 3)
 *   3  the clock advances payload[0..1] seconds (little-endian) and payload[2] * 10 ms
 *   4  the timer of open relay (cmd >> 3) fires
 *   5  the TCP client (cmd >> 3) & 1 closes
 *   6  ChannelData from client (cmd >> 3) & 3: channel 0x4000 + payload[0] (0x7FF0 + it when
 *      payload[1] is odd), data the rest
 *   7  the payload is a byte stream from TCP client (cmd >> 3) & 1, cut into frames with
 *      stun_stream_frame_len (a frame cut short by the end of the record is dropped)
 * Clients 0 and 1 are UDP (IPv4 and IPv4-mapped), 2 and 3 TCP (the TCP actions use 2 + index).
 *
 * Checked besides the sanitizers: every reply to a client is a well-formed STUN response of the
 * request's method and transaction id, at most TURN_REPLY_MAX bytes, fingerprinted exactly when
 * the request was, never signed for a request the harness did not sign, and when signed its
 * integrity verifies with the client's key (every TURN success is signed, Binding never is);
 * ChannelData is never answered; every datagram to a peer goes out on an open relay to an IPv4
 * peer the policy allows, with its data inside the client's message; what a peer's datagram
 * becomes for the client is ChannelData carrying exactly those bytes (padded to 4 over TCP) or a
 * Data indication naming that peer and carrying them, and only for allowed peers; the relays
 * never exceed the allocation limit, are closed only once and never used after; freeing the
 * server closes every relay. Client messages are passed in exactly-sized heap copies. */
#include "stun.h"
#include "turn.h"

#include <stdlib.h>
#include <string.h>

#define TF_RELAYS 64
#define TF_MAX_ALLOCATIONS 6
#define TF_MAX_PER_USER 4
#define TF_WALL 1700000000ull

typedef struct {
    turn_alloc *alloc;
    bool open;
    uint16_t port;
} tf_relay;

static tf_relay tf_relays[TF_RELAYS];
static size_t tf_n_relays, tf_open;
static uint16_t tf_next_port;

static void *tf_open_relay(void *ctx, turn_alloc *a, uint8_t family, uint16_t want, bool even,
                           uint16_t *port)
{
    (void)ctx;
    if (family != 4 || tf_n_relays == TF_RELAYS)
        return NULL;
    if (want && (want < 49152 || want % 5 == 0))    /* some exact ports are "taken" */
        return NULL;
    tf_relay *r = &tf_relays[tf_n_relays++];
    r->alloc = a;
    r->open = true;
    if (want) {
        r->port = want;
    } else {
        if (tf_next_port < 49152)
            tf_next_port = 49152;
        if (even && tf_next_port % 2)
            tf_next_port++;
        r->port = tf_next_port;
        tf_next_port = (uint16_t)(tf_next_port + 1);
    }
    if (even && !want && r->port % 2)
        abort();
    *port = r->port;
    if (++tf_open > TF_MAX_ALLOCATIONS)
        abort();
    return r;
}

static void tf_close_relay(void *ctx, void *relay)
{
    tf_relay *r = relay;
    (void)ctx;
    if (!r->open)
        abort();
    r->open = false;
    tf_open--;
}

static void tf_expiry(void *ctx, void *relay, uint64_t due)
{
    (void)ctx;
    (void)due;
    if (!((tf_relay *)relay)->open)
        abort();
}

static const char tf_secret[] = "fuzz-secret";

typedef struct {
    turn_client tc;
    char nonce[64];
    uint32_t tid_counter;
} tf_client;

static tf_client tf_clients[4];
static turn_config tf_cfg;
static turn_server *tf_srv;
static uint64_t tf_now;
static uint8_t tf_reply[TURN_REPLY_MAX];

static const char *tf_usernames[4] = { "1700003600:alpha", "1700007200:beta", "1700000000:alpha", "nobody" };

static void tf_key(const char *username, uint8_t key[16])
{
    char password[29];
    turn_rest_password((const uint8_t *)tf_secret, sizeof tf_secret - 1, username, strlen(username), password);
    stun_long_term_key(username, strlen(username), "dig.net", password, key);
}

static void tf_setup(void)
{
    static const turn_env env = { NULL, tf_open_relay, tf_close_relay, tf_expiry };
    memset(&tf_cfg, 0, sizeof tf_cfg);
    tf_cfg.realm = "dig.net";
    tf_cfg.secret = (const uint8_t *)tf_secret;
    tf_cfg.secret_len = sizeof tf_secret - 1;
    tf_cfg.public_ip.family = 4;
    memcpy(tf_cfg.public_ip.ip, "\xcb\x00\x71\x0a", 4);
    tf_cfg.max_allocations = TF_MAX_ALLOCATIONS;
    tf_cfg.max_per_user = TF_MAX_PER_USER;
    tf_cfg.max_bps = 4000;
    tf_cfg.own[0] = tf_cfg.public_ip;
    tf_cfg.n_own = 1;
    tf_cfg.tracked_sources = 16;
    tf_cfg.seed[0] = 11;
    tf_cfg.seed[1] = 12;
    memset(tf_cfg.nonce_key, 3, sizeof tf_cfg.nonce_key);
    tf_n_relays = 0;
    tf_open = 0;
    tf_next_port = 49152;
    tf_now = 5000000;
    memset(tf_clients, 0, sizeof tf_clients);
    for (int i = 0; i < 4; i++) {
        addr_t *a = &tf_clients[i].tc.addr;
        tf_clients[i].tc.transport = i < 2 ? TURN_UDP : TURN_TCP;
        tf_clients[i].tc.conn = i < 2 ? NULL : &tf_clients[i];
        if (i == 1) {
            a->family = 6;
            memcpy(a->ip, "\0\0\0\0\0\0\0\0\0\0\xff\xff\xc6\x33\x64\x07", 16);
        } else {
            a->family = 4;
            memcpy(a->ip, "\xc6\x33\x64\x07", 4);
        }
        a->port = (uint16_t)(40000 + i);
    }
    tf_srv = turn_new(&tf_cfg, &env);
    if (!tf_srv)
        abort();
}

/* Checks a reply to a client's STUN request and remembers any nonce it hands out. */
static void tf_check_reply(tf_client *c, const uint8_t *req, size_t req_len, turn_out o,
                           const uint8_t *key)
{
    stun_msg rq, rp;
    if (o.kind == TURN_OUT_NONE)
        return;
    if (o.kind != TURN_OUT_CLIENT || o.data != tf_reply || o.len > TURN_REPLY_MAX ||
        o.client != &c->tc)
        abort();
    if (!stun_decode(req, req_len, &rq) || !stun_decode(o.data, o.len, &rp))
        abort();
    if (rp.method != rq.method || memcmp(rp.transaction_id, rq.transaction_id, 12) != 0 ||
        (rp.cls != STUN_CLASS_SUCCESS && rp.cls != STUN_CLASS_ERROR) || rp.fingerprint != rq.fingerprint)
        abort();
    if (rp.integrity_at && (!key || !stun_check_integrity(o.data, &rp, key, 16)))
        abort();
    /* A signed request that authenticated is answered signed; Binding never is. */
    if (rq.method == STUN_BINDING && rp.integrity_at)
        abort();
    if (rp.cls == STUN_CLASS_SUCCESS && rq.method != STUN_BINDING && !rp.integrity_at)
        abort();
    if (rp.nonce.off && rp.nonce.len < sizeof c->nonce) {
        memcpy(c->nonce, o.data + rp.nonce.off, rp.nonce.len);
        c->nonce[rp.nonce.len] = '\0';
    }
}

/* A datagram to a peer: open relay, allowed peer, data inside the client's message. */
static void tf_check_to_peer(turn_out o, const uint8_t *msg, size_t len)
{
    const tf_relay *r = o.relay;
    if (r < tf_relays || r >= tf_relays + tf_n_relays || !r->open)
        abort();
    if (!turn_peer_allowed(&tf_cfg, &o.peer) || o.peer.family != 4)
        abort();
    if (o.data < msg || o.data + o.len > msg + len)
        abort();
}

static turn_out tf_client_msg(tf_client *c, const uint8_t *msg, size_t len, const uint8_t *key)
{
    turn_out o = turn_on_client(tf_srv, &c->tc, msg, len, tf_now, TF_WALL, tf_reply);
    if (o.kind == TURN_OUT_PEER)
        tf_check_to_peer(o, msg, len);
    else if (len && !stun_is_channel_data(msg[0]))
        tf_check_reply(c, msg, len, o, key);
    else if (o.kind != TURN_OUT_NONE)
        abort();   /* ChannelData is never answered */
    return o;
}

static void tf_signed(tf_client *c, const uint8_t *p, size_t n)
{
    static const uint16_t types[8] = { 0x0003, 0x0004, 0x0008, 0x0009, 0x0001, 0x0016, 0x0003, 0x0009 };
    uint8_t msg[600], tid[12] = { 0 }, key[16];
    const char *user;
    stun_writer w;
    bool sign, fp;
    size_t len, raw;

    if (n < 2)
        return;
    uint16_t type = types[p[0] & 7];
    user = tf_usernames[p[1] & 3];
    fp = (p[1] & 4) != 0;
    sign = type != 0x0001 && type != 0x0016;
    tf_key(user, key);
    c->tid_counter++;
    memcpy(tid, &c->tid_counter, sizeof c->tid_counter);
    tid[8] = (uint8_t)(c - tf_clients);
    stun_begin(&w, msg, sizeof msg, type, tid);
    raw = (n - 2) & ~(size_t)3;
    if (raw > 400)
        raw = 400;
    if (raw) {
        memcpy(msg + STUN_HEADER_LEN, p + 2, raw);
        w.len += raw;
    }
    if (sign) {
        stun_put(&w, STUN_ATTR_USERNAME, user, strlen(user));
        stun_put(&w, STUN_ATTR_REALM, "dig.net", 7);
        stun_put(&w, STUN_ATTR_NONCE, c->nonce, strlen(c->nonce));
        stun_put_integrity(&w, key, sizeof key);
    }
    if (fp)
        stun_put_fingerprint(&w);
    len = stun_finish(&w);
    if (len)
        tf_client_msg(c, msg, len, sign ? key : NULL);
}

static void tf_from_peer(size_t relay_index, const uint8_t *p, size_t n)
{
    static const char *peers[8] = { "\xc6\x33\x64\x32", "\xc6\x33\x64\x33", "\x7f\x00\x00\x01",
                                    "\x0a\x00\x00\x01", "\x08\x08\x08\x08", "\xcb\x00\x71\x0a",
                                    "\xc6\x33\x64\x32", "\x00\x00\x00\x00" };
    static uint8_t buf[TURN_PEER_HEADROOM + 1500 + TURN_PEER_TAILROOM];
    tf_relay *r;
    addr_t peer;
    size_t len;

    if (n < 1 || tf_n_relays == 0)
        return;
    r = &tf_relays[relay_index % tf_n_relays];
    if (!r->open)
        return;
    memset(&peer, 0, sizeof peer);
    peer.family = 4;
    memcpy(peer.ip, peers[p[0] & 7], 4);
    peer.port = (uint16_t)(7000 + ((p[0] >> 3) & 1));
    len = n - 1 > 1500 ? 1500 : n - 1;
    memcpy(buf + TURN_PEER_HEADROOM, p + 1, len);
    turn_out o = turn_on_peer(tf_srv, r->alloc, &peer, buf + TURN_PEER_HEADROOM, len, tf_now);
    if (o.kind == TURN_OUT_NONE)
        return;
    if (o.kind != TURN_OUT_CLIENT || o.data < buf || o.data + o.len > buf + sizeof buf)
        abort();
    if (!turn_peer_allowed(&tf_cfg, &peer))
        abort();
    if (stun_is_channel_data(o.data[0])) {
        uint16_t ch;
        size_t dlen;
        if (!stun_channel_data_read(o.data, o.len, &ch, &dlen) || dlen != len ||
            memcmp(o.data + 4, p + 1, len) != 0)
            abort();
        if (o.client->transport == TURN_TCP ? o.len != ((4 + len + 3) & ~(size_t)3) : o.len != 4 + len)
            abort();
    } else {
        stun_msg m;
        if (!stun_decode(o.data, o.len, &m) || m.method != STUN_DATA || m.cls != STUN_CLASS_INDICATION ||
            m.n_peers != 1 || m.peers[0].port != peer.port || memcmp(m.peers[0].ip, peer.ip, 4) != 0 ||
            m.data.len != len || memcmp(o.data + m.data.off, p + 1, len) != 0)
            abort();
    }
}

/* A client message in an exactly-sized heap copy, so reading past it trips AddressSanitizer. */
static void tf_exact(tf_client *c, const uint8_t *p, size_t n)
{
    uint8_t *m = malloc(n ? n : 1);
    if (!m)
        return;
    memcpy(m, p, n);
    tf_client_msg(c, m, n, NULL);
    free(m);
}

static void tf_stream(tf_client *c, const uint8_t *p, size_t n)
{
    while (n > 0) {
        long f = stun_stream_frame_len(p, n);
        if (f < 0)
            return;             /* the connection would be closed */
        if (f == 0 || (size_t)f > n)
            return;             /* waits for more */
        if (f < 4)
            abort();
        tf_exact(c, p, (size_t)f);
        p += f;
        n -= (size_t)f;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tf_setup();
    while (size >= 2) {
        uint8_t cmd = data[0];
        size_t n = data[1] < size - 2 ? data[1] : size - 2;
        const uint8_t *p = data + 2;
        unsigned idx = cmd >> 3;
        data += 2 + n;
        size -= 2 + n;
        switch (cmd & 7) {
        case 0:
            tf_exact(&tf_clients[idx & 3], p, n);
            break;
        case 1:
            tf_signed(&tf_clients[idx & 3], p, n);
            break;
        case 2:
            tf_from_peer(idx, p, n);
            break;
        case 3:
            if (n >= 3)
                tf_now += ((uint64_t)p[0] | (uint64_t)p[1] << 8) * 1000 + (uint64_t)p[2] * 10;
            break;
        case 4:
            if (tf_n_relays && tf_relays[idx % tf_n_relays].open)
                turn_on_expiry(tf_srv, tf_relays[idx % tf_n_relays].alloc, tf_now);
            break;
        case 5:
            turn_on_client_closed(tf_srv, &tf_clients[2 + (idx & 1)].tc);
            break;
        case 6:
            if (n >= 2) {
                uint16_t ch = (uint16_t)((p[1] & 1 ? 0x7FF0 : 0x4000) + p[0]);
                uint8_t cd[4 + 255];
                cd[0] = (uint8_t)(ch >> 8);
                cd[1] = (uint8_t)ch;
                cd[2] = (uint8_t)((n - 2) >> 8);
                cd[3] = (uint8_t)(n - 2);
                memcpy(cd + 4, p + 2, n - 2);
                tf_exact(&tf_clients[idx & 3], cd, n + 2);
            }
            break;
        default:
            tf_stream(&tf_clients[2 + (idx & 1)], p, n);
            break;
        }
        turn_stats st;
        turn_get_stats(tf_srv, &st);
        if (st.allocations > TF_MAX_ALLOCATIONS || tf_open > TF_MAX_ALLOCATIONS)
            abort();
    }
    turn_free(tf_srv);
    if (tf_open != 0)
        abort();
    return 0;
}
