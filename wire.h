/* The relay wire (RLY-001..007, RLY-009's DHT record exchange, plus recognising RLY-008 pex_
 * frames, and the additive get_turn_credentials / turn_credentials pair of issue 15) on top of
 * json.c.
 *
 * wire_decode reads one JSON text into a wire_msg: the type (which may appear anywhere in the
 * object), every known field, with unknown fields ignored. Strings come out decoded (escapes
 * resolved into the caller's scratch buffer when needed). A `payload` is never turned into
 * bytes: it is validated as an array of integers 0..255 and returned as its raw span, so the
 * forward path can send it untouched (copied, or from where it lies). `exclude`,
 * `listen_addrs` and dht_records' `records` are validated and returned as raw spans with
 * iterators below. Missing required fields, wrongly typed values, floats/negatives/overflow in
 * integer fields, malformed socket addresses and unknown types are errors, with a
 * human-readable reason.
 *
 * The writers produce compact JSON in the reference server's field order, byte-identical with
 * serde_json (optional empty arrays omitted). */
#ifndef DIG_WIRE_H
#define DIG_WIRE_H

#include "addr.h"
#include "json.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum wire_type {
    WT_UNKNOWN = 0,
    WT_REGISTER, WT_REGISTER_ACK, WT_UNREGISTER, WT_RELAY_MESSAGE, WT_BROADCAST,
    WT_PEER_CONNECTED, WT_PEER_DISCONNECTED, WT_GET_PEERS, WT_PEERS, WT_PING, WT_PONG,
    WT_HOLE_PUNCH_REQUEST, WT_HOLE_PUNCH_COORDINATE, WT_HOLE_PUNCH_RESULT, WT_ERROR,
    WT_GET_TURN_CREDENTIALS, WT_TURN_CREDENTIALS,   /* ours, beyond the reference (issue 15) */
    WT_GET_DHT_RECORDS, WT_DHT_RECORDS,
    WT_PEX            /* any "pex_..." type: handed whole to the PEX binding */
};

typedef struct {
    const char *p;    /* decoded UTF-8 text (not NUL-terminated) */
    size_t n;
} wire_str;

/* One RelayPeerInfo as decoded from peer_connected / peers (used by tests and fuzzers; the
 * relay itself writes peer infos from its registry with wire_write_peer_info). */
typedef struct {
    wire_str peer_id, network_id;
    uint64_t protocol_version, connected_at, last_seen;
    addr_t addresses[ADDR_MAX_DIALABLE];
    size_t n_addresses;
} wire_peer_info;

/* One entry of a dht_records answer (RLY-009): a content key and how many live providers the
 * answering node knows for it. */
typedef struct {
    wire_str content_key;
    uint64_t providers;
} wire_dht_record;

typedef struct {
    enum wire_type type;
    wire_str type_name;          /* the raw type text (for pex_ dispatch and error messages) */
    wire_str peer_id, network_id, from, to, target_peer_id, message;
    bool network_id_null;        /* get_peers: network_id was null or absent */
    uint64_t protocol_version, seq, timestamp, code, connected_peers;
    bool success;
    addr_t external_addr;
    json_span payload;           /* compact "[1,2,...]" text: the sender's span, or a copy in
                                  * scratch with its whitespace dropped */
    size_t payload_count;        /* number of bytes it encodes */
    json_span exclude;           /* raw array of strings ("[]" when empty) */
    json_span listen_addrs;      /* raw array of address strings; n 0 when absent */
    size_t listen_addrs_count;
    json_span peers;             /* peers: raw array of peer infos */
    uint64_t max_keys;           /* get_dht_records */
    json_span records;           /* dht_records: raw array of records (wire_next_dht_record) */
    size_t records_count;
    uint64_t total_keys;         /* dht_records: keys the node had before max_keys applied */
    bool truncated;
    wire_peer_info peer;         /* peer_connected */
    wire_str username, password; /* turn_credentials */
    uint64_t ttl_secs;
    json_span uris;              /* raw array of strings */
    size_t uris_count;
} wire_msg;

/* Decodes one message. scratch must hold at least len bytes (decoded strings never grow): a
 * string with escapes is decoded into scratch at the same offset its raw text has in buf, one
 * without escapes points into buf itself. Neither buf nor scratch may change while m is in use.
 * No allocation. A pex_ type is accepted after only the JSON and the `type` field are checked.
 * Returns true on success; on failure writes a reason to err (e.g. "missing field `to`",
 * "unknown message type `foo`", "invalid JSON: ...") and returns false. */
bool wire_decode(const char *buf, size_t len, wire_msg *m, char *scratch, char *err, size_t errlen);

/* The payload-body checks wire_decode chooses between (the 64-bit mask loop and every vector
 * kernel this build and CPU can run), listed so tests can hold each one to the same rule. A
 * kernel checks the body b[0..n) of a compact payload array: n >= 32 and the three bytes before
 * b readable; true (with the element count) when it is valid, false when not proven valid. */
