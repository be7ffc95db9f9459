/* Unit tests for config.c: defaults, flag > env > default precedence, both flag forms, the
 * usage errors (each naming its flag or variable), validation and the clamping of defaults,
 * RUST_LOG filters, the TURN options and their errors, and a help text that documents every
 * option. */
#include "buildinfo.h"
#include "config.h"
#include "test.h"

#include <stdarg.h>
#include <stdint.h>
#include <string.h>

/* A fake environment: name/value pairs the test sets, read through fake_getenv. */
static const char *env_names[16], *env_values[16];
static size_t env_count;

static void env_clear(void) { env_count = 0; }

static void env_set(const char *name, const char *value)
{
    env_names[env_count] = name;
    env_values[env_count] = value;
    env_count++;
}

static const char *fake_getenv(const char *name)
{
    for (size_t i = 0; i < env_count; i++)
        if (strcmp(env_names[i], name) == 0)
            return env_values[i];
    return NULL;
}

static relay_config cfg;
static char err[512];

/* Runs config_parse over the NULL-terminated argument list (argv[0] supplied). */
static int parse_args(const char *first, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;
    argv[argc++] = (char *)"dig-relay";
    va_start(ap, first);
    for (const char *a = first; a != NULL; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    err[0] = '\0';
    config_defaults(&cfg);
    return config_parse(&cfg, argc, argv, fake_getenv, err, sizeof err);
}
#define PARSE(...) parse_args(__VA_ARGS__, (const char *)NULL)

static bool err_has(const char *needle)
{
    if (strstr(err, needle) != NULL)
        return true;
    printf("  error \"%s\" lacks \"%s\"\n", err, needle);
    return false;
}

/* What a parse setting --tls-cert and --tls-key returns: 0 when TLS is built in; without it
 * validation refuses them (last, after every other value was read and checked). */
static int tls_rc(void) { return DIG_HAVE_TLS ? 0 : 2; }

static void check_addr(const addr_t *a, const char *want, int line)
{
    char out[ADDR_STRLEN];
    addr_format(a, out);
    if (strcmp(out, want) != 0) {
        printf("  line %d: address %s, expected %s\n", line, out, want);
        test_cur_failed = 1;
    }
}
#define CHECK_ADDR(a, want) check_addr(&(a), want, __LINE__)

static void test_defaults(void)
{
    env_clear();
    REQUIRE(PARSE(NULL) == 0);
    CHECK_EQ_INT(cfg.command, CMD_SERVE);
    CHECK_ADDR(cfg.listen, "[::]:9450");
    CHECK_ADDR(cfg.health_listen, "[::]:9451");
    CHECK_ADDR(cfg.dashboard_listen, "[::]:8080");
    CHECK_ADDR(cfg.stun_listen, "[::]:3478");
    CHECK_EQ_INT(cfg.max_connections, 4096);
    CHECK_EQ_INT(cfg.idle_timeout_secs, 120);
    CHECK_EQ_INT(cfg.register_timeout_secs, 10);
    CHECK_EQ_INT(cfg.outbound_queue_capacity, 1024);
    CHECK_EQ_INT(cfg.outbound_queue_bytes, 8 * 1024 * 1024);
    CHECK_EQ_INT(cfg.notice_hold_ms, 250);
    CHECK_EQ_INT(cfg.max_message_bytes, 262144);
    CHECK_EQ_INT(cfg.stun_per_ip_rps, 5);
    CHECK_EQ_INT(cfg.stun_global_rps, 1000);
    CHECK_EQ_INT(cfg.health_check_interval_secs, 30);
    CHECK_EQ_INT(cfg.liveness_deadline_secs, 90);
    CHECK_EQ_INT(cfg.max_connections_per_ip, 64);
    CHECK_EQ_INT(cfg.registrations_per_ip_per_sec, 10);
    CHECK_EQ_INT(cfg.max_registrations_per_ip, 128);
    CHECK_EQ_INT(cfg.messages_per_conn_per_sec, 256);
    CHECK_EQ_INT(cfg.bytes_per_conn_per_sec, 1048576);
    CHECK_EQ_INT(cfg.max_relayed_bytes_per_conn, 1073741824);
    CHECK_EQ_INT(cfg.ban_threshold, 20);
    CHECK_EQ_INT(cfg.ban_duration_secs, 300);
    CHECK_EQ_INT(cfg.ban_strike_window_secs, 60);
    CHECK(cfg.tls_cert_path == NULL && cfg.tls_key_path == NULL);
    CHECK_EQ_INT(cfg.dht_sweep_interval_secs, 60);
    CHECK_EQ_STR(cfg.geoip_db, "/opt/dig-relay/geoip/dbip-city-lite.mmdb");
    CHECK_EQ_INT(cfg.log_level, LOG_INFO);
    CHECK(!cfg.set_max_connections && !cfg.set_idle_timeout && !cfg.set_liveness_deadline);
    /* Defaults pass validation unchanged. */
    relay_config d;
    config_defaults(&d);
    CHECK_EQ_INT(config_validate(&d, err, sizeof err), 0);
    CHECK_EQ_INT(d.liveness_deadline_secs, 90);
    /* A NULL env lookup means no environment. */
    char *argv[] = {(char *)"dig-relay", NULL};
    config_defaults(&cfg);
    CHECK_EQ_INT(config_parse(&cfg, 1, argv, NULL, err, sizeof err), 0);
}

static void test_every_flag(void)
{
    env_clear();
    REQUIRE(PARSE("serve", "--listen", "127.0.0.1:8000", "--health-listen", "127.0.0.1:8001",
                  "--dashboard-listen", "127.0.0.1:8080", "--stun-listen", "[::1]:8002",
                  "--max-connections", "10", "--idle-timeout-secs", "50", "--stun-per-ip-rps", "7",
                  "--stun-global-rps", "500", "--outbound-queue-capacity", "256",
                  "--outbound-queue-bytes", "65536", "--notice-hold-ms", "0", "--max-message-bytes", "4096",
                  "--register-timeout-secs", "3", "--health-check-interval-secs", "15",
                  "--liveness-deadline-secs", "45", "--max-connections-per-ip", "8",
                  "--registrations-per-ip-per-sec", "3", "--max-registrations-per-ip", "16",
                  "--messages-per-conn-per-sec", "64", "--bytes-per-conn-per-sec", "2048",
                  "--max-relayed-bytes-per-conn", "4096", "--ban-threshold", "9",
                  "--ban-duration-secs", "120", "--ban-strike-window-secs", "30", "--tls-cert",
                  "/etc/r/cert.pem", "--tls-key", "/etc/r/key.pem", "--log-level", "debug") ==
            tls_rc());
    CHECK_ADDR(cfg.listen, "127.0.0.1:8000");
    CHECK_ADDR(cfg.health_listen, "127.0.0.1:8001");
    CHECK_ADDR(cfg.dashboard_listen, "127.0.0.1:8080");
    CHECK_ADDR(cfg.stun_listen, "[::1]:8002");
    CHECK_EQ_INT(cfg.max_connections, 10);
    CHECK_EQ_INT(cfg.idle_timeout_secs, 50);
    CHECK_EQ_INT(cfg.stun_per_ip_rps, 7);
    CHECK_EQ_INT(cfg.stun_global_rps, 500);
    CHECK_EQ_INT(cfg.outbound_queue_capacity, 256);
    CHECK_EQ_INT(cfg.outbound_queue_bytes, 65536);
    CHECK_EQ_INT(cfg.notice_hold_ms, 0);
    CHECK_EQ_INT(cfg.max_message_bytes, 4096);
    CHECK_EQ_INT(cfg.register_timeout_secs, 3);
    CHECK_EQ_INT(cfg.health_check_interval_secs, 15);
    CHECK_EQ_INT(cfg.liveness_deadline_secs, 45);
    CHECK_EQ_INT(cfg.max_connections_per_ip, 8);
    CHECK_EQ_INT(cfg.registrations_per_ip_per_sec, 3);
    CHECK_EQ_INT(cfg.max_registrations_per_ip, 16);
    CHECK_EQ_INT(cfg.messages_per_conn_per_sec, 64);
    CHECK_EQ_INT(cfg.bytes_per_conn_per_sec, 2048);
    CHECK_EQ_INT(cfg.max_relayed_bytes_per_conn, 4096);
    CHECK_EQ_INT(cfg.ban_threshold, 9);
    CHECK_EQ_INT(cfg.ban_duration_secs, 120);
    CHECK_EQ_INT(cfg.ban_strike_window_secs, 30);
    REQUIRE(cfg.tls_cert_path != NULL && cfg.tls_key_path != NULL);
    CHECK_EQ_STR(cfg.tls_cert_path, "/etc/r/cert.pem");
    CHECK_EQ_STR(cfg.tls_key_path, "/etc/r/key.pem");
    CHECK_EQ_INT(cfg.log_level, LOG_DEBUG);
    CHECK(cfg.set_max_connections && cfg.set_idle_timeout && cfg.set_liveness_deadline &&
          cfg.set_health_check_interval && cfg.set_max_connections_per_ip);
}

static void test_every_env_var(void)
{
    env_clear();
    env_set("DIG_RELAY_LISTEN", "10.0.0.1:1111");
    env_set("DIG_RELAY_HEALTH_LISTEN", "10.0.0.1:2222");
    env_set("DIG_RELAY_DASHBOARD_LISTEN", "[::1]:3333");
    env_set("DIG_RELAY_STUN_LISTEN", "10.0.0.1:4444");
    env_set("DIG_RELAY_MAX_CONNECTIONS", "7");
    env_set("DIG_RELAY_IDLE_TIMEOUT_SECS", "33");
    env_set("DIG_RELAY_STUN_PER_IP_RPS", "0");
    env_set("DIG_RELAY_STUN_GLOBAL_RPS", "0");
    env_set("DIG_RELAY_OUTBOUND_QUEUE_CAPACITY", "12");
    env_set("DIG_RELAY_OUTBOUND_QUEUE_BYTES", "13");
    env_set("DIG_RELAY_NOTICE_HOLD_MS", "17");
    env_set("DIG_RELAY_MAX_MESSAGE_BYTES", "14");
    env_set("DIG_RELAY_REGISTER_TIMEOUT_SECS", "15");
    env_set("DIG_RELAY_TLS_CERT_PATH", "c.pem");
    env_set("DIG_RELAY_TLS_KEY_PATH", "k.pem");
    REQUIRE(PARSE(NULL) == tls_rc());
    CHECK_ADDR(cfg.listen, "10.0.0.1:1111");
    CHECK_ADDR(cfg.health_listen, "10.0.0.1:2222");
    CHECK_ADDR(cfg.dashboard_listen, "[::1]:3333");
    CHECK_ADDR(cfg.stun_listen, "10.0.0.1:4444");
    CHECK_EQ_INT(cfg.max_connections, 7);
    CHECK_EQ_INT(cfg.idle_timeout_secs, 33);
    CHECK_EQ_INT(cfg.stun_per_ip_rps, 0);
    CHECK_EQ_INT(cfg.stun_global_rps, 0);
    CHECK_EQ_INT(cfg.outbound_queue_capacity, 12);
    CHECK_EQ_INT(cfg.outbound_queue_bytes, 13);
    CHECK_EQ_INT(cfg.notice_hold_ms, 17);
    CHECK_EQ_INT(cfg.max_message_bytes, 14);
    CHECK_EQ_INT(cfg.register_timeout_secs, 15);
    REQUIRE(cfg.tls_cert_path != NULL && cfg.tls_key_path != NULL);
    CHECK_EQ_STR(cfg.tls_cert_path, "c.pem");
    CHECK_EQ_STR(cfg.tls_key_path, "k.pem");
    CHECK(cfg.set_max_connections && cfg.set_idle_timeout);

    env_clear();
    env_set("DIG_RELAY_HEALTH_CHECK_INTERVAL_SECS", "11");
    env_set("DIG_RELAY_LIVENESS_DEADLINE_SECS", "22");
    env_set("DIG_RELAY_MAX_CONNECTIONS_PER_IP", "3");
    env_set("DIG_RELAY_REGISTRATIONS_PER_IP_PER_SEC", "4");
    env_set("DIG_RELAY_MAX_REGISTRATIONS_PER_IP", "5");
    env_set("DIG_RELAY_MESSAGES_PER_CONN_PER_SEC", "6");
    env_set("DIG_RELAY_BYTES_PER_CONN_PER_SEC", "7");
    env_set("DIG_RELAY_MAX_RELAYED_BYTES_PER_CONN", "8");
    env_set("DIG_RELAY_BAN_THRESHOLD", "0");
    env_set("DIG_RELAY_BAN_DURATION_SECS", "0");
    env_set("DIG_RELAY_BAN_STRIKE_WINDOW_SECS", "0");
    REQUIRE(PARSE(NULL) == 0);
    CHECK_EQ_INT(cfg.health_check_interval_secs, 11);
    CHECK_EQ_INT(cfg.liveness_deadline_secs, 22);
    CHECK_EQ_INT(cfg.max_connections_per_ip, 3);
    CHECK_EQ_INT(cfg.registrations_per_ip_per_sec, 4);
    CHECK_EQ_INT(cfg.max_registrations_per_ip, 5);
    CHECK_EQ_INT(cfg.messages_per_conn_per_sec, 6);
    CHECK_EQ_INT(cfg.bytes_per_conn_per_sec, 7);
    CHECK_EQ_INT(cfg.max_relayed_bytes_per_conn, 8);
    CHECK_EQ_INT(cfg.ban_threshold, 0);
    CHECK_EQ_INT(cfg.ban_duration_secs, 0);
    CHECK_EQ_INT(cfg.ban_strike_window_secs, 0);
    CHECK(cfg.set_health_check_interval && cfg.set_liveness_deadline &&
          cfg.set_max_connections_per_ip);
}

static void test_precedence(void)
{
    env_clear();
    env_set("DIG_RELAY_MAX_CONNECTIONS", "200");
    env_set("DIG_RELAY_LISTEN", "10.0.0.1:1");
    REQUIRE(PARSE("--max-connections", "300") == 0);
    CHECK_EQ_INT(cfg.max_connections, 300);    /* flag beats env */
    CHECK_ADDR(cfg.listen, "10.0.0.1:1");      /* env beats default */
    CHECK_ADDR(cfg.health_listen, "[::]:9451"); /* default */
    /* A bad env value is irrelevant when the flag overrides it. */
    env_set("DIG_RELAY_IDLE_TIMEOUT_SECS", "soon");
    CHECK_EQ_INT(PARSE("--idle-timeout-secs", "100"), 0);
    CHECK_EQ_INT(cfg.idle_timeout_secs, 100);
    /* An empty variable is unset. */
    env_clear();
    env_set("DIG_RELAY_MAX_CONNECTIONS", "");
    env_set("DIG_RELAY_TLS_CERT_PATH", "");
    REQUIRE(PARSE(NULL) == 0);
    CHECK_EQ_INT(cfg.max_connections, 4096);
    CHECK(!cfg.set_max_connections);
    CHECK(cfg.tls_cert_path == NULL);
}

static void test_flag_forms_and_subcommand(void)
{
    env_clear();
    REQUIRE(PARSE("--max-connections=77", "--listen=[::1]:5") == 0);
    CHECK_EQ_INT(cfg.max_connections, 77);
    CHECK_ADDR(cfg.listen, "[::1]:5");
    /* serve may come before, between or after the flags. */
    REQUIRE(PARSE("--max-connections", "5", "serve", "--ban-threshold=1") == 0);
    CHECK_EQ_INT(cfg.command, CMD_SERVE);
    CHECK_EQ_INT(cfg.max_connections, 5);
    CHECK_EQ_INT(cfg.ban_threshold, 1);
    REQUIRE(PARSE("serve") == 0);
    /* A value may look like anything but a flag; paths may contain '='. */
    REQUIRE(PARSE("--tls-cert", "a=b.pem", "--tls-key=k=1.pem") == tls_rc());
    CHECK_EQ_STR(cfg.tls_cert_path, "a=b.pem");
    CHECK_EQ_STR(cfg.tls_key_path, "k=1.pem");
    /* Leading zeros are just zeros. */
    REQUIRE(PARSE("--max-connections", "0010") == 0);
    CHECK_EQ_INT(cfg.max_connections, 10);
    /* The service subcommands' flags are parsed wherever they stand. */
    REQUIRE(PARSE("--json", "--scope", "system", "serve") == 0);
    CHECK(cfg.json);
    CHECK_EQ_INT(cfg.scope, SCOPE_SYSTEM);
    REQUIRE(PARSE("install", "--scope=user") == 0);
    CHECK_EQ_INT(cfg.scope, SCOPE_USER);
    CHECK(!cfg.json);
    CHECK_EQ_INT(PARSE("--scope", "galaxy"), 2);
    CHECK(err_has("--scope"));
    CHECK_EQ_INT(PARSE("--json=yes"), 2);
    CHECK(err_has("--json takes no value"));
}

static void test_help_and_version(void)
{
    env_clear();
    static const char *const help[] = {"--help", "-h", "help"};
    for (size_t i = 0; i < 3; i++) {
        REQUIRE(PARSE(help[i]) == 0);
        CHECK_EQ_INT(cfg.command, CMD_HELP);
    }
    REQUIRE(PARSE("--version") == 0);
    CHECK_EQ_INT(cfg.command, CMD_VERSION);
    REQUIRE(PARSE("serve", "-V") == 0);
    CHECK_EQ_INT(cfg.command, CMD_VERSION);
    /* Help wins over values that would not validate, when it comes first. */
    REQUIRE(PARSE("--max-connections", "0", "--help") == 0);
    CHECK_EQ_INT(cfg.command, CMD_HELP);
}

static void test_usage_errors(void)
{
    env_clear();
    CHECK_EQ_INT(PARSE("--frobnicate"), 2);
    CHECK(err_has("unknown flag '--frobnicate'"));
    CHECK_EQ_INT(PARSE("--frobnicate=3"), 2);
    CHECK(err_has("unknown flag '--frobnicate'"));
    CHECK_EQ_INT(PARSE("-x"), 2);
    CHECK(err_has("unknown flag '-x'"));
    CHECK_EQ_INT(PARSE("--max-connections"), 2);
    CHECK(err_has("missing value for --max-connections"));
    CHECK_EQ_INT(PARSE("--listen", "--max-connections", "3"), 2);
    CHECK(err_has("missing value for --listen"));
    CHECK_EQ_INT(PARSE("--max-connections", "x"), 2);
    CHECK(err_has("invalid value 'x' for --max-connections: expected a non-negative integer"));
    CHECK_EQ_INT(PARSE("--max-connections", "-1"), 2);
    CHECK(err_has("invalid value '-1' for --max-connections: expected a non-negative integer"));
    CHECK_EQ_INT(PARSE("--max-connections", "+1"), 2);
    CHECK(err_has("--max-connections"));
    CHECK_EQ_INT(PARSE("--max-connections", "1.5"), 2);
    CHECK(err_has("'1.5' for --max-connections"));
    CHECK_EQ_INT(PARSE("--max-connections", " 1"), 2);
    CHECK_EQ_INT(PARSE("--max-connections="), 2);
    CHECK(err_has("invalid value '' for --max-connections"));
    CHECK_EQ_INT(PARSE("--max-connections", "18446744073709551616"), 2);
    CHECK(err_has("'18446744073709551616' for --max-connections: must be at most"));
    /* 32-bit options stop where the reference's u32 does. */
    CHECK_EQ_INT(PARSE("--ban-threshold", "4294967295"), 0);
    CHECK_EQ_INT(PARSE("--ban-threshold", "4294967296"), 2);
    CHECK(err_has("for --ban-threshold: must be at most 4294967295"));
    CHECK_EQ_INT(PARSE("--max-relayed-bytes-per-conn", "18446744073709551615"), 0);
    CHECK_EQ_INT(PARSE("--idle-timeout-secs", "4294967296"), 2);
    CHECK(err_has("--idle-timeout-secs"));
    CHECK_EQ_INT(PARSE("--listen", "not-an-addr"), 2);
    CHECK(err_has("invalid value 'not-an-addr' for --listen"));
    CHECK_EQ_INT(PARSE("--stun-listen", "1.2.3.4"), 2);
    CHECK(err_has("for --stun-listen"));
    CHECK_EQ_INT(PARSE("--tls-cert="), 2);
    CHECK(err_has("--tls-cert"));
    CHECK_EQ_INT(PARSE("--log-level", "loud"), 2);
    CHECK(err_has("invalid value 'loud' for --log-level"));
    CHECK_EQ_INT(PARSE("--max-connections", "1", "--max-connections", "2"), 2);
    CHECK(err_has("--max-connections was given more than once"));
    CHECK_EQ_INT(PARSE("frobnicate"), 2);
    CHECK(err_has("unknown subcommand 'frobnicate'"));
    CHECK_EQ_INT(PARSE("serve", "serve"), 2);
    CHECK(err_has("unexpected argument 'serve'"));
    CHECK_EQ_INT(PARSE("probe"), 2);
    CHECK(err_has("probe needs the relay's URL"));
    CHECK_EQ_INT(PARSE("probe", "ws://a:1", "ws://b:2"), 2);
    CHECK(err_has("unexpected argument 'ws://b:2'"));
}

static void test_subcommands(void)
{
    static const struct { const char *word; enum config_command command; } table[] = {
        {"serve", CMD_SERVE},     {"status", CMD_STATUS}, {"install", CMD_INSTALL},
        {"uninstall", CMD_UNINSTALL}, {"start", CMD_START}, {"stop", CMD_STOP},
        {"run-service", CMD_RUN_SERVICE},
    };
    env_clear();
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        REQUIRE(PARSE(table[i].word, "--json") == 0);
        CHECK_EQ_INT(cfg.command, table[i].command);
    }
    REQUIRE(PARSE("--json", "probe", "ws://127.0.0.1:9450") == 0);
    CHECK_EQ_INT(cfg.command, CMD_PROBE);
    CHECK_EQ_STR(cfg.probe_url, "ws://127.0.0.1:9450");
}

