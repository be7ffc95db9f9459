/* RLY-009 DHT content view (dht.h): a bounded collection of one sweep's dht_records answers, and
 * the /dht.json text built from it when the sweep's window closes.
 *
 * Asked peers live in an open-addressing set of connection tokens sized for the sweep; content
 * keys in an open-addressing table of at most DHT_MAX_TRACKED_KEYS entries (load <= 1/2), keyed
 * with a per-process secret because the keys come from peers. Everything collected is freed when
 * the sweep ends; only the encoded view is kept. */
#include "dht.h"
#include "hash.h"

#include <stdlib.h>
#include <string.h>

#define JW_LIT(w, s) jw_raw((w), (s), sizeof(s) - 1)
#define DHT_BODY_MAX ((size_t)8 << 20)   /* 2000 keys of 128 bytes, each byte escaped, fit */

typedef struct {
    uint64_t hash, providers;
    size_t reported_by;
    size_t last_answer;              /* the answer that last reported it (reporting_peers then) */
    size_t len;
    char key[];
} dht_key;

struct dht_view {
    uint64_t hash_key[2];
    /* the sweep being collected */
    bool open;
    uint64_t window_end_ms;
    uint64_t *peers;                 /* asked peer tokens; 0 is an empty slot */
    uint8_t *answered;               /* per peers slot: its answer was counted */
    size_t peers_mask, n_asked, max_asked;
    size_t new_key_quota;            /* new keys one answer may add */
    dht_key **keys;                  /* collected keys; NULL is an empty slot */
    size_t keys_mask, n_keys;
    size_t reporting_peers;
    bool truncated;
    /* the published view */
    json_writer body;
    size_t published_reporting, published_keys;
};

static void write_view(json_writer *w, uint64_t generated_at, size_t reporting_peers,
                       size_t total_keys, bool truncated, dht_key *const *keys, size_t n)
{
    jw_clear(w);
    JW_LIT(w, "{\"schema_version\":");
    jw_u64(w, DHT_SCHEMA_VERSION);
    JW_LIT(w, ",\"generated_at\":");
    jw_u64(w, generated_at);
    JW_LIT(w, ",\"reporting_peers\":");
    jw_u64(w, reporting_peers);
    JW_LIT(w, ",\"total_keys\":");
    jw_u64(w, total_keys);
    JW_LIT(w, ",\"truncated\":");
    jw_bool(w, truncated);
    JW_LIT(w, ",\"keys\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            JW_LIT(w, ",");
        JW_LIT(w, "{\"content_key\":");
        jw_string(w, keys[i]->key, keys[i]->len);
        JW_LIT(w, ",\"providers\":");
        jw_u64(w, keys[i]->providers);
        JW_LIT(w, ",\"reported_by\":");
        jw_u64(w, keys[i]->reported_by);
        JW_LIT(w, "}");
    }
    JW_LIT(w, "]}");
}

dht_view *dht_new(const uint64_t seed[2])
{
    dht_view *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->hash_key[0] = seed[0];
    v->hash_key[1] = seed[1];
    jw_init(&v->body, 0, DHT_BODY_MAX);
    write_view(&v->body, 0, 0, 0, false, NULL, 0);
    if (v->body.failed) {
        dht_free(v);
        return NULL;
    }
    return v;
}

static void drop_collection(dht_view *v)
{
    if (v->keys)
        for (size_t i = 0; i <= v->keys_mask; i++)
            free(v->keys[i]);
    free(v->keys);
    free(v->peers);
    free(v->answered);
    v->keys = NULL;
    v->peers = NULL;
    v->answered = NULL;
    v->open = false;
    v->n_keys = v->n_asked = v->reporting_peers = 0;
    v->truncated = false;
}

void dht_free(dht_view *v)
{
    if (!v)
        return;
    drop_collection(v);
    jw_free(&v->body);
    free(v);
}

/* Smallest power of two >= 2n (so a table of n entries stays at most half full). */
static size_t table_size(size_t n)
{
    size_t k = 2;
    while (k < 2 * n)
        k *= 2;
    return k;
}

bool dht_sweep_begin(dht_view *v, size_t max_peers, uint64_t now_ms)
{
    drop_collection(v);
    size_t np = table_size(max_peers ? max_peers : 1), nk = table_size(DHT_MAX_TRACKED_KEYS);
    v->peers = calloc(np, sizeof *v->peers);
    v->answered = calloc(np, 1);
    v->keys = calloc(nk, sizeof *v->keys);
    if (!v->peers || !v->answered || !v->keys) {
        drop_collection(v);
        return false;
    }
    v->peers_mask = np - 1;
    v->keys_mask = nk - 1;
    v->max_asked = max_peers;
    size_t share = max_peers ? DHT_MAX_TRACKED_KEYS / max_peers : DHT_MAX_TRACKED_KEYS;
    v->new_key_quota = share ? share : 1;
    v->window_end_ms = now_ms + DHT_ANSWER_WINDOW_MS;
    v->open = true;
    return true;
}

