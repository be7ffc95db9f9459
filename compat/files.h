/* Files that hold secrets, where POSIX and Windows differ about them: the platform's state
 * directory, directories and files created for their owner alone, and whether an existing file
 * can be read by anyone else. */
#ifndef DIG_COMPAT_FILES_H
#define DIG_COMPAT_FILES_H

#include <stdbool.h>
#include <stddef.h>

/* The default state directory: /var/lib/dig-relay when running as root, else
 * $XDG_STATE_HOME/dig-relay or $HOME/.local/state/dig-relay; %ProgramData%\dig-relay on Windows.
 * False when it cannot be worked out (no HOME) or does not fit in cap. */
bool compat_default_state_dir(char *out, size_t cap);

/* Creates dir and any missing parents; the ones it creates only their owner may enter (0700).
 * False with a sentence naming the directory in err. */
bool compat_make_dirs(const char *dir, char *err, size_t errlen);

/* Creates path, failing if it exists, readable and writable by its owner only (0600), and writes
 * data[0..len) into it. Returns 1 when created, 0 when it already existed, -1 on failure (err). */
int compat_create_private_file(const char *path, const void *data, size_t len, char *err,
                               size_t errlen);

/* 1 when group or others may read path (POSIX mode bits), 0 when they may not, -1 when it cannot
 * be checked (err). On Windows access follows the directory's ACL: always 0. */
int compat_file_readable_by_others(const char *path, char *err, size_t errlen);

#endif
