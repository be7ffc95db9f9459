/* The TURN shared secret file (coturn's static-auth-secret, in a file): its text is the secret,
 * a trailing newline ignored. On first start it is created with 32 random bytes written as 64 hex
 * characters, readable by its owner only; a file group or others can read is refused, because
 * anyone holding the secret can mint credentials. */
#ifndef DIG_SECRETFILE_H
#define DIG_SECRETFILE_H

#include <stdbool.h>
#include <stddef.h>

/* Reads the secret at path into out (cap bytes at most, not NUL-terminated), creating the file
 * and its missing directories first when it does not exist (*created says so). False with a
 * sentence naming the file in err: unreadable, readable by others, empty, or longer than cap. */
bool secret_file_load(const char *path, unsigned char *out, size_t cap, size_t *len, bool *created,
                      char *err, size_t errlen);

#endif
