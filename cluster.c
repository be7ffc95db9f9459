/* The cluster engine of cluster.h. Per shard two Redis connections: one for commands (leases,
 * scripts, publishes) and one subscribed to the events channel (and, on this instance's own
 * shard, to its envelope channel): hiredis cannot mix the two on one connection. Each connects
 * without blocking, gives up after CONNECT_TIMEOUT_MS, and reconnects with doubling back-off;
 * the command side never holds more than OBUF_MAX bytes or INFLIGHT_MAX unanswered commands,
 * past which commands are dropped and counted rather than queued. After a (re)connect this
 * instance renews its lease, releases what left meanwhile, claims its registrations again and
 * reloads the shard's registry.
 *
 * Frames for another instance gather in its packet during a loop pass and leave in one
 * PUBLISH at the end of the pass (or sooner past PACKET_FLUSH), asking Redis for no reply;
 * Redis output is written then too (redisloop_flush), a pass's commands in one write.
 *
 * The registry's copy here can miss a departure that crosses a reload; heartbeats carry each
 * instance's count of peers on the shard, and a count that disagrees with ours twice in a row
 * reloads the shard, so the copies converge within a few heartbeats. */
#include "cluster.h"

#include "buildinfo.h"
#include "compat/compat.h"
#include "hash.h"
#include "log.h"
#include "redisloop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if DIG_HAVE_CLUSTER
#include <hiredis/async.h>
#include <hiredis/sds.h>
#include <netdb.h>

#define CONNECT_TIMEOUT_MS 2000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define OBUF_MAX ((size_t)16 << 20)
#define INFLIGHT_MAX 100000
/* A peer key's lifetime, renewed every PEER_REFRESH_MS: it only matters for a departure whose
 * release never reached Redis (the connection dropped with it in flight). */
#define PEER_TTL_MS 15000
#define PEER_REFRESH_MS 5000
/* Departures kept while their shard is away, released after reconnecting; past this many the
 * newest are left to their keys' lifetime. */
#define MAX_DEPARTED 65536
#define RELOAD_MIN_GAP_MS 1000
#define MAX_NODES 1024
/* A node's envelopes of one pass are published together, or sooner past this size. */
#define PACKET_FLUSH ((size_t)256 << 10)
#define EV_CHANNEL "dig:ev"
#define PEER_PREFIX "dig:peer:"

/* Claims KEYS[1] for ARGV[2] (a record of ARGV[1] since ARGV[4]) unless another live instance
 * holds it since earlier; announces a change. Returns {won, key, reg_ms}. */
