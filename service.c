/* OS-service decisions, unit and plist text and operation outcomes (see service.h). Messages and
 * JSON fields are the reference server's, so the DIG installer reads either binary's output the
 * same way; JSON objects list their keys in sorted order because that is how the reference's
 * serde_json writes them. Nothing here touches the system: every call into a service manager
 * goes through the svc_manager table. */
#include "service.h"
#include "svc_os.h"

#include "compat/compat.h"
#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *svc_scope_name(enum svc_scope s) { return s == SVC_SYSTEM ? "system" : "user"; }

static enum svc_scope other_scope(enum svc_scope s) { return s == SVC_SYSTEM ? SVC_USER : SVC_SYSTEM; }

/* snprintf that appends to what buf already holds. */
COMPAT_PRINTF(3, 4)
static void append(char *buf, size_t cap, const char *fmt, ...)
{
    size_t used = strlen(buf);
    if (used + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, cap - used, fmt, ap);
    va_end(ap);
}

/* ---- scopes ----------------------------------------------------------------------------------- */

enum svc_scope svc_resolve_scope(enum config_scope choice, bool os_supports_user, bool is_root)
{
    if (!os_supports_user)
        return SVC_SYSTEM;
    switch (choice) {
    case SCOPE_SYSTEM:
        return SVC_SYSTEM;
    case SCOPE_USER:
        return SVC_USER;
    case SCOPE_AUTO:
        break;
    }
    return is_root ? SVC_SYSTEM : SVC_USER;
}

bool svc_privilege_ok(enum svc_scope scope, bool os_supports_user, bool is_root, char *err,
                      size_t errlen)
{
    if (!os_supports_user || scope == SVC_USER || is_root)
        return true;
    snprintf(err, errlen,
             "dig-relay: registering a system-level (machine-wide, boot-started) service requires "
             "root. Re-run with `sudo dig-relay install --scope system`, or install at user scope "
             "(`--scope user`) \xe2\x80\x94 noting that a user-scope service only starts with your "
             "login session and so may not come back after a reboot on a headless host.");
    return false;
}

size_t svc_uninstall_scopes(enum config_scope choice, bool os_supports_user, bool is_root,
                            enum svc_scope out[2])
{
    out[0] = svc_resolve_scope(choice, os_supports_user, is_root);
    if (!os_supports_user || choice != SCOPE_AUTO)
        return 1;
    out[1] = other_scope(out[0]);
    return 2;
}

/* ---- probes ----------------------------------------------------------------------------------- */

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay != '\0'; hay++) {
        size_t i = 0;
        while (i < n && hay[i] != '\0') {
            char c = hay[i];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            if (c != needle[i])
                break;
            i++;
        }
        if (i == n)
            return true;
    }
    return false;
}

/* The tool's first non-empty line, trimmed and cut at 200 bytes. */
static void first_line(const char *text, char *out, size_t cap)
{
    const char *p = text ? text : "";
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (*p == '\0') {
            snprintf(out, cap, "(no output)");
            return;
        }
        const char *end = p;
        while (*end != '\0' && *end != '\n')
            end++;
        const char *last = end;
        while (last > p && (last[-1] == ' ' || last[-1] == '\t' || last[-1] == '\r'))
            last--;
        size_t n = (size_t)(last - p);
        if (n > 200)
            n = 200;
        snprintf(out, cap, "%.*s", (int)n, p);
        return;
    }
}

static void describe_exit(int code, char *out, size_t cap)
{
    if (code < 0)
        snprintf(out, cap, "no exit code (terminated by signal)");
    else
        snprintf(out, cap, "code %d", code);
}

void svc_classify_systemctl(bool succeeded, const char *stderr_text, svc_probe *out)
{
    char line[256];
    out->reason[0] = '\0';
    if (succeeded) {
        out->state = SVC_PRESENT;
        return;
    }
    if (contains_nocase(stderr_text, "no files found for") ||
        contains_nocase(stderr_text, "could not be found")) {
        out->state = SVC_ABSENT;
        return;
    }
    first_line(stderr_text, line, sizeof line);
    out->state = SVC_UNKNOWN;
    snprintf(out->reason, sizeof out->reason,
             "`systemctl cat` failed without reporting the unit absent: %s", line);
}

