/* dig-relay.1 documents what the binary accepts: every flag and every variable that --help
 * lists, every subcommand, and mandoc -Tlint finds nothing to say about it. A flag added to
 * config.c without its man page entry fails here. */
#include "test.h"
#include "harness.h"

#include "config.h"

#include <stdlib.h>

static char *page;

static void test_every_flag_and_variable(void)
{
    const char *u = config_usage();
    char want[96];
    REQUIRE(page != NULL);
    for (const char *p = strstr(u, "--"); p != NULL; p = strstr(p + 2, "--")) {
        size_t n = strspn(p + 2, "abcdefghijklmnopqrstuvwxyz-");
        if (n == 0)
            continue;
        snprintf(want, sizeof want, "Fl \\-%.*s", (int)n, p + 2);
        if (strstr(page, want) == NULL) {
            printf("  dig-relay.1 lacks \"%s\"\n", want);
            test_cur_failed = 1;
        }
    }
    for (const char *p = strstr(u, "DIG_RELAY_"); p != NULL; p = strstr(p + 1, "DIG_RELAY_")) {
        size_t n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_");
        snprintf(want, sizeof want, "Ev %.*s", (int)n, p);
        if (strstr(page, want) == NULL) {
            printf("  dig-relay.1 lacks \"%s\"\n", want);
            test_cur_failed = 1;
        }
    }
    static const char *const words[] = {
        "Cm serve", "Cm status", "Cm install", "Cm uninstall", "Cm start", "Cm stop",
        "Cm probe", "Cm run-service", "Ev RUST_LOG", "Ev DIG_RELAY_SERVICE_ROOT",
        ".Sh EXIT STATUS", ".Sh FILES", "dignetwork-dig-relay.service",
        "net.dignetwork.dig-relay.plist"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (strstr(page, words[i]) == NULL) {
            printf("  dig-relay.1 lacks \"%s\"\n", words[i]);
            test_cur_failed = 1;
        }
    }
}

static void test_mandoc_lint(void)
{
    char out[4096], err[4096];
    const char *const which[] = {"/bin/sh", "-c", "command -v mandoc", NULL};
    if (h_run(which, NULL, out, sizeof out, NULL, 0, 5000) != 0)
        SKIP("mandoc not installed");
    const char *const argv[] = {"/bin/sh", "-c", "mandoc -Tlint dig-relay.1 2>&1 | "
                                "grep -v 'outdated mandoc.db'", NULL};
    h_run(argv, NULL, out, sizeof out, err, sizeof err, 30000);
    if (out[0] != '\0')
        printf("  mandoc -Tlint:\n%s", out);
    CHECK_EQ_STR(out, "");
}

/* make install puts the binary and the page where PREFIX and DESTDIR say, and the installed
 * binary runs. */
static void test_make_install(void)
{
    char dir[] = "/tmp/dig-install.XXXXXX", cmd[512], out[4096];
    REQUIRE(mkdtemp(dir) != NULL);
    snprintf(cmd, sizeof cmd,
             "make -s install DESTDIR=%s PREFIX=/opt/dig >/dev/null && "
             "cmp dig-relay.1 %s/opt/dig/share/man/man1/dig-relay.1 && "
             "%s/opt/dig/bin/dig-relay --version; rc=$?; rm -rf %s; exit $rc",
             dir, dir, dir, dir);
    const char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
    CHECK_EQ_INT(h_run(argv, NULL, out, sizeof out, NULL, 0, 120000), 0);
    CHECK(strncmp(out, "dig-relay ", 10) == 0);
}

int main(void)
{
    page = h_read_text("dig-relay.1");
    RUN(test_every_flag_and_variable);
    RUN(test_mandoc_lint);
    RUN(test_make_install);
    free(page);
    return test_finish();
}