/* "NAME=value " for every variable install would persist from cfg. */
static void persisted(char *out, size_t cap)
{
    const char *name, *value;
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; config_persisted_var(&cfg, i, &name, &value); i++)
        if (name != NULL && n < cap)
            n += (size_t)snprintf(out + n, cap - n, "%s=%s ", name, value);
}

/* install persists exactly the options given (flag or variable) whose value differs from the
 * default, under their variable names, with the text they were given as. */
static void test_persisted_vars(void)
{
    char got[2048];
    env_clear();
    env_set("DIG_RELAY_BAN_THRESHOLD", "7");
    env_set("DIG_RELAY_MAX_CONNECTIONS", "4096");          /* the default: nothing to persist */
    env_set("RUST_LOG", "nonsense=loud");                  /* unusable: stays info, not persisted */
    REQUIRE(PARSE("install", "--listen", "127.0.0.1:9", "--idle-timeout-secs", "30",
                  "--log-level", "debug", "--health-listen", "[::]:9451", "--scope", "user",
                  "--json", "--trusted-proxy-cidrs", "10.0.0.0/8,2001:db8::/32") == 0);
    persisted(got, sizeof got);
    /* The liveness deadline and sweep interval were lowered to fit, not given: not persisted. */
    CHECK_EQ_STR(got, "DIG_RELAY_LISTEN=127.0.0.1:9 DIG_RELAY_IDLE_TIMEOUT_SECS=30 "
                      "DIG_RELAY_BAN_THRESHOLD=7 "
                      "DIG_RELAY_TRUSTED_PROXY_CIDRS=10.0.0.0/8,2001:db8::/32 RUST_LOG=debug ");

    /* The TLS paths are persisted too (a build without TLS refuses them, as test_validation_errors checks). */
    if (DIG_HAVE_TLS) {
        env_clear();
        REQUIRE(PARSE("install", "--tls-cert", "/c.pem", "--tls-key", "/k.pem",
                      "--tls-client-auth", "optional") == 0);
        persisted(got, sizeof got);
        CHECK_EQ_STR(got, "DIG_RELAY_TLS_CERT_PATH=/c.pem DIG_RELAY_TLS_KEY_PATH=/k.pem "
                          "DIG_RELAY_TLS_CLIENT_AUTH=optional ");
    }

    /* A switch given as a flag has no text: it is stored as 1 (as a variable, 1 or 0). */
    env_clear();
    env_set("DIG_RELAY_TURN_ALLOW_LOOPBACK_PEERS", "false");   /* the default: not persisted */
    REQUIRE(PARSE("install", "--turn", "--turn-public-ip", "203.0.113.7",
                  "--turn-relay-ports", "50000-50100") == 0);
    persisted(got, sizeof got);
    CHECK_EQ_STR(got, "DIG_RELAY_TURN=1 DIG_RELAY_TURN_PUBLIC_IP=203.0.113.7 "
                      "DIG_RELAY_TURN_RELAY_PORTS=50000-50100 ");
}

