/* The OS-service subcommands (install, uninstall, start, stop, status: SPEC §2.2, §9) as pure
 * decisions: which scope a call addresses, what a service manager's answer to a probe means,
 * when a removal counts as done, what the systemd unit and the launchd plist say, and the
 * human summary and JSON result of each operation. The calls into a service manager go through
 * an svc_manager table that one file per manager fills (svc_systemd.c, svc_launchd.c,
 * compat/win_service.c), so every rule here is tested with a recording stand-in. */
#ifndef DIG_SERVICE_H
#define DIG_SERVICE_H

#include "addr.h"
#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The reverse-DNS label: launchd label and Windows service name; systemd's unit is derived from
 * it as the reference's service-manager crate does ("dignetwork-dig-relay.service"). */
#define SVC_LABEL "net.dignetwork.dig-relay"
#define SVC_SYSTEMD_UNIT "dignetwork-dig-relay.service"

#define SVC_MSG_MAX 1024
#define SVC_RESULT_MAX 8192
#define SVC_MAX_ENV CONFIG_MAX_OPTIONS

enum svc_scope { SVC_SYSTEM = 0, SVC_USER };

const char *svc_scope_name(enum svc_scope s);   /* "system" / "user" */

/* ---- scope decisions (pure) ------------------------------------------------------------------ */

/* Windows (no user scope) is always system; elsewhere an explicit choice wins and auto means
 * system for root, user otherwise. */
enum svc_scope svc_resolve_scope(enum config_scope choice, bool os_supports_user, bool is_root);

/* A system-scope registration by a non-root caller on a platform with a user scope is refused
 * before anything is written. Returns false with the reference's message. */
bool svc_privilege_ok(enum svc_scope scope, bool os_supports_user, bool is_root, char *err,
                      size_t errlen);

/* The scopes uninstall addresses, the requested one first: auto on a platform with a user scope
 * sweeps the other one too. Returns how many (1 or 2). */
size_t svc_uninstall_scopes(enum config_scope choice, bool os_supports_user, bool is_root,
                            enum svc_scope out[2]);

/* ---- probes: present, absent or unknown (pure) ----------------------------------------------- */

enum svc_registration { SVC_PRESENT, SVC_ABSENT, SVC_UNKNOWN };

typedef struct {
    enum svc_registration state;
    char reason[SVC_MSG_MAX];   /* SVC_UNKNOWN: why the scope could not be read */
} svc_probe;

/* `systemctl [--user] cat <unit>`: absent only when stderr says "No files found for" or
 * "could not be found" (case-insensitive); no exit code means absence. */
void svc_classify_systemctl(bool succeeded, const char *stderr_text, svc_probe *out);
/* `launchctl print <domain>/<label>`: absent on exit 113 or "could not find service", "no such
 * process", "no such file" in stderr. exit_code < 0: ended by a signal. */
void svc_classify_launchctl(bool succeeded, int exit_code, const char *stderr_text, svc_probe *out);
/* The SCM's answer to opening the service: absent only on 1060 (ERROR_SERVICE_DOES_NOT_EXIST). */
void svc_classify_sc(bool succeeded, int code, svc_probe *out);
/* The probe tool could not be run at all: unknown. */
void svc_probe_unavailable(const char *tool, const char *why, svc_probe *out);

/* ---- what a service runs --------------------------------------------------------------------- */

typedef struct {
    const char *program;                 /* absolute path of this binary */
    const char *entry;                   /* "serve", or "run-service" under the Windows SCM */
    const char *env_name[SVC_MAX_ENV];   /* the persisted configuration */
    const char *env_value[SVC_MAX_ENV];
    size_t n_env;
} svc_plan;

/* Fills the plan's environment from config_persisted_var. */
void svc_plan_env(svc_plan *p, const relay_config *c);

/* The hardened systemd unit for a scope, or the launchd plist. Return the length written, or 0
 * with a message when a value cannot be written into that format (control characters) or the
 * text does not fit cap. */
size_t svc_systemd_unit(const svc_plan *p, enum svc_scope scope, char *out, size_t cap, char *err,
                        size_t errlen);
size_t svc_launchd_plist(const svc_plan *p, char *out, size_t cap, char *err, size_t errlen);

/* ---- service managers ------------------------------------------------------------------------ */

/* One service manager. Each call addresses one scope and returns false with the tool's or the
 * system's own words in err. `open` says whether the scope can be addressed at all here. */
typedef struct {
    const char *name;            /* "systemd", "launchd", "Windows SCM" */
    bool has_user_scope;
    const char *entry;           /* the subcommand its services run */
    void *ctx;
    bool (*open)(void *ctx, enum svc_scope scope, char *err, size_t errlen);
    void (*probe)(void *ctx, enum svc_scope scope, svc_probe *out);
    bool (*create)(void *ctx, enum svc_scope scope, const svc_plan *plan, char *err, size_t errlen);
    bool (*remove)(void *ctx, enum svc_scope scope, char *err, size_t errlen);
    bool (*start)(void *ctx, enum svc_scope scope, char *err, size_t errlen);
    bool (*stop)(void *ctx, enum svc_scope scope, char *err, size_t errlen);
} svc_manager;

/* What happened at one scope during uninstall or install's sweep of the other scope. */
typedef struct {
    enum svc_scope scope;
    bool found;          /* the probe saw a registration (advisory) */
    bool removed;        /* the manager's removal succeeded (authoritative) */
    bool indeterminate;  /* absence was never established */
    bool has_error;
    char error[SVC_MSG_MAX];
} svc_removal;

/* Requested: removed whatever the probe says (the removal is the authority). Swept: touched
 * only when the probe saw a registration. */
enum svc_removal_mode { SVC_REQUESTED, SVC_SWEPT };

void svc_remove_registration(const svc_manager *m, enum svc_scope scope,
                             enum svc_removal_mode mode, svc_removal *out);

/* ---- operations and their outcomes ----------------------------------------------------------- */

typedef struct {
    bool ok;
    char summary[SVC_MSG_MAX * 4];   /* the human text, or the error message when !ok */
    char result[SVC_RESULT_MAX];     /* the result object's JSON when ok */
} svc_outcome;

/* The identity a call runs with: is it root (elevated on Windows)? */
void svc_install(const svc_manager *m, const svc_plan *plan, const relay_config *c,
                 enum config_scope choice, bool is_root, svc_outcome *out);
void svc_uninstall(const svc_manager *m, enum config_scope choice, bool is_root, svc_outcome *out);
/* Uninstall's verdict over the per-scope removals (pure). */
void svc_uninstall_outcome(const svc_removal *r, size_t n, svc_outcome *out);
void svc_start(const svc_manager *m, enum config_scope choice, bool is_root, svc_outcome *out);
void svc_stop(const svc_manager *m, enum config_scope choice, bool is_root, svc_outcome *out);

/* status (SPEC §2.2): an unspecified health address becomes the same family's loopback. */
void svc_loopback_probe_addr(const addr_t *health, addr_t *out);
/* True when the first line of an HTTP response is "HTTP/x nnn" with nnn in 200..299. */
bool svc_is_2xx_status_line(const char *head, size_t len);
void svc_status_outcome(const addr_t *health, bool serving, svc_outcome *out);

/* The --json envelopes, keys in the reference's (sorted) order:
 * {"ok":true,"result":{...}} and {"error":{"message":"..."},"ok":false}. */
size_t svc_envelope(const svc_outcome *o, char *out, size_t cap);

#endif
