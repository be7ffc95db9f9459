/* The TURN state machine (see turn.h). One allocation is a plain struct: its client, its relayed
 * socket handle, its expiry, and small arrays of permissions and channels that are scanned (they
 * hold a handful of peers; TURN_MAX_* bound them). Allocations sit in a keyed hash table by
 * 5-tuple; users (a username's id part) in another, counting allocations for the per-user quota.
 * An EVEN-PORT reservation (R bit) is an allocation without a client that waits, on its own list,
 * for the RESERVATION-TOKEN that claims it. */
#include "turn.h"

#include "hash.h"
#include "ratelimit.h"
#include "stun.h"

#include <stdlib.h>
#include <string.h>

#define UDP_PROTOCOL 17
#define TOKEN_LEN 8
#define NONCE_LEN 32                /* 8 hex digits of issue time, 24 of MAC */
#define REST_KEY_LEN HASH_MD5_LEN
#define RESERVE_ATTEMPTS 8

typedef struct {
    uint8_t family;
    uint8_t ip[16];
    uint64_t expires_ms;
} permission;

typedef struct {
    uint16_t number;
    addr_t peer;
    uint64_t expires_ms;
} channel;

typedef struct {
    uint64_t tokens;
    uint64_t last_ms;
} bucket;

typedef struct turn_user {
    struct turn_user *next;
    uint64_t hash;
    uint32_t count;                 /* allocations and reservations it holds */
    size_t id_len;
    char id[];
} turn_user;

struct turn_alloc {
    turn_alloc *next;               /* hash chain, or the reservation list */
    uint64_t hash;
    bool reserved;                  /* a reservation: no client yet */
    uint8_t token[TOKEN_LEN];       /* reservation: the token that claims it */
    bool gave_token;                /* allocation: its success carried token_out */
    uint8_t token_out[TOKEN_LEN];
    turn_client client;
    void *relay;
    addr_t relayed;
    uint64_t expires_ms;
    uint8_t tid[STUN_TRANSACTION_ID_LEN];   /* of the Allocate that created it */
    uint32_t lifetime;              /* granted by that Allocate */
    turn_user *user;
    size_t username_len;
    char username[TURN_MAX_USERNAME];
    size_t n_perms, n_chans;
    permission perms[TURN_MAX_PERMISSIONS];
    channel chans[TURN_MAX_CHANNELS];
    bucket up, down;                /* --turn-max-bps toward peers and toward the client */
};

struct turn_server {
    const turn_config *cfg;
    turn_env env;
    turn_alloc **table;
    turn_user **users;
    uint32_t mask;
    turn_alloc *reservations;
    uint32_t live;                  /* allocations + reservations: the global quota */
    stun_limiter challenges;
    uint64_t counter;               /* for indication transaction ids and tokens */
    turn_stats stats;
};

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

/* ---------------- peer policy ---------------- */

static bool v4_in(const uint8_t *ip, uint8_t b0, uint8_t b1, unsigned bits)
{
    uint32_t v = (uint32_t)ip[0] << 24 | (uint32_t)ip[1] << 16 | (uint32_t)ip[2] << 8 | ip[3];
    uint32_t net = (uint32_t)b0 << 24 | (uint32_t)b1 << 16;
    uint32_t mask = 0xffffffffu << (32 - bits);
    return (v & mask) == (net & mask);
}

static bool v4_refused(const uint8_t *ip)
{
    return v4_in(ip, 0, 0, 8) ||        /* "this network", 0.0.0.0 included */
           v4_in(ip, 10, 0, 8) ||       /* private */
           v4_in(ip, 100, 64, 10) ||    /* CGNAT */
           v4_in(ip, 127, 0, 8) ||      /* loopback */
           v4_in(ip, 169, 254, 16) ||   /* link-local */
           v4_in(ip, 172, 16, 12) ||    /* private */
           v4_in(ip, 192, 168, 16) ||   /* private */
           v4_in(ip, 224, 0, 4) ||      /* multicast */
           v4_in(ip, 240, 0, 4);        /* reserved, 255.255.255.255 included */
}

static bool zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static bool is_loopback(const addr_t *a)
{
    if (a->family == 4)
        return a->ip[0] == 127;
    return zero(a->ip, 15) && a->ip[15] == 1;
}

static bool v6_refused(const uint8_t *ip)
{
    static const uint8_t nat64[12] = { 0, 0x64, 0xff, 0x9b };
    if (zero(ip, 15) && ip[15] <= 1)
        return true;                                        /* :: and ::1 */
    if (ip[0] == 0xff || (ip[0] & 0xfe) == 0xfc)
        return true;                                        /* multicast, unique-local */
    if (ip[0] == 0xfe && (ip[1] & 0x80) == 0x80)
        return true;                                        /* link-local fe80::/10, site-local */
    if (memcmp(ip, nat64, 12) == 0)
        return v4_refused(ip + 12);                         /* NAT64 64:ff9b::/96 */
    return memcmp(ip, nat64, 4) == 0 && ip[4] == 0 && ip[5] == 1;   /* local NAT64 64:ff9b:1::/48 */
}

