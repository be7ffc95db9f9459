/* WebRTC through our TURN in headless Chromium (the shared tests/browser.[ch] helper): the test
 * fetches credentials over the relay wire as a node would (get_turn_credentials), then a page
 * makes two RTCPeerConnections with iceTransportPolicy "relay" and our relay as the only ICE
 * server, and a data channel carries messages both ways: relay candidates only, so every byte
 * went through two allocations of ours. Once with the UDP URI, once with the TCP one. */
#include "json.h"
#include "tests/browser.h"
#include "tests/harness.h"
#include "tests/test.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define WAIT 5000u

/* The page's work, as one expression the helper awaits: two peers, relay-only ICE through the
 * given server, a data channel, two messages out and two echoes back, and the type of the
 * candidates the connection settled on. The %.*s are the JSON texts of the URI, username and
 * password. */
static const char script[] =
    "(async () => {"
    "  const cfg = {iceServers: [{urls: [%.*s], username: %.*s, credential: %.*s}],"
    "               iceTransportPolicy: 'relay'};"
    "  const a = new RTCPeerConnection(cfg), b = new RTCPeerConnection(cfg);"
    "  const kinds = new Set();"
    "  a.onicecandidate = e => { if (e.candidate) { kinds.add(e.candidate.type); b.addIceCandidate(e.candidate); } };"
    "  b.onicecandidate = e => { if (e.candidate) { kinds.add(e.candidate.type); a.addIceCandidate(e.candidate); } };"
    "  const got = {a: [], b: []};"
    "  b.ondatachannel = e => { const c = e.channel;"
    "    c.onmessage = m => { got.b.push(m.data); c.send('echo ' + m.data); }; };"
    "  const ch = a.createDataChannel('dig');"
    "  ch.onmessage = m => got.a.push(m.data);"
    "  const opened = new Promise((ok, fail) => { ch.onopen = ok;"
    "    setTimeout(() => fail(new Error('no data channel: ICE ' + a.iceConnectionState)), 20000); });"
    "  await a.setLocalDescription(await a.createOffer());"
    "  await b.setRemoteDescription(a.localDescription);"
    "  await b.setLocalDescription(await b.createAnswer());"
    "  await a.setRemoteDescription(b.localDescription);"
    "  await opened;"
    "  ch.send('hello'); ch.send('from a');"
    "  await new Promise((ok, fail) => { const t = setInterval(() => { if (got.a.length >= 2) {"
    "    clearInterval(t); ok(); } }, 20); setTimeout(() => fail(new Error('no echo')), 10000); });"
    "  const stats = await a.getStats(); let pair = null, local = null, remote = null;"
    "  stats.forEach(s => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId); });"
    "  if (pair) { local = stats.get(pair.localCandidateId).candidateType;"
    "              remote = stats.get(pair.remoteCandidateId).candidateType; }"
    "  a.close(); b.close();"
    "  return JSON.stringify({a: got.a, b: got.b, kinds: [...kinds].sort(), local, remote});"
    "})()";

static const char expected[] =
    "{\"a\":[\"echo hello\",\"echo from a\"],\"b\":[\"hello\",\"from a\"],\"kinds\":[\"relay\"],"
    "\"local\":\"relay\",\"remote\":\"relay\"}";

/* Registers a node and asks the relay for TURN credentials. */
static bool fetch_credentials(char *username, char *password, char *udp_uri, char *tcp_uri, size_t cap)
{
    ws_client c;
    const char *v;
    size_t vl;
    bool ok = wsc_connect_register(&c, h_relay.port, "browser-node", "DIG_MAINNET") &&
              wsc_send_text(&c, "{\"type\":\"get_turn_credentials\"}") &&
              wsc_recv_type(&c, "turn_credentials", WAIT) == WSC_OK &&
              hj_get_str((const char *)c.msg, "username", username, cap) &&
              hj_get_str((const char *)c.msg, "password", password, cap) &&
              hj_get((const char *)c.msg, "uris", &v, &vl);
    if (ok) {
        /* ["turn:...udp","turn:...tcp"] */
        const char *second = memchr(v, ',', vl);
        ok = second && sscanf(v, "[\"%255[^\"]\"", udp_uri) == 1 && sscanf(second, ",\"%255[^\"]\"", tcp_uri) == 1;
    }
    wsc_close(&c);
    return ok;
}

static void quoted(json_writer *w, const char *s) { jw_string(w, s, strlen(s)); }

static void test_data_channel_through_our_turn(void)
{
    browser b;
    char why[256], dir[64], secret[128], tcp_listen[32];
    char username[256], password[256], udp_uri[256], tcp_uri[256];
    static char expr[8192], out[4096];

    if (!browser_open(&b, why, sizeof why)) {
        if (strcmp(why, "chromium not installed") == 0)
            SKIP("chromium not installed");
        printf("  %s\n", why);
        REQUIRE(0);
    }
    snprintf(dir, sizeof dir, "/tmp/dig-turn-browser.XXXXXX");
    REQUIRE(mkdtemp(dir));
    snprintf(secret, sizeof secret, "%s/secret", dir);
    FILE *f = fopen(secret, "w");
    REQUIRE(f);
    fputs("browser-secret\n", f);
    fclose(f);
    chmod(secret, 0600);
    snprintf(tcp_listen, sizeof tcp_listen, "127.0.0.1:%u", h_free_port("tcp4"));
    /* Both peers' relayed addresses are on 127.0.0.1, which TURN refuses unless told. */
    const char *const args[] = { "--turn", "--turn-public-ip", "127.0.0.1", "--turn-secret-file", secret,
                                 "--turn-tcp-listen", tcp_listen, "--turn-allow-loopback-peers", NULL };
    REQUIRE(h_start(args));
    REQUIRE(fetch_credentials(username, password, udp_uri, tcp_uri, sizeof username));

    const char *uris[2] = { udp_uri, tcp_uri };
    for (int i = 0; i < 2; i++) {
        json_writer u, n, p;
        jw_init(&u, 0, 1024);
        jw_init(&n, 0, 1024);
        jw_init(&p, 0, 1024);
        quoted(&u, uris[i]);
        quoted(&n, username);
        quoted(&p, password);
        snprintf(expr, sizeof expr, script, (int)u.len, u.p, (int)n.len, n.p, (int)p.len, p.p);
        jw_free(&u);
        jw_free(&n);
        jw_free(&p);
        REQUIRE(browser_goto(&b, "about:blank"));
        bool ok = browser_eval_str(&b, expr, out, sizeof out);
        if (!ok || strcmp(out, expected) != 0)
            printf("  through %s: %s\n", uris[i], ok ? out : b.answer);
        CHECK(ok && strcmp(out, expected) == 0);
    }
    browser_close(&b);
    STOP_OK();
    char rm[96];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    const char *const clean[] = { "/bin/sh", "-c", rm, NULL };
    h_run(clean, NULL, NULL, 0, NULL, 0, 10000);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    T(test_data_channel_through_our_turn);
    return test_finish();
}