static const char claim_lua[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v and v ~= ARGV[2] then\n"
    "  local o, t = string.match(v, '^(%S+) (%d+) ')\n"
    "  if o and o ~= ARGV[1] and redis.call('EXISTS', 'dig:inst:' .. o) == 1 then\n"
    "    local ot, mt = tonumber(t), tonumber(ARGV[4])\n"
    "    if ot < mt or (ot == mt and o < ARGV[1]) then return {0, KEYS[1], ARGV[4]} end\n"
    "  end\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])\n"
    "if v ~= ARGV[2] then redis.call('PUBLISH', '" EV_CHANNEL "', 'U' .. ARGV[2]) end\n"
    "return {1, KEYS[1], ARGV[4]}\n";
/* Deletes KEYS[1] when its record starts with ARGV[1] ("<owner> <reg_ms> ") and announces
 * ARGV[2]. */
static const char release_lua[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  redis.call('PUBLISH', '" EV_CHANNEL "', ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";
/* Every record whose holder is alive. */
static const char load_lua[] =
    "local out, cur = {}, '0'\n"
    "repeat\n"
    "  local r = redis.call('SCAN', cur, 'MATCH', '" PEER_PREFIX "*', 'COUNT', 1000)\n"
    "  cur = r[1]\n"
    "  for _, k in ipairs(r[2]) do\n"
    "    local v = redis.call('GET', k)\n"
    "    local o = v and string.match(v, '^(%S+) ')\n"
    "    if o and redis.call('EXISTS', 'dig:inst:' .. o) == 1 then out[#out + 1] = v end\n"
    "  end\n"
    "until cur == '0'\n"
    "return out\n";

enum { SCRIPT_CLAIM, SCRIPT_RELEASE, SCRIPT_LOAD, N_SCRIPTS };
static const char *const scripts[N_SCRIPTS] = { claim_lua, release_lua, load_lua };

/* What a reply is for (the callback's privdata: op | shard << 8). */
enum { OP_IGNORE, OP_CLAIM, OP_LOAD };

typedef struct shard shard;

typedef struct {
    cluster *cl;
    shard *sh;
    bool sub;                 /* the subscribed connection */
    redisloop_watch w;
    enum { RC_DOWN, RC_CONNECTING, RC_UP } state;
    bool ready;               /* up, and (sub) subscribed */
    loop_timer timer;         /* connect timeout, or the next attempt */
    uint64_t backoff_ms;
    size_t inflight;
    bool was_up;
} rconn;

struct shard {
    size_t index;
    cluster_url url;
    rconn cmd, sub;
    uint32_t gen;             /* resynchronisations started */
    uint64_t last_reload_ms;
    bool reload_pending;
    size_t claimed;           /* this instance's registrations held on the shard */
};

struct cluster_node {
    char id[CLUSTER_ID_MAX + 1];
    size_t id_len;
    size_t out_shard;         /* where its envelope channel lives */
    uint64_t last_heard_ms;
    size_t count[CLUSTER_MAX_SHARDS];     /* its peers in our registry, by shard */
    uint8_t mismatch[CLUSTER_MAX_SHARDS]; /* heartbeats in a row disagreeing with count */
    cluster_ref *refs;
    char *batch;              /* envelope targets being gathered */
    size_t batch_len, batch_cap, batch_count;
    cluster_node *batch_next; /* nodes with targets gathered */
    char *out;                /* this pass's envelopes for it: one publish at the end */
    size_t out_len, out_cap, out_count;
    cluster_node *out_next;   /* nodes with envelopes waiting */
    bool out_listed;          /* on that list */
    cluster_node *next;
};

struct cluster_local {
    cluster_local *prev, *next;
    void *user;
    size_t shard;
    bool claimed;
    uint64_t reg_ms;
    size_t id_len, rec_len;
    char *id;                 /* the peer id, after the record */
    char rec[];               /* the encoded record, then the id */
};

struct cluster {
    loop *lp;
    cluster_hooks hooks;
    bool *busy;
    char id[CLUSTER_ID_MAX + 1];
    size_t id_len;
    char to_channel[CLUSTER_ID_MAX + 8];
    size_t own_shard;
    char sha[N_SCRIPTS][2 * HASH_SHA1_LEN + 1];
    shard shards[CLUSTER_MAX_SHARDS];
    size_t n_shards;
    cluster_node *nodes;
    size_t n_nodes;
    cluster_node *batch_nodes;
    cluster_node *out_nodes;
    cluster_local *locals;
    cluster_local *departed;  /* left while their shard was away: released on reconnect */
    size_t n_departed;
    uint64_t last_ms;         /* the previous registration time handed out */
    uint64_t next_refresh_ms;
    size_t max_remote;
    loop_timer heartbeat;
    cluster_target *targets;  /* an envelope's targets being delivered */
    size_t targets_cap;
    cluster_stats stats;
};

/* ---- connections ---- */

static void connect_now(void *ctx);
static void on_cmd_up(rconn *rc);
static void on_sub_up(rconn *rc);

static void schedule_reconnect(rconn *rc)
{
    rc->state = RC_DOWN;
    rc->ready = false;
    rc->inflight = 0;
    loop_timer_init(&rc->timer, connect_now, rc);
    loop_timer_set(rc->cl->lp, &rc->timer, loop_now_ms(rc->cl->lp) + rc->backoff_ms);
    rc->backoff_ms = rc->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : rc->backoff_ms * 2;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    rconn *rc = ac->data;
    loop_timer_stop(rc->cl->lp, &rc->timer);
    if (status != REDIS_OK) {
        log_debug("cluster: cannot reach Redis %s:%u: %s", rc->sh->url.host,
                  (unsigned)rc->sh->url.port, ac->errstr);
        /* hiredis frees the context after this returns */
        rc->w.ac = NULL;
        schedule_reconnect(rc);
        return;
    }
    rc->state = RC_UP;
    rc->backoff_ms = BACKOFF_MIN_MS;
    if (rc->was_up)
        rc->cl->stats.reconnects++;
    rc->was_up = true;
    if (rc->sub)
        on_sub_up(rc);
    else
        on_cmd_up(rc);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    rconn *rc = ac->data;
    (void)status;
    log_warn("cluster: lost Redis %s:%u (%s): reconnecting", rc->sh->url.host,
             (unsigned)rc->sh->url.port, rc->sub ? "subscriber" : "commands");
    rc->w.ac = NULL;
    if (!rc->sub) {
        /* the leases are renewed and claimed again after reconnecting */
        for (cluster_local *l = rc->cl->locals; l; l = l->next)
            if (l->shard == rc->sh->index)
                l->claimed = false;
        rc->sh->claimed = 0;
    }
    schedule_reconnect(rc);
}

static void on_connect_timeout(void *ctx)
{
    rconn *rc = ctx;
    log_warn("cluster: Redis %s:%u did not answer within %d ms", rc->sh->url.host,
             (unsigned)rc->sh->url.port, CONNECT_TIMEOUT_MS);
    if (rc->w.ac) {
        redisAsyncContext *ac = rc->w.ac;
        redisAsyncFree(ac);   /* not connected: no disconnect callback */
    }
    rc->w.ac = NULL;
    schedule_reconnect(rc);
}

static void connect_now(void *ctx)
{
    rconn *rc = ctx;
    redisAsyncContext *ac = redisAsyncConnect(rc->sh->url.host, rc->sh->url.port);
    if (!ac || ac->err) {
        log_debug("cluster: connecting to %s:%u failed: %s", rc->sh->url.host,
                  (unsigned)rc->sh->url.port, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(rc);
        return;
    }
    ac->data = rc;
    redisloop_attach(&rc->w, rc->cl->lp, ac, rc->cl->busy);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    rc->state = RC_CONNECTING;
    loop_timer_init(&rc->timer, on_connect_timeout, rc);
    loop_timer_set(rc->cl->lp, &rc->timer, loop_now_ms(rc->cl->lp) + CONNECT_TIMEOUT_MS);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv);

/* Whether rc takes another command: up and within its bounds; else it is dropped and counted. */
static bool room_for(rconn *rc)
{
    if (rc->state != RC_UP || !rc->w.ac || rc->inflight >= INFLIGHT_MAX ||
        (rc->w.ac->c.obuf && sdslen(rc->w.ac->c.obuf) > OBUF_MAX)) {
        rc->cl->stats.dropped++;
        return false;
    }
    return true;
}

/* Queues a command on rc (see room_for). */
static bool command(rconn *rc, uintptr_t op, int argc, const char **argv, const size_t *lens)
{
    if (!room_for(rc))
        return false;
    if (redisAsyncCommandArgv(rc->w.ac, rc->sub ? NULL : on_reply,
                              (void *)(op | (rc->sh->index << 8)), argc, argv, lens) != REDIS_OK) {
        rc->cl->stats.dropped++;
        return false;
    }
    if (!rc->sub)
        rc->inflight++;
    return true;
}

/* command with NUL-terminated arguments */
static bool command_v(rconn *rc, uintptr_t op, int argc, const char **argv)
{
    size_t lens[8];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return command(rc, op, argc, argv, lens);
}

/* AUTH and SELECT first, when the URL asks for them. */
static void handshake(rconn *rc)
{
    char db[16];
    if (rc->sh->url.password[0]) {
        const char *a[] = { "AUTH", rc->sh->url.password };
        command_v(rc, OP_IGNORE, 2, a);
    }
    if (!rc->sub && rc->sh->url.db) {
        snprintf(db, sizeof db, "%u", rc->sh->url.db);
        const char *a[] = { "SELECT", db };
        command_v(rc, OP_IGNORE, 2, a);
    }
}

/* ---- nodes and the registry's copy ---- */

static cluster_node *find_node(cluster *cl, const char *id, size_t n, bool create)
{
    cluster_node *nd;
    for (nd = cl->nodes; nd; nd = nd->next)
        if (nd->id_len == n && memcmp(nd->id, id, n) == 0)
            return nd;
    if (!create || n == 0 || n > CLUSTER_ID_MAX || cl->n_nodes >= MAX_NODES)
        return NULL;
    nd = calloc(1, sizeof *nd);
    if (!nd)
        return NULL;
    memcpy(nd->id, id, n);
    nd->id_len = n;
    nd->out_shard = cluster_shard_of(id, n, cl->n_shards);
    nd->last_heard_ms = loop_now_ms(cl->lp);
    nd->next = cl->nodes;
    cl->nodes = nd;
    cl->n_nodes++;
    cl->stats.instances = cl->n_nodes;
    return nd;
}

static void drop_ref(cluster *cl, cluster_ref *ref)
{
    cluster_node *nd = ref->node;
    cl->hooks.remote_down(cl->hooks.ctx, ref);
    if (ref->prev)
        ref->prev->next = ref->next;
    else
        nd->refs = ref->next;
    if (ref->next)
        ref->next->prev = ref->prev;
    nd->count[ref->shard]--;
    cl->stats.remote_peers--;
    free(ref);
}

static void forget_node(cluster *cl, cluster_node *nd)
{
    cluster_node **pp = &cl->nodes;
    while (nd->refs)
        drop_ref(cl, nd->refs);
    while (*pp != nd)
        pp = &(*pp)->next;
    *pp = nd->next;
    /* a node is never on the batch or packet lists between calls (the packets left first) */
    free(nd->batch);
    free(nd->out);
    free(nd);
    cl->n_nodes--;
    cl->stats.instances = cl->n_nodes;
}

/* A registration held elsewhere: added, or confirmed by a reload (gen). */
static void apply_record(cluster *cl, const char *p, size_t n, uint32_t gen)
{
    cluster_record r;
    cluster_node *nd;
    cluster_ref *old, *ref;
    cluster_local *mine;
    size_t sh;
    if (!cluster_record_decode(p, n, &r)) {
        log_debug("cluster: ignoring a malformed registration record");
        return;
    }
    if (r.owner_len == cl->id_len && memcmp(r.owner, cl->id, cl->id_len) == 0)
        return;
    nd = find_node(cl, r.owner, r.owner_len, true);
    if (!nd)
        return;
    sh = cluster_shard_of(r.peer_id, r.peer_id_len, cl->n_shards);
    old = cl->hooks.remote_find(cl->hooks.ctx, r.peer_id, r.peer_id_len);
    if (old && old->node == nd && old->reg_ms == r.reg_ms) {
        old->gen = gen;
        return;
    }
    mine = cl->hooks.local_of(cl->hooks.ctx, r.peer_id, r.peer_id_len);
    if (mine) {
        /* the earlier registration keeps the id (ties: the smaller instance id) */
        int c = memcmp(cl->id, r.owner, cl->id_len < r.owner_len ? cl->id_len : r.owner_len);
        bool mine_first = mine->reg_ms < r.reg_ms ||
                          (mine->reg_ms == r.reg_ms && (c < 0 || (c == 0 && cl->id_len < r.owner_len)));
        if (mine_first)
            return;
        cl->stats.conflicts++;
        log_warn("cluster: %.*s registered earlier on instance %.*s: closing ours (error 5)",
                 (int)r.peer_id_len, r.peer_id, (int)r.owner_len, r.owner);
        cl->hooks.evict(cl->hooks.ctx, mine->user);
    }
    if (old)
        drop_ref(cl, old);
    if (cl->stats.remote_peers >= cl->max_remote) {
        cl->stats.dropped++;
        return;
    }
    ref = calloc(1, sizeof *ref);
    if (!ref)
        return;
    ref->node = nd;
    ref->reg_ms = r.reg_ms;
    ref->gen = gen;
    ref->shard = (uint16_t)sh;
    if (!cl->hooks.remote_up(cl->hooks.ctx, &r, ref)) {
        free(ref);
        return;
    }
    ref->next = nd->refs;
    if (nd->refs)
        nd->refs->prev = ref;
    nd->refs = ref;
    nd->count[sh]++;
    cl->stats.remote_peers++;
}

/* "D<owner> <reg_ms> <peer id>" */
static void apply_departure(cluster *cl, const char *p, size_t n)
{
    const char *owner, *id;
    size_t owner_len, id_len;
    uint64_t reg_ms;
    cluster_ref *ref;
    if (!cluster_owner_prefix(p, n, &owner, &owner_len, &reg_ms, &id, &id_len))
        return;
    ref = cl->hooks.remote_find(cl->hooks.ctx, id, id_len);
    if (ref && ref->reg_ms == reg_ms && ref->node->id_len == owner_len &&
        memcmp(ref->node->id, owner, owner_len) == 0)
        drop_ref(cl, ref);
}

static void request_reload(cluster *cl, shard *sh);

/* "H<owner> <count>": alive, holding count peers on this shard. */
static void apply_heartbeat(cluster *cl, shard *sh, const char *p, size_t n)
{
    const char *owner;
    size_t owner_len;
    uint64_t count;
    cluster_node *nd;
    if (!cluster_owner_prefix(p, n, &owner, &owner_len, &count, NULL, NULL) ||
        (owner_len == cl->id_len && memcmp(owner, cl->id, owner_len) == 0))
        return;
    nd = find_node(cl, owner, owner_len, true);
    if (!nd)
        return;
    nd->last_heard_ms = loop_now_ms(cl->lp);
    if (nd->count[sh->index] == count) {
        nd->mismatch[sh->index] = 0;
    } else if (++nd->mismatch[sh->index] >= 2) {
        nd->mismatch[sh->index] = 0;
        log_debug("cluster: instance %.*s holds %llu peers on shard %zu, we list %zu: reloading",
                  (int)owner_len, owner, (unsigned long long)count, sh->index,
                  nd->count[sh->index]);
        request_reload(cl, sh);
    }
}

/* ---- replies ---- */

static void on_claim_reply(cluster *cl, shard *sh, redisReply *r)
{
    cluster_local *l;
    const char *id;
    size_t n;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_STRING ||
        r->element[2]->type != REDIS_REPLY_STRING || r->element[1]->len < sizeof PEER_PREFIX - 1)
        return;
    id = r->element[1]->str + sizeof PEER_PREFIX - 1;
    n = r->element[1]->len - (sizeof PEER_PREFIX - 1);
    l = cl->hooks.local_of(cl->hooks.ctx, id, n);
    if (!l || strtoull(r->element[2]->str, NULL, 10) != l->reg_ms)
        return;   /* that registration is gone already */
    if (r->element[0]->integer == 1) {
        if (!l->claimed)
            sh->claimed++;
        l->claimed = true;
        return;
    }
    cl->stats.conflicts++;
    log_warn("cluster: %.*s is held by a live instance since earlier: closing ours (error 5)",
             (int)n, id);
    cl->hooks.evict(cl->hooks.ctx, l->user);
}

static void on_load_reply(cluster *cl, shard *sh, redisReply *r)
{
    uint32_t gen = sh->gen;
    if (r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            apply_record(cl, r->element[i]->str, r->element[i]->len, gen);
    /* what the reload did not confirm has left */
    for (cluster_node *nd = cl->nodes; nd; nd = nd->next)
        for (cluster_ref *ref = nd->refs, *next; ref; ref = next) {
            next = ref->next;
            if (ref->shard == sh->index && ref->gen != gen)
                drop_ref(cl, ref);
        }
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    rconn *rc = ac->data;
    cluster *cl = rc->cl;
    uintptr_t op = (uintptr_t)priv & 0xff;
    shard *sh = &cl->shards[(uintptr_t)priv >> 8];
    redisReply *r = reply;
    if (rc->inflight > 0)
        rc->inflight--;
    if (!r)
        return;   /* the connection went away */
    if (r->type == REDIS_REPLY_ERROR) {
        log_warn("cluster: Redis %s:%u answered: %s", sh->url.host, (unsigned)sh->url.port, r->str);
        return;
    }
    if (op == OP_CLAIM)
        on_claim_reply(cl, sh, r);
    else if (op == OP_LOAD)
        on_load_reply(cl, sh, r);
}

/* ---- leases ---- */

/* dig:peer:<id> into key (sizeof PEER_PREFIX + CLUSTER_PEER_ID_MAX bytes); returns its length. */
static size_t peer_key(char *key, const cluster_local *l)
{
    memcpy(key, PEER_PREFIX, sizeof PEER_PREFIX - 1);
    memcpy(key + sizeof PEER_PREFIX - 1, l->id, l->id_len);
    return sizeof PEER_PREFIX - 1 + l->id_len;
}

static void claim(cluster *cl, cluster_local *l)
{
    shard *sh = &cl->shards[l->shard];
    char key[sizeof PEER_PREFIX + CLUSTER_PEER_ID_MAX], ttl[24], ms[24];
    size_t kn = peer_key(key, l);
    snprintf(ttl, sizeof ttl, "%d", PEER_TTL_MS);
    snprintf(ms, sizeof ms, "%llu", (unsigned long long)l->reg_ms);
    const char *argv[] = { "EVALSHA", cl->sha[SCRIPT_CLAIM], "1", key, cl->id, l->rec, ttl, ms };
    size_t lens[] = { 7, strlen(cl->sha[SCRIPT_CLAIM]), 1, kn, cl->id_len,
                      l->rec_len, strlen(ttl), strlen(ms) };
    command(&sh->cmd, OP_CLAIM, 8, argv, lens);
}

static void release(cluster *cl, cluster_local *l)
{
    shard *sh = &cl->shards[l->shard];
    char key[sizeof PEER_PREFIX + CLUSTER_PEER_ID_MAX];
    char prefix[CLUSTER_ID_MAX + 32], ev[CLUSTER_ID_MAX + 32 + CLUSTER_PEER_ID_MAX];
    size_t kn = peer_key(key, l);
    int pn = snprintf(prefix, sizeof prefix, "%s %llu ", cl->id, (unsigned long long)l->reg_ms);
    ev[0] = 'D';
    memcpy(ev + 1, prefix, (size_t)pn);
    memcpy(ev + 1 + pn, l->id, l->id_len);
    const char *argv[] = { "EVALSHA", cl->sha[SCRIPT_RELEASE], "1", key, prefix, ev };
    size_t lens[] = { 7, strlen(cl->sha[SCRIPT_RELEASE]), 1, kn, (size_t)pn,
                      1 + (size_t)pn + l->id_len };
    command(&sh->cmd, OP_IGNORE, 6, argv, lens);
}

static void unlink_local(cluster_local **list, cluster_local *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        *list = l->next;
    if (l->next)
        l->next->prev = l->prev;
}

static void push_local(cluster_local **list, cluster_local *l)
{
    l->prev = NULL;
    l->next = *list;
    if (*list)
        (*list)->prev = l;
    *list = l;
}

static void request_reload(cluster *cl, shard *sh)
{
    uint64_t now = loop_now_ms(cl->lp);
    if (!sh->cmd.ready || !sh->sub.ready)
        return;
    if (now - sh->last_reload_ms < RELOAD_MIN_GAP_MS && sh->last_reload_ms != 0) {
        sh->reload_pending = true;   /* the next heartbeat does it */
        return;
    }
    sh->reload_pending = false;
    sh->last_reload_ms = now;
    sh->gen++;
    const char *argv[] = { "EVALSHA", cl->sha[SCRIPT_LOAD], "0" };
    command_v(&sh->cmd, OP_LOAD, 3, argv);
}

/* This instance's lease and heartbeat on one shard. */
static void beat(cluster *cl, shard *sh)
{
    char key[CLUSTER_ID_MAX + 16], ttl[16], hb[CLUSTER_ID_MAX + 32];
    snprintf(key, sizeof key, "dig:inst:%s", cl->id);
    snprintf(ttl, sizeof ttl, "%d", CLUSTER_INSTANCE_TTL_MS);
    snprintf(hb, sizeof hb, "H%s %zu", cl->id, sh->claimed);
    const char *set[] = { "SET", key, "1", "PX", ttl };
    const char *pub[] = { "PUBLISH", EV_CHANNEL, hb };
    command_v(&sh->cmd, OP_IGNORE, 5, set);
    command_v(&sh->cmd, OP_IGNORE, 3, pub);
}

static void on_cmd_up(rconn *rc)
{
    cluster *cl = rc->cl;
    shard *sh = rc->sh;
    handshake(rc);
    for (int i = 0; i < N_SCRIPTS; i++) {
        const char *a[] = { "SCRIPT", "LOAD", scripts[i] };
        command_v(rc, OP_IGNORE, 3, a);
    }
    rc->ready = true;
    beat(cl, sh);
    /* departures first, so an id that left and came back is claimed after its release */
    for (cluster_local *l = cl->departed, *next; l; l = next) {
        next = l->next;
        if (l->shard == sh->index) {
            release(cl, l);
            unlink_local(&cl->departed, l);
            cl->n_departed--;
            free(l);
        }
    }
    for (cluster_local *l = cl->locals; l; l = l->next)
        if (l->shard == sh->index)
            claim(cl, l);
    log_info("cluster: connected to Redis %s:%u", sh->url.host, (unsigned)sh->url.port);
    request_reload(cl, sh);
}

static void on_sub_message(redisAsyncContext *ac, void *reply, void *priv);

static void on_sub_up(rconn *rc)
{
    cluster *cl = rc->cl;
    handshake(rc);
    redisAsyncCommand(rc->w.ac, on_sub_message, NULL, "SUBSCRIBE %s", EV_CHANNEL);
    if (rc->sh->index == cl->own_shard)
        redisAsyncCommand(rc->w.ac, on_sub_message, NULL, "SUBSCRIBE %s", cl->to_channel);
}

/* One envelope: its targets and frame to the relay. */
static void deliver(cluster *cl, const char *p, size_t n)
{
    cluster_envelope e;
    const char *id, *text;
    size_t id_len, len, count = 0;
    if (!cluster_envelope_open(&e, p, n))
        return;
    if (e.left > cl->targets_cap) {
        cluster_target *t = realloc(cl->targets, e.left * sizeof *t);
        if (!t)
            return;
        cl->targets = t;
        cl->targets_cap = e.left;
    }
    while (cluster_envelope_next(&e, &id, &id_len))
        cl->targets[count++] = (cluster_target){ id, id_len };
    if (!cluster_envelope_frame(&e, &text, &len))
        return;
    cl->stats.envelopes_received++;
    cl->hooks.deliver(cl->hooks.ctx, cl->targets, count, text, len);
}

static void on_sub_message(redisAsyncContext *ac, void *reply, void *priv)
{
    rconn *rc = ac->data;
    cluster *cl = rc->cl;
    redisReply *r = reply, *kind, *chan, *body;
    (void)priv;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3)
        return;
    kind = r->element[0];
    chan = r->element[1];
    body = r->element[2];
    if (kind->type != REDIS_REPLY_STRING || chan->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(kind->str, "subscribe") == 0) {
        if (strcmp(chan->str, EV_CHANNEL) == 0) {
            rc->ready = true;
            request_reload(cl, rc->sh);
        }
        return;
    }
    if (strcmp(kind->str, "message") != 0 || body->type != REDIS_REPLY_STRING || body->len == 0)
        return;
    if (strcmp(chan->str, EV_CHANNEL) != 0) {
        const char *at = body->str, *env;
        size_t len;
        while (cluster_packet_next(&at, body->str + body->len, &env, &len))
            deliver(cl, env, len);
        return;
    }
    switch (body->str[0]) {
    case 'U': apply_record(cl, body->str + 1, body->len - 1, rc->sh->gen); break;
    case 'D': apply_departure(cl, body->str + 1, body->len - 1); break;
    case 'H': apply_heartbeat(cl, rc->sh, body->str + 1, body->len - 1); break;
    default: break;
    }
}

/* Publishes a node's packet. Unanswered (CLIENT REPLY SKIP before the PUBLISH): the sender has
 * no use for the subscriber count, and a reply would cost Redis a write and this instance a
 * parse and a callback. The RESP text goes straight into hiredis's output buffer. */
static void flush_packet(cluster *cl, cluster_node *nd)
{
    static const char skip[] = "*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$4\r\nSKIP\r\n";
    rconn *rc = &cl->shards[nd->out_shard].cmd;
    char head[sizeof skip + CLUSTER_ID_MAX + 96];
    size_t count = nd->out_count;
    nd->out_count = 0;
    if (!room_for(rc)) {
        nd->out_len = 0;
        return;
    }
    int n = snprintf(head, sizeof head, "%s*3\r\n$7\r\nPUBLISH\r\n$%zu\r\ndig:to:%s\r\n$%zu\r\n", skip,
                     7 + nd->id_len, nd->id, nd->out_len);
    const char *parts[] = { head, nd->out, "\r\n" };
    size_t lens[] = { (size_t)n, nd->out_len, 2 };
    nd->out_len = 0;
    if (redisloop_append_unanswered(&rc->w, parts, lens, 3))
        cl->stats.envelopes_sent += count;
    else
        cl->stats.dropped++;
}

static void flush_packets(cluster *cl)
{
    while (cl->out_nodes) {
        cluster_node *nd = cl->out_nodes;
        cl->out_nodes = nd->out_next;
        nd->out_listed = false;
        if (nd->out_count)
            flush_packet(cl, nd);
    }
}

/* Every second: leases and heartbeats, pending reloads, the claims' renewal, and forgetting
 * instances not heard from. */
static void on_heartbeat(void *ctx)
{
    cluster *cl = ctx;
    uint64_t now = loop_now_ms(cl->lp);
    bool refresh = now >= cl->next_refresh_ms;
    if (refresh)
        cl->next_refresh_ms = now + PEER_REFRESH_MS;
    for (size_t i = 0; i < cl->n_shards; i++) {
        shard *sh = &cl->shards[i];
        if (!sh->cmd.ready)
            continue;
        beat(cl, sh);
        if (sh->reload_pending)
            request_reload(cl, sh);
    }
    for (cluster_local *l = cl->locals; l; l = l->next)
        if (refresh || !l->claimed)
            if (cl->shards[l->shard].cmd.ready)
                claim(cl, l);
    flush_packets(cl);
    for (cluster_node *nd = cl->nodes, *next; nd; nd = next) {
        next = nd->next;
        if (now - nd->last_heard_ms > CLUSTER_NODE_DEAD_MS) {
            log_info("cluster: instance %.*s not heard for %d ms: its %zu peers leave",
                     (int)nd->id_len, nd->id, CLUSTER_NODE_DEAD_MS, cl->stats.remote_peers);
            forget_node(cl, nd);
        }
    }
    loop_timer_set(cl->lp, &cl->heartbeat, now + CLUSTER_HEARTBEAT_MS);
}

/* ---- the interface ---- */

/* hiredis resolves a name on every connect, and a DNS lookup blocks: names are resolved once
 * here, at start, and every (re)connect goes to the address found. */
static bool resolve(cluster_url *u, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char host[INET6_ADDRSTRLEN];
    int rc;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(u->host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "--cluster-redis: cannot resolve %s: %s", u->host, gai_strerror(rc));
        return false;
    }
    rc = getnameinfo(res->ai_addr, res->ai_addrlen, host, sizeof host, NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(res);
    if (rc != 0) {
        snprintf(err, errlen, "--cluster-redis: cannot resolve %s: %s", u->host, gai_strerror(rc));
        return false;
    }
    snprintf(u->host, sizeof u->host, "%s", host);
    return true;
}

cluster *cluster_new(loop *lp, const char *urls, const char *instance_id, size_t max_remote,
                     const cluster_hooks *hooks, bool *busy, char *err, size_t errlen)
{
    cluster *cl = calloc(1, sizeof *cl);
    if (!cl) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    {
        cluster_url parsed[CLUSTER_MAX_SHARDS];
        cl->n_shards = cluster_parse_urls(urls, parsed, err, errlen);
        if (cl->n_shards == 0) {
            free(cl);
            return NULL;
        }
        for (size_t i = 0; i < cl->n_shards; i++) {
            if (!resolve(&parsed[i], err, errlen)) {
                free(cl);
                return NULL;
            }
            cl->shards[i].url = parsed[i];
        }
    }
    cl->lp = lp;
    cl->hooks = *hooks;
    cl->busy = busy;
    cl->max_remote = max_remote;
    if (instance_id) {
        snprintf(cl->id, sizeof cl->id, "%s", instance_id);
    } else {
        uint8_t rnd[8];
        compat_random(rnd, sizeof rnd);
        for (size_t i = 0; i < sizeof rnd; i++)
            snprintf(cl->id + 2 * i, 3, "%02x", rnd[i]);
    }
    cl->id_len = strlen(cl->id);
    snprintf(cl->to_channel, sizeof cl->to_channel, "dig:to:%s", cl->id);
    cl->own_shard = cluster_shard_of(cl->id, cl->id_len, cl->n_shards);
    for (int i = 0; i < N_SCRIPTS; i++) {
        uint8_t d[HASH_SHA1_LEN];
        hash_sha1(scripts[i], strlen(scripts[i]), d);
        for (size_t j = 0; j < HASH_SHA1_LEN; j++)
            snprintf(cl->sha[i] + 2 * j, 3, "%02x", d[j]);
    }
    cl->stats.shards = cl->n_shards;
    for (size_t i = 0; i < cl->n_shards; i++) {
        shard *sh = &cl->shards[i];
        sh->index = i;
        for (int k = 0; k < 2; k++) {
            rconn *rc = k ? &sh->sub : &sh->cmd;
            rc->cl = cl;
            rc->sh = sh;
            rc->sub = k == 1;
            rc->w.slot = -1;
            rc->backoff_ms = BACKOFF_MIN_MS;
            loop_timer_init(&rc->timer, connect_now, rc);
            connect_now(rc);
        }
    }
    loop_timer_init(&cl->heartbeat, on_heartbeat, cl);
    cl->next_refresh_ms = loop_now_ms(lp) + PEER_REFRESH_MS;
    loop_timer_set(lp, &cl->heartbeat, loop_now_ms(lp) + CLUSTER_HEARTBEAT_MS);
    log_info("cluster: instance %s, %zu Redis shard%s", cl->id, cl->n_shards,
             cl->n_shards == 1 ? "" : "s");
    return cl;
}

void cluster_free(cluster *cl)
{
    if (!cl)
        return;
    loop_timer_stop(cl->lp, &cl->heartbeat);
    for (size_t i = 0; i < cl->n_shards; i++) {
        for (int k = 0; k < 2; k++) {
            rconn *rc = k ? &cl->shards[i].sub : &cl->shards[i].cmd;
            loop_timer_stop(cl->lp, &rc->timer);
            if (rc->w.ac) {
                redisAsyncContext *ac = rc->w.ac;
                ac->onDisconnect = NULL;
                redisAsyncFree(ac);
            }
        }
    }
    while (cl->nodes) {
        cluster_node *nd = cl->nodes;
        cl->nodes = nd->next;
        while (nd->refs) {
            cluster_ref *ref = nd->refs;
            nd->refs = ref->next;
            free(ref);
        }
        free(nd->batch);
        free(nd->out);
        free(nd);
    }
    for (int k = 0; k < 2; k++) {
        cluster_local **list = k ? &cl->departed : &cl->locals;
        while (*list) {
            cluster_local *l = *list;
            *list = l->next;
            free(l);
        }
    }
    free(cl->targets);
    free(cl);
}


void cluster_end_of_pass(cluster *cl)
{
    flush_packets(cl);
    for (size_t i = 0; i < cl->n_shards; i++) {
        redisloop_flush(&cl->shards[i].cmd.w);
        redisloop_flush(&cl->shards[i].sub.w);
    }
}

cluster_local *cluster_register(cluster *cl, cluster_record *r, void *user)
{
    char rec[CLUSTER_RECORD_MAX];
    size_t len;
    uint64_t ms = compat_wall_ms();
    cluster_local *l;
    /* distinct times for this instance's registrations, so a tie is always between instances */
    if (ms <= cl->last_ms)
        ms = cl->last_ms + 1;
    cl->last_ms = ms;
    r->owner = cl->id;
    r->owner_len = cl->id_len;
    r->reg_ms = ms;
    len = cluster_record_encode(r, rec);
    l = malloc(sizeof *l + len + r->peer_id_len);
    if (!l)
        return NULL;
    memcpy(l->rec, rec, len);
    l->rec_len = len;
    l->id = l->rec + len;
    memcpy(l->id, r->peer_id, r->peer_id_len);
    l->id_len = r->peer_id_len;
    l->user = user;
    l->reg_ms = ms;
    l->claimed = false;
    l->shard = cluster_shard_of(l->id, l->id_len, cl->n_shards);
    push_local(&cl->locals, l);
    if (cl->shards[l->shard].cmd.ready)
        claim(cl, l);
    return l;
}

void cluster_unregister(cluster *cl, cluster_local *l)
{
    if (l->claimed)
        cl->shards[l->shard].claimed--;
    unlink_local(&cl->locals, l);
    if (cl->shards[l->shard].cmd.ready) {
        release(cl, l);
        free(l);
        return;
    }
    /* its key may still be in Redis: released once the shard is back */
    if (cl->n_departed == MAX_DEPARTED) {
        cl->stats.dropped++;
        free(l);
        return;
    }
    l->user = NULL;
    push_local(&cl->departed, l);
    cl->n_departed++;
}


void cluster_batch_add(cluster *cl, const cluster_ref *ref, const char *id, size_t n)
{
    cluster_node *nd = ref->node;
    if (n > CLUSTER_PEER_ID_MAX)
        return;
    if (nd->batch_len + n + 8 > nd->batch_cap) {
        size_t cap = nd->batch_cap ? nd->batch_cap * 2 : 512;
        while (cap < nd->batch_len + n + 8)
            cap *= 2;
        char *b = realloc(nd->batch, cap);
        if (!b)
            return;
        nd->batch = b;
        nd->batch_cap = cap;
    }
    if (nd->batch_count == 0) {
        nd->batch_next = cl->batch_nodes;
        cl->batch_nodes = nd;
    }
    nd->batch_len += cluster_envelope_target(nd->batch + nd->batch_len, id, n);
    nd->batch_count++;
}

/* Adds one envelope (targets gathered, then the frame) to each node's packet; the packets leave
 * at the end of the pass (cluster_end_of_pass), in order. */
void cluster_batch_send(cluster *cl, const char *text, size_t len)
{
    while (cl->batch_nodes) {
        cluster_node *nd = cl->batch_nodes;
        char envhead[24], item[24];
        size_t eh = cluster_envelope_begin(envhead, nd->batch_count);
        size_t env = eh + nd->batch_len + len, ih = cluster_packet_item(item, env);
        cl->batch_nodes = nd->batch_next;
        nd->batch_count = 0;
        if (nd->out_len + ih + env > nd->out_cap) {
            size_t cap = nd->out_cap ? nd->out_cap : 4096;
            while (cap < nd->out_len + ih + env)
                cap *= 2;
            char *o = realloc(nd->out, cap);
            if (!o) {
                nd->batch_len = 0;
                cl->stats.dropped++;
                continue;
            }
            nd->out = o;
            nd->out_cap = cap;
        }
        memcpy(nd->out + nd->out_len, item, ih);
        memcpy(nd->out + nd->out_len + ih, envhead, eh);
        memcpy(nd->out + nd->out_len + ih + eh, nd->batch, nd->batch_len);
        memcpy(nd->out + nd->out_len + ih + eh + nd->batch_len, text, len);
        nd->out_len += ih + env;
        nd->batch_len = 0;
        nd->out_count++;
        if (!nd->out_listed) {
            nd->out_listed = true;
            nd->out_next = cl->out_nodes;
            cl->out_nodes = nd;
        }
        if (nd->out_len >= PACKET_FLUSH)
            flush_packet(cl, nd);   /* stays listed, with nothing waiting */
    }
}

void cluster_get_stats(const cluster *cl, cluster_stats *out)
{
    *out = cl->stats;
    out->shards_up = 0;
    for (size_t i = 0; i < cl->n_shards; i++)
        if (cl->shards[i].cmd.ready && cl->shards[i].sub.ready)
            out->shards_up++;
}

#else /* !DIG_HAVE_CLUSTER */

cluster *cluster_new(loop *lp, const char *urls, const char *instance_id, size_t max_remote,
                     const cluster_hooks *hooks, bool *busy, char *err, size_t errlen)
{
    (void)lp, (void)urls, (void)instance_id, (void)max_remote, (void)hooks, (void)busy;
    snprintf(err, errlen, "cluster support is not built in (hiredis, libhiredis-dev, was missing "
                          "at build time)");
    return NULL;
}

void cluster_free(cluster *cl) { (void)cl; }
void cluster_end_of_pass(cluster *cl) { (void)cl; }
cluster_local *cluster_register(cluster *cl, cluster_record *r, void *user)
{
    (void)cl, (void)r, (void)user;
    return NULL;
}
void cluster_unregister(cluster *cl, cluster_local *l) { (void)cl, (void)l; }
void cluster_batch_add(cluster *cl, const cluster_ref *ref, const char *id, size_t n)
{
    (void)cl, (void)ref, (void)id, (void)n;
}
void cluster_batch_send(cluster *cl, const char *text, size_t len) { (void)cl, (void)text, (void)len; }
void cluster_get_stats(const cluster *cl, cluster_stats *out) { (void)cl; memset(out, 0, sizeof *out); }

#endif
