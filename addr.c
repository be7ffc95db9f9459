/* Socket-address text and rules (see addr.h).
 *
 * The parser reproduces Rust's std::net::SocketAddr grammar, because the reference server and the
 * live client exchange addresses as its Display text and reject anything it would reject:
 *   - IPv4 octets are 1-3 decimal digits, 0-255, and a leading zero is refused ("01");
 *   - IPv6 groups are 1-4 hex digits (leading zeros fine), "::" stands for at least one zero
 *     group, and a dotted IPv4 tail may fill the last two groups ("::ffff:1.2.3.4");
 *   - port and scope id are decimal digits of any count (leading zeros fine) that must fit
 *     u16 / u32; no sign, no whitespace.
 * The formatter writes RFC 5952 text the way Rust does: lowercase hex, the longest run of two or
 * more zero groups (the first on a tie) becomes "::", and only IPv4-mapped addresses get a dotted
 * tail. */
#include "addr.h"

#include "compat/compat.h"

#include <stdio.h>
#include <string.h>

/* ---- parsing ---------------------------------------------------------------------------- */

typedef struct {
    const char *p;
    const char *end;
} cursor;

static int digit_value(char c, unsigned radix)
{
    unsigned v;
    if (c >= '0' && c <= '9')
        v = (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
        v = (unsigned)(c - 'a') + 10;
    else if (c >= 'A' && c <= 'F')
        v = (unsigned)(c - 'A') + 10;
    else
        return -1;
    return v < radix ? (int)v : -1;
}

static bool take_char(cursor *c, char want)
{
    if (c->p < c->end && *c->p == want) {
        c->p++;
        return true;
    }
    return false;
}

/* One IPv4 octet: 1-3 decimal digits, at most 255, no leading zero unless it is "0" itself.
 * Leaves the cursor untouched on failure. */
static bool read_octet(cursor *c, uint8_t *out)
{
    const char *q = c->p;
    unsigned value = 0, digits = 0;
    int d;
    while (q < c->end && (d = digit_value(*q, 10)) >= 0) {
        if (++digits > 3)
            return false;
        value = value * 10 + (unsigned)d;
        q++;
    }
    if (digits == 0 || value > 255 || (digits > 1 && *c->p == '0'))
        return false;
    *out = (uint8_t)value;
    c->p = q;
    return true;
}

static bool read_ipv4(cursor *c, uint8_t out[4])
{
    cursor t = *c;
    for (int i = 0; i < 4; i++) {
        if (i > 0 && !take_char(&t, '.'))
            return false;
        if (!read_octet(&t, &out[i]))
            return false;
    }
    *c = t;
    return true;
}

/* One IPv6 group: 1-4 hex digits. */
static bool read_group(cursor *c, uint16_t *out)
{
    const char *q = c->p;
    unsigned value = 0, digits = 0;
    int d;
    while (q < c->end && (d = digit_value(*q, 16)) >= 0) {
        if (++digits > 4)
            return false;
        value = value * 16 + (unsigned)d;
        q++;
    }
    if (digits == 0)
        return false;
    *out = (uint16_t)value;
    c->p = q;
    return true;
}

/* Reads up to `limit` colon-separated groups into groups[]; an embedded IPv4 address may take
 * the place of the final two. Returns how many groups were filled and whether the IPv4 form
 * ended the run. A separator is consumed only together with the group after it. */
static size_t read_groups(cursor *c, uint16_t *groups, size_t limit, bool *ended_with_ipv4)
{
    *ended_with_ipv4 = false;
    for (size_t i = 0; i < limit; i++) {
        if (i + 1 < limit) {
            cursor t = *c;
            uint8_t v4[4];
            if ((i == 0 || take_char(&t, ':')) && read_ipv4(&t, v4)) {
                groups[i] = (uint16_t)(v4[0] << 8 | v4[1]);
                groups[i + 1] = (uint16_t)(v4[2] << 8 | v4[3]);
                *c = t;
                *ended_with_ipv4 = true;
                return i + 2;
            }
        }
        cursor t = *c;
        if ((i > 0 && !take_char(&t, ':')) || !read_group(&t, &groups[i]))
            return i;
        *c = t;
    }
    return limit;
}

static bool read_ipv6(cursor *c, uint8_t out[16])
{
    cursor t = *c;
    uint16_t head[8] = {0}, tail[7] = {0};
    bool head_v4, tail_v4;
    size_t head_n = read_groups(&t, head, 8, &head_v4);

    if (head_n < 8) {
        /* A dotted IPv4 part may only come last, never before "::". */
        if (head_v4 || !take_char(&t, ':') || !take_char(&t, ':'))
            return false;
        /* "::" stands for at least one zero group, so the tail holds at most 7 - head_n. */
        size_t tail_n = read_groups(&t, tail, 7 - head_n, &tail_v4);
        memcpy(&head[8 - tail_n], tail, tail_n * sizeof tail[0]);
    }
    for (int i = 0; i < 8; i++) {
        out[2 * i] = (uint8_t)(head[i] >> 8);
        out[2 * i + 1] = (uint8_t)head[i];
    }
    *c = t;
    return true;
}

/* Decimal digits of any count, leading zeros allowed, refused when the value exceeds max. */
static bool read_decimal(cursor *c, uint32_t max, uint32_t *out)
{
    const char *q = c->p;
    uint64_t value = 0;
    int d;
    while (q < c->end && (d = digit_value(*q, 10)) >= 0) {
        value = value * 10 + (unsigned)d;
        if (value > max)
            return false;
        q++;
    }
    if (q == c->p)
        return false;
    *out = (uint32_t)value;
    c->p = q;
    return true;
}

static bool read_port(cursor *c, uint16_t *port)
{
    cursor t = *c;
    uint32_t v;
    if (!take_char(&t, ':') || !read_decimal(&t, 65535, &v))
        return false;
    *port = (uint16_t)v;
    *c = t;
    return true;
}

bool addr_parse(const char *s, size_t n, addr_t *out)
{
    cursor c = {s, s + n};
    addr_t a;
    memset(&a, 0, sizeof a);

    if (read_ipv4(&c, a.ip)) {
        a.family = 4;
    } else {
        if (!take_char(&c, '[') || !read_ipv6(&c, a.ip))
            return false;
        a.family = 6;
        if (c.p < c.end && *c.p == '%') {
            cursor t = c;
            t.p++;
            /* An empty or oversized scope is not a scope; "]" is then missing and parsing fails. */
            if (read_decimal(&t, UINT32_MAX, &a.scope_id))
                c = t;
        }
        if (!take_char(&c, ']'))
            return false;
    }
    if (!read_port(&c, &a.port) || c.p != c.end)
        return false;
    *out = a;
    return true;
}

bool addr_parse_ip(const char *s, size_t n, addr_t *out)
{
    cursor c = {s, s + n};
    addr_t a;
    memset(&a, 0, sizeof a);
    if (read_ipv4(&c, a.ip))
        a.family = 4;
    else if (read_ipv6(&c, a.ip))
        a.family = 6;
    else
        return false;
    if (c.p != c.end)
        return false;
    *out = a;
    return true;
}

/* ---- formatting ------------------------------------------------------------------------- */

static bool is_mapped(const addr_t *a)
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return a->family == 6 && memcmp(a->ip, prefix, sizeof prefix) == 0;
}