void svc_classify_launchctl(bool succeeded, int exit_code, const char *stderr_text, svc_probe *out)
{
    char line[256], code[64];
    out->reason[0] = '\0';
    if (succeeded) {
        out->state = SVC_PRESENT;
        return;
    }
    if (exit_code == 113 || contains_nocase(stderr_text, "could not find service") ||
        contains_nocase(stderr_text, "no such process") ||
        contains_nocase(stderr_text, "no such file")) {
        out->state = SVC_ABSENT;
        return;
    }
    first_line(stderr_text, line, sizeof line);
    describe_exit(exit_code, code, sizeof code);
    out->state = SVC_UNKNOWN;
    snprintf(out->reason, sizeof out->reason,
             "`launchctl print` exited with %s without reporting the service absent: %s", code,
             line);
}

void svc_classify_sc(bool succeeded, int code, svc_probe *out)
{
    char text[64];
    out->reason[0] = '\0';
    if (succeeded) {
        out->state = SVC_PRESENT;
        return;
    }
    if (code == 1060) {
        out->state = SVC_ABSENT;
        return;
    }
    describe_exit(code, text, sizeof text);
    out->state = SVC_UNKNOWN;
    snprintf(out->reason, sizeof out->reason,
             "`sc query` exited with %s (1060 would mean the service does not exist)", text);
}

void svc_probe_unavailable(const char *tool, const char *why, svc_probe *out)
{
    out->state = SVC_UNKNOWN;
    snprintf(out->reason, sizeof out->reason, "could not run `%s`: %s", tool, why);
}

/* ---- plan, unit and plist --------------------------------------------------------------------- */

void svc_plan_env(svc_plan *p, const relay_config *c)
{
    const char *name, *value;
    p->n_env = 0;
    for (size_t i = 0; config_persisted_var(c, i, &name, &value); i++) {
        if (name != NULL && p->n_env < SVC_MAX_ENV) {
            p->env_name[p->n_env] = name;
            p->env_value[p->n_env] = value;
            p->n_env++;
        }
    }
}

static bool has_control(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* A value that no unit or plist line can carry faithfully is refused, naming it. */
static bool plan_writable(const svc_plan *p, char *err, size_t errlen)
{
    if (has_control(p->program)) {
        snprintf(err, errlen, "dig-relay: the program path contains control characters");
        return false;
    }
    for (size_t i = 0; i < p->n_env; i++) {
        if (has_control(p->env_value[i])) {
            snprintf(err, errlen,
                     "dig-relay: the value of %s contains control characters and cannot be "
                     "written into a service definition",
                     p->env_name[i]);
            return false;
        }
    }
    return true;
}

/* systemd quoting inside "...": backslash and quote escaped; '%' doubled (specifiers) and, for
 * command lines, '$' doubled (variable expansion). */
static void systemd_quoted(char *out, size_t cap, const char *s, bool command)
{
    append(out, cap, "\"");
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '"')
            append(out, cap, "\\%c", *s);
        else if (*s == '%')
            append(out, cap, "%%%%");
        else if (*s == '$' && command)
            append(out, cap, "$$");
        else
            append(out, cap, "%c", *s);
    }
    append(out, cap, "\"");
}

static size_t finish_text(char *out, size_t cap, char *err, size_t errlen)
{
    size_t n = strlen(out);
    if (n + 1 >= cap) {
        snprintf(err, errlen, "dig-relay: the service definition does not fit in %zu bytes", cap);
        return 0;
    }
    return n;
}

