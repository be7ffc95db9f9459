/* Codecs of clusterwire.h. Numbers are decimal text and strings are length-prefixed
 * ("<len>:<bytes>"), so ids of any bytes pass unharmed and the Redis scripts can read the
 * record's prefix with one pattern. */
#include "clusterwire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- URLs and ids ---- */

static bool parse_url(const char *p, size_t n, cluster_url *u, char *why, size_t whylen)
{
    static const char scheme[] = "redis://";
    const char *end = p + n, *at, *colon, *slash;
    size_t len;
    unsigned long v;
    char num[16];

    memset(u, 0, sizeof *u);
    if (n < sizeof scheme - 1 || memcmp(p, scheme, sizeof scheme - 1) != 0) {
        snprintf(why, whylen, "each URL must start with redis://");
        return false;
    }
    p += sizeof scheme - 1;
    at = memchr(p, '@', (size_t)(end - p));
    if (at) {
        if (*p != ':' || (size_t)(at - p - 1) >= sizeof u->password) {
            snprintf(why, whylen, "the credentials must be :password@ (at most 127 bytes)");
            return false;
        }
        memcpy(u->password, p + 1, (size_t)(at - p - 1));
        p = at + 1;
    }
    slash = memchr(p, '/', (size_t)(end - p));
    if (!slash)
        slash = end;
    colon = NULL;
    for (const char *q = p; q < slash; q++)
        if (*q == ':')
            colon = q;
    if (!colon || colon == p || (size_t)(colon - p) >= sizeof u->host) {
        snprintf(why, whylen, "each URL needs host:port");
        return false;
    }
    /* an IPv6 literal comes in brackets, which the connect call does not want */
    if (*p == '[' && colon[-1] == ']' && colon - p > 2)
        memcpy(u->host, p + 1, (size_t)(colon - p - 2));
    else
        memcpy(u->host, p, (size_t)(colon - p));
    len = (size_t)(slash - colon - 1);
    if (len == 0 || len >= sizeof num) {
        snprintf(why, whylen, "bad port in a URL");
        return false;
    }
    memcpy(num, colon + 1, len);
    num[len] = '\0';
    v = strtoul(num, NULL, 10);
    if (strspn(num, "0123456789") != len || v == 0 || v > 65535) {
        snprintf(why, whylen, "bad port in a URL");
        return false;
    }
    u->port = (uint16_t)v;
    if (slash < end) {
        len = (size_t)(end - slash - 1);
        if (len >= sizeof num || (len > 0 && strspn(slash + 1, "0123456789") < len)) {
            snprintf(why, whylen, "the database after / must be a number");
            return false;
        }
        memcpy(num, slash + 1, len);
        num[len] = '\0';
        v = strtoul(num, NULL, 10);
        if (v > 65535) {
            snprintf(why, whylen, "the database after / must be a number");
            return false;
        }
        u->db = (unsigned)v;
    }
    return true;
}

size_t cluster_parse_urls(const char *list, cluster_url out[CLUSTER_MAX_SHARDS], char *why,
                          size_t whylen)
{
    size_t count = 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (count == CLUSTER_MAX_SHARDS) {
            snprintf(why, whylen, "at most %d URLs", CLUSTER_MAX_SHARDS);
            return 0;
        }
        if (!parse_url(p, n, &out[count], why, whylen))
            return 0;
        count++;
        if (!comma)
            return count;
        p = comma + 1;
    }
}

bool cluster_instance_id_valid(const char *id)
{
    size_t n = strlen(id);
    return n >= 1 && n <= CLUSTER_ID_MAX &&
           strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

size_t cluster_shard_of(const char *key, size_t n, size_t n_shards)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)key[i];
        h *= 0x100000001b3u;
    }
    return n_shards ? (size_t)(h % n_shards) : 0;
}

/* ---- reading helpers: every read stays within [*p, end) ---- */

static bool read_u64(const char **p, const char *end, char sep, uint64_t *v)
{
    uint64_t x = 0;
    const char *q = *p;
    if (q >= end || *q < '0' || *q > '9')
        return false;
    while (q < end && *q >= '0' && *q <= '9') {
        if (x > (UINT64_MAX - 9) / 10)
            return false;
        x = x * 10 + (uint64_t)(*q++ - '0');
    }
    if (q >= end || *q != sep)
        return false;
    *p = q + 1;
    *v = x;
    return true;
}

static bool read_str(const char **p, const char *end, size_t max, const char **s, size_t *n)
{
    uint64_t len;
    if (!read_u64(p, end, ':', &len) || len > max || len > (uint64_t)(end - *p))
        return false;
    *s = *p;
    *n = (size_t)len;
    *p += len;
    return true;
}

