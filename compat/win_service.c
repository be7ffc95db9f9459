/* The Windows service control manager: an svc_manager over the SCM API (create, probe, delete,
 * start, stop the service "net.dignetwork.dig-relay" running `dig-relay.exe run-service`, its
 * configuration in the service key's Environment value), and run-service's side of the
 * protocol: enter the dispatcher, report running, and turn stop and shutdown controls into the
 * same clean exit as SIGTERM. Elsewhere there is no SCM: systemd or launchd manage the service
 * and run-service simply serves. */
#include "compat/win_service.h"

#include <stdio.h>
#include <string.h>

#ifdef _WIN32

#include "compat/compat.h"
#include "compat/os.h"

#include <stdlib.h>

#define SERVICE_KEY "SYSTEM\\CurrentControlSet\\Services\\" SVC_LABEL

static void last_error(const char *what, char *err, size_t errlen)
{
    DWORD code = GetLastError();
    char text[256] = "";
    FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, code, 0, text,
                   sizeof text, NULL);
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\r' || text[n - 1] == '\n' || text[n - 1] == ' '))
        text[--n] = '\0';
    snprintf(err, errlen, "%s: %s (os error %lu)", what, text[0] ? text : "error",
             (unsigned long)code);
}

static bool scm_open(void *ctx, enum svc_scope scope, char *err, size_t errlen)
{
    (void)ctx;
    if (scope == SVC_SYSTEM)
        return true;
    snprintf(err, errlen, "dig-relay: this platform has no user-level service manager");
    return false;
}

/* The service opened with `access`; NULL with the reason in err (and GetLastError intact). */
static SC_HANDLE open_service(DWORD manager_access, DWORD access, SC_HANDLE *manager, char *err,
                              size_t errlen)
{
    *manager = OpenSCManagerA(NULL, NULL, manager_access);
    if (*manager == NULL) {
        last_error("dig-relay: cannot open the service control manager", err, errlen);
        return NULL;
    }
    SC_HANDLE s = OpenServiceA(*manager, SVC_LABEL, access);
    if (s == NULL) {
        DWORD code = GetLastError();
        last_error("dig-relay: cannot open service \"" SVC_LABEL "\"", err, errlen);
        CloseServiceHandle(*manager);
        *manager = NULL;
        SetLastError(code);
    }
    return s;
}

static void scm_probe(void *ctx, enum svc_scope scope, svc_probe *out)
{
    SC_HANDLE manager;
    char err[SVC_MSG_MAX];
    (void)ctx;
    (void)scope;
    SC_HANDLE s = open_service(SC_MANAGER_CONNECT, SERVICE_QUERY_STATUS, &manager, err, sizeof err);
    if (s == NULL) {
        svc_classify_sc(false, (int)GetLastError(), out);
        return;
    }
    CloseServiceHandle(s);
    CloseServiceHandle(manager);
    svc_classify_sc(true, 0, out);
}

/* The configuration as the service key's Environment value (REG_MULTI_SZ "NAME=value" list). */
static bool write_environment(const svc_plan *plan, char *err, size_t errlen)
{
    static char block[32768];
    size_t len = 0;
    for (size_t i = 0; i < plan->n_env; i++) {
        int n = snprintf(block + len, sizeof block - len - 1, "%s=%s", plan->env_name[i],
                         plan->env_value[i]);
        if (n < 0 || (size_t)n + 2 >= sizeof block - len) {
            snprintf(err, errlen, "dig-relay: the service environment does not fit");
            return false;
        }
        len += (size_t)n + 1;
    }
    block[len++] = '\0';
    HKEY key;
    LONG rc = RegOpenKeyExA(HKEY_LOCAL_MACHINE, SERVICE_KEY, 0, KEY_SET_VALUE, &key);
    if (rc == ERROR_SUCCESS) {
        rc = plan->n_env ? RegSetValueExA(key, "Environment", 0, REG_MULTI_SZ,
                                          (const BYTE *)block, (DWORD)len)
                         : RegDeleteValueA(key, "Environment");
        if (rc == ERROR_FILE_NOT_FOUND)
            rc = ERROR_SUCCESS;
        RegCloseKey(key);
    }
    if (rc != ERROR_SUCCESS) {
        SetLastError((DWORD)rc);
        last_error("dig-relay: cannot store the service environment", err, errlen);
        return false;
    }
    return true;
}

