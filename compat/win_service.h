/* The platform's service manager and run-service's entry: the Windows SCM (compat/win_service.c)
 * on Windows, launchd on macOS, systemd elsewhere. */
#ifndef DIG_COMPAT_WIN_SERVICE_H
#define DIG_COMPAT_WIN_SERVICE_H

#include "svc_os.h"

/* Fills m with this platform's service manager. */
void compat_service_manager(svc_manager *m, const svc_paths *paths);

/* Windows: copies the DIG_RELAY_* variables `install` stored in the service's registry key into
 * this process's environment, so run-service reads them whatever the SCM passed. Elsewhere the
 * manager (systemd, launchd) has already set them: nothing to do. */
void compat_service_load_environment(void);

/* Windows: enters the service control dispatcher and runs serve(arg) as the service, reporting
 * running and stopped; stop and shutdown controls request the SIGTERM shutdown. Returns serve's
 * result, or -1 with err when the dispatcher could not start (not launched by the SCM).
 * Elsewhere: serve(arg). */
int compat_run_service(int (*serve)(void *arg), void *arg, char *err, size_t errlen);

#endif