static void test_env_errors_name_the_variable(void)
{
    env_clear();
    env_set("DIG_RELAY_MAX_CONNECTIONS", "lots");
    CHECK_EQ_INT(PARSE(NULL), 2);
    CHECK(err_has("invalid value 'lots' for DIG_RELAY_MAX_CONNECTIONS"));
    env_clear();
    env_set("DIG_RELAY_LISTEN", "[::]");
    CHECK_EQ_INT(PARSE(NULL), 2);
    CHECK(err_has("invalid value '[::]' for DIG_RELAY_LISTEN"));
    env_clear();
    env_set("DIG_RELAY_BAN_THRESHOLD", "-3");
    CHECK_EQ_INT(PARSE(NULL), 2);
    CHECK(err_has("for DIG_RELAY_BAN_THRESHOLD"));
    env_clear();
    env_set("DIG_RELAY_OUTBOUND_QUEUE_BYTES", "99999999999999999999999");
    CHECK_EQ_INT(PARSE(NULL), 2);
    CHECK(err_has("for DIG_RELAY_OUTBOUND_QUEUE_BYTES: must be at most"));
}

/* --trusted-proxy-cidrs: empty by default, a flag or its variable, IPv4/IPv6 networks or bare
 * addresses; a bad item exits 2 naming the flag (or variable) and the item. */