static bool same_ip(const addr_t *x, const addr_t *y)
{
    addr_t a = *x, b = *y;
    addr_unmap(&a);
    addr_unmap(&b);
    return a.family == b.family && memcmp(a.ip, b.ip, a.family == 4 ? 4 : 16) == 0;
}

bool turn_peer_allowed(const turn_config *cfg, const addr_t *peer)
{
    if (peer->family == 6 && zero(peer->ip, 10) && !(zero(peer->ip, 15) && peer->ip[15] <= 1) &&
        ((peer->ip[10] == 0xff && peer->ip[11] == 0xff) || (peer->ip[10] == 0 && peer->ip[11] == 0)))
        return false;                                       /* IPv4-mapped or -compatible */
    if (cfg->deny && cidr_list_contains(cfg->deny, peer))
        return false;
    if (cfg->allow && cidr_list_contains(cfg->allow, peer))
        return true;
    if (cfg->allow_loopback && is_loopback(peer))
        return true;
    if (peer->family == 4 ? v4_refused(peer->ip) : v6_refused(peer->ip))
        return false;
    for (size_t i = 0; i < cfg->n_own; i++)
        if (same_ip(&cfg->own[i], peer))
            return false;
    return true;
}

/* ---------------- tables ---------------- */

static uint64_t client_hash(const turn_server *s, const turn_client *c)
{
    uint8_t key[28];
    uintptr_t conn = (uintptr_t)c->conn;
    key[0] = (uint8_t)c->transport;
    key[1] = c->addr.family;
    memcpy(key + 2, c->addr.ip, 16);
    put16(key + 18, c->addr.port);
    for (int i = 0; i < 8; i++)
        key[20 + i] = (uint8_t)((uint64_t)conn >> (8 * i));
    return hash_siphash13(s->cfg->seed, key, sizeof key);
}

static bool same_client(const turn_client *x, const turn_client *y)
{
    return x->transport == y->transport && x->conn == y->conn && x->addr.family == y->addr.family &&
           x->addr.port == y->addr.port && memcmp(x->addr.ip, y->addr.ip, 16) == 0;
}

static turn_user *user_find(turn_server *s, const char *id, size_t len, uint64_t *hash_out)
{
    uint64_t h = hash_siphash13(s->cfg->seed, id, len);
    *hash_out = h;
    for (turn_user *u = s->users[h & s->mask]; u; u = u->next)
        if (u->hash == h && u->id_len == len && memcmp(u->id, id, len) == 0)
            return u;
    return NULL;
}

/* The user record for id with one more allocation counted; NULL when out of memory. */
static turn_user *user_take(turn_server *s, const char *id, size_t len)
{
    uint64_t h;
    turn_user *u = user_find(s, id, len, &h);
    if (!u) {
        u = malloc(sizeof *u + len);
        if (!u)
            return NULL;
        u->hash = h;
        u->count = 0;
        u->id_len = len;
        memcpy(u->id, id, len);
        u->next = s->users[h & s->mask];
        s->users[h & s->mask] = u;
    }
    u->count++;
    return u;
}

static void user_release(turn_server *s, turn_user *u)
{
    if (--u->count > 0)
        return;
    for (turn_user **p = &s->users[u->hash & s->mask]; *p; p = &(*p)->next) {
        if (*p == u) {
            *p = u->next;
            break;
        }
    }
    free(u);
}

static turn_alloc *alloc_lookup(turn_server *s, const turn_client *c)
{
    uint64_t h = client_hash(s, c);
    for (turn_alloc *a = s->table[h & s->mask]; a; a = a->next)
        if (a->hash == h && same_client(&a->client, c))
            return a;
    return NULL;
}

static void alloc_unlink(turn_server *s, turn_alloc *a)
{
    turn_alloc **p = a->reserved ? &s->reservations : &s->table[a->hash & s->mask];
    for (; *p; p = &(*p)->next) {
        if (*p == a) {
            *p = a->next;
            return;
        }
    }
}

static void alloc_destroy(turn_server *s, turn_alloc *a)
{
    alloc_unlink(s, a);
    if (!a->reserved)
        s->stats.allocations--;
    s->live--;
    user_release(s, a->user);
    s->env.relay_close(s->env.ctx, a->relay);
    free(a);
}

/* The client's live allocation; one whose time is up is deleted on the way. */
static turn_alloc *alloc_find(turn_server *s, const turn_client *c, uint64_t now_ms)
{
    turn_alloc *a = alloc_lookup(s, c);
    if (a && now_ms >= a->expires_ms) {
        alloc_destroy(s, a);
        return NULL;
    }
    return a;
}

/* ---------------- permissions, channels, bandwidth ---------------- */

