/* Unit tests for json.c: RFC 8259 strictness of the reader (every reject case), the pull API,
 * unescaping, u64 bounds, depth limit, and byte-exact serde_json-style writer output. */
#include "json.h"
#include "test.h"

#include <stdlib.h>

static bool valid(const char *s)
{
    return json_validate(s, strlen(s), NULL);
}

static bool valid_n(const char *s, size_t n)
{
    return json_validate(s, n, NULL);
}

static void test_accepts_valid_documents(void)
{
    const char *ok[] = {
        "0", "-0", "1", "-1", "123", "1.5", "-1.5e10", "1e2", "1E+2", "1e-2", "0.0", "0e0",
        "\"\"", "\"abc\"", "true", "false", "null", "[]", "{}", "[1,2,3]", "{\"a\":1}",
        " \t\r\n{ \"a\" : [ 1 , { } , [ ] , \"x\" ] , \"b\" : null } \t\r\n",
        "\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"", "\"\\u0041\\u00e9\\u20AC\"",
        "\"\\ud83d\\ude00\"", "\"\\uD83D\\uDE00\"", "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
        "\"\x7f\"", "\"\xef\xbf\xbf\"", "\"\xf4\x8f\xbf\xbf\"", "\"\xed\x9f\xbf\"",
        "18446744073709551616", "1.7976931348623157e309",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        const char *err = NULL;
        bool v = json_validate(ok[i], strlen(ok[i]), &err);
        if (!v)
            printf("  rejected %s: %s\n", ok[i], err);
        CHECK(v);
        CHECK(err == NULL);
    }
}

static void test_rejects_invalid_documents(void)
{
    const char *bad[] = {
        "", " ", "01", "-01", "00", "1.", ".5", "-", "-.5", "+1", "1e", "1e+", "1.e5", "0x10",
        "1 2", "{} {}", "[1,]", "[,1]", "[1 2]", "{\"a\":1,}", "{,}", "{\"a\"}", "{\"a\" 1}",
        "{a:1}", "{1:1}", "{'a':1}", "[", "]", "{", "}", "[1", "{\"a\":1", "\"abc", "tru",
        "True", "nul", "falsey", "NaN", "Infinity", "\"\\x\"", "\"\\u12\"", "\"\\u12g4\"",
        "\"\\U0041\"", "\"\\ud800\"", "\"\\ud800x\"", "\"\\ud800\\u0041\"", "\"\\udc00\"",
        "\"\\udc00\\ud800\"", "\"\\ud800\\ud800\"", "\"a\tb\"", "\"a\nb\"", "\"\x1f\"",
        "\"\xc0\x80\"", "\"\xc1\xbf\"", "\"\xe0\x80\x80\"", "\"\xe0\x9f\xbf\"",
        "\"\xf0\x80\x80\x80\"", "\"\xf0\x8f\xbf\xbf\"", "\"\xed\xa0\x80\"", "\"\xed\xbf\xbf\"",
        "\"\xf4\x90\x80\x80\"", "\"\xf5\x80\x80\x80\"", "\"\xff\"", "\"\x80\"", "\"\xc3\"",
        "\"\xe2\x82\"", "\"\xf0\x9f\x98\"", "\"\xc3(\"", "\xef\xbb\xbf{}", "\f1", "\v1",
        "[\"a\"]]", "{\"a\":1}}", "[1]x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *err = NULL;
        bool v = json_validate(bad[i], strlen(bad[i]), &err);
        if (v)
            printf("  accepted #%zu: %s\n", i, bad[i]);
        CHECK(!v);
        CHECK(err != NULL);
    }
    /* an embedded NUL inside a string and after a value (strlen would hide them) */
    CHECK(!valid_n("\"a\0b\"", 5));
    CHECK(!valid_n("1\0", 2));
    CHECK(valid_n("\"a\"", 3));
}