static void test_trusted_proxy_cidrs(void)
{
    addr_t a, b;
    env_clear();
    REQUIRE(PARSE(NULL) == 0);
    CHECK_EQ_INT(cfg.trusted_proxies.n, 0);
    REQUIRE(PARSE("--trusted-proxy-cidrs", "10.0.0.0/8, 2001:db8::/32,192.0.2.7") == 0);
    CHECK_EQ_INT(cfg.trusted_proxies.n, 3);
    REQUIRE(addr_parse_ip("10.9.8.7", 8, &a) && addr_parse_ip("192.0.2.8", 9, &b));
    CHECK(cidr_list_contains(&cfg.trusted_proxies, &a));
    CHECK(!cidr_list_contains(&cfg.trusted_proxies, &b));
    REQUIRE(PARSE("--trusted-proxy-cidrs=") == 0);
    CHECK_EQ_INT(cfg.trusted_proxies.n, 0);
    env_set("DIG_RELAY_TRUSTED_PROXY_CIDRS", "127.0.0.1");
    REQUIRE(PARSE(NULL) == 0);
    CHECK_EQ_INT(cfg.trusted_proxies.n, 1);
    REQUIRE(PARSE("--trusted-proxy-cidrs", "::1") == 0);   /* the flag beats the variable */
    CHECK_EQ_INT(cfg.trusted_proxies.items[0].family, 6);
    env_clear();
    CHECK_EQ_INT(PARSE("--trusted-proxy-cidrs", "10.0.0.0/8,lb.example"), 2);
    CHECK(err_has("--trusted-proxy-cidrs") && err_has("'lb.example'"));
    CHECK_EQ_INT(PARSE("--trusted-proxy-cidrs", "10.0.0.0/33"), 2);
    CHECK(err_has("'10.0.0.0/33'"));
    env_set("DIG_RELAY_TRUSTED_PROXY_CIDRS", "10.0.0.0/8,,::1");
    CHECK_EQ_INT(PARSE(NULL), 2);
    CHECK(err_has("DIG_RELAY_TRUSTED_PROXY_CIDRS") && err_has("empty"));
    env_clear();
}

static void test_tls_client_auth(void)
{
    env_clear();
    CHECK_EQ_INT(PARSE("--tls-cert", "c.pem", "--tls-key", "k.pem"), tls_rc());
    CHECK_EQ_INT(cfg.tls_client_auth, TLS_CLIENT_AUTH_REQUIRED);   /* the reference's behaviour */
    CHECK(cfg.tls_client_ca_path == NULL);
    CHECK_EQ_INT(PARSE("--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-client-auth",
                       "optional", "--tls-client-ca", "ca.pem"), tls_rc());
    CHECK_EQ_INT(cfg.tls_client_auth, TLS_CLIENT_AUTH_OPTIONAL);
    CHECK_EQ_STR(cfg.tls_client_ca_path, "ca.pem");
    CHECK_EQ_INT(PARSE("--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-client-auth=none"),
                 tls_rc());
    CHECK_EQ_INT(cfg.tls_client_auth, TLS_CLIENT_AUTH_NONE);
    env_set("DIG_RELAY_TLS_CERT_PATH", "c.pem");
    env_set("DIG_RELAY_TLS_KEY_PATH", "k.pem");
    env_set("DIG_RELAY_TLS_CLIENT_AUTH", "optional");
    env_set("DIG_RELAY_TLS_CLIENT_CA_PATH", "/etc/dig/ca.pem");
    CHECK_EQ_INT(PARSE(NULL), tls_rc());
    CHECK_EQ_INT(cfg.tls_client_auth, TLS_CLIENT_AUTH_OPTIONAL);
    CHECK_EQ_STR(cfg.tls_client_ca_path, "/etc/dig/ca.pem");
    CHECK_EQ_INT(PARSE("--tls-client-auth", "required"), tls_rc());   /* flag beats variable */
    CHECK_EQ_INT(cfg.tls_client_auth, TLS_CLIENT_AUTH_REQUIRED);

    env_clear();
    CHECK_EQ_INT(PARSE("--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-client-auth", "yes"), 2);
    CHECK(err_has("invalid value 'yes' for --tls-client-auth: expected required, optional or none"));
    env_set("DIG_RELAY_TLS_CLIENT_AUTH", "Required");
    CHECK_EQ_INT(PARSE(NULL), 2);
    CHECK(err_has("for DIG_RELAY_TLS_CLIENT_AUTH"));
    env_clear();
    /* Either without a certificate and key has nothing to apply to. */
    CHECK_EQ_INT(PARSE("--tls-client-auth", "optional"), 2);
    CHECK(err_has("--tls-client-auth only applies to TLS, which needs --tls-cert and --tls-key"));
    CHECK_EQ_INT(PARSE("--tls-client-ca", "ca.pem"), 2);
    CHECK(err_has("--tls-client-ca only applies to TLS"));
    /* A CA to check chains against, while no certificate is asked for. */
    CHECK_EQ_INT(PARSE("--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-client-auth", "none",
                       "--tls-client-ca", "ca.pem"), 2);
    CHECK(err_has("--tls-client-ca cannot be used with --tls-client-auth none"));
}

/* The operator pages' options: --dht-sweep-interval-secs (0 disables the sweep) and
 * --geoip-db, each from its flag or its variable, errors naming them. */
