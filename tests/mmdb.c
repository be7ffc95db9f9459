/* Test support (mmdb.h): a MaxMind DB writer in three parts, as the format lays a file out: the
 * binary search tree (one node per prefix bit, each with a left and a right 24-bit record), a
 * 16-byte zero separator and the data section, then the metadata marker and the metadata map. A
 * record below node_count names a node, node_count means "no data", and node_count + 16 + k
 * points at byte k of the data section. */
#include "tests/mmdb.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_NODES 4096
#define EMPTY UINT32_MAX
#define DATA_FLAG 0x80000000u      /* while building: the record holds a data offset */

typedef struct {
    uint8_t *p;
    size_t len, cap;
    bool failed;
} bytes;

static void put(bytes *b, const void *src, size_t n)
{
    if (b->failed || n == 0)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) {
            b->failed = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_byte(bytes *b, unsigned v)
{
    uint8_t c = (uint8_t)v;
    put(b, &c, 1);
}

/* Big-endian unsigned integer of n bytes. */
static void put_be(bytes *b, uint64_t v, unsigned n)
{
    for (unsigned i = n; i-- > 0;)
        put_byte(b, (unsigned)(v >> (8 * i)));
}

/* Control byte(s): type 1..7 in the top three bits, or 0 and an extended type byte (type - 7);
 * sizes below 29 only, which is all this writer needs. */
static void control(bytes *b, unsigned type, unsigned size)
{
    if (type <= 7) {
        put_byte(b, type << 5 | size);
    } else {
        put_byte(b, size);
        put_byte(b, type - 7);
    }
}

static void put_string(bytes *b, const char *s)
{
    size_t n = strlen(s);
    control(b, 2, (unsigned)n);
    put(b, s, n);
}

static void put_double(bytes *b, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, 8);
    control(b, 3, 8);
    put_be(b, bits, 8);
}

static void put_uint(bytes *b, unsigned type, uint64_t v, unsigned n)
{
    control(b, type, n);
    put_be(b, v, n);
}

typedef struct {
    uint32_t rec[MAX_NODES][2];
    uint32_t n;
} tree;

static bool insert(tree *t, const uint8_t ip[16], unsigned prefix, uint32_t data_offset)
{
    uint32_t node = 0;
    for (unsigned bit = 0; bit < prefix; bit++) {
        unsigned side = ip[bit / 8] >> (7 - bit % 8) & 1;
        if (bit + 1 == prefix) {
            t->rec[node][side] = DATA_FLAG | data_offset;
            return true;
        }
        uint32_t next = t->rec[node][side];
        if (next == EMPTY || (next & DATA_FLAG)) {
            if (t->n == MAX_NODES)
                return false;
            next = t->n++;
            t->rec[next][0] = t->rec[next][1] = EMPTY;
            t->rec[node][side] = next;
        }
        node = next;
    }
    return false;
}

static bool parse_cidr(const char *cidr, uint8_t ip[16], unsigned *prefix)
{
    char host[64];
    const char *slash = strchr(cidr, '/');
    size_t n = slash ? (size_t)(slash - cidr) : 0;
    if (!slash || n >= sizeof host)
        return false;
    memcpy(host, cidr, n);
    host[n] = 0;
    unsigned len = (unsigned)strtoul(slash + 1, NULL, 10);
    memset(ip, 0, 16);
    if (inet_pton(AF_INET, host, ip + 12) == 1 && len <= 32) {
        *prefix = 96 + len;
        return true;
    }
    if (inet_pton(AF_INET6, host, ip) == 1 && len <= 128) {
        *prefix = len;
        return true;
    }
    return false;
}

static void metadata(bytes *b, uint32_t node_count)
{
    static const uint8_t marker[] = "\xAB\xCD\xEFMaxMind.com";
    put(b, marker, sizeof marker - 1);
    control(b, 7, 9);
    put_string(b, "node_count");
    put_uint(b, 6, node_count, 4);
    put_string(b, "record_size");
    put_uint(b, 5, 24, 2);
    put_string(b, "ip_version");
    put_uint(b, 5, 6, 2);
    put_string(b, "database_type");
    put_string(b, "DigRelay-Test-City");
    put_string(b, "languages");
    control(b, 11, 0);
    put_string(b, "binary_format_major_version");
    put_uint(b, 5, 2, 2);
    put_string(b, "binary_format_minor_version");
    put_uint(b, 5, 0, 2);
    put_string(b, "build_epoch");
    put_uint(b, 9, 1700000000, 8);
    put_string(b, "description");
    control(b, 7, 1);
    put_string(b, "en");
    put_string(b, "dig-relay test database");
}

bool mmdb_write(const char *path, const mmdb_entry *entries, size_t n)
{
    static tree t;
    bytes data = { 0 }, out = { 0 };
    bool ok = false;
    t.n = 1;
    t.rec[0][0] = t.rec[0][1] = EMPTY;
    for (size_t i = 0; i < n; i++) {
        uint8_t ip[16];
        unsigned prefix;
        if (!parse_cidr(entries[i].cidr, ip, &prefix) || prefix == 0) {
            printf("  mmdb_write: bad network %s\n", entries[i].cidr);
            goto done;
        }
        uint32_t at = (uint32_t)data.len;
        control(&data, 7, 1);
        put_string(&data, "location");
        control(&data, 7, 2);
        put_string(&data, "latitude");
        put_double(&data, entries[i].lat);
        put_string(&data, "longitude");
        put_double(&data, entries[i].lon);
        if (!insert(&t, ip, prefix, at)) {
            printf("  mmdb_write: tree too large\n");
            goto done;
        }
    }
    for (uint32_t i = 0; i < t.n; i++)
        for (int side = 0; side < 2; side++) {
            uint32_t r = t.rec[i][side];
            uint32_t v = r == EMPTY ? t.n : (r & DATA_FLAG) ? t.n + 16 + (r & ~DATA_FLAG) : r;
            put_be(&out, v, 3);
        }
    static const uint8_t separator[16];
    put(&out, separator, sizeof separator);
    put(&out, data.p, data.len);
    metadata(&out, t.n);
    if (data.failed || out.failed) {
        printf("  mmdb_write: out of memory\n");
        goto done;
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        printf("  mmdb_write: cannot create %s\n", path);
        goto done;
    }
    ok = fwrite(out.p, 1, out.len, f) == out.len;
    ok = fclose(f) == 0 && ok;
done:
    free(data.p);
    free(out.p);
    return ok;
}

bool mmdb_write_temp(char path[sizeof MMDB_TEMP_PATH], const mmdb_entry *entries, size_t n)
{
    memcpy(path, MMDB_TEMP_PATH, sizeof MMDB_TEMP_PATH);
    int fd = mkstemp(path);
    if (fd < 0) {
        printf("  cannot create %s\n", path);
        return false;
    }
    close(fd);
    return mmdb_write(path, entries, n);
}