size_t svc_systemd_unit(const svc_plan *p, enum svc_scope scope, char *out, size_t cap, char *err,
                        size_t errlen)
{
    if (cap == 0 || !plan_writable(p, err, errlen))
        return 0;
    out[0] = '\0';
    append(out, cap,
           "# Installed by 'dig-relay install'; 'dig-relay uninstall' removes it.\n"
           "[Unit]\n"
           "Description=DIG Network relay (rendezvous, circuit relay and STUN)\n"
           "Documentation=man:dig-relay(1)\n"
           "After=network-online.target\n"
           "Wants=network-online.target\n"
           "\n"
           "[Service]\n"
           "Type=simple\n"
           "ExecStart=");
    systemd_quoted(out, cap, p->program, true);
    append(out, cap, " %s\n", p->entry);
    /* A DynamicUser service is not root, so the relay's own default state directory would be
     * a home it cannot write: point it at StateDirectory= (%S is /var/lib). A --state-dir given
     * to install comes later and wins. */
    if (scope == SVC_SYSTEM)
        append(out, cap, "Environment=DIG_RELAY_STATE_DIR=%%S/dig-relay\n");
    for (size_t i = 0; i < p->n_env; i++) {
        char pair[1024];
        snprintf(pair, sizeof pair, "%s=%s", p->env_name[i], p->env_value[i]);
        append(out, cap, "Environment=");
        systemd_quoted(out, cap, pair, false);
        append(out, cap, "\n");
    }
    /* SIGTERM is the relay's clean shutdown (every connection closed with 1001). */
    append(out, cap,
           "Restart=on-failure\n"
           "RestartSec=2\n"
           "TimeoutStopSec=10\n"
           "LimitNOFILE=65536\n"
           "UMask=0077\n"
           "NoNewPrivileges=yes\n"
           "CapabilityBoundingSet=\n"
           "AmbientCapabilities=\n"
           "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n"
           "RestrictRealtime=yes\n"
           "RestrictSUIDSGID=yes\n"
           "LockPersonality=yes\n"
           "MemoryDenyWriteExecute=yes\n"
           "SystemCallArchitectures=native\n"
           "SystemCallFilter=@system-service\n"
           "SystemCallFilter=~@privileged @resources\n"
           "SystemCallErrorNumber=EPERM\n");
    if (scope == SVC_SYSTEM) {
        /* Mount and user namespaces: only the system manager can set these up everywhere (a
         * user manager needs unprivileged user namespaces, which many hosts switch off). */
        append(out, cap,
               "DynamicUser=yes\n"
               "StateDirectory=dig-relay\n"
               "ProtectSystem=strict\n"
               "ProtectHome=read-only\n"
               "PrivateTmp=yes\n"
               "PrivateDevices=yes\n"
               "PrivateUsers=yes\n"
               "ProtectClock=yes\n"
               "ProtectHostname=yes\n"
               "ProtectKernelTunables=yes\n"
               "ProtectKernelModules=yes\n"
               "ProtectKernelLogs=yes\n"
               "ProtectControlGroups=yes\n"
               "ProtectProc=invisible\n"
               "ProcSubset=pid\n"
               "RestrictNamespaces=yes\n"
               "RemoveIPC=yes\n"
               "DevicePolicy=closed\n");
    }
    append(out, cap, "\n[Install]\nWantedBy=%s\n",
           scope == SVC_SYSTEM ? "multi-user.target" : "default.target");
    return finish_text(out, cap, err, errlen);
}

static void xml_text(char *out, size_t cap, const char *s)
{
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '&': append(out, cap, "&amp;"); break;
        case '<': append(out, cap, "&lt;"); break;
        case '>': append(out, cap, "&gt;"); break;
        default: append(out, cap, "%c", *s); break;
        }
    }
}

static void plist_string(char *out, size_t cap, const char *indent, const char *s)
{
    append(out, cap, "%s<string>", indent);
    xml_text(out, cap, s);
    append(out, cap, "</string>\n");
}

