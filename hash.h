/* The relay's hashes and the encodings their outputs travel in, one implementation of each:
 *   SHA-1 (FIPS 180-4)      the WebSocket accept key; the inner hash of HMAC-SHA1
 *   HMAC-SHA1 (RFC 2104)    STUN MESSAGE-INTEGRITY, TURN REST passwords, stateless TURN nonces
 *   MD5 (RFC 1321)          the STUN long-term credential key MD5(username:realm:password)
 *   SipHash-1-3             keyed hash for tables indexed by what clients choose (addresses,
 *                           peer and network ids, usernames), so chosen keys cannot be aimed at
 *                           one bucket
 *   splitmix64's mixer      for values the relay chooses itself (handles, seeds, PEX timing)
 *   base64 (RFC 4648 §4)    padded standard alphabet
 *   hex                     lowercase, for ids, secrets and nonces
 *
 * These are ours even in builds that link BearSSL for TLS: the same code and the same test
 * vectors on every target, with or without the optional library, rather than two
 * implementations chosen by a build switch. BearSSL's own copies serve only its TLS engine.
 * Pure: no I/O, no allocation; inputs may sit at any address. */
#ifndef DIG_HASH_H
#define DIG_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_SHA1_LEN 20
#define HASH_MD5_LEN 16

typedef struct {
    uint32_t h[5];
    uint64_t total;      /* bytes hashed so far */
    uint8_t block[64];   /* a partial block waiting for more input */
} hash_sha1_ctx;

void hash_sha1_init(hash_sha1_ctx *c);
void hash_sha1_update(hash_sha1_ctx *c, const void *data, size_t len);
void hash_sha1_final(hash_sha1_ctx *c, uint8_t out[HASH_SHA1_LEN]);
void hash_sha1(const void *data, size_t len, uint8_t out[HASH_SHA1_LEN]);

typedef struct {
    uint32_t h[4];
    uint64_t total;
    uint8_t block[64];
} hash_md5_ctx;

void hash_md5_init(hash_md5_ctx *c);
void hash_md5_update(hash_md5_ctx *c, const void *data, size_t len);
void hash_md5_final(hash_md5_ctx *c, uint8_t out[HASH_MD5_LEN]);
void hash_md5(const void *data, size_t len, uint8_t out[HASH_MD5_LEN]);

/* HMAC-SHA1, incremental so a caller can hash a message in pieces (STUN integrity covers a
 * header whose length field is rewritten first). A key longer than 64 bytes is hashed first. */
typedef struct {
    hash_sha1_ctx inner;
    hash_sha1_ctx outer;
} hash_hmac_sha1_ctx;

void hash_hmac_sha1_init(hash_hmac_sha1_ctx *c, const void *key, size_t key_len);
void hash_hmac_sha1_update(hash_hmac_sha1_ctx *c, const void *data, size_t len);
void hash_hmac_sha1_final(hash_hmac_sha1_ctx *c, uint8_t out[HASH_SHA1_LEN]);
void hash_hmac_sha1(const void *key, size_t key_len, const void *data, size_t len,
                    uint8_t out[HASH_SHA1_LEN]);

/* SipHash-1-3 of data[0..len) under a 128-bit secret. */
uint64_t hash_siphash13(const uint64_t key[2], const void *data, size_t len);

/* splitmix64's finaliser: every input bit affects every output bit. For values the relay chooses
 * itself (connection handles, seeds), never for bytes a client sent. */
uint64_t hash_mix64(uint64_t x);

/* Constant-time comparison (secrets and MACs): 1 when equal, 0 otherwise. */
int hash_equal(const void *a, const void *b, size_t len);

/* Padded base64 of in[0..len) and a NUL into out, which needs BASE64_LEN(len) + 1 bytes.
 * Returns the length written (without the NUL). */
#define BASE64_LEN(n) (((n) + 2) / 3 * 4)
size_t base64_encode(const uint8_t *in, size_t len, char *out);
/* The 6-bit value of a base64 symbol, or -1 for anything else (the pad '=' included). */
int base64_value(char c);

/* Lowercase hex of in[0..len) and a NUL into out, which needs 2 * len + 1 bytes. */
void hex_encode(const uint8_t *in, size_t len, char *out);

#endif
