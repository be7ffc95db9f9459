/* PROXY protocol v1 and v2 prefaces (see proxy.h). v2: a 12-byte signature, a version/command
 * byte, a family/transport byte, a 16-bit big-endian length, then the addresses (and TLVs, which
 * are skipped). v1: "PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n" in at most 107 bytes. */
#include "proxy.h"

#include <string.h>

static const unsigned char V2_SIGNATURE[12] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};
#define V1_MAX 107

static bool starts_like(const unsigned char *buf, size_t len, const void *prefix, size_t plen)
{
    return memcmp(buf, prefix, len < plen ? len : plen) == 0;
}

static uint16_t be16(const unsigned char *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static long parse_v2(const unsigned char *buf, size_t len, proxy_result *out)
{
    size_t body, total;
    unsigned command, family;
    if (len < 16)
        return PROXY_NEED_MORE;
    body = be16(buf + 14);
    total = 16 + body;
    if (total > PROXY_MAX_HEADER)
        return PROXY_INVALID;
    if (len < total)
        return PROXY_NEED_MORE;
    out->version = 2;
    command = buf[12] & 0x0f;
    family = buf[13];
    if ((buf[12] >> 4) != 2) {
        out->ignored = "unsupported version";
    } else if (command == 0) {
        out->ignored = "LOCAL";
    } else if (command != 1) {
        out->ignored = "unsupported command";
    } else if (family == 0x11 && body >= 12) {          /* TCP over IPv4 */
        out->source.family = out->dest.family = 4;
        memcpy(out->source.ip, buf + 16, 4);
        memcpy(out->dest.ip, buf + 20, 4);
        out->source.port = be16(buf + 24);
        out->dest.port = be16(buf + 26);
        out->has_source = true;
    } else if (family == 0x21 && body >= 36) {          /* TCP over IPv6 */
        out->source.family = out->dest.family = 6;
        memcpy(out->source.ip, buf + 16, 16);
        memcpy(out->dest.ip, buf + 32, 16);
        out->source.port = be16(buf + 48);
        out->dest.port = be16(buf + 50);
        out->has_source = true;
    } else if (family == 0x11 || family == 0x21) {
        out->ignored = "address block too short";
    } else {
        out->ignored = "unsupported family";
    }
    return (long)total;
}

/* One space-separated field of the v1 line: [*p, end) up to the next space. */
static bool next_field(const char **p, const char *end, const char **field, size_t *n)
{
    const char *s = *p, *q = s;
    while (q < end && *q != ' ')
        q++;
    if (q == s)
        return false;
    *field = s;
    *n = (size_t)(q - s);
    *p = q < end ? q + 1 : q;
    return true;
}

static bool parse_port(const char *s, size_t n, uint16_t *port)
{
    unsigned v = 0;
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

static bool field_is(const char *f, size_t n, const char *word)
{
    return n == strlen(word) && memcmp(f, word, n) == 0;
}

static long parse_v1(const unsigned char *buf, size_t len, proxy_result *out)
{
    const unsigned char *lf = memchr(buf, '\n', len < V1_MAX ? len : V1_MAX);
    const char *p, *end, *f[5];
    size_t n[5];
    int want_family;
    if (!lf)
        return len >= V1_MAX ? PROXY_INVALID : PROXY_NEED_MORE;
    if (lf == buf || lf[-1] != '\r')
        return PROXY_INVALID;
    out->version = 1;
    p = (const char *)buf + 6;                 /* after "PROXY " */
    end = (const char *)lf - 1;
    if (!next_field(&p, end, &f[0], &n[0])) {
        out->ignored = "unparseable";
    } else if (field_is(f[0], n[0], "UNKNOWN")) {
        out->ignored = "UNKNOWN";
    } else if (!field_is(f[0], n[0], "TCP4") && !field_is(f[0], n[0], "TCP6")) {
        out->ignored = "unsupported family";
    } else {
        want_family = f[0][3] == '4' ? 4 : 6;
        bool ok = true;
        for (int i = 1; i < 5 && ok; i++)
            ok = next_field(&p, end, &f[i], &n[i]);
        ok = ok && p == end;
        ok = ok && addr_parse_ip(f[1], n[1], &out->source) && addr_parse_ip(f[2], n[2], &out->dest);
        ok = ok && out->source.family == want_family && out->dest.family == want_family;
        ok = ok && parse_port(f[3], n[3], &out->source.port) && parse_port(f[4], n[4], &out->dest.port);
        if (ok) {
            out->has_source = true;
        } else {
            memset(&out->source, 0, sizeof out->source);
            memset(&out->dest, 0, sizeof out->dest);
            out->ignored = "unparseable addresses";
        }
    }
    return (long)(lf - buf + 1);
}

long proxy_parse(const unsigned char *buf, size_t len, proxy_result *out)
{
    memset(out, 0, sizeof *out);
    if (len == 0)
        return PROXY_NEED_MORE;
    if (starts_like(buf, len, V2_SIGNATURE, sizeof V2_SIGNATURE))
        return len < sizeof V2_SIGNATURE ? PROXY_NEED_MORE : parse_v2(buf, len, out);
    if (starts_like(buf, len, "PROXY ", 6))
        return len < 6 ? PROXY_NEED_MORE : parse_v1(buf, len, out);
    return PROXY_NONE;
}
