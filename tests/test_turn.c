/* Unit tests for the TURN state machine (turn.c) on a fake clock with fake relayed sockets: the
 * 401/438 challenge and every way credentials fail, Allocate (retransmission, 437, 442, 440, 486,
 * 508, lifetimes, EVEN-PORT and reservations), Refresh (0 deletes at once), expiry timers,
 * CreatePermission and ChannelBind with their limits, Send/Data indications and ChannelData both
 * ways (TCP padding), the peer policy (the addresses coturn let through), bandwidth, the
 * challenge budget, TCP connections closing, and the REST password. Clients are written here
 * with the STUN writer; answers are checked with the STUN decoder and integrity check. */
#include "turn.h"
#include "hash.h"
#include "stun.h"
#include "tests/test.h"

#include <stdlib.h>

/* ---- a fake environment: relayed sockets are records, timers are due times ---- */

#define MAX_RELAYS 64

typedef struct {
    turn_alloc *alloc;
    uint8_t family;
    uint16_t port;
    bool open;
    uint64_t due;
} fake_relay;

static fake_relay relays[MAX_RELAYS];
static size_t n_relays;
static uint16_t next_port;
static int fail_opens;          /* refuse this many relay_open calls */
static uint16_t taken_port;     /* an exact-port request for this port fails */

static void *fake_open(void *ctx, turn_alloc *a, uint8_t family, uint16_t want, bool even, uint16_t *port)
{
    (void)ctx;
    if (fail_opens > 0) {
        fail_opens--;
        return NULL;
    }
    if (n_relays == MAX_RELAYS || (want && want == taken_port))
        return NULL;
    fake_relay *r = &relays[n_relays++];
    memset(r, 0, sizeof *r);
    r->alloc = a;
    r->family = family;
    if (want) {
        r->port = want;
    } else {
        if (even && next_port % 2)
            next_port++;
        r->port = next_port;
        next_port = (uint16_t)(next_port + (even ? 2 : 1));
    }
    r->open = true;
    *port = r->port;
    return r;
}

static void fake_close(void *ctx, void *relay)
{
    (void)ctx;
    fake_relay *r = relay;
    CHECK(r->open);
    r->open = false;
}

static void fake_expiry(void *ctx, void *relay, uint64_t due)
{
    (void)ctx;
    ((fake_relay *)relay)->due = due;
}

static const turn_env env = { NULL, fake_open, fake_close, fake_expiry };

static const char secret[] = "test-secret";
static turn_config cfg;
static cidr_list allow_list, deny_list;

static addr_t ip(const char *s, uint16_t port)
{
    addr_t a;
    memset(&a, 0, sizeof a);
    if (!addr_parse_ip(s, strlen(s), &a)) {
        printf("  bad fixture %s\n", s);
        test_cur_failed = 1;
    }
    a.port = port;
    return a;
}

static void config_reset(void)
{
    memset(&cfg, 0, sizeof cfg);
    cfg.realm = "dig.net";
    cfg.secret = (const uint8_t *)secret;
    cfg.secret_len = sizeof secret - 1;
    cfg.public_ip = ip("203.0.113.10", 0);
    cfg.max_allocations = 100;
    cfg.max_per_user = 10;
    cfg.own[0] = cfg.public_ip;
    cfg.n_own = 1;
    cfg.allow = &allow_list;
    cfg.deny = &deny_list;
    allow_list.n = 0;
    deny_list.n = 0;
    cfg.seed[0] = 1;
    cfg.seed[1] = 2;
    memset(cfg.nonce_key, 7, sizeof cfg.nonce_key);
    n_relays = 0;
    next_port = 50000;
    fail_opens = 0;
    taken_port = 0;
}

/* ---- a client ---- */

#define NOW0 (1000000ull)              /* monotonic ms at the start of each test */
#define WALL0 (1700000000ull)          /* Unix time */

typedef struct {
    turn_client tc;
    char username[128];
    char password[29];
    char nonce[64];
    uint8_t key[16];
    uint8_t tid[12];
    uint32_t tid_counter;
} client;

static void client_init(client *c, enum turn_transport t, const char *addr, uint16_t port,
                        const char *username)
{
    memset(c, 0, sizeof *c);
    c->tc.transport = t;
    c->tc.addr = ip(addr, port);
    c->tc.conn = t == TURN_TCP ? (const void *)c : NULL;
    snprintf(c->username, sizeof c->username, "%s", username);
    turn_rest_password((const uint8_t *)secret, sizeof secret - 1, username, strlen(username), c->password);
    stun_long_term_key(username, strlen(username), "dig.net", c->password, c->key);
}

static char user_valid[64], user_other[64];

static void users_init(void)
{
    snprintf(user_valid, sizeof user_valid, "%llu:peer-a", (unsigned long long)(WALL0 + 3600));
    snprintf(user_other, sizeof user_other, "%llu:peer-b", (unsigned long long)(WALL0 + 3600));
}

typedef struct {
    uint16_t type;
    const void *value;
    size_t len;
} attr;

enum { SIGN = 1, NO_SIGN = 0 };

/* Builds a request (or indication) with attributes, USERNAME/REALM/NONCE and MESSAGE-INTEGRITY
 * when signed, and a FINGERPRINT when asked. Returns its length. */
static size_t build(client *c, uint16_t type, const attr *attrs, size_t n, int sign, bool fingerprint,
                    uint8_t *out, size_t cap)
{
    stun_writer w;
    c->tid_counter++;
    memset(c->tid, 0, sizeof c->tid);
    memcpy(c->tid, &c->tid_counter, sizeof c->tid_counter);
    c->tid[11] = 0x5a;
    stun_begin(&w, out, cap, type, c->tid);
    for (size_t i = 0; i < n; i++)
        stun_put(&w, attrs[i].type, attrs[i].value, attrs[i].len);
    if (sign) {
        stun_put(&w, STUN_ATTR_USERNAME, c->username, strlen(c->username));
        stun_put(&w, STUN_ATTR_REALM, "dig.net", 7);
        stun_put(&w, STUN_ATTR_NONCE, c->nonce, strlen(c->nonce));
        stun_put_integrity(&w, c->key, sizeof c->key);
    }
    if (fingerprint)
        stun_put_fingerprint(&w);
    return stun_finish(&w);
}

static turn_server *srv;
static uint64_t now_ms, wall;
static uint8_t reply[TURN_REPLY_MAX];

static turn_out send_msg(client *c, const uint8_t *msg, size_t len)
{
    return turn_on_client(srv, &c->tc, msg, len, now_ms, wall, reply);
}

typedef struct {
    bool ok;                /* a well-formed STUN answer came back */
    stun_msg m;
    int code;               /* error code, 0 for success */
    bool signed_ok;         /* carried a MESSAGE-INTEGRITY valid under the client's key */
    const uint8_t *bytes;
    size_t len;
} answer;

