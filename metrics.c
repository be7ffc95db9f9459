/* Prometheus text exposition 0.0.4 (metrics.h): one family after another, each with its HELP
 * and TYPE lines, written through json.c's bounded growable buffer (jw_raw, jw_u64). */
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

#define W(w, s) jw_raw((w), (s), sizeof(s) - 1)

static const struct {
    const char *reason, *code;
} refusals[MR_COUNT] = {
    [MR_NOT_REGISTERED] = { "not_registered", "1" },
    [MR_BAD_MESSAGE] = { "bad_message", "2" },
    [MR_PEER_NOT_FOUND] = { "peer_not_found", "3" },
    [MR_CAPACITY] = { "capacity", "4" },
    [MR_ID_IN_USE] = { "id_in_use", "5" },
    [MR_IDENTITY_MISMATCH] = { "identity_mismatch", "6" },
    [MR_REGISTER_RATE] = { "register_rate", "7" },
    [MR_TOO_MANY_REGISTRATIONS] = { "too_many_registrations", "7" },
    [MR_BANNED] = { "banned", "none" },
    [MR_MAX_CONNECTIONS] = { "max_connections", "none" },
    [MR_TOO_MANY_CONNECTIONS] = { "too_many_connections", "none" },
    [MR_MESSAGE_RATE] = { "message_rate", "none" },
    [MR_BYTE_RATE] = { "byte_rate", "none" },
    [MR_LIFETIME_BYTES] = { "lifetime_bytes", "none" },
    [MR_MESSAGE_TOO_LARGE] = { "message_too_large", "none" },
};

static const char *const kinds[METRICS_KINDS] = { "relay_message", "broadcast" };

static void family(json_writer *w, const char *name, const char *type, const char *help)
{
    W(w, "# HELP ");
    jw_lit(w, name);
    W(w, " ");
    jw_lit(w, help);
    W(w, "\n# TYPE ");
    jw_lit(w, name);
    W(w, " ");
    jw_lit(w, type);
    W(w, "\n");
}

/* A label value between its quotes: backslash, double quote and line feed escaped. */
static void label_value(json_writer *w, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *esc = s[i] == '\\' ? "\\\\" : s[i] == '"' ? "\\\"" : s[i] == '\n' ? "\\n" : NULL;
        if (!esc)
            continue;
        jw_raw(w, s + run, i - run);
        jw_raw(w, esc, 2);
        run = i + 1;
    }
    jw_raw(w, s + run, n - run);
}

/* One sample: name{label="value"} number, the label part left out when label is NULL. */
static void sample(json_writer *w, const char *name, const char *label, const char *value,
                   size_t value_len, uint64_t v)
{
    jw_lit(w, name);
    if (label) {
        W(w, "{");
        jw_lit(w, label);
        W(w, "=\"");
        label_value(w, value, value_len);
        W(w, "\"}");
    }
    W(w, " ");
    jw_u64(w, v);
    W(w, "\n");
}

static void single(json_writer *w, const char *name, const char *type, const char *help, uint64_t v)
{
    family(w, name, type, help);
    sample(w, name, NULL, NULL, 0, v);
}

/* Microseconds as decimal seconds, without floating point or the C locale's decimal point. */
static void seconds(json_writer *w, uint64_t usec)
{
    char frac[8];
    uint64_t f = usec % 1000000;
    jw_u64(w, usec / 1000000);
    frac[0] = '.';
    for (int i = 6; i >= 1; i--) {
        frac[i] = (char)('0' + f % 10);
        f /= 10;
    }
    jw_raw(w, frac, 7);
}