size_t svc_launchd_plist(const svc_plan *p, char *out, size_t cap, char *err, size_t errlen)
{
    if (cap == 0 || !plan_writable(p, err, errlen))
        return 0;
    out[0] = '\0';
    append(out, cap,
           "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
           "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
           "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
           "<plist version=\"1.0\">\n"
           "<dict>\n"
           "\t<key>Label</key>\n"
           "\t<string>" SVC_LABEL "</string>\n"
           "\t<key>ProgramArguments</key>\n"
           "\t<array>\n");
    plist_string(out, cap, "\t\t", p->program);
    plist_string(out, cap, "\t\t", p->entry);
    append(out, cap, "\t</array>\n");
    if (p->n_env > 0) {
        append(out, cap, "\t<key>EnvironmentVariables</key>\n\t<dict>\n");
        for (size_t i = 0; i < p->n_env; i++) {
            append(out, cap, "\t\t<key>");
            xml_text(out, cap, p->env_name[i]);
            append(out, cap, "</key>\n");
            plist_string(out, cap, "\t\t", p->env_value[i]);
        }
        append(out, cap, "\t</dict>\n");
    }
    /* Started at load and at boot; restarted only after a failure, so a stop stays stopped. */
    append(out, cap,
           "\t<key>RunAtLoad</key>\n"
           "\t<true/>\n"
           "\t<key>KeepAlive</key>\n"
           "\t<dict>\n"
           "\t\t<key>SuccessfulExit</key>\n"
           "\t\t<false/>\n"
           "\t</dict>\n"
           "\t<key>SoftResourceLimits</key>\n"
           "\t<dict>\n"
           "\t\t<key>NumberOfFiles</key>\n"
           "\t\t<integer>65536</integer>\n"
           "\t</dict>\n"
           "</dict>\n"
           "</plist>\n");
    return finish_text(out, cap, err, errlen);
}

/* ---- removal ---------------------------------------------------------------------------------- */

void svc_remove_registration(const svc_manager *m, enum svc_scope scope,
                             enum svc_removal_mode mode, svc_removal *out)
{
    svc_probe probe;
    char why[SVC_MSG_MAX];

    memset(out, 0, sizeof *out);
    out->scope = scope;
    m->probe(m->ctx, scope, &probe);
    out->found = probe.state == SVC_PRESENT;
    if (probe.state == SVC_UNKNOWN) {
        out->has_error = true;
        snprintf(out->error, sizeof out->error, "could not determine whether it is registered: %.900s",
                 probe.reason);
    }
    /* A sweep writes nothing it did not see; an unreadable scope stays indeterminate. */
    if (mode == SVC_SWEPT && !out->found) {
        out->indeterminate = probe.state == SVC_UNKNOWN;
        return;
    }
    /* Stop first so nothing keeps the relay's ports past the removal; its failure is moot. */
    m->stop(m->ctx, scope, why, sizeof why);
    if (m->remove(m->ctx, scope, why, sizeof why)) {
        out->removed = true;
        return;
    }
    /* A failed removal where the probe saw nothing is the plain "nothing here" case. */
    out->indeterminate = probe.state == SVC_UNKNOWN || out->found;
    out->has_error = true;
    snprintf(out->error, sizeof out->error, "%s", why);
}

static void removal_unreachable(enum svc_scope scope, enum svc_removal_mode mode, const char *why,
                                svc_removal *out)
{
    memset(out, 0, sizeof *out);
    out->scope = scope;
    out->indeterminate = mode == SVC_REQUESTED;
    out->has_error = true;
    snprintf(out->error, sizeof out->error, "%s", why);
}

static void jw_key(json_writer *w, const char *key, bool first)
{
    if (!first)
        jw_lit(w, ",");
    jw_string(w, key, strlen(key));
    jw_lit(w, ":");
}

static void jw_str(json_writer *w, const char *s) { jw_string(w, s, strlen(s)); }

static void removal_json(json_writer *w, const svc_removal *r)
{
    jw_lit(w, "{");
    jw_key(w, "error", true);
    if (r->has_error)
        jw_str(w, r->error);
    else
        jw_lit(w, "null");
    jw_key(w, "found", false);
    jw_bool(w, r->found);
    jw_key(w, "indeterminate", false);
    jw_bool(w, r->indeterminate);
    jw_key(w, "removed", false);
    jw_bool(w, r->removed);
    jw_key(w, "scope", false);
    jw_str(w, svc_scope_name(r->scope));
    jw_lit(w, "}");
}

static void fail(svc_outcome *out, const char *msg)
{
    out->ok = false;
    snprintf(out->summary, sizeof out->summary, "%s", msg);
    out->result[0] = '\0';
}

/* Ends a result document; a result too large for the outcome is an error, never truncated. */
static void finish_result(svc_outcome *out, json_writer *w)
{
    if (w->failed) {
        fail(out, "dig-relay: the result does not fit in the output buffer");
        return;
    }
    out->result[w->len] = '\0';
    out->ok = true;
}

