/* libFuzzer harness for the relay wire decoder and writers.
 *
 * Whatever wire_decode accepts must be valid JSON, and its canonical re-encoding must decode
 * again to the same type and re-encode to identical bytes (decode, encode, decode, encode is
 * stable). The iterators must walk exactly what the decoder counted.
 *
 * The relay's own writers are then driven from the decoded fields, as the relay drives them
 * when it answers or forwards: relay_message and broadcast (from any message with a payload),
 * register_ack and error (from any message with a message text; the writers take C strings, so
 * the text up to its first NUL), pong (from ping), hole_punch_coordinate (from a hole punch
 * request), hole_punch_result, peer_disconnected and peer_connected (from register), and the
 * RLY-009 pair get_dht_records and dht_records (from their own decoded fields). Every frame
 * written must decode back to the same fields, and where the writer and wire_encode write the
 * same message, to the same bytes. Every payload-body kernel wire_decode can pick must agree
 * with the others on the input taken as a payload body. */
#include "wire.h"

#include <stdlib.h>
#include <string.h>

#define WF_MAX_FRAME ((size_t)1 << 24)

static void check_iterators(const wire_msg *m, char *scratch)
{
    wire_iter it = { 0 };
    wire_str s;
    addr_t a;
    wire_peer_info p;
    size_t n = 0;
    while (wire_next_addr(&it, m->listen_addrs, &a))
        n++;
    if (n != m->listen_addrs_count)
        abort();
    wire_iter ie = { 0 };
    while (wire_next_string(&ie, m->exclude, &s, scratch))
        if (s.n > m->exclude.n)
            abort();
    wire_iter ip = { 0 };
    while (wire_next_peer_info(&ip, m->peers, &p, scratch))
        if (p.n_addresses > ADDR_MAX_DIALABLE)
            abort();
    wire_iter iu = { 0 };
    n = 0;
    while (wire_next_string(&iu, m->uris, &s, scratch))
        n++;
    if (n != m->uris_count)
        abort();
    wire_iter ir = { 0 };
    wire_dht_record r;
    n = 0;
    while (wire_next_dht_record(&ir, m->records, &r, scratch)) {
        if (r.content_key.n > m->records.n)
            abort();
        n++;
    }
    if (n != m->records_count)
        abort();
}

