/* Relay configuration: the reference server's flags and DIG_RELAY_* variables, defaults, and
 * validation with messages that name the flag to fix (see config.h).
 *
 * Every option is one row of a table: its flag, its environment variable, how its value is read,
 * where it is stored and the largest value it takes (the reference's integer width; seconds stop
 * at 2^32-1 so millisecond deadlines can never overflow). argv is scanned first so a structural
 * mistake is reported before anything else; then each option takes its flag, else its variable,
 * else keeps its default. An empty variable counts as unset. */
#include "config.h"
#include "buildinfo.h"
#include "clusterwire.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define SECS_MAX UINT32_MAX

enum value_kind {
    VALUE_ADDR,    /* SocketAddr text */
    VALUE_NUMBER,  /* non-negative decimal integer, at most `max` */
    VALUE_PATH,    /* any non-empty text */
    VALUE_CIDRS,   /* comma-separated IP networks, possibly none */
    VALUE_LEVEL,   /* --log-level word or filter */
    VALUE_CLIENT_AUTH, /* --tls-client-auth required|optional|none */
    VALUE_SCOPE,   /* --scope auto|system|user */
    VALUE_SWITCH,  /* --json: takes no value */
    VALUE_BOOL,    /* a switch that is stored: no value as a flag; 1/0, true/false... as a variable */
    VALUE_IP,      /* a bare IP address */
    VALUE_REALM,   /* 1..128 printable ASCII characters, no '"' */
    VALUE_PORTS,   /* LO-HI */
};

#define NO_SET SIZE_MAX

typedef struct {
    const char *flag;      /* without the leading "--" */
    const char *env;       /* NULL: flag only */
    enum value_kind kind;
    size_t offset;         /* of the value in relay_config */
    size_t size;           /* of the value: what `install` compares with the default */
    uint64_t max;          /* VALUE_NUMBER only */
    size_t set_offset;     /* of its set_* marker in relay_config, or NO_SET */
} option_def;

#define FIELD(f) offsetof(relay_config, f), sizeof(((relay_config *)0)->f)
#define SET_AT(f) offsetof(relay_config, f)

