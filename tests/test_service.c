/* The OS-service subcommands (SPEC §2.2, §9).
 *
 * Pure rules first: scope resolution, the privilege refusal, the three-valued probes, removal
 * policy and uninstall's verdict (through a recording svc_manager), unit and plist text, the
 * status probe's address and status line, and the JSON envelopes.
 *
 * Then the real thing against stand-ins for systemctl and launchctl (tests/service_standin.py,
 * which record every call and start the relay from the unit or plist dig-relay wrote), in a
 * temporary HOME and service root: the dig-relay binary installs, starts (status says serving),
 * stops, uninstalls, refuses a non-root system install before any call, and fails loudly when
 * the user manager cannot be reached. The generated unit also passes `systemd-analyze verify`. */
#include "test.h"
#include "harness.h"

#include "config.h"
#include "service.h"
#include "svc_os.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a recording manager ---------------------------------------------------------------------- */

typedef struct {
    enum svc_registration state[2];  /* what the probe answers, per scope */
    bool remove_ok[2], open_ok[2], create_ok;
    char calls[1024];
} mock;

static void mock_call(mock *m, const char *what, enum svc_scope s)
{
    strcat(m->calls, what);
    strcat(m->calls, s == SVC_SYSTEM ? "(system) " : "(user) ");
}

static bool m_open(void *ctx, enum svc_scope s, char *err, size_t n)
{
    mock *m = ctx;
    if (!m->open_ok[s])
        snprintf(err, n, "no manager at %s", svc_scope_name(s));
    return m->open_ok[s];
}
static void m_probe(void *ctx, enum svc_scope s, svc_probe *out)
{
    mock *m = ctx;
    mock_call(m, "probe", s);
    out->state = m->state[s];
    snprintf(out->reason, sizeof out->reason, "bus down");
}
static bool m_create(void *ctx, enum svc_scope s, const svc_plan *p, char *err, size_t n)
{
    mock *m = ctx;
    (void)p;
    mock_call(m, "create", s);
    if (!m->create_ok)
        snprintf(err, n, "create failed");
    return m->create_ok;
}
static bool m_remove(void *ctx, enum svc_scope s, char *err, size_t n)
{
    mock *m = ctx;
    mock_call(m, "remove", s);
    if (!m->remove_ok[s])
        snprintf(err, n, "remove failed");
    return m->remove_ok[s];
}
static bool m_start(void *ctx, enum svc_scope s, char *err, size_t n)
{
    (void)err;
    (void)n;
    mock_call(ctx, "start", s);
    return true;
}
static bool m_stop(void *ctx, enum svc_scope s, char *err, size_t n)
{
    (void)err;
    (void)n;
    mock_call(ctx, "stop", s);
    return true;
}

static svc_manager mock_manager(mock *m, bool has_user)
{
    memset(m, 0, sizeof *m);
    m->open_ok[0] = m->open_ok[1] = m->create_ok = true;
    m->remove_ok[0] = m->remove_ok[1] = true;
    m->state[0] = m->state[1] = SVC_ABSENT;
    return (svc_manager){"mock", has_user, "serve", m, m_open, m_probe, m_create, m_remove,
                         m_start, m_stop};
}

/* ---- pure rules ------------------------------------------------------------------------------- */

static void test_resolve_scope(void)
{
    /* Windows: always system, even for an explicit user choice. */
    CHECK_EQ_INT(svc_resolve_scope(SCOPE_USER, false, false), SVC_SYSTEM);
    CHECK_EQ_INT(svc_resolve_scope(SCOPE_AUTO, false, false), SVC_SYSTEM);
    /* An explicit choice is authoritative whatever the privilege. */
    CHECK_EQ_INT(svc_resolve_scope(SCOPE_SYSTEM, true, false), SVC_SYSTEM);
    CHECK_EQ_INT(svc_resolve_scope(SCOPE_USER, true, true), SVC_USER);
    /* auto follows privilege. */
    CHECK_EQ_INT(svc_resolve_scope(SCOPE_AUTO, true, true), SVC_SYSTEM);
    CHECK_EQ_INT(svc_resolve_scope(SCOPE_AUTO, true, false), SVC_USER);

    char err[SVC_MSG_MAX];
    CHECK(svc_privilege_ok(SVC_USER, true, false, err, sizeof err));
    CHECK(svc_privilege_ok(SVC_SYSTEM, true, true, err, sizeof err));
    CHECK(svc_privilege_ok(SVC_SYSTEM, false, false, err, sizeof err));
    CHECK(!svc_privilege_ok(SVC_SYSTEM, true, false, err, sizeof err));
    CHECK(strstr(err, "requires root") && strstr(err, "--scope user"));

    enum svc_scope s[2];
    CHECK_EQ_INT(svc_uninstall_scopes(SCOPE_AUTO, true, false, s), 2);
    CHECK(s[0] == SVC_USER && s[1] == SVC_SYSTEM);
    CHECK_EQ_INT(svc_uninstall_scopes(SCOPE_AUTO, true, true, s), 2);
    CHECK(s[0] == SVC_SYSTEM && s[1] == SVC_USER);
    CHECK_EQ_INT(svc_uninstall_scopes(SCOPE_SYSTEM, true, false, s), 1);
    CHECK_EQ_INT(s[0], SVC_SYSTEM);
    CHECK_EQ_INT(svc_uninstall_scopes(SCOPE_AUTO, false, true, s), 1);
}