static void test_operator_page_options(void)
{
    env_clear();
    REQUIRE(PARSE("--dht-sweep-interval-secs", "0", "--geoip-db", "/tmp/x.mmdb") == 0);
    CHECK_EQ_INT(cfg.dht_sweep_interval_secs, 0);
    CHECK_EQ_STR(cfg.geoip_db, "/tmp/x.mmdb");
    env_set("DIG_RELAY_DHT_SWEEP_INTERVAL_SECS", "2");
    env_set("DIG_RELAY_GEOIP_DB", "/srv/geo.mmdb");
    REQUIRE(PARSE(NULL) == 0);
    CHECK_EQ_INT(cfg.dht_sweep_interval_secs, 2);
    CHECK_EQ_STR(cfg.geoip_db, "/srv/geo.mmdb");
    REQUIRE(PARSE("--dht-sweep-interval-secs=5") == 0);     /* the flag beats the variable */
    CHECK_EQ_INT(cfg.dht_sweep_interval_secs, 5);
    CHECK_EQ_INT(PARSE("--dht-sweep-interval-secs", "soon"), 2);
    CHECK(err_has("--dht-sweep-interval-secs"));
    CHECK_EQ_INT(PARSE("--dht-sweep-interval-secs", "4294967296"), 2);
    CHECK(err_has("must be at most 4294967295"));
    CHECK_EQ_INT(PARSE("--geoip-db="), 2);
    CHECK(err_has("--geoip-db"));
    env_clear();
    env_set("DIG_RELAY_DHT_SWEEP_INTERVAL_SECS", "-1");
    CHECK_EQ_INT(PARSE(NULL), 2);
    CHECK(err_has("DIG_RELAY_DHT_SWEEP_INTERVAL_SECS"));
    env_clear();
}

/* --cluster-redis and --cluster-instance-id: checked, persisted by install, and refused by a
 * build without hiredis. */
static void test_cluster_options(void)
{
    char got[1024];
    env_clear();
    REQUIRE(PARSE(NULL) == 0);
    CHECK(cfg.cluster_redis == NULL && cfg.cluster_instance_id == NULL);
    CHECK_EQ_INT(PARSE("--cluster-redis", "http://127.0.0.1:6379"), 2);
    CHECK(err_has("--cluster-redis") && err_has("redis://"));
    CHECK_EQ_INT(PARSE("--cluster-redis", "redis://127.0.0.1"), 2);
    CHECK(err_has("host:port"));
    CHECK_EQ_INT(PARSE("--cluster-instance-id", "has space"), 2);
    CHECK(err_has("--cluster-instance-id"));
    if (!DIG_HAVE_CLUSTER) {
        CHECK_EQ_INT(PARSE("--cluster-redis", "redis://127.0.0.1:6379"), 2);
        CHECK(err_has("cluster support is not built in"));
        env_clear();
        return;
    }
    REQUIRE(PARSE("install", "--cluster-redis", "redis://127.0.0.1:6379,redis://:pw@10.0.0.2:6380/2",
                  "--cluster-instance-id", "edge-1") == 0);
    persisted(got, sizeof got);
    CHECK_EQ_STR(got, "DIG_RELAY_CLUSTER_REDIS=redis://127.0.0.1:6379,redis://:pw@10.0.0.2:6380/2 "
                      "DIG_RELAY_CLUSTER_INSTANCE_ID=edge-1 ");
    env_set("DIG_RELAY_CLUSTER_REDIS", "redis://[::1]:6379");
    REQUIRE(PARSE(NULL) == 0);
    CHECK_EQ_STR(cfg.cluster_redis, "redis://[::1]:6379");
    env_clear();
}

static void test_validation_errors(void)
{
    env_clear();
    CHECK_EQ_INT(PARSE("--max-connections", "0"), 2);
    CHECK(err_has("--max-connections must be at least 1"));
    CHECK_EQ_INT(PARSE("--idle-timeout-secs", "0"), 2);
    CHECK(err_has("--idle-timeout-secs must be greater than 0"));
    CHECK_EQ_INT(PARSE("--outbound-queue-capacity", "0"), 2);
    CHECK(err_has("--outbound-queue-capacity must be at least 1"));
    CHECK_EQ_INT(PARSE("--outbound-queue-bytes", "0"), 2);
    CHECK(err_has("--outbound-queue-bytes must be at least 1"));
    CHECK_EQ_INT(PARSE("--notice-hold-ms", "10001"), 2);
    CHECK(err_has("--notice-hold-ms: must be at most 10000"));
    CHECK_EQ_INT(PARSE("--max-message-bytes", "0"), 2);
    CHECK(err_has("--max-message-bytes must be at least 1"));
    CHECK_EQ_INT(PARSE("--register-timeout-secs", "0"), 2);
    CHECK(err_has("--register-timeout-secs must be greater than 0"));
    CHECK_EQ_INT(PARSE("--health-check-interval-secs", "0"), 2);
    CHECK(err_has("--health-check-interval-secs must be greater than 0"));
    CHECK_EQ_INT(PARSE("--liveness-deadline-secs", "0"), 2);
    CHECK(err_has("--liveness-deadline-secs must be greater than 0"));
    CHECK_EQ_INT(PARSE("--tls-cert", "c.pem"), 2);
    CHECK(err_has("--tls-cert and --tls-key must be set together (--tls-key is missing)"));
    CHECK_EQ_INT(PARSE("--tls-key", "k.pem"), 2);
    CHECK(err_has("(--tls-cert is missing)"));
    /* Without TLS built in, the pair is refused, after every other mistake. */
    CHECK_EQ_INT(PARSE("--tls-cert", "c.pem", "--tls-key", "k.pem"), tls_rc());
    if (!DIG_HAVE_TLS)
        CHECK(err_has("--tls-cert and --tls-key: TLS is not built in"));
    CHECK_EQ_INT(PARSE("--tls-cert", "c.pem", "--tls-key", "k.pem", "--max-connections", "0"), 2);
    CHECK(err_has("--max-connections must be at least 1"));
    CHECK_EQ_INT(PARSE("--ban-duration-secs", "0"), 2);
    CHECK(err_has("--ban-duration-secs must be greater than 0 while --ban-threshold is non-zero"));
    CHECK_EQ_INT(PARSE("--ban-strike-window-secs", "0"), 2);
    CHECK(err_has("--ban-strike-window-secs must be greater than 0"));
    /* With the ban list disabled, its timings do not matter. */
    CHECK_EQ_INT(PARSE("--ban-threshold", "0", "--ban-duration-secs", "0",
                       "--ban-strike-window-secs", "0"), 0);
    /* 0 disables the per-IP cap, whatever the global cap. */
    CHECK_EQ_INT(PARSE("--max-connections", "1", "--max-connections-per-ip", "0"), 0);
    CHECK_EQ_INT(cfg.max_connections_per_ip, 0);
}

static void test_explicit_conflicts_are_refused(void)
{
    env_clear();
    CHECK_EQ_INT(PARSE("--idle-timeout-secs", "120", "--liveness-deadline-secs", "120"), 2);
    CHECK(err_has("--liveness-deadline-secs (120) must be less than --idle-timeout-secs (120)"));
    /* Raising a value past another's default is refused too, and says it was the default. */
    CHECK_EQ_INT(PARSE("--liveness-deadline-secs", "200"), 2);
    CHECK(err_has("--liveness-deadline-secs (200) must be less than --idle-timeout-secs (120, the "
                  "default)"));
    CHECK_EQ_INT(PARSE("--health-check-interval-secs", "60", "--liveness-deadline-secs", "30"), 2);
    CHECK(err_has("--health-check-interval-secs (60) must not exceed --liveness-deadline-secs (30)"));
    CHECK_EQ_INT(PARSE("--health-check-interval-secs", "100"), 2);
    CHECK(err_has("--health-check-interval-secs (100) must not exceed --liveness-deadline-secs "
                  "(90, the default)"));
    CHECK_EQ_INT(PARSE("--idle-timeout-secs", "30", "--health-check-interval-secs", "40"), 2);
    CHECK(err_has("--health-check-interval-secs (40) must not exceed --liveness-deadline-secs (29, "
                  "lowered to stay below --idle-timeout-secs)"));
    CHECK_EQ_INT(PARSE("--max-connections", "100", "--max-connections-per-ip", "101"), 2);
    CHECK(err_has("--max-connections-per-ip (101) must not exceed --max-connections (100)"));
    CHECK_EQ_INT(PARSE("--max-connections-per-ip", "5000"), 2);
    CHECK(err_has("--max-connections-per-ip (5000) must not exceed --max-connections (4096, the "
                  "default)"));
    /* Equal is fine. */
    CHECK_EQ_INT(PARSE("--max-connections", "100", "--max-connections-per-ip", "100"), 0);
    CHECK_EQ_INT(PARSE("--health-check-interval-secs", "90"), 0);
    CHECK_EQ_INT(cfg.health_check_interval_secs, 90);
    /* The env counts as explicit. */
    env_set("DIG_RELAY_MAX_CONNECTIONS_PER_IP", "50");
    CHECK_EQ_INT(PARSE("--max-connections", "10"), 2);
    CHECK(err_has("--max-connections-per-ip (50) must not exceed --max-connections (10)"));
}

