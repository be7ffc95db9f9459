/* systemd as an svc_manager: the unit file in /etc/systemd/system (system scope) or
 * ~/.config/systemd/user (user scope), driven through `systemctl [--user]`: cat to probe,
 * daemon-reload and enable to install, disable to remove, start and stop. */
#include "svc_os.h"

#include "compat/os.h"

#include <stdio.h>
#include <string.h>

#define TOOL_TIMEOUT_MS 60000

bool svc_systemd_unit_path(const svc_paths *p, enum svc_scope scope, char *out, size_t cap)
{
    int n;
    if (scope == SVC_SYSTEM)
        n = snprintf(out, cap, "%s/etc/systemd/system/" SVC_SYSTEMD_UNIT, p->root);
    else if (p->xdg_config_home != NULL && p->xdg_config_home[0] == '/')
        n = snprintf(out, cap, "%s/systemd/user/" SVC_SYSTEMD_UNIT, p->xdg_config_home);
    else if (p->home != NULL && p->home[0] != '\0')
        n = snprintf(out, cap, "%s/.config/systemd/user/" SVC_SYSTEMD_UNIT, p->home);
    else
        return false;
    return n > 0 && (size_t)n < cap;
}

/* `systemctl [--user] <verb> <arg>`: true on exit 0, else false with its own words in msg. */
static bool systemctl(enum svc_scope scope, const char *verb, const char *arg, char *msg,
                      size_t cap, char *err_text, size_t err_cap, bool *ran)
{
    const char *argv[5];
    size_t n = 0;
    char out[1024], why[256], fallback[128];
    int code;
    argv[n++] = "systemctl";
    if (scope == SVC_USER)
        argv[n++] = "--user";
    argv[n++] = verb;
    if (arg != NULL)
        argv[n++] = arg;
    argv[n] = NULL;
    *ran = compat_run(argv, out, sizeof out, err_text, err_cap, &code, TOOL_TIMEOUT_MS, why,
                      sizeof why);
    if (!*ran) {
        snprintf(msg, cap, "could not run `systemctl`: %s", why);
        return false;
    }
    if (code == 0)
        return true;
    snprintf(fallback, sizeof fallback, "Failed to %s for %s", verb, arg ? arg : "the manager");
    svc_tool_message(err_text, out, fallback, msg, cap);
    return false;
}

static bool run(enum svc_scope scope, const char *verb, const char *arg, char *msg, size_t cap)
{
    char err_text[2048];
    bool ran;
    return systemctl(scope, verb, arg, msg, cap, err_text, sizeof err_text, &ran);
}

static bool sd_open(void *ctx, enum svc_scope scope, char *err, size_t errlen)
{
    char path[4096];
    if (svc_systemd_unit_path(ctx, scope, path, sizeof path))
        return true;
    snprintf(err, errlen,
             "dig-relay: cannot address the user-level systemd manager: HOME is not set, so "
             "there is no ~/.config/systemd/user");
    return false;
}

static void sd_probe(void *ctx, enum svc_scope scope, svc_probe *out)
{
    char msg[SVC_MSG_MAX], err_text[2048];
    bool ran;
    (void)ctx;
    bool ok = systemctl(scope, "cat", SVC_SYSTEMD_UNIT, msg, sizeof msg, err_text,
                        sizeof err_text, &ran);
    if (!ran)
        svc_probe_unavailable("systemctl", msg + strlen("could not run `systemctl`: "), out);
    else
        svc_classify_systemctl(ok, err_text, out);
}

static bool sd_create(void *ctx, enum svc_scope scope, const svc_plan *plan, char *err,
                      size_t errlen)
{
    char path[4096], dir[4096];
    static char unit[16384];
    if (!svc_systemd_unit_path(ctx, scope, path, sizeof path) ||
        svc_systemd_unit(plan, scope, unit, sizeof unit, err, errlen) == 0)
        return false;
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    return compat_mkdirs(dir, err, errlen) &&
           compat_write_file(path, unit, strlen(unit), err, errlen) &&
           run(scope, "daemon-reload", NULL, err, errlen) &&
           run(scope, "enable", SVC_SYSTEMD_UNIT, err, errlen);
}

static bool sd_remove(void *ctx, enum svc_scope scope, char *err, size_t errlen)
{
    char path[4096], ignored[SVC_MSG_MAX];
    if (!svc_systemd_unit_path(ctx, scope, path, sizeof path) ||
        !run(scope, "disable", SVC_SYSTEMD_UNIT, err, errlen) ||
        !compat_remove_file(path, err, errlen))
        return false;
    run(scope, "daemon-reload", NULL, ignored, sizeof ignored);   /* forget the removed unit */
    return true;
}

static bool sd_start(void *ctx, enum svc_scope scope, char *err, size_t errlen)
{
    (void)ctx;
    return run(scope, "start", SVC_SYSTEMD_UNIT, err, errlen);
}

static bool sd_stop(void *ctx, enum svc_scope scope, char *err, size_t errlen)
{
    (void)ctx;
    return run(scope, "stop", SVC_SYSTEMD_UNIT, err, errlen);
}

void svc_systemd_manager(svc_manager *m, const svc_paths *paths)
{
    *m = (svc_manager){
        .name = "systemd", .has_user_scope = true, .entry = "serve", .ctx = (void *)paths,
        .open = sd_open, .probe = sd_probe, .create = sd_create, .remove = sd_remove,
        .start = sd_start, .stop = sd_stop,
    };
}
