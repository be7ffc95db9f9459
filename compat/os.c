/* POSIX and Windows implementations of compat/os.h. */
#include "compat/os.h"
#include "compat/compat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifdef _WIN32
#  include <direct.h>
#else
#  include <fcntl.h>
#  include <signal.h>
#  include <sys/wait.h>
#  ifdef __APPLE__
#    include <mach-o/dyld.h>
#  endif
#endif

#ifdef _WIN32

bool compat_is_privileged(void)
{
    SID_IDENTIFIER_AUTHORITY nt = {SECURITY_NT_AUTHORITY};
    PSID admins = NULL;
    BOOL member = FALSE;
    if (!AllocateAndInitializeSid(&nt, 2, SECURITY_BUILTIN_DOMAIN_RID, DOMAIN_ALIAS_RID_ADMINS, 0,
                                  0, 0, 0, 0, 0, &admins))
        return false;
    if (!CheckTokenMembership(NULL, admins, &member))
        member = FALSE;
    FreeSid(admins);
    return member != FALSE;
}

unsigned long compat_uid(void) { return 0; }

bool compat_exe_path(const char *argv0, char *out, size_t cap)
{
    (void)argv0;
    DWORD n = GetModuleFileNameA(NULL, out, (DWORD)cap);
    return n > 0 && n < cap;
}

/* Windows manages services through the SCM API (compat/win_service.c), never a helper tool. */
bool compat_run(const char *const *argv, char *out, size_t out_cap, char *err, size_t err_cap,
                int *exit_code, unsigned timeout_ms, char *why, size_t why_len)
{
    (void)timeout_ms;
    if (out_cap)
        out[0] = '\0';
    if (err_cap)
        err[0] = '\0';
    *exit_code = -1;
    snprintf(why, why_len, "running %s is not supported on Windows", argv[0]);
    return false;
}

static int make_dir(const char *path) { return _mkdir(path); }

static bool replace_file(const char *from, const char *to)
{
    return MoveFileExA(from, to, MOVEFILE_REPLACE_EXISTING) != 0;
}

#else

bool compat_is_privileged(void) { return geteuid() == 0; }

unsigned long compat_uid(void) { return (unsigned long)geteuid(); }

bool compat_exe_path(const char *argv0, char *out, size_t cap)
{
#  if defined(__linux__)
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);
    if (n > 0 && (size_t)n < cap - 1) {
        out[n] = '\0';
        return true;
    }
#  elif defined(__APPLE__)
    char raw[4096];
    uint32_t size = sizeof raw;
    if (_NSGetExecutablePath(raw, &size) == 0)
        argv0 = raw;
#  endif
    char *real = argv0 ? realpath(argv0, NULL) : NULL;
    if (real == NULL)
        return false;
    bool fits = strlen(real) < cap;
    if (fits)
        memcpy(out, real, strlen(real) + 1);
    free(real);
    return fits;
}

static void drain(int fd, char *buf, size_t cap, size_t *len, bool *open_)
{
    char scratch[4096];
    ssize_t n = read(fd, scratch, sizeof scratch);
    if (n <= 0) {
        if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
            close(fd);
            *open_ = false;
        }
        return;
    }
    size_t room = cap > *len + 1 ? cap - *len - 1 : 0;
    size_t take = (size_t)n < room ? (size_t)n : room;
    memcpy(buf + *len, scratch, take);
    *len += take;
    if (cap)
        buf[*len] = '\0';
}

bool compat_run(const char *const *argv, char *out, size_t out_cap, char *err, size_t err_cap,
                int *exit_code, unsigned timeout_ms, char *why, size_t why_len)
{
    int po[2], pe[2], pr[2];
    size_t out_len = 0, err_len = 0;
    if (out_cap)
        out[0] = '\0';
    if (err_cap)
        err[0] = '\0';
    *exit_code = -1;
    if (pipe(po) != 0 || pipe(pe) != 0 || pipe(pr) != 0) {
        snprintf(why, why_len, "pipe: %s", strerror(errno));
        return false;
    }
    fcntl(pr[1], F_SETFD, FD_CLOEXEC);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, why_len, "fork: %s", strerror(errno));
        return false;
    }
    if (pid == 0) {
        int null_fd = open("/dev/null", O_RDONLY);
        if (null_fd >= 0)
            dup2(null_fd, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(pe[0]);
        close(pr[0]);
        execvp(argv[0], (char *const *)argv);
        int e = errno;   /* tell the parent why exec failed through the close-on-exec pipe */
        ssize_t ignored = write(pr[1], &e, sizeof e);
        (void)ignored;
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    close(pr[1]);
    int exec_errno = 0;
    ssize_t got = read(pr[0], &exec_errno, sizeof exec_errno);
    close(pr[0]);

    bool o_open = true, e_open = true;
    uint64_t deadline = compat_monotonic_ms() + timeout_ms;
    while (o_open || e_open) {
        struct pollfd fds[2];
        nfds_t n = 0;
        if (o_open)
            fds[n++] = (struct pollfd){.fd = po[0], .events = POLLIN};
        if (e_open)
            fds[n++] = (struct pollfd){.fd = pe[0], .events = POLLIN};
        uint64_t now = compat_monotonic_ms();
        if (now >= deadline)
            break;
        if (poll(fds, n, (int)(deadline - now)) < 0 && errno != EINTR)
            break;
        for (nfds_t i = 0; i < n; i++) {
            if (fds[i].revents == 0)
                continue;
            if (fds[i].fd == po[0])
                drain(po[0], out, out_cap, &out_len, &o_open);
            else
                drain(pe[0], err, err_cap, &err_len, &e_open);
        }
    }
    bool timed_out = o_open || e_open;
    if (o_open)
        close(po[0]);
    if (e_open)
        close(pe[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (got == (ssize_t)sizeof exec_errno) {
        snprintf(why, why_len, "%s", strerror(exec_errno));
        return false;
    }
    if (!timed_out && WIFEXITED(status))
        *exit_code = WEXITSTATUS(status);
    return true;
}

static int make_dir(const char *path) { return mkdir(path, 0755); }

static bool replace_file(const char *from, const char *to) { return rename(from, to) == 0; }

#endif

bool compat_mkdirs(const char *path, char *err, size_t errlen)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        snprintf(err, errlen, "cannot create directory %s: path too long", path);
        return false;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\\' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        struct stat st;
        if (stat(buf, &st) != 0 && make_dir(buf) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create directory %s: %s", buf, strerror(errno));
            return false;
        }
        buf[i] = saved;
    }
    return true;
}

bool compat_write_file(const char *path, const char *data, size_t len, char *err, size_t errlen)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        snprintf(err, errlen, "cannot write %s: path too long", path);
        return false;
    }
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return false;
    }
    bool ok = fwrite(data, 1, len, f) == len;
    ok = fclose(f) == 0 && ok;
    if (ok)
        chmod(tmp, 0644);
    if (!ok || !replace_file(tmp, path)) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        remove(tmp);
        return false;
    }
    return true;
}

bool compat_remove_file(const char *path, char *err, size_t errlen)
{
    if (remove(path) == 0)
        return true;
    snprintf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
    return false;
}

bool compat_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}