static void test_defaults_are_clamped(void)
{
    env_clear();
    REQUIRE(PARSE("--idle-timeout-secs", "30") == 0);
    CHECK_EQ_INT(cfg.idle_timeout_secs, 30);
    CHECK_EQ_INT(cfg.liveness_deadline_secs, 29);
    CHECK_EQ_INT(cfg.health_check_interval_secs, 29);
    REQUIRE(PARSE("--idle-timeout-secs", "30", "--health-check-interval-secs", "10") == 0);
    CHECK_EQ_INT(cfg.liveness_deadline_secs, 29);
    CHECK_EQ_INT(cfg.health_check_interval_secs, 10);
    REQUIRE(PARSE("--idle-timeout-secs", "95") == 0);
    CHECK_EQ_INT(cfg.liveness_deadline_secs, 90);   /* no conflict: untouched */
    CHECK_EQ_INT(cfg.health_check_interval_secs, 30);
    REQUIRE(PARSE("--liveness-deadline-secs", "10") == 0);
    CHECK_EQ_INT(cfg.health_check_interval_secs, 10);
    CHECK_EQ_INT(cfg.idle_timeout_secs, 120);
    REQUIRE(PARSE("--idle-timeout-secs", "2") == 0);
    CHECK_EQ_INT(cfg.liveness_deadline_secs, 1);
    CHECK_EQ_INT(cfg.health_check_interval_secs, 1);
    CHECK_EQ_INT(PARSE("--idle-timeout-secs", "1"), 2);
    CHECK(err_has("--idle-timeout-secs must be at least 2"));
    REQUIRE(PARSE("--max-connections", "10") == 0);
    CHECK_EQ_INT(cfg.max_connections_per_ip, 10);
    env_set("DIG_RELAY_IDLE_TIMEOUT_SECS", "60");
    REQUIRE(PARSE(NULL) == 0);
    CHECK_EQ_INT(cfg.liveness_deadline_secs, 59);
    /* config_validate alone clamps the same way, driven by the set_* markers. */
    relay_config c;
    config_defaults(&c);
    c.idle_timeout_secs = 40;
    c.set_idle_timeout = true;
    CHECK_EQ_INT(config_validate(&c, err, sizeof err), 0);
    CHECK_EQ_INT(c.liveness_deadline_secs, 39);
    c.liveness_deadline_secs = 50;
    c.set_liveness_deadline = true;
    CHECK_EQ_INT(config_validate(&c, err, sizeof err), 2);
    /* a message count past 32 bits means no count limit: clamped, never truncated */
    config_defaults(&c);
    c.outbound_queue_capacity = ((uint64_t)1 << 32) + 5;
    CHECK_EQ_INT(config_validate(&c, err, sizeof err), 0);
    CHECK(c.outbound_queue_capacity == UINT32_MAX);
}

static void test_log_level_words_and_filters(void)
{
    enum log_level l = LOG_INFO;
    CHECK(config_parse_log_level("error", &l) && l == LOG_ERROR);
    CHECK(config_parse_log_level("warn", &l) && l == LOG_WARN);
    CHECK(config_parse_log_level("info", &l) && l == LOG_INFO);
    CHECK(config_parse_log_level("debug", &l) && l == LOG_DEBUG);
    CHECK(config_parse_log_level("trace", &l) && l == LOG_TRACE);
    CHECK(config_parse_log_level("DEBUG", &l) && l == LOG_DEBUG);
    CHECK(config_parse_log_level("off", &l) && l == LOG_ERROR);
    CHECK(config_parse_log_level("dig_relay=debug,hyper=warn", &l) && l == LOG_DEBUG);
    CHECK(config_parse_log_level("hyper=trace,dig_relay=warn", &l) && l == LOG_WARN);
    CHECK(config_parse_log_level("warn,dig_relay::server=trace", &l) && l == LOG_TRACE);
    CHECK(config_parse_log_level("info, dig_relay = debug ,", &l) && l == LOG_DEBUG);
    CHECK(config_parse_log_level("dig_relay", &l) && l == LOG_TRACE);
    CHECK(config_parse_log_level("dig=debug", &l) && l == LOG_DEBUG);
    CHECK(config_parse_log_level("dig_relay[conn]=debug", &l) && l == LOG_DEBUG);
    CHECK(config_parse_log_level("=warn", &l) && l == LOG_WARN);
    l = LOG_INFO;
    CHECK(!config_parse_log_level("hyper=trace", &l));
    CHECK(!config_parse_log_level("dig_relayx=trace", &l));
    CHECK(!config_parse_log_level("dig_relay_extra=trace", &l));
    CHECK(!config_parse_log_level("", &l));
    CHECK(!config_parse_log_level(",,", &l));
    CHECK(!config_parse_log_level("dig_relay=loud", &l));
    CHECK(!config_parse_log_level("debug,hyper=sometimes", &l));
    CHECK(!config_parse_log_level("verbose", &l));
    CHECK(!config_parse_log_level(NULL, &l));
    CHECK_EQ_INT(l, LOG_INFO);   /* untouched on failure */
}

static void test_log_level_sources(void)
{
    env_clear();
    env_set("RUST_LOG", "dig_relay=trace");
    REQUIRE(PARSE(NULL) == 0);
    CHECK_EQ_INT(cfg.log_level, LOG_TRACE);
    REQUIRE(PARSE("--log-level", "warn") == 0);   /* the flag beats RUST_LOG */
    CHECK_EQ_INT(cfg.log_level, LOG_WARN);
    REQUIRE(PARSE("--log-level=error") == 0);
    CHECK_EQ_INT(cfg.log_level, LOG_ERROR);
    env_clear();
    env_set("RUST_LOG", "nonsense=loud");   /* unusable RUST_LOG: info, not an error */
    REQUIRE(PARSE(NULL) == 0);
    CHECK_EQ_INT(cfg.log_level, LOG_INFO);
}