static void test_probe_classification(void)
{
    svc_probe p;
    svc_classify_systemctl(true, "No files found for x", &p);
    CHECK_EQ_INT(p.state, SVC_PRESENT);   /* success is tested before any absence text */
    svc_classify_systemctl(false, "No files found for dignetwork-dig-relay.service.\n", &p);
    CHECK_EQ_INT(p.state, SVC_ABSENT);
    svc_classify_systemctl(false, "Unit X COULD NOT BE FOUND.", &p);
    CHECK_EQ_INT(p.state, SVC_ABSENT);
    svc_classify_systemctl(false, "\n  Failed to connect to bus: No medium found  \nmore", &p);
    CHECK_EQ_INT(p.state, SVC_UNKNOWN);
    CHECK_EQ_STR(p.reason, "`systemctl cat` failed without reporting the unit absent: "
                           "Failed to connect to bus: No medium found");
    svc_classify_systemctl(false, "", &p);
    CHECK_EQ_INT(p.state, SVC_UNKNOWN);
    CHECK(strstr(p.reason, "(no output)") != NULL);

    svc_classify_launchctl(false, 113, "", &p);
    CHECK_EQ_INT(p.state, SVC_ABSENT);
    svc_classify_launchctl(false, 3, "Boot-out failed: 3: No such process", &p);
    CHECK_EQ_INT(p.state, SVC_ABSENT);
    svc_classify_launchctl(false, 125, "Bootstrap failed: 125: Domain does not support", &p);
    CHECK_EQ_INT(p.state, SVC_UNKNOWN);
    CHECK(strstr(p.reason, "exited with code 125") != NULL);
    svc_classify_launchctl(false, -1, "Could not find domain for", &p);
    CHECK_EQ_INT(p.state, SVC_UNKNOWN);
    CHECK(strstr(p.reason, "no exit code (terminated by signal)") != NULL);

    svc_classify_sc(false, 1060, &p);
    CHECK_EQ_INT(p.state, SVC_ABSENT);
    svc_classify_sc(false, 5, &p);
    CHECK_EQ_INT(p.state, SVC_UNKNOWN);
    CHECK_EQ_STR(p.reason, "`sc query` exited with code 5 (1060 would mean the service does not exist)");
    svc_classify_sc(true, 0, &p);
    CHECK_EQ_INT(p.state, SVC_PRESENT);
}

static void test_removal_policy(void)
{
    mock m;
    svc_removal r;
    svc_manager mgr = mock_manager(&m, true);

    /* A requested scope is removed whatever the probe says: the removal is the authority. */
    svc_remove_registration(&mgr, SVC_USER, SVC_REQUESTED, &r);
    CHECK(r.removed && !r.found && !r.indeterminate);
    CHECK_EQ_STR(m.calls, "probe(user) stop(user) remove(user) ");

    /* A swept scope the probe did not see is never written to. */
    mgr = mock_manager(&m, true);
    svc_remove_registration(&mgr, SVC_SYSTEM, SVC_SWEPT, &r);
    CHECK(!r.removed && !r.indeterminate && !r.has_error);
    CHECK_EQ_STR(m.calls, "probe(system) ");

    /* ...and one that could not be read stays indeterminate, untouched. */
    mgr = mock_manager(&m, true);
    m.state[SVC_USER] = SVC_UNKNOWN;
    svc_remove_registration(&mgr, SVC_USER, SVC_SWEPT, &r);
    CHECK(r.indeterminate && !r.removed);
    CHECK_EQ_STR(r.error, "could not determine whether it is registered: bus down");
    CHECK_EQ_STR(m.calls, "probe(user) ");

    /* Seen but not removable: indeterminate, with the manager's words. */
    mgr = mock_manager(&m, true);
    m.state[SVC_SYSTEM] = SVC_PRESENT;
    m.remove_ok[SVC_SYSTEM] = false;
    svc_remove_registration(&mgr, SVC_SYSTEM, SVC_SWEPT, &r);
    CHECK(r.found && !r.removed && r.indeterminate);
    CHECK_EQ_STR(r.error, "remove failed");

    /* Not seen and not removable: the plain "nothing here". */
    mgr = mock_manager(&m, true);
    m.remove_ok[SVC_USER] = false;
    svc_remove_registration(&mgr, SVC_USER, SVC_REQUESTED, &r);
    CHECK(!r.found && !r.removed && !r.indeterminate);
}

