/* Relay configuration: flags, DIG_RELAY_* environment variables, defaults and validation,
 * matching the reference server's CLI so an installer can swap binaries. A flag beats its
 * environment variable, which beats the default. Pure: argv and an env lookup in, a config or
 * a message naming the offending flag out. */
#ifndef DIG_CONFIG_H
#define DIG_CONFIG_H

#include "addr.h"
#include "cidr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG, LOG_TRACE };

/* What the command line asks for: serve (the default), the OS-service subcommands, the probe. */
enum config_command {
    CMD_SERVE = 0, CMD_HELP, CMD_VERSION,
    CMD_STATUS, CMD_INSTALL, CMD_UNINSTALL, CMD_START, CMD_STOP, CMD_RUN_SERVICE, CMD_PROBE
};

/* --scope for install/uninstall/start/stop (SPEC §9). */
enum config_scope { SCOPE_AUTO = 0, SCOPE_SYSTEM, SCOPE_USER };

/* Upper bound on rows in config.c's option table (checked there at compile time). */
#define CONFIG_MAX_OPTIONS 64

/* --tls-client-auth: what a TLS client must show. */
enum tls_client_auth {
    TLS_CLIENT_AUTH_REQUIRED = 0,   /* a certificate, or the handshake fails (the reference) */
    TLS_CLIENT_AUTH_OPTIONAL,       /* asked for; without one the client is served as plain ws:// */
    TLS_CLIENT_AUTH_NONE            /* not asked for: server-only TLS */
};
/* Where the relay image keeps the DB-IP City Lite database the reference ships. */
#define CONFIG_DEFAULT_GEOIP_DB "/opt/dig-relay/geoip/dbip-city-lite.mmdb"

typedef struct {
    uint16_t lo, hi;
} port_range;

