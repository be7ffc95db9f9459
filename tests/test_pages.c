/* The operator pages in a real browser (headless Chromium through tests/browser.[ch]) against
 * the real relay with registered peers: /, /dht and /map render after their scripts ran, the
 * numbers and rows they show are those of /stats.json, /dht.json and /map.json fetched beside
 * them, a peer id, network id or content key carrying markup shows up as text and never runs,
 * the empty state before anyone registers, a phone-sized screen without sideways scrolling,
 * and the error state once the relay is gone. Screenshots go to $DIG_TEST_ARTIFACTS (default
 * tests/artifacts/), which CI keeps. */
#include "tests/browser.h"
#include "tests/harness.h"
#include "tests/mmdb.h"
#include "tests/test.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT 5000u
#define SLOW 20000u

static char resp[1 << 17];
static char url[256];

static const char *page(const char *path)
{
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", h_relay.port, path);
    return url;
}

/* The body of GET path, or NULL. */
static const char *get_body(const char *path)
{
    char req[256];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: relay.test\r\n\r\n", path);
    if (h_http("127.0.0.1", h_relay.port, req, resp, sizeof resp, WAIT) == 0 || h_http_status(resp) != 200)
        return NULL;
    return h_http_body(resp);
}

/* Runs the JavaScript function text `check` (taking the parsed JSON of `path` and returning ""
 * when the page shows exactly that, else what differs) until it returns "": the page and the
 * test fetch the document at different moments, so they agree once nothing changes between
 * the two. */
static bool page_matches(browser *b, const char *path, const char *check)
{
    static char js[1 << 17];
    char out[2048] = "";
    uint64_t deadline = h_now_ms() + SLOW;
    while (h_now_ms() < deadline) {
        const char *body = get_body(path);
        if (!body)
            continue;
        snprintf(js, sizeof js, "(%s)(%s)", check, body);
        if (browser_eval_str(b, js, out, sizeof out) && out[0] == '\0')
            return true;
        h_sleep_ms(500);
    }
    printf("  %s as shown differs: %s\n", path, out);
    return false;
}

/* Nothing the peers chose ran or became markup. */
static const char NOTHING_RAN[] =
    "window.pwned === undefined && document.scripts.length === 2 && "
    "document.querySelectorAll('main img, main b, main script, table svg').length === 0";

static const char STATS_CHECK[] =
    "function (s) {"
    "  const t = (id) => document.getElementById(id).textContent;"
    "  const want = { version: 'v' + s.version, active: String(s.active_reservations),"
    "    open: String(s.open_connections), 'networks-count': String(s.networks.length),"
    "    stun: String(s.stun_requests), 'hp-requests': String(s.hole_punch_requests),"
    "    'hp-results': s.hole_punch_successes + ' / ' + s.hole_punch_failures,"
    "    relayed: s.bytes_relayed + ' B' };"
    "  for (const k in want) if (t(k) !== want[k]) return k + ': ' + t(k) + ' != ' + want[k];"
    "  const rows = (id) => [...document.querySelectorAll('#' + id + ' tbody tr')]"
    "    .map((r) => [...r.cells].map((c) => c.textContent));"
    "  const nets = JSON.stringify(s.networks.map((n) => [n.network_id, String(n.peers)]));"
    "  if (JSON.stringify(rows('networks')) !== nets) return 'networks: ' + JSON.stringify(rows('networks'));"
    "  const peers = JSON.stringify(s.peers.map((p) => [p.peer_id, p.network_id, p.via,"
    "    p.address_family, String(p.protocol_version)]));"
    "  const shown = JSON.stringify(rows('peers').map((r) => r.slice(0, 5)));"
    "  if (shown !== peers) return 'peers: ' + shown + ' != ' + peers;"
    "  return '';"
    "}";

static const char DHT_CHECK[] =
    "function (v) {"
    "  const t = (id) => document.getElementById(id).textContent;"
    "  if (t('keys') !== String(v.total_keys)) return 'keys ' + t('keys');"
    "  if (t('reporting') !== String(v.reporting_peers)) return 'reporting ' + t('reporting');"
    "  const rows = [...document.querySelectorAll('#table tbody tr')]"
    "    .map((r) => [...r.cells].map((c) => c.textContent));"
    "  const want = v.keys.map((k) => [k.content_key, String(k.providers), String(k.reported_by)]);"
    "  if (JSON.stringify(rows) !== JSON.stringify(want)) return 'rows ' + JSON.stringify(rows);"
    "  return v.reporting_peers === 3 ? '' : 'a view of ' + v.reporting_peers + ' peers';"
    "}";

static const char MAP_CHECK[] =
    "function (m) {"
    "  const t = (id) => document.getElementById(id).textContent;"
    "  const want = { total: m.total_peers, located: m.located_peers, unknown: m.unknown_peers,"
    "    regions: m.cells.length };"
    "  for (const k in want) if (t(k) !== String(want[k])) return k + ': ' + t(k);"
    "  const marks = document.querySelectorAll('#cells circle');"
    "  if (marks.length !== m.cells.length) return marks.length + ' marks';"
    "  for (let i = 0; i < marks.length; i++)"
    "    if (marks[i].getAttribute('cx') !== String(m.cells[i].lon) ||"
    "        marks[i].getAttribute('cy') !== String(-m.cells[i].lat)) return 'mark ' + i;"
    "  return '';"
    "}";