/* ---- operations ------------------------------------------------------------------------------- */

void svc_install(const svc_manager *m, const svc_plan *plan, const relay_config *c,
                 enum config_scope choice, bool is_root, svc_outcome *out)
{
    char err[SVC_MSG_MAX];
    char listen[ADDR_STRLEN], health[ADDR_STRLEN];
    svc_removal migration;
    bool swept = false;

    if (!m->has_user_scope && !is_root) {
        fail(out, "dig-relay: installing a Windows service requires an elevated (Administrator) "
                  "console. Re-run this in a terminal opened with \"Run as administrator\".");
        return;
    }
    /* Every precondition is settled before the sweep of the other scope writes anything. */
    enum svc_scope scope = svc_resolve_scope(choice, m->has_user_scope, is_root);
    if (!svc_privilege_ok(scope, m->has_user_scope, is_root, err, sizeof err) ||
        !m->open(m->ctx, scope, err, sizeof err)) {
        fail(out, err);
        return;
    }
    if (m->has_user_scope && m->open(m->ctx, other_scope(scope), err, sizeof err)) {
        svc_remove_registration(m, other_scope(scope), SVC_SWEPT, &migration);
        swept = true;
    }
    if (!m->create(m->ctx, scope, plan, err, sizeof err)) {
        fail(out, err);
        return;
    }

    addr_format(&c->listen, listen);
    addr_format(&c->health_listen, health);
    out->summary[0] = '\0';
    append(out->summary, sizeof out->summary,
           "dig-relay: installed as a %s-level service \"" SVC_LABEL "\"\n"
           "  program: %s\n  relay:   ws://%s\n  health:  http://%s\n"
           "  Start it now with: dig-relay start",
           svc_scope_name(scope), plan->program, listen, health);
    if (swept && migration.removed) {
        append(out->summary, sizeof out->summary,
               "\n  migrated: removed the previous %s-level registration",
               svc_scope_name(migration.scope));
    } else if (swept && (migration.found || migration.indeterminate)) {
        append(out->summary, sizeof out->summary,
               "\n  WARNING: a %s-level registration may still exist and could also bind these "
               "ports (%s). Remove it with: dig-relay uninstall --scope %s",
               svc_scope_name(migration.scope),
               migration.has_error ? migration.error : "removal did not take effect",
               svc_scope_name(migration.scope));
    }

    json_writer w;
    jw_init_fixed(&w, out->result, sizeof out->result - 1);
    jw_lit(&w, "{");
    jw_key(&w, "health_listen", true);
    jw_str(&w, health);
    jw_key(&w, "installed", false);
    jw_bool(&w, true);
    jw_key(&w, "label", false);
    jw_str(&w, SVC_LABEL);
    jw_key(&w, "listen", false);
    jw_str(&w, listen);
    jw_key(&w, "migration", false);
    if (swept)
        removal_json(&w, &migration);
    else
        jw_lit(&w, "null");
    jw_key(&w, "program", false);
    jw_str(&w, plan->program);
    jw_key(&w, "registered", false);
    jw_bool(&w, true);
    jw_key(&w, "scope", false);
    jw_str(&w, svc_scope_name(scope));
    jw_key(&w, "started", false);
    jw_bool(&w, false);
    jw_lit(&w, "}");
    finish_result(out, &w);
}