static permission *perm_find(turn_alloc *a, const addr_t *peer, uint64_t now_ms)
{
    size_t len = peer->family == 4 ? 4 : 16;
    for (size_t i = 0; i < a->n_perms; i++) {
        permission *p = &a->perms[i];
        if (p->family == peer->family && memcmp(p->ip, peer->ip, len) == 0)
            return now_ms < p->expires_ms ? p : NULL;
    }
    return NULL;
}

/* Drops expired permissions and channels past their quiet time, freeing slots. */
static void compact(turn_alloc *a, uint64_t now_ms)
{
    size_t k = 0;
    for (size_t i = 0; i < a->n_perms; i++)
        if (now_ms < a->perms[i].expires_ms)
            a->perms[k++] = a->perms[i];
    a->n_perms = k;
    k = 0;
    for (size_t i = 0; i < a->n_chans; i++)
        if (now_ms < a->chans[i].expires_ms + TURN_CHANNEL_QUIET * 1000ull)
            a->chans[k++] = a->chans[i];
    a->n_chans = k;
}

static bool perm_exists(const turn_alloc *a, const addr_t *peer)
{
    for (size_t i = 0; i < a->n_perms; i++)
        if (a->perms[i].family == peer->family && memcmp(a->perms[i].ip, peer->ip, 16) == 0)
            return true;
    return false;
}

/* Installs or refreshes; the caller made sure a slot is free for a new one. */
static void perm_install(turn_alloc *a, const addr_t *peer, uint64_t now_ms)
{
    permission *p = NULL;
    for (size_t i = 0; i < a->n_perms && !p; i++)
        if (a->perms[i].family == peer->family && memcmp(a->perms[i].ip, peer->ip, 16) == 0)
            p = &a->perms[i];
    if (!p) {
        p = &a->perms[a->n_perms++];
        p->family = peer->family;
        memcpy(p->ip, peer->ip, 16);
    }
    p->expires_ms = now_ms + TURN_PERMISSION_LIFETIME * 1000ull;
}

static bool same_transport_addr(const addr_t *x, const addr_t *y)
{
    return x->family == y->family && x->port == y->port && memcmp(x->ip, y->ip, 16) == 0;
}

static channel *chan_by_number(turn_alloc *a, uint16_t number)
{
    for (size_t i = 0; i < a->n_chans; i++)
        if (a->chans[i].number == number)
            return &a->chans[i];
    return NULL;
}

static channel *chan_by_peer(turn_alloc *a, const addr_t *peer)
{
    for (size_t i = 0; i < a->n_chans; i++)
        if (same_transport_addr(&a->chans[i].peer, peer))
            return &a->chans[i];
    return NULL;
}

static bool bucket_take(bucket *b, uint64_t rate, size_t n, uint64_t now_ms)
{
    if (rate == 0)
        return true;
    if (now_ms - b->last_ms >= 1000 || now_ms < b->last_ms) {
        b->tokens = rate;
    } else {
        uint64_t add = (now_ms - b->last_ms) * rate / 1000;
        b->tokens = b->tokens + add > rate ? rate : b->tokens + add;
    }
    b->last_ms = now_ms;
    if (b->tokens < n)
        return false;
    b->tokens -= n;
    return true;
}

/* ---------------- credentials and nonces ---------------- */

void turn_rest_password(const uint8_t *secret, size_t secret_len, const char *username,
                        size_t username_len, char out[29])
{
    uint8_t mac[HASH_SHA1_LEN];
    hash_hmac_sha1(secret, secret_len, username, username_len, mac);
    base64_encode(mac, sizeof mac, out);
}

/* "<expiry>" or "<expiry>:<id>": false when the expiry is not a decimal Unix time. */
static bool rest_username(const uint8_t *u, size_t n, uint64_t *expiry, size_t *id_at)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; i < n && u[i] >= '0' && u[i] <= '9'; i++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(u[i] - '0');
    }
    if (i == 0 || (i < n && u[i] != ':'))
        return false;
    *expiry = v;
    *id_at = i < n ? i + 1 : n;
    return true;
}

static void nonce_for(const turn_server *s, const turn_client *c, uint32_t issued, char out[NONCE_LEN])
{
    uint8_t in[24], mac[HASH_SHA1_LEN], bytes[16];
    char text[2 * sizeof bytes + 1];

    put32(in, issued);
    in[4] = (uint8_t)c->transport;
    in[5] = c->addr.family;
    memcpy(in + 6, c->addr.ip, 16);
    put16(in + 22, c->addr.port);
    hash_hmac_sha1(s->cfg->nonce_key, sizeof s->cfg->nonce_key, in, sizeof in, mac);
    put32(bytes, issued);
    memcpy(bytes + 4, mac, 12);
    hex_encode(bytes, sizeof bytes, text);
    memcpy(out, text, NONCE_LEN);
}

