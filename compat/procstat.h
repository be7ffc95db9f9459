/* What the process costs, for /metrics: CPU time, resident memory and open descriptors (handles
 * on Windows). Each figure is UINT64_MAX where the platform cannot give it. */
#ifndef DIG_COMPAT_PROCSTAT_H
#define DIG_COMPAT_PROCSTAT_H

#include <stdint.h>

typedef struct {
    uint64_t cpu_usec;     /* user + system */
    uint64_t rss_bytes;
    uint64_t open_fds;
} compat_procstat;

void compat_procstat_read(compat_procstat *out);

#endif
