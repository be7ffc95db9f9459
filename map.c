/* /map.json (map.h): a fixed grid of 36 x 72 counters, filled peer by peer and written in
 * latitude then longitude order. Cell centres are multiples of 2.5 degrees, written exactly from
 * integers. */
#include "map.h"

#include <string.h>

#define JW_LIT(w, s) jw_raw((w), (s), sizeof(s) - 1)
#define LAT_CELLS (180 / MAP_CELL_DEG)
#define LON_CELLS (360 / MAP_CELL_DEG)

/* The cell index of coord in [lo, hi], the edge value kept in the last cell. */
static int cell_of(double coord, int lo, int hi)
{
    int last = (hi - lo) / MAP_CELL_DEG - 1;
    double x = (coord - lo) / MAP_CELL_DEG;   /* >= 0 for a usable coordinate: truncation floors */
    int i = (int)x;
    return i < 0 ? 0 : i > last ? last : i;
}

/* The centre of cell i of a range starting at lo, as decimal text ("-177.5", "2.5"). */
static void centre(json_writer *w, int i, int lo)
{
    int tenths = lo * 10 + i * MAP_CELL_DEG * 10 + MAP_CELL_DEG * 5;
    char digit;
    if (tenths < 0) {
        JW_LIT(w, "-");
        tenths = -tenths;
    }
    jw_u64(w, (uint64_t)(tenths / 10));
    digit = (char)('0' + tenths % 10);
    JW_LIT(w, ".");
    jw_raw(w, &digit, 1);
}

/* False for NaN and infinities too: every comparison with NaN is false. */
static bool usable(double lat, double lon)
{
    return lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180;
}

bool map_write_json(json_writer *w, const map_peer *peers, size_t n, map_locate_fn locate,
                    const void *ctx, uint64_t generated_at)
{
    size_t grid[LAT_CELLS][LON_CELLS];
    size_t located = 0;
    memset(grid, 0, sizeof grid);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < peers[i].n_addresses; k++) {
            double lat, lon;
            if (locate(ctx, &peers[i].addresses[k], &lat, &lon) && usable(lat, lon)) {
                grid[cell_of(lat, -90, 90)][cell_of(lon, -180, 180)]++;
                located++;
                break;
            }
        }
    }
    JW_LIT(w, "{\"schema_version\":");
    jw_u64(w, MAP_SCHEMA_VERSION);
    JW_LIT(w, ",\"generated_at\":");
    jw_u64(w, generated_at);
    JW_LIT(w, ",\"cell_deg\":");
    jw_u64(w, MAP_CELL_DEG);
    JW_LIT(w, ".0,\"total_peers\":");
    jw_u64(w, n);
    JW_LIT(w, ",\"located_peers\":");
    jw_u64(w, located);
    JW_LIT(w, ",\"unknown_peers\":");
    jw_u64(w, n - located);
    JW_LIT(w, ",\"cells\":[");
    bool first = true;
    for (int la = 0; la < LAT_CELLS; la++)
        for (int lo = 0; lo < LON_CELLS; lo++) {
            if (!grid[la][lo])
                continue;
            if (!first)
                JW_LIT(w, ",");
            first = false;
            JW_LIT(w, "{\"lat\":");
            centre(w, la, -90);
            JW_LIT(w, ",\"lon\":");
            centre(w, lo, -180);
            JW_LIT(w, ",\"count\":");
            jw_u64(w, grid[la][lo]);
            JW_LIT(w, "}");
        }
    JW_LIT(w, "]}");
    return !w->failed;
}