static bool nonce_valid(const turn_server *s, const turn_client *c, const uint8_t *nonce, size_t len,
                        uint64_t now_ms)
{
    char expect[NONCE_LEN];
    uint32_t issued = 0, now_s = (uint32_t)(now_ms / 1000);

    if (len != NONCE_LEN)
        return false;
    for (size_t i = 0; i < 8; i++) {
        uint8_t ch = nonce[i];
        unsigned d = ch >= '0' && ch <= '9' ? (unsigned)(ch - '0') :
                     ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10) : 16;
        if (d > 15)
            return false;
        issued = issued << 4 | d;
    }
    if (issued > now_s || now_s - issued >= TURN_NONCE_LIFETIME)
        return false;
    nonce_for(s, c, issued, expect);
    return hash_equal(expect, nonce, NONCE_LEN);
}

/* ---------------- requests ---------------- */

typedef struct {
    turn_server *s;
    const turn_client *from;    /* as the caller gave it: replies go back there */
    turn_client who;            /* the same, normalised (unmapped): the 5-tuple key */
    const uint8_t *msg;
    size_t len;
    const stun_msg *m;
    uint8_t *reply;
    uint64_t now_ms;
    bool authed;
    uint8_t key[REST_KEY_LEN];
    const uint8_t *username;
    size_t username_len;
    size_t id_at;               /* where the id part starts in username */
    stun_writer w;
} request;

static const char *reason(unsigned code)
{
    switch (code) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 420: return "Unknown Attribute";
    case 437: return "Allocation Mismatch";
    case 438: return "Stale Nonce";
    case 440: return "Address Family not Supported";
    case 441: return "Wrong Credentials";
    case 442: return "Unsupported Transport Protocol";
    case 443: return "Peer Address Family Mismatch";
    case 486: return "Allocation Quota Reached";
    case 508: return "Insufficient Capacity";
    default:  return "Server Error";
    }
}

static void begin(request *r, enum stun_class cls)
{
    stun_begin(&r->w, r->reply, TURN_REPLY_MAX, stun_type(r->m->method, cls), r->m->transaction_id);
}

/* Signs (when authenticated), fingerprints (when the request had one) and hands the reply out. */
static turn_out finish(request *r)
{
    turn_out out;
    size_t n;

    memset(&out, 0, sizeof out);
    if (r->authed)
        stun_put_integrity(&r->w, r->key, sizeof r->key);
    if (r->m->fingerprint)
        stun_put_fingerprint(&r->w);
    n = stun_finish(&r->w);
    if (n == 0)
        return out;
    out.kind = TURN_OUT_CLIENT;
    out.data = r->reply;
    out.len = n;
    out.client = r->from;
    return out;
}

/* Unauthenticated answers over UDP spend the challenge budget; over TCP the handshake already
 * proved the source. */
static bool may_answer(request *r)
{
    if (r->authed || r->from->transport != TURN_UDP ||
        stun_limiter_allow(&r->s->challenges, &r->who.addr, r->now_ms))
        return true;
    r->s->stats.challenges_dropped++;
    return false;
}

static turn_out error(request *r, unsigned code)
{
    turn_out none;
    memset(&none, 0, sizeof none);
    if (!may_answer(r))
        return none;
    begin(r, STUN_CLASS_ERROR);
    stun_put_error(&r->w, code, reason(code));
    if (code == 401 || code == 438) {
        char nonce[NONCE_LEN];
        nonce_for(r->s, &r->who, (uint32_t)(r->now_ms / 1000), nonce);
        stun_put(&r->w, STUN_ATTR_REALM, r->s->cfg->realm, strlen(r->s->cfg->realm));
        stun_put(&r->w, STUN_ATTR_NONCE, nonce, sizeof nonce);
        r->s->stats.auth_failures++;
    }
    if (code == 420)
        stun_put_unknown(&r->w, r->m->unknown, r->m->n_unknown);
    if (code == 403)
        r->s->stats.refused_peers++;
    return finish(r);
}

/* RFC 8489 §9.2.4 in order: no integrity, 401; integrity without its companions, 400; a nonce
 * not ours for this client or too old, 438; a username that is not a live REST username, or a
 * wrong integrity, 401. Returns 0 when authenticated (r->key, r->username set). */
static unsigned authenticate(request *r, uint64_t wall_secs)
{
    const stun_msg *m = r->m;
    const turn_config *cfg = r->s->cfg;
    size_t realm_len = strlen(cfg->realm);
    char password[29];
    uint64_t expiry;

    if (!m->integrity_at)
        return 401;
    if (!m->username.off || !m->realm.off || !m->nonce.off)
        return 400;
    if (!nonce_valid(r->s, &r->who, r->msg + m->nonce.off, m->nonce.len, r->now_ms))
        return 438;
    r->username = r->msg + m->username.off;
    r->username_len = m->username.len;
    if (m->realm.len != realm_len || memcmp(r->msg + m->realm.off, cfg->realm, realm_len) != 0 ||
        r->username_len > TURN_MAX_USERNAME ||
        !rest_username(r->username, r->username_len, &expiry, &r->id_at) || expiry <= wall_secs)
        return 401;
    turn_rest_password(cfg->secret, cfg->secret_len, (const char *)r->username, r->username_len,
                       password);
    stun_long_term_key(r->username, r->username_len, cfg->realm, password, r->key);
    if (!stun_check_integrity(r->msg, m, r->key, sizeof r->key))
        return 401;
    r->authed = true;
    return 0;
}