/* Reads the server's answer; code is -1 when there was none. */
static void read_answer(client *c, turn_out out, answer *a)
{
    memset(a, 0, sizeof *a);
    a->code = -1;
    if (out.kind != TURN_OUT_CLIENT)
        return;
    a->bytes = out.data;
    a->len = out.len;
    if (!stun_decode(out.data, out.len, &a->m))
        return;
    a->ok = true;
    a->code = 0;
    CHECK(memcmp(a->m.transaction_id, c->tid, 12) == 0);
    if (a->m.cls == STUN_CLASS_ERROR) {
        /* ERROR-CODE is not in stun_msg: find it. */
        for (size_t pos = 20; pos + 8 <= out.len;) {
            unsigned t = (unsigned)out.data[pos] << 8 | out.data[pos + 1];
            unsigned l = (unsigned)out.data[pos + 2] << 8 | out.data[pos + 3];
            if (t == STUN_ATTR_ERROR_CODE) {
                a->code = (out.data[pos + 6] & 7) * 100 + out.data[pos + 7];
                break;
            }
            pos += 4 + ((l + 3) & ~3u);
        }
    }
    if (a->m.integrity_at)
        a->signed_ok = stun_check_integrity(out.data, &a->m, c->key, sizeof c->key);
    /* A 401 or 438 hands out a nonce: remember it, as a client would. */
    if (a->m.nonce.off && a->m.nonce.len < sizeof c->nonce) {
        memcpy(c->nonce, out.data + a->m.nonce.off, a->m.nonce.len);
        c->nonce[a->m.nonce.len] = '\0';
    }
}

static const uint8_t udp_transport[4] = { 17, 0, 0, 0 };

/* Allocate with the usual handshake: an unsigned request draws a 401 and a nonce, then the signed
 * one. extra attributes are added to both. Returns the final answer. */
static void allocate(client *c, const attr *extra, size_t n_extra, answer *a)
{
    attr attrs[8];
    uint8_t msg[512];
    size_t n;
    attrs[0] = (attr){ STUN_ATTR_REQUESTED_TRANSPORT, udp_transport, 4 };
    for (size_t i = 0; i < n_extra; i++)
        attrs[1 + i] = extra[i];
    if (!c->nonce[0]) {
        n = build(c, 0x0003, attrs, 1 + n_extra, NO_SIGN, false, msg, sizeof msg);
        read_answer(c, send_msg(c, msg, n), a);
        CHECK(a->ok && a->code == 401);
    }
    n = build(c, 0x0003, attrs, 1 + n_extra, SIGN, false, msg, sizeof msg);
    read_answer(c, send_msg(c, msg, n), a);
    if (a->code == 438) {
        n = build(c, 0x0003, attrs, 1 + n_extra, SIGN, false, msg, sizeof msg);
        read_answer(c, send_msg(c, msg, n), a);
    }
}

static addr_t relayed_of(const answer *a)
{
    addr_t r;
    memset(&r, 0, sizeof r);
    for (size_t pos = 20; pos + 4 <= a->len;) {
        unsigned t = (unsigned)a->bytes[pos] << 8 | a->bytes[pos + 1];
        unsigned l = (unsigned)a->bytes[pos + 2] << 8 | a->bytes[pos + 3];
        if (t == STUN_ATTR_XOR_RELAYED_ADDRESS)
            stun_read_xor_addr(a->bytes + pos + 4, l, a->m.transaction_id, &r);
        pos += 4 + ((l + 3) & ~3u);
    }
    return r;
}

static bool find_attr(const answer *a, uint16_t type, const uint8_t **value, size_t *len)
{
    for (size_t pos = 20; pos + 4 <= a->len;) {
        unsigned t = (unsigned)a->bytes[pos] << 8 | a->bytes[pos + 1];
        unsigned l = (unsigned)a->bytes[pos + 2] << 8 | a->bytes[pos + 3];
        if (t == type) {
            *value = a->bytes + pos + 4;
            *len = l;
            return true;
        }
        pos += 4 + ((l + 3) & ~3u);
    }
    return false;
}

