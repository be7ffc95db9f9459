/* CIDR networks and lists (see cidr.h). Addresses are compared in their unmapped form, so a
 * dual-stack socket's ::ffff:a.b.c.d peer matches "a.b.c.0/24" and an entry written as
 * "::ffff:a.b.c.d" matches the IPv4 peer a.b.c.d. */
#include "cidr.h"

#include <stdio.h>
#include <string.h>

static void clear_host_bits(uint8_t *ip, size_t len, unsigned prefix)
{
    for (size_t i = 0; i < len; i++) {
        unsigned first_bit = (unsigned)i * 8;
        if (first_bit >= prefix)
            ip[i] = 0;
        else if (prefix - first_bit < 8)
            ip[i] &= (uint8_t)(0xff << (8 - (prefix - first_bit)));
    }
}

bool cidr_parse(const char *s, size_t n, cidr *out)
{
    const char *slash = memchr(s, '/', n);
    size_t ip_len = slash ? (size_t)(slash - s) : n;
    addr_t a;
    unsigned prefix, max;
    if (!addr_parse_ip(s, ip_len, &a))
        return false;
    /* A mapped network ("::ffff:10.0.0.0/104") is the IPv4 network it carries. */
    bool mapped = a.family == 6 && memcmp(a.ip, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0;
    max = a.family == 4 ? 32 : 128;
    if (slash) {
        const char *p = slash + 1, *end = s + n;
        if (p == end || end - p > 3)
            return false;
        prefix = 0;
        for (; p < end; p++) {
            if (*p < '0' || *p > '9')
                return false;
            prefix = prefix * 10 + (unsigned)(*p - '0');
        }
        if (prefix > max || (slash[1] == '0' && n - ip_len > 2))
            return false;
    } else {
        prefix = max;
    }
    if (mapped) {
        if (prefix < 96)
            return false;   /* wider than the mapped range: not an IPv4 network */
        addr_unmap(&a);
        prefix -= 96;
    }
    memset(out, 0, sizeof *out);
    out->family = a.family;
    memcpy(out->ip, a.ip, a.family == 4 ? 4 : 16);
    out->prefix = (uint8_t)prefix;
    clear_host_bits(out->ip, a.family == 4 ? 4 : 16, prefix);
    return true;
}

static bool is_space(char c) { return c == ' ' || c == '\t'; }

bool cidr_list_parse(const char *text, cidr_list *out, char *err, size_t errlen)
{
    const char *p = text;
    out->n = 0;
    while (is_space(*p))
        p++;
    if (*p == '\0')
        return true;
    for (;;) {
        const char *next = strchr(p, ','), *start = p, *end;
        if (!next)
            next = p + strlen(p);
        end = next;
        while (start < end && is_space(*start))
            start++;
        while (end > start && is_space(end[-1]))
            end--;
        if (start == end) {
            snprintf(err, errlen, "empty item in the list");
            return false;
        }
        if (out->n == CIDR_LIST_MAX) {
            snprintf(err, errlen, "more than %d networks", CIDR_LIST_MAX);
            return false;
        }
        if (!cidr_parse(start, (size_t)(end - start), &out->items[out->n])) {
            int shown = end - start > 64 ? 64 : (int)(end - start);
            snprintf(err, errlen, "'%.*s' is not an IP address or CIDR network", shown, start);
            return false;
        }
        out->n++;
        if (*next == '\0')
            return true;
        p = next + 1;
    }
}

bool cidr_contains(const cidr *net, const addr_t *a)
{
    addr_t u = *a;
    unsigned full, rest;
    addr_unmap(&u);
    if (u.family != net->family)
        return false;
    full = net->prefix / 8u;
    rest = net->prefix % 8u;
    if (memcmp(u.ip, net->ip, full) != 0)
        return false;
    if (rest == 0)
        return true;
    return ((u.ip[full] ^ net->ip[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

bool cidr_list_contains(const cidr_list *l, const addr_t *a)
{
    for (size_t i = 0; i < l->n; i++)
        if (cidr_contains(&l->items[i], a))
            return true;
    return false;
}