static bool same_user(const turn_alloc *a, const request *r)
{
    return a->username_len == r->username_len && memcmp(a->username, r->username, r->username_len) == 0;
}

static uint32_t requested_lifetime(const stun_msg *m)
{
    uint32_t l;
    if (!m->has_lifetime)
        return TURN_DEFAULT_LIFETIME;
    l = m->lifetime < TURN_MAX_LIFETIME ? m->lifetime : TURN_MAX_LIFETIME;
    return l > TURN_DEFAULT_LIFETIME ? l : TURN_DEFAULT_LIFETIME;
}

static void set_expiry(turn_server *s, turn_alloc *a, uint64_t due_ms)
{
    a->expires_ms = due_ms;
    s->env.expiry_set(s->env.ctx, a->relay, due_ms);
}

static turn_out allocate_success(request *r, const turn_alloc *a)
{
    begin(r, STUN_CLASS_SUCCESS);
    stun_put_xor_addr(&r->w, STUN_ATTR_XOR_RELAYED_ADDRESS, &a->relayed);
    stun_put_u32(&r->w, STUN_ATTR_LIFETIME, a->lifetime);
    if (a->gave_token)
        stun_put(&r->w, STUN_ATTR_RESERVATION_TOKEN, a->token_out, TOKEN_LEN);
    stun_put_xor_addr(&r->w, STUN_ATTR_XOR_MAPPED_ADDRESS, &r->who.addr);
    return finish(r);
}

static void new_token(turn_server *s, uint8_t out[TOKEN_LEN])
{
    uint8_t n[8];
    uint64_t count = ++s->counter, v;
    for (int i = 0; i < 8; i++)
        n[i] = (uint8_t)(count >> (8 * i));
    v = hash_siphash13(s->cfg->seed, n, sizeof n);
    for (int i = 0; i < TOKEN_LEN; i++)
        out[i] = (uint8_t)(v >> (8 * i));
}

/* Opens a's relayed socket, and with reserve an adjacent reservation on the next (odd) port. */
static bool open_relay(turn_server *s, turn_alloc *a, turn_alloc *res, bool even, uint64_t now_ms)
{
    uint8_t family = s->cfg->public_ip.family;
    uint16_t port, next;

    if (!res) {
        a->relay = s->env.relay_open(s->env.ctx, a, family, 0, even, &port);
        a->relayed.port = port;
        return a->relay != NULL;
    }
    for (int attempt = 0; attempt < RESERVE_ATTEMPTS; attempt++) {
        a->relay = s->env.relay_open(s->env.ctx, a, family, 0, true, &port);
        if (!a->relay)
            return false;
        res->relay = port < 65535 ? s->env.relay_open(s->env.ctx, res, family, (uint16_t)(port + 1),
                                                      false, &next) : NULL;
        if (res->relay) {
            a->relayed.port = port;
            res->relayed.port = next;
            new_token(s, res->token);
            res->reserved = true;
            res->next = s->reservations;
            s->reservations = res;
            set_expiry(s, res, now_ms + TURN_RESERVATION_LIFETIME * 1000ull);
            return true;
        }
        s->env.relay_close(s->env.ctx, a->relay);
    }
    a->relay = NULL;
    return false;
}

static turn_alloc *claim_reservation(turn_server *s, const uint8_t *token, uint64_t now_ms)
{
    for (turn_alloc *a = s->reservations; a; a = a->next)
        if (memcmp(a->token, token, TOKEN_LEN) == 0)
            return now_ms < a->expires_ms ? a : NULL;
    return NULL;
}

