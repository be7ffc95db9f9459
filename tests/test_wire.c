/* Unit tests for wire.c: the golden conformance lines (byte-exact round trip and rejection),
 * serde's field rules (type anywhere, unknown fields, duplicates, missing fields), integer and
 * payload strictness, socket-address fields, the pex_ passthrough, the array iterators, the
 * RLY-009 DHT record exchange, and the exact output of every writer. */
#include "wire.h"
#include "test.h"

#include <stdlib.h>

#define SCRATCH_MAX 200000
static char scratch[SCRATCH_MAX];
static char scratch2[SCRATCH_MAX];
static char err[256];

static bool decode(const char *s, wire_msg *m)
{
    err[0] = 0;
    return wire_decode(s, strlen(s), m, scratch, err, sizeof err);
}

static bool rejects(const char *s)
{
    wire_msg m;
    bool ok = decode(s, &m);
    if (ok)
        printf("  accepted: %s\n", s);
    return !ok && err[0] != 0;
}

static bool rejects_with(const char *s, const char *why)
{
    wire_msg m;
    if (decode(s, &m)) {
        printf("  accepted: %s\n", s);
        return false;
    }
    if (strcmp(err, why) != 0) {
        printf("  %s\n    error \"%s\", expected \"%s\"\n", s, err, why);
        return false;
    }
    return true;
}

/* Decodes s and re-encodes it; true when the bytes equal `expect`. */
static bool round_trip(const char *s, size_t n, const char *expect, size_t expect_n)
{
    wire_msg m;
    json_writer w;
    if (!wire_decode(s, n, &m, scratch, err, sizeof err)) {
        printf("  rejected %.*s: %s\n", (int)(n > 200 ? 200 : n), s, err);
        return false;
    }
    jw_init(&w, 14, (size_t)1 << 24);
    wire_encode(&w, &m, scratch2);
    bool same = !w.failed && w.p && w.len - 14 == expect_n && memcmp(w.p + 14, expect, expect_n) == 0;
    if (!same)
        printf("  re-encoded %.*s\n    expected %.*s\n", w.p ? (int)(w.len - 14) : 0, w.p ? w.p + 14 : "",
               (int)expect_n, expect);
    jw_free(&w);
    return same;
}

static bool canon(const char *in, const char *expect)
{
    return round_trip(in, strlen(in), expect, strlen(expect));
}

static FILE *open_data(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "tests/data/%s", name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(path, sizeof path, "data/%s", name);
        f = fopen(path, "rb");
    }
    return f;
}

static void test_conformance_valid(void)
{
    FILE *f = open_data("rly-valid.jsonl");
    REQUIRE(f != NULL);
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\r\n");
        if (len == 0)
            continue;
        n++;
        if (!round_trip(line, len, line, len))
            printf("  line %d failed\n", n);
        CHECK(round_trip(line, len, line, len));
    }
    fclose(f);
    CHECK(n >= 19);
}

static void test_conformance_invalid(void)
{
    FILE *f = open_data("rly-invalid.jsonl");
    REQUIRE(f != NULL);
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\r\n");
        if (len == 0 && feof(f))
            break;
        wire_msg m;
        n++;
        line[len] = 0;
        CHECK(!wire_decode(line, len, &m, scratch, err, sizeof err));
    }
    fclose(f);
    CHECK(n >= 4);
}

static void test_decode_fields(void)
{
    wire_msg m;
    REQUIRE(decode("{\"type\":\"register\",\"peer_id\":\"p1\",\"network_id\":\"net\",\"protocol_version\":4294967295,"
                   "\"listen_addrs\":[\"[::]:9445\",\"10.0.0.1:1\"]}", &m));
    CHECK(m.type == WT_REGISTER);
    CHECK_EQ_MEM(m.type_name.p, m.type_name.n, "register", 8);
    CHECK_EQ_MEM(m.peer_id.p, m.peer_id.n, "p1", 2);
    CHECK_EQ_MEM(m.network_id.p, m.network_id.n, "net", 3);
    CHECK(m.protocol_version == 4294967295u);
    CHECK_EQ_INT(m.listen_addrs_count, 2);
    CHECK_EQ_MEM(m.listen_addrs.p, m.listen_addrs.n, "[\"[::]:9445\",\"10.0.0.1:1\"]", 26);

    REQUIRE(decode("{\"type\":\"relay_message\",\"from\":\"a\",\"to\":\"b\",\"payload\":[0, 1 ,255 ],"
                   "\"seq\":18446744073709551615}", &m));
    CHECK(m.type == WT_RELAY_MESSAGE);
    CHECK_EQ_MEM(m.to.p, m.to.n, "b", 1);
    CHECK_EQ_MEM(m.payload.p, m.payload.n, "[0,1,255]", 9);  /* compacted for forwarding */
    CHECK_EQ_INT(m.payload_count, 3);
    CHECK(m.seq == UINT64_MAX);

    REQUIRE(decode("{\"type\":\"broadcast\",\"from\":\"a\",\"payload\":[],\"exclude\":[]}", &m));
    CHECK(m.type == WT_BROADCAST);
    CHECK_EQ_INT(m.payload_count, 0);
    CHECK_EQ_MEM(m.payload.p, m.payload.n, "[]", 2);
    CHECK_EQ_MEM(m.exclude.p, m.exclude.n, "[]", 2);

    REQUIRE(decode("{\"type\":\"hole_punch_request\",\"peer_id\":\"a\",\"target_peer_id\":\"b\","
                   "\"external_addr\":\"203.0.113.1:9444\"}", &m));
    CHECK(m.type == WT_HOLE_PUNCH_REQUEST);
    CHECK_EQ_MEM(m.target_peer_id.p, m.target_peer_id.n, "b", 1);
    CHECK_EQ_INT(m.external_addr.family, 4);
    CHECK_EQ_INT(m.external_addr.port, 9444);
    CHECK(memcmp(m.external_addr.ip, "\xcb\x00\x71\x01", 4) == 0);

    REQUIRE(decode("{\"type\":\"register_ack\",\"success\":false,\"message\":\"x\",\"connected_peers\":7}", &m));
    CHECK(m.type == WT_REGISTER_ACK && !m.success && m.connected_peers == 7);
    REQUIRE(decode("{\"type\":\"error\",\"code\":4294967295,\"message\":\"m\"}", &m));
    CHECK(m.type == WT_ERROR && m.code == 4294967295u);
    REQUIRE(decode("{\"type\":\"pong\",\"timestamp\":0}", &m));
    CHECK(m.type == WT_PONG && m.timestamp == 0);
    REQUIRE(decode("{\"type\":\"hole_punch_result\",\"peer_id\":\"q\",\"success\":true}", &m));
    CHECK(m.type == WT_HOLE_PUNCH_RESULT && m.success);

    REQUIRE(decode("{\"type\":\"peer_connected\",\"peer\":{\"last_seen\":2,\"connected_at\":1,"
                   "\"protocol_version\":3,\"network_id\":\"n\",\"peer_id\":\"p\",\"extra\":[{}],"
                   "\"addresses\":[\"1.2.3.4:5\",\"[2001:db8::2]:6\"]}}", &m));
    CHECK(m.type == WT_PEER_CONNECTED);
    CHECK_EQ_MEM(m.peer.peer_id.p, m.peer.peer_id.n, "p", 1);
    CHECK_EQ_MEM(m.peer.network_id.p, m.peer.network_id.n, "n", 1);
    CHECK(m.peer.protocol_version == 3 && m.peer.connected_at == 1 && m.peer.last_seen == 2);
    CHECK_EQ_INT(m.peer.n_addresses, 2);
    CHECK_EQ_INT(m.peer.addresses[1].family, 6);
    CHECK_EQ_INT(m.peer.addresses[1].port, 6);
}