static size_t write_str(char *out, const char *s, size_t n)
{
    int k = sprintf(out, "%zu:", n);
    memcpy(out + k, s, n);
    return (size_t)k + n;
}

/* ---- records ---- */

size_t cluster_record_encode(const cluster_record *r, char *out)
{
    size_t len = 0;
    char text[ADDR_STRLEN];
    memcpy(out, r->owner, r->owner_len);
    len = r->owner_len;
    len += (size_t)sprintf(out + len, " %llu %llu %llu ", (unsigned long long)r->reg_ms,
                           (unsigned long long)r->protocol_version,
                           (unsigned long long)r->connected_at);
    len += write_str(out + len, r->peer_id, r->peer_id_len);
    len += write_str(out + len, r->network_id, r->network_id_len);
    len += (size_t)sprintf(out + len, "%zu ", r->n_addrs);
    for (size_t i = 0; i < r->n_addrs; i++)
        len += write_str(out + len, text, addr_format(&r->addrs[i], text));
    return len;
}

bool cluster_owner_prefix(const char *p, size_t n, const char **owner, size_t *owner_len,
                          uint64_t *number, const char **rest, size_t *rest_len)
{
    const char *end = p + n, *sp = memchr(p, ' ', n);
    if (!sp || sp == p || (size_t)(sp - p) > CLUSTER_ID_MAX)
        return false;
    *owner = p;
    *owner_len = (size_t)(sp - p);
    p = sp + 1;
    if (rest == NULL) {
        /* the number ends the text */
        uint64_t x = 0;
        if (p >= end)
            return false;
        for (; p < end; p++) {
            if (*p < '0' || *p > '9' || x > (UINT64_MAX - 9) / 10)
                return false;
            x = x * 10 + (uint64_t)(*p - '0');
        }
        *number = x;
        return true;
    }
    if (!read_u64(&p, end, ' ', number))
        return false;
    *rest = p;
    *rest_len = (size_t)(end - p);
    return true;
}

bool cluster_record_decode(const char *p, size_t n, cluster_record *r)
{
    const char *end = p + n, *rest, *s;
    size_t rest_len, len;
    uint64_t count;
    memset(r, 0, sizeof *r);
    if (!cluster_owner_prefix(p, n, &r->owner, &r->owner_len, &r->reg_ms, &rest, &rest_len))
        return false;
    p = rest;
    if (!read_u64(&p, end, ' ', &r->protocol_version) || !read_u64(&p, end, ' ', &r->connected_at) ||
        !read_str(&p, end, CLUSTER_PEER_ID_MAX, &r->peer_id, &r->peer_id_len) || r->peer_id_len == 0 ||
        !read_str(&p, end, CLUSTER_PEER_ID_MAX, &r->network_id, &r->network_id_len) ||
        !read_u64(&p, end, ' ', &count) || count > ADDR_MAX_DIALABLE)
        return false;
    for (uint64_t i = 0; i < count; i++) {
        if (!read_str(&p, end, ADDR_STRLEN - 1, &s, &len) || !addr_parse(s, len, &r->addrs[i]))
            return false;
    }
    r->n_addrs = (size_t)count;
    return p == end;
}

/* ---- envelopes ---- */

size_t cluster_packet_item(char *out, size_t len)
{
    return (size_t)sprintf(out, "%zu:", len);
}

bool cluster_packet_next(const char **p, const char *end, const char **env, size_t *n)
{
    return *p < end && read_str(p, end, (size_t)(end - *p), env, n);
}

size_t cluster_envelope_begin(char *out, size_t count)
{
    return (size_t)sprintf(out, "%zu:", count);
}

size_t cluster_envelope_target(char *out, const char *id, size_t n)
{
    return write_str(out, id, n);
}

bool cluster_envelope_open(cluster_envelope *e, const char *p, size_t n)
{
    uint64_t count;
    e->p = p;
    e->end = p + n;
    if (!read_u64(&e->p, e->end, ':', &count) || count > n)
        return false;
    e->left = (size_t)count;
    return true;
}

bool cluster_envelope_next(cluster_envelope *e, const char **id, size_t *n)
{
    if (e->left == 0)
        return false;
    if (!read_str(&e->p, e->end, CLUSTER_PEER_ID_MAX, id, n)) {
        e->p = NULL;
        return false;
    }
    e->left--;
    return true;
}

bool cluster_envelope_frame(const cluster_envelope *e, const char **text, size_t *n)
{
    if (e->p == NULL || e->left != 0)
        return false;
    *text = e->p;
    *n = (size_t)(e->end - e->p);
    return true;
}
