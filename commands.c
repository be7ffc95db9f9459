/* Runs the service subcommands, status and probe (see commands.h): fills the platform's service
 * manager from the environment (HOME, XDG_CONFIG_HOME, DIG_RELAY_SERVICE_ROOT), hands the
 * decisions to service.c and prints what it returns: the summary on stdout, or --json's
 * envelope; a failure is "dig-relay: error: ..." on stderr and exit status 1. */
#include "commands.h"

#include "client.h"
#include "compat/os.h"
#include "compat/win_service.h"
#include "probe.h"
#include "service.h"
#include "svc_os.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_TIMEOUT_MS 2000

/* GET /health over loopback (SPEC §2.2); any failure is "not serving", never an error. */
static bool health_answers(const addr_t *health)
{
    addr_t target;
    char err[256], text[ADDR_STRLEN], req[160], head[512];
    size_t len = 0;
    svc_loopback_probe_addr(health, &target);
    socket_t s = client_connect(&target, STATUS_TIMEOUT_MS, err, sizeof err);
    if (s == SOCKET_INVALID)
        return false;
    addr_format(&target, text);
    int n = snprintf(req, sizeof req, "GET /health HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     text);
    bool ok = client_send_all(s, req, (size_t)n, STATUS_TIMEOUT_MS);
    while (ok && len < sizeof head && memchr(head, '\n', len) == NULL) {
        long got = client_recv(s, head + len, sizeof head - len, STATUS_TIMEOUT_MS);
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    compat_close(s);
    return ok && svc_is_2xx_status_line(head, len);
}

static int print_outcome(const svc_outcome *o, bool json)
{
    static char envelope[SVC_RESULT_MAX + sizeof o->summary * 2];
    if (json) {
        if (svc_envelope(o, envelope, sizeof envelope) == 0) {
            fprintf(stderr, "dig-relay: error: the JSON answer does not fit\n");
            return 1;
        }
        puts(envelope);
    } else if (o->ok) {
        puts(o->summary);
    } else {
        fprintf(stderr, "dig-relay: error: %s\n", o->summary);
    }
    fflush(stdout);
    return o->ok ? 0 : 1;
}

static const char *env_or_null(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

int commands_run(const relay_config *c, const char *argv0)
{
    static svc_outcome out;
    svc_manager m;
    svc_paths paths;
    svc_plan plan;
    char program[4096];

    if (c->command == CMD_PROBE)
        return probe_run(c);
    if (c->command == CMD_STATUS) {
        char err[256];
        bool serving = compat_init(err, sizeof err) && health_answers(&c->health_listen);
        svc_status_outcome(&c->health_listen, serving, &out);
        int rc = print_outcome(&out, c->json);
        return rc == 0 && serving ? 0 : 1;
    }

    const char *root = env_or_null("DIG_RELAY_SERVICE_ROOT");
    paths.root = root != NULL && strcmp(root, "/") != 0 ? root : "";
    paths.home = env_or_null("HOME");
    paths.xdg_config_home = env_or_null("XDG_CONFIG_HOME");
    paths.uid = compat_uid();
    compat_service_manager(&m, &paths);
    bool is_root = compat_is_privileged();

    switch (c->command) {
    case CMD_INSTALL:
        if (!compat_exe_path(argv0, program, sizeof program)) {
            out.ok = false;
            snprintf(out.summary, sizeof out.summary, "dig-relay: cannot find this binary's path");
            break;
        }
        plan.program = program;
        plan.entry = m.entry;
        svc_plan_env(&plan, c);
        svc_install(&m, &plan, c, c->scope, is_root, &out);
        break;
    case CMD_UNINSTALL:
        svc_uninstall(&m, c->scope, is_root, &out);
        break;
    case CMD_START:
        svc_start(&m, c->scope, is_root, &out);
        break;
    default:
        svc_stop(&m, c->scope, is_root, &out);
        break;
    }
    return print_outcome(&out, c->json);
}