static void test_type_anywhere_and_unknown_fields(void)
{
    wire_msg m;
    REQUIRE(decode("{\"peer_id\":\"a\",\"x\":{\"y\":[1,2,{\"z\":null}]},\"type\":\"unregister\"}", &m));
    CHECK(m.type == WT_UNREGISTER);
    CHECK_EQ_MEM(m.peer_id.p, m.peer_id.n, "a", 1);

    /* known field names that this type does not use are unknown fields: any valid JSON goes */
    CHECK(decode("{\"type\":\"ping\",\"timestamp\":1,\"payload\":[256,-1],\"seq\":1.5,"
                 "\"external_addr\":\"nope\",\"peer\":7,\"peers\":{},\"to\":3,\"network_id\":5}", &m));
    CHECK(m.type == WT_PING && m.timestamp == 1);
    CHECK(decode("{\"type\":\"ping\",\"timestamp\":1,\"seq\":1,\"seq\":2,\"to\":\"a\",\"to\":\"b\"}", &m));
    CHECK(decode("{\"type\":\"ping\",\"timestamp\":1,\"seq\":[1,2],\"seq\":\"x\"}", &m));

    /* ... but must still be valid JSON */
    CHECK(rejects("{\"type\":\"ping\",\"timestamp\":1,\"junk\":[01]}"));
    CHECK(rejects("{\"type\":\"ping\",\"timestamp\":1,\"payload\":[1,]}"));
    CHECK(rejects("{\"type\":\"ping\",\"timestamp\":1,\"x\":\"\\ud800\"}"));
    CHECK(rejects("{\"type\":\"ping\",\"timestamp\":1,\"x\":\"\xff\"}"));
    CHECK(rejects("{\"type\":\"ping\",\"timestamp\":1} x"));
    CHECK(rejects("{\"type\":\"ping\",\"timestamp\":1}{}"));

    /* escaped keys and type names are matched after decoding, as serde does */
    REQUIRE(decode("{\"\\u0074ype\":\"p\\u0069ng\",\"time\\u0073tamp\":9}", &m));
    CHECK(m.type == WT_PING && m.timestamp == 9);
}

static void test_duplicates_and_missing(void)
{
    CHECK(rejects_with("{\"type\":\"ping\",\"timestamp\":1,\"timestamp\":2}", "duplicate field `timestamp`"));
    CHECK(rejects_with("{\"type\":\"ping\",\"type\":\"ping\",\"timestamp\":1}", "duplicate field `type`"));
    CHECK(rejects_with("{\"type\":\"ping\",\"timest\\u0061mp\":1,\"timestamp\":2}", "duplicate field `timestamp`"));
    CHECK(rejects_with("{\"type\":\"unregister\"}", "missing field `peer_id`"));
    CHECK(rejects_with("{\"type\":\"relay_message\",\"from\":\"a\",\"payload\":[],\"seq\":1}", "missing field `to`"));
    CHECK(rejects_with("{\"type\":\"broadcast\",\"from\":\"a\",\"payload\":[]}", "missing field `exclude`"));
    CHECK(rejects_with("{\"peer_id\":\"a\"}", "missing field `type`"));
    CHECK(rejects_with("{}", "missing field `type`"));
    CHECK(rejects_with("{\"type\":\"not_a_real_message\"}", "unknown message type `not_a_real_message`"));
    CHECK(rejects_with("{\"type\":\"PING\",\"timestamp\":1}", "unknown message type `PING`"));
    CHECK(rejects_with("{\"type\":7}", "invalid value for field `type`: expected a string"));
    CHECK(rejects_with("[]", "invalid type: expected a JSON object"));
    CHECK(rejects_with("\"ping\"", "invalid type: expected a JSON object"));
    CHECK(rejects_with("", "invalid JSON: unexpected end of input"));
    CHECK(rejects_with("{\"type\":\"ping\",\"timestamp\":1", "invalid JSON: unexpected end of input"));
    CHECK(rejects_with("{\"type\":\"ping\",\"timestamp\":1}}", "invalid JSON: trailing characters"));
    CHECK(rejects("{\"type\":\"peer_connected\",\"peer\":{\"peer_id\":\"p\",\"network_id\":\"n\","
                  "\"protocol_version\":1,\"connected_at\":1}}"));
    CHECK(rejects("{\"type\":\"peer_connected\",\"peer\":{\"peer_id\":\"p\",\"peer_id\":\"p\",\"network_id\":\"n\","
                  "\"protocol_version\":1,\"connected_at\":1,\"last_seen\":1}}"));
    CHECK(rejects("{\"type\":\"peers\",\"peers\":[{\"peer_id\":\"p\"}]}"));
    CHECK(rejects("{\"type\":\"peers\",\"peers\":{}}"));
    CHECK(rejects("{\"type\":\"peers\",\"peers\":[1]}"));

    /* a long unknown type is cut without splitting a UTF-8 character */
    char doc[300];
    char name[200];
    memset(name, 'a', 63);
    memcpy(name + 63, "\xc3\xa9", 2);
    memset(name + 65, 'b', 20);
    name[85] = 0;
    snprintf(doc, sizeof doc, "{\"type\":\"%s\"}", name);
    CHECK(rejects(doc));
    CHECK(strstr(err, "aaa`") == NULL);
    CHECK(strstr(err, "\xc3\xa9") == NULL);
    CHECK(strstr(err, "...`") != NULL);

    /* the error text is cut to errlen, and errlen 0 writes nothing */
    wire_msg m;
    char small[8];
    memset(small, 'x', sizeof small);
    CHECK(!wire_decode("{}", 2, &m, scratch, small, sizeof small));
    CHECK_EQ_STR(small, "missing");
    CHECK(!wire_decode("{}", 2, &m, scratch, small, 0));
}