typedef struct {
    enum config_command command;

    addr_t listen;              /* --listen                       [::]:9450 */
    addr_t health_listen;       /* --health-listen                [::]:9451 */
    addr_t dashboard_listen;    /* --dashboard-listen             [::]:8080 */
    addr_t stun_listen;         /* --stun-listen                  [::]:3478 */

    uint64_t max_connections;           /* 4096, >= 1 */
    uint64_t idle_timeout_secs;         /* 120, > 0 */
    uint64_t register_timeout_secs;     /* 10, > 0 */
    uint64_t outbound_queue_capacity;   /* 1024, >= 1 (messages), clamped to UINT32_MAX */
    uint64_t outbound_queue_bytes;      /* 8 MiB, >= 1 (ours) */
    uint64_t notice_hold_ms;            /* 250, <= 10000 (ours): how long membership notices may
                                         * wait to leave together (conn.c); 0: never */
    uint64_t max_message_bytes;         /* 262144, >= 1 */

    uint64_t stun_per_ip_rps;           /* 5, 0 disables */
    uint64_t stun_global_rps;           /* 1000, 0 disables */

    uint64_t health_check_interval_secs;   /* 30 */
    uint64_t liveness_deadline_secs;       /* 90 */
    uint64_t max_connections_per_ip;       /* 64, 0 disables */
    uint64_t registrations_per_ip_per_sec; /* 10, 0 disables */
    uint64_t max_registrations_per_ip;     /* 128, 0 disables */
    uint64_t messages_per_conn_per_sec;    /* 256, 0 disables */
    uint64_t bytes_per_conn_per_sec;       /* 1048576, 0 disables */
    uint64_t max_relayed_bytes_per_conn;   /* 1073741824, 0 disables */
    uint64_t ban_threshold;                /* 20, 0 disables */
    uint64_t ban_duration_secs;            /* 300 */
    uint64_t ban_strike_window_secs;       /* 60 */

    const char *tls_cert_path;  /* --tls-cert / DIG_RELAY_TLS_CERT_PATH, NULL when unset */
    const char *tls_key_path;   /* --tls-key  / DIG_RELAY_TLS_KEY_PATH */
    enum tls_client_auth tls_client_auth;   /* --tls-client-auth, required */
    const char *tls_client_ca_path;         /* --tls-client-ca, NULL: no chain is validated */

    cidr_list trusted_proxies;  /* --trusted-proxy-cidrs: sources whose PROXY preface is read */

    uint64_t dht_sweep_interval_secs;   /* 60, 0 disables the RLY-009 sweep (ours) */
    const char *geoip_db;       /* --geoip-db / DIG_RELAY_GEOIP_DB, CONFIG_DEFAULT_GEOIP_DB */

    /* One relay across instances (cluster.h): unset, the relay stands alone. */
    const char *cluster_redis;        /* --cluster-redis URL[,URL...], NULL when unset */
    const char *cluster_instance_id;  /* --cluster-instance-id, NULL: random per start */

    enum log_level log_level;   /* --log-level, else RUST_LOG, else info */

    /* TURN (RFC 8656) beside STUN, off unless --turn. */
    bool turn;                              /* --turn */
    addr_t turn_public_ip;                  /* --turn-public-ip (port 0), family 0 when unset */
    const char *turn_realm;                 /* --turn-realm                   dig.net */
    const char *turn_secret_file;           /* --turn-secret-file, NULL: <state dir>/turn-secret */
    const char *state_dir;                  /* --state-dir, NULL: compat_default_state_dir() */
    addr_t turn_tcp_listen;                 /* --turn-tcp-listen              [::]:3478 */
    port_range turn_relay_ports;            /* --turn-relay-ports             49152-65535 */
    uint64_t turn_max_allocations;          /* 1000, >= 1 */
    uint64_t turn_max_allocations_per_user; /* 10, >= 1, at most the above */
    uint64_t turn_credential_ttl_secs;      /* 86400, >= 1 */
    uint64_t turn_max_bps;                  /* bytes/s per allocation and direction, 0: none */
    cidr_list turn_allow_peers;             /* --turn-allow-peer-cidrs */
    cidr_list turn_deny_peers;              /* --turn-deny-peer-cidrs */
    bool turn_allow_loopback_peers;         /* for tests; logged as a warning */

    enum config_scope scope;    /* --scope, service subcommands only */
    bool json;                  /* --json, service subcommands and probe */
    const char *probe_url;      /* probe URL (the argument after "probe") */
    const char *probe_ca;       /* --probe-ca: anchors for a wss:// probe, NULL: the system's */

    /* The text each option was given as (flag, else variable; NULL when neither), indexed like
     * config.c's option table: what `install` persists. Points into argv or the environment. */
    const char *given[CONFIG_MAX_OPTIONS];

    /* Which values came from a flag or env var (validation clamps defaults, refuses explicit). */
    bool set_max_connections_per_ip, set_max_connections;
    bool set_liveness_deadline, set_health_check_interval, set_idle_timeout;
    bool set_turn_max_allocations, set_turn_max_allocations_per_user;
    bool set_tls_client_auth;
} relay_config;

void config_defaults(relay_config *c);

/* Reads argv (argv[0] is the program) and the environment through getenv_fn (NULL: no env).
 * Returns 0 on success, 2 on a usage error with a message naming the flag in err. Sets
 * c->command to CMD_HELP / CMD_VERSION when asked. Validates (SPEC §7) before returning. */
int config_parse(relay_config *c, int argc, char **argv,
                 const char *(*getenv_fn)(const char *name), char *err, size_t errlen);

/* Validation alone (used by config_parse); 0 or 2 with a message naming the flags. */
int config_validate(relay_config *c, char *err, size_t errlen);

/* Where the TURN secret lives: --turn-secret-file, else <--state-dir>/turn-secret, else
 * <default_state_dir>/turn-secret (the caller passes the platform default). Writes the path into
 * buf; false when it does not fit. */
bool config_turn_secret_path(const relay_config *c, const char *default_state_dir, char *buf,
                             size_t cap);

/* The configuration as environment variables, for `install` to persist: every option that was
 * given (by flag or variable) with a value that differs from its default, as its variable name
 * (DIG_RELAY_*, RUST_LOG for --log-level) and the text it was given as. Iterate i from 0 while
 * it returns true; *name is NULL for an index that persists nothing. */
bool config_persisted_var(const relay_config *c, size_t i, const char **name, const char **value);

/* The --help text. */
const char *config_usage(void);

/* Parses a level word ("error".."trace"), or a RUST_LOG filter like "info" or
 * "dig_relay=debug,hyper=warn" (the most verbose directive that applies to dig_relay or is
 * global wins). Returns false when nothing usable is in it. */
bool config_parse_log_level(const char *s, enum log_level *out);

#endif