static uint32_t lifetime_of(const answer *a)
{
    const uint8_t *v;
    size_t l;
    if (!find_attr(a, STUN_ATTR_LIFETIME, &v, &l) || l != 4)
        return UINT32_MAX;
    return (uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 | v[3];
}

static size_t xor_peer(uint8_t *out, const addr_t *peer, const uint8_t *tid)
{
    stun_writer w;
    uint8_t tmp[64];
    stun_begin(&w, tmp, sizeof tmp, 0x0001, tid);
    stun_put_xor_addr(&w, STUN_ATTR_XOR_PEER_ADDRESS, peer);
    size_t n = stun_finish(&w) - 24;
    memcpy(out, tmp + 24, n);
    return n;
}

/* A signed request whose attributes include XOR-PEER-ADDRESS values for peers (the transaction id
 * must be known before the XOR, so it is fixed first). */
static void request_with_peers(client *c, uint16_t type, const addr_t *peers, size_t n_peers,
                               const attr *extra, size_t n_extra, answer *a)
{
    uint8_t msg[1024], values[8][20];
    attr attrs[16];
    size_t n = 0;
    uint32_t save = c->tid_counter;
    uint8_t tid[12] = { 0 };
    save++;
    memcpy(tid, &save, sizeof save);
    tid[11] = 0x5a;
    for (size_t i = 0; i < n_peers; i++) {
        size_t l = xor_peer(values[i], &peers[i], tid);
        attrs[n++] = (attr){ STUN_ATTR_XOR_PEER_ADDRESS, values[i], l };
    }
    for (size_t i = 0; i < n_extra; i++)
        attrs[n++] = extra[i];
    size_t len = build(c, type, attrs, n, SIGN, true, msg, sizeof msg);
    read_answer(c, send_msg(c, msg, len), a);
}

/* Signed requests as a client sends them: a 438 is answered with the fresh nonce, once. */
static void request_with_peers_renewing(client *c, uint16_t type, const addr_t *peers, size_t n_peers,
                                        const attr *extra, size_t n_extra, answer *a)
{
    request_with_peers(c, type, peers, n_peers, extra, n_extra, a);
    if (a->code == 438)
        request_with_peers(c, type, peers, n_peers, extra, n_extra, a);
}

static void permit(client *c, const addr_t *peer, answer *a)
{
    request_with_peers_renewing(c, 0x0008, peer, 1, NULL, 0, a);
}

static void bind_channel(client *c, const addr_t *peer, uint16_t number, answer *a)
{
    uint8_t ch[4] = { (uint8_t)(number >> 8), (uint8_t)number, 0, 0 };
    attr x = { STUN_ATTR_CHANNEL_NUMBER, ch, 4 };
    request_with_peers_renewing(c, 0x0009, peer, 1, &x, 1, a);
}

static void refresh(client *c, uint32_t lifetime, answer *a)
{
    uint8_t v[4] = { (uint8_t)(lifetime >> 24), (uint8_t)(lifetime >> 16), (uint8_t)(lifetime >> 8),
                     (uint8_t)lifetime };
    attr x = { STUN_ATTR_LIFETIME, v, 4 };
    uint8_t msg[512];
    size_t n = build(c, 0x0004, &x, 1, SIGN, false, msg, sizeof msg);
    read_answer(c, send_msg(c, msg, n), a);
    if (a->code == 438) {
        n = build(c, 0x0004, &x, 1, SIGN, false, msg, sizeof msg);
        read_answer(c, send_msg(c, msg, n), a);
    }
}

static void start(void)
{
    config_reset();
    users_init();
    now_ms = NOW0;
    wall = WALL0;
    srv = turn_new(&cfg, &env);
    REQUIRE(srv != NULL);
}

static void stop(void)
{
    turn_free(srv);
    srv = NULL;
    for (size_t i = 0; i < n_relays; i++)
        CHECK(!relays[i].open);
}

static fake_relay *relay_of(const addr_t *relayed)
{
    for (size_t i = 0; i < n_relays; i++)
        if (relays[i].open && relays[i].port == relayed->port)
            return &relays[i];
    return NULL;
}

/* ---- tests ---- */

static void test_rest_password(void)
{
    /* base64(HMAC-SHA1("north", "1700003600:alice")), computed independently:
     *   python3 -c 'import hmac,hashlib,base64;print(base64.b64encode(hmac.new(b"north",
     *   b"1700003600:alice",hashlib.sha1).digest()).decode())' */
    char out[29];
    turn_rest_password((const uint8_t *)"north", 5, "1700003600:alice", 16, out);
    CHECK_EQ_STR(out, "wjwSXO2ch1B6VaLTLMy2Avn5O9o=");
}

static void test_challenge_then_allocate(void)
{
    client c;
    answer a;
    uint8_t msg[256];
    start();
    client_init(&c, TURN_UDP, "198.51.100.7", 40000, user_valid);

    size_t n = build(&c, 0x0003, (attr[]){ { STUN_ATTR_REQUESTED_TRANSPORT, udp_transport, 4 } }, 1,
                     NO_SIGN, true, msg, sizeof msg);
    read_answer(&c, send_msg(&c, msg, n), &a);
    REQUIRE(a.ok);
    CHECK_EQ_INT(a.code, 401);
    CHECK(a.m.method == STUN_ALLOCATE && a.m.cls == STUN_CLASS_ERROR);
    CHECK_EQ_MEM(a.bytes + a.m.realm.off, a.m.realm.len, "dig.net", 7);
    CHECK_EQ_INT(a.m.nonce.len, 32);
    CHECK(a.m.integrity_at == 0);     /* nothing to sign with yet */
    CHECK(a.m.fingerprint);           /* the request had one */
    CHECK_EQ_INT(n_relays, 0);

    allocate(&c, NULL, 0, &a);
    REQUIRE(a.ok);
    CHECK_EQ_INT(a.code, 0);
    CHECK(a.m.cls == STUN_CLASS_SUCCESS);
    CHECK(a.signed_ok);
    CHECK(!a.m.fingerprint);
    addr_t r = relayed_of(&a);
    CHECK(r.family == 4 && memcmp(r.ip, cfg.public_ip.ip, 4) == 0 && r.port == 50000);
    CHECK_EQ_INT(lifetime_of(&a), 600);
    /* XOR-MAPPED-ADDRESS is the client's own address. */
    const uint8_t *v;
    size_t l;
    addr_t mapped;
    REQUIRE(find_attr(&a, STUN_ATTR_XOR_MAPPED_ADDRESS, &v, &l));
    REQUIRE(stun_read_xor_addr(v, l, a.m.transaction_id, &mapped));
    CHECK(mapped.port == 40000 && memcmp(mapped.ip, c.tc.addr.ip, 4) == 0);
    REQUIRE(n_relays == 1);
    CHECK(relays[0].open && relays[0].due == now_ms + 600000);
    turn_stats st;
    turn_get_stats(srv, &st);
    CHECK(st.allocations == 1 && st.allocations_total == 1 && st.auth_failures == 1);
    stop();
}

static void test_credentials_that_never_allocate(void)
{
    client c;
    answer a;
    uint8_t msg[256];
    size_t n;
    attr rt = { STUN_ATTR_REQUESTED_TRANSPORT, udp_transport, 4 };
    char expired[64];
    start();

    /* Expired username (its expiry is now). */
    snprintf(expired, sizeof expired, "%llu:peer-a", (unsigned long long)WALL0);
    client_init(&c, TURN_UDP, "198.51.100.7", 40000, expired);
    allocate(&c, NULL, 0, &a);
    CHECK_EQ_INT(a.code, 401);

    /* Wrong password: a key made from another secret. */
    client_init(&c, TURN_UDP, "198.51.100.7", 40001, user_valid);
    c.key[3] ^= 1;
    allocate(&c, NULL, 0, &a);
    CHECK_EQ_INT(a.code, 401);
    CHECK(a.m.integrity_at == 0);

    /* Not a REST username. */
    client_init(&c, TURN_UDP, "198.51.100.7", 40002, "alice");
    allocate(&c, NULL, 0, &a);
    CHECK_EQ_INT(a.code, 401);
    client_init(&c, TURN_UDP, "198.51.100.7", 40002, "12x:alice");
    allocate(&c, NULL, 0, &a);
    CHECK_EQ_INT(a.code, 401);

    /* A nonce issued to another client (another port): stale for this one. */
    client d;
    client_init(&d, TURN_UDP, "198.51.100.7", 40003, user_valid);
    client_init(&c, TURN_UDP, "198.51.100.7", 40004, user_valid);
    n = build(&d, 0x0003, &rt, 1, NO_SIGN, false, msg, sizeof msg);
    read_answer(&d, send_msg(&d, msg, n), &a);
    memcpy(c.nonce, d.nonce, sizeof c.nonce);
    n = build(&c, 0x0003, &rt, 1, SIGN, false, msg, sizeof msg);
    read_answer(&c, send_msg(&c, msg, n), &a);
    CHECK_EQ_INT(a.code, 438);
    CHECK(a.m.nonce.len == 32 && a.m.realm.off);
    /* ... and the fresh nonce the 438 handed out works. */
    n = build(&c, 0x0003, &rt, 1, SIGN, false, msg, sizeof msg);
    read_answer(&c, send_msg(&c, msg, n), &a);
    CHECK_EQ_INT(a.code, 0);

    /* A nonce from a TCP connection is not one for UDP from the same address and port. */
    client e;
    client_init(&e, TURN_TCP, "198.51.100.8", 40005, user_valid);
    n = build(&e, 0x0003, &rt, 1, NO_SIGN, false, msg, sizeof msg);
    read_answer(&e, send_msg(&e, msg, n), &a);
    client_init(&c, TURN_UDP, "198.51.100.8", 40005, user_valid);
    memcpy(c.nonce, e.nonce, sizeof c.nonce);
    n = build(&c, 0x0003, &rt, 1, SIGN, false, msg, sizeof msg);
    read_answer(&c, send_msg(&c, msg, n), &a);
    CHECK_EQ_INT(a.code, 438);

    /* Stale: the nonce ages out after TURN_NONCE_LIFETIME; garbage is never valid. */
    client_init(&c, TURN_UDP, "198.51.100.9", 40006, user_valid);
    n = build(&c, 0x0003, &rt, 1, NO_SIGN, false, msg, sizeof msg);
    read_answer(&c, send_msg(&c, msg, n), &a);
    now_ms += TURN_NONCE_LIFETIME * 1000ull;
    n = build(&c, 0x0003, &rt, 1, SIGN, false, msg, sizeof msg);
    read_answer(&c, send_msg(&c, msg, n), &a);
    CHECK_EQ_INT(a.code, 438);
    snprintf(c.nonce, sizeof c.nonce, "%s", "00000000000000000000000000000000");
    n = build(&c, 0x0003, &rt, 1, SIGN, false, msg, sizeof msg);
    read_answer(&c, send_msg(&c, msg, n), &a);
    CHECK_EQ_INT(a.code, 438);
    snprintf(c.nonce, sizeof c.nonce, "%s", "short");
    n = build(&c, 0x0003, &rt, 1, SIGN, false, msg, sizeof msg);
    read_answer(&c, send_msg(&c, msg, n), &a);
    CHECK_EQ_INT(a.code, 438);

    /* Integrity without a NONCE: 400. Another realm: 401. */
    client_init(&c, TURN_UDP, "198.51.100.10", 40007, user_valid);
    {
        stun_writer w;
        stun_begin(&w, msg, sizeof msg, 0x0003, c.tid);
        stun_put(&w, STUN_ATTR_REQUESTED_TRANSPORT, udp_transport, 4);
        stun_put(&w, STUN_ATTR_USERNAME, c.username, strlen(c.username));
        stun_put(&w, STUN_ATTR_REALM, "dig.net", 7);
        stun_put_integrity(&w, c.key, sizeof c.key);
        n = stun_finish(&w);
        read_answer(&c, send_msg(&c, msg, n), &a);
        CHECK_EQ_INT(a.code, 400);
    }
    allocate(&c, NULL, 0, &a);   /* gets a nonce */
    CHECK_EQ_INT(a.code, 0);

    turn_stats st;
    turn_get_stats(srv, &st);
    CHECK_EQ_INT(st.allocations, 2);   /* only the two good ones */
    stop();
}

static void test_retransmitted_allocate_and_437(void)
{
    client c;
    answer a, b;
    uint8_t msg[256], first[TURN_REPLY_MAX];
    attr rt = { STUN_ATTR_REQUESTED_TRANSPORT, udp_transport, 4 };
    start();
    client_init(&c, TURN_UDP, "198.51.100.7", 40000, user_valid);
    allocate(&c, NULL, 0, &a);
    REQUIRE(a.code == 0);
    size_t first_len = a.len;
    memcpy(first, a.bytes, a.len);

    /* The same request again (same transaction id): the same success, byte for byte. */
    c.tid_counter--;
    size_t n = build(&c, 0x0003, &rt, 1, SIGN, false, msg, sizeof msg);
    now_ms += 2000;
    read_answer(&c, send_msg(&c, msg, n), &b);
    CHECK_EQ_INT(b.code, 0);
    CHECK_EQ_MEM(b.bytes, b.len, first, first_len);
    CHECK_EQ_INT(n_relays, 1);

    /* A new Allocate on the same 5-tuple: 437. */
    n = build(&c, 0x0003, &rt, 1, SIGN, false, msg, sizeof msg);
    read_answer(&c, send_msg(&c, msg, n), &b);
    CHECK_EQ_INT(b.code, 437);
    CHECK(b.signed_ok);
    stop();
}

static void test_allocate_refusals(void)
{
    client c;
    answer a;
    uint8_t msg[256];
    size_t n;
    start();
    client_init(&c, TURN_UDP, "198.51.100.7", 40000, user_valid);
    allocate(&c, NULL, 0, &a);   /* a nonce; keep the allocation on this port */

    client_init(&c, TURN_UDP, "198.51.100.7", 40001, user_valid);
    n = build(&c, 0x0003, NULL, 0, NO_SIGN, false, msg, sizeof msg);
    read_answer(&c, send_msg(&c, msg, n), &a);   /* 401 + nonce */
    n = build(&c, 0x0003, NULL, 0, SIGN, false, msg, sizeof msg);
    read_answer(&c, send_msg(&c, msg, n), &a);
    CHECK_EQ_INT(a.code, 400);                    /* no REQUESTED-TRANSPORT */
    CHECK(a.signed_ok);

    static const uint8_t tcp[4] = { 6, 0, 0, 0 };
    n = build(&c, 0x0003, (attr[]){ { STUN_ATTR_REQUESTED_TRANSPORT, tcp, 4 } }, 1, SIGN, false, msg, sizeof msg);
    read_answer(&c, send_msg(&c, msg, n), &a);
    CHECK_EQ_INT(a.code, 442);

    static const uint8_t fam6[4] = { 2, 0, 0, 0 }, fam9[4] = { 9, 0, 0, 0 }, fam4[4] = { 1, 0, 0, 0 };
    attr v6[2] = { { STUN_ATTR_REQUESTED_TRANSPORT, udp_transport, 4 }, { STUN_ATTR_REQUESTED_ADDRESS_FAMILY, fam6, 4 } };
    n = build(&c, 0x0003, v6, 2, SIGN, false, msg, sizeof msg);
    read_answer(&c, send_msg(&c, msg, n), &a);
    CHECK_EQ_INT(a.code, 440);
    v6[1].value = fam9;
    n = build(&c, 0x0003, v6, 2, SIGN, false, msg, sizeof msg);
    read_answer(&c, send_msg(&c, msg, n), &a);
    CHECK_EQ_INT(a.code, 440);

    /* RESERVATION-TOKEN together with a family: 400. An unknown token: 508. */
    static const uint8_t token[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    attr both[3] = { { STUN_ATTR_REQUESTED_TRANSPORT, udp_transport, 4 },
                     { STUN_ATTR_REQUESTED_ADDRESS_FAMILY, fam4, 4 }, { STUN_ATTR_RESERVATION_TOKEN, token, 8 } };
    n = build(&c, 0x0003, both, 3, SIGN, false, msg, sizeof msg);
    read_answer(&c, send_msg(&c, msg, n), &a);
    CHECK_EQ_INT(a.code, 400);
    n = build(&c, 0x0003, (attr[]){ both[0], both[2] }, 2, SIGN, false, msg, sizeof msg);
    read_answer(&c, send_msg(&c, msg, n), &a);
    CHECK_EQ_INT(a.code, 508);

    /* An unknown comprehension-required attribute, once authenticated: 420, signed. Before
     * authentication the challenge comes first. */
    attr odd[2] = { { STUN_ATTR_REQUESTED_TRANSPORT, udp_transport, 4 }, { 0x0024, "\0\0\0\1", 4 } };
    n = build(&c, 0x0003, odd, 2, SIGN, true, msg, sizeof msg);
    read_answer(&c, send_msg(&c, msg, n), &a);
    CHECK_EQ_INT(a.code, 420);
    CHECK(a.signed_ok && a.m.fingerprint);
    const uint8_t *v;
    size_t l;
    CHECK(find_attr(&a, STUN_ATTR_UNKNOWN_ATTRIBUTES, &v, &l) && l == 2 && v[0] == 0 && v[1] == 0x24);
    n = build(&c, 0x0003, odd, 2, NO_SIGN, false, msg, sizeof msg);
    read_answer(&c, send_msg(&c, msg, n), &a);
    CHECK_EQ_INT(a.code, 401);

    /* A malformed LIFETIME: 400. */
    attr badlife[2] = { { STUN_ATTR_REQUESTED_TRANSPORT, udp_transport, 4 }, { STUN_ATTR_LIFETIME, "\0\0", 2 } };
    n = build(&c, 0x0003, badlife, 2, SIGN, false, msg, sizeof msg);
    read_answer(&c, send_msg(&c, msg, n), &a);
    CHECK_EQ_INT(a.code, 400);

    /* No port: 508. */
    fail_opens = 1;
    allocate(&c, NULL, 0, &a);
    CHECK_EQ_INT(a.code, 508);
    allocate(&c, NULL, 0, &a);
    CHECK_EQ_INT(a.code, 0);
    stop();
}

static void test_quotas(void)
{
    client c[8];
    answer a;
    start();
    cfg.max_per_user = 3;
    cfg.max_allocations = 5;
    for (int i = 0; i < 3; i++) {
        client_init(&c[i], TURN_UDP, "198.51.100.7", (uint16_t)(40000 + i), user_valid);
        allocate(&c[i], NULL, 0, &a);
        CHECK_EQ_INT(a.code, 0);
    }
    /* The fourth for the same id part, even under another expiry, from another address. */
    char same_id[64];
    snprintf(same_id, sizeof same_id, "%llu:peer-a", (unsigned long long)(WALL0 + 7200));
    client_init(&c[3], TURN_UDP, "192.0.2.99", 40003, same_id);
    allocate(&c[3], NULL, 0, &a);
    CHECK_EQ_INT(a.code, 486);
    CHECK(a.signed_ok);
    /* Another user still gets two, then the global limit: 508. */
    client_init(&c[4], TURN_UDP, "198.51.100.8", 40004, user_other);
    allocate(&c[4], NULL, 0, &a);
    CHECK_EQ_INT(a.code, 0);
    client_init(&c[5], TURN_UDP, "198.51.100.8", 40005, user_other);
    allocate(&c[5], NULL, 0, &a);
    CHECK_EQ_INT(a.code, 0);
    client_init(&c[6], TURN_UDP, "198.51.100.8", 40006, user_other);
    allocate(&c[6], NULL, 0, &a);
    CHECK_EQ_INT(a.code, 508);
    /* Deleting one gives its slot back, to the user and globally. */
    refresh(&c[0], 0, &a);
    CHECK_EQ_INT(a.code, 0);
    CHECK_EQ_INT(lifetime_of(&a), 0);
    allocate(&c[3], NULL, 0, &a);
    CHECK_EQ_INT(a.code, 0);
    turn_stats st;
    turn_get_stats(srv, &st);
    CHECK_EQ_INT(st.allocations, 5);
    stop();
}

static void test_lifetimes_refresh_and_expiry(void)
{
    client c;
    answer a;
    uint8_t v60[4] = { 0, 0, 0, 60 }, vbig[4] = { 0, 1, 0, 0 };
    start();
    client_init(&c, TURN_UDP, "198.51.100.7", 40000, user_valid);
    allocate(&c, (attr[]){ { STUN_ATTR_LIFETIME, v60, 4 } }, 1, &a);
    CHECK_EQ_INT(lifetime_of(&a), 600);   /* below the default: the default */
    refresh(&c, 0x10000, &a);
    CHECK_EQ_INT(lifetime_of(&a), 3600);  /* above the maximum: the maximum */
    fake_relay *r = relay_of(&(addr_t){ .port = 50000 });
    REQUIRE(r != NULL);
    CHECK(r->due == now_ms + 3600000);
    refresh(&c, 900, &a);
    CHECK_EQ_INT(lifetime_of(&a), 900);
    CHECK(r->due == now_ms + 900000);
    (void)vbig;

    /* The timer firing early re-arms; at the due time the allocation goes. */
    now_ms += 500000;
    turn_on_expiry(srv, r->alloc, now_ms);
    CHECK(r->open && r->due == NOW0 + 900000);
    now_ms = NOW0 + 900000;
    turn_on_expiry(srv, r->alloc, now_ms);
    CHECK(!r->open);
    refresh(&c, 600, &a);
    CHECK_EQ_INT(a.code, 437);

    /* Refresh 0 closes the relayed socket at once. */
    client_init(&c, TURN_UDP, "198.51.100.7", 40001, user_valid);
    allocate(&c, NULL, 0, &a);
    REQUIRE(a.code == 0);
    r = relay_of(&(addr_t){ .port = relayed_of(&a).port });
    REQUIRE(r != NULL);
    refresh(&c, 0, &a);
    CHECK(a.code == 0 && lifetime_of(&a) == 0);
    CHECK(!r->open);
    refresh(&c, 0, &a);
    CHECK_EQ_INT(a.code, 437);

    /* An allocation whose time passed is gone even before its timer runs. */
    client_init(&c, TURN_UDP, "198.51.100.7", 40002, user_valid);
    allocate(&c, NULL, 0, &a);
    now_ms += 601000;
    refresh(&c, 600, &a);
    CHECK_EQ_INT(a.code, 437);
    stop();
}

static void test_peer_policy(void)
{
    static const char *refused[] = {
        "127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "0.0.0.0", "::", "10.0.0.1",
        "169.254.1.1", "172.16.0.1", "172.31.255.254", "192.168.1.1", "100.64.0.1", "100.127.255.255",
        "224.0.0.1", "239.255.255.250", "255.255.255.255", "240.0.0.1", "fc00::1", "fd00::1",
        "fe80::1", "ff02::1", "::ffff:10.0.0.1", "::ffff:8.8.8.8", "::127.0.0.1", "::8.8.8.8",
        "64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b:1::1", "203.0.113.10", "0.1.2.3",
    };
    static const char *allowed[] = {
        "8.8.8.8", "1.1.1.1", "198.51.100.1", "172.32.0.1", "100.128.0.1", "2001:4860:4860::8888",
        "64:ff9b::808:808", "11.0.0.1", "2606:4700::1111",
    };
    config_reset();
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        addr_t p = ip(refused[i], 9);
        if (turn_peer_allowed(&cfg, &p)) {
            printf("  %s was allowed\n", refused[i]);
            CHECK(0);
        }
    }
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        addr_t p = ip(allowed[i], 9);
        if (!turn_peer_allowed(&cfg, &p)) {
            printf("  %s was refused\n", allowed[i]);
            CHECK(0);
        }
    }
    /* Loopback for tests; its mapped form stays refused. */
    cfg.allow_loopback = true;
    CHECK(turn_peer_allowed(&cfg, &(addr_t){ .family = 4, .ip = { 127, 0, 0, 1 } }));
    addr_t p6 = ip("::1", 1), pm = ip("::ffff:127.0.0.1", 1), p10 = ip("10.1.2.3", 1);
    CHECK(turn_peer_allowed(&cfg, &p6));
    CHECK(!turn_peer_allowed(&cfg, &pm));
    CHECK(!turn_peer_allowed(&cfg, &p10));
    /* Allow and deny lists: deny wins. */
    char bad[64];
    REQUIRE(cidr_list_parse("10.0.0.0/8", &allow_list, bad, sizeof bad));
    CHECK(turn_peer_allowed(&cfg, &p10));
    REQUIRE(cidr_list_parse("10.1.0.0/16, 8.8.8.8", &deny_list, bad, sizeof bad));
    CHECK(!turn_peer_allowed(&cfg, &p10));
    addr_t g = ip("8.8.8.8", 53), g2 = ip("10.2.0.1", 5);
    CHECK(!turn_peer_allowed(&cfg, &g));
    CHECK(turn_peer_allowed(&cfg, &g2));
}