static const option_def options[] = {
    {"listen", "DIG_RELAY_LISTEN", VALUE_ADDR, FIELD(listen), 0, NO_SET},
    {"health-listen", "DIG_RELAY_HEALTH_LISTEN", VALUE_ADDR, FIELD(health_listen), 0, NO_SET},
    {"dashboard-listen", "DIG_RELAY_DASHBOARD_LISTEN", VALUE_ADDR, FIELD(dashboard_listen), 0,
     NO_SET},
    {"stun-listen", "DIG_RELAY_STUN_LISTEN", VALUE_ADDR, FIELD(stun_listen), 0, NO_SET},
    {"max-connections", "DIG_RELAY_MAX_CONNECTIONS", VALUE_NUMBER, FIELD(max_connections),
     SIZE_MAX, SET_AT(set_max_connections)},
    {"idle-timeout-secs", "DIG_RELAY_IDLE_TIMEOUT_SECS", VALUE_NUMBER, FIELD(idle_timeout_secs),
     SECS_MAX, SET_AT(set_idle_timeout)},
    {"stun-per-ip-rps", "DIG_RELAY_STUN_PER_IP_RPS", VALUE_NUMBER, FIELD(stun_per_ip_rps),
     UINT32_MAX, NO_SET},
    {"stun-global-rps", "DIG_RELAY_STUN_GLOBAL_RPS", VALUE_NUMBER, FIELD(stun_global_rps),
     UINT32_MAX, NO_SET},
    {"outbound-queue-capacity", "DIG_RELAY_OUTBOUND_QUEUE_CAPACITY", VALUE_NUMBER,
     FIELD(outbound_queue_capacity), SIZE_MAX, NO_SET},
    {"outbound-queue-bytes", "DIG_RELAY_OUTBOUND_QUEUE_BYTES", VALUE_NUMBER,
     FIELD(outbound_queue_bytes), SIZE_MAX, NO_SET},
    {"notice-hold-ms", "DIG_RELAY_NOTICE_HOLD_MS", VALUE_NUMBER, FIELD(notice_hold_ms), 10000, NO_SET},
    {"max-message-bytes", "DIG_RELAY_MAX_MESSAGE_BYTES", VALUE_NUMBER, FIELD(max_message_bytes),
     SIZE_MAX - 1, NO_SET},   /* the decoder's scratch copy adds one byte */
    {"register-timeout-secs", "DIG_RELAY_REGISTER_TIMEOUT_SECS", VALUE_NUMBER,
     FIELD(register_timeout_secs), SECS_MAX, NO_SET},
    {"health-check-interval-secs", "DIG_RELAY_HEALTH_CHECK_INTERVAL_SECS", VALUE_NUMBER,
     FIELD(health_check_interval_secs), SECS_MAX, SET_AT(set_health_check_interval)},
    {"liveness-deadline-secs", "DIG_RELAY_LIVENESS_DEADLINE_SECS", VALUE_NUMBER,
     FIELD(liveness_deadline_secs), SECS_MAX, SET_AT(set_liveness_deadline)},
    {"max-connections-per-ip", "DIG_RELAY_MAX_CONNECTIONS_PER_IP", VALUE_NUMBER,
     FIELD(max_connections_per_ip), UINT32_MAX, SET_AT(set_max_connections_per_ip)},
    {"registrations-per-ip-per-sec", "DIG_RELAY_REGISTRATIONS_PER_IP_PER_SEC", VALUE_NUMBER,
     FIELD(registrations_per_ip_per_sec), UINT32_MAX, NO_SET},
    {"max-registrations-per-ip", "DIG_RELAY_MAX_REGISTRATIONS_PER_IP", VALUE_NUMBER,
     FIELD(max_registrations_per_ip), UINT32_MAX, NO_SET},
    {"messages-per-conn-per-sec", "DIG_RELAY_MESSAGES_PER_CONN_PER_SEC", VALUE_NUMBER,
     FIELD(messages_per_conn_per_sec), UINT32_MAX, NO_SET},
    {"bytes-per-conn-per-sec", "DIG_RELAY_BYTES_PER_CONN_PER_SEC", VALUE_NUMBER,
     FIELD(bytes_per_conn_per_sec), UINT32_MAX, NO_SET},
    {"max-relayed-bytes-per-conn", "DIG_RELAY_MAX_RELAYED_BYTES_PER_CONN", VALUE_NUMBER,
     FIELD(max_relayed_bytes_per_conn), UINT64_MAX, NO_SET},
    {"ban-threshold", "DIG_RELAY_BAN_THRESHOLD", VALUE_NUMBER, FIELD(ban_threshold), UINT32_MAX,
     NO_SET},
    {"ban-duration-secs", "DIG_RELAY_BAN_DURATION_SECS", VALUE_NUMBER, FIELD(ban_duration_secs),
     SECS_MAX, NO_SET},
    {"ban-strike-window-secs", "DIG_RELAY_BAN_STRIKE_WINDOW_SECS", VALUE_NUMBER,
     FIELD(ban_strike_window_secs), SECS_MAX, NO_SET},
    {"tls-cert", "DIG_RELAY_TLS_CERT_PATH", VALUE_PATH, FIELD(tls_cert_path), 0, NO_SET},
    {"tls-key", "DIG_RELAY_TLS_KEY_PATH", VALUE_PATH, FIELD(tls_key_path), 0, NO_SET},
    {"trusted-proxy-cidrs", "DIG_RELAY_TRUSTED_PROXY_CIDRS", VALUE_CIDRS, FIELD(trusted_proxies),
     0, NO_SET},
    {"tls-client-auth", "DIG_RELAY_TLS_CLIENT_AUTH", VALUE_CLIENT_AUTH, FIELD(tls_client_auth), 0,
     SET_AT(set_tls_client_auth)},
    {"tls-client-ca", "DIG_RELAY_TLS_CLIENT_CA_PATH", VALUE_PATH, FIELD(tls_client_ca_path), 0,
     NO_SET},
    {"dht-sweep-interval-secs", "DIG_RELAY_DHT_SWEEP_INTERVAL_SECS", VALUE_NUMBER,
     FIELD(dht_sweep_interval_secs), SECS_MAX, NO_SET},
    {"geoip-db", "DIG_RELAY_GEOIP_DB", VALUE_PATH, FIELD(geoip_db), 0, NO_SET},
    {"cluster-redis", "DIG_RELAY_CLUSTER_REDIS", VALUE_PATH, FIELD(cluster_redis), 0, NO_SET},
    {"cluster-instance-id", "DIG_RELAY_CLUSTER_INSTANCE_ID", VALUE_PATH, FIELD(cluster_instance_id),
     0, NO_SET},
    {"probe-ca", "DIG_RELAY_PROBE_CA", VALUE_PATH, FIELD(probe_ca), 0, NO_SET},
    /* RUST_LOG is a tracing filter: from the environment, one with nothing usable for this
     * program leaves the level at info (as in the reference) instead of refusing to start. */
    {"log-level", "RUST_LOG", VALUE_LEVEL, FIELD(log_level), 0, NO_SET},
    {"turn", "DIG_RELAY_TURN", VALUE_BOOL, FIELD(turn), 0, NO_SET},
    {"turn-public-ip", "DIG_RELAY_TURN_PUBLIC_IP", VALUE_IP, FIELD(turn_public_ip), 0, NO_SET},
    {"turn-realm", "DIG_RELAY_TURN_REALM", VALUE_REALM, FIELD(turn_realm), 0, NO_SET},
    {"turn-secret-file", "DIG_RELAY_TURN_SECRET_FILE", VALUE_PATH, FIELD(turn_secret_file), 0,
     NO_SET},
    {"state-dir", "DIG_RELAY_STATE_DIR", VALUE_PATH, FIELD(state_dir), 0, NO_SET},
    {"turn-tcp-listen", "DIG_RELAY_TURN_TCP_LISTEN", VALUE_ADDR, FIELD(turn_tcp_listen), 0, NO_SET},
    {"turn-relay-ports", "DIG_RELAY_TURN_RELAY_PORTS", VALUE_PORTS, FIELD(turn_relay_ports), 0,
     NO_SET},
    {"turn-max-allocations", "DIG_RELAY_TURN_MAX_ALLOCATIONS", VALUE_NUMBER,
     FIELD(turn_max_allocations), UINT32_MAX, SET_AT(set_turn_max_allocations)},
    {"turn-max-allocations-per-user", "DIG_RELAY_TURN_MAX_ALLOCATIONS_PER_USER", VALUE_NUMBER,
     FIELD(turn_max_allocations_per_user), UINT32_MAX, SET_AT(set_turn_max_allocations_per_user)},
    {"turn-credential-ttl-secs", "DIG_RELAY_TURN_CREDENTIAL_TTL_SECS", VALUE_NUMBER,
     FIELD(turn_credential_ttl_secs), SECS_MAX, NO_SET},
    {"turn-max-bps", "DIG_RELAY_TURN_MAX_BPS", VALUE_NUMBER, FIELD(turn_max_bps), UINT64_MAX, NO_SET},
    {"turn-allow-peer-cidrs", "DIG_RELAY_TURN_ALLOW_PEER_CIDRS", VALUE_CIDRS,
     FIELD(turn_allow_peers), 0, NO_SET},
    {"turn-deny-peer-cidrs", "DIG_RELAY_TURN_DENY_PEER_CIDRS", VALUE_CIDRS, FIELD(turn_deny_peers),
     0, NO_SET},
    {"turn-allow-loopback-peers", "DIG_RELAY_TURN_ALLOW_LOOPBACK_PEERS", VALUE_BOOL,
     FIELD(turn_allow_loopback_peers), 0, NO_SET},
    {"scope", NULL, VALUE_SCOPE, FIELD(scope), 0, NO_SET},
    {"json", NULL, VALUE_SWITCH, FIELD(json), 0, NO_SET},
};

#define N_OPTIONS (sizeof options / sizeof options[0])
_Static_assert(N_OPTIONS <= CONFIG_MAX_OPTIONS, "raise CONFIG_MAX_OPTIONS in config.h");

static const struct {
    const char *name;
    enum config_command command;
} subcommands[] = {
    {"serve", CMD_SERVE},       {"help", CMD_HELP},         {"status", CMD_STATUS},
    {"install", CMD_INSTALL},   {"uninstall", CMD_UNINSTALL}, {"start", CMD_START},
    {"stop", CMD_STOP},         {"run-service", CMD_RUN_SERVICE}, {"probe", CMD_PROBE},
};

static addr_t unspecified_v6(uint16_t port)
{
    addr_t a;
    memset(&a, 0, sizeof a);
    a.family = 6;
    a.port = port;
    return a;
}