void svc_uninstall_outcome(const svc_removal *r, size_t n, svc_outcome *out)
{
    char removed[64] = "", problems[SVC_MSG_MAX * 2] = "", scopes[64] = "", reasons[SVC_MSG_MAX * 2] = "";
    size_t n_removed = 0;

    for (size_t i = 0; i < n; i++) {
        const char *name = svc_scope_name(r[i].scope);
        append(scopes, sizeof scopes, "%s%s", i ? " or " : "", name);
        if (r[i].removed)
            append(removed, sizeof removed, "%s%s", n_removed++ ? ", " : "", name);
        if (r[i].indeterminate || (r[i].found && !r[i].removed))
            append(problems, sizeof problems, "%s%s scope: %s", problems[0] ? "; " : "", name,
                   r[i].has_error ? r[i].error : "removal did not take effect");
        if (r[i].has_error)
            append(reasons, sizeof reasons, "%s%s scope: %s", reasons[0] ? "; " : "", name,
                   r[i].error);
    }
    if (problems[0] != '\0') {
        out->ok = false;
        out->summary[0] = '\0';
        append(out->summary, sizeof out->summary,
               "dig-relay: could not fully uninstall service \"" SVC_LABEL "\" (%s%s). "
               "Unresolved: %s. Re-run elevated (e.g. `sudo dig-relay uninstall --scope system`) "
               "\xe2\x80\x94 a registration left behind will keep starting the relay.",
               n_removed ? "removed at: " : "nothing was removed", removed, problems);
        return;
    }
    if (n_removed == 0) {
        out->ok = false;
        out->summary[0] = '\0';
        append(out->summary, sizeof out->summary,
               "dig-relay: no service registration for \"" SVC_LABEL "\" was found at %s scope "
               "\xe2\x80\x94 nothing to uninstall.",
               scopes);
        if (reasons[0] != '\0')
            append(out->summary, sizeof out->summary, " (%s)", reasons);
        return;
    }

    char joined[64] = "";
    for (size_t i = 0, k = 0; i < n; i++)
        if (r[i].removed)
            append(joined, sizeof joined, "%s%s", k++ ? " + " : "", svc_scope_name(r[i].scope));
    snprintf(out->summary, sizeof out->summary,
             "dig-relay: uninstalled service \"" SVC_LABEL "\" at %s scope", joined);

    json_writer w;
    jw_init_fixed(&w, out->result, sizeof out->result - 1);
    jw_lit(&w, "{");
    jw_key(&w, "installed", true);
    jw_bool(&w, false);
    jw_key(&w, "label", false);
    jw_str(&w, SVC_LABEL);
    jw_key(&w, "registered", false);
    jw_bool(&w, false);
    jw_key(&w, "removed_scopes", false);
    jw_lit(&w, "[");
    for (size_t i = 0, k = 0; i < n; i++) {
        if (!r[i].removed)
            continue;
        if (k++)
            jw_lit(&w, ",");
        jw_str(&w, svc_scope_name(r[i].scope));
    }
    jw_lit(&w, "]");
    jw_key(&w, "scopes", false);
    jw_lit(&w, "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            jw_lit(&w, ",");
        removal_json(&w, &r[i]);
    }
    jw_lit(&w, "]}");
    finish_result(out, &w);
}

void svc_uninstall(const svc_manager *m, enum config_scope choice, bool is_root, svc_outcome *out)
{
    enum svc_scope scopes[2];
    svc_removal removals[2];
    char err[SVC_MSG_MAX];

    if (!m->has_user_scope && !is_root) {
        fail(out, "dig-relay: uninstalling a Windows service requires an elevated (Administrator) "
                  "console.");
        return;
    }
    size_t n = svc_uninstall_scopes(choice, m->has_user_scope, is_root, scopes);
    for (size_t i = 0; i < n; i++) {
        enum svc_removal_mode mode = i == 0 ? SVC_REQUESTED : SVC_SWEPT;
        if (m->open(m->ctx, scopes[i], err, sizeof err))
            svc_remove_registration(m, scopes[i], mode, &removals[i]);
        else
            removal_unreachable(scopes[i], mode, err, &removals[i]);
    }
    svc_uninstall_outcome(removals, n, out);
}

static void control(const svc_manager *m, enum config_scope choice, bool is_root, bool start,
                    svc_outcome *out)
{
    char err[SVC_MSG_MAX];
    enum svc_scope scope = svc_resolve_scope(choice, m->has_user_scope, is_root);
    if (!m->open(m->ctx, scope, err, sizeof err) ||
        !(start ? m->start : m->stop)(m->ctx, scope, err, sizeof err)) {
        fail(out, err);
        return;
    }
    snprintf(out->summary, sizeof out->summary, "dig-relay: %s requested for \"" SVC_LABEL "\"",
             start ? "start" : "stop");
    json_writer w;
    jw_init_fixed(&w, out->result, sizeof out->result - 1);
    jw_lit(&w, "{");
    jw_key(&w, "label", true);
    jw_str(&w, SVC_LABEL);
    jw_key(&w, "scope", false);
    jw_str(&w, svc_scope_name(scope));
    jw_key(&w, start ? "started" : "stopped", false);
    jw_bool(&w, true);
    jw_lit(&w, "}");
    finish_result(out, &w);
}

