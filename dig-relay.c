/* dig-relay: the DIG Network's rendezvous and circuit relay. Parses the configuration, binds
 * the relay, health and STUN listeners, runs the single-threaded loop until SIGINT/SIGTERM, and
 * closes every connection with 1001 on the way out. */
#include "compat/compat.h"
#include "config.h"
#include "buildinfo.h"
#include "log.h"
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *env_lookup(const char *name) { return getenv(name); }

int main(int argc, char **argv)
{
    static relay_config cfg;
    server *srv;
    char err[512];
    char text[3][ADDR_STRLEN];
    int rc;

    config_defaults(&cfg);
    rc = config_parse(&cfg, argc, argv, env_lookup, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "dig-relay: %s\n", err);
        fprintf(stderr, "Try 'dig-relay --help' for the list of flags.\n");
        return rc;
    }
    if (cfg.command == CMD_HELP) {
        fputs(config_usage(), stdout);
        return 0;
    }
    if (cfg.command == CMD_VERSION) {
        printf("dig-relay %s\n", DIG_RELAY_VERSION);
        printf("built in: %s\n", *features_built_in() ? features_built_in() : "none");
        if (*features_left_out())
            printf("left out: %s\n", features_left_out());
        return 0;
    }
    log_threshold = cfg.log_level;
    if (!compat_init(err, sizeof err)) {
        log_error("%s", err);
        return 1;
    }
    compat_install_shutdown_handler();
    srv = server_new(&cfg, err, sizeof err);
    if (!srv) {
        log_error("%s", err);
        fprintf(stderr, "dig-relay: %s\n", err);
        return 1;
    }
    addr_format(&cfg.listen, text[0]);
    addr_format(&cfg.health_listen, text[1]);
    addr_format(&cfg.stun_listen, text[2]);
    log_info("dig-relay %s listening: relay ws://%s, health http://%s/health, stun udp %s",
             DIG_RELAY_VERSION, text[0], text[1], text[2]);
    server_run(srv);
    log_info("shutting down");
    server_free(srv);
    return 0;
}