void config_defaults(relay_config *c)
{
    memset(c, 0, sizeof *c);
    c->command = CMD_SERVE;
    c->listen = unspecified_v6(9450);
    c->health_listen = unspecified_v6(9451);
    c->dashboard_listen = unspecified_v6(8080);
    c->stun_listen = unspecified_v6(3478);
    c->max_connections = 4096;
    c->idle_timeout_secs = 120;
    c->register_timeout_secs = 10;
    c->outbound_queue_capacity = 1024;
    c->outbound_queue_bytes = 8u * 1024 * 1024;
    c->notice_hold_ms = 250;
    c->max_message_bytes = 262144;
    c->stun_per_ip_rps = 5;
    c->stun_global_rps = 1000;
    c->health_check_interval_secs = 30;
    c->liveness_deadline_secs = 90;
    c->max_connections_per_ip = 64;
    c->registrations_per_ip_per_sec = 10;
    c->max_registrations_per_ip = 128;
    c->messages_per_conn_per_sec = 256;
    c->bytes_per_conn_per_sec = 1048576;
    c->max_relayed_bytes_per_conn = 1073741824;
    c->ban_threshold = 20;
    c->ban_duration_secs = 300;
    c->ban_strike_window_secs = 60;
    c->dht_sweep_interval_secs = 60;
    c->geoip_db = CONFIG_DEFAULT_GEOIP_DB;
    c->log_level = LOG_INFO;
    c->turn_realm = "dig.net";
    c->turn_tcp_listen = unspecified_v6(3478);
    c->turn_relay_ports.lo = 49152;
    c->turn_relay_ports.hi = 65535;
    c->turn_max_allocations = 1000;
    c->turn_max_allocations_per_user = 10;
    c->turn_credential_ttl_secs = 86400;
}

/* ---- log levels -------------------------------------------------------------------------- */