static size_t format_ipv4(const uint8_t ip[4], char *out, size_t cap)
{
    int n = snprintf(out, cap, "%u.%u.%u.%u", ip[0], ip[1], ip[2], ip[3]);
    return n > 0 ? (size_t)n : 0;
}

static size_t format_ipv6(const addr_t *a, char *out, size_t cap)
{
    uint16_t g[8];
    size_t len = 0;
    int best_start = -1, best_len = 0, run_start = -1;

    if (is_mapped(a)) {
        len = (size_t)snprintf(out, cap, "::ffff:");
        return len + format_ipv4(&a->ip[12], out + len, cap - len);
    }
    for (int i = 0; i < 8; i++) {
        g[i] = (uint16_t)(a->ip[2 * i] << 8 | a->ip[2 * i + 1]);
        if (g[i] == 0) {
            if (run_start < 0)
                run_start = i;
            if (i - run_start + 1 > best_len) {
                best_len = i - run_start + 1;
                best_start = run_start;
            }
        } else {
            run_start = -1;
        }
    }
    /* A lone zero group is written out, never compressed (RFC 5952 §4.2.2). */
    if (best_len < 2)
        best_start = -1;

    out[0] = '\0';
    for (int i = 0; i < 8; i++) {
        if (i == best_start) {
            len += (size_t)snprintf(out + len, cap - len, "::");
            i += best_len - 1;
            continue;
        }
        bool after_gap = best_start >= 0 && i == best_start + best_len;
        len += (size_t)snprintf(out + len, cap - len, "%s%x", (i > 0 && !after_gap) ? ":" : "",
                                (unsigned)g[i]);
    }
    return len;
}

size_t addr_format_ip(const addr_t *a, char out[ADDR_STRLEN])
{
    if (a->family == 4)
        return format_ipv4(a->ip, out, ADDR_STRLEN);
    return format_ipv6(a, out, ADDR_STRLEN);
}