static void test_permissions_and_send_indication(void)
{
    client c;
    answer a;
    uint8_t msg[512], pv[20];
    addr_t peer = ip("198.51.100.50", 7000), other = ip("198.51.100.51", 7000);
    start();
    client_init(&c, TURN_UDP, "198.51.100.7", 40000, user_valid);
    allocate(&c, NULL, 0, &a);
    REQUIRE(a.code == 0);

    /* Before any permission, a Send indication goes nowhere. */
    uint8_t tid[12] = { 9 };
    size_t pl = xor_peer(pv, &peer, tid);
    stun_writer w;
    stun_begin(&w, msg, sizeof msg, 0x0016, tid);
    stun_put(&w, STUN_ATTR_XOR_PEER_ADDRESS, pv, pl);
    stun_put(&w, STUN_ATTR_DATA, "ping!", 5);
    size_t ind_len = stun_finish(&w);
    CHECK_EQ_INT(send_msg(&c, msg, ind_len).kind, TURN_OUT_NONE);

    /* The refused peers get 403 and install nothing. */
    static const char *refused[] = { "127.0.0.1", "::1", "::ffff:127.0.0.1", "0.0.0.0", "::",
                                     "10.0.0.1", "169.254.1.1" };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        addr_t p = ip(refused[i], 80);
        permit(&c, &p, &a);
        CHECK_EQ_INT(a.code, 403);
        CHECK(a.signed_ok);
    }
    addr_t v6peer = ip("2001:4860:4860::8888", 53);
    permit(&c, &v6peer, &a);
    CHECK_EQ_INT(a.code, 443);

    /* All or nothing: one bad peer among good ones installs none. */
    addr_t mix[2] = { other, ip("10.0.0.1", 1) };
    request_with_peers(&c, 0x0008, mix, 2, NULL, 0, &a);
    CHECK_EQ_INT(a.code, 403);

    permit(&c, &peer, &a);
    CHECK_EQ_INT(a.code, 0);
    CHECK(a.signed_ok && a.m.fingerprint);
    turn_out o = send_msg(&c, msg, ind_len);
    REQUIRE(o.kind == TURN_OUT_PEER);
    CHECK_EQ_MEM(o.data, o.len, "ping!", 5);
    CHECK(o.peer.port == 7000 && memcmp(o.peer.ip, peer.ip, 4) == 0);
    CHECK(o.relay == relay_of(&(addr_t){ .port = 50000 }));
    /* The permission is for the IP: another port of it works too; another IP does not. */
    uint8_t reply_from_peer[TURN_PEER_HEADROOM + 64];
    uint8_t *d = reply_from_peer + TURN_PEER_HEADROOM;
    memcpy(d, "pong", 4);
    addr_t peer_other_port = peer;
    peer_other_port.port = 7001;
    fake_relay *r = relay_of(&(addr_t){ .port = 50000 });
    o = turn_on_peer(srv, r->alloc, &peer_other_port, d, 4, now_ms);
    REQUIRE(o.kind == TURN_OUT_CLIENT);
    CHECK(o.client->addr.port == 40000);
    /* A Data indication carrying the peer and the bytes. */
    stun_msg dm;
    REQUIRE(stun_decode(o.data, o.len, &dm));
    CHECK(dm.method == STUN_DATA && dm.cls == STUN_CLASS_INDICATION);
    REQUIRE(dm.n_peers == 1);
    CHECK(dm.peers[0].port == 7001);
    CHECK_EQ_MEM(o.data + dm.data.off, dm.data.len, "pong", 4);
    memcpy(d, "pong", 4);
    CHECK_EQ_INT(turn_on_peer(srv, r->alloc, &other, d, 4, now_ms).kind, TURN_OUT_NONE);

    /* Permissions last 300 s; a refresh extends them. */
    now_ms += 299000;
    CHECK_EQ_INT(send_msg(&c, msg, ind_len).kind, TURN_OUT_PEER);
    permit(&c, &peer, &a);
    now_ms += 299000;
    CHECK_EQ_INT(send_msg(&c, msg, ind_len).kind, TURN_OUT_PEER);
    now_ms += 1000;
    CHECK_EQ_INT(send_msg(&c, msg, ind_len).kind, TURN_OUT_NONE);
    memcpy(d, "pong", 4);
    CHECK_EQ_INT(turn_on_peer(srv, r->alloc, &peer, d, 4, now_ms).kind, TURN_OUT_NONE);
    stop();
}