static bool span_equals_word(const char *s, size_t n, const char *word)
{
    size_t i = 0;
    for (; i < n && word[i] != '\0'; i++) {
        char ch = s[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        if (ch != word[i])
            return false;
    }
    return i == n && word[i] == '\0';
}

/* "off" has no quieter level here than error, which is always written anyway. */
static bool parse_level_word(const char *s, size_t n, enum log_level *out)
{
    static const char *const words[] = {"error", "warn", "info", "debug", "trace"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (span_equals_word(s, n, words[i])) {
            *out = (enum log_level)i;
            return true;
        }
    }
    if (span_equals_word(s, n, "off")) {
        *out = LOG_ERROR;
        return true;
    }
    return false;
}

static void trim_span(const char **s, size_t *n)
{
    while (*n > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

/* A tracing target selects this program when one is a string prefix of the other:
 * "dig" and "dig_relay" match the crate, "dig_relay::server" a part of it. */
static bool target_selects_us(const char *t, size_t n)
{
    static const char crate[] = "dig_relay";
    size_t crate_len = sizeof crate - 1;
    if (n <= crate_len)
        return memcmp(t, crate, n) == 0;
    return memcmp(t, crate, crate_len) == 0 && t[crate_len] == ':';
}

bool config_parse_log_level(const char *s, enum log_level *out)
{
    bool found = false;
    enum log_level best = LOG_ERROR;

    if (s == NULL)
        return false;
    while (*s != '\0') {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        const char *d = s;
        enum log_level level;
        bool applies;

        s += n + (comma ? 1 : 0);
        trim_span(&d, &n);
        if (n == 0)
            continue;
        const char *eq = memchr(d, '=', n);
        if (eq == NULL) {
            /* A bare word is a global level, or a target enabled at every level. */
            if (parse_level_word(d, n, &level)) {
                applies = true;
            } else {
                level = LOG_TRACE;
                applies = target_selects_us(d, n);
            }
        } else {
            const char *t = d, *v = eq + 1;
            size_t tn = (size_t)(eq - d), vn = n - tn - 1;
            const char *bracket = memchr(d, '[', tn);   /* span filters: target[span]=level */
            if (bracket != NULL)
                tn = (size_t)(bracket - d);
            trim_span(&t, &tn);
            trim_span(&v, &vn);
            if (!parse_level_word(v, vn, &level))
                return false;   /* one bad directive makes the whole filter unusable */
            applies = tn == 0 || target_selects_us(t, tn);
        }
        if (applies && (!found || level > best)) {
            best = level;
            found = true;
        }
    }
    if (found)
        *out = best;
    return found;
}

/* ---- values ------------------------------------------------------------------------------- */

static void describe_source(const option_def *o, bool from_env, char *buf, size_t len)
{
    if (from_env)
        snprintf(buf, len, "%s", o->env);
    else
        snprintf(buf, len, "--%s", o->flag);
}

/* Stores `value` into the option's field; 0, or 2 with a message naming its source. */
static int apply_value(relay_config *c, const option_def *o, const char *value, bool from_env,
                       char *err, size_t errlen)
{
    char *base = (char *)c;
    char source[64];
    describe_source(o, from_env, source, sizeof source);

    switch (o->kind) {
    case VALUE_ADDR: {
        addr_t a;
        if (!addr_parse(value, strlen(value), &a)) {
            snprintf(err, errlen,
                     "invalid value '%s' for %s: expected a socket address such as "
                     "0.0.0.0:9450 or [::]:9450",
                     value, source);
            return 2;
        }
        memcpy(base + o->offset, &a, sizeof a);
        break;
    }
    case VALUE_NUMBER: {
        uint64_t v = 0;
        const char *p = value;
        if (*p == '\0') {
            snprintf(err, errlen, "invalid value '' for %s: expected a non-negative integer",
                     source);
            return 2;
        }
        for (; *p != '\0'; p++) {
            if (*p < '0' || *p > '9') {
                snprintf(err, errlen,
                         "invalid value '%s' for %s: expected a non-negative integer", value,
                         source);
                return 2;
            }
            unsigned digit = (unsigned)(*p - '0');
            if (v > (o->max - digit) / 10) {
                snprintf(err, errlen, "invalid value '%s' for %s: must be at most %llu", value,
                         source, (unsigned long long)o->max);
                return 2;
            }
            v = v * 10 + digit;
        }
        memcpy(base + o->offset, &v, sizeof v);
        break;
    }
    case VALUE_PATH:
        if (*value == '\0') {
            snprintf(err, errlen, "invalid value '' for %s: expected a file path", source);
            return 2;
        }
        memcpy(base + o->offset, &value, sizeof value);
        break;
    case VALUE_CIDRS: {
        char why[160];
        if (!cidr_list_parse(value, (cidr_list *)(void *)(base + o->offset), why, sizeof why)) {
            snprintf(err, errlen, "invalid value for %s: %s", source, why);
            return 2;
        }
        break;
    }
    case VALUE_LEVEL: {
        enum log_level level;
        if (!config_parse_log_level(value, &level)) {
            if (from_env)
                return 0;
            snprintf(err, errlen,
                     "invalid value '%s' for %s: expected error, warn, info, debug or trace",
                     value, source);
            return 2;
        }
        memcpy(base + o->offset, &level, sizeof level);
        break;
    }
    case VALUE_CLIENT_AUTH: {
        static const char *const words[] = {"required", "optional", "none"};
        size_t i = 0;
        while (i < sizeof words / sizeof words[0] && strcmp(value, words[i]) != 0)
            i++;
        if (i == sizeof words / sizeof words[0]) {
            snprintf(err, errlen,
                     "invalid value '%s' for %s: expected required, optional or none", value,
                     source);
            return 2;
        }
        enum tls_client_auth mode = (enum tls_client_auth)i;
        memcpy(base + o->offset, &mode, sizeof mode);
        break;
    }
    case VALUE_SCOPE: {
        static const char *const names[] = {"auto", "system", "user"};
        enum config_scope scope = SCOPE_AUTO;
        while (scope <= SCOPE_USER && strcmp(value, names[scope]) != 0)
            scope++;
        if (scope > SCOPE_USER) {
            snprintf(err, errlen, "invalid value '%s' for %s: expected auto, system or user",
                     value, source);
            return 2;
        }
        memcpy(base + o->offset, &scope, sizeof scope);
        break;
    }
    case VALUE_SWITCH: {
        bool yes = true;
        memcpy(base + o->offset, &yes, sizeof yes);
        break;
    }
    case VALUE_BOOL: {
        /* As a flag it takes no value and means yes; as a variable it says yes or no. */
        static const char *const words[] = {"1", "true", "yes", "on", "0", "false", "no", "off"};
        size_t i = 0;
        bool on = true;
        if (from_env) {
            while (i < sizeof words / sizeof words[0] &&
                   !span_equals_word(value, strlen(value), words[i]))
                i++;
            if (i == sizeof words / sizeof words[0]) {
                snprintf(err, errlen, "invalid value '%s' for %s: expected 1 or 0 (true or false)",
                         value, source);
                return 2;
            }
            on = i < 4;
        }
        memcpy(base + o->offset, &on, sizeof on);
        break;
    }
    case VALUE_IP: {
        addr_t a;
        if (!addr_parse_ip(value, strlen(value), &a)) {
            snprintf(err, errlen,
                     "invalid value '%s' for %s: expected an IP address such as 203.0.113.7 or "
                     "2001:db8::7",
                     value, source);
            return 2;
        }
        memcpy(base + o->offset, &a, sizeof a);
        break;
    }
    case VALUE_REALM: {
        size_t n = strlen(value);
        bool printable = n >= 1 && n <= 128;
        for (size_t i = 0; i < n && printable; i++)
            printable = value[i] >= 0x20 && value[i] < 0x7f && value[i] != '"';
        if (!printable) {
            snprintf(err, errlen,
                     "invalid value '%s' for %s: expected 1 to 128 printable ASCII characters "
                     "without '\"'",
                     value, source);
            return 2;
        }
        memcpy(base + o->offset, &value, sizeof value);
        break;
    }
    case VALUE_PORTS: {
        port_range r;
        unsigned long ends[2] = {0, 0};
        const char *p = value;
        bool ok = true;
        for (int k = 0; k < 2 && ok; k++) {
            const char *digits = p;
            while (*p >= '0' && *p <= '9' && ends[k] <= 65535)
                ends[k] = ends[k] * 10 + (unsigned long)(*p++ - '0');
            ok = p > digits && ends[k] >= 1 && ends[k] <= 65535 && *p == (k == 0 ? '-' : '\0');
            p++;
        }
        if (!ok || ends[0] > ends[1]) {
            snprintf(err, errlen,
                     "invalid value '%s' for %s: expected LO-HI, two ports from 1 to 65535 with "
                     "LO <= HI, such as 49152-65535",
                     value, source);
            return 2;
        }
        r.lo = (uint16_t)ends[0];
        r.hi = (uint16_t)ends[1];
        memcpy(base + o->offset, &r, sizeof r);
        break;
    }
    }
    if (o->set_offset != NO_SET) {
        bool yes = true;
        memcpy(base + o->set_offset, &yes, sizeof yes);
    }
    return 0;
}

/* ---- argv --------------------------------------------------------------------------------- */

static const option_def *find_option(const char *name, size_t n)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strlen(options[i].flag) == n && memcmp(options[i].flag, name, n) == 0)
            return &options[i];
    return NULL;
}

bool config_persisted_var(const relay_config *c, size_t i, const char **name, const char **value)
{
    relay_config defaults;
    bool on;
    if (i >= N_OPTIONS)
        return false;
    *name = NULL;
    *value = NULL;
    const option_def *o = &options[i];
    if (o->env == NULL || c->given[i] == NULL)
        return true;
    config_defaults(&defaults);
    if (memcmp((const char *)c + o->offset, (const char *)&defaults + o->offset, o->size) == 0)
        return true;
    *name = o->env;
    *value = c->given[i];
    if (o->kind == VALUE_BOOL) {   /* as a flag it has no text; as a variable, any of its words */
        memcpy(&on, (const char *)c + o->offset, sizeof on);
        *value = on ? "1" : "0";
    }
    return true;
}

int config_parse(relay_config *c, int argc, char **argv,
                 const char *(*getenv_fn)(const char *name), char *err, size_t errlen)
{
    const char *given[N_OPTIONS] = {0};
    bool subcommand_seen = false;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            c->command = CMD_HELP;
            return 0;
        }
        if (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0) {
            c->command = CMD_VERSION;
            return 0;
        }
        if (strncmp(arg, "--", 2) == 0 && arg[2] != '\0') {
            const char *name = arg + 2, *eq = strchr(name, '=');
            size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
            const option_def *o = find_option(name, name_len);
            const char *value;
            if (o == NULL) {
                snprintf(err, errlen, "unknown flag '--%.*s'", (int)name_len, name);
                return 2;
            }
            size_t idx = (size_t)(o - options);
            if (given[idx] != NULL) {
                snprintf(err, errlen, "--%s was given more than once", o->flag);
                return 2;
            }
            if (o->kind == VALUE_SWITCH || o->kind == VALUE_BOOL) {
                if (eq != NULL) {
                    snprintf(err, errlen, "--%s takes no value", o->flag);
                    return 2;
                }
                value = "";
            } else if (eq != NULL) {
                value = eq + 1;
            } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
                value = argv[++i];
            } else {
                snprintf(err, errlen, "missing value for --%s", o->flag);
                return 2;
            }
            given[idx] = value;
            continue;
        }
        if (arg[0] == '-') {
            snprintf(err, errlen, "unknown flag '%s'", arg);
            return 2;
        }
        if (c->command == CMD_PROBE && c->probe_url == NULL) {
            c->probe_url = arg;
            continue;
        }
        if (subcommand_seen) {
            snprintf(err, errlen, "unexpected argument '%s'", arg);
            return 2;
        }
        subcommand_seen = true;
        size_t k = 0;
        while (k < sizeof subcommands / sizeof subcommands[0] && strcmp(arg, subcommands[k].name) != 0)
            k++;
        if (k == sizeof subcommands / sizeof subcommands[0]) {
            snprintf(err, errlen,
                     "unknown subcommand '%s' (expected serve, status, install, uninstall, start, "
                     "stop or probe)",
                     arg);
            return 2;
        }
        c->command = subcommands[k].command;
        if (c->command == CMD_HELP)
            return 0;
    }
    if (c->command == CMD_PROBE && c->probe_url == NULL) {
        snprintf(err, errlen, "probe needs the relay's URL, e.g. 'dig-relay probe ws://relay.example:9450'");
        return 2;
    }

    for (size_t i = 0; i < N_OPTIONS; i++) {
        const option_def *o = &options[i];
        int rc;
        if (given[i] != NULL) {
            rc = apply_value(c, o, given[i], false, err, errlen);
            c->given[i] = given[i];
        } else {
            const char *env = (o->env && getenv_fn) ? getenv_fn(o->env) : NULL;
            if (env == NULL || *env == '\0')
                continue;
            rc = apply_value(c, o, env, true, err, errlen);
            c->given[i] = env;
        }
        if (rc != 0)
            return rc;
    }
    return config_validate(c, err, errlen);
}

