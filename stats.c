/* /stats.json (stats.h): sorts the snapshot's registrations by peer id and by network id (two
 * arrays of pointers, freed before returning) and writes the capped lists with json.c's writer. */
#include "stats.h"

#include <stdlib.h>
#include <string.h>

#define JW_LIT(w, s) jw_raw((w), (s), sizeof(s) - 1)

static int bytes_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

static int by_peer_id(const void *a, const void *b)
{
    const stats_peer *x = *(const stats_peer *const *)a, *y = *(const stats_peer *const *)b;
    return bytes_cmp(x->peer_id, x->peer_id_len, y->peer_id, y->peer_id_len);
}

static int by_network_id(const void *a, const void *b)
{
    const stats_peer *x = *(const stats_peer *const *)a, *y = *(const stats_peer *const *)b;
    return bytes_cmp(x->network_id, x->network_id_len, y->network_id, y->network_id_len);
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
    const stats_peer **order = malloc((s->n_peers ? s->n_peers : 1) * sizeof *order);
    if (!order) {
        w->failed = true;
        return false;
    }
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

    /* networks: runs of equal network ids in network order */
    for (size_t i = 0; i < s->n_peers; i++)
        order[i] = &s->peers[i];
    qsort(order, s->n_peers, sizeof *order, by_network_id);
    size_t listed = 0;
    bool networks_truncated = false;
    JW_LIT(w, ",\"networks\":[");
    for (size_t i = 0; i < s->n_peers;) {
        size_t j = i + 1;
        while (j < s->n_peers && by_network_id(&order[i], &order[j]) == 0)
            j++;
        if (listed == STATS_MAX_NETWORKS) {
            networks_truncated = true;
            break;
        }
        if (listed++)
            JW_LIT(w, ",");
        JW_LIT(w, "{\"network_id\":");
        jw_string(w, order[i]->network_id, order[i]->network_id_len);
        JW_LIT(w, ",\"peers\":");
        jw_u64(w, j - i);
        JW_LIT(w, "}");
        i = j;
    }

    qsort(order, s->n_peers, sizeof *order, by_peer_id);
    size_t shown = s->n_peers < STATS_MAX_PEERS ? s->n_peers : STATS_MAX_PEERS;
    JW_LIT(w, "],\"peers\":[");
    for (size_t i = 0; i < shown; i++) {
        if (i)
            JW_LIT(w, ",");
        write_peer(w, order[i], s->now_wall, full);
    }
    JW_LIT(w, "],\"peers_truncated\":");
    jw_bool(w, shown < s->n_peers);
    JW_LIT(w, ",\"networks_truncated\":");
    jw_bool(w, networks_truncated);
    JW_LIT(w, "}");
    free(order);
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
