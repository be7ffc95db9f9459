/* Socket addresses as the wire writes them, and the address rules of the relay.
 *
 * Parsing and formatting follow Rust's std::net::SocketAddr exactly (the reference server and the
 * live client both use it): "1.2.3.4:9444", "[2001:db8::1]:9444", "[fe80::1%3]:9444"; IPv6 is
 * written in RFC 5952 form, with IPv4-mapped addresses as "::ffff:a.b.c.d". Pure: no sockets. */
#ifndef DIG_ADDR_H
#define DIG_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ADDR_STRLEN 64   /* longest formatted address including "[...%scope]:port" and NUL */
#define ADDR_MAX_DIALABLE 8

typedef struct {
    uint8_t family;      /* 4 or 6 */
    uint8_t ip[16];      /* IPv4 in ip[0..3] */
    uint16_t port;
    uint32_t scope_id;   /* IPv6 only; 0 when absent */
} addr_t;

/* Parses a SocketAddr text (no surrounding whitespace); false when malformed. */
bool addr_parse(const char *s, size_t n, addr_t *out);
/* Parses a bare IP ("1.2.3.4", "2001:db8::1": no brackets, port or scope) with the same grammar;
 * the port is left 0. */
bool addr_parse_ip(const char *s, size_t n, addr_t *out);
/* Writes the canonical text; returns its length (< ADDR_STRLEN). */
size_t addr_format(const addr_t *a, char out[ADDR_STRLEN]);
/* Writes only the IP (no brackets, no port); returns its length. */
size_t addr_format_ip(const addr_t *a, char out[ADDR_STRLEN]);

/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) becomes plain IPv4; anything else is unchanged.
 * Applied to every observed peer address so IPv4 peers on a [::] socket never show as ::ffff:. */
void addr_unmap(addr_t *a);

/* Globally routable in the sense of SPEC §2.9: false for unspecified, loopback, IPv4 private,
 * link-local, CGNAT/shared, documentation, broadcast, multicast, and IPv6 unique-local,
 * link-local, documentation, multicast, and the IPv4-mapped forms of the non-global IPv4 ones. */
bool addr_is_global(const addr_t *a);

/* SPEC §2.9 dialable-address resolution. `observed` is the peer's (unmapped) source address;
 * `advertised` its listen_addrs. Writes at most ADDR_MAX_DIALABLE de-duplicated addresses,
 * IPv6 first, to out and returns how many. */
size_t addr_resolve_dialable(const addr_t *observed, const addr_t *advertised, size_t n_advertised,
                             addr_t out[ADDR_MAX_DIALABLE]);

/* Conversions to and from struct sockaddr (declared as void * so this header needs no socket
 * headers); sockaddr_len is the size of the storage behind sa. */
bool addr_from_sockaddr(const void *sa, size_t sa_len, addr_t *out);
size_t addr_to_sockaddr(const addr_t *a, void *sa_storage, size_t storage_len);

/* Listener bind addresses: true when the address is the unspecified IPv6 address ("[::]"),
 * i.e. a bind that must be made dual-stack (IPV6_V6ONLY cleared). */
bool addr_is_unspecified(const addr_t *a);

#endif
