/* Interop: the relay driven by a real third-party WebSocket client, Debian's python3-websockets
 * (tests/interop_client.py), over IPv4 and over IPv6 on a dual-stack listener. Uses
 * /usr/bin/python3 on purpose: the distribution's interpreter is the one python3-websockets
 * installs into. Skipped when that module is missing. */
#include "tests/harness.h"
#include "tests/test.h"

#include <signal.h>

#define PYTHON "/usr/bin/python3"
#define SCRIPT "tests/interop_client.py"


static bool websockets_installed(void)
{
    const char *const argv[] = { PYTHON, "-c", "import websockets", NULL };
    return h_run(argv, NULL, NULL, 0, NULL, 0, 10000) == 0;
}

static void run_interop(const char *listen_host, const char *url_host, const char *observed)
{
    if (!websockets_installed())
        SKIP("python3-websockets not installed");
    relay_opts o = { .listen_host = listen_host };
    REQUIRE(relay_start(&h_relay, &o));
    char url[96], out[4096], err[4096];
    snprintf(url, sizeof url, "ws://%s:%u", url_host, h_relay.port);
    const char *const argv[] = { PYTHON, SCRIPT, url, observed, NULL };
    int code = h_run(argv, NULL, out, sizeof out, err, sizeof err, 90000);
    if (code != 0 || !strstr(out, "interop ok")) {
        printf("  %s exited %d\n  stdout: %s\n  stderr: %.1500s\n", SCRIPT, code, out, err);
        relay_print_log(&h_relay, 3000);
    }
    CHECK_EQ_INT(code, 0);
    CHECK(strstr(out, "interop ok") != NULL);
    CHECK_EQ_INT(relay_stop(&h_relay, 5000), 0);
    relay_cleanup(&h_relay, test_cur_failed != 0);
}

static void test_python_websockets_ipv4(void)
{
    run_interop("127.0.0.1", "127.0.0.1", "127.0.0.1");
}

static void test_python_websockets_ipv6_on_dual_stack(void)
{
    run_interop("[::]", "[::1]", "[::1]");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN(test_python_websockets_ipv4);
    RUN(test_python_websockets_ipv6_on_dual_stack);
    return test_finish();
}