static int by_size_then_name(const void *a, const void *b)
{
    const metrics_network *x = *(const metrics_network *const *)a, *y = *(const metrics_network *const *)b;
    if (x->registrations != y->registrations)
        return x->registrations > y->registrations ? -1 : 1;
    int c = memcmp(x->name, y->name, x->name_len < y->name_len ? x->name_len : y->name_len);
    if (c)
        return c;
    return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

static bool is_other(const metrics_network *n)
{
    return n->name_len == 5 && memcmp(n->name, "other", 5) == 0;
}

static bool write_networks(json_writer *w, const metrics_snapshot *s)
{
    const metrics_network **order = malloc((s->n_networks ? s->n_networks : 1) * sizeof *order);
    if (!order)
        return false;
    for (size_t i = 0; i < s->n_networks; i++)
        order[i] = &s->networks[i];
    qsort(order, s->n_networks, sizeof *order, by_size_then_name);
    static const char name[] = "dig_relay_registrations";
    family(w, name, "gauge",
           "Live registrations by network: the largest networks by name, the rest as other.");
    uint64_t other = 0;
    size_t labelled = 0;
    for (size_t i = 0; i < s->n_networks; i++) {
        if (labelled == METRICS_MAX_NETWORKS || is_other(order[i])) {
            other += order[i]->registrations;
            continue;
        }
        sample(w, name, "network", order[i]->name, order[i]->name_len, order[i]->registrations);
        labelled++;
    }
    sample(w, name, "network", "other", 5, other);
    free(order);
    single(w, "dig_relay_networks", "gauge", "Networks with at least one live registration.",
           s->n_networks);
    return true;
}

bool metrics_write(json_writer *w, const metrics_snapshot *s)
{
    static const char build[] = "dig_relay_build_info";
    family(w, build, "gauge", "Always 1: the version and the features built in.");
    jw_lit(w, build);
    W(w, "{version=\"");
    label_value(w, s->version, strlen(s->version));
    W(w, "\",features=\"");
    label_value(w, s->features, strlen(s->features));
    W(w, "\"} 1\n");

    single(w, "dig_relay_open_connections", "gauge",
           "Open relay sockets, registered or not.", s->open_connections);
    if (!write_networks(w, s)) {
        w->failed = true;
        return false;
    }

    static const char msgs[] = "dig_relay_relayed_messages_total";
    family(w, msgs, "counter", "Inbound messages carrying a payload to relay, by kind.");
    for (int k = 0; k < METRICS_KINDS; k++)
        sample(w, msgs, "kind", kinds[k], strlen(kinds[k]), s->relayed_messages[k]);
    static const char bytes[] = "dig_relay_relayed_payload_bytes_total";
    family(w, bytes, "counter", "Payload bytes of inbound messages to relay, by kind.");
    for (int k = 0; k < METRICS_KINDS; k++)
        sample(w, bytes, "kind", kinds[k], strlen(kinds[k]), s->relayed_bytes[k]);
    single(w, "dig_relay_queue_drops_total", "counter",
           "Messages dropped because the receiver's outbound queue was full.", s->queue_drops);
    single(w, "dig_relay_deferred_messages_total", "counter",
           "Times a message whose work grows with its network was left for the next loop pass because the pass had done its share (a registration storm).",
           s->deferred_messages);

    static const char refused[] = "dig_relay_refusals_total";
    family(w, refused, "counter",
           "Refusals by reason and the wire error code answered (none: the connection was closed or never opened).");
    for (int r = 0; r < MR_COUNT; r++) {
        jw_lit(w, refused);
        W(w, "{reason=\"");
        jw_lit(w, refusals[r].reason);
        W(w, "\",code=\"");
        jw_lit(w, refusals[r].code);
        W(w, "\"} ");
        jw_u64(w, s->refusals[r]);
        W(w, "\n");
    }
    single(w, "dig_relay_strikes_total", "counter", "Abuse strikes recorded against sources.", s->strikes);
    single(w, "dig_relay_bans_total", "counter", "Sources banned.", s->bans);
    single(w, "dig_relay_liveness_prunes_total", "counter",
           "Registrations removed by the liveness sweep.", s->prunes);
    single(w, "dig_relay_stun_responses_total", "counter", "STUN Binding responses sent.",
           s->stun_responses);
    single(w, "dig_relay_stun_rate_limited_total", "counter",
           "STUN requests left unanswered by the reflection rate limits.", s->stun_rate_limited);
    single(w, "dig_relay_pex_snapshots_total", "counter", "PEX snapshots sent.", s->pex_snapshots);
    single(w, "dig_relay_pex_deltas_total", "counter", "PEX deltas sent.", s->pex_deltas);
    single(w, "dig_relay_hole_punch_requests_total", "counter", "Inbound hole punch requests.",
           s->hole_punch_requests);
    static const char results[] = "dig_relay_hole_punch_results_total";
    family(w, results, "counter", "Inbound hole punch results, by outcome.");
    sample(w, results, "outcome", "success", 7, s->hole_punch_successes);
    sample(w, results, "outcome", "failure", 7, s->hole_punch_failures);
    single(w, "dig_relay_dht_reporting_peers", "gauge",
           "Peers whose answers make up the current DHT view (RLY-009).", s->dht_reporting_peers);
    single(w, "dig_relay_dht_keys", "gauge",
           "Distinct content keys in the current DHT view before its cap.", s->dht_keys);

    if (s->clustered) {
        single(w, "dig_relay_cluster_peers", "gauge",
               "Registrations on every instance of the cluster.", s->cluster_peers);
        single(w, "dig_relay_cluster_instances", "gauge",
               "Other instances heard from through Redis.", s->cluster_instances);
        single(w, "dig_relay_cluster_redis_shards", "gauge", "Redis shards configured.",
               s->cluster_shards);
        single(w, "dig_relay_cluster_redis_shards_up", "gauge",
               "Redis shards with both connections up.", s->cluster_shards_up);
        single(w, "dig_relay_cluster_envelopes_sent_total", "counter",
               "Frames published for other instances (one per instance per message).",
               s->cluster_envelopes_sent);
        single(w, "dig_relay_cluster_envelopes_received_total", "counter",
               "Frames received from other instances.", s->cluster_envelopes_received);
        single(w, "dig_relay_cluster_dropped_total", "counter",
               "Redis commands dropped: Redis away or the outgoing bound reached.",
               s->cluster_dropped);
        single(w, "dig_relay_cluster_reconnects_total", "counter",
               "Redis connections re-established.", s->cluster_reconnects);
        single(w, "dig_relay_cluster_conflicts_total", "counter",
               "Registrations closed with error 5 for an earlier one on another instance.",
               s->cluster_conflicts);
    }
    single(w, "process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch in seconds.",
           s->start_time_secs);
    if (s->cpu_usec != METRICS_UNKNOWN) {
        family(w, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
        W(w, "process_cpu_seconds_total ");
        seconds(w, s->cpu_usec);
        W(w, "\n");
    }
    if (s->rss_bytes != METRICS_UNKNOWN)
        single(w, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", s->rss_bytes);
    if (s->open_fds != METRICS_UNKNOWN)
        single(w, "process_open_fds", "gauge", "Number of open file descriptors.", s->open_fds);
    return !w->failed;
}