static void test_permission_limit(void)
{
    client c;
    answer a;
    start();
    client_init(&c, TURN_UDP, "198.51.100.7", 40000, user_valid);
    allocate(&c, NULL, 0, &a);
    for (int i = 0; i < TURN_MAX_PERMISSIONS; i++) {
        addr_t p = ip("198.51.100.0", 1);
        p.ip[2] = (uint8_t)(i / 200);
        p.ip[3] = (uint8_t)(i % 200 + 1);
        p.ip[0] = 8;
        permit(&c, &p, &a);
        CHECK_EQ_INT(a.code, 0);
    }
    addr_t extra = ip("9.9.9.9", 1);
    permit(&c, &extra, &a);
    CHECK_EQ_INT(a.code, 508);
    /* Once they expire the slots come back. */
    now_ms += TURN_PERMISSION_LIFETIME * 1000ull;
    permit(&c, &extra, &a);
    CHECK_EQ_INT(a.code, 0);
    stop();
}

static void test_channels(void)
{
    client c;
    answer a;
    addr_t peer = ip("198.51.100.50", 7000), peer2 = ip("198.51.100.52", 7002);
    uint8_t cd[64] = { 0x40, 0x01, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o', 0, 0, 0 };
    start();
    client_init(&c, TURN_UDP, "198.51.100.7", 40000, user_valid);
    allocate(&c, NULL, 0, &a);

    /* Unbound channel: dropped. */
    CHECK_EQ_INT(send_msg(&c, cd, 9).kind, TURN_OUT_NONE);
    bind_channel(&c, &peer, 0x3FFF, &a);
    CHECK_EQ_INT(a.code, 400);
    bind_channel(&c, &peer, 0x8000, &a);
    CHECK_EQ_INT(a.code, 400);
    addr_t no_port = peer;
    no_port.port = 0;
    bind_channel(&c, &no_port, 0x4001, &a);
    CHECK_EQ_INT(a.code, 400);
    addr_t lo = ip("127.0.0.1", 9);
    bind_channel(&c, &lo, 0x4001, &a);
    CHECK_EQ_INT(a.code, 403);

    bind_channel(&c, &peer, 0x4001, &a);
    CHECK_EQ_INT(a.code, 0);
    CHECK(a.signed_ok);
    turn_out o = send_msg(&c, cd, 9);
    REQUIRE(o.kind == TURN_OUT_PEER);
    CHECK_EQ_MEM(o.data, o.len, "hello", 5);
    CHECK(o.peer.port == 7000);
    /* Padding after the data over UDP is allowed; a datagram shorter than claimed is not. */
    CHECK_EQ_INT(send_msg(&c, cd, 12).kind, TURN_OUT_PEER);
    CHECK_EQ_INT(send_msg(&c, cd, 8).kind, TURN_OUT_NONE);

    /* The binding also made a permission; data from the peer comes back as ChannelData. */
    fake_relay *r = relay_of(&(addr_t){ .port = 50000 });
    uint8_t buf[TURN_PEER_HEADROOM + 16 + TURN_PEER_TAILROOM];
    uint8_t *d = buf + TURN_PEER_HEADROOM;
    memcpy(d, "world", 5);
    o = turn_on_peer(srv, r->alloc, &peer, d, 5, now_ms);
    REQUIRE(o.kind == TURN_OUT_CLIENT);
    CHECK_EQ_MEM(o.data, o.len, "\x40\x01\x00\x05world", 9);

    /* Rebinding: same pair refreshes; the number to another peer or the peer to another number
     * is refused; the old-client range up to 0x7FFF works. */
    bind_channel(&c, &peer, 0x4001, &a);
    CHECK_EQ_INT(a.code, 0);
    bind_channel(&c, &peer2, 0x4001, &a);
    CHECK_EQ_INT(a.code, 400);
    bind_channel(&c, &peer, 0x4002, &a);
    CHECK_EQ_INT(a.code, 400);
    bind_channel(&c, &peer2, 0x7FFF, &a);
    CHECK_EQ_INT(a.code, 0);
    cd[0] = 0x7F, cd[1] = 0xFF;
    o = send_msg(&c, cd, 9);
    CHECK(o.kind == TURN_OUT_PEER && o.peer.port == 7002);

    /* Channels last 600 s (their permission 300 s unless refreshed). */
    refresh(&c, 3600, &a);
    CHECK_EQ_INT(a.code, 0);
    now_ms += 299000;
    permit(&c, &peer2, &a);
    now_ms += 299000;
    CHECK_EQ_INT(send_msg(&c, cd, 9).kind, TURN_OUT_PEER);
    now_ms += 3000;
    CHECK_EQ_INT(send_msg(&c, cd, 9).kind, TURN_OUT_NONE);
    /* During the quiet time after expiry the number still cannot move to another peer. */
    bind_channel(&c, &peer, 0x7FFF, &a);
    CHECK_EQ_INT(a.code, 400);
    now_ms += TURN_CHANNEL_QUIET * 1000ull;
    bind_channel(&c, &peer, 0x7FFF, &a);
    CHECK_EQ_INT(a.code, 0);
    stop();
}

static void test_tcp_channel_data_padding_and_close(void)
{
    client c;
    answer a;
    addr_t peer = ip("198.51.100.50", 7000);
    start();
    client_init(&c, TURN_TCP, "198.51.100.7", 40000, user_valid);
    allocate(&c, NULL, 0, &a);
    REQUIRE(a.code == 0);
    bind_channel(&c, &peer, 0x4000, &a);
    REQUIRE(a.code == 0);
    fake_relay *r = relay_of(&(addr_t){ .port = 50000 });
    uint8_t buf[TURN_PEER_HEADROOM + 16 + TURN_PEER_TAILROOM];
    uint8_t *d = buf + TURN_PEER_HEADROOM;
    memset(buf, 0xEE, sizeof buf);
    memcpy(d, "abcde", 5);
    turn_out o = turn_on_peer(srv, r->alloc, &peer, d, 5, now_ms);
    REQUIRE(o.kind == TURN_OUT_CLIENT);
    CHECK_EQ_MEM(o.data, o.len, "\x40\x00\x00\x05" "abcde\0\0\0", 12);
    CHECK(o.client->transport == TURN_TCP && o.client->conn == &c);

    /* A different TCP connection from the same address and port is another 5-tuple. */
    client c2 = c;
    c2.tc.conn = &c2;
    refresh(&c2, 600, &a);
    CHECK_EQ_INT(a.code, 437);

    turn_on_client_closed(srv, &c.tc);
    CHECK(!r->open);
    turn_stats st;
    turn_get_stats(srv, &st);
    CHECK_EQ_INT(st.allocations, 0);
    stop();
}

static void test_even_port_and_reservation(void)
{
    client c, d;
    answer a;
    uint8_t msg[256];
    static const uint8_t r0 = 0x00, r1 = 0x80;
    start();
    next_port = 50001;
    client_init(&c, TURN_UDP, "198.51.100.7", 40000, user_valid);
    allocate(&c, (attr[]){ { STUN_ATTR_EVEN_PORT, &r0, 1 } }, 1, &a);
    CHECK_EQ_INT(a.code, 0);
    CHECK_EQ_INT(relayed_of(&a).port % 2, 0);
    const uint8_t *v;
    size_t l;
    CHECK(!find_attr(&a, STUN_ATTR_RESERVATION_TOKEN, &v, &l));

    client_init(&c, TURN_UDP, "198.51.100.7", 40001, user_valid);
    taken_port = 50005;     /* the first even port's neighbour is busy: the next pair is used */
    next_port = 50003;
    allocate(&c, (attr[]){ { STUN_ATTR_EVEN_PORT, &r1, 1 } }, 1, &a);
    CHECK_EQ_INT(a.code, 0);
    uint16_t even = relayed_of(&a).port;
    CHECK_EQ_INT(even, 50006);
    REQUIRE(find_attr(&a, STUN_ATTR_RESERVATION_TOKEN, &v, &l) && l == 8);
    uint8_t token[8];
    memcpy(token, v, 8);

    /* The token claims the odd neighbour for another 5-tuple, once. */
    client_init(&d, TURN_UDP, "198.51.100.7", 40002, user_valid);
    attr with_token = { STUN_ATTR_RESERVATION_TOKEN, token, 8 };
    allocate(&d, &with_token, 1, &a);
    CHECK_EQ_INT(a.code, 0);
    CHECK_EQ_INT(relayed_of(&a).port, even + 1);
    client_init(&d, TURN_UDP, "198.51.100.7", 40003, user_valid);
    allocate(&d, &with_token, 1, &a);
    CHECK_EQ_INT(a.code, 508);

    /* An unclaimed reservation lapses after 30 s: its socket closes and the token is dead. */
    client_init(&c, TURN_UDP, "198.51.100.7", 40004, user_valid);
    allocate(&c, (attr[]){ { STUN_ATTR_EVEN_PORT, &r1, 1 } }, 1, &a);
    REQUIRE(a.code == 0);
    REQUIRE(find_attr(&a, STUN_ATTR_RESERVATION_TOKEN, &v, &l));
    memcpy(token, v, 8);
    fake_relay *res = relay_of(&(addr_t){ .port = (uint16_t)(relayed_of(&a).port + 1) });
    REQUIRE(res != NULL);
    CHECK(res->due == now_ms + 30000);
    now_ms += 30000;
    turn_on_expiry(srv, res->alloc, now_ms);
    CHECK(!res->open);
    client_init(&d, TURN_UDP, "198.51.100.7", 40005, user_valid);
    allocate(&d, &with_token, 1, &a);
    CHECK_EQ_INT(a.code, 508);
    (void)msg;
    stop();
}

static void test_bandwidth_limit(void)
{
    client c;
    answer a;
    addr_t peer = ip("198.51.100.50", 7000);
    uint8_t cd[1004] = { 0x40, 0x00, 0x03, 0xE8 };
    start();
    cfg.max_bps = 3000;
    client_init(&c, TURN_UDP, "198.51.100.7", 40000, user_valid);
    allocate(&c, NULL, 0, &a);
    bind_channel(&c, &peer, 0x4000, &a);
    int sent = 0;
    for (int i = 0; i < 10; i++)
        sent += send_msg(&c, cd, sizeof cd).kind == TURN_OUT_PEER;
    CHECK_EQ_INT(sent, 3);
    now_ms += 1000;
    sent = 0;
    for (int i = 0; i < 10; i++)
        sent += send_msg(&c, cd, sizeof cd).kind == TURN_OUT_PEER;
    CHECK_EQ_INT(sent, 3);
    /* The other direction has its own budget. */
    fake_relay *r = relay_of(&(addr_t){ .port = 50000 });
    static uint8_t buf[TURN_PEER_HEADROOM + 1000 + TURN_PEER_TAILROOM];
    sent = 0;
    for (int i = 0; i < 10; i++)
        sent += turn_on_peer(srv, r->alloc, &peer, buf + TURN_PEER_HEADROOM, 1000, now_ms).kind ==
                TURN_OUT_CLIENT;
    CHECK_EQ_INT(sent, 3);
    stop();
}

static void test_challenge_budget(void)
{
    client c;
    answer a;
    uint8_t msg[256];
    attr rt = { STUN_ATTR_REQUESTED_TRANSPORT, udp_transport, 4 };
    start();
    client_init(&c, TURN_UDP, "198.51.100.7", 40000, user_valid);
    int answered = 0;
    for (int i = 0; i < TURN_CHALLENGES_PER_IP + 10; i++) {
        size_t n = build(&c, 0x0003, &rt, 1, NO_SIGN, false, msg, sizeof msg);
        read_answer(&c, send_msg(&c, msg, n), &a);
        answered += a.code == 401;
    }
    CHECK_EQ_INT(answered, TURN_CHALLENGES_PER_IP);
    /* Authenticated requests from the same source are not held back by it. */
    size_t n = build(&c, 0x0003, &rt, 1, SIGN, false, msg, sizeof msg);
    read_answer(&c, send_msg(&c, msg, n), &a);
    CHECK_EQ_INT(a.code, 0);
    /* Another source has its own budget; TCP has none. */
    client d, t;
    client_init(&d, TURN_UDP, "198.51.100.8", 40000, user_valid);
    n = build(&d, 0x0003, &rt, 1, NO_SIGN, false, msg, sizeof msg);
    CHECK_EQ_INT(send_msg(&d, msg, n).kind, TURN_OUT_CLIENT);
    client_init(&t, TURN_TCP, "198.51.100.7", 40001, user_valid);
    answered = 0;
    for (int i = 0; i < TURN_CHALLENGES_PER_IP + 10; i++) {
        n = build(&t, 0x0003, &rt, 1, NO_SIGN, false, msg, sizeof msg);
        answered += send_msg(&t, msg, n).kind == TURN_OUT_CLIENT;
    }
    CHECK_EQ_INT(answered, TURN_CHALLENGES_PER_IP + 10);
    /* The next second brings a new budget. */
    now_ms += 1000;
    n = build(&c, 0x0004, NULL, 0, NO_SIGN, false, msg, sizeof msg);
    CHECK_EQ_INT(send_msg(&c, msg, n).kind, TURN_OUT_CLIENT);
    turn_stats st;
    turn_get_stats(srv, &st);
    CHECK_EQ_INT(st.challenges_dropped, 10);
    stop();
}

static void test_wrong_credentials_and_other_messages(void)
{
    client c, imposter;
    answer a;
    uint8_t msg[256];
    start();
    client_init(&c, TURN_UDP, "198.51.100.7", 40000, user_valid);
    allocate(&c, NULL, 0, &a);
    /* Another valid user on the same 5-tuple (a spoofed source with its own credentials). */
    client_init(&imposter, TURN_UDP, "198.51.100.7", 40000, user_other);
    memcpy(imposter.nonce, c.nonce, sizeof c.nonce);
    refresh(&imposter, 0, &a);
    CHECK_EQ_INT(a.code, 441);
    CHECK_EQ_INT(n_relays, 1);
    CHECK(relays[0].open);

    /* Responses and unknown methods from clients: dropped; an unknown request method: 400. */
    size_t n = build(&c, 0x0103, NULL, 0, NO_SIGN, false, msg, sizeof msg);
    CHECK_EQ_INT(send_msg(&c, msg, n).kind, TURN_OUT_NONE);
    n = build(&c, 0x0017, NULL, 0, NO_SIGN, false, msg, sizeof msg);
    CHECK_EQ_INT(send_msg(&c, msg, n).kind, TURN_OUT_NONE);
    n = build(&c, 0x000A, NULL, 0, NO_SIGN, false, msg, sizeof msg);
    read_answer(&c, send_msg(&c, msg, n), &a);
    CHECK_EQ_INT(a.code, 400);
    /* Junk: nothing. */
    CHECK_EQ_INT(send_msg(&c, (const uint8_t *)"\x80junk", 5).kind, TURN_OUT_NONE);
    CHECK_EQ_INT(send_msg(&c, (const uint8_t *)"", 0).kind, TURN_OUT_NONE);

    /* Binding over TCP is answered with the mapped address; a mapped IPv4 client is IPv4. */
    client t;
    client_init(&t, TURN_TCP, "::ffff:198.51.100.9", 40009, user_valid);
    n = build(&t, 0x0001, NULL, 0, NO_SIGN, true, msg, sizeof msg);
    read_answer(&t, send_msg(&t, msg, n), &a);
    REQUIRE(a.ok);
    CHECK(a.m.method == STUN_BINDING && a.m.cls == STUN_CLASS_SUCCESS && a.m.fingerprint);
    const uint8_t *v;
    size_t l;
    addr_t mapped;
    REQUIRE(find_attr(&a, STUN_ATTR_XOR_MAPPED_ADDRESS, &v, &l));
    REQUIRE(stun_read_xor_addr(v, l, a.m.transaction_id, &mapped));
    CHECK(mapped.family == 4 && mapped.port == 40009 && mapped.ip[3] == 9);
    stop();
}

static void test_ipv6_allocations(void)
{
    client c;
    answer a;
    start();
    turn_free(srv);
    cfg.public_ip = ip("2001:db8::10", 0);
    srv = turn_new(&cfg, &env);
    client_init(&c, TURN_UDP, "2001:db8:1::7", 40000, user_valid);
    static const uint8_t fam6[4] = { 2, 0, 0, 0 }, fam4[4] = { 1, 0, 0, 0 };
    allocate(&c, (attr[]){ { STUN_ATTR_REQUESTED_ADDRESS_FAMILY, fam4, 4 } }, 1, &a);
    CHECK_EQ_INT(a.code, 440);
    allocate(&c, (attr[]){ { STUN_ATTR_REQUESTED_ADDRESS_FAMILY, fam6, 4 } }, 1, &a);
    CHECK_EQ_INT(a.code, 0);
    addr_t r = relayed_of(&a);
    CHECK(r.family == 6 && memcmp(r.ip, cfg.public_ip.ip, 16) == 0);
    CHECK_EQ_INT(relays[0].family, 6);
    addr_t v4peer = ip("8.8.8.8", 53), v6peer = ip("2001:4860:4860::8888", 53);
    permit(&c, &v4peer, &a);
    CHECK_EQ_INT(a.code, 443);
    permit(&c, &v6peer, &a);
    CHECK_EQ_INT(a.code, 0);
    /* A Data indication for an IPv6 peer uses the full headroom. */
    uint8_t buf[TURN_PEER_HEADROOM + 8 + TURN_PEER_TAILROOM];
    memcpy(buf + TURN_PEER_HEADROOM, "v6", 2);
    turn_out o = turn_on_peer(srv, relays[0].alloc, &v6peer, buf + TURN_PEER_HEADROOM, 2, now_ms);
    REQUIRE(o.kind == TURN_OUT_CLIENT);
    CHECK(o.data == buf);
    stun_msg dm;
    REQUIRE(stun_decode(o.data, o.len, &dm));
    CHECK(dm.n_peers == 1 && dm.peers[0].family == 6);
    CHECK_EQ_MEM(o.data + dm.data.off, dm.data.len, "v6", 2);
    stop();
}

int main(void)
{
    RUN(test_rest_password);
    RUN(test_challenge_then_allocate);
    RUN(test_credentials_that_never_allocate);
    RUN(test_retransmitted_allocate_and_437);
    RUN(test_allocate_refusals);
    RUN(test_quotas);
    RUN(test_lifetimes_refresh_and_expiry);
    RUN(test_peer_policy);
    RUN(test_permissions_and_send_indication);
    RUN(test_permission_limit);
    RUN(test_channels);
    RUN(test_tcp_channel_data_padding_and_close);
    RUN(test_even_port_and_reservation);
    RUN(test_bandwidth_limit);
    RUN(test_challenge_budget);
    RUN(test_wrong_credentials_and_other_messages);
    RUN(test_ipv6_allocations);
    return test_finish();
}
