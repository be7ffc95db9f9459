/* /stats.json (stats.h): picks the first peers and networks by id with topk.h (indices into the
 * snapshot) and writes the capped lists with json.c's writer. */
#include "stats.h"
#include "topk.h"

#include <string.h>

#define JW_LIT(w, s) jw_raw((w), (s), sizeof(s) - 1)

static int bytes_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

static bool peer_before(const void *ctx, uint32_t a, uint32_t b)
{
    const stats_peer *p = ctx;
    int c = bytes_cmp(p[a].peer_id, p[a].peer_id_len, p[b].peer_id, p[b].peer_id_len);
    return c ? c < 0 : a < b;
}

static bool network_before(const void *ctx, uint32_t a, uint32_t b)
{
    const stats_network *n = ctx;
    int c = bytes_cmp(n[a].network_id, n[a].network_id_len, n[b].network_id, n[b].network_id_len);
    return c ? c < 0 : a < b;
}

/* Bytes of the first `chars` UTF-8 characters of s (s is valid UTF-8: the wire checked it). */
static size_t utf8_chars(const char *s, size_t n, size_t chars)
{
    size_t i = 0;
    while (i < n && chars > 0) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        chars--;
    }
    return i;
}

static const char *family_of(const stats_peer *p)
{
    if (p->n_addresses == 0)
        return "none";
    addr_t a = p->addresses[0];
    addr_unmap(&a);
    return a.family == 4 ? "v4" : "v6";
}

static void write_peer(json_writer *w, const stats_peer *p, uint64_t now_wall, bool full)
{
    size_t cut = full ? p->peer_id_len : utf8_chars(p->peer_id, p->peer_id_len, STATS_PEER_ID_PREFIX);
    JW_LIT(w, "{\"peer_id\":");
    if (cut < p->peer_id_len) {
        char shown[STATS_PEER_ID_PREFIX * 4 + 3];   /* the prefix and "…" */
        memcpy(shown, p->peer_id, cut);
        memcpy(shown + cut, "\xE2\x80\xA6", 3);
        jw_string(w, shown, cut + 3);
    } else {
        jw_string(w, p->peer_id, p->peer_id_len);
    }
    JW_LIT(w, ",\"network_id\":");
    jw_string(w, p->network_id, p->network_id_len);
    JW_LIT(w, ",\"via\":");
    if (p->n_addresses)
        JW_LIT(w, "\"direct\"");
    else
        JW_LIT(w, "\"relay\"");
    JW_LIT(w, ",\"address_family\":\"");
    jw_lit(w, family_of(p));
    JW_LIT(w, "\",\"protocol_version\":");
    jw_u64(w, p->protocol_version);
    JW_LIT(w, ",\"connected_at\":");
    jw_u64(w, p->connected_at);
    JW_LIT(w, ",\"connected_secs\":");
    jw_u64(w, now_wall > p->connected_at ? now_wall - p->connected_at : 0);
    JW_LIT(w, "}");
}

bool stats_write_json(json_writer *w, const stats_snapshot *s, bool full)
{
    /* Indices are 32-bit: a registry never holds 2^32 registrations (one socket each). */
    uint32_t peers[STATS_MAX_PEERS], nets[STATS_MAX_NETWORKS];
    topk tp, tn;
    topk_init(&tp, peers, STATS_MAX_PEERS, peer_before, s->peers);
    for (size_t i = 0; i < s->n_peers; i++)
        topk_offer(&tp, (uint32_t)i);
    size_t shown = topk_finish(&tp);
    topk_init(&tn, nets, STATS_MAX_NETWORKS, network_before, s->networks);
    for (size_t i = 0; i < s->n_networks; i++)
        topk_offer(&tn, (uint32_t)i);
    size_t listed = topk_finish(&tn);

    JW_LIT(w, "{\"schema_version\":");
    jw_u64(w, STATS_SCHEMA_VERSION);
    JW_LIT(w, ",\"status\":\"ok\",\"version\":");
    jw_string(w, s->version, strlen(s->version));
    JW_LIT(w, ",\"uptime_secs\":");
    jw_u64(w, s->uptime_secs);
    JW_LIT(w, ",\"active_reservations\":");
    jw_u64(w, s->n_peers);
    JW_LIT(w, ",\"connected_peers\":");
    jw_u64(w, s->connected_peers);
    JW_LIT(w, ",\"open_connections\":");
    jw_u64(w, s->open_connections);
    JW_LIT(w, ",\"stun_requests\":");
    jw_u64(w, s->stun_requests);
    JW_LIT(w, ",\"hole_punch_requests\":");
    jw_u64(w, s->hole_punch_requests);
    JW_LIT(w, ",\"hole_punch_successes\":");
    jw_u64(w, s->hole_punch_successes);
    JW_LIT(w, ",\"hole_punch_failures\":");
    jw_u64(w, s->hole_punch_failures);
    JW_LIT(w, ",\"bytes_relayed\":");
    jw_u64(w, s->bytes_relayed);
    JW_LIT(w, ",\"networks\":[");
    for (size_t i = 0; i < listed; i++) {
        const stats_network *n = &s->networks[nets[i]];
        if (i)
            JW_LIT(w, ",");
        JW_LIT(w, "{\"network_id\":");
        jw_string(w, n->network_id, n->network_id_len);
        JW_LIT(w, ",\"peers\":");
        jw_u64(w, n->peers);
        JW_LIT(w, "}");
    }
    JW_LIT(w, "],\"peers\":[");
    for (size_t i = 0; i < shown; i++) {
        if (i)
            JW_LIT(w, ",");
        write_peer(w, &s->peers[peers[i]], s->now_wall, full);
    }
    JW_LIT(w, "],\"peers_truncated\":");
    jw_bool(w, shown < s->n_peers);
    JW_LIT(w, ",\"networks_truncated\":");
    jw_bool(w, listed < s->n_networks);
    if (s->clustered) {
        JW_LIT(w, ",\"cluster_peers\":");
        jw_u64(w, s->cluster_peers);
    }
    JW_LIT(w, "}");
    return !w->failed;
}

/* True when the query parameter text p[0..n) ("name=value") is full=1, full=true or full=yes. */
static bool is_full_param(const char *p, size_t n)
{
    static const char *const yes[] = { "full=1", "full=true", "full=yes" };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (n == strlen(yes[i]) && memcmp(p, yes[i], n) == 0)
            return true;
    return false;
}

bool stats_wants_full(const char *query, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || query[i] == '&') {
            if (is_full_param(query + start, i - start))
                return true;
            start = i + 1;
        }
    }
    return false;
}
