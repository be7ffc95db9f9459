/* The operating-system calls the service subcommands need beyond sockets: whether this process
 * is root (an elevated Administrator on Windows), its uid, the path of its own binary, running
 * a helper program (systemctl, launchctl) and capturing what it says, and writing, creating and
 * removing files and directories. */
#ifndef DIG_COMPAT_OS_H
#define DIG_COMPAT_OS_H

#include <stdbool.h>
#include <stddef.h>

bool compat_is_privileged(void);
unsigned long compat_uid(void);   /* effective uid; 0 on Windows */

/* Absolute path of the running binary; argv0 is the fallback where the system cannot say. */
bool compat_exe_path(const char *argv0, char *out, size_t cap);

/* Runs argv[0] (looked up on PATH) with stdin from the null device and waits up to timeout_ms,
 * capturing stdout and stderr (each cut at cap-1 bytes, NUL-terminated). *exit_code is its exit
 * status, or -1 when a signal ended it (or the deadline, after which it is killed). Returns
 * false with the reason in why when it could not be started. */
bool compat_run(const char *const *argv, char *out, size_t out_cap, char *err, size_t err_cap,
                int *exit_code, unsigned timeout_ms, char *why, size_t why_len);

/* mkdir -p with mode 0755. */
bool compat_mkdirs(const char *path, char *err, size_t errlen);
/* Writes the whole file through a temporary beside it and a rename, mode 0644. */
bool compat_write_file(const char *path, const char *data, size_t len, char *err, size_t errlen);
/* Removes a file; false with the system's reason (a missing file included). */
bool compat_remove_file(const char *path, char *err, size_t errlen);
bool compat_file_exists(const char *path);

#endif