static void test_integer_fields(void)
{
    const char *fmt_pv = "{\"type\":\"register\",\"peer_id\":\"a\",\"network_id\":\"n\",\"protocol_version\":%s}";
    const char *fmt_seq = "{\"type\":\"relay_message\",\"from\":\"a\",\"to\":\"b\",\"payload\":[],\"seq\":%s}";
    const char *fmt_code = "{\"type\":\"error\",\"code\":%s,\"message\":\"m\"}";
    const char *fmt_ts = "{\"type\":\"ping\",\"timestamp\":%s}";
    const char *fmt_cp = "{\"type\":\"register_ack\",\"success\":true,\"message\":\"m\",\"connected_peers\":%s}";
    const char *bad[] = { "1.0", "1e2", "1E2", "-1", "-0", "0.5", "\"1\"", "null", "true", "[1]", "01" };
    const char *fmts[] = { fmt_pv, fmt_seq, fmt_code, fmt_ts, fmt_cp };
    char doc[256];
    wire_msg m;
    for (size_t f = 0; f < 5; f++) {
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            snprintf(doc, sizeof doc, fmts[f], bad[i]);
            CHECK(rejects(doc));
        }
        snprintf(doc, sizeof doc, fmts[f], "18446744073709551616");
        CHECK(rejects(doc));
        snprintf(doc, sizeof doc, fmts[f], "0");
        CHECK(decode(doc, &m));
        snprintf(doc, sizeof doc, fmts[f], "4294967295");
        CHECK(decode(doc, &m));
        snprintf(doc, sizeof doc, fmts[f], "4294967296");
        bool is_u32 = fmts[f] == fmt_pv || fmts[f] == fmt_code;
        CHECK(decode(doc, &m) == !is_u32);
        snprintf(doc, sizeof doc, fmts[f], "18446744073709551615");
        CHECK(decode(doc, &m) == !is_u32);
    }
    snprintf(doc, sizeof doc, fmt_pv, "1.0");
    CHECK(rejects_with(doc, "invalid value for field `protocol_version`: expected an integer 0..4294967295"));
}

static void test_payload(void)
{
    const char *fmt = "{\"type\":\"relay_message\",\"from\":\"a\",\"to\":\"b\",\"payload\":%s,\"seq\":1}";
    const char *bad[] = {
        "[256]", "[-1]", "[1.0]", "[\"a\"]", "[01]", "[00]", "[1e2]", "[1E0]", "[1,]", "[,1]",
        "[1 2]", "[1,,2]", "null", "\"abc\"", "{}", "[[1]]", "[true]", "[1000]", "[2550]", "[300]",
        "[999]", "[-0]", "[+1]", "[1", "[0x1]", "[255.5]", "[ ]]",
    };
    char doc[256];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(doc, sizeof doc, fmt, bad[i]);
        CHECK(rejects(doc));
    }
    snprintf(doc, sizeof doc, fmt, "[256]");
    CHECK(rejects_with(doc, "invalid value for field `payload`: expected an array of integers 0..255"));

    struct { const char *in; size_t count; const char *compact; } ok[] = {
        { "[]", 0, "[]" }, { "[ ]", 0, "[]" }, { "[0]", 1, "[0]" }, { "[255]", 1, "[255]" },
        { "[9,10,99,100,199,200,249,250,255]", 9, "[9,10,99,100,199,200,249,250,255]" },
        { "[ 1 ,\t2\n,\r3 ]", 3, "[1,2,3]" },
    };
    wire_msg m;
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        snprintf(doc, sizeof doc, fmt, ok[i].in);
        REQUIRE(decode(doc, &m));
        CHECK_EQ_INT(m.payload_count, ok[i].count);
        CHECK_EQ_MEM(m.payload.p, m.payload.n, ok[i].compact, strlen(ok[i].compact));
        char expect[256];
        snprintf(expect, sizeof expect, fmt, ok[i].compact);
        CHECK(canon(doc, expect));
    }
}

static char *big_relay_message(size_t nbytes, size_t *len)
{
    char *s = malloc(nbytes * 4 + 128);
    size_t n = (size_t)sprintf(s, "{\"type\":\"relay_message\",\"from\":\"a\",\"to\":\"b\",\"payload\":[");
    for (size_t i = 0; i < nbytes; i++)
        n += (size_t)sprintf(s + n, i ? ",%u" : "%u", (unsigned)((i * 37) & 255));
    n += (size_t)sprintf(s + n, "],\"seq\":42}");
    *len = n;
    return s;
}

static void test_large_payload(void)
{
    size_t len;
    char *s = big_relay_message(16384, &len);
    wire_msg m;
    REQUIRE(wire_decode(s, len, &m, scratch, err, sizeof err));
    CHECK_EQ_INT(m.payload_count, 16384);
    CHECK(m.seq == 42);
    CHECK(round_trip(s, len, s, len));
    /* forwarding copies the span untouched */
    json_writer w;
    jw_init(&w, 0, (size_t)1 << 20);
    wire_write_relay_message(&w, m.from, m.to, m.payload, m.seq);
    CHECK_EQ_MEM(w.p, w.len, s, len);
    jw_free(&w);
    free(s);
}

static void test_strings_decoded(void)
{
    wire_msg m;
    const char *doc = "{\"type\":\"relay_message\",\"from\":\"a\\u0062\\n\\ud83d\\ude00\",\"to\":\"\\\"\\/\","
                      "\"payload\":[1],\"seq\":1}";
    REQUIRE(decode(doc, &m));
    CHECK_EQ_MEM(m.from.p, m.from.n, "ab\n\xf0\x9f\x98\x80", 7);
    CHECK_EQ_MEM(m.to.p, m.to.n, "\"/", 2);
    /* decoded text lives in scratch, plain text points into the message */
    CHECK(m.from.p >= scratch && m.from.p < scratch + SCRATCH_MAX);
    CHECK(canon(doc, "{\"type\":\"relay_message\",\"from\":\"ab\\n\xf0\x9f\x98\x80\",\"to\":\"\\\"/\","
                     "\"payload\":[1],\"seq\":1}"));
    REQUIRE(decode("{\"type\":\"unregister\",\"peer_id\":\"plain\"}", &m));
    CHECK(m.peer_id.p < scratch || m.peer_id.p >= scratch + SCRATCH_MAX);
    /* a NUL and other controls survive decoding and come back as serde writes them */
    CHECK(canon("{\"type\":\"unregister\",\"peer_id\":\"\\u0000\\u001F\\u007f\\b\"}",
                "{\"type\":\"unregister\",\"peer_id\":\"\\u0000\\u001f\x7f\\b\"}"));
    /* strict strings in known fields */
    CHECK(rejects("{\"type\":\"unregister\",\"peer_id\":\"a\tb\"}"));
    CHECK(rejects("{\"type\":\"unregister\",\"peer_id\":\"\\udc00\"}"));
    CHECK(rejects("{\"type\":\"unregister\",\"peer_id\":\"\xed\xa0\x80\"}"));
    CHECK(rejects("{\"type\":\"unregister\",\"peer_id\":\"\xc0\xaf\"}"));
    CHECK(rejects("{\"type\":\"unregister\",\"peer_id\":1}"));
    CHECK(rejects("{\"type\":\"unregister\",\"peer_id\":null}"));
}

