/* Unit tests for map.c and geo.c: the exact /map.json body from a table locator (5-degree cells
 * and their centres, poles and the antimeridian, first locatable address, unknown peers, nothing
 * per peer in the output), and geolocation through libmaxminddb against a small .mmdb written by
 * tests/mmdb.c (IPv4, IPv6, IPv4-mapped, non-global addresses never looked up, a missing or
 * corrupt database answering unknown). */
#include "geo.h"
#include "map.h"
#include "test.h"
#include "tests/mmdb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* A locator from a fixed table: the port of an address picks the row (0: unknown). */
typedef struct {
    double lat, lon;
} place;

static const place table[] = {
    { 0, 0 },            /* port 0: unknown */
    { 51.5, -0.1 },      /* 1: London -> (52.5, -2.5) */
    { 0.0, 0.0 },        /* 2: on a cell corner -> (2.5, 2.5) */
    { -0.1, -179.9 },    /* 3: -> (-2.5, -177.5) */
    { 90.0, 180.0 },     /* 4: the pole and the antimeridian -> the edge cell (87.5, 177.5) */
    { -90.0, -180.0 },   /* 5: -> (-87.5, -177.5) */
    { 53.0, -4.9 },      /* 6: same cell as London */
    { NAN, 10 },         /* 7: unusable */
    { 95, 10 },          /* 8: out of range */
};

static bool table_locate(const void *ctx, const addr_t *a, double *lat, double *lon)
{
    (void)ctx;
    if (a->port == 0 || a->port >= sizeof table / sizeof table[0])
        return false;
    *lat = table[a->port].lat;
    *lon = table[a->port].lon;
    return true;
}

static const char *render(const map_peer *peers, size_t n, map_locate_fn fn, const void *ctx)
{
    static char out[65536];
    json_writer w;
    jw_init(&w, 0, sizeof out - 1);
    bool ok = map_write_json(&w, peers, n, fn, ctx, 1700000000);
    size_t len = ok ? w.len : 0;
    if (len)
        memcpy(out, w.p, len);
    out[len] = 0;
    jw_free(&w);
    if (len && !json_validate(out, len, NULL))
        printf("  not JSON: %s\n", out);
    return out;
}

static addr_t at(const char *text, uint16_t port)
{
    addr_t a;
    memset(&a, 0, sizeof a);
    if (!addr_parse(text, strlen(text), &a))
        printf("  bad address %s\n", text);
    a.port = port;
    return a;
}

static void test_cells(void)
{
    addr_t london = at("81.2.69.142:1", 1), corner = at("1.1.1.1:2", 2), west = at("1.1.1.1:3", 3);
    addr_t ne = at("1.1.1.1:4", 4), sw = at("1.1.1.1:5", 5), wales = at("1.1.1.1:6", 6);
    addr_t nowhere = at("1.1.1.1:0", 0), nan = at("1.1.1.1:7", 7), far = at("1.1.1.1:8", 8);
    addr_t second[] = { nowhere, nan, wales };           /* located by its third address */
    addr_t none[] = { nowhere, far };
    map_peer peers[] = {
        { &london, 1 }, { &corner, 1 }, { &west, 1 }, { &ne, 1 }, { &sw, 1 },
        { second, 3 }, { none, 2 }, { NULL, 0 },
    };
    CHECK_EQ_STR(render(peers, 8, table_locate, NULL),
        "{\"schema_version\":1,\"generated_at\":1700000000,\"cell_deg\":5.0,\"total_peers\":8,"
        "\"located_peers\":6,\"unknown_peers\":2,\"cells\":["
        "{\"lat\":-87.5,\"lon\":-177.5,\"count\":1},"
        "{\"lat\":-2.5,\"lon\":-177.5,\"count\":1},"
        "{\"lat\":2.5,\"lon\":2.5,\"count\":1},"
        "{\"lat\":52.5,\"lon\":-2.5,\"count\":2},"
        "{\"lat\":87.5,\"lon\":177.5,\"count\":1}]}");
    CHECK_EQ_STR(render(NULL, 0, table_locate, NULL),
        "{\"schema_version\":1,\"generated_at\":1700000000,\"cell_deg\":5.0,\"total_peers\":0,"
        "\"located_peers\":0,\"unknown_peers\":0,\"cells\":[]}");
}

