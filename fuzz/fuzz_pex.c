/* libFuzzer harness for the PEX engine: its JSON decoder, state machine and scheduling.
 *
 * Input: chunks separated by NUL bytes (which valid JSON never contains raw). A chunk's first
 * byte is a command: its high nibble advances the fake clock by that many 5 s steps, its low
 * nibble picks the action:
 *   0-3  the rest of the chunk is a frame from connection 1-4 (4 is never registered)
 *   4    tick, if due
 *   5    register connection (byte 1 & 3) + 1 as peer (byte 2 & 7), dialable if byte 3 is odd
 *   6    unregister connection (byte 1 & 3) + 1
 *   7    inbound activity from connection (byte 1 & 3) + 1
 * Connections 1-3 start registered. Checked on every frame the engine sends: valid JSON, within
 * PEX_MAX_FRAME, never an empty delta. After every tick nothing may be due any more (no busy
 * loop). ASan/UBSan catch the rest. */
#include "addr.h"
#include "json.h"
#include "pex.h"

#include <stdlib.h>
#include <string.h>

static void check_frame(void *ctx, uint64_t id, const char *json, size_t len)
{
    (void)ctx;
    if (id < 1 || id > 4 || len > PEX_MAX_FRAME || !json_validate(json, len, NULL))
        abort();
    static const char empty[] = "{\"type\":\"pex_delta\",\"added\":[],\"dropped\":[]}";
    if (len == sizeof empty - 1 && memcmp(json, empty, len) == 0)
        abort();
}

static bool up(pex_engine *e, uint64_t id, unsigned peer, bool dialable, pex_time now)
{
    char pid[65];
    for (int i = 0; i < 64; i++)
        pid[i] = "0123456789abcdef"[(peer + (unsigned)i) & 15];
    addr_t obs, dial[2];
    memset(&obs, 0, sizeof obs);
    memset(dial, 0, sizeof dial);
    obs.family = 4;
    obs.ip[0] = 203, obs.ip[1] = 0, obs.ip[2] = 113, obs.ip[3] = (uint8_t)peer;
    obs.port = (uint16_t)(40000 + peer);
    dial[0].family = 6;
    dial[0].ip[0] = 0x20, dial[0].ip[1] = 0x01, dial[0].ip[2] = 0x0d, dial[0].ip[3] = 0xb8;
    dial[0].ip[15] = (uint8_t)peer;
    dial[0].port = 9444;
    dial[1] = obs;
    dial[1].port = 9444;
    return pex_registrant_up(e, id, pid, 64, &obs, dial, dialable ? 2 : 0, now);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pex_engine *e = pex_engine_new("mainnet", 7, 4, 42, check_frame, NULL);
    if (!e)
        return 0;
    pex_time now = { 1000000, 1700000000 };
    up(e, 1, 1, true, now);
    up(e, 2, 2, false, now);
    up(e, 3, 3, false, now);

    size_t i = 0;
    while (i < size) {
        const uint8_t *chunk = data + i;
        const uint8_t *end = memchr(chunk, 0, size - i);
        size_t n = end ? (size_t)(end - chunk) : size - i;
        i += n + 1;
        if (n == 0)
            continue;
        uint8_t cmd = chunk[0];
        uint64_t step = (uint64_t)(cmd >> 4) * 5;
        now.mono_ms += step * 1000;
        now.wall_s += step;
        uint64_t who = n > 1 ? (uint64_t)(chunk[1] & 3) + 1 : 1;
        switch (cmd & 15) {
        case 0: case 1: case 2: case 3:
            pex_registrant_seen(e, (uint64_t)(cmd & 3) + 1, now);
            pex_on_frame(e, (uint64_t)(cmd & 3) + 1, (const char *)chunk + 1, n - 1, now);
            break;
        case 4:
            if (pex_next_due(e) <= now.mono_ms) {
                pex_tick(e, now);
                if (pex_next_due(e) <= now.mono_ms)
                    abort();
            }
            break;
        case 5:
            up(e, who, n > 2 ? chunk[2] & 7u : 0, n > 3 && (chunk[3] & 1), now);
            break;
        case 6:
            pex_registrant_down(e, who);
            break;
        case 7:
            pex_registrant_seen(e, who, now);
            break;
        default:
            break;
        }
    }
    pex_engine_free(e);
    return 0;
}