static turn_out on_allocate(request *r, turn_alloc *a)
{
    turn_server *s = r->s;
    const stun_msg *m = r->m;
    const char *id = (const char *)r->username + r->id_at;
    size_t id_len = r->username_len - r->id_at;
    bool reserve = m->has_even_port && m->even_port_reserve;
    turn_alloc *res = NULL, *claimed = NULL;
    turn_user *u;
    uint64_t user_hash;
    uint32_t needed;

    if (a) {
        /* A retransmission gets the same answer; anything else on a used 5-tuple is refused. */
        if (same_user(a, r) && memcmp(a->tid, m->transaction_id, STUN_TRANSACTION_ID_LEN) == 0)
            return allocate_success(r, a);
        return error(r, 437);
    }
    if (!m->has_transport)
        return error(r, 400);
    if (m->transport != UDP_PROTOCOL)
        return error(r, 442);
    if (m->has_reservation_token && (m->has_even_port || m->has_family))
        return error(r, 400);
    if (m->has_family && m->family != s->cfg->public_ip.family)
        return error(r, 440);
    if (m->has_reservation_token) {
        claimed = claim_reservation(s, m->reservation_token, r->now_ms);
        if (!claimed)
            return error(r, 508);
    }
    u = user_find(s, id, id_len, &user_hash);
    needed = claimed ? (claimed->user == u ? 0u : 1u) : reserve ? 2u : 1u;
    if ((u ? u->count : 0u) + needed > s->cfg->max_per_user)
        return error(r, 486);
    if (!claimed && s->live + needed > s->cfg->max_allocations)
        return error(r, 508);

    if (claimed) {
        turn_user *owner = user_take(s, id, id_len);
        if (!owner)
            return error(r, 508);
        a = claimed;
        alloc_unlink(s, a);
        user_release(s, a->user);
        a->user = owner;
        a->reserved = false;
    } else {
        a = calloc(1, sizeof *a);
        res = reserve ? calloc(1, sizeof *res) : NULL;
        if (a)
            a->user = user_take(s, id, id_len);
        if (res)
            res->user = user_take(s, id, id_len);
        if (!a || !a->user || (reserve && (!res || !res->user))) {
            if (a && a->user)
                user_release(s, a->user);
            if (res && res->user)
                user_release(s, res->user);
            free(a);
            free(res);
            return error(r, 508);
        }
        a->relayed = s->cfg->public_ip;
        if (res)
            res->relayed = s->cfg->public_ip;
        if (!open_relay(s, a, res, m->has_even_port, r->now_ms)) {
            user_release(s, a->user);
            if (res)
                user_release(s, res->user);
            free(a);
            free(res);
            return error(r, 508);
        }
        s->live += needed;
        if (res) {
            a->gave_token = true;
            memcpy(a->token_out, res->token, TOKEN_LEN);
        }
    }
    a->client = r->who;
    a->hash = client_hash(s, &r->who);
    memcpy(a->tid, m->transaction_id, STUN_TRANSACTION_ID_LEN);
    memcpy(a->username, r->username, r->username_len);
    a->username_len = r->username_len;
    a->lifetime = requested_lifetime(m);
    a->next = s->table[a->hash & s->mask];
    s->table[a->hash & s->mask] = a;
    s->stats.allocations++;
    s->stats.allocations_total++;
    set_expiry(s, a, r->now_ms + a->lifetime * 1000ull);
    return allocate_success(r, a);
}

static turn_out on_refresh(request *r, turn_alloc *a)
{
    const stun_msg *m = r->m;
    uint32_t lifetime;

    if (!a)
        return error(r, 437);
    if (!same_user(a, r))
        return error(r, 441);
    if (m->has_family && m->family != a->relayed.family)
        return error(r, 443);
    lifetime = m->has_lifetime && m->lifetime == 0 ? 0 : requested_lifetime(m);
    if (lifetime == 0)
        alloc_destroy(r->s, a);     /* relaying stops now: the relayed socket is closed */
    else
        set_expiry(r->s, a, r->now_ms + lifetime * 1000ull);
    begin(r, STUN_CLASS_SUCCESS);
    stun_put_u32(&r->w, STUN_ATTR_LIFETIME, lifetime);
    return finish(r);
}

/* 403 for a refused peer, 443 for one of the other family, 0 when it may be used. */
static unsigned check_peer(request *r, const turn_alloc *a, const addr_t *peer)
{
    if (!turn_peer_allowed(r->s->cfg, peer))
        return 403;
    if (peer->family != a->relayed.family)
        return 443;
    return 0;
}

static turn_out on_create_permission(request *r, turn_alloc *a)
{
    const stun_msg *m = r->m;
    size_t fresh = 0;

    if (!a)
        return error(r, 437);
    if (!same_user(a, r))
        return error(r, 441);
    if (m->n_peers == 0)
        return error(r, 400);
    if (m->too_many_peers)
        return error(r, 508);
    for (size_t i = 0; i < m->n_peers; i++) {
        unsigned code = check_peer(r, a, &m->peers[i]);
        if (code)
            return error(r, code);
    }
    /* All or nothing: count the new ones (distinct) before installing any. */
    compact(a, r->now_ms);
    for (size_t i = 0; i < m->n_peers; i++) {
        bool seen = perm_exists(a, &m->peers[i]);
        for (size_t j = 0; j < i && !seen; j++)
            seen = same_ip(&m->peers[j], &m->peers[i]);
        fresh += seen ? 0 : 1;
    }
    if (a->n_perms + fresh > TURN_MAX_PERMISSIONS)
        return error(r, 508);
    for (size_t i = 0; i < m->n_peers; i++) {
        addr_t ip = m->peers[i];
        ip.port = 0;
        perm_install(a, &ip, r->now_ms);
    }
    begin(r, STUN_CLASS_SUCCESS);
    return finish(r);
}