static void test_usage_documents_everything(void)
{
    static const char *const must_appear[] = {
        "--listen", "DIG_RELAY_LISTEN", "[::]:9450", "--health-listen", "DIG_RELAY_HEALTH_LISTEN",
        "[::]:9451", "--dashboard-listen", "DIG_RELAY_DASHBOARD_LISTEN", "[::]:8080",
        "--stun-listen", "DIG_RELAY_STUN_LISTEN", "[::]:3478", "--max-connections ",
        "DIG_RELAY_MAX_CONNECTIONS ", "4096", "--idle-timeout-secs", "DIG_RELAY_IDLE_TIMEOUT_SECS",
        "--register-timeout-secs", "DIG_RELAY_REGISTER_TIMEOUT_SECS", "--outbound-queue-capacity",
        "DIG_RELAY_OUTBOUND_QUEUE_CAPACITY", "--outbound-queue-bytes",
        "DIG_RELAY_OUTBOUND_QUEUE_BYTES", "8388608", "--notice-hold-ms", "DIG_RELAY_NOTICE_HOLD_MS",
        "--max-message-bytes",
        "DIG_RELAY_MAX_MESSAGE_BYTES", "262144", "--health-check-interval-secs",
        "DIG_RELAY_HEALTH_CHECK_INTERVAL_SECS", "--liveness-deadline-secs",
        "DIG_RELAY_LIVENESS_DEADLINE_SECS", "--max-connections-per-ip",
        "DIG_RELAY_MAX_CONNECTIONS_PER_IP", "--registrations-per-ip-per-sec",
        "DIG_RELAY_REGISTRATIONS_PER_IP_PER_SEC", "--max-registrations-per-ip",
        "DIG_RELAY_MAX_REGISTRATIONS_PER_IP", "--messages-per-conn-per-sec",
        "DIG_RELAY_MESSAGES_PER_CONN_PER_SEC", "--bytes-per-conn-per-sec",
        "DIG_RELAY_BYTES_PER_CONN_PER_SEC", "1048576", "--max-relayed-bytes-per-conn",
        "DIG_RELAY_MAX_RELAYED_BYTES_PER_CONN", "1073741824", "--ban-threshold",
        "DIG_RELAY_BAN_THRESHOLD", "--ban-duration-secs", "DIG_RELAY_BAN_DURATION_SECS",
        "--ban-strike-window-secs", "DIG_RELAY_BAN_STRIKE_WINDOW_SECS", "--stun-per-ip-rps",
        "DIG_RELAY_STUN_PER_IP_RPS", "--stun-global-rps", "DIG_RELAY_STUN_GLOBAL_RPS",
        "--tls-cert", "DIG_RELAY_TLS_CERT_PATH", "--tls-key", "DIG_RELAY_TLS_KEY_PATH",
        "--tls-client-auth", "DIG_RELAY_TLS_CLIENT_AUTH", "--tls-client-ca",
        "DIG_RELAY_TLS_CLIENT_CA_PATH",
        "--log-level", "RUST_LOG", "serve", "--help", "--version", "install",
        "--trusted-proxy-cidrs", "DIG_RELAY_TRUSTED_PROXY_CIDRS",
        "--turn ", "DIG_RELAY_TURN=1", "--turn-public-ip", "DIG_RELAY_TURN_PUBLIC_IP",
        "--turn-realm", "DIG_RELAY_TURN_REALM", "dig.net", "--turn-secret-file",
        "DIG_RELAY_TURN_SECRET_FILE", "--state-dir", "DIG_RELAY_STATE_DIR", "/var/lib/dig-relay",
        "--turn-tcp-listen", "DIG_RELAY_TURN_TCP_LISTEN", "--turn-relay-ports",
        "DIG_RELAY_TURN_RELAY_PORTS", "49152-65535", "--turn-max-allocations ",
        "DIG_RELAY_TURN_MAX_ALLOCATIONS ", "--turn-max-allocations-per-user",
        "DIG_RELAY_TURN_MAX_ALLOCATIONS_PER_USER", "--turn-credential-ttl-secs",
        "DIG_RELAY_TURN_CREDENTIAL_TTL_SECS", "86400", "--turn-max-bps", "DIG_RELAY_TURN_MAX_BPS",
        "--turn-allow-peer-cidrs", "DIG_RELAY_TURN_ALLOW_PEER_CIDRS", "--turn-deny-peer-cidrs",
        "DIG_RELAY_TURN_DENY_PEER_CIDRS", "--turn-allow-loopback-peers",
        "DIG_RELAY_TURN_ALLOW_LOOPBACK_PEERS",
        "--dht-sweep-interval-secs", "DIG_RELAY_DHT_SWEEP_INTERVAL_SECS", "--geoip-db",
        "DIG_RELAY_GEOIP_DB", "--cluster-redis", "DIG_RELAY_CLUSTER_REDIS",
        "--cluster-instance-id", "DIG_RELAY_CLUSTER_INSTANCE_ID",
    };
    const char *u = config_usage();
    for (size_t i = 0; i < sizeof must_appear / sizeof must_appear[0]; i++) {
        if (strstr(u, must_appear[i]) == NULL) {
            printf("  usage lacks \"%s\"\n", must_appear[i]);
            test_cur_failed = 1;
        }
    }
    /* Every flag the parser accepts is documented: try each documented flag back. */
    env_clear();
    for (const char *p = strstr(u, "  --"); p != NULL; p = strstr(p + 1, "\n  --")) {
        const char *name = strstr(p, "--");
        size_t n = strcspn(name, " ,\n");
        char flag[64];
        snprintf(flag, sizeof flag, "%.*s", (int)n, name);
        if (strcmp(flag, "--help") == 0 || strcmp(flag, "--version") == 0 ||
            strcmp(flag, "--json") == 0 || strcmp(flag, "--turn-allow-loopback-peers") == 0)
            continue;
        int rc = PARSE(flag);
        if (strstr(err, "unknown flag") != NULL || rc == 0) {
            printf("  documented %s is not a flag taking a value (rc %d, %s)\n", flag, rc, err);
            test_cur_failed = 1;
        }
    }
}