static void test_uninstall_verdicts(void)
{
    mock m;
    static svc_outcome o;
    svc_manager mgr = mock_manager(&m, true);

    /* Root, auto: system (requested) removed, user swept and absent. */
    m.state[SVC_SYSTEM] = SVC_PRESENT;
    svc_uninstall(&mgr, SCOPE_AUTO, true, &o);
    REQUIRE(o.ok);
    CHECK_EQ_STR(o.summary, "dig-relay: uninstalled service \"net.dignetwork.dig-relay\" at system scope");
    CHECK_EQ_STR(o.result,
                 "{\"installed\":false,\"label\":\"net.dignetwork.dig-relay\",\"registered\":false,"
                 "\"removed_scopes\":[\"system\"],\"scopes\":[{\"error\":null,\"found\":true,"
                 "\"indeterminate\":false,\"removed\":true,\"scope\":\"system\"},{\"error\":null,"
                 "\"found\":false,\"indeterminate\":false,\"removed\":false,\"scope\":\"user\"}]}");

    /* The swept user scope cannot be read: the uninstall fails loudly though system went. */
    mgr = mock_manager(&m, true);
    m.state[SVC_USER] = SVC_UNKNOWN;
    svc_uninstall(&mgr, SCOPE_AUTO, true, &o);
    CHECK(!o.ok);
    CHECK(strstr(o.summary, "could not fully uninstall") != NULL);
    CHECK(strstr(o.summary, "(removed at: system)") != NULL);
    CHECK(strstr(o.summary, "Unresolved: user scope: could not determine whether it is "
                            "registered: bus down") != NULL);

    /* Nothing anywhere: not found, with the managers' reasons. */
    mgr = mock_manager(&m, true);
    m.remove_ok[SVC_USER] = false;
    svc_uninstall(&mgr, SCOPE_USER, false, &o);
    CHECK(!o.ok);
    CHECK_EQ_STR(o.summary, "dig-relay: no service registration for \"net.dignetwork.dig-relay\" "
                            "was found at user scope \xe2\x80\x94 nothing to uninstall. (user "
                            "scope: remove failed)");

    /* A requested scope whose manager cannot be reached is indeterminate: an error. */
    mgr = mock_manager(&m, true);
    m.open_ok[SVC_USER] = false;
    svc_uninstall(&mgr, SCOPE_USER, false, &o);
    CHECK(!o.ok && strstr(o.summary, "Unresolved: user scope: no manager at user") != NULL);

    /* Windows without elevation: refused before anything. */
    mgr = mock_manager(&m, false);
    svc_uninstall(&mgr, SCOPE_AUTO, false, &o);
    CHECK(!o.ok && strstr(o.summary, "elevated (Administrator)") != NULL);
    CHECK_EQ_STR(m.calls, "");
}