/* ---- validation --------------------------------------------------------------------------- */

/* "--flag (N)" for a value the operator set, "--flag (N, the default)" for one they did not. */
static const char *flag_value(char *buf, size_t len, const char *flag, uint64_t v, bool set)
{
    snprintf(buf, len, "--%s (%llu%s)", flag, (unsigned long long)v, set ? "" : ", the default");
    return buf;
}

int config_validate(relay_config *c, char *err, size_t errlen)
{
    char a[96], b[96];

    if (c->max_connections < 1) {
        snprintf(err, errlen, "--max-connections must be at least 1");
        return 2;
    }
    if (c->idle_timeout_secs == 0) {
        snprintf(err, errlen, "--idle-timeout-secs must be greater than 0");
        return 2;
    }
    if (c->outbound_queue_capacity < 1) {
        snprintf(err, errlen, "--outbound-queue-capacity must be at least 1");
        return 2;
    }
    /* Queues count messages in 32 bits; more than that is no count limit at all, so clamp
     * rather than refuse a value the Rust server takes. */
    if (c->outbound_queue_capacity > UINT32_MAX)
        c->outbound_queue_capacity = UINT32_MAX;
    if (c->outbound_queue_bytes < 1) {
        snprintf(err, errlen, "--outbound-queue-bytes must be at least 1");
        return 2;
    }
    if (c->max_message_bytes < 1) {
        snprintf(err, errlen, "--max-message-bytes must be at least 1");
        return 2;
    }
    if (c->register_timeout_secs == 0) {
        snprintf(err, errlen, "--register-timeout-secs must be greater than 0");
        return 2;
    }
    if (c->health_check_interval_secs == 0) {
        snprintf(err, errlen, "--health-check-interval-secs must be greater than 0");
        return 2;
    }
    if (c->liveness_deadline_secs == 0) {
        snprintf(err, errlen, "--liveness-deadline-secs must be greater than 0");
        return 2;
    }
    if ((c->tls_cert_path == NULL) != (c->tls_key_path == NULL)) {
        snprintf(err, errlen, "--tls-cert and --tls-key must be set together (%s is missing)",
                 c->tls_cert_path == NULL ? "--tls-cert" : "--tls-key");
        return 2;
    }
    if (c->tls_cert_path == NULL && (c->set_tls_client_auth || c->tls_client_ca_path != NULL)) {
        snprintf(err, errlen, "%s only applies to TLS, which needs --tls-cert and --tls-key",
                 c->set_tls_client_auth ? "--tls-client-auth" : "--tls-client-ca");
        return 2;
    }
    if (c->tls_client_ca_path != NULL && c->tls_client_auth == TLS_CLIENT_AUTH_NONE) {
        snprintf(err, errlen,
                 "--tls-client-ca cannot be used with --tls-client-auth none: no client "
                 "certificate is asked for, so there is no chain to check");
        return 2;
    }
    if (c->ban_threshold > 0 && c->ban_duration_secs == 0) {
        snprintf(err, errlen,
                 "--ban-duration-secs must be greater than 0 while --ban-threshold is non-zero "
                 "(--ban-threshold 0 disables the ban list)");
        return 2;
    }
    if (c->ban_threshold > 0 && c->ban_strike_window_secs == 0) {
        snprintf(err, errlen,
                 "--ban-strike-window-secs must be greater than 0 while --ban-threshold is "
                 "non-zero (--ban-threshold 0 disables the ban list)");
        return 2;
    }

    /* Orderings between values. A default that conflicts only because the operator lowered the
     * other value is lowered to fit; a value the operator set is never changed, so a conflict
     * it takes part in is refused with both flags named. */
    bool liveness_lowered = false;
    if (c->liveness_deadline_secs >= c->idle_timeout_secs) {
        if (c->set_liveness_deadline) {
            snprintf(err, errlen, "%s must be less than %s: the idle timeout is the longer backstop",
                     flag_value(a, sizeof a, "liveness-deadline-secs", c->liveness_deadline_secs, true),
                     flag_value(b, sizeof b, "idle-timeout-secs", c->idle_timeout_secs,
                                c->set_idle_timeout));
            return 2;
        }
        if (c->idle_timeout_secs < 2) {
            snprintf(err, errlen,
                     "--idle-timeout-secs must be at least 2: the liveness deadline "
                     "(--liveness-deadline-secs) has to be shorter than it and at least 1");
            return 2;
        }
        c->liveness_deadline_secs = c->idle_timeout_secs - 1;
        liveness_lowered = true;
    }
    if (c->health_check_interval_secs > c->liveness_deadline_secs) {
        if (c->set_health_check_interval) {
            if (liveness_lowered)
                snprintf(b, sizeof b,
                         "--liveness-deadline-secs (%llu, lowered to stay below "
                         "--idle-timeout-secs)",
                         (unsigned long long)c->liveness_deadline_secs);
            else
                flag_value(b, sizeof b, "liveness-deadline-secs", c->liveness_deadline_secs,
                           c->set_liveness_deadline);
            snprintf(err, errlen, "%s must not exceed %s: the sweep must run within one deadline",
                     flag_value(a, sizeof a, "health-check-interval-secs",
                                c->health_check_interval_secs, true),
                     b);
            return 2;
        }
        c->health_check_interval_secs = c->liveness_deadline_secs;
    }
    if (c->turn && c->turn_public_ip.family == 0) {
        snprintf(err, errlen,
                 "--turn-public-ip is required with --turn: the address clients reach the relay "
                 "at, put in XOR-RELAYED-ADDRESS and in the credential URIs");
        return 2;
    }
    if (c->turn_public_ip.family != 0) {
        addr_t ip = c->turn_public_ip;
        char text[ADDR_STRLEN];
        bool mapped = ip.family == 6 && ip.ip[10] == 0xff && ip.ip[11] == 0xff;
        addr_unmap(&ip);
        bool unspecified = ip.family == 4 ? ip.ip[0] == 0 : addr_is_unspecified(&ip);
        bool multicast = ip.family == 4 ? ip.ip[0] >= 224 : ip.ip[0] == 0xff;
        if (mapped || unspecified || multicast) {
            addr_format_ip(&c->turn_public_ip, text);
            snprintf(err, errlen, "--turn-public-ip %s is not a unicast %s address clients can reach",
                     text, mapped ? "IPv6 (it is IPv4-mapped: give the IPv4 address)" : "IP");
            return 2;
        }
    }
    if (c->turn_max_allocations < 1) {
        snprintf(err, errlen, "--turn-max-allocations must be at least 1");
        return 2;
    }
    if (c->turn_max_allocations_per_user < 1) {
        snprintf(err, errlen, "--turn-max-allocations-per-user must be at least 1");
        return 2;
    }
    if (c->turn_credential_ttl_secs < 1) {
        snprintf(err, errlen, "--turn-credential-ttl-secs must be at least 1");
        return 2;
    }
    if (c->turn_max_allocations_per_user > c->turn_max_allocations) {
        if (c->set_turn_max_allocations_per_user) {
            snprintf(err, errlen, "%s must not exceed %s",
                     flag_value(a, sizeof a, "turn-max-allocations-per-user",
                                c->turn_max_allocations_per_user, true),
                     flag_value(b, sizeof b, "turn-max-allocations", c->turn_max_allocations,
                                c->set_turn_max_allocations));
            return 2;
        }
        c->turn_max_allocations_per_user = c->turn_max_allocations;
    }
    if (c->max_connections_per_ip != 0 && c->max_connections_per_ip > c->max_connections) {
        if (c->set_max_connections_per_ip) {
            snprintf(err, errlen, "%s must not exceed %s (0 disables the per-IP cap)",
                     flag_value(a, sizeof a, "max-connections-per-ip", c->max_connections_per_ip,
                                true),
                     flag_value(b, sizeof b, "max-connections", c->max_connections,
                                c->set_max_connections));
            return 2;
        }
        c->max_connections_per_ip = c->max_connections;
    }
    if (c->cluster_instance_id != NULL && !cluster_instance_id_valid(c->cluster_instance_id)) {
        snprintf(err, errlen, "--cluster-instance-id must be 1-64 of A-Z a-z 0-9 . _ -");
        return 2;
    }
    if (c->cluster_redis != NULL) {
        cluster_url urls[CLUSTER_MAX_SHARDS];
        char why[160];
        if (cluster_parse_urls(c->cluster_redis, urls, why, sizeof why) == 0) {
            snprintf(err, errlen, "--cluster-redis: %s", why);
            return 2;
        }
        if (!DIG_HAVE_CLUSTER) {
            snprintf(err, errlen,
                     "--cluster-redis: cluster support is not built in to this dig-relay (it was "
                     "built without hiredis, libhiredis-dev); run it standalone or use a build "
                     "that lists cluster in --version");
            return 2;
        }
    }
    /* Last, so every other mistake is reported first: accepting the flags without terminating
     * TLS would claim a protection the relay does not give. */
    if (c->tls_cert_path != NULL && !DIG_HAVE_TLS) {
        snprintf(err, errlen,
                 "--tls-cert and --tls-key: TLS is not built in to this dig-relay (it was built "
                 "without BearSSL, libbearssl-dev); terminate TLS in front of it (a load "
                 "balancer or proxy) and leave both unset");
        return 2;
    }
    return 0;
}