static void test_network_id(void)
{
    wire_msg m;
    REQUIRE(decode("{\"type\":\"get_peers\"}", &m));
    CHECK(m.type == WT_GET_PEERS && m.network_id_null);
    CHECK(canon("{\"type\":\"get_peers\"}", "{\"type\":\"get_peers\",\"network_id\":null}"));
    REQUIRE(decode("{\"type\":\"get_peers\",\"network_id\":null}", &m));
    CHECK(m.network_id_null);
    REQUIRE(decode("{\"type\":\"get_peers\",\"network_id\":\"x\"}", &m));
    CHECK(!m.network_id_null);
    CHECK_EQ_MEM(m.network_id.p, m.network_id.n, "x", 1);
    CHECK(rejects("{\"type\":\"get_peers\",\"network_id\":1}"));
    CHECK(rejects("{\"type\":\"get_peers\",\"network_id\":null,\"network_id\":null}"));
    CHECK(rejects_with("{\"type\":\"register\",\"peer_id\":\"a\",\"network_id\":null,\"protocol_version\":1}",
                       "invalid value for field `network_id`: expected a string, found null"));
}

static void test_addresses(void)
{
    wire_msg m;
    CHECK(rejects("{\"type\":\"hole_punch_coordinate\",\"peer_id\":\"a\",\"external_addr\":\"1.2.3.4\"}"));
    CHECK(rejects("{\"type\":\"hole_punch_coordinate\",\"peer_id\":\"a\",\"external_addr\":\"1.2.3.4:70000\"}"));
    CHECK(rejects("{\"type\":\"hole_punch_coordinate\",\"peer_id\":\"a\",\"external_addr\":\" 1.2.3.4:1\"}"));
    CHECK(rejects("{\"type\":\"hole_punch_coordinate\",\"peer_id\":\"a\",\"external_addr\":\"2001:db8::1:1\"}"));
    CHECK(rejects("{\"type\":\"hole_punch_coordinate\",\"peer_id\":\"a\",\"external_addr\":1}"));
    CHECK(rejects("{\"type\":\"hole_punch_request\",\"peer_id\":\"a\",\"target_peer_id\":\"b\","
                  "\"external_addr\":\"host:1\"}"));
    CHECK(rejects("{\"type\":\"register\",\"peer_id\":\"a\",\"network_id\":\"n\",\"protocol_version\":1,"
                  "\"listen_addrs\":[\"1.2.3.4:1\",\"bad\"]}"));
    CHECK(rejects("{\"type\":\"register\",\"peer_id\":\"a\",\"network_id\":\"n\",\"protocol_version\":1,"
                  "\"listen_addrs\":[1]}"));
    CHECK(rejects("{\"type\":\"register\",\"peer_id\":\"a\",\"network_id\":\"n\",\"protocol_version\":1,"
                  "\"listen_addrs\":null}"));
    CHECK(rejects("{\"type\":\"peer_connected\",\"peer\":{\"peer_id\":\"p\",\"network_id\":\"n\",\"protocol_version\":1,"
                  "\"connected_at\":1,\"last_seen\":1,\"addresses\":[\"x\"]}}"));
    CHECK(rejects("{\"type\":\"peer_connected\",\"peer\":{\"peer_id\":\"p\",\"network_id\":\"n\",\"protocol_version\":1,"
                  "\"connected_at\":1,\"last_seen\":1,\"addresses\":null}}"));
    CHECK(rejects("{\"type\":\"peers\",\"peers\":[{\"peer_id\":\"p\",\"network_id\":\"n\",\"protocol_version\":1,"
                  "\"connected_at\":1,\"last_seen\":1,\"addresses\":[\"1.2.3.4:99999\"]}]}"));

    /* an escaped address is decoded before parsing; the output is canonical */
    CHECK(canon("{\"type\":\"hole_punch_coordinate\",\"peer_id\":\"a\",\"external_addr\":\"1.2.3.4:\\u0039\"}",
                "{\"type\":\"hole_punch_coordinate\",\"peer_id\":\"a\",\"external_addr\":\"1.2.3.4:9\"}"));
    CHECK(canon("{\"type\":\"hole_punch_request\",\"peer_id\":\"a\",\"target_peer_id\":\"b\","
                "\"external_addr\":\"[2001:DB8:0:0:0:0:0:1]:9444\"}",
                "{\"type\":\"hole_punch_request\",\"peer_id\":\"a\",\"target_peer_id\":\"b\","
                "\"external_addr\":\"[2001:db8::1]:9444\"}"));
    CHECK(canon("{\"type\":\"register\",\"peer_id\":\"a\",\"network_id\":\"n\",\"protocol_version\":1,\"listen_addrs\":[]}",
                "{\"type\":\"register\",\"peer_id\":\"a\",\"network_id\":\"n\",\"protocol_version\":1}"));

    /* the relay keeps at most ADDR_MAX_DIALABLE addresses per peer */
    char doc[1024];
    size_t n = (size_t)snprintf(doc, sizeof doc, "{\"type\":\"peer_connected\",\"peer\":{\"peer_id\":\"p\","
                                "\"network_id\":\"n\",\"protocol_version\":1,\"connected_at\":1,\"last_seen\":1,"
                                "\"addresses\":[");
    for (int i = 0; i < ADDR_MAX_DIALABLE; i++)
        n += (size_t)snprintf(doc + n, sizeof doc - n, "%s\"1.2.3.4:%d\"", i ? "," : "", i + 1);
    snprintf(doc + n, sizeof doc - n, "]}}");
    CHECK(decode(doc, &m));
    CHECK_EQ_INT(m.peer.n_addresses, ADDR_MAX_DIALABLE);
    CHECK(canon(doc, doc));
    snprintf(doc + n, sizeof doc - n, ",\"1.2.3.4:99\"]}}");
    CHECK(rejects(doc));
}

