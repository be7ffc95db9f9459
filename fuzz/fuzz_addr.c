/* libFuzzer harness for addr.c.
 *
 * The whole input is parsed as one socket address: an accepted one must format to text that
 * parses back to the same value and formats identically, its IP must match what inet_pton makes
 * of the same text, and it must survive the sockaddr round trip. The input is also split into
 * lines, each parsed as an advertised address with the first as the observed one, and the
 * dialable resolution is checked against SPEC §2.9: at most 8 distinct entries, IPv6 first, each
 * either an advertised address verbatim or the observed IP with an advertised port. */
#include "addr.h"
#include "compat/compat.h"

#include <stdlib.h>
#include <string.h>

#define MAX_LINES 40

static bool same(const addr_t *x, const addr_t *y)
{
    return x->family == y->family && x->port == y->port && x->scope_id == y->scope_id &&
           memcmp(x->ip, y->ip, 16) == 0;
}

static void check_one(const uint8_t *data, size_t size)
{
    /* An exact-size heap copy so any read past the end is caught. */
    char *copy = malloc(size ? size : 1);
    addr_t a, b;
    char text[ADDR_STRLEN], again[ADDR_STRLEN], ip[ADDR_STRLEN];

    if (copy == NULL)
        return;
    memcpy(copy, data, size);
    if (!addr_parse(copy, size, &a)) {
        free(copy);
        return;
    }
    if (a.family != 4 && a.family != 6)
        abort();
    if (a.family == 4 && (a.scope_id != 0 || memcmp(&a.ip[4], "\0\0\0\0\0\0\0\0\0\0\0\0", 12) != 0))
        abort();

    size_t n = addr_format(&a, text);
    if (n == 0 || n >= ADDR_STRLEN || strlen(text) != n)
        abort();
    if (!addr_parse(text, n, &b) || !same(&a, &b))
        abort();
    if (addr_format(&b, again) != n || strcmp(text, again) != 0)
        abort();

    size_t ipn = addr_format_ip(&a, ip);
    if (ipn == 0 || strlen(ip) != ipn)
        abort();
    uint8_t pton[16];
    if (inet_pton(a.family == 4 ? AF_INET : AF_INET6, ip, pton) != 1 ||
        memcmp(pton, a.ip, a.family == 4 ? 4 : 16) != 0)
        abort();

    struct sockaddr_storage ss;
    size_t sl = addr_to_sockaddr(&a, &ss, sizeof ss);
    if (sl == 0 || !addr_from_sockaddr(&ss, sl, &b) || !same(&a, &b))
        abort();

    bool global = addr_is_global(&a);
    b = a;
    addr_unmap(&b);
    if (addr_is_global(&b) != global)
        abort();
    if (addr_is_unspecified(&a) && global)
        abort();
    free(copy);
}

static void check_resolution(const uint8_t *data, size_t size)
{
    addr_t parsed[MAX_LINES], out[ADDR_MAX_DIALABLE];
    size_t n = 0, start = 0;

    for (size_t i = 0; i <= size && n < MAX_LINES; i++) {
        if (i == size || data[i] == '\n') {
            if (addr_parse((const char *)data + start, i - start, &parsed[n]))
                n++;
            start = i + 1;
        }
    }
    if (n == 0)
        return;
    addr_t observed = parsed[0];
    addr_unmap(&observed);
    observed.scope_id = 0;

    size_t m = addr_resolve_dialable(&observed, parsed + 1, n - 1, out);
    if (m > ADDR_MAX_DIALABLE || m > n - 1 || (n > 1 && m == 0))
        abort();
    for (size_t i = 0; i < m; i++) {
        if (i > 0 && out[i - 1].family == 4 && out[i].family == 6)
            abort();
        for (size_t j = 0; j < i; j++)
            if (same(&out[i], &out[j]))
                abort();
        bool explained = false;
        for (size_t k = 1; k < n && !explained; k++) {
            bool substituted = out[i].family == observed.family && out[i].scope_id == 0 &&
                               memcmp(out[i].ip, observed.ip, 16) == 0 &&
                               out[i].port == parsed[k].port;
            explained = same(&out[i], &parsed[k]) || substituted;
        }
        if (!explained)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_one(data, size);
    check_resolution(data, size);
    return 0;
}