size_t addr_format(const addr_t *a, char out[ADDR_STRLEN])
{
    size_t len;
    if (a->family == 4) {
        len = format_ipv4(a->ip, out, ADDR_STRLEN);
    } else {
        out[0] = '[';
        len = 1 + format_ipv6(a, out + 1, ADDR_STRLEN - 1);
        if (a->scope_id != 0)
            len += (size_t)snprintf(out + len, ADDR_STRLEN - len, "%%%lu", (unsigned long)a->scope_id);
        len += (size_t)snprintf(out + len, ADDR_STRLEN - len, "]");
    }
    len += (size_t)snprintf(out + len, ADDR_STRLEN - len, ":%u", (unsigned)a->port);
    return len;
}

/* ---- classification --------------------------------------------------------------------- */

void addr_unmap(addr_t *a)
{
    if (!is_mapped(a))
        return;
    memmove(a->ip, &a->ip[12], 4);
    memset(&a->ip[4], 0, 12);
    a->family = 4;
    a->scope_id = 0;
}

static bool ipv4_in(const uint8_t ip[4], uint8_t b0, uint8_t b1, uint8_t b2, unsigned prefix_bits)
{
    uint32_t v = (uint32_t)ip[0] << 24 | (uint32_t)ip[1] << 16 | (uint32_t)ip[2] << 8 | ip[3];
    uint32_t net = (uint32_t)b0 << 24 | (uint32_t)b1 << 16 | (uint32_t)b2 << 8;
    uint32_t mask = prefix_bits == 0 ? 0 : 0xffffffffu << (32 - prefix_bits);
    return (v & mask) == (net & mask);
}

static bool ipv4_is_global(const uint8_t ip[4])
{
    bool broadcast = ip[0] == 255 && ip[1] == 255 && ip[2] == 255 && ip[3] == 255;
    return !(broadcast ||
             ipv4_in(ip, 0, 0, 0, 8) ||         /* "this network", incl. 0.0.0.0 */
             ipv4_in(ip, 10, 0, 0, 8) ||        /* private */
             ipv4_in(ip, 100, 64, 0, 10) ||     /* shared address space (CGNAT) */
             ipv4_in(ip, 127, 0, 0, 8) ||       /* loopback */
             ipv4_in(ip, 169, 254, 0, 16) ||    /* link-local */
             ipv4_in(ip, 172, 16, 0, 12) ||     /* private */
             ipv4_in(ip, 192, 0, 2, 24) ||      /* TEST-NET-1 */
             ipv4_in(ip, 192, 168, 0, 16) ||    /* private */
             ipv4_in(ip, 198, 18, 0, 15) ||     /* benchmarking */
             ipv4_in(ip, 198, 51, 100, 24) ||   /* TEST-NET-2 */
             ipv4_in(ip, 203, 0, 113, 24) ||    /* TEST-NET-3 */
             ipv4_in(ip, 224, 0, 0, 4) ||       /* multicast */
             ipv4_in(ip, 240, 0, 0, 4));        /* reserved */
}

static bool ipv6_is_zero_prefix(const uint8_t ip[16], size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ip[i] != 0)
            return false;
    return true;
}

bool addr_is_global(const addr_t *a)
{
    const uint8_t *ip = a->ip;
    if (a->family == 4)
        return ipv4_is_global(ip);
    if (is_mapped(a))
        return ipv4_is_global(&ip[12]);
    if (ipv6_is_zero_prefix(ip, 15) && (ip[15] == 0 || ip[15] == 1))
        return false;                                              /* :: and ::1 */
    return !((ip[0] & 0xfe) == 0xfc ||                             /* unique-local fc00::/7 */
             (ip[0] == 0xfe && (ip[1] & 0xc0) == 0x80) ||          /* link-local fe80::/10 */
             (ip[0] == 0x20 && ip[1] == 0x01 && ip[2] == 0x0d && ip[3] == 0xb8) || /* 2001:db8::/32 */
             ip[0] == 0xff);                                       /* multicast ff00::/8 */
}

bool addr_is_unspecified(const addr_t *a)
{
    return a->family == 6 && ipv6_is_zero_prefix(a->ip, 16);
}

/* ---- dialable resolution (SPEC §2.9) ---------------------------------------------------- */

/* The SPEC's "not globally routable" set for advertised hosts: unspecified, loopback, IPv4
 * private and link-local, IPv6 unique-local and link-local, and mapped forms of those IPv4 ones.
 * Deliberately narrower than addr_is_global: a documentation or CGNAT host is still checked
 * against the observed source like any public one, exactly as the reference does. */