static void test_error_messages(void)
{
    const char *err = NULL;
    CHECK(!json_validate("[1] x", 5, &err));
    CHECK_EQ_STR(err, "trailing characters");
    CHECK(!json_validate("01", 2, &err));
    CHECK_EQ_STR(err, "invalid number: leading zero");
    CHECK(!json_validate("\"\\ud800\"", 8, &err));
    CHECK_EQ_STR(err, "lone surrogate in string");
    CHECK(!json_validate("\"\xc0\x80\"", 4, &err));
    CHECK_EQ_STR(err, "invalid UTF-8 in string");
    CHECK(!json_validate("\"\x01\"", 3, &err));
    CHECK_EQ_STR(err, "control character in string");
    CHECK(!json_validate("\"\\q\"", 4, &err));
    CHECK_EQ_STR(err, "invalid escape in string");
}

static void nest(char *buf, int depth, char open, char close)
{
    memset(buf, open, (size_t)depth);
    memset(buf + depth, close, (size_t)depth);
    buf[2 * depth] = 0;
}

static void test_depth_limit(void)
{
    char buf[2 * (JSON_MAX_DEPTH + 2) + 1];
    const char *err = NULL;
    nest(buf, JSON_MAX_DEPTH, '[', ']');
    CHECK(valid(buf));
    nest(buf, JSON_MAX_DEPTH + 1, '[', ']');
    CHECK(!json_validate(buf, strlen(buf), &err));
    CHECK_EQ_STR(err, "nesting too deep");

    /* objects count too: {"a":{"a":...}} */
    char obj[8 * (JSON_MAX_DEPTH + 2)];
    for (int d = JSON_MAX_DEPTH; d <= JSON_MAX_DEPTH + 1; d++) {
        size_t n = 0;
        for (int i = 0; i < d; i++) {
            memcpy(obj + n, "{\"a\":", 5);
            n += 5;
        }
        obj[n++] = '1';
        memset(obj + n, '}', (size_t)d);
        n += (size_t)d;
        CHECK(valid_n(obj, n) == (d == JSON_MAX_DEPTH));
    }

    /* the pull API enforces the same limit */
    json_reader r;
    nest(buf, JSON_MAX_DEPTH + 1, '[', ']');
    json_reader_init(&r, buf, strlen(buf));
    int opened = 0;
    while (json_array_begin(&r))
        opened++;
    CHECK_EQ_INT(opened, JSON_MAX_DEPTH);
    CHECK_EQ_STR(r.err, "nesting too deep");
}