static bool scm_create(void *ctx, enum svc_scope scope, const svc_plan *plan, char *err,
                       size_t errlen)
{
    char command[4096];
    (void)ctx;
    (void)scope;
    snprintf(command, sizeof command, "\"%s\" %s", plan->program, plan->entry);
    SC_HANDLE manager = OpenSCManagerA(NULL, NULL, SC_MANAGER_CREATE_SERVICE | SC_MANAGER_CONNECT);
    if (manager == NULL) {
        last_error("dig-relay: cannot open the service control manager", err, errlen);
        return false;
    }
    SC_HANDLE s = CreateServiceA(manager, SVC_LABEL, "DIG Network relay", SERVICE_ALL_ACCESS,
                                 SERVICE_WIN32_OWN_PROCESS, SERVICE_AUTO_START,
                                 SERVICE_ERROR_NORMAL, command, NULL, NULL, NULL, NULL, NULL);
    if (s == NULL && GetLastError() == ERROR_SERVICE_EXISTS) {
        s = OpenServiceA(manager, SVC_LABEL, SERVICE_ALL_ACCESS);
        if (s != NULL &&
            !ChangeServiceConfigA(s, SERVICE_WIN32_OWN_PROCESS, SERVICE_AUTO_START,
                                  SERVICE_ERROR_NORMAL, command, NULL, NULL, NULL, NULL, NULL,
                                  "DIG Network relay")) {
            CloseServiceHandle(s);
            s = NULL;
        }
    }
    if (s == NULL) {
        last_error("dig-relay: cannot create service \"" SVC_LABEL "\"", err, errlen);
        CloseServiceHandle(manager);
        return false;
    }
    /* Restart after a crash, as Restart=on-failure does under systemd. */
    SC_ACTION restart = {SC_ACTION_RESTART, 2000};
    SERVICE_FAILURE_ACTIONSA actions = {86400, NULL, NULL, 1, &restart};
    ChangeServiceConfig2A(s, SERVICE_CONFIG_FAILURE_ACTIONS, &actions);
    CloseServiceHandle(s);
    CloseServiceHandle(manager);
    return write_environment(plan, err, errlen);
}

static bool scm_remove(void *ctx, enum svc_scope scope, char *err, size_t errlen)
{
    SC_HANDLE manager;
    (void)ctx;
    (void)scope;
    SC_HANDLE s = open_service(SC_MANAGER_CONNECT, DELETE, &manager, err, errlen);
    if (s == NULL)
        return false;
    bool ok = DeleteService(s) != 0;
    if (!ok)
        last_error("dig-relay: cannot delete service \"" SVC_LABEL "\"", err, errlen);
    CloseServiceHandle(s);
    CloseServiceHandle(manager);
    return ok;
}

static bool scm_control(bool start, char *err, size_t errlen)
{
    SC_HANDLE manager;
    SERVICE_STATUS status;
    SC_HANDLE s = open_service(SC_MANAGER_CONNECT, start ? SERVICE_START : SERVICE_STOP, &manager,
                               err, errlen);
    if (s == NULL)
        return false;
    bool ok = start ? StartServiceA(s, 0, NULL) != 0
                    : ControlService(s, SERVICE_CONTROL_STOP, &status) != 0;
    if (!ok)
        last_error(start ? "dig-relay: cannot start service \"" SVC_LABEL "\""
                         : "dig-relay: cannot stop service \"" SVC_LABEL "\"",
                   err, errlen);
    CloseServiceHandle(s);
    CloseServiceHandle(manager);
    return ok;
}

static bool scm_start(void *ctx, enum svc_scope scope, char *err, size_t errlen)
{
    (void)ctx;
    (void)scope;
    return scm_control(true, err, errlen);
}

static bool scm_stop(void *ctx, enum svc_scope scope, char *err, size_t errlen)
{
    (void)ctx;
    (void)scope;
    return scm_control(false, err, errlen);
}