static turn_out on_channel_bind(request *r, turn_alloc *a)
{
    const stun_msg *m = r->m;
    const addr_t *peer;
    channel *by_number, *by_peer;
    unsigned code;

    if (!a)
        return error(r, 437);
    if (!same_user(a, r))
        return error(r, 441);
    if (!m->has_channel || m->n_peers != 1 || m->channel < STUN_CHANNEL_MIN ||
        m->channel > STUN_CHANNEL_MAX || m->peers[0].port == 0)
        return error(r, 400);
    peer = &m->peers[0];
    code = check_peer(r, a, peer);
    if (code)
        return error(r, code);
    compact(a, r->now_ms);
    by_number = chan_by_number(a, m->channel);
    by_peer = chan_by_peer(a, peer);
    /* A number stays with its peer, and a peer with its number, until the quiet time ends. */
    if ((by_number && !same_transport_addr(&by_number->peer, peer)) ||
        (by_peer && by_peer->number != m->channel))
        return error(r, 400);
    if ((!by_number && a->n_chans == TURN_MAX_CHANNELS) ||
        (!perm_exists(a, peer) && a->n_perms == TURN_MAX_PERMISSIONS))
        return error(r, 508);
    if (!by_number) {
        by_number = &a->chans[a->n_chans++];
        by_number->number = m->channel;
        by_number->peer = *peer;
    }
    by_number->expires_ms = r->now_ms + TURN_CHANNEL_LIFETIME * 1000ull;
    {
        addr_t ip = *peer;
        ip.port = 0;
        perm_install(a, &ip, r->now_ms);
    }
    begin(r, STUN_CLASS_SUCCESS);
    return finish(r);
}

static turn_out to_peer(turn_server *s, turn_alloc *a, const addr_t *peer, const uint8_t *data,
                        size_t len, uint64_t now_ms)
{
    turn_out out;
    memset(&out, 0, sizeof out);
    if (!perm_find(a, peer, now_ms) || !bucket_take(&a->up, s->cfg->max_bps, len, now_ms))
        return out;
    s->stats.packets_to_peers++;
    s->stats.bytes_to_peers += len;
    out.kind = TURN_OUT_PEER;
    out.data = data;
    out.len = len;
    out.relay = a->relay;
    out.peer = *peer;
    return out;
}

/* Binding over TCP (over UDP the STUN listener answers Binding before TURN sees it). */
static turn_out on_binding(request *r)
{
    turn_out out;
    stun_request req;

    memset(&out, 0, sizeof out);
    if (stun_parse(r->msg, r->len, &req) == STUN_DROP || !may_answer(r))
        return out;
    out.len = stun_write_response(&req, &r->who.addr, r->reply, TURN_REPLY_MAX);
    out.kind = out.len ? TURN_OUT_CLIENT : TURN_OUT_NONE;
    out.data = r->reply;
    out.client = r->from;
    return out;
}

static turn_out on_channel_data(turn_server *s, const turn_client *who, const uint8_t *msg,
                                size_t len, uint64_t now_ms)
{
    turn_out none;
    uint16_t number;
    size_t data_len;
    turn_alloc *a;
    channel *c;

    memset(&none, 0, sizeof none);
    if (!stun_channel_data_read(msg, len, &number, &data_len))
        return none;
    a = alloc_find(s, who, now_ms);
    if (!a)
        return none;
    c = chan_by_number(a, number);
    if (!c || now_ms >= c->expires_ms)
        return none;
    return to_peer(s, a, &c->peer, msg + STUN_CHANNEL_DATA_HEADER, data_len, now_ms);
}

turn_out turn_on_client(turn_server *s, const turn_client *from, const uint8_t *msg, size_t len,
                        uint64_t now_ms, uint64_t wall_secs, uint8_t *reply)
{
    turn_out none;
    stun_msg m;
    request r;
    turn_alloc *a;
    unsigned code;

    memset(&none, 0, sizeof none);
    memset(&r, 0, sizeof r);
    r.who = *from;
    addr_unmap(&r.who.addr);
    r.who.addr.scope_id = 0;
    if (from->transport == TURN_UDP)
        r.who.conn = NULL;
    if (len == 0)
        return none;
    if (stun_is_channel_data(msg[0]))
        return on_channel_data(s, &r.who, msg, len, now_ms);
    if (!stun_decode(msg, len, &m))
        return none;
    r.s = s;
    r.from = from;
    r.msg = msg;
    r.len = len;
    r.m = &m;
    r.reply = reply;
    r.now_ms = now_ms;

    if (m.cls == STUN_CLASS_INDICATION) {
        a = m.method == STUN_SEND ? alloc_find(s, &r.who, now_ms) : NULL;
        if (!a || m.n_peers == 0 || !m.data.off)
            return none;
        return to_peer(s, a, &m.peers[0], msg + m.data.off, m.data.len, now_ms);
    }
    if (m.cls != STUN_CLASS_REQUEST)
        return none;
    if (m.method == STUN_BINDING)
        return on_binding(&r);
    if (m.method != STUN_ALLOCATE && m.method != STUN_REFRESH &&
        m.method != STUN_CREATE_PERMISSION && m.method != STUN_CHANNEL_BIND)
        return error(&r, 400);
    code = authenticate(&r, wall_secs);
    if (code)
        return error(&r, code);
    if (m.malformed)
        return error(&r, 400);
    if (m.n_unknown)
        return error(&r, 420);
    a = alloc_find(s, &r.who, now_ms);
    switch (m.method) {
    case STUN_ALLOCATE:
        return on_allocate(&r, a);
    case STUN_REFRESH:
        return on_refresh(&r, a);
    case STUN_CREATE_PERMISSION:
        return on_create_permission(&r, a);
    default:
        return on_channel_bind(&r, a);
    }
}