static bool wf_same_str(wire_str a, wire_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static bool wf_same_addr(const addr_t *a, const addr_t *b)
{
    return a->family == b->family && a->port == b->port && a->scope_id == b->scope_id &&
           memcmp(a->ip, b->ip, a->family == 4 ? 4 : 16) == 0;
}

static bool wf_same_span(json_span a, json_span b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static bool wf_same_peer(const wire_peer_info *a, const wire_peer_info *b)
{
    if (!wf_same_str(a->peer_id, b->peer_id) || !wf_same_str(a->network_id, b->network_id) ||
        a->protocol_version != b->protocol_version || a->connected_at != b->connected_at ||
        a->last_seen != b->last_seen || a->n_addresses != b->n_addresses)
        return false;
    for (size_t i = 0; i < a->n_addresses; i++)
        if (!wf_same_addr(&a->addresses[i], &b->addresses[i]))
            return false;
    return true;
}

/* A frame written by one writer, decoded back (it must decode, as `type`). */
typedef struct {
    json_writer w;
    wire_msg m;
    char *scratch;
} wf_frame;

static void wf_begin(wf_frame *f)
{
    jw_init(&f->w, 0, WF_MAX_FRAME);
    f->scratch = NULL;
}

/* False when memory ran out (the input then proves nothing); aborts on a bad frame. */
static bool wf_reread(wf_frame *f, enum wire_type type)
{
    char err[128];
    if (f->w.failed || !f->w.p)
        return false;
    f->scratch = malloc(f->w.len);
    if (!f->scratch)
        return false;
    if (!json_validate(f->w.p, f->w.len, NULL) ||
        !wire_decode(f->w.p, f->w.len, &f->m, f->scratch, err, sizeof err) || f->m.type != type)
        abort();
    return true;
}

static void wf_end(wf_frame *f)
{
    jw_free(&f->w);
    free(f->scratch);
}

/* The writer's bytes must be exactly wire_encode's for the same message. */
static void wf_same_bytes(const wf_frame *f, const json_writer *canon)
{
    if (f->w.len != canon->len || memcmp(f->w.p, canon->p, canon->len) != 0)
        abort();
}

static bool wf_has_nul(wire_str s)
{
    return s.n && memchr(s.p, '\0', s.n) != NULL;
}

/* relay_message and broadcast carrying m's sender and payload, as the relay forwards them. */
static void wf_forward(const wire_msg *m, const json_writer *canon)
{
    wf_frame f;
    wire_str to = m->type == WT_RELAY_MESSAGE ? m->to : m->from;
    uint64_t seq = m->type == WT_RELAY_MESSAGE ? m->seq : m->payload_count;
    wf_begin(&f);
    wire_write_relay_message(&f.w, m->from, to, m->payload, seq);
    if (wf_reread(&f, WT_RELAY_MESSAGE)) {
        if (!wf_same_str(f.m.from, m->from) || !wf_same_str(f.m.to, to) || f.m.seq != seq ||
            !wf_same_span(f.m.payload, m->payload) || f.m.payload_count != m->payload_count)
            abort();
        if (m->type == WT_RELAY_MESSAGE)
            wf_same_bytes(&f, canon);
    }
    wf_end(&f);

    wf_begin(&f);
    wire_write_broadcast(&f.w, m->from, m->payload);
    if (wf_reread(&f, WT_BROADCAST)) {
        if (!wf_same_str(f.m.from, m->from) || !wf_same_span(f.m.payload, m->payload) ||
            f.m.payload_count != m->payload_count || f.m.exclude.n != 2)
            abort();
        if (m->type == WT_BROADCAST && m->exclude.n == 2)
            wf_same_bytes(&f, canon);
    }
    wf_end(&f);
}

/* register_ack and error with m's message text (cut at a NUL: the writers take C strings). */
static void wf_answer(const wire_msg *m, const json_writer *canon)
{
    char *text = malloc(m->message.n + 1);
    if (!text)
        return;
    memcpy(text, m->message.p, m->message.n);
    text[m->message.n] = '\0';
    wire_str cut = { text, strlen(text) };
    bool whole = !wf_has_nul(m->message);
    wf_frame f;

    wf_begin(&f);
    wire_write_register_ack(&f.w, m->success, text, m->connected_peers);
    if (wf_reread(&f, WT_REGISTER_ACK)) {
        if (f.m.success != m->success || f.m.connected_peers != m->connected_peers ||
            !wf_same_str(f.m.message, cut))
            abort();
        if (m->type == WT_REGISTER_ACK && whole)
            wf_same_bytes(&f, canon);
    }
    wf_end(&f);

    wf_begin(&f);
    wire_write_error(&f.w, m->code, text);
    if (wf_reread(&f, WT_ERROR)) {
        if (f.m.code != m->code || !wf_same_str(f.m.message, cut))
            abort();
        if (m->type == WT_ERROR && whole)
            wf_same_bytes(&f, canon);
    }
    wf_end(&f);
    free(text);
}

/* The answers and notices the relay writes for the other requests. */
static void wf_notices(const wire_msg *m)
{
    wf_frame f;
    switch (m->type) {
    case WT_PING:
        wf_begin(&f);
        wire_write_pong(&f.w, m->timestamp);
        if (wf_reread(&f, WT_PONG) && f.m.timestamp != m->timestamp)
            abort();
        wf_end(&f);
        break;
    case WT_HOLE_PUNCH_REQUEST:
        wf_begin(&f);
        wire_write_hole_punch_coordinate(&f.w, m->peer_id, &m->external_addr);
        if (wf_reread(&f, WT_HOLE_PUNCH_COORDINATE) &&
            (!wf_same_str(f.m.peer_id, m->peer_id) || !wf_same_addr(&f.m.external_addr, &m->external_addr)))
            abort();
        wf_end(&f);
        break;
    case WT_TURN_CREDENTIALS: {
        /* The relay's answer written from the same fields reads back the same. */
        wire_str uris[8];
        size_t n = 0;
        wire_iter it = { 0 };
        while (n < 8 && wire_next_string(&it, m->uris, &uris[n], NULL))
            n++;
        wf_begin(&f);
        wire_write_turn_credentials(&f.w, m->username, m->password, m->ttl_secs, uris, n);
        if (wf_reread(&f, WT_TURN_CREDENTIALS) &&
            (!wf_same_str(f.m.username, m->username) || !wf_same_str(f.m.password, m->password) ||
             f.m.ttl_secs != m->ttl_secs || f.m.uris_count != n))
            abort();
        wf_end(&f);
        break;
    }
    case WT_HOLE_PUNCH_RESULT:
    case WT_UNREGISTER:
        wf_begin(&f);
        wire_write_hole_punch_result(&f.w, m->peer_id, m->type == WT_HOLE_PUNCH_RESULT && m->success);
        if (wf_reread(&f, WT_HOLE_PUNCH_RESULT) &&
            (!wf_same_str(f.m.peer_id, m->peer_id) || f.m.success != (m->type == WT_HOLE_PUNCH_RESULT && m->success)))
            abort();
        wf_end(&f);
        wf_begin(&f);
        wire_write_peer_disconnected(&f.w, m->peer_id);
        if (wf_reread(&f, WT_PEER_DISCONNECTED) && !wf_same_str(f.m.peer_id, m->peer_id))
            abort();
        wf_end(&f);
        break;
    case WT_REGISTER: {
        /* The peer info the relay announces: the registration's fields and its addresses. */
        wire_peer_info p;
        memset(&p, 0, sizeof p);
        p.peer_id = m->peer_id;
        p.network_id = m->network_id;
        p.protocol_version = m->protocol_version;
        p.connected_at = m->listen_addrs.n;
        p.last_seen = UINT64_MAX - m->listen_addrs_count;
        wire_iter it = { 0 };
        while (p.n_addresses < ADDR_MAX_DIALABLE && wire_next_addr(&it, m->listen_addrs, &p.addresses[p.n_addresses]))
            p.n_addresses++;
        wf_begin(&f);
        wire_write_peer_connected(&f.w, &p);
        if (wf_reread(&f, WT_PEER_CONNECTED) && !wf_same_peer(&f.m.peer, &p))
            abort();
        wf_end(&f);
        /* ... and the same entry twice in a peers answer */
        wf_begin(&f);
        wire_write_peers_begin(&f.w);
        wire_write_peers_item(&f.w, &p, true);
        wire_write_peers_item(&f.w, &p, false);
        wire_write_peers_end(&f.w);
        if (wf_reread(&f, WT_PEERS)) {
            wire_iter ip = { 0 };
            wire_peer_info q;
            size_t n = 0;
            char *at = f.scratch + (f.m.peers.p - f.w.p);   /* past the frame's own strings */
            while (wire_next_peer_info(&ip, f.m.peers, &q, at)) {
                if (!wf_same_peer(&q, &p))
                    abort();
                n++;
            }
            if (n != 2)
                abort();
        }
        wf_end(&f);
        break;
    }
    case WT_GET_DHT_RECORDS:
        wf_begin(&f);
        wire_write_get_dht_records(&f.w, m->max_keys);
        if (wf_reread(&f, WT_GET_DHT_RECORDS) && f.m.max_keys != m->max_keys)
            abort();
        wf_end(&f);
        break;
    default:
        break;
    }
}

/* dht_records written record by record from the decoded answer must be exactly wire_encode's
 * bytes, and decode back to the same records. */
static void wf_dht_records(const wire_msg *m, const json_writer *canon, char *scratch)
{
    wf_frame f;
    wire_iter it = { 0 };
    wire_dht_record r;
    bool first = true;
    wf_begin(&f);
    wire_write_dht_records_begin(&f.w);
    while (wire_next_dht_record(&it, m->records, &r, scratch)) {
        wire_write_dht_records_item(&f.w, &r, first);
        first = false;
    }
    wire_write_dht_records_end(&f.w, m->total_keys, m->truncated);
    if (wf_reread(&f, WT_DHT_RECORDS)) {
        wf_same_bytes(&f, canon);
        if (f.m.records_count != m->records_count || f.m.total_keys != m->total_keys ||
            f.m.truncated != m->truncated)
            abort();
    }
    wf_end(&f);
}

/* Every payload-body kernel must give the same verdict and count on the input taken as a body
 * (after `":[`, as wire_decode hands it over), and a valid body repeated past 8 KiB (where the
 * vector kernels fold their lane counters) must pass every kernel with the summed count. */
static void wf_kernels(const uint8_t *data, size_t size)
{
    wire_payload_kernel k[8];
    size_t nk = wire_payload_kernels(k, sizeof k / sizeof k[0]), c0 = 0, c;
    if (size < 32 || nk == 0)
        return;
    char *b = malloc(size + 3);
    if (!b)
        return;
    memcpy(b, "\":[", 3);
    memcpy(b + 3, data, size);
    bool ok = k[0](b + 3, size, &c0);
    for (size_t i = 1; i < nk; i++)
        if (k[i](b + 3, size, &c) != ok || (ok && c != c0))
            abort();
    free(b);
    if (!ok)
        return;
    size_t copies = 8300 / (size + 1) + 2, n = copies * (size + 1) - 1;
    b = malloc(n + 3);
    if (!b)
        return;
    memcpy(b, "\":[", 3);
    for (size_t i = 0; i < copies; i++) {
        memcpy(b + 3 + i * (size + 1), data, size);
        if (i + 1 < copies)
            b[3 + i * (size + 1) + size] = ',';
    }
    for (size_t i = 0; i < nk; i++)
        if (!k[i](b + 3, n, &c) || c != copies * c0)
            abort();
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    char *scratch = malloc(size + 1), *scratch2 = malloc(size + 1);
    char err[128];
    wire_msg m, m2;
    json_writer w1, w2;
    if (!scratch || !scratch2)
        goto out;
    wf_kernels(data, size);
    if (!wire_decode(buf, size, &m, scratch, err, sizeof err)) {
        if (!err[0])
            abort();
        goto out;
    }
    if (!json_validate(buf, size, NULL) || m.type == WT_UNKNOWN)
        abort();
    check_iterators(&m, scratch2);
    if (m.type == WT_PEX)
        goto out;

    jw_init(&w1, 0, WF_MAX_FRAME);
    wire_encode(&w1, &m, scratch2);
    if (w1.failed || !w1.p)
        abort();
    char *s3 = malloc(w1.len + 1), *s4 = malloc(w1.len + 1);
    if (s3 && s4) {
        if (!wire_decode(w1.p, w1.len, &m2, s3, err, sizeof err) || m2.type != m.type)
            abort();
        jw_init(&w2, 0, WF_MAX_FRAME);
        wire_encode(&w2, &m2, s4);
        if (w2.failed || w2.len != w1.len || memcmp(w1.p, w2.p, w1.len) != 0)
            abort();
        jw_free(&w2);
    }
    free(s3);
    free(s4);

    if (m.type == WT_RELAY_MESSAGE || m.type == WT_BROADCAST)
        wf_forward(&m, &w1);
    if (m.type == WT_REGISTER_ACK || m.type == WT_ERROR)
        wf_answer(&m, &w1);
    wf_notices(&m);
    if (m.type == WT_DHT_RECORDS)
        wf_dht_records(&m, &w1, scratch2);
    jw_free(&w1);
out:
    free(scratch);
    free(scratch2);
    return 0;
}
