/* Timestamped log lines on stderr with levels error..trace. */
#ifndef DIG_LOG_H
#define DIG_LOG_H

#include "compat/compat.h"
#include "config.h"

extern enum log_level log_threshold;

COMPAT_PRINTF(2, 3)
void log_write(enum log_level level, const char *fmt, ...);

#define LOG_ENABLED(lvl) ((lvl) <= log_threshold)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  do { if (LOG_ENABLED(LOG_WARN))  log_write(LOG_WARN,  __VA_ARGS__); } while (0)
#define log_info(...)  do { if (LOG_ENABLED(LOG_INFO))  log_write(LOG_INFO,  __VA_ARGS__); } while (0)
#define log_debug(...) do { if (LOG_ENABLED(LOG_DEBUG)) log_write(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_trace(...) do { if (LOG_ENABLED(LOG_TRACE)) log_write(LOG_TRACE, __VA_ARGS__); } while (0)

#endif