void svc_start(const svc_manager *m, enum config_scope choice, bool is_root, svc_outcome *out)
{
    control(m, choice, is_root, true, out);
}

void svc_stop(const svc_manager *m, enum config_scope choice, bool is_root, svc_outcome *out)
{
    control(m, choice, is_root, false, out);
}

/* ---- status ----------------------------------------------------------------------------------- */

void svc_loopback_probe_addr(const addr_t *health, addr_t *out)
{
    *out = *health;
    bool unspecified = true;
    size_t n = health->family == 4 ? 4 : 16;
    for (size_t i = 0; i < n; i++)
        unspecified = unspecified && health->ip[i] == 0;
    if (!unspecified)
        return;
    memset(out->ip, 0, sizeof out->ip);
    out->scope_id = 0;
    if (health->family == 4) {
        out->ip[0] = 127;
        out->ip[3] = 1;
    } else {
        out->ip[15] = 1;
    }
}

bool svc_is_2xx_status_line(const char *head, size_t len)
{
    size_t i = 0;
    if (len < 5 || memcmp(head, "HTTP/", 5) != 0)
        return false;
    while (i < len && head[i] != ' ' && head[i] != '\r' && head[i] != '\n')
        i++;
    while (i < len && head[i] == ' ')
        i++;
    unsigned code = 0, digits = 0;
    while (i < len && head[i] >= '0' && head[i] <= '9' && digits < 4) {
        code = code * 10 + (unsigned)(head[i] - '0');
        digits++;
        i++;
    }
    if (digits != 3 || (i < len && head[i] != ' ' && head[i] != '\r' && head[i] != '\n'))
        return false;
    return code >= 200 && code < 300;
}

void svc_status_outcome(const addr_t *health, bool serving, svc_outcome *out)
{
    char a[ADDR_STRLEN], url[ADDR_STRLEN + 16];
    addr_format(health, a);
    snprintf(url, sizeof url, "http://%s/health", a);
    if (serving)
        snprintf(out->summary, sizeof out->summary, "dig-relay: SERVING (health %s)", url);
    else
        snprintf(out->summary, sizeof out->summary,
                 "dig-relay: NOT responding at %s (the service may be stopped or not installed)",
                 url);
    json_writer w;
    jw_init_fixed(&w, out->result, sizeof out->result - 1);
    jw_lit(&w, "{");
    jw_key(&w, "health_url", true);
    jw_str(&w, url);
    jw_key(&w, "serving", false);
    jw_bool(&w, serving);
    jw_lit(&w, "}");
    finish_result(out, &w);
}

size_t svc_envelope(const svc_outcome *o, char *out, size_t cap)
{
    json_writer w;
    if (cap == 0)
        return 0;
    jw_init_fixed(&w, out, cap - 1);
    if (o->ok) {
        jw_lit(&w, "{\"ok\":true,\"result\":");
        jw_lit(&w, o->result);
        jw_lit(&w, "}");
    } else {
        jw_lit(&w, "{\"error\":{\"message\":");
        jw_str(&w, o->summary);
        jw_lit(&w, "},\"ok\":false}");
    }
    if (w.failed)
        return 0;
    out[w.len] = '\0';
    return w.len;
}

void svc_tool_message(const char *err, const char *out, const char *fallback, char *msg, size_t cap)
{
    const char *src = fallback;
    for (const char *cand[2] = {err, out}, **c = cand; c < cand + 2; c++) {
        const char *p = *c ? *c : "";
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (*p != '\0') {
            src = p;
            break;
        }
    }
    size_t n = strlen(src);
    while (n > 0 && (src[n - 1] == ' ' || src[n - 1] == '\t' || src[n - 1] == '\r' || src[n - 1] == '\n'))
        n--;
    snprintf(msg, cap, "%.*s", (int)n, src);
}