typedef bool (*wire_payload_kernel)(const char *b, size_t n, size_t *count);
size_t wire_payload_kernels(wire_payload_kernel *out, size_t max);

/* Iterators over validated raw arrays from wire_decode. `it` starts zeroed; each returns false
 * at the end of the array (or for an absent one, n == 0). Strings with escapes are decoded into
 * scratch at their offset within arr (so scratch needs arr.n bytes, and every output stays valid
 * for the whole iteration). To reuse wire_decode's scratch without overwriting the message's own
 * decoded strings, pass scratch + (arr.p - buf). A peer info keeps at most ADDR_MAX_DIALABLE
 * addresses; wire_decode rejects a peer info with more. */
typedef struct { json_reader r; bool started; } wire_iter;
bool wire_next_string(wire_iter *it, json_span arr, wire_str *out, char *scratch);
bool wire_next_addr(wire_iter *it, json_span arr, addr_t *out);
bool wire_next_peer_info(wire_iter *it, json_span arr, wire_peer_info *out, char *scratch);
bool wire_next_dht_record(wire_iter *it, json_span arr, wire_dht_record *out, char *scratch);

/* ---- writers (each appends one complete message to w) ---- */
void wire_write_register_ack(json_writer *w, bool success, const char *message, uint64_t connected_peers);
/* payload is copied untouched (a span validated by wire_decode). */
void wire_write_relay_message(json_writer *w, wire_str from, wire_str to, json_span payload, uint64_t seq);
/* The same message in three parts, for a payload sent from where it lies: the head (everything
 * before the payload), the payload span, then the tail (everything after it). */
void wire_write_relay_message_head(json_writer *w, wire_str from, wire_str to);
void wire_write_relay_message_tail(json_writer *w, uint64_t seq);
void wire_write_broadcast(json_writer *w, wire_str from, json_span payload); /* exclude always [] */
void wire_write_peer_info(json_writer *w, const wire_peer_info *p);
void wire_write_peer_connected(json_writer *w, const wire_peer_info *p);
void wire_write_peer_disconnected(json_writer *w, wire_str peer_id);
/* peers: call begin, then wire_write_peers_item once per peer (first == true for the first one;
 * it adds the commas), then end. Begin and end write these (exposed for an answer assembled
 * from entries encoded earlier, joined by commas). */
#define WIRE_PEERS_HEAD "{\"type\":\"peers\",\"peers\":["
#define WIRE_PEERS_TAIL "]}"
void wire_write_peers_begin(json_writer *w);
void wire_write_peers_item(json_writer *w, const wire_peer_info *p, bool first);
void wire_write_peers_end(json_writer *w);
void wire_write_pong(json_writer *w, uint64_t timestamp);
void wire_write_ping(json_writer *w, uint64_t timestamp);
void wire_write_hole_punch_coordinate(json_writer *w, wire_str peer_id, const addr_t *external_addr);
void wire_write_hole_punch_result(json_writer *w, wire_str peer_id, bool success);
void wire_write_error(json_writer *w, uint64_t code, const char *message);
/* {"type":"turn_credentials","username":..,"password":..,"ttl_secs":..,"uris":[..]} */
void wire_write_turn_credentials(json_writer *w, wire_str username, wire_str password,
                                 uint64_t ttl_secs, const wire_str *uris, size_t n_uris);
/* RLY-009: the relay's question, and a node's answer (begin, one item per record with first ==
 * true for the first, then end with the totals). */
void wire_write_get_dht_records(json_writer *w, uint64_t max_keys);
void wire_write_dht_records_begin(json_writer *w);
void wire_write_dht_records_item(json_writer *w, const wire_dht_record *r, bool first);
void wire_write_dht_records_end(json_writer *w, uint64_t total_keys, bool truncated);

/* Re-encodes any decoded message in canonical form (the conformance round trip): strings
 * re-escaped, addresses formatted, payload whitespace dropped. scratch is for decoding the
 * exclude / peers arrays and must be a buffer other than the one m's strings live in, at least
 * as large as the decoded text. Writes nothing for WT_PEX (the PEX binding owns those). */
void wire_encode(json_writer *w, const wire_msg *m, char *scratch);

/* Error codes of the relay wire. */
enum {
    WIRE_ERR_NOT_REGISTERED = 1, WIRE_ERR_BAD_MESSAGE = 2, WIRE_ERR_PEER_NOT_FOUND = 3,
    WIRE_ERR_CAPACITY = 4, WIRE_ERR_ID_IN_USE = 5, WIRE_ERR_IDENTITY_MISMATCH = 6,
    WIRE_ERR_RATE_LIMITED = 7
};

#endif
