/* dig-relay: the DIG Network's rendezvous and circuit relay. Parses the configuration and either
 * runs a subcommand (status, install, uninstall, start, stop, probe: commands.c) or serves:
 * binds the relay, health and STUN listeners, runs the single-threaded loop until
 * SIGINT/SIGTERM (or the Windows service's stop control), and closes every connection with 1001
 * on the way out. */
#include "buildinfo.h"
#include "commands.h"
#include "compat/compat.h"
#include "compat/win_service.h"
#include "config.h"
#include "log.h"
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *env_lookup(const char *name) { return getenv(name); }

static int serve(void *arg)
{
    relay_config *cfg = arg;
    server *srv;
    char err[512];
    char text[3][ADDR_STRLEN];

    log_threshold = cfg->log_level;
    if (!compat_init(err, sizeof err)) {
        log_error("%s", err);
        return 1;
    }
    compat_install_shutdown_handler();
    srv = server_new(cfg, err, sizeof err);
    if (!srv) {
        log_error("%s", err);
        fprintf(stderr, "dig-relay: %s\n", err);
        return 1;
    }
    addr_format(&cfg->listen, text[0]);
    addr_format(&cfg->health_listen, text[1]);
    addr_format(&cfg->stun_listen, text[2]);
    log_info("dig-relay %s listening: relay %s://%s, health http://%s/health, stun udp %s",
             DIG_RELAY_VERSION, cfg->tls_cert_path ? "wss" : "ws", text[0], text[1], text[2]);
    server_run(srv);
    log_info("shutting down");
    server_free(srv);
    return 0;
}

int main(int argc, char **argv)
{
    static relay_config cfg;
    char err[512];
    int rc;

    config_defaults(&cfg);
    rc = config_parse(&cfg, argc, argv, env_lookup, err, sizeof err);
    if (rc == 0 && cfg.command == CMD_RUN_SERVICE) {
        /* The Windows service's configuration lives in its registry key: read it, then parse
         * again so flag, variable and default keep their usual order. */
        compat_service_load_environment();
        config_defaults(&cfg);
        rc = config_parse(&cfg, argc, argv, env_lookup, err, sizeof err);
    }
    if (rc != 0) {
        fprintf(stderr, "dig-relay: %s\n", err);
        fprintf(stderr, "Try 'dig-relay --help' for the list of flags.\n");
        return rc;
    }
    switch (cfg.command) {
    case CMD_HELP:
        fputs(config_usage(), stdout);
        return 0;
    case CMD_VERSION:
        printf("dig-relay %s\n", DIG_RELAY_VERSION);
        features_print(stdout);
        return 0;
    case CMD_SERVE:
        return serve(&cfg);
    case CMD_RUN_SERVICE:
        rc = compat_run_service(serve, &cfg, err, sizeof err);
        if (rc < 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        return rc;
    default:
        return commands_run(&cfg, argv[0]);
    }
}
