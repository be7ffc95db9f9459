/* Log lines on stderr: "2026-11-22T10:00:00.123Z INFO message" (see log.h).
 *
 * The UTC date is computed from the epoch here rather than with gmtime, whose thread-safe form
 * differs between POSIX and Windows; the clock itself comes from compat. Each line is built in
 * one buffer and written with a single call so concurrent writers (or a supervisor reading
 * stderr) never see half a line. */
#include "log.h"

#include "compat/compat.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum log_level log_threshold = LOG_INFO;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG", "TRACE"};

/* Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's civil_from_days). */
static void civil_from_days(uint64_t days, unsigned *year, unsigned *month, unsigned *day)
{
    uint64_t z = days + 719468;
    uint64_t era = z / 146097;
    uint64_t doe = z - era * 146097;
    uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    uint64_t mp = (5 * doy + 2) / 153;
    uint64_t d = doy - (153 * mp + 2) / 5 + 1;
    uint64_t m = mp < 10 ? mp + 3 : mp - 9;
    *year = (unsigned)(yoe + era * 400 + (m <= 2 ? 1 : 0));
    *month = (unsigned)m;
    *day = (unsigned)d;
}

void log_write(enum log_level level, const char *fmt, ...)
{
    char line[2048];
    uint64_t ms = compat_wall_ms();
    uint64_t secs = ms / 1000;
    unsigned year, month, day;
    size_t len;
    va_list ap;
    int n;

    if (level > log_threshold)
        return;
    civil_from_days(secs / 86400, &year, &month, &day);
    n = snprintf(line, sizeof line, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ %s ", year, month, day,
                 (unsigned)(secs % 86400 / 3600), (unsigned)(secs % 3600 / 60),
                 (unsigned)(secs % 60), (unsigned)(ms % 1000),
                 level_names[(unsigned)level < 5 ? level : LOG_TRACE]);
    len = n > 0 ? (size_t)n : 0;

    va_start(ap, fmt);
    n = vsnprintf(line + len, sizeof line - len, fmt, ap);
    va_end(ap);
    if (n > 0)
        len += (size_t)n;
    /* A message longer than the buffer is cut, and says so, rather than lost. */
    if (len > sizeof line - 2) {
        static const char cut[] = "...";
        len = sizeof line - 2;
        memcpy(line + len - (sizeof cut - 1), cut, sizeof cut - 1);
    }
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
    fflush(stderr);
}