static void test_pex_passthrough(void)
{
    wire_msg m;
    REQUIRE(decode("{\"seq\":\"anything\",\"type\":\"pex_snapshot\",\"peers\":[1,2]}", &m));
    CHECK(m.type == WT_PEX);
    CHECK_EQ_MEM(m.type_name.p, m.type_name.n, "pex_snapshot", 12);
    REQUIRE(decode("{\"type\":\"pex_\"}", &m));
    CHECK(m.type == WT_PEX);
    CHECK(rejects("{\"type\":\"pex_delta\",\"x\":[01]}"));
    CHECK(rejects("{\"type\":\"pex_delta\",\"type\":\"pex_delta\"}"));
    CHECK(rejects("{\"type\":\"pex\"}"));
    CHECK(rejects("{\"type\":\"PEX_delta\"}"));
    json_writer w;
    jw_init(&w, 0, 1000);
    wire_encode(&w, &m, scratch2);
    CHECK_EQ_INT(w.len, 0);
    jw_free(&w);
}

static void test_iterators(void)
{
    wire_msg m;
    wire_iter it = { 0 };
    wire_str s;
    REQUIRE(decode("{\"type\":\"broadcast\",\"from\":\"a\",\"payload\":[1],"
                   "\"exclude\":[ \"x\" , \"y\\u007a\",\"\"]}", &m));
    const char *want[] = { "x", "yz", "" };
    int n = 0;
    while (wire_next_string(&it, m.exclude, &s, scratch2)) {
        REQUIRE(n < 3);
        CHECK_EQ_MEM(s.p, s.n, want[n], strlen(want[n]));
        n++;
    }
    CHECK_EQ_INT(n, 3);
    CHECK(!wire_next_string(&it, m.exclude, &s, scratch2));

    json_span empty = { NULL, 0 };
    wire_iter e = { 0 };
    CHECK(!wire_next_string(&e, empty, &s, scratch2));
    addr_t a;
    wire_iter e2 = { 0 };
    CHECK(!wire_next_addr(&e2, empty, &a));

    REQUIRE(decode("{\"type\":\"register\",\"peer_id\":\"a\",\"network_id\":\"n\",\"protocol_version\":1,"
                   "\"listen_addrs\":[\"[::]:9445\",\"192.0.2.1:80\"]}", &m));
    wire_iter ia = { 0 };
    REQUIRE(wire_next_addr(&ia, m.listen_addrs, &a));
    CHECK_EQ_INT(a.family, 6);
    CHECK_EQ_INT(a.port, 9445);
    REQUIRE(wire_next_addr(&ia, m.listen_addrs, &a));
    CHECK_EQ_INT(a.family, 4);
    CHECK_EQ_INT(a.port, 80);
    CHECK(!wire_next_addr(&ia, m.listen_addrs, &a));

    REQUIRE(decode("{\"type\":\"peers\",\"peers\":[{\"peer_id\":\"p\\u0031\",\"network_id\":\"n\",\"protocol_version\":1,"
                   "\"connected_at\":10,\"last_seen\":20},{\"peer_id\":\"p2\",\"network_id\":\"n\","
                   "\"protocol_version\":2,\"connected_at\":30,\"last_seen\":40,\"addresses\":[\"1.1.1.1:1\"]}]}", &m));
    wire_iter ip = { 0 };
    wire_peer_info pi, first;
    REQUIRE(wire_next_peer_info(&ip, m.peers, &first, scratch2));
    CHECK_EQ_MEM(first.peer_id.p, first.peer_id.n, "p1", 2);
    CHECK(first.connected_at == 10 && first.last_seen == 20);
    CHECK_EQ_INT(first.n_addresses, 0);
    REQUIRE(wire_next_peer_info(&ip, m.peers, &pi, scratch2));
    CHECK_EQ_MEM(pi.peer_id.p, pi.peer_id.n, "p2", 2);
    CHECK(pi.protocol_version == 2 && pi.connected_at == 30 && pi.last_seen == 40);
    CHECK_EQ_INT(pi.n_addresses, 1);
    CHECK(!wire_next_peer_info(&ip, m.peers, &pi, scratch2));
    /* earlier outputs stay valid for the whole iteration */
    CHECK_EQ_MEM(first.peer_id.p, first.peer_id.n, "p1", 2);
    CHECK(canon("{\"type\":\"peers\",\"peers\":[]}", "{\"type\":\"peers\",\"peers\":[]}"));
}

static wire_str ws(const char *s)
{
    wire_str w = { s, strlen(s) };
    return w;
}

#define EXPECT_OUT(w, text) do { \
    CHECK(!(w).failed); \
    CHECK_EQ_MEM((w).p, (w).len, text, strlen(text)); \
    (w).len = 0; } while (0)