/* Hostile strings the peers choose: ids, a network name, content keys. */
static const char EVIL_ID[] = "<script>window.pwned=1</script>";
static const char EVIL_NET[] = "<img src=x onerror=window.pwned=2>";
static const char EVIL_KEY[] = "<img src=x onerror=window.pwned=3>";
static const char EVIL_KEY2[] = "<script>window.pwned=4</script>";

static bool join(ws_client *c, const char *proxied, const char *id, const char *net)
{
    uint8_t pre[52];
    wsc_opts o = { .port = h_relay.port, .src = proxied ? "127.0.0.2" : NULL, .timeout_ms = WAIT };
    char reg[1024];
    if (proxied) {
        o.preface = pre;
        o.preface_len = h_proxy_v2(pre, proxied, 40000);
    }
    if (!wsc_connect(c, &o))
        return false;
    h_register_json(reg, sizeof reg, id, net, "[\"[::]:9444\"]");
    return wsc_send_text(c, reg) && wsc_recv_type(c, "register_ack", WAIT) == WSC_OK &&
           strstr((const char *)c->msg, "\"success\":true");
}

/* A child process that answers every RLY-009 question on the peers' connections until it is
 * stopped, so the DHT view stays filled while the browser looks at it. */
static pid_t answer_in_background(ws_client *peers, size_t n, browser *b)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    close(b->to);     /* the browser driver must see its input end when the test closes it */
    close(b->from);
    char answer[512];
    for (;;) {
        for (size_t i = 0; i < n; i++) {
            if (wsc_recv_msg(&peers[i], 20) != WSC_OK || !hj_is_type((const char *)peers[i].msg, "get_dht_records"))
                continue;
            snprintf(answer, sizeof answer,
                     "{\"type\":\"dht_records\",\"records\":[{\"content_key\":\"%s\",\"providers\":%zu},"
                     "{\"content_key\":\"%s\",\"providers\":1},{\"content_key\":\"c0ffee\",\"providers\":7}],"
                     "\"total_keys\":3,\"truncated\":false}",
                     i == 0 ? "\\u003cimg src=x onerror=window.pwned=3\\u003e" : "k-shared", i + 2,
                     EVIL_KEY2);
            wsc_send_text(&peers[i], answer);
        }
        if (getppid() == 1)
            _exit(0);
    }
}

