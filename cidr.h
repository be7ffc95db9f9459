/* IP networks in CIDR notation ("10.0.0.0/8", "2001:db8::/32", or a bare address meaning one
 * host) and small fixed-size lists of them, for the trusted-proxy list and similar allow/deny
 * settings. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches the IPv4 networks its IPv4
 * address is in, whichever form a list entry or the address takes. Pure. */
#ifndef DIG_CIDR_H
#define DIG_CIDR_H

#include "addr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CIDR_LIST_MAX 64

typedef struct {
    uint8_t family;       /* 4 or 6 */
    uint8_t ip[16];       /* the network address, host bits cleared */
    uint8_t prefix;       /* 0..32 or 0..128 */
} cidr;

typedef struct {
    cidr items[CIDR_LIST_MAX];
    size_t n;
} cidr_list;

/* Parses one network; host bits past the prefix are cleared ("10.1.2.3/8" is 10.0.0.0/8). */
bool cidr_parse(const char *s, size_t n, cidr *out);
/* Parses a comma-separated list (spaces around items allowed, empty text gives an empty list).
 * On failure writes a message quoting the bad item into err and returns false. */
bool cidr_list_parse(const char *text, cidr_list *out, char *err, size_t errlen);
bool cidr_contains(const cidr *net, const addr_t *a);
bool cidr_list_contains(const cidr_list *l, const addr_t *a);

#endif
