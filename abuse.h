/* Abuse protection (SPEC §3.0): per-source open-connection and registration limits, per-connection
 * inbound rate limits, and the ban list that strikes from any of them feed. Pure: the caller
 * passes monotonic milliseconds; memory is sized once at init, so cycling source addresses can
 * churn the table but never grow it. A limit set to 0 is disabled.
 *
 * Sources are keyed as the reference does: IPv4 by the full address, IPv6 by its /64, an
 * IPv4-mapped IPv6 address as the IPv4 address it carries. */
#ifndef DIG_ABUSE_H
#define DIG_ABUSE_H

#include "config.h"
#include "ratelimit.h"

#include <stdbool.h>
#include <stdint.h>

enum abuse_verdict {
    ABUSE_OK = 0,
    ABUSE_BANNED,              /* accept: the source is banned */
    ABUSE_TOO_MANY_CONNS,      /* accept: --max-connections-per-ip */
    ABUSE_REGISTER_RATE,       /* register: --registrations-per-ip-per-sec */
    ABUSE_TOO_MANY_REGS,       /* register: --max-registrations-per-ip */
    ABUSE_MESSAGE_RATE,        /* frame: --messages-per-conn-per-sec */
    ABUSE_BYTE_RATE,           /* frame: --bytes-per-conn-per-sec */
    ABUSE_LIFETIME_BYTES,      /* frame: --max-relayed-bytes-per-conn */
    ABUSE_MESSAGE_TOO_LARGE,   /* frame: --max-message-bytes (abuse_strike) */
    ABUSE_VERDICTS
};

typedef struct {
    uint64_t refused_conns, refused_regs, disconnects, strikes, bans, prunes;
    uint64_t by_verdict[ABUSE_VERDICTS];   /* refusals and disconnects by why ([ABUSE_OK] unused) */
} abuse_counters;

typedef struct {
    const relay_config *cfg;
    source_table sources;      /* source_key -> struct source_state (abuse.c) */
    abuse_counters counters;
} abuse_guard;

/* What a connection carries for its own limits. */
typedef struct {
    rate_window frames, bytes;
    uint64_t lifetime_bytes;
} abuse_meter;

/* capacity: how many sources to remember (the table never grows past it). */
bool abuse_init(abuse_guard *g, const relay_config *cfg, uint32_t capacity, const uint64_t seed[2]);
void abuse_free(abuse_guard *g);

/* A connection from key arrives: refuse it (banned, or over the per-source cap) or count it. */
enum abuse_verdict abuse_accept(abuse_guard *g, const source_key *key, uint64_t now_ms);
void abuse_conn_closed(abuse_guard *g, const source_key *key);

/* A register from key: rate first, then the concurrent cap; on ABUSE_OK the registration is
 * counted until abuse_registration_ended. */
enum abuse_verdict abuse_register(abuse_guard *g, const source_key *key, uint64_t now_ms);
void abuse_registration_ended(abuse_guard *g, const source_key *key);

/* One inbound frame of `bytes` on a connection from key. A verdict other than ABUSE_OK means the
 * connection must be closed; the strike is already recorded. */
enum abuse_verdict abuse_frame(abuse_guard *g, abuse_meter *m, const source_key *key,
                               uint64_t bytes, uint64_t now_ms);

/* A frame over --max-message-bytes from key: the connection is closed by the caller (the
 * WebSocket layer enforces that bound); this records the strike, as ABUSE_MESSAGE_TOO_LARGE. */
void abuse_strike(abuse_guard *g, const source_key *key, uint64_t now_ms);

/* Human text for a verdict (logs, close reasons, error messages). */
const char *abuse_reason(enum abuse_verdict v);

#endif