static bool advertised_is_local(const addr_t *a)
{
    const uint8_t *ip = a->ip;
    if (a->family == 4 || is_mapped(a)) {
        const uint8_t *v4 = a->family == 4 ? ip : &ip[12];
        return (v4[0] == 0 && v4[1] == 0 && v4[2] == 0 && v4[3] == 0) ||
               ipv4_in(v4, 127, 0, 0, 8) || ipv4_in(v4, 10, 0, 0, 8) ||
               ipv4_in(v4, 172, 16, 0, 12) || ipv4_in(v4, 192, 168, 0, 16) ||
               ipv4_in(v4, 169, 254, 0, 16);
    }
    return (ipv6_is_zero_prefix(ip, 15) && (ip[15] == 0 || ip[15] == 1)) ||
           (ip[0] & 0xfe) == 0xfc || (ip[0] == 0xfe && (ip[1] & 0xc0) == 0x80);
}

/* True when a public advertised host provably belongs to the observed source: the same IPv4
 * address, or an IPv6 address in the same /64. Mapped forms compare as their IPv4. */
static bool belongs_to_source(const addr_t *advertised, const addr_t *observed)
{
    addr_t x = *advertised, y = *observed;
    addr_unmap(&x);
    addr_unmap(&y);
    if (x.family != y.family)
        return false;
    return memcmp(x.ip, y.ip, x.family == 4 ? 4 : 8) == 0;
}

static bool same_socket_addr(const addr_t *x, const addr_t *y)
{
    return x->family == y->family && x->port == y->port && x->scope_id == y->scope_id &&
           memcmp(x->ip, y->ip, x->family == 4 ? 4 : 16) == 0;
}

size_t addr_resolve_dialable(const addr_t *observed, const addr_t *advertised, size_t n_advertised,
                             addr_t out[ADDR_MAX_DIALABLE])
{
    addr_t found[ADDR_MAX_DIALABLE];
    size_t n = 0, w = 0;

    for (size_t i = 0; i < n_advertised && n < ADDR_MAX_DIALABLE; i++) {
        const addr_t *cand = &advertised[i];
        addr_t r;
        if (!advertised_is_local(cand) && belongs_to_source(cand, observed)) {
            r = *cand;
        } else {
            /* Anything else points back at the registrant itself: observed IP, advertised port. */
            memset(&r, 0, sizeof r);
            r.family = observed->family;
            memcpy(r.ip, observed->ip, sizeof r.ip);
            r.port = cand->port;
        }
        bool dup = false;
        for (size_t j = 0; j < n && !dup; j++)
            dup = same_socket_addr(&found[j], &r);
        if (!dup)
            found[n++] = r;
    }
    /* IPv6 first, each family keeping its order (the cap applies before the reordering). */
    for (size_t i = 0; i < n; i++)
        if (found[i].family == 6)
            out[w++] = found[i];
    for (size_t i = 0; i < n; i++)
        if (found[i].family != 6)
            out[w++] = found[i];
    return w;
}

/* ---- struct sockaddr -------------------------------------------------------------------- */

bool addr_from_sockaddr(const void *sa, size_t sa_len, addr_t *out)
{
    struct sockaddr_storage ss;
    if (sa_len < sizeof(struct sockaddr_in))
        return false;
    memset(&ss, 0, sizeof ss);
    memcpy(&ss, sa, sa_len < sizeof ss ? sa_len : sizeof ss);
    memset(out, 0, sizeof *out);

    if (ss.ss_family == AF_INET && sa_len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        out->family = 4;
        memcpy(out->ip, &in->sin_addr, 4);
        out->port = ntohs(in->sin_port);
        return true;
    }
    if (ss.ss_family == AF_INET6 && sa_len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        out->family = 6;
        memcpy(out->ip, &in6->sin6_addr, 16);
        out->port = ntohs(in6->sin6_port);
        out->scope_id = (uint32_t)in6->sin6_scope_id;
        return true;
    }
    return false;
}

size_t addr_to_sockaddr(const addr_t *a, void *sa_storage, size_t storage_len)
{
    if (a->family == 4) {
        struct sockaddr_in in;
        if (storage_len < sizeof in)
            return 0;
        memset(&in, 0, sizeof in);
        in.sin_family = AF_INET;
        in.sin_port = htons(a->port);
        memcpy(&in.sin_addr, a->ip, 4);
        memcpy(sa_storage, &in, sizeof in);
        return sizeof in;
    }
    if (a->family == 6) {
        struct sockaddr_in6 in6;
        if (storage_len < sizeof in6)
            return 0;
        memset(&in6, 0, sizeof in6);
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons(a->port);
        in6.sin6_scope_id = a->scope_id;
        memcpy(&in6.sin6_addr, a->ip, 16);
        memcpy(sa_storage, &in6, sizeof in6);
        return sizeof in6;
    }
    return 0;
}