bool config_turn_secret_path(const relay_config *c, const char *default_state_dir, char *buf,
                             size_t cap)
{
    int n;
    if (c->turn_secret_file)
        n = snprintf(buf, cap, "%s", c->turn_secret_file);
    else
        n = snprintf(buf, cap, "%s/turn-secret", c->state_dir ? c->state_dir : default_state_dir);
    return n > 0 && (size_t)n < cap;
}

/* ---- help --------------------------------------------------------------------------------- */

#if DIG_HAVE_TLS
#define TLS_BUILD_NOTE \
    "  A dig-relay built without TLS refuses these flags; --version lists what is built in.\n"
#else
#define TLS_BUILD_NOTE \
    "  This build has no TLS: it refuses to start when any of these is set. Leave them\n" \
    "  unset and terminate TLS in front of the relay; it then serves plain ws://.\n"
#endif

const char *config_usage(void)
{
    return
        "dig-relay - DIG Network NAT-traversal relay (rendezvous + circuit relay)\n"
        "\n"
        "Nodes behind NAT hold a WebSocket to the relay, register, discover peers, coordinate\n"
        "hole punching and exchange relayed messages through it; it also answers STUN over UDP.\n"
        "\n"
        "Usage: dig-relay [SUBCOMMAND] [OPTIONS]\n"
        "\n"
        "Subcommands:\n"
        "  serve      Run the relay in the foreground (the default when none is given).\n"
        "  status     Probe GET /health at --health-listen ([::] and 0.0.0.0 are asked on the\n"
        "             same family's loopback, 2 s timeouts); exit 0 when serving, 1 when not.\n"
        "  install    Register the relay as an auto-starting OS service running 'serve' with\n"
        "             the options given here persisted as DIG_RELAY_* variables: systemd unit\n"
        "             dignetwork-dig-relay.service, launchd label net.dignetwork.dig-relay, or\n"
        "             Windows service net.dignetwork.dig-relay. A registration at the other\n"
        "             scope is removed first.\n"
        "  uninstall  Remove the service (both scopes with --scope auto); fails unless nothing\n"
        "             is left registered.\n"
        "  start      Start the installed service.\n"
        "  stop       Stop the running service.\n"
        "  probe URL  Check a relay as a node would (ws://HOST:PORT, or wss:// with TLS built\n"
        "             in): register, ping, relay to itself, GET /health and ask STUN at the same\n"
        "             host; exit 0 when all answered. Over wss://, --tls-cert and --tls-key are\n"
        "             the client certificate it presents (and the peer id it registers).\n"
        "\n"
        "Service subcommands (install, uninstall, start, stop; status and probe take --json):\n"
        "  --scope auto|system|user           default auto: system when run as root, else user\n"
        "      (Windows is always system). A system install by a non-root user is refused.\n"
        "  --json                             print {\"ok\":true,\"result\":{...}} or\n"
        "      {\"error\":{\"message\":...},\"ok\":false} instead of text.\n"
        "  --probe-ca PATH                    DIG_RELAY_PROBE_CA               default the system's\n"
        "      CA certificates (PEM) a wss:// probe trusts the relay's certificate by (a\n"
        "      self-signed relay: its own certificate).\n"
        "\n"
        "Every option can be given as --flag VALUE or --flag=VALUE, or through its environment\n"
        "variable. A flag beats its variable, which beats the default; an empty variable is unset.\n"
        "\n"
        "Listeners ([::] is dual-stack: it accepts IPv6 and IPv4; an IPv4 address binds IPv4 only):\n"
        "  --listen ADDR                      DIG_RELAY_LISTEN                 default [::]:9450\n"
        "      Relay WebSocket listener (JSON messages over WebSocket); other HTTP requests\n"
        "      get GET /health and the pages of the HTTP routes.\n"
        "  --health-listen ADDR               DIG_RELAY_HEALTH_LISTEN          default [::]:9451\n"
        "      HTTP GET /health listener for load-balancer checks.\n"
        "  --dashboard-listen ADDR            DIG_RELAY_DASHBOARD_LISTEN       default [::]:8080\n"
        "      Plain-HTTP listener that redirects every request to https:// (301). Failing\n"
        "      to bind it is a warning, not fatal.\n"
        "  --stun-listen ADDR                 DIG_RELAY_STUN_LISTEN            default [::]:3478\n"
        "      STUN (RFC 5389) Binding responder, UDP.\n"
        "\n"
        "Connections and messages:\n"
        "  --max-connections N                DIG_RELAY_MAX_CONNECTIONS        default 4096\n"
        "      Open relay connections at once, registered or not; at least 1.\n"
        "  --idle-timeout-secs SECS           DIG_RELAY_IDLE_TIMEOUT_SECS      default 120\n"
        "      Silence after which a connection is closed; greater than 0.\n"
        "  --register-timeout-secs SECS       DIG_RELAY_REGISTER_TIMEOUT_SECS  default 10\n"
        "      Time a new connection has to register; greater than 0.\n"
        "  --outbound-queue-capacity N        DIG_RELAY_OUTBOUND_QUEUE_CAPACITY  default 1024\n"
        "      Messages queued to one slow reader before further ones to it are dropped.\n"
        "  --outbound-queue-bytes BYTES       DIG_RELAY_OUTBOUND_QUEUE_BYTES   default 8388608\n"
        "      Bytes queued to one slow reader before further messages to it are dropped.\n"
        "  --notice-hold-ms MS                DIG_RELAY_NOTICE_HOLD_MS         default 250\n"
        "      How long peer_connected/peer_disconnected may wait to leave together once a\n"
        "      connection was just sent some; at most 10000, 0 sends each at once.\n"
        "  --max-message-bytes BYTES          DIG_RELAY_MAX_MESSAGE_BYTES      default 262144\n"
        "      Largest inbound WebSocket message; a larger one closes the connection.\n"
        "\n"
        "Health sweep:\n"
        "  --health-check-interval-secs SECS  DIG_RELAY_HEALTH_CHECK_INTERVAL_SECS  default 30\n"
        "      How often registrations are checked for liveness; at most the liveness deadline.\n"
        "  --liveness-deadline-secs SECS      DIG_RELAY_LIVENESS_DEADLINE_SECS  default 90\n"
        "      Silence after which a registration is pruned; less than the idle timeout.\n"
        "  A default that conflicts only because another value was lowered is lowered to fit\n"
        "  (e.g. --idle-timeout-secs 30 alone sets the deadline and interval to 29).\n"
        "\n"
        "Abuse limits (0 disables each one):\n"
        "  --max-connections-per-ip N         DIG_RELAY_MAX_CONNECTIONS_PER_IP  default 64\n"
        "      Open connections from one source IP; at most --max-connections.\n"
        "  --registrations-per-ip-per-sec N   DIG_RELAY_REGISTRATIONS_PER_IP_PER_SEC  default 10\n"
        "      Register attempts per second from one source IP.\n"
        "  --max-registrations-per-ip N       DIG_RELAY_MAX_REGISTRATIONS_PER_IP  default 128\n"
        "      Live registrations held by one source IP.\n"
        "  --messages-per-conn-per-sec N      DIG_RELAY_MESSAGES_PER_CONN_PER_SEC  default 256\n"
        "      Inbound messages per second on one connection before it is closed.\n"
        "  --bytes-per-conn-per-sec BYTES     DIG_RELAY_BYTES_PER_CONN_PER_SEC  default 1048576\n"
        "      Inbound bytes per second on one connection before it is closed.\n"
        "  --max-relayed-bytes-per-conn BYTES DIG_RELAY_MAX_RELAYED_BYTES_PER_CONN\n"
        "      Inbound bytes over a connection's life before it is closed; default 1073741824.\n"
        "  --ban-threshold N                  DIG_RELAY_BAN_THRESHOLD          default 20\n"
        "      Strikes (per-IP limit trips) within the window that ban a source; 0 disables bans.\n"
        "  --ban-duration-secs SECS           DIG_RELAY_BAN_DURATION_SECS      default 300\n"
        "      How long a banned source is refused at accept.\n"
        "  --ban-strike-window-secs SECS      DIG_RELAY_BAN_STRIKE_WINDOW_SECS  default 60\n"
        "      Window over which strikes add up.\n"
        "  --stun-per-ip-rps N                DIG_RELAY_STUN_PER_IP_RPS        default 5\n"
        "      STUN responses per second to one source IP.\n"
        "  --stun-global-rps N                DIG_RELAY_STUN_GLOBAL_RPS        default 1000\n"
        "      STUN responses per second in total.\n"
        "\n"
        "Load balancers:\n"
        "  --trusted-proxy-cidrs LIST         DIG_RELAY_TRUSTED_PROXY_CIDRS    default empty\n"
        "      Comma-separated IPs or CIDR networks (IPv4 or IPv6) of proxies whose PROXY\n"
        "      protocol header (v2, or v1) gives a connection's real source address. Empty: no\n"
        "      header is ever read; a header from any other source is a malformed request.\n"
        "\n"
        "Operator pages (/, /stats.json, /metrics, /dht, /map on the --listen port):\n"
        "  --dht-sweep-interval-secs SECS     DIG_RELAY_DHT_SWEEP_INTERVAL_SECS  default 60\n"
        "      How often registered nodes are asked for their DHT provider records (RLY-009);\n"
        "      answers within 5 s make the /dht view. 0 disables the sweep.\n"
        "  --geoip-db PATH                    DIG_RELAY_GEOIP_DB\n"
        "      MaxMind-format database locating peers on /map; default\n"
        "      " CONFIG_DEFAULT_GEOIP_DB ". Missing or unreadable: every peer\n"
        "      is of unknown location.\n"
        "\n"
        "One relay across machines (instances behind a load balancer, sharing through Redis):\n"
        "  --cluster-redis URL[,URL...]       DIG_RELAY_CLUSTER_REDIS          default unset\n"
        "      redis://[:password@]host:port[/db] of the Redis every instance shares; several\n"
        "      comma-separated URLs split the load by a stable hash (every instance must list\n"
        "      the same ones in the same order). Unset: the relay stands alone.\n"
        "  --cluster-instance-id ID           DIG_RELAY_CLUSTER_INSTANCE_ID    default random\n"
        "      This instance's name in the cluster: 1-64 of A-Z a-z 0-9 . _ -, unique per\n"
        "      running instance. Unset: a random one per start.\n"
        "\n"
        "TLS on the relay listener (--tls-cert and --tls-key: both or neither):\n"
        "  --tls-cert PATH                    DIG_RELAY_TLS_CERT_PATH          default unset\n"
        "      The relay's certificate chain (PEM, its own certificate first). With --tls-key\n"
        "      the relay listener speaks TLS 1.2 (wss://, https://); the health, redirect and\n"
        "      STUN listeners stay plain. Unset: plain ws://, TLS ends in front of the relay.\n"
        "  --tls-key PATH                     DIG_RELAY_TLS_KEY_PATH           default unset\n"
        "      Its private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC, unencrypted).\n"
        "  --tls-client-auth MODE             DIG_RELAY_TLS_CLIENT_AUTH        default required\n"
        "      required: a client must present a certificate (ECDSA P-256/P-384 or RSA\n"
        "      2048-4096) and prove it holds its key, and may only register the peer id of\n"
        "      that certificate (SHA-256 of its public key; else error 6). optional: the same\n"
        "      for a client that presents one; one without is served as on plain ws://.\n"
        "      none: no client certificate is asked for.\n"
        "  --tls-client-ca PATH               DIG_RELAY_TLS_CLIENT_CA_PATH     default unset\n"
        "      CA certificates (PEM) client chains must lead to. Unset: no chain is checked.\n"
        TLS_BUILD_NOTE
        "\n"
        "TURN (RFC 8656) beside STUN, off by default. TURN over UDP shares the STUN socket;\n"
        "registered nodes get time-limited credentials with get_turn_credentials:\n"
        "  --turn                             DIG_RELAY_TURN=1                 default off\n"
        "      Serve TURN. Needs --turn-public-ip.\n"
        "  --turn-public-ip IP                DIG_RELAY_TURN_PUBLIC_IP         default unset\n"
        "      Address clients reach the relay at: the relayed addresses and the credential\n"
        "      URIs carry it. An IPv6 address gives IPv6 allocations.\n"
        "  --turn-realm REALM                 DIG_RELAY_TURN_REALM             default dig.net\n"
        "      Realm of the long-term credentials.\n"
        "  --turn-secret-file PATH            DIG_RELAY_TURN_SECRET_FILE\n"
        "      Shared secret (the file's text, a trailing newline ignored, as coturn's\n"
        "      static-auth-secret); default <state dir>/turn-secret, created with 32 random\n"
        "      bytes as hex and mode 0600 when missing; refused when group or others can read it.\n"
        "  --state-dir PATH                   DIG_RELAY_STATE_DIR\n"
        "      Where the relay keeps state; default /var/lib/dig-relay as root, else\n"
        "      $XDG_STATE_HOME/dig-relay or ~/.local/state/dig-relay (%ProgramData%\\dig-relay\n"
        "      on Windows).\n"
        "  --turn-tcp-listen ADDR             DIG_RELAY_TURN_TCP_LISTEN        default [::]:3478\n"
        "      TURN over TCP listener.\n"
        "  --turn-relay-ports LO-HI           DIG_RELAY_TURN_RELAY_PORTS       default 49152-65535\n"
        "      UDP ports the relayed addresses are taken from.\n"
        "  --turn-max-allocations N           DIG_RELAY_TURN_MAX_ALLOCATIONS   default 1000\n"
        "      Allocations at once, in total; at least 1.\n"
        "  --turn-max-allocations-per-user N  DIG_RELAY_TURN_MAX_ALLOCATIONS_PER_USER  default 10\n"
        "      Allocations at once per user (the id part of the username); at least 1.\n"
        "  --turn-credential-ttl-secs SECS    DIG_RELAY_TURN_CREDENTIAL_TTL_SECS  default 86400\n"
        "      Lifetime of the credentials get_turn_credentials hands out.\n"
        "  --turn-max-bps BYTES               DIG_RELAY_TURN_MAX_BPS           default 0\n"
        "      Bytes per second each allocation may relay in each direction, as coturn's\n"
        "      max-bps; 0: no limit.\n"
        "  --turn-allow-peer-cidrs LIST       DIG_RELAY_TURN_ALLOW_PEER_CIDRS  default empty\n"
        "      Peers allowed although the default policy refuses them (loopback, private,\n"
        "      link-local, CGNAT, unique-local, multicast, broadcast, the relay's own addresses).\n"
        "  --turn-deny-peer-cidrs LIST        DIG_RELAY_TURN_DENY_PEER_CIDRS   default empty\n"
        "      Peers refused as well; a deny beats an allow. Lists: 10.0.0.0/8,fc00::/7.\n"
        "  --turn-allow-loopback-peers        DIG_RELAY_TURN_ALLOW_LOOPBACK_PEERS=1\n"
        "      Allow loopback peers (for tests; logged as a warning).\n"
        "\n"
        "Logging (timestamped lines on stderr):\n"
        "  --log-level LEVEL                  RUST_LOG                         default info\n"
        "      error, warn, info, debug or trace. Without the flag, RUST_LOG is read as a\n"
        "      tracing filter (\"debug\", \"dig_relay=trace,hyper=warn\"); the most verbose\n"
        "      directive for dig_relay or for everything wins, and an unusable one means info.\n"
        "\n"
        "Other:\n"
        "  -h, --help                         print this help\n"
        "  -V, --version                      print the version\n";
}