static void test_install_order(void)
{
    mock m;
    static svc_outcome o;
    relay_config c;
    svc_plan plan = {.program = "/opt/dig-relay", .entry = "serve"};
    config_defaults(&c);
    svc_manager mgr = mock_manager(&m, true);

    /* Non-root --scope system: refused before the sweep touches anything. */
    m.state[SVC_USER] = SVC_PRESENT;
    svc_install(&mgr, &plan, &c, SCOPE_SYSTEM, false, &o);
    CHECK(!o.ok && strstr(o.summary, "requires root") != NULL);
    CHECK_EQ_STR(m.calls, "");

    /* Root: the other scope is swept first, then the registration is made. */
    svc_install(&mgr, &plan, &c, SCOPE_AUTO, true, &o);
    REQUIRE(o.ok);
    CHECK_EQ_STR(m.calls, "probe(user) stop(user) remove(user) create(system) ");
    CHECK(strstr(o.summary, "migrated: removed the previous user-level registration") != NULL);
    CHECK_EQ_STR(o.result,
                 "{\"health_listen\":\"[::]:9451\",\"installed\":true,\"label\":"
                 "\"net.dignetwork.dig-relay\",\"listen\":\"[::]:9450\",\"migration\":{\"error\":"
                 "null,\"found\":true,\"indeterminate\":false,\"removed\":true,\"scope\":\"user\"},"
                 "\"program\":\"/opt/dig-relay\",\"registered\":true,\"scope\":\"system\","
                 "\"started\":false}");

    /* A sweep that could not read the other scope is reported, not hidden. */
    mgr = mock_manager(&m, true);
    m.state[SVC_SYSTEM] = SVC_UNKNOWN;
    svc_install(&mgr, &plan, &c, SCOPE_USER, false, &o);
    REQUIRE(o.ok);
    CHECK(strstr(o.summary, "WARNING: a system-level registration may still exist") != NULL);

    /* Windows: one scope, no sweep, migration null. */
    mgr = mock_manager(&m, false);
    svc_install(&mgr, &plan, &c, SCOPE_USER, true, &o);
    REQUIRE(o.ok);
    CHECK_EQ_STR(m.calls, "create(system) ");
    CHECK(strstr(o.result, "\"migration\":null") != NULL);
}

static void test_unit_and_plist(void)
{
    static char text[16384];
    char err[256];
    svc_plan p = {.program = "/opt/my relay/dig-relay", .entry = "serve", .n_env = 2,
                  .env_name = {"DIG_RELAY_TLS_CERT_PATH", "DIG_RELAY_LISTEN"},
                  .env_value = {"/etc/100% \"x\"/c&<.pem", "[::]:1"}};
    REQUIRE(svc_systemd_unit(&p, SVC_SYSTEM, text, sizeof text, err, sizeof err) > 0);
    CHECK(strstr(text, "ExecStart=\"/opt/my relay/dig-relay\" serve\n") != NULL);
    CHECK(strstr(text, "Environment=\"DIG_RELAY_TLS_CERT_PATH=/etc/100%% \\\"x\\\"/c&<.pem\"\n"));
    static const char *const hardening[] = {
        "NoNewPrivileges=yes\n", "ProtectSystem=strict\n", "ProtectHome=read-only\n",
        "PrivateTmp=yes\n", "CapabilityBoundingSet=\n", "Restart=on-failure\n",
        "LimitNOFILE=65536\n", "WantedBy=multi-user.target\n"};
    for (size_t i = 0; i < sizeof hardening / sizeof hardening[0]; i++)
        CHECK(strstr(text, hardening[i]) != NULL);
    /* The DynamicUser service keeps TURN's state under StateDirectory=, unless told otherwise:
     * the persisted variables come after it, and systemd takes the last. */
    const char *state = strstr(text, "Environment=DIG_RELAY_STATE_DIR=%S/dig-relay\n");
    CHECK(state != NULL && state < strstr(text, "Environment=\"DIG_RELAY_TLS_CERT_PATH="));
    REQUIRE(svc_systemd_unit(&p, SVC_USER, text, sizeof text, err, sizeof err) > 0);
    CHECK(strstr(text, "WantedBy=default.target\n") != NULL);
    CHECK(strstr(text, "DIG_RELAY_STATE_DIR") == NULL);
    CHECK(strstr(text, "NoNewPrivileges=yes\n") != NULL);
    CHECK(strstr(text, "DynamicUser") == NULL);

    REQUIRE(svc_launchd_plist(&p, text, sizeof text, err, sizeof err) > 0);
    CHECK(strstr(text, "<string>/etc/100% \"x\"/c&amp;&lt;.pem</string>") != NULL);
    CHECK(strstr(text, "<key>Label</key>\n\t<string>net.dignetwork.dig-relay</string>") != NULL);

    p.env_value[1] = "bad\nvalue";
    CHECK_EQ_INT(svc_systemd_unit(&p, SVC_SYSTEM, text, sizeof text, err, sizeof err), 0);
    CHECK(strstr(err, "DIG_RELAY_LISTEN") != NULL);
    CHECK_EQ_INT(svc_launchd_plist(&p, text, sizeof text, err, sizeof err), 0);
}