static void test_u64_bounds(void)
{
    struct { const char *s; bool ok; uint64_t v; } cases[] = {
        { "0", true, 0 }, { "7", true, 7 }, { " 42 ", true, 42 },
        { "18446744073709551615", true, UINT64_MAX },
        { "18446744073709551616", false, 0 }, { "99999999999999999999", false, 0 },
        { "184467440737095516150", false, 0 }, { "-1", false, 0 }, { "-0", false, 0 },
        { "1.0", false, 0 }, { "1e2", false, 0 }, { "1E2", false, 0 }, { "01", false, 0 },
        { "\"1\"", false, 0 }, { "true", false, 0 }, { "", false, 0 }, { "null", false, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_reader r;
        uint64_t v = 12345;
        json_reader_init(&r, cases[i].s, strlen(cases[i].s));
        bool ok = json_read_u64(&r, &v) && json_end(&r);
        if (ok != cases[i].ok)
            printf("  case %s\n", cases[i].s);
        CHECK(ok == cases[i].ok);
        if (cases[i].ok)
            CHECK(v == cases[i].v);
        else
            CHECK(r.err != NULL);
    }
}

static void test_pull_object(void)
{
    const char *doc = " { \"s\" : \"x\\ny\" , \"n\":18, \"b\":false,\"z\":null,"
                      "\"a\":[1,\"two\",{\"k\":[]}], \"e\\u0073c\":true } ";
    json_reader r;
    json_reader_init(&r, doc, strlen(doc));
    CHECK(json_peek(&r) == JSON_OBJECT);
    REQUIRE(json_object_begin(&r));
    json_span key, s;
    uint64_t n = 0;
    bool b = true;

    REQUIRE(json_object_next(&r, &key));
    CHECK_EQ_MEM(key.p, key.n, "s", 1);
    CHECK(json_peek(&r) == JSON_STRING);
    REQUIRE(json_read_string(&r, &s));
    CHECK_EQ_MEM(s.p, s.n, "x\\ny", 4);
    CHECK(json_raw_has_escape(s));

    REQUIRE(json_object_next(&r, &key));
    CHECK(json_peek(&r) == JSON_NUMBER);
    REQUIRE(json_read_u64(&r, &n));
    CHECK(n == 18);

    REQUIRE(json_object_next(&r, &key));
    CHECK(json_peek(&r) == JSON_FALSE);
    REQUIRE(json_read_bool(&r, &b));
    CHECK(!b);

    REQUIRE(json_object_next(&r, &key));
    CHECK(json_peek(&r) == JSON_NULL);
    REQUIRE(json_read_null(&r));

    REQUIRE(json_object_next(&r, &key));
    CHECK(json_peek(&r) == JSON_ARRAY);
    json_span raw;
    REQUIRE(json_skip(&r, &raw));
    CHECK_EQ_MEM(raw.p, raw.n, "[1,\"two\",{\"k\":[]}]", 18);

    REQUIRE(json_object_next(&r, &key));
    CHECK(json_raw_equals(key, "esc"));
    CHECK(!json_raw_equals(key, "es"));
    CHECK(!json_raw_equals(key, "escx"));
    CHECK(json_peek(&r) == JSON_TRUE);
    REQUIRE(json_read_bool(&r, &b));
    CHECK(b);

    CHECK(!json_object_next(&r, &key));
    CHECK(r.err == NULL);
    CHECK_EQ_INT(r.depth, 0);
    CHECK(json_peek(&r) == JSON_NONE);
    CHECK(json_end(&r));
}

static void test_pull_array(void)
{
    const char *doc = "[ 1 , 2,3 ]";
    json_reader r;
    json_reader_init(&r, doc, strlen(doc));
    REQUIRE(json_array_begin(&r));
    uint64_t sum = 0, v;
    int count = 0;
    while (json_array_next(&r)) {
        REQUIRE(json_read_u64(&r, &v));
        sum += v;
        count++;
    }
    CHECK(r.err == NULL);
    CHECK_EQ_INT(count, 3);
    CHECK(sum == 6);
    CHECK(json_end(&r));

    json_reader_init(&r, "[ ]", 3);
    REQUIRE(json_array_begin(&r));
    CHECK(!json_array_next(&r));
    CHECK(r.err == NULL);
    CHECK(json_end(&r));

    json_reader_init(&r, "[1,]", 4);
    REQUIRE(json_array_begin(&r));
    CHECK(json_array_next(&r));
    CHECK(json_read_u64(&r, &v));
    CHECK(!json_array_next(&r));
    CHECK(r.err != NULL);

    json_reader_init(&r, "{\"a\":1,}", 8);
    json_span key;
    REQUIRE(json_object_begin(&r));
    CHECK(json_object_next(&r, &key));
    CHECK(json_read_u64(&r, &v));
    CHECK(!json_object_next(&r, &key));
    CHECK(r.err != NULL);
}

static void test_errors_are_sticky(void)
{
    json_reader r;
    json_span s;
    uint64_t v;
    bool b;
    json_reader_init(&r, "[\"a\", 1]", 8);
    REQUIRE(json_array_begin(&r));
    REQUIRE(json_array_next(&r));
    CHECK(!json_read_u64(&r, &v));             /* it is a string */
    const char *first = r.err;
    CHECK_EQ_STR(first, "expected integer");
    CHECK(!json_read_string(&r, &s));
    CHECK(!json_skip(&r, NULL));
    CHECK(!json_read_bool(&r, &b));
    CHECK(!json_read_null(&r));
    CHECK(!json_array_next(&r));
    CHECK(!json_object_begin(&r));
    CHECK(!json_end(&r));
    CHECK(json_peek(&r) == JSON_NONE);
    CHECK(r.err == first);
}

static void test_type_mismatch(void)
{
    json_reader r;
    json_span s;
    bool b;
    json_reader_init(&r, "1", 1);
    CHECK(!json_read_string(&r, &s));
    CHECK_EQ_STR(r.err, "expected string");
    json_reader_init(&r, "1", 1);
    CHECK(!json_read_bool(&r, &b));
    CHECK_EQ_STR(r.err, "expected boolean");
    json_reader_init(&r, "nul", 3);
    CHECK(!json_read_null(&r));
    json_reader_init(&r, "[", 1);
    CHECK(!json_object_begin(&r));
    CHECK_EQ_STR(r.err, "expected object");
    json_reader_init(&r, "", 0);
    CHECK(!json_array_begin(&r));
    CHECK_EQ_STR(r.err, "unexpected end of input");
}

static json_span span(const char *s)
{
    json_span sp = { s, strlen(s) };
    return sp;
}

static void test_unescape(void)
{
    struct { const char *raw, *dec; size_t declen; } cases[] = {
        { "plain", "plain", 5 },
        { "", "", 0 },
        { "a\\\"b\\\\c\\/d", "a\"b\\c/d", 7 },
        { "\\b\\f\\n\\r\\t", "\b\f\n\r\t", 5 },
        { "\\u0041\\u00e9\\u20ac", "A\xc3\xa9\xe2\x82\xac", 6 },
        { "\\u0000", "\0", 1 },
        { "\\u007F\\u0080\\u07ff\\u0800\\uffff", "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf", 11 },
        { "\\ud83d\\ude00!", "\xf0\x9f\x98\x80!", 5 },
        { "\\udbff\\udfff", "\xf4\x8f\xbf\xbf", 4 },
        { "x\\u0031y", "x1y", 3 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        /* check the reader accepts it first: unescape is only defined on validated content */
        char doc[64];
        size_t n = strlen(cases[i].raw);
        doc[0] = '"';
        memcpy(doc + 1, cases[i].raw, n);
        doc[n + 1] = '"';
        CHECK(valid_n(doc, n + 2));
        char out[64];
        size_t k = json_unescape(span(cases[i].raw), out);
        CHECK_EQ_MEM(out, k, cases[i].dec, cases[i].declen);
        CHECK(k <= n);
        CHECK(json_raw_has_escape(span(cases[i].raw)) == (strchr(cases[i].raw, '\\') != NULL));
    }
    /* decoding in place works (decoded text never outruns the raw text) */
    char inplace[] = "a\\u0062\\n\\ud83d\\ude00";
    size_t k = json_unescape(span(inplace), inplace);
    CHECK_EQ_MEM(inplace, k, "ab\n\xf0\x9f\x98\x80", 7);

    CHECK(json_raw_equals(span("type"), "type"));
    CHECK(json_raw_equals(span("\\u0074ype"), "type"));
    CHECK(json_raw_equals(span("t\\u0079p\\u0065"), "type"));
    CHECK(!json_raw_equals(span("\\u0074ypo"), "type"));
    CHECK(!json_raw_equals(span("typ"), "type"));
    CHECK(!json_raw_equals(span("\\u00e9"), "e"));
    CHECK(json_raw_equals(span(""), ""));
}

static void test_writer_escaping(void)
{
    json_writer w;
    jw_init(&w, 0, 1 << 20);
    char all[128];
    for (int i = 0; i < 128; i++)
        all[i] = (char)i;
    jw_string(&w, all, sizeof all);
    const char *expect =
        "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f"
        "\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c"
        "\\u001d\\u001e\\u001f !\\\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\\\]^_"
        "`abcdefghijklmnopqrstuvwxyz{|}~\x7f\"";
    REQUIRE(!w.failed);
    CHECK_EQ_MEM(w.p, w.len, expect, strlen(expect));
    jw_free(&w);

    jw_init(&w, 0, 1 << 20);
    jw_string(&w, "\xc3\xa9\xf0\x9f\x98\x80/", 7);
    jw_string(&w, "", 0);
    CHECK_EQ_MEM(w.p, w.len, "\"\xc3\xa9\xf0\x9f\x98\x80/\"\"\"", 11);
    jw_free(&w);
}

static void test_writer_scalars_and_reserve(void)
{
    json_writer w;
    jw_init(&w, 10, 1000);
    CHECK(w.p == NULL);
    CHECK_EQ_INT(w.len, 10);
    jw_lit(&w, "{\"a\":");
    jw_u64(&w, 0);
    jw_raw(&w, ",", 1);
    jw_u64(&w, UINT64_MAX);
    jw_raw(&w, ",", 1);
    jw_u64(&w, 1234567890);
    jw_raw(&w, ",", 1);
    jw_bool(&w, true);
    jw_raw(&w, ",", 1);
    jw_bool(&w, false);
    jw_raw(&w, "", 0);
    jw_lit(&w, "}");
    REQUIRE(!w.failed);
    REQUIRE(w.p != NULL);
    const char *expect = "{\"a\":0,18446744073709551615,1234567890,true,false}";
    CHECK_EQ_MEM(w.p + 10, w.len - 10, expect, strlen(expect));
    CHECK(w.cap <= w.max);
    jw_free(&w);
    CHECK(w.p == NULL);
    CHECK_EQ_INT(w.len, 0);
}

static void test_writer_growth_and_max(void)
{
    json_writer w;
    jw_init(&w, 4, 5000);
    char chunk[100];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 49; i++)
        jw_raw(&w, chunk, sizeof chunk);
    REQUIRE(!w.failed);
    CHECK_EQ_INT(w.len, 4 + 4900);
    CHECK(w.cap <= 5000);
    jw_raw(&w, chunk, 96);              /* exactly max */
    CHECK(!w.failed);
    CHECK_EQ_INT(w.len, 5000);
    jw_raw(&w, "y", 1);                 /* one past */
    CHECK(w.failed);
    CHECK_EQ_INT(w.len, 5000);
    jw_u64(&w, 5);
    jw_string(&w, "a", 1);
    CHECK_EQ_INT(w.len, 5000);
    jw_free(&w);

    /* an escaped string that does not fit fails without a partial overrun */
    jw_init(&w, 0, 8);
    jw_string(&w, "\x01\x02", 2);       /* needs 14 bytes */
    CHECK(w.failed);
    CHECK(w.len <= 8);
    jw_free(&w);

    /* a reserve larger than max fails at once */
    jw_init(&w, 16, 8);
    CHECK(w.failed);
    jw_lit(&w, "x");
    CHECK(w.p == NULL);
    jw_free(&w);
}

static void test_skip_spans_and_kinds(void)
{
    const char *vals[] = { "\"s\"", "-1.5e3", "true", "false", "null", "[[],{}]", "{\"a\":[1]}" };
    enum json_kind kinds[] = { JSON_STRING, JSON_NUMBER, JSON_TRUE, JSON_FALSE, JSON_NULL,
                               JSON_ARRAY, JSON_OBJECT };
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        char doc[64];
        snprintf(doc, sizeof doc, "  %s  ", vals[i]);
        json_reader r;
        json_span raw;
        json_reader_init(&r, doc, strlen(doc));
        CHECK(json_peek(&r) == kinds[i]);
        REQUIRE(json_skip(&r, &raw));
        CHECK_EQ_MEM(raw.p, raw.n, vals[i], strlen(vals[i]));
        CHECK(json_end(&r));
    }
}

/* A fixed writer fills the caller's buffer and fails, without reallocating, past its end. */
static void test_fixed_writer(void)
{
    char buf[8];
    json_writer w;
    jw_init_fixed(&w, buf, sizeof buf);
    jw_lit(&w, "[1,2,3]");
    CHECK(!w.failed);
    CHECK(w.p == buf);
    CHECK_EQ_MEM(buf, w.len, "[1,2,3]", 7);
    jw_lit(&w, ",4");
    CHECK(w.failed);
    CHECK(w.p == buf);
    CHECK_EQ_INT(w.len, 7);
}

int main(void)
{
    RUN(test_fixed_writer);
    RUN(test_accepts_valid_documents);
    RUN(test_rejects_invalid_documents);
    RUN(test_error_messages);
    RUN(test_depth_limit);
    RUN(test_u64_bounds);
    RUN(test_pull_object);
    RUN(test_pull_array);
    RUN(test_errors_are_sticky);
    RUN(test_type_mismatch);
    RUN(test_unescape);
    RUN(test_writer_escaping);
    RUN(test_writer_scalars_and_reserve);
    RUN(test_writer_growth_and_max);
    RUN(test_skip_spans_and_kinds);
    return test_finish();
}