void compat_service_manager(svc_manager *m, const svc_paths *paths)
{
    (void)paths;
    *m = (svc_manager){
        .name = "Windows SCM", .has_user_scope = false, .entry = "run-service", .ctx = NULL,
        .open = scm_open, .probe = scm_probe, .create = scm_create, .remove = scm_remove,
        .start = scm_start, .stop = scm_stop,
    };
}

void compat_service_load_environment(void)
{
    static char block[32768];
    DWORD size = sizeof block - 2;
    HKEY key;
    if (RegOpenKeyExA(HKEY_LOCAL_MACHINE, SERVICE_KEY, 0, KEY_QUERY_VALUE, &key) != ERROR_SUCCESS)
        return;
    DWORD type = 0;
    LONG rc = RegQueryValueExA(key, "Environment", NULL, &type, (BYTE *)block, &size);
    RegCloseKey(key);
    if (rc != ERROR_SUCCESS || type != REG_MULTI_SZ)
        return;
    block[size] = '\0';
    block[size + 1] = '\0';
    for (char *p = block; *p != '\0'; p += strlen(p) + 1) {
        char *eq = strchr(p, '=');
        if (eq == NULL || eq == p)
            continue;
        *eq = '\0';
        _putenv_s(p, eq + 1);   /* the C runtime's copy, which getenv reads */
        *eq = '=';
    }
}

static SERVICE_STATUS_HANDLE status_handle;
static int (*serve_fn)(void *);
static void *serve_arg;
static int serve_rc = 1;

static void report(DWORD state, DWORD accept, DWORD exit_code)
{
    SERVICE_STATUS st;
    memset(&st, 0, sizeof st);
    st.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
    st.dwCurrentState = state;
    st.dwControlsAccepted = accept;
    st.dwWin32ExitCode = exit_code == 0 ? NO_ERROR : ERROR_SERVICE_SPECIFIC_ERROR;
    st.dwServiceSpecificExitCode = exit_code;
    st.dwWaitHint = state == SERVICE_STOP_PENDING ? 10000 : 0;
    SetServiceStatus(status_handle, &st);
}

static DWORD WINAPI on_control(DWORD control, DWORD type, void *data, void *context)
{
    (void)type;
    (void)data;
    (void)context;
    switch (control) {
    case SERVICE_CONTROL_STOP:
    case SERVICE_CONTROL_SHUTDOWN:
        report(SERVICE_STOP_PENDING, 0, 0);
        compat_request_shutdown();
        return NO_ERROR;
    case SERVICE_CONTROL_INTERROGATE:
        return NO_ERROR;
    default:
        return ERROR_CALL_NOT_IMPLEMENTED;
    }
}

static void WINAPI service_main(DWORD argc, char **argv)
{
    (void)argc;
    (void)argv;
    status_handle = RegisterServiceCtrlHandlerExA(SVC_LABEL, on_control, NULL);
    if (status_handle == NULL)
        return;
    report(SERVICE_RUNNING, SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN, 0);
    serve_rc = serve_fn(serve_arg);
    report(SERVICE_STOPPED, 0, (DWORD)serve_rc);
}

int compat_run_service(int (*serve)(void *arg), void *arg, char *err, size_t errlen)
{
    char name[] = SVC_LABEL;
    SERVICE_TABLE_ENTRYA table[] = {{name, service_main}, {NULL, NULL}};
    serve_fn = serve;
    serve_arg = arg;
    if (!StartServiceCtrlDispatcherA(table)) {
        last_error("dig-relay: service dispatcher error", err, errlen);
        return -1;
    }
    return serve_rc;
}

#else /* no SCM: launchd on macOS, systemd elsewhere, and both run `serve` directly */

void compat_service_manager(svc_manager *m, const svc_paths *paths)
{
#  ifdef __APPLE__
    svc_launchd_manager(m, paths);
#  else
    svc_systemd_manager(m, paths);
#  endif
}

void compat_service_load_environment(void) {}

int compat_run_service(int (*serve)(void *arg), void *arg, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    return serve(arg);
}

#endif