static void test_turn_flags(void)
{
    char path[256];
    env_clear();
    REQUIRE(PARSE(NULL) == 0);
    CHECK(!cfg.turn && cfg.turn_public_ip.family == 0 && !cfg.turn_allow_loopback_peers);
    CHECK_EQ_STR(cfg.turn_realm, "dig.net");
    CHECK(cfg.turn_secret_file == NULL && cfg.state_dir == NULL);
    CHECK_ADDR(cfg.turn_tcp_listen, "[::]:3478");
    CHECK(cfg.turn_relay_ports.lo == 49152 && cfg.turn_relay_ports.hi == 65535);
    CHECK_EQ_INT(cfg.turn_max_allocations, 1000);
    CHECK_EQ_INT(cfg.turn_max_allocations_per_user, 10);
    CHECK_EQ_INT(cfg.turn_credential_ttl_secs, 86400);
    CHECK_EQ_INT(cfg.turn_max_bps, 0);
    CHECK(cfg.turn_allow_peers.n == 0 && cfg.turn_deny_peers.n == 0);
    CHECK(config_turn_secret_path(&cfg, "/var/lib/dig-relay", path, sizeof path));
    CHECK_EQ_STR(path, "/var/lib/dig-relay/turn-secret");

    REQUIRE(PARSE("--turn", "--turn-public-ip", "203.0.113.7", "--turn-realm", "relay.example",
                  "--turn-secret-file", "/etc/dig/secret", "--state-dir", "/srv/dig",
                  "--turn-tcp-listen", "0.0.0.0:3479", "--turn-relay-ports", "50000-50100",
                  "--turn-max-allocations", "20", "--turn-max-allocations-per-user", "2",
                  "--turn-credential-ttl-secs", "600", "--turn-max-bps", "125000",
                  "--turn-allow-peer-cidrs", "10.0.0.0/8", "--turn-deny-peer-cidrs",
                  "198.51.100.0/24, 2001:db8::/32", "--turn-allow-loopback-peers") == 0);
    CHECK(cfg.turn && cfg.turn_allow_loopback_peers);
    CHECK(cfg.turn_public_ip.family == 4 && cfg.turn_public_ip.ip[3] == 7);
    CHECK_EQ_STR(cfg.turn_realm, "relay.example");
    CHECK_EQ_STR(cfg.turn_secret_file, "/etc/dig/secret");
    CHECK_EQ_STR(cfg.state_dir, "/srv/dig");
    CHECK_ADDR(cfg.turn_tcp_listen, "0.0.0.0:3479");
    CHECK(cfg.turn_relay_ports.lo == 50000 && cfg.turn_relay_ports.hi == 50100);
    CHECK_EQ_INT(cfg.turn_max_allocations, 20);
    CHECK_EQ_INT(cfg.turn_max_allocations_per_user, 2);
    CHECK_EQ_INT(cfg.turn_credential_ttl_secs, 600);
    CHECK_EQ_INT(cfg.turn_max_bps, 125000);
    CHECK(cfg.turn_allow_peers.n == 1 && cfg.turn_allow_peers.items[0].prefix == 8);
    CHECK(cfg.turn_deny_peers.n == 2 && cfg.turn_deny_peers.items[1].family == 6);
    CHECK(config_turn_secret_path(&cfg, "/unused", path, sizeof path));
    CHECK_EQ_STR(path, "/etc/dig/secret");
    REQUIRE(PARSE("--state-dir", "/srv/dig") == 0);
    CHECK(config_turn_secret_path(&cfg, "/unused", path, sizeof path));
    CHECK_EQ_STR(path, "/srv/dig/turn-secret");
    CHECK(!config_turn_secret_path(&cfg, "/unused", path, 8));

    env_set("DIG_RELAY_TURN", "1");
    env_set("DIG_RELAY_TURN_PUBLIC_IP", "2001:db8::7");
    env_set("DIG_RELAY_TURN_REALM", "r");
    env_set("DIG_RELAY_TURN_SECRET_FILE", "s");
    env_set("DIG_RELAY_STATE_DIR", "d");
    env_set("DIG_RELAY_TURN_TCP_LISTEN", "[::1]:5000");
    env_set("DIG_RELAY_TURN_RELAY_PORTS", "1-1");
    env_set("DIG_RELAY_TURN_MAX_ALLOCATIONS", "3");
    env_set("DIG_RELAY_TURN_MAX_ALLOCATIONS_PER_USER", "3");
    env_set("DIG_RELAY_TURN_CREDENTIAL_TTL_SECS", "4");
    env_set("DIG_RELAY_TURN_MAX_BPS", "5");
    env_set("DIG_RELAY_TURN_ALLOW_PEER_CIDRS", "::1");
    env_set("DIG_RELAY_TURN_DENY_PEER_CIDRS", "");
    env_set("DIG_RELAY_TURN_ALLOW_LOOPBACK_PEERS", "true");
    REQUIRE(PARSE(NULL) == 0);
    CHECK(cfg.turn && cfg.turn_public_ip.family == 6 && cfg.turn_allow_loopback_peers);
    CHECK_EQ_STR(cfg.turn_realm, "r");
    CHECK_EQ_STR(cfg.turn_secret_file, "s");
    CHECK_EQ_STR(cfg.state_dir, "d");
    CHECK_ADDR(cfg.turn_tcp_listen, "[::1]:5000");
    CHECK(cfg.turn_relay_ports.lo == 1 && cfg.turn_relay_ports.hi == 1);
    CHECK(cfg.turn_max_allocations == 3 && cfg.turn_max_allocations_per_user == 3);
    CHECK(cfg.turn_credential_ttl_secs == 4 && cfg.turn_max_bps == 5);
    CHECK(cfg.turn_allow_peers.n == 1 && cfg.turn_allow_peers.items[0].prefix == 128);
    CHECK(cfg.turn_deny_peers.n == 0);
    env_clear();
    static const char *const off[] = {"0", "false", "No", "OFF"}, *const on[] = {"TRUE", "yes", "on"};
    for (size_t i = 0; i < 4; i++) {
        env_clear();
        env_set("DIG_RELAY_TURN_ALLOW_LOOPBACK_PEERS", off[i]);
        REQUIRE(PARSE(NULL) == 0);
        CHECK(!cfg.turn_allow_loopback_peers);
    }
    for (size_t i = 0; i < 3; i++) {
        env_clear();
        env_set("DIG_RELAY_TURN_ALLOW_LOOPBACK_PEERS", on[i]);
        REQUIRE(PARSE(NULL) == 0);
        CHECK(cfg.turn_allow_loopback_peers);
    }
    env_clear();
}

static void test_turn_errors_name_the_flag(void)
{
    static const struct { const char *args[4]; const char *needle; } bad[] = {
        {{"--turn"}, "--turn-public-ip is required with --turn"},
        {{"--turn=1"}, "--turn takes no value"},
        {{"--turn-public-ip", "example.com"}, "for --turn-public-ip: expected an IP address"},
        {{"--turn-public-ip", "203.0.113.7:3478"}, "--turn-public-ip"},
        {{"--turn-public-ip", "0.0.0.0"}, "--turn-public-ip 0.0.0.0 is not a unicast"},
        {{"--turn-public-ip", "::"}, "--turn-public-ip :: is not a unicast"},
        {{"--turn-public-ip", "224.0.0.1"}, "not a unicast"},
        {{"--turn-public-ip", "::ffff:203.0.113.7"}, "give the IPv4 address"},
        {{"--turn-realm", "has\"quote"}, "for --turn-realm"},
        {{"--turn-realm", ""}, "--turn-realm"},
        {{"--turn-relay-ports", "50000"}, "for --turn-relay-ports: expected LO-HI"},
        {{"--turn-relay-ports", "60000-50000"}, "--turn-relay-ports"},
        {{"--turn-relay-ports", "0-10"}, "--turn-relay-ports"},
        {{"--turn-relay-ports", "1-65536"}, "--turn-relay-ports"},
        {{"--turn-relay-ports", "1- 2"}, "--turn-relay-ports"},
        {{"--turn-relay-ports", "1-2x"}, "--turn-relay-ports"},
        {{"--turn-allow-peer-cidrs", "10.0.0.0/8,nope"}, "for --turn-allow-peer-cidrs"},
        {{"--turn-deny-peer-cidrs", "10.0.0.0/33"}, "for --turn-deny-peer-cidrs"},
        {{"--turn-max-allocations", "0"}, "--turn-max-allocations must be at least 1"},
        {{"--turn-max-allocations-per-user", "0"}, "--turn-max-allocations-per-user must be at least 1"},
        {{"--turn-credential-ttl-secs", "0"}, "--turn-credential-ttl-secs must be at least 1"},
        {{"--turn-max-allocations", "5", "--turn-max-allocations-per-user", "6"},
         "--turn-max-allocations-per-user (6) must not exceed --turn-max-allocations (5)"},
        {{"--turn-max-allocations-per-user", "1001"}, "(1000, the default)"},
    };
    env_clear();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parse_args(bad[i].args[0], bad[i].args[1], bad[i].args[2], bad[i].args[3],
                            (const char *)NULL);
        if (rc != 2 || !err_has(bad[i].needle)) {
            printf("  case %zu (%s): rc %d\n", i, bad[i].args[0], rc);
            test_cur_failed = 1;
        }
    }
    env_set("DIG_RELAY_TURN", "maybe");
    CHECK_EQ_INT(PARSE(NULL), 2);
    CHECK(err_has("for DIG_RELAY_TURN: expected 1 or 0"));
    env_clear();
    env_set("DIG_RELAY_TURN_DENY_PEER_CIDRS", "x");
    CHECK_EQ_INT(PARSE(NULL), 2);
    CHECK(err_has("DIG_RELAY_TURN_DENY_PEER_CIDRS"));
    env_clear();
    /* A default per-user limit above a lowered total is lowered to fit. */
    REQUIRE(PARSE("--turn-max-allocations", "4") == 0);
    CHECK_EQ_INT(cfg.turn_max_allocations_per_user, 4);
}

int main(void)
{
    RUN(test_defaults);
    RUN(test_subcommands);
    RUN(test_persisted_vars);
    RUN(test_cluster_options);
    RUN(test_every_flag);
    RUN(test_every_env_var);
    RUN(test_precedence);
    RUN(test_flag_forms_and_subcommand);
    RUN(test_help_and_version);
    RUN(test_usage_errors);
    RUN(test_env_errors_name_the_variable);
    RUN(test_trusted_proxy_cidrs);
    RUN(test_tls_client_auth);
    RUN(test_operator_page_options);
    RUN(test_validation_errors);
    RUN(test_explicit_conflicts_are_refused);
    RUN(test_defaults_are_clamped);
    RUN(test_log_level_words_and_filters);
    RUN(test_log_level_sources);
    RUN(test_usage_documents_everything);
    RUN(test_turn_flags);
    RUN(test_turn_errors_name_the_flag);
    return test_finish();
}