static void test_pages_in_chromium(void)
{
    browser b;
    char out[1024];
    BROWSER_OPEN_OR_SKIP(&b);
    bool geoip = relay_built_in("geoip");
    static const mmdb_entry entries[] = { { "81.2.69.0/24", 51.5142, -0.0931 },
                                          { "2a02:6b8::/32", 55.7522, 37.6156 } };
    char db[sizeof MMDB_TEMP_PATH];
    REQUIRE(mmdb_write_temp(db, entries, 2));
    const char *const args[] = { "--dht-sweep-interval-secs", "1", "--trusted-proxy-cidrs", "127.0.0.2",
                                 "--geoip-db", db, NULL };
    REQUIRE(h_start(args));
    REQUIRE(browser_viewport(&b, 1280, 900, false));

    /* Nobody registered yet: the empty state. */
    REQUIRE(browser_goto(&b, page("/")));
    CHECK(browser_wait(&b, "document.body.dataset.state === 'empty'", SLOW));
    CHECK(browser_screenshot(&b, "dashboard-empty.png"));

    /* Three peers (one with a hostile id on a hostile network), traffic, a hole punch. */
    ws_client p[3];
    char a_id[65], b_id[65];
    memset(a_id, 'a', 64), a_id[64] = 0;
    memset(b_id, 'b', 64), b_id[64] = 0;
    REQUIRE(join(&p[0], NULL, EVIL_ID, EVIL_NET));
    REQUIRE(join(&p[1], "81.2.69.142", a_id, "alpha"));
    REQUIRE(join(&p[2], "2a02:6b8::1", b_id, "alpha"));
    CHECK(wsc_sendf(&p[1], "{\"type\":\"relay_message\",\"from\":\"%s\",\"to\":\"%s\",\"payload\":[1,2,3],\"seq\":1}",
                    a_id, b_id));
    CHECK(wsc_sendf(&p[1], "{\"type\":\"hole_punch_request\",\"peer_id\":\"%s\",\"target_peer_id\":\"%s\","
                           "\"external_addr\":\"81.2.69.142:9444\"}", a_id, b_id));
    CHECK(wsc_sendf(&p[2], "{\"type\":\"hole_punch_result\",\"peer_id\":\"%s\",\"success\":true}", a_id));
    CHECK(wsc_recv_type(&p[1], "hole_punch_result", WAIT) == WSC_OK);
    pid_t answerer = answer_in_background(p, 3, &b);
    REQUIRE(answerer > 0);

    /* The dashboard, wide: what it shows is /stats.json, the hostile strings as text. */
    REQUIRE(browser_goto(&b, page("/")));
    CHECK(browser_wait(&b, "document.body.dataset.state === 'success'", SLOW));
    CHECK(browser_wait(&b, "document.getElementById('cluster-card').hidden", 100));  /* not in a cluster */
    CHECK(page_matches(&b, "/stats.json", STATS_CHECK));
    CHECK(browser_wait(&b, NOTHING_RAN, 100));
    CHECK(browser_eval_str(&b, "document.querySelector('#peers tbody tr td').textContent", out, sizeof out));
    CHECK_EQ_STR(out, "<script>wind\xE2\x80\xA6");
    CHECK(browser_eval_str(&b, "document.querySelector('#networks tbody tr td').textContent", out, sizeof out));
    CHECK_EQ_STR(out, EVIL_NET);
    CHECK(browser_screenshot(&b, "dashboard.png"));

    /* ?full=1 shows whole ids, still as text. */
    REQUIRE(browser_goto(&b, page("/?full=1")));
    CHECK(browser_wait(&b, "document.body.dataset.state === 'success'", SLOW));
    CHECK(page_matches(&b, "/stats.json?full=1", STATS_CHECK));
    CHECK(browser_eval_str(&b, "document.querySelector('#peers tbody tr td').textContent", out, sizeof out));
    CHECK_EQ_STR(out, EVIL_ID);
    CHECK(browser_wait(&b, NOTHING_RAN, 100));

    /* A phone: readable without scrolling sideways (tables scroll inside their own box). */
    REQUIRE(browser_viewport(&b, 375, 800, true));
    REQUIRE(browser_goto(&b, page("/")));
    CHECK(browser_wait(&b, "document.body.dataset.state === 'success'", SLOW));
    CHECK(browser_wait(&b, "document.documentElement.scrollWidth <= window.innerWidth", 2000));
    CHECK(browser_screenshot(&b, "dashboard-phone.png"));
    REQUIRE(browser_viewport(&b, 1280, 900, false));

    /* The DHT view, once a sweep has all three answers: rows as /dht.json, keys as text. */
    REQUIRE(browser_goto(&b, page("/dht")));
    CHECK(browser_wait(&b, "document.body.dataset.state === 'success'", SLOW));
    CHECK(page_matches(&b, "/dht.json", DHT_CHECK));
    CHECK(browser_eval(&b, "[...document.querySelectorAll('#table tbody td.id')].map((c) => c.textContent)"
                           ".filter((k) => k.startsWith('<')).sort()", out, sizeof out));
    char want_keys[256];
    snprintf(want_keys, sizeof want_keys, "[\"%s\", \"%s\"]", EVIL_KEY, EVIL_KEY2);
    CHECK_EQ_STR(out, want_keys);
    CHECK(browser_wait(&b, NOTHING_RAN, 100));
    CHECK(browser_screenshot(&b, "dht.png"));

    /* The map: two peers placed (London and Moscow cells), the hostile one unknown at loopback. */
    REQUIRE(browser_goto(&b, page("/map")));
    if (geoip) {
        CHECK(browser_wait(&b, "document.body.dataset.state === 'success'", SLOW));
        CHECK(page_matches(&b, "/map.json", MAP_CHECK));
        CHECK(browser_eval(&b, "[document.getElementById('located').textContent, "
                               "document.querySelectorAll('#cells circle').length]", out, sizeof out));
        CHECK_EQ_STR(out, "[\"2\", 2]");
    } else {
        printf("  (geoip not built in: the map shows its empty state)\n");
        CHECK(browser_wait(&b, "document.body.dataset.state === 'empty'", SLOW));
    }
    CHECK(browser_screenshot(&b, "map.png"));

    /* The relay goes away: the error state, the last numbers kept under it. */
    REQUIRE(browser_goto(&b, page("/")));
    CHECK(browser_wait(&b, "document.body.dataset.state === 'success'", SLOW));
    kill(answerer, SIGTERM);
    waitpid(answerer, NULL, 0);
    for (int i = 0; i < 3; i++)
        wsc_close(&p[i]);
    STOP_OK();
    CHECK(browser_wait(&b, "document.body.dataset.state === 'error'", SLOW));
    CHECK(browser_eval_str(&b, "getComputedStyle(document.querySelector('.banner.error')).display + '|' + "
                               "document.getElementById('error-text').textContent.slice(0, 22) + '|' + "
                               "document.getElementById('active').textContent", out, sizeof out));
    CHECK_EQ_STR(out, "block|Cannot reach the relay|3");
    CHECK(browser_screenshot(&b, "dashboard-error.png"));
    browser_close(&b);
    unlink(db);
}

int main(void)
{
    T(test_pages_in_chromium);
    return test_finish();
}