static void test_writers_exact(void)
{
    json_writer w;
    jw_init(&w, 0, 1 << 16);
    addr_t a4, a6;
    REQUIRE(addr_parse("203.0.113.1:9444", 16, &a4));
    REQUIRE(addr_parse("[2001:db8::1]:9445", 18, &a6));

    wire_write_register_ack(&w, true, "registered", 3);
    EXPECT_OUT(w, "{\"type\":\"register_ack\",\"success\":true,\"message\":\"registered\",\"connected_peers\":3}");
    wire_write_register_ack(&w, false, "bad \"id\"\n", 0);
    EXPECT_OUT(w, "{\"type\":\"register_ack\",\"success\":false,\"message\":\"bad \\\"id\\\"\\n\",\"connected_peers\":0}");

    json_span pl = { "[1,2]", 5 };
    wire_write_relay_message(&w, ws("a"), ws("b"), pl, 9);
    EXPECT_OUT(w, "{\"type\":\"relay_message\",\"from\":\"a\",\"to\":\"b\",\"payload\":[1,2],\"seq\":9}");
    wire_write_broadcast(&w, ws("a"), pl);
    EXPECT_OUT(w, "{\"type\":\"broadcast\",\"from\":\"a\",\"payload\":[1,2],\"exclude\":[]}");

    wire_peer_info p;
    memset(&p, 0, sizeof p);
    p.peer_id = ws("a");
    p.network_id = ws("DIG_MAINNET");
    p.protocol_version = 1;
    p.connected_at = 100;
    p.last_seen = 200;
    const char *info = "{\"peer_id\":\"a\",\"network_id\":\"DIG_MAINNET\",\"protocol_version\":1,"
                       "\"connected_at\":100,\"last_seen\":200}";
    wire_write_peer_info(&w, &p);
    EXPECT_OUT(w, info);
    wire_write_peer_connected(&w, &p);
    EXPECT_OUT(w, "{\"type\":\"peer_connected\",\"peer\":{\"peer_id\":\"a\",\"network_id\":\"DIG_MAINNET\","
                  "\"protocol_version\":1,\"connected_at\":100,\"last_seen\":200}}");
    wire_peer_info q = p;
    q.peer_id = ws("b");
    q.addresses[0] = a6;
    q.addresses[1] = a4;
    q.n_addresses = 2;
    wire_write_peer_info(&w, &q);
    EXPECT_OUT(w, "{\"peer_id\":\"b\",\"network_id\":\"DIG_MAINNET\",\"protocol_version\":1,\"connected_at\":100,"
                  "\"last_seen\":200,\"addresses\":[\"[2001:db8::1]:9445\",\"203.0.113.1:9444\"]}");

    wire_write_peers_begin(&w);
    wire_write_peers_end(&w);
    EXPECT_OUT(w, "{\"type\":\"peers\",\"peers\":[]}");
    wire_write_peers_begin(&w);
    wire_write_peers_item(&w, &p, true);
    wire_write_peers_item(&w, &q, false);
    wire_write_peers_end(&w);
    EXPECT_OUT(w, "{\"type\":\"peers\",\"peers\":[{\"peer_id\":\"a\",\"network_id\":\"DIG_MAINNET\","
                  "\"protocol_version\":1,\"connected_at\":100,\"last_seen\":200},{\"peer_id\":\"b\","
                  "\"network_id\":\"DIG_MAINNET\",\"protocol_version\":1,\"connected_at\":100,\"last_seen\":200,"
                  "\"addresses\":[\"[2001:db8::1]:9445\",\"203.0.113.1:9444\"]}]}");

    wire_write_peer_disconnected(&w, ws("a"));
    EXPECT_OUT(w, "{\"type\":\"peer_disconnected\",\"peer_id\":\"a\"}");
    wire_write_pong(&w, 5);
    EXPECT_OUT(w, "{\"type\":\"pong\",\"timestamp\":5}");
    wire_write_ping(&w, UINT64_MAX);
    EXPECT_OUT(w, "{\"type\":\"ping\",\"timestamp\":18446744073709551615}");
    wire_write_hole_punch_coordinate(&w, ws("a"), &a4);
    EXPECT_OUT(w, "{\"type\":\"hole_punch_coordinate\",\"peer_id\":\"a\",\"external_addr\":\"203.0.113.1:9444\"}");
    wire_write_hole_punch_coordinate(&w, ws("a"), &a6);
    EXPECT_OUT(w, "{\"type\":\"hole_punch_coordinate\",\"peer_id\":\"a\",\"external_addr\":\"[2001:db8::1]:9445\"}");
    wire_write_hole_punch_result(&w, ws("a"), true);
    EXPECT_OUT(w, "{\"type\":\"hole_punch_result\",\"peer_id\":\"a\",\"success\":true}");
    wire_write_hole_punch_result(&w, ws("a"), false);
    EXPECT_OUT(w, "{\"type\":\"hole_punch_result\",\"peer_id\":\"a\",\"success\":false}");
    wire_write_error(&w, 3, "nope");
    EXPECT_OUT(w, "{\"type\":\"error\",\"code\":3,\"message\":\"nope\"}");
    jw_free(&w);

    /* every writer's output decodes back to the same message */
    jw_init(&w, 0, 1 << 16);
    wire_write_peers_begin(&w);
    wire_write_peers_item(&w, &q, true);
    wire_write_peers_end(&w);
    REQUIRE(!w.failed);
    char copy[1024];
    memcpy(copy, w.p, w.len);
    CHECK(round_trip(copy, w.len, copy, w.len));
    jw_free(&w);
}

/* Reference rule for a payload body, byte by byte: numbers 0..255 without leading zeros,
 * separated by single commas, nothing else. */
static bool reference_body_valid(const char *b, size_t n, size_t *count)
{
    size_t i = 0, cnt = 0;
    if (n == 0) {
        *count = 0;
        return true;
    }
    for (;;) {
        size_t start = i;
        unsigned v = 0;
        while (i < n && b[i] >= '0' && b[i] <= '9' && i - start < 4)
            v = v * 10 + (unsigned)(b[i++] - '0');
        if (i == start || i - start > 3 || v > 255 || (i - start > 1 && b[start] == '0'))
            return false;
        cnt++;
        if (i == n)
            break;
        if (b[i] != ',')
            return false;
        i++;
    }
    *count = cnt;
    return true;
}

/* Every payload kernel this build and CPU has (not just the one wire_decode picks here) must
 * give the reference's verdict and count on a compact body; a space is never "proven valid". */
static void check_every_kernel(const char *body, size_t n, bool want, size_t want_count)
{
    static char framed[80000];
    wire_payload_kernel kernels[8];
    size_t nk = wire_payload_kernels(kernels, 8);
    if (n < 32 || n + 3 > sizeof framed)
        return;
    memcpy(framed, "\":[", 3);  /* the bytes a kernel may look back on */
    memcpy(framed + 3, body, n);
    for (size_t k = 0; k < nk; k++) {
        size_t count = 0;
        bool ok = kernels[k](framed + 3, n, &count);
        if (ok != want || (ok && count != want_count)) {
            printf("  kernel %zu of %zu: [%.*s...] (%zu bytes) gave %d/%zu, reference %d/%zu\n", k, nk,
                   n > 60 ? 60 : (int)n, body, n, ok, count, want, want_count);
            test_cur_failed = 1;
            return;
        }
    }
}

/* The 64-byte-at-a-time payload check must agree with the plain rule on every input: long
 * valid arrays (so several blocks and their boundaries are crossed) with one byte mutated at a
 * position that sweeps every block offset. */
