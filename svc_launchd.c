/* launchd as an svc_manager: the plist in /Library/LaunchDaemons (system scope, domain
 * "system") or ~/Library/LaunchAgents (user scope, domain gui/<uid>), driven through
 * `launchctl`: print to probe, bootstrap to load, bootout to remove, kickstart to start and
 * kill SIGTERM to stop (the relay's clean shutdown; KeepAlive restarts only after a failure). */
#include "svc_os.h"

#include "compat/os.h"

#include <stdio.h>
#include <string.h>

#define TOOL_TIMEOUT_MS 60000

bool svc_launchd_plist_path(const svc_paths *p, enum svc_scope scope, char *out, size_t cap)
{
    int n;
    if (scope == SVC_SYSTEM)
        n = snprintf(out, cap, "%s/Library/LaunchDaemons/" SVC_LABEL ".plist", p->root);
    else if (p->home != NULL && p->home[0] != '\0')
        n = snprintf(out, cap, "%s/Library/LaunchAgents/" SVC_LABEL ".plist", p->home);
    else
        return false;
    return n > 0 && (size_t)n < cap;
}

static void domain(const svc_paths *p, enum svc_scope scope, bool with_label, char *out,
                   size_t cap)
{
    if (scope == SVC_SYSTEM)
        snprintf(out, cap, "system%s", with_label ? "/" SVC_LABEL : "");
    else
        snprintf(out, cap, "gui/%lu%s", p->uid, with_label ? "/" SVC_LABEL : "");
}

/* `launchctl <a> <b> [<c>]`: true on exit 0, else false with its own words in msg. */
static bool launchctl(const char *a, const char *b, const char *c, char *msg, size_t cap,
                      char *err_text, size_t err_cap, int *code, bool *ran)
{
    const char *argv[] = {"launchctl", a, b, c, NULL};
    char out[1024], why[256], fallback[128];
    *ran = compat_run(argv, out, sizeof out, err_text, err_cap, code, TOOL_TIMEOUT_MS, why,
                      sizeof why);
    if (!*ran) {
        snprintf(msg, cap, "could not run `launchctl`: %s", why);
        return false;
    }
    if (*code == 0)
        return true;
    snprintf(fallback, sizeof fallback, "launchctl %s failed with code %d", a, *code);
    svc_tool_message(err_text, out, fallback, msg, cap);
    return false;
}

static bool run(const char *a, const char *b, const char *c, char *msg, size_t cap)
{
    char err_text[2048];
    int code;
    bool ran;
    return launchctl(a, b, c, msg, cap, err_text, sizeof err_text, &code, &ran);
}

static bool ld_open(void *ctx, enum svc_scope scope, char *err, size_t errlen)
{
    char path[4096];
    if (svc_launchd_plist_path(ctx, scope, path, sizeof path))
        return true;
    snprintf(err, errlen,
             "dig-relay: cannot address the per-user launchd domain: HOME is not set, so there "
             "is no ~/Library/LaunchAgents");
    return false;
}

static void ld_probe(void *ctx, enum svc_scope scope, svc_probe *out)
{
    char target[128], msg[SVC_MSG_MAX], err_text[2048];
    int code;
    bool ran;
    domain(ctx, scope, true, target, sizeof target);
    bool ok = launchctl("print", target, NULL, msg, sizeof msg, err_text, sizeof err_text, &code,
                        &ran);
    if (!ran)
        svc_probe_unavailable("launchctl", msg + strlen("could not run `launchctl`: "), out);
    else
        svc_classify_launchctl(ok, code, err_text, out);
}

static bool ld_create(void *ctx, enum svc_scope scope, const svc_plan *plan, char *err,
                      size_t errlen)
{
    char path[4096], dir[4096], dom[64], target[128], ignored[SVC_MSG_MAX];
    static char plist[16384];
    if (!svc_launchd_plist_path(ctx, scope, path, sizeof path) ||
        svc_launchd_plist(plan, plist, sizeof plist, err, errlen) == 0)
        return false;
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    domain(ctx, scope, false, dom, sizeof dom);
    domain(ctx, scope, true, target, sizeof target);
    if (!compat_mkdirs(dir, err, errlen))
        return false;
    /* A loaded older definition would make bootstrap fail: unload it first (it may not be). */
    if (compat_file_exists(path))
        run("bootout", target, NULL, ignored, sizeof ignored);
    return compat_write_file(path, plist, strlen(plist), err, errlen) &&
           run("bootstrap", dom, path, err, errlen);
}

static bool ld_remove(void *ctx, enum svc_scope scope, char *err, size_t errlen)
{
    char path[4096], target[128], why[SVC_MSG_MAX];
    if (!svc_launchd_plist_path(ctx, scope, path, sizeof path))
        return false;
    domain(ctx, scope, true, target, sizeof target);
    /* Removed when launchd unloaded it or its plist was deleted; failing both, nothing was. */
    bool unloaded = run("bootout", target, NULL, why, sizeof why);
    bool deleted = compat_remove_file(path, err, errlen);
    if (unloaded || deleted)
        return true;
    snprintf(err, errlen, "%s", why);
    return false;
}

static bool ld_start(void *ctx, enum svc_scope scope, char *err, size_t errlen)
{
    char target[128];
    domain(ctx, scope, true, target, sizeof target);
    return run("kickstart", target, NULL, err, errlen);
}

static bool ld_stop(void *ctx, enum svc_scope scope, char *err, size_t errlen)
{
    char target[128];
    domain(ctx, scope, true, target, sizeof target);
    return run("kill", "SIGTERM", target, err, errlen);
}

void svc_launchd_manager(svc_manager *m, const svc_paths *paths)
{
    *m = (svc_manager){
        .name = "launchd", .has_user_scope = true, .entry = "serve", .ctx = (void *)paths,
        .open = ld_open, .probe = ld_probe, .create = ld_create, .remove = ld_remove,
        .start = ld_start, .stop = ld_stop,
    };
}