static void test_status_rules(void)
{
    addr_t a, b;
    char text[ADDR_STRLEN];
    static svc_outcome o;
    REQUIRE(addr_parse("[::]:9451", 9, &a));
    svc_loopback_probe_addr(&a, &b);
    addr_format(&b, text);
    CHECK_EQ_STR(text, "[::1]:9451");
    REQUIRE(addr_parse("0.0.0.0:7", 9, &a));
    svc_loopback_probe_addr(&a, &b);
    addr_format(&b, text);
    CHECK_EQ_STR(text, "127.0.0.1:7");
    REQUIRE(addr_parse("10.0.0.5:9451", 13, &a));
    svc_loopback_probe_addr(&a, &b);
    addr_format(&b, text);
    CHECK_EQ_STR(text, "10.0.0.5:9451");

#define LINE(s) svc_is_2xx_status_line(s, strlen(s))
    CHECK(LINE("HTTP/1.1 200 OK\r\nDate: x\r\n"));
    CHECK(LINE("HTTP/1.0 204 No Content"));
    CHECK(LINE("HTTP/1.1 299 Custom"));
    CHECK(!LINE("HTTP/1.0 404 Not Found\r\nDate: Sat, 27 Jun 2026 00:00:00 GMT\r\n"));
    CHECK(!LINE("HTTP/1.1 199 Early"));
    CHECK(!LINE("HTTP/1.1 300 Multiple Choices"));
    CHECK(!LINE("HTTP/1.1 2000 x"));
    CHECK(!LINE("200 OK"));
    CHECK(!LINE(""));
#undef LINE

    REQUIRE(addr_parse("[::]:9451", 9, &a));
    svc_status_outcome(&a, false, &o);
    CHECK_EQ_STR(o.summary, "dig-relay: NOT responding at http://[::]:9451/health (the service "
                            "may be stopped or not installed)");
    char env[SVC_RESULT_MAX];
    REQUIRE(svc_envelope(&o, env, sizeof env) > 0);
    CHECK_EQ_STR(env, "{\"ok\":true,\"result\":{\"health_url\":\"http://[::]:9451/health\","
                      "\"serving\":false}}");
    o.ok = false;
    snprintf(o.summary, sizeof o.summary, "boom \"x\"");
    REQUIRE(svc_envelope(&o, env, sizeof env) > 0);
    CHECK_EQ_STR(env, "{\"error\":{\"message\":\"boom \\\"x\\\"\"},\"ok\":false}");
}

/* ---- against the stand-ins -------------------------------------------------------------------- */

static char tmp[64], bin_dir[128], state_dir[128], home[128], root[128];
static char env_path[4096], env_state[400], env_home[400], env_root[400];
static char out[16384], errout[4096];

static bool have_python(void)
{
    const char *const argv[] = {"/bin/sh", "-c", "command -v python3", NULL};
    return h_run(argv, NULL, out, sizeof out, NULL, 0, 5000) == 0;
}

static void setup(void)
{
    static char cmd[8192];
    char cwd[1024];
    if (getcwd(cwd, sizeof cwd) == NULL)
        return;
    snprintf(tmp, sizeof tmp, "/tmp/dig-service.XXXXXX");
    if (mkdtemp(tmp) == NULL)
        return;
    snprintf(bin_dir, sizeof bin_dir, "%s/bin", tmp);
    snprintf(state_dir, sizeof state_dir, "%s/state", tmp);
    snprintf(home, sizeof home, "%s/home", tmp);
    snprintf(root, sizeof root, "%s/root", tmp);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s %s %s %s && chmod 777 %s %s %s %s %s && "
             "ln -s %s/tests/service_standin.py %s/systemctl && "
             "ln -s %s/tests/service_standin.py %s/launchctl",
             bin_dir, state_dir, home, root, tmp, bin_dir, state_dir, home, root,
             cwd, bin_dir, cwd, bin_dir);
    const char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
    h_run(argv, NULL, NULL, 0, NULL, 0, 5000);
    snprintf(env_path, sizeof env_path, "PATH=%s:%s", bin_dir, getenv("PATH"));
    snprintf(env_state, sizeof env_state, "STANDIN_DIR=%s", state_dir);
    snprintf(env_home, sizeof env_home, "HOME=%s", home);
    snprintf(env_root, sizeof env_root, "DIG_RELAY_SERVICE_ROOT=%s", root);
}

static void teardown(void)
{
    char cmd[2048];
    /* A relay the stand-in started and a test left running is stopped by its pid file. */
    snprintf(cmd, sizeof cmd,
             "for f in %s/*.pid; do [ -f \"$f\" ] && kill $(cat \"$f\") 2>/dev/null; done; "
             "sleep 0.2; rm -rf %s",
             state_dir, tmp);
    const char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
    h_run(argv, NULL, NULL, 0, NULL, 0, 10000);
}

