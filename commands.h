/* The command-line subcommands other than serving: status, install, uninstall, start, stop
 * (through this platform's service manager) and probe. Each prints its outcome, as text or as
 * the --json envelope, and returns the process exit status. */
#ifndef DIG_COMMANDS_H
#define DIG_COMMANDS_H

#include "config.h"

/* argv0 locates this binary when the system cannot say where it is. */
int commands_run(const relay_config *c, const char *argv0);

#endif