static void test_payload_fast_path_agrees_with_reference(void)
{
    static char body[4096], doc[4200];
    static const char alphabet[] = "0123456789,,5522 x]-";
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    for (int round = 0; round < 4000; round++) {
        size_t n = 0, count = 0, want_count = 0;
        int elems = 1 + (int)(rng % 700);
        wire_msg m;
        bool ok, want;
        for (int e = 0; e < elems; e++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            n += (size_t)snprintf(body + n, sizeof body - n, e ? ",%u" : "%u", (unsigned)(rng >> 33) % 256u);
        }
        if (round % 4 != 0) {   /* three rounds in four carry a mutation */
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            body[(rng >> 20) % n] = alphabet[(rng >> 40) % (sizeof alphabet - 1)];
        }
        if (memchr(body, ']', n))
            continue;
        want = reference_body_valid(body, n, &want_count);
        check_every_kernel(body, n, want, want_count);
        snprintf(doc, sizeof doc, "{\"type\":\"broadcast\",\"from\":\"a\",\"payload\":[%.*s],\"exclude\":[]}",
                 (int)n, body);
        ok = decode(doc, &m);
        if (memchr(body, ' ', n)) {
            /* whitespace is legal JSON around commas, not inside a number: compare against the
             * body with it removed unless it split one */
            size_t k = 0;
            bool splits = false;
            for (size_t i = 0; i < n; i++) {
                if (body[i] != ' ')
                    body[k++] = body[i];
                else if (i > 0 && i + 1 < n && body[i - 1] >= '0' && body[i - 1] <= '9' &&
                         body[i + 1] >= '0' && body[i + 1] <= '9')
                    splits = true;
            }
            want = !splits && reference_body_valid(body, k, &want_count);
        }
        if (ok != want) {
            printf("  payload [%.*s...] (%zu bytes) decoded %d (%s), reference %d\n", n > 60 ? 60 : (int)n, body, n, ok, err, want);
            test_cur_failed = 1;
            return;
        }
        count = ok ? m.payload_count : 0;
        if (ok)
            CHECK_EQ_INT(count, want_count);
    }
}

/* A 16 KiB payload (a TLS record, ~58 KB of JSON) counts every element: the vector path folds
 * its per-lane comma counts many times over, and a bad byte near the end is still found. */
static void test_payload_record_sized(void)
{
    static char doc[80000];
    size_t n = (size_t)snprintf(doc, sizeof doc, "{\"type\":\"relay_message\",\"from\":\"a\",\"to\":\"b\",\"payload\":[");
    uint64_t rng = 12345;
    wire_msg m;
    for (int i = 0; i < 16383; i++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        n += (size_t)snprintf(doc + n, sizeof doc - n, i ? ",%u" : "%u", (unsigned)(rng >> 33) % 256u);
    }
    n += (size_t)snprintf(doc + n, sizeof doc - n, ",99],\"seq\":1}");
    REQUIRE(decode(doc, &m));
    CHECK_EQ_INT(m.payload_count, 16384);
    check_every_kernel(m.payload.p + 1, m.payload.n - 2, true, 16384);
    /* a leading zero planted in the last element */
    char *last = strstr(doc, ",99]");
    REQUIRE(last != NULL);
    memcpy(last + 1, "07", 2);
    CHECK(!decode(doc, &m));

    /* "255," repeated puts a comma in the same four lanes of every 16-byte step: the per-lane
     * counts must be folded before they wrap */
    n = (size_t)snprintf(doc, sizeof doc, "{\"type\":\"broadcast\",\"from\":\"a\",\"exclude\":[],\"payload\":[255");
    for (int i = 1; i < 5000; i++)
        n += (size_t)snprintf(doc + n, sizeof doc - n, ",255");
    snprintf(doc + n, sizeof doc - n, "]}");
    REQUIRE(decode(doc, &m));
    CHECK_EQ_INT(m.payload_count, 5000);
    check_every_kernel(m.payload.p + 1, m.payload.n - 2, true, 5000);
}

/* issue 15's additive pair: get_turn_credentials (no fields) and the turn_credentials answer. */
static void test_turn_credentials(void)
{
    wire_msg m;
    json_writer w;
    REQUIRE(decode("{\"type\":\"get_turn_credentials\"}", &m));
    CHECK(m.type == WT_GET_TURN_CREDENTIALS);
    REQUIRE(decode("{\"extra\":[1],\"type\":\"get_turn_credentials\",\"peer_id\":5}", &m));
    CHECK(m.type == WT_GET_TURN_CREDENTIALS);   /* unknown and unused fields are ignored */

    static const char full[] =
        "{\"type\":\"turn_credentials\",\"username\":\"1700086400:ab\",\"password\":\"x/y+z=\","
        "\"ttl_secs\":86400,\"uris\":[\"turn:203.0.113.7:3478?transport=udp\","
        "\"turn:[2001:db8::7]:3478?transport=tcp\"]}";
    REQUIRE(decode(full, &m));
    CHECK(m.type == WT_TURN_CREDENTIALS && m.ttl_secs == 86400 && m.uris_count == 2);
    CHECK(m.username.n == 13 && memcmp(m.username.p, "1700086400:ab", 13) == 0);
    CHECK(m.password.n == 6 && memcmp(m.password.p, "x/y+z=", 6) == 0);
    CHECK(round_trip(full, sizeof full - 1, full, sizeof full - 1));
    CHECK(rejects_with("{\"type\":\"turn_credentials\",\"username\":\"u\",\"password\":\"p\",\"ttl_secs\":1}",
                       "missing field `uris`"));
    CHECK(rejects_with("{\"type\":\"turn_credentials\",\"username\":\"u\",\"password\":\"p\",\"ttl_secs\":1,"
                       "\"uris\":[1]}", "invalid value for field `uris`: expected an array of strings"));
    CHECK(rejects_with("{\"type\":\"turn_credentials\",\"username\":7,\"password\":\"p\",\"ttl_secs\":1,"
                       "\"uris\":[]}", "invalid value for field `username`: expected a string"));

    wire_str uris[2] = { { "turn:1.2.3.4:3478?transport=udp", 31 }, { "turn:1.2.3.4:3478?transport=tcp", 31 } };
    jw_init(&w, 0, 1 << 16);
    wire_write_turn_credentials(&w, (wire_str){ "9:p\"q", 5 }, (wire_str){ "pw", 2 }, 60, uris, 2);
    EXPECT_OUT(w, "{\"type\":\"turn_credentials\",\"username\":\"9:p\\\"q\",\"password\":\"pw\","
                  "\"ttl_secs\":60,\"uris\":[\"turn:1.2.3.4:3478?transport=udp\","
                  "\"turn:1.2.3.4:3478?transport=tcp\"]}");
    jw_free(&w);
}

