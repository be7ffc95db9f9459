/* The PROXY protocol preface a load balancer puts before a connection's own bytes (HAProxy's
 * proxy-protocol.txt): version 2 (binary, what the reference reads) and version 1 (text). Pure:
 * bytes in, the declared source out. The caller reads a preface only from trusted proxies. */
#ifndef DIG_PROXY_H
#define DIG_PROXY_H

#include "addr.h"

#include <stdbool.h>
#include <stddef.h>

/* Longest preface accepted: v1 is at most 107 bytes by definition; a v2 header's TLVs are
 * bounded here so a peer cannot make the relay buffer 64 KiB before anything else. */
#define PROXY_MAX_HEADER 4096

enum {
    PROXY_NEED_MORE = 0,   /* the bytes so far are the start of a preface */
    PROXY_NONE = -1,       /* the bytes are not a PROXY preface (an HTTP request, a ClientHello) */
    PROXY_INVALID = -2     /* a preface whose end cannot be found, or one past PROXY_MAX_HEADER */
};

typedef struct {
    int version;           /* 1 or 2 */
    bool has_source;       /* a PROXY command for TCP over IPv4/IPv6 declared source and dest */
    addr_t source, dest;
    const char *ignored;   /* when !has_source: why ("LOCAL", "UNKNOWN", "unsupported family",
                              "unparseable addresses", ...) */
} proxy_result;

/* Looks for a preface at the start of buf. Returns its length (> 0, the bytes to drop before
 * the connection's own data) with *out filled, or one of the values above. A complete preface
 * that declares nothing usable still returns its length with has_source false: the connection
 * keeps its socket address. */
long proxy_parse(const unsigned char *buf, size_t len, proxy_result *out);

#endif