/* The slot holding token, or the empty slot where it would go. */
static size_t peer_slot(const dht_view *v, uint64_t token)
{
    size_t i = (size_t)hash_siphash13(v->hash_key, &token, sizeof token) & v->peers_mask;
    while (v->peers[i] != 0 && v->peers[i] != token)
        i = (i + 1) & v->peers_mask;
    return i;
}

bool dht_asked(dht_view *v, uint64_t token)
{
    if (!v->open || token == 0)
        return false;
    size_t i = peer_slot(v, token);
    if (v->peers[i] == token)
        return true;
    if (v->n_asked == v->max_asked)
        return false;
    v->peers[i] = token;
    v->n_asked++;
    return true;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t key_slot(const dht_view *v, const char *key, size_t len, uint64_t h)
{
    size_t i = (size_t)h & v->keys_mask;
    for (;;) {
        const dht_key *k = v->keys[i];
        if (!k || (k->hash == h && k->len == len && memcmp(k->key, key, len) == 0))
            return i;
        i = (i + 1) & v->keys_mask;
    }
}

enum dht_verdict dht_answer(dht_view *v, uint64_t token, const wire_msg *m, char *scratch,
                            uint64_t now_ms)
{
    if (!v->open || now_ms >= v->window_end_ms)
        return DHT_NO_SWEEP;
    if (token == 0)
        return DHT_NOT_ASKED;
    size_t p = peer_slot(v, token);
    if (v->peers[p] != token)
        return DHT_NOT_ASKED;
    if (v->answered[p])
        return DHT_REPEATED;
    v->answered[p] = 1;
    v->reporting_peers++;
    if (m->truncated || m->records_count > DHT_MAX_KEYS_PER_PEER)
        v->truncated = true;

    wire_iter it = { 0 };
    wire_dht_record r;
    size_t read = 0, added = 0;
    while (read < DHT_MAX_KEYS_PER_PEER && wire_next_dht_record(&it, m->records, &r, scratch)) {
        read++;
        if (r.content_key.n == 0 || r.content_key.n > DHT_MAX_KEY_LEN) {
            v->truncated = true;
            continue;
        }
        uint64_t h = hash_siphash13(v->hash_key, r.content_key.p, r.content_key.n);
        size_t i = key_slot(v, r.content_key.p, r.content_key.n, h);
        dht_key *k = v->keys[i];
        if (k) {
            if (r.providers > k->providers)
                k->providers = r.providers;
            if (k->last_answer != v->reporting_peers) {   /* a key named twice is one report */
                k->last_answer = v->reporting_peers;
                k->reported_by++;
            }
            continue;
        }
        if (added == v->new_key_quota || v->n_keys == DHT_MAX_TRACKED_KEYS) {
            v->truncated = true;
            continue;
        }
        k = malloc(sizeof *k + r.content_key.n);
        if (!k) {
            v->truncated = true;
            continue;
        }
        k->hash = h;
        k->providers = r.providers;
        k->reported_by = 1;
        k->last_answer = v->reporting_peers;
        k->len = r.content_key.n;
        memcpy(k->key, r.content_key.p, r.content_key.n);
        v->keys[i] = k;
        v->n_keys++;
        added++;
    }
    return DHT_COUNTED;
}

uint64_t dht_window_end(const dht_view *v)
{
    return v->open ? v->window_end_ms : UINT64_MAX;
}

static int by_corroboration(const void *a, const void *b)
{
    const dht_key *x = *(dht_key *const *)a, *y = *(dht_key *const *)b;
    if (x->reported_by != y->reported_by)
        return x->reported_by > y->reported_by ? -1 : 1;
    if (x->providers != y->providers)
        return x->providers > y->providers ? -1 : 1;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->key, y->key, n);
    if (c)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

bool dht_sweep_end(dht_view *v, uint64_t now_wall)
{
    if (!v->open)
        return false;
    dht_key **list = malloc((v->n_keys ? v->n_keys : 1) * sizeof *list);
    if (!list) {
        drop_collection(v);
        return false;
    }
    size_t n = 0;
    for (size_t i = 0; i <= v->keys_mask; i++)
        if (v->keys[i])
            list[n++] = v->keys[i];
    qsort(list, n, sizeof *list, by_corroboration);
    size_t shown = n < DHT_MAX_PUBLISHED_KEYS ? n : DHT_MAX_PUBLISHED_KEYS;
    json_writer w;
    jw_init(&w, 0, DHT_BODY_MAX);
    write_view(&w, now_wall, v->reporting_peers, n, v->truncated || n > shown, list, shown);
    size_t v_reporting = v->reporting_peers;
    free(list);
    drop_collection(v);
    if (w.failed) {
        jw_free(&w);
        return false;
    }
    jw_free(&v->body);
    v->body = w;
    v->published_reporting = v_reporting;
    v->published_keys = n;
    return true;
}

json_span dht_view_json(const dht_view *v)
{
    json_span s = { v->body.p, v->body.len };
    return s;
}

size_t dht_view_reporting_peers(const dht_view *v) { return v->published_reporting; }
size_t dht_view_total_keys(const dht_view *v) { return v->published_keys; }