static void test_dht_records(void)
{
    static const char ask[] = "{\"type\":\"get_dht_records\",\"max_keys\":500}";
    static const char answer[] =
        "{\"type\":\"dht_records\",\"records\":[{\"content_key\":\"ab\",\"providers\":3},"
        "{\"content_key\":\"<script>\\u0000\",\"providers\":0}],\"total_keys\":7,\"truncated\":true}";
    wire_msg m;
    wire_iter it = { 0 };
    wire_dht_record rec;
    json_writer w;

    REQUIRE(decode(ask, &m));
    CHECK(m.type == WT_GET_DHT_RECORDS);
    CHECK_EQ_INT(m.max_keys, 500);
    CHECK(round_trip(ask, strlen(ask), ask, strlen(ask)));

    REQUIRE(decode(answer, &m));
    CHECK(m.type == WT_DHT_RECORDS);
    CHECK_EQ_INT(m.records_count, 2);
    CHECK_EQ_INT(m.total_keys, 7);
    CHECK(m.truncated);
    REQUIRE(wire_next_dht_record(&it, m.records, &rec, scratch2));
    CHECK_EQ_MEM(rec.content_key.p, rec.content_key.n, "ab", 2);
    CHECK_EQ_INT(rec.providers, 3);
    REQUIRE(wire_next_dht_record(&it, m.records, &rec, scratch2));
    CHECK_EQ_MEM(rec.content_key.p, rec.content_key.n, "<script>\0", 9);
    CHECK_EQ_INT(rec.providers, 0);
    CHECK(!wire_next_dht_record(&it, m.records, &rec, scratch2));
    CHECK(round_trip(answer, strlen(answer), answer, strlen(answer)));

    /* Field order, whitespace and unknown fields do not matter; the output is canonical. */
    static const char loose[] =
        "{ \"truncated\" : false, \"x\": [1], \"records\" : [ { \"providers\": 1, \"extra\": null, "
        "\"content_key\": \"k\" } ], \"total_keys\": 1, \"type\": \"dht_records\" }";
    static const char canon[] =
        "{\"type\":\"dht_records\",\"records\":[{\"content_key\":\"k\",\"providers\":1}],"
        "\"total_keys\":1,\"truncated\":false}";
    CHECK(round_trip(loose, strlen(loose), canon, strlen(canon)));
    static const char empty[] =
        "{\"type\":\"dht_records\",\"records\":[],\"total_keys\":0,\"truncated\":false}";
    CHECK(round_trip(empty, strlen(empty), empty, strlen(empty)));

    /* Strict like every other message: required fields, types, duplicates, integer ranges. */
    CHECK(rejects_with("{\"type\":\"get_dht_records\"}", "missing field `max_keys`"));
    CHECK(rejects_with("{\"type\":\"get_dht_records\",\"max_keys\":-1}",
                       "invalid value for field `max_keys`: expected an integer 0..18446744073709551615"));
    CHECK(rejects("{\"type\":\"get_dht_records\",\"max_keys\":1.5}"));
    CHECK(rejects("{\"type\":\"get_dht_records\",\"max_keys\":\"500\"}"));
    CHECK(rejects_with("{\"type\":\"get_dht_records\",\"max_keys\":1,\"max_keys\":2}",
                       "duplicate field `max_keys`"));
    CHECK(rejects_with("{\"type\":\"dht_records\",\"total_keys\":0,\"truncated\":false}",
                       "missing field `records`"));
    CHECK(rejects_with("{\"type\":\"dht_records\",\"records\":[],\"truncated\":false}",
                       "missing field `total_keys`"));
    CHECK(rejects_with("{\"type\":\"dht_records\",\"records\":[],\"total_keys\":0}",
                       "missing field `truncated`"));
    CHECK(rejects_with("{\"type\":\"dht_records\",\"records\":[],\"total_keys\":0,\"truncated\":1}",
                       "invalid value for field `truncated`: expected a boolean"));
    CHECK(rejects_with("{\"type\":\"dht_records\",\"records\":{},\"total_keys\":0,\"truncated\":false}",
                       "invalid value for field `records`: expected an array of dht records"));
    CHECK(rejects_with("{\"type\":\"dht_records\",\"records\":[{\"providers\":1}],\"total_keys\":0,"
                       "\"truncated\":false}",
                       "invalid value for field `records`: dht record: missing field `content_key`"));
    CHECK(rejects_with("{\"type\":\"dht_records\",\"records\":[{\"content_key\":\"a\"}],\"total_keys\":0,"
                       "\"truncated\":false}",
                       "invalid value for field `records`: dht record: missing field `providers`"));
    CHECK(rejects_with("{\"type\":\"dht_records\",\"records\":[{\"content_key\":\"a\",\"providers\":-1}],"
                       "\"total_keys\":0,\"truncated\":false}",
                       "invalid value for field `records`: dht record: providers must be a non-negative "
                       "64-bit integer"));
    CHECK(rejects_with("{\"type\":\"dht_records\",\"records\":[{\"content_key\":1,\"providers\":1}],"
                       "\"total_keys\":0,\"truncated\":false}",
                       "invalid value for field `records`: dht record: content_key must be a string"));
    CHECK(rejects_with("{\"type\":\"dht_records\",\"records\":[{\"content_key\":\"a\",\"content_key\":\"b\","
                       "\"providers\":1}],\"total_keys\":0,\"truncated\":false}",
                       "invalid value for field `records`: dht record: duplicate field `content_key`"));
    CHECK(rejects("{\"type\":\"dht_records\",\"records\":[1],\"total_keys\":0,\"truncated\":false}"));
    CHECK(rejects("{\"type\":\"dht_records\",\"records\":[{\"content_key\":\"\\ud800\",\"providers\":1}],"
                  "\"total_keys\":0,\"truncated\":false}"));

    /* The writers, byte for byte. */
    jw_init(&w, 0, 4096);
    wire_write_get_dht_records(&w, 500);
    CHECK_EQ_MEM(w.p, w.len, "{\"type\":\"get_dht_records\",\"max_keys\":500}",
                 strlen("{\"type\":\"get_dht_records\",\"max_keys\":500}"));
    jw_clear(&w);
    wire_dht_record a = { { "a\"b", 3 }, 2 }, b = { { "c", 1 }, 18446744073709551615ULL };
    wire_write_dht_records_begin(&w);
    wire_write_dht_records_item(&w, &a, true);
    wire_write_dht_records_item(&w, &b, false);
    wire_write_dht_records_end(&w, 9, false);
    static const char written[] =
        "{\"type\":\"dht_records\",\"records\":[{\"content_key\":\"a\\\"b\",\"providers\":2},"
        "{\"content_key\":\"c\",\"providers\":18446744073709551615}],\"total_keys\":9,\"truncated\":false}";
    CHECK_EQ_MEM(w.p, w.len, written, strlen(written));
    jw_free(&w);
}

int main(void)
{
    RUN(test_turn_credentials);
    RUN(test_conformance_valid);
    RUN(test_payload_fast_path_agrees_with_reference);
    RUN(test_payload_record_sized);
    RUN(test_conformance_invalid);
    RUN(test_decode_fields);
    RUN(test_type_anywhere_and_unknown_fields);
    RUN(test_duplicates_and_missing);
    RUN(test_integer_fields);
    RUN(test_payload);
    RUN(test_large_payload);
    RUN(test_strings_decoded);
    RUN(test_network_id);
    RUN(test_addresses);
    RUN(test_pex_passthrough);
    RUN(test_iterators);
    RUN(test_writers_exact);
    RUN(test_dht_records);
    return test_finish();
}
