/* Process figures for /metrics (procstat.h): GetProcessTimes, the working set and the handle
 * count on Windows; getrusage everywhere else, and on Linux /proc/self/statm for the resident
 * set and /proc/self/fd for the descriptors. */
#include "compat/procstat.h"

#ifdef _WIN32
#  ifndef PSAPI_VERSION
#    define PSAPI_VERSION 2     /* GetProcessMemoryInfo from kernel32, no psapi.dll */
#  endif
#  include <windows.h>
#  include <psapi.h>
#else
#  include <sys/resource.h>
#  include <sys/time.h>
#  include <unistd.h>
#  ifdef __linux__
#    include <dirent.h>
#    include <stdio.h>
#  endif
#endif

#ifdef _WIN32
static uint64_t filetime_100ns(FILETIME t)
{
    return (uint64_t)t.dwHighDateTime << 32 | t.dwLowDateTime;
}

void compat_procstat_read(compat_procstat *out)
{
    HANDLE self = GetCurrentProcess();
    FILETIME created, exited, kernel, user;
    PROCESS_MEMORY_COUNTERS mem;
    DWORD handles = 0;
    out->cpu_usec = out->rss_bytes = out->open_fds = UINT64_MAX;
    if (GetProcessTimes(self, &created, &exited, &kernel, &user))
        out->cpu_usec = (filetime_100ns(kernel) + filetime_100ns(user)) / 10;
    if (GetProcessMemoryInfo(self, &mem, sizeof mem))
        out->rss_bytes = mem.WorkingSetSize;
    if (GetProcessHandleCount(self, &handles))
        out->open_fds = handles;
}
#else
void compat_procstat_read(compat_procstat *out)
{
    struct rusage ru;
    out->cpu_usec = out->rss_bytes = out->open_fds = UINT64_MAX;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        out->cpu_usec = (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
                        (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
#  ifdef __linux__
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size, resident;
    long page = sysconf(_SC_PAGESIZE);
    if (f) {
        if (fscanf(f, "%llu %llu", &size, &resident) == 2 && page > 0)
            out->rss_bytes = (uint64_t)resident * (uint64_t)page;
        fclose(f);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        uint64_t n = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.')
                n++;
        out->open_fds = n - 1;   /* the directory being read is one of them */
        closedir(d);
    }
#  endif
}
#endif
