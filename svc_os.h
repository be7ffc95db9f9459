/* The service managers this binary drives, each behind service.h's svc_manager table:
 * systemd (svc_systemd.c) and launchd (svc_launchd.c) through their command-line tools, and the
 * Windows SCM through its API (compat/win_service.c). Which one a platform uses is
 * compat_service_kind()'s answer. */
#ifndef DIG_SVC_OS_H
#define DIG_SVC_OS_H

#include "service.h"

/* Where a manager keeps its definitions. root prefixes the system directories ("" is the real
 * root; DIG_RELAY_SERVICE_ROOT sets it, for staging an image and for tests). */
typedef struct {
    const char *root;
    const char *home;              /* $HOME; user scope needs it */
    const char *xdg_config_home;   /* $XDG_CONFIG_HOME, may be NULL (systemd user units) */
    unsigned long uid;             /* launchd's per-user domain gui/<uid> */
} svc_paths;

void svc_systemd_manager(svc_manager *m, const svc_paths *paths);
void svc_launchd_manager(svc_manager *m, const svc_paths *paths);

/* Where each keeps the definition for a scope (for messages and tests); false when the scope
 * cannot be addressed (user scope without a home directory). */
bool svc_systemd_unit_path(const svc_paths *p, enum svc_scope scope, char *out, size_t cap);
bool svc_launchd_plist_path(const svc_paths *p, enum svc_scope scope, char *out, size_t cap);

/* The messages of a helper tool that failed: its stderr, else stdout, else a fallback, trimmed. */
void svc_tool_message(const char *err, const char *out, const char *fallback, char *msg,
                      size_t cap);

#endif