/* The file's text, valid until the next call (NULL when it cannot be read). */
static const char *read_text(const char *path)
{
    static char *last;
    free(last);
    last = h_read_text(path);
    return last;
}

static void clear_calls(void)
{
    char path[400];
    snprintf(path, sizeof path, "%s/calls.log", state_dir);
    unlink(path);
}

static const char *calls(void)
{
    char path[400];
    snprintf(path, sizeof path, "%s/calls.log", state_dir);
    const char *t = read_text(path);
    return t ? t : "";
}

/* Runs the relay binary with args, in the temporary HOME and root, stand-ins first on PATH.
 * extra_env (may be NULL) adds one more variable; as_nobody runs it as uid 65534. */
static int dig(const char *extra_env, bool as_nobody, const char *const *args)
{
    const char *env[] = {env_path, env_state, env_home, env_root, extra_env, NULL};
    const char *argv[32];
    size_t n = 0;
    if (as_nobody) {
        argv[n++] = "/usr/bin/setpriv";
        argv[n++] = "--reuid=65534";
        argv[n++] = "--regid=65534";
        argv[n++] = "--clear-groups";
    }
    char bin[4096];
    if (relay_binary()[0] == '/')
        snprintf(bin, sizeof bin, "%s", relay_binary());
    else
        snprintf(bin, sizeof bin, "%s/%s", getcwd(out, sizeof out), relay_binary());
    argv[n++] = bin;
    for (size_t i = 0; args[i] != NULL && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return h_run(argv, env, out, sizeof out, errout, sizeof errout, 60000);
}

#define DIG(...) dig(NULL, false, (const char *const[]){__VA_ARGS__, NULL})

static void test_systemd_lifecycle(void)
{
    char unit[400], health[64], hflag[80], lflag[80], sflag[80], dflag[80];
    if (!have_python())
        SKIP("python3 not installed");
    setup();
    uint16_t hp = h_free_port("tcp4");
    snprintf(health, sizeof health, "127.0.0.1:%u", hp);
    snprintf(hflag, sizeof hflag, "--health-listen=%s", health);
    snprintf(lflag, sizeof lflag, "--listen=127.0.0.1:%u", h_free_port("tcp4"));
    snprintf(sflag, sizeof sflag, "--stun-listen=127.0.0.1:%u", h_free_port("udp4"));
    snprintf(dflag, sizeof dflag, "--dashboard-listen=127.0.0.1:%u", h_free_port("tcp4"));
    snprintf(unit, sizeof unit, "%s/etc/systemd/system/" SVC_SYSTEMD_UNIT, root);

    /* As root, auto resolves to system; the user scope is swept first (nothing there). */
    CHECK_EQ_INT(DIG("install", "--json", lflag, hflag, sflag, dflag, "--max-connections", "100"), 0);
    CHECK(strstr(out, "{\"ok\":true,\"result\":{\"health_listen\":\"127.0.0.1:") == out);
    CHECK(strstr(out, "\"scope\":\"system\",\"started\":false}}") != NULL);
    CHECK(strstr(out, "\"migration\":{\"error\":null,\"found\":false,\"indeterminate\":false,"
                      "\"removed\":false,\"scope\":\"user\"}") != NULL);
    CHECK_EQ_STR(calls(), "systemctl --user cat " SVC_SYSTEMD_UNIT "\nsystemctl daemon-reload\n"
                          "systemctl enable " SVC_SYSTEMD_UNIT "\n");
    const char *text = read_text(unit);
    REQUIRE(text != NULL);
    CHECK(strstr(text, "Environment=\"DIG_RELAY_MAX_CONNECTIONS=100\"\n") != NULL);
    CHECK(strstr(text, "DIG_RELAY_SCOPE") == NULL && strstr(text, "JSON") == NULL);

    /* The real systemd-analyze accepts the unit dig-relay wrote. */
    if (access("/usr/bin/systemd-analyze", X_OK) == 0) {
        /* --man=no: the man page is installed by make install, not here. */
        const char *const verify[] = {"/usr/bin/systemd-analyze", "verify", "--man=no", unit, NULL};
        int rc = h_run(verify, NULL, out, sizeof out, errout, sizeof errout, 60000);
        if (rc != 0)
            printf("  systemd-analyze verify: %s%s\n", out, errout);
        CHECK_EQ_INT(rc, 0);
    }

    /* start runs the unit's ExecStart with its Environment: status sees it serving. */
    clear_calls();
    CHECK_EQ_INT(DIG("start", "--json"), 0);
    CHECK_EQ_STR(out, "{\"ok\":true,\"result\":{\"label\":\"net.dignetwork.dig-relay\","
                      "\"scope\":\"system\",\"started\":true}}\n");
    int rc = 1;
    for (uint64_t end = h_now_ms() + 10000; h_now_ms() < end && rc != 0; h_sleep_ms(50))
        rc = DIG("status", hflag);
    CHECK_EQ_INT(rc, 0);
    CHECK(strstr(out, "dig-relay: SERVING (health http://127.0.0.1:") == out);

    CHECK_EQ_INT(DIG("stop"), 0);
    CHECK_EQ_STR(out, "dig-relay: stop requested for \"net.dignetwork.dig-relay\"\n");
    CHECK_EQ_INT(DIG("status", "--json", hflag), 1);
    CHECK(strstr(out, "\"serving\":false") != NULL);

    clear_calls();
    CHECK_EQ_INT(DIG("uninstall", "--json"), 0);
    CHECK(strstr(out, "\"removed_scopes\":[\"system\"]") != NULL);
    CHECK(access(unit, F_OK) != 0);
    CHECK_EQ_STR(calls(), "systemctl cat " SVC_SYSTEMD_UNIT "\nsystemctl stop " SVC_SYSTEMD_UNIT
                          "\nsystemctl disable " SVC_SYSTEMD_UNIT "\nsystemctl daemon-reload\n"
                          "systemctl --user cat " SVC_SYSTEMD_UNIT "\n");

    /* Nothing left: uninstall fails, on stderr without --json, in the envelope with it. */
    CHECK_EQ_INT(DIG("uninstall"), 1);
    CHECK(strstr(errout, "dig-relay: error: dig-relay: no service registration") == errout);
    CHECK_EQ_INT(DIG("uninstall", "--json"), 1);
    CHECK(strstr(out, "{\"error\":{\"message\":\"dig-relay: no service registration") == out);
    CHECK(strstr(out, "},\"ok\":false}\n") != NULL);
    teardown();
}

static void test_systemd_user_and_refusals(void)
{
    if (!have_python())
        SKIP("python3 not installed");
    if (access("/usr/bin/setpriv", X_OK) != 0 || geteuid() != 0)
        SKIP("setpriv (util-linux) and root needed to run as another user");
    setup();

    /* Not root: a system install is refused before any call to systemctl. */
    CHECK_EQ_INT(dig(NULL, true, (const char *const[]){"install", "--scope", "system", NULL}), 1);
    CHECK(strstr(errout, "requires root") != NULL);
    CHECK_EQ_STR(calls(), "");

    /* Not root, auto: user scope, unit under ~/.config/systemd/user, system swept first. */
    CHECK_EQ_INT(dig(NULL, true, (const char *const[]){"install", "--json", NULL}), 0);
    CHECK(strstr(out, "\"scope\":\"user\"") != NULL);
    CHECK_EQ_STR(calls(), "systemctl cat " SVC_SYSTEMD_UNIT "\nsystemctl --user daemon-reload\n"
                          "systemctl --user enable " SVC_SYSTEMD_UNIT "\n");
    char unit[400];
    snprintf(unit, sizeof unit, "%s/.config/systemd/user/" SVC_SYSTEMD_UNIT, home);
    const char *text = read_text(unit);
    REQUIRE(text != NULL);
    CHECK(strstr(text, "WantedBy=default.target") != NULL);

    /* Root, with the user manager unreachable ("Failed to connect to bus"): the user unit can
     * be neither seen nor ruled out, so uninstall fails loudly and says why. */
    clear_calls();
    CHECK_EQ_INT(dig("STANDIN_USER_MANAGER=down", false,
                     (const char *const[]){"uninstall", "--json", NULL}), 1);
    CHECK(strstr(out, "could not fully uninstall") != NULL);
    CHECK(strstr(out, "Failed to connect to bus") != NULL);
    CHECK(access(unit, F_OK) == 0);   /* a sweep never writes where it could not see */

    /* An explicit --scope user as that user removes it. */
    CHECK_EQ_INT(dig(NULL, true, (const char *const[]){"uninstall", "--scope", "user", NULL}), 0);
    if (test_cur_failed) printf("  %s%s\n", out, errout);
    CHECK(access(unit, F_OK) != 0);
    teardown();
}

/* launchd runs only on macOS; its manager file is driven here directly against the stand-in. */
static void test_launchd_lifecycle(void)
{
    static svc_outcome o;
    svc_manager m;
    svc_paths paths;
    relay_config c;
    char err[256], hflag[80], lflag[80], sflag[80], dflag[80], plist[400];
    if (!have_python())
        SKIP("python3 not installed");
    setup();
    setenv("PATH", env_path + 5, 1);
    setenv("STANDIN_DIR", state_dir, 1);
    setenv("HOME", home, 1);
    setenv("DIG_RELAY_SERVICE_ROOT", root, 1);
    paths = (svc_paths){.root = root, .home = home, .uid = 501};
    svc_launchd_manager(&m, &paths);

    uint16_t hp = h_free_port("tcp4");
    snprintf(hflag, sizeof hflag, "--health-listen=127.0.0.1:%u", hp);
    snprintf(lflag, sizeof lflag, "--listen=127.0.0.1:%u", h_free_port("tcp4"));
    snprintf(sflag, sizeof sflag, "--stun-listen=127.0.0.1:%u", h_free_port("udp4"));
    snprintf(dflag, sizeof dflag, "--dashboard-listen=127.0.0.1:%u", h_free_port("tcp4"));
    char *argv[] = {"dig-relay", "install", lflag, hflag, sflag, dflag, NULL};
    config_defaults(&c);
    REQUIRE(config_parse(&c, 6, argv, NULL, err, sizeof err) == 0);
    char program[4096];
    snprintf(program, sizeof program, "%s/%s", getcwd(out, sizeof out), relay_binary());
    svc_plan plan = {.program = program, .entry = m.entry};
    svc_plan_env(&plan, &c);

    /* Not root: user scope (LaunchAgents, gui/501); bootstrap loads and starts it. */
    svc_install(&m, &plan, &c, SCOPE_AUTO, false, &o);
    REQUIRE(o.ok);
    static const char want[] = "launchctl print system/net.dignetwork.dig-relay\n"
                               "launchctl bootstrap gui/501 ";
    CHECK(strncmp(calls(), want, sizeof want - 1) == 0);
    snprintf(plist, sizeof plist, "%s/Library/LaunchAgents/net.dignetwork.dig-relay.plist", home);
    CHECK(access(plist, F_OK) == 0);
    addr_t health;
    REQUIRE(addr_parse(hflag + 16, strlen(hflag + 16), &health));
    int rc = 1;
    for (uint64_t end = h_now_ms() + 10000; h_now_ms() < end && rc != 0; h_sleep_ms(50))
        rc = dig(NULL, false, (const char *const[]){"status", hflag, NULL});
    CHECK_EQ_INT(rc, 0);

    clear_calls();
    svc_stop(&m, SCOPE_USER, false, &o);
    CHECK(o.ok);
    CHECK_EQ_STR(calls(), "launchctl kill SIGTERM gui/501/net.dignetwork.dig-relay\n");
    CHECK_EQ_INT(dig(NULL, false, (const char *const[]){"status", hflag, NULL}), 1);
    svc_start(&m, SCOPE_USER, false, &o);
    CHECK(o.ok);
    rc = 1;
    for (uint64_t end = h_now_ms() + 10000; h_now_ms() < end && rc != 0; h_sleep_ms(50))
        rc = dig(NULL, false, (const char *const[]){"status", hflag, NULL});
    CHECK_EQ_INT(rc, 0);

    /* The per-user domain unreachable (as from a root session): unknown, so a loud failure. */
    setenv("STANDIN_USER_MANAGER", "down", 1);
    svc_uninstall(&m, SCOPE_AUTO, true, &o);
    CHECK(!o.ok && strstr(o.summary, "`launchctl print` exited with code 125") != NULL);
    unsetenv("STANDIN_USER_MANAGER");

    clear_calls();
    svc_uninstall(&m, SCOPE_USER, false, &o);
    CHECK(o.ok);
    CHECK_EQ_STR(calls(), "launchctl print gui/501/net.dignetwork.dig-relay\n"
                          "launchctl kill SIGTERM gui/501/net.dignetwork.dig-relay\n"
                          "launchctl bootout gui/501/net.dignetwork.dig-relay\n");
    CHECK(access(plist, F_OK) != 0);
    CHECK_EQ_INT(dig(NULL, false, (const char *const[]){"status", hflag, NULL}), 1);
    teardown();
}

int main(void)
{
    RUN(test_resolve_scope);
    RUN(test_probe_classification);
    RUN(test_removal_policy);
    RUN(test_uninstall_verdicts);
    RUN(test_install_order);
    RUN(test_unit_and_plist);
    RUN(test_status_rules);
    RUN(test_systemd_lifecycle);
    RUN(test_systemd_user_and_refusals);
    RUN(test_launchd_lifecycle);
    return test_finish();
}