turn_out turn_on_peer(turn_server *s, turn_alloc *a, const addr_t *from_peer, uint8_t *data,
                      size_t len, uint64_t now_ms)
{
    turn_out out;
    addr_t peer = *from_peer;
    channel *c;

    memset(&out, 0, sizeof out);
    addr_unmap(&peer);
    peer.scope_id = 0;
    if (a->reserved || now_ms >= a->expires_ms || len > 0xFFFF || !perm_find(a, &peer, now_ms) ||
        !bucket_take(&a->down, s->cfg->max_bps, len, now_ms))
        return out;
    c = chan_by_peer(a, &peer);
    if (c && now_ms < c->expires_ms) {
        uint8_t *hdr = data - STUN_CHANNEL_DATA_HEADER;
        size_t pad = stun_channel_data_header(hdr, c->number, len, a->client.transport == TURN_TCP);
        memset(data + len, 0, pad);
        out.data = hdr;
        out.len = STUN_CHANNEL_DATA_HEADER + len + pad;
    } else {
        /* A Data indication built around the datagram where it lies. */
        size_t hdr_len = STUN_HEADER_LEN + 4 + (peer.family == 4 ? 8 : 20) + 4;
        uint8_t tid[STUN_TRANSACTION_ID_LEN], *start = data - hdr_len;
        stun_writer w;
        new_token(s, tid);
        new_token(s, tid + 4);
        stun_begin(&w, start, hdr_len + len + TURN_PEER_TAILROOM,
                   stun_type(STUN_DATA, STUN_CLASS_INDICATION), tid);
        stun_put_xor_addr(&w, STUN_ATTR_XOR_PEER_ADDRESS, &peer);
        stun_put_space(&w, STUN_ATTR_DATA, len);
        out.data = start;
        out.len = stun_finish(&w);
        if (out.len == 0)
            return out;
    }
    s->stats.packets_to_clients++;
    s->stats.bytes_to_clients += len;
    out.kind = TURN_OUT_CLIENT;
    out.client = &a->client;
    return out;
}

void turn_on_expiry(turn_server *s, turn_alloc *a, uint64_t now_ms)
{
    if (now_ms < a->expires_ms)
        s->env.expiry_set(s->env.ctx, a->relay, a->expires_ms);
    else
        alloc_destroy(s, a);
}

void turn_on_client_closed(turn_server *s, const turn_client *c)
{
    turn_client who = *c;
    turn_alloc *a;
    addr_unmap(&who.addr);
    who.addr.scope_id = 0;
    a = alloc_lookup(s, &who);
    if (a)
        alloc_destroy(s, a);
}

void turn_get_stats(const turn_server *s, turn_stats *out) { *out = s->stats; }

/* ---------------- life ---------------- */

turn_server *turn_new(const turn_config *cfg, const turn_env *env)
{
    turn_server *s = calloc(1, sizeof *s);
    uint32_t buckets = 16;

    if (!s)
        return NULL;
    while (buckets < cfg->max_allocations && buckets < (1u << 20))
        buckets <<= 1;
    s->cfg = cfg;
    s->env = *env;
    s->mask = buckets - 1;
    s->table = calloc(buckets, sizeof *s->table);
    s->users = calloc(buckets, sizeof *s->users);
    if (!s->table || !s->users ||
        !stun_limiter_init(&s->challenges, TURN_CHALLENGES_PER_IP, TURN_CHALLENGES_GLOBAL,
                           cfg->tracked_sources ? cfg->tracked_sources : STUN_LIMITER_TRACKED_IPS,
                           cfg->seed)) {
        free(s->table);
        free(s->users);
        free(s);
        return NULL;
    }
    return s;
}

void turn_free(turn_server *s)
{
    if (!s)
        return;
    while (s->reservations)
        alloc_destroy(s, s->reservations);
    for (uint32_t i = 0; i <= s->mask; i++)
        while (s->table[i])
            alloc_destroy(s, s->table[i]);
    stun_limiter_free(&s->challenges);
    free(s->table);
    free(s->users);
    free(s);
}
