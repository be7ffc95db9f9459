/* POSIX and Windows implementations of compat/files.h. */
#include "compat/files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifdef _WIN32
#  include <direct.h>
#  include <io.h>
#  define make_dir(path) _mkdir(path)
#  define open_new(path) _open(path, _O_CREAT | _O_EXCL | _O_WRONLY | _O_BINARY, _S_IREAD | _S_IWRITE)
#  define write_fd(fd, p, n) _write(fd, p, (unsigned)(n))
#  define close_fd(fd) _close(fd)
#  define SEPARATORS "\\/"
#else
#  include <unistd.h>
#  define make_dir(path) mkdir(path, 0700)
#  define open_new(path) open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600)
#  define write_fd(fd, p, n) write(fd, p, n)
#  define close_fd(fd) close(fd)
#  define SEPARATORS "/"
#endif

bool compat_default_state_dir(char *out, size_t cap)
{
    int n;
#ifdef _WIN32
    const char *base = getenv("ProgramData");
    n = snprintf(out, cap, "%s\\dig-relay", base && *base ? base : "C:\\ProgramData");
#else
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    if (geteuid() == 0)
        n = snprintf(out, cap, "/var/lib/dig-relay");
    else if (xdg && xdg[0] == '/')
        n = snprintf(out, cap, "%s/dig-relay", xdg);
    else if (home && *home)
        n = snprintf(out, cap, "%s/.local/state/dig-relay", home);
    else
        return false;
#endif
    return n > 0 && (size_t)n < cap;
}

bool compat_make_dirs(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    size_t len = strlen(dir);
    struct stat st;

    if (len == 0 || len >= sizeof path) {
        snprintf(err, errlen, "cannot create directory '%s': path too long or empty", dir);
        return false;
    }
    memcpy(path, dir, len + 1);
    /* Each prefix ending before a separator, then the whole path. */
    for (size_t i = 1; i <= len; i++) {
        if (i < len && !strchr(SEPARATORS, path[i]))
            continue;
        char saved = path[i];
        path[i] = '\0';
        if (stat(path, &st) != 0) {
            if (make_dir(path) != 0 && errno != EEXIST) {
                snprintf(err, errlen, "cannot create directory '%s': %s", path, strerror(errno));
                return false;
            }
        } else if (!S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "'%s' exists and is not a directory", path);
            return false;
        }
        path[i] = saved;
    }
    return true;
}

int compat_create_private_file(const char *path, const void *data, size_t len, char *err,
                               size_t errlen)
{
    const char *p = data;
    int fd = open_new(path);
    if (fd < 0) {
        if (errno == EEXIST)
            return 0;
        snprintf(err, errlen, "cannot create '%s': %s", path, strerror(errno));
        return -1;
    }
    while (len > 0) {
        long n = (long)write_fd(fd, p, len);
        if (n <= 0) {
            snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
            close_fd(fd);
            remove(path);
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    if (close_fd(fd) != 0) {
        snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
        remove(path);
        return -1;
    }
    return 1;
}

int compat_file_readable_by_others(const char *path, char *err, size_t errlen)
{
#ifdef _WIN32
    (void)path;
    (void)err;
    (void)errlen;
    return 0;
#else
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
        return -1;
    }
    return (st.st_mode & (S_IRGRP | S_IROTH)) != 0;
#endif
}
