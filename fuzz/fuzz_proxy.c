/* libFuzzer harness for the PROXY protocol preface parser (proxy.c), and for the CIDR parser the
 * trusted-proxy list goes through (cidr.c).
 *
 * A complete preface lies inside the input and within PROXY_MAX_HEADER, every shorter prefix of
 * it asks for more, a declared source has a family and (v1) came from the text, and the answer is
 * the same whatever follows the preface. "Not a preface" never turns into something else when
 * more bytes arrive. A CIDR that parses contains its own network address and nothing of the
 * other family. */
#include "cidr.h"
#include "proxy.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    proxy_result r, again;
    long n = proxy_parse(data, size, &r);
    if (n > 0) {
        if ((size_t)n > size || n > PROXY_MAX_HEADER || (r.version != 1 && r.version != 2))
            abort();
        if (r.has_source ? (r.source.family != 4 && r.source.family != 6) ||
                               r.source.family != r.dest.family || r.ignored
                         : !r.ignored || r.source.family != 0)
            abort();
        for (size_t k = 0; k < (size_t)n; k++)
            if (proxy_parse(data, k, &again) != PROXY_NEED_MORE)
                abort();
        if (proxy_parse(data, (size_t)n, &again) != n || again.has_source != r.has_source ||
            memcmp(&again.source, &r.source, sizeof r.source) != 0)
            abort();
    } else if (n != PROXY_NEED_MORE && n != PROXY_NONE && n != PROXY_INVALID) {
        abort();
    }
    if (n == PROXY_NONE || n == PROXY_INVALID) {
        /* a verdict on a prefix holds for the whole input */
        for (size_t k = 1; k < size; k++) {
            long m = proxy_parse(data, k, &again);
            if ((m == PROXY_NONE || m == PROXY_INVALID) && m != n)
                abort();
        }
    }

    cidr net;
    if (size < 128 && cidr_parse((const char *)data, size, &net)) {
        addr_t a;
        memset(&a, 0, sizeof a);
        a.family = net.family;
        memcpy(a.ip, net.ip, net.family == 4 ? 4 : 16);
        if (!cidr_contains(&net, &a) || net.prefix > (net.family == 4 ? 32 : 128))
            abort();
        a.family = net.family == 4 ? 6 : 4;
        if (net.family == 6 && cidr_contains(&net, &a))
            abort();
    }
    return 0;
}