static const mmdb_entry entries[] = {
    { "81.2.69.0/24", 51.5142, -0.0931 },
    { "2a02:6b8::/32", 55.7522, 37.6156 },
    { "10.0.0.0/8", 40.0, 40.0 },          /* never asked: not a global address */
    { "2001:db8::/32", 10.0, 10.0 },       /* nor is documentation space */
};

static bool geo_cb(const void *ctx, const addr_t *a, double *lat, double *lon)
{
    return geo_locate(ctx, a, lat, lon);
}

static void test_geo_database(void)
{
    if (!geo_built_in())
        SKIP("libmaxminddb-dev not installed");
    char path[sizeof MMDB_TEMP_PATH];
    REQUIRE(mmdb_write_temp(path, entries, sizeof entries / sizeof entries[0]));
    char why[256] = "";
    geo *g = geo_open(path, why, sizeof why);
    REQUIRE(g);
    CHECK_EQ_STR(why, "");
    double lat = 0, lon = 0;
    addr_t v4 = at("81.2.69.142:9444", 9444), v6 = at("[2a02:6b8::1]:9444", 9444);
    addr_t mapped = at("[::ffff:81.2.69.1]:1", 1), other = at("81.2.70.1:1", 1);
    addr_t priv = at("10.1.2.3:1", 1), doc = at("[2001:db8::5]:1", 1), loop = at("127.0.0.1:1", 1);
    CHECK(geo_locate(g, &v4, &lat, &lon));
    CHECK(fabs(lat - 51.5142) < 1e-9 && fabs(lon + 0.0931) < 1e-9);
    CHECK(geo_locate(g, &v6, &lat, &lon));
    CHECK(fabs(lat - 55.7522) < 1e-9 && fabs(lon - 37.6156) < 1e-9);
    CHECK(geo_locate(g, &mapped, &lat, &lon));
    CHECK(fabs(lat - 51.5142) < 1e-9);
    CHECK(!geo_locate(g, &other, &lat, &lon));
    CHECK(!geo_locate(g, &priv, &lat, &lon));
    CHECK(!geo_locate(g, &doc, &lat, &lon));
    CHECK(!geo_locate(g, &loop, &lat, &lon));

    /* The map through the real database: the private address first is skipped. */
    addr_t peer1[] = { priv, v4 }, peer2[] = { v6 }, peer3[] = { other };
    map_peer peers[] = { { peer1, 2 }, { peer2, 1 }, { peer3, 1 } };
    CHECK_EQ_STR(render(peers, 3, geo_cb, g),
        "{\"schema_version\":1,\"generated_at\":1700000000,\"cell_deg\":5.0,\"total_peers\":3,"
        "\"located_peers\":2,\"unknown_peers\":1,\"cells\":["
        "{\"lat\":52.5,\"lon\":-2.5,\"count\":1},{\"lat\":57.5,\"lon\":37.5,\"count\":1}]}");
    geo_close(g);

    /* A file that is not a database: unknown for everyone, with the reason. */
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    fputs("not a database", f);
    fclose(f);
    g = geo_open(path, why, sizeof why);
    REQUIRE(g);
    CHECK(strstr(why, path) != NULL);
    CHECK(!geo_locate(g, &v4, &lat, &lon));
    geo_close(g);
    unlink(path);
}

static void test_geo_missing_database(void)
{
    char why[256] = "";
    geo *g = geo_open("/nonexistent/dig-relay.mmdb", why, sizeof why);
    REQUIRE(g);
    CHECK(strstr(why, "/nonexistent/dig-relay.mmdb") != NULL);
    addr_t v4 = at("81.2.69.142:9444", 9444);
    double lat, lon;
    CHECK(!geo_locate(g, &v4, &lat, &lon));
    map_peer peers[] = { { &v4, 1 } };
    CHECK(strstr(render(peers, 1, geo_cb, g), "\"located_peers\":0,\"unknown_peers\":1,\"cells\":[]") != NULL);
    geo_close(g);
}

int main(void)
{
    RUN(test_cells);
    RUN(test_geo_database);
    RUN(test_geo_missing_database);
    return test_finish();
}
