#!/bin/sh
# The Windows service under wine's service control manager: dig-relay.exe install registers
# "net.dignetwork.dig-relay" (running `dig-relay.exe run-service`, its configuration in the
# service key's Environment value), start makes it answer /health on the persisted address,
# `sc query` sees it RUNNING, stop takes the clean shutdown path (STOPPED, exit code 0),
# uninstall deletes it and a second uninstall fails as not found. run-service outside the SCM
# fails with the dispatcher's error. Usage: tests/wine_service.sh DIG_RELAY_EXE PORT_BASE
# (WINEPREFIX set up by the caller, with a persistent wineserver: `wineserver -p`). Prints "ok"/"FAIL" lines; exits non-zero on a failure.
set -u
exe=$1 base=$2
failed=0
ok() { echo "ok   windows service: $1"; }
bad() { echo "FAIL windows service: $1"; failed=1; }
prefix_c=$(winepath -u 'C:\' 2>/dev/null)
cp "$exe" "$prefix_c/dig-relay.exe"
dig() { wine 'C:\dig-relay.exe' "$@" 2>&1 | tr -d '\r'; }
health=127.0.0.1:$((base + 1))
wait_status() {   # wait_status 0|1: until `status` exits with it (20 s at most)
    i=0
    while [ $i -lt 100 ]; do
        wine 'C:\dig-relay.exe' status --health-listen "$health" >/dev/null 2>&1
        [ $? -eq "$1" ] && return 0
        sleep 0.2; i=$((i + 1))
    done
    return 1
}

# wine's service manager exits with the last Windows process and starts the auto-start
# services again when it comes back (its boot); a process held open keeps it up between steps.
keeper=""
keep_alive() {
    sleep 600 | wine cmd.exe /c pause >/dev/null 2>&1 &
    keeper=$!
    sleep 1
}
trap '[ -n "$keeper" ] && kill $keeper 2>/dev/null' EXIT
keep_alive
dig uninstall >/dev/null 2>&1   # a registration left by an earlier run
out=$(dig run-service)
case $out in *"service dispatcher error"*1063*) ok "run-service outside the SCM is refused" ;;
    *) bad "run-service outside the SCM: $out" ;; esac

out=$(dig install --json --listen "127.0.0.1:$base" --health-listen "$health" \
    --stun-listen "127.0.0.1:$((base + 2))" --dashboard-listen "127.0.0.1:$((base + 3))")
case $out in '{"ok":true,"result":{"health_listen":"'"$health"'","installed":true,'*'"migration":null,"program":"C:\\dig-relay.exe","registered":true,"scope":"system","started":false}}')
    ok "install" ;; *) bad "install: $out" ;; esac
case $(wine sc query net.dignetwork.dig-relay | tr -d '\r') in *"STATE              : 1  STOPPED"*)
    ok "sc query sees it installed and stopped" ;; *) bad "sc query after install" ;; esac

out=$(dig start --json)
[ "$out" = '{"ok":true,"result":{"label":"net.dignetwork.dig-relay","scope":"system","started":true}}' ] &&
    ok "start" || bad "start: $out"
if wait_status 0; then ok "status: serving on the persisted --health-listen"; else bad "never served"; fi
case $(wine sc query net.dignetwork.dig-relay | tr -d '\r') in *"4  RUNNING"*)
    ok "sc query: RUNNING" ;; *) bad "sc query while started" ;; esac

out=$(dig stop --json)
[ "$out" = '{"ok":true,"result":{"label":"net.dignetwork.dig-relay","scope":"system","stopped":true}}' ] &&
    ok "stop" || bad "stop: $out"
if wait_status 1; then ok "status: not serving after stop"; else bad "still serving after stop"; fi
q=$(wine sc query net.dignetwork.dig-relay | tr -d '\r')
case $q in *"1  STOPPED"*"WIN32_EXIT_CODE    : 0 "*) ok "sc query: STOPPED, exit code 0 (clean shutdown)" ;;
    *) bad "sc query after stop: $q" ;; esac

# A wine restart is this prefix's reboot: the SCM starts the auto-start service by itself.
wineserver -k 2>/dev/null; wineserver -p
keep_alive
if wait_status 0; then ok "auto-start: serving again after wine restarts (boot)"; else bad "no auto-start"; fi
dig stop >/dev/null
wait_status 1 || bad "still serving after the second stop"

out=$(dig uninstall --json)
case $out in '{"ok":true,"result":{"installed":false,"label":"net.dignetwork.dig-relay","registered":false,"removed_scopes":["system"],'*)
    ok "uninstall" ;; *) bad "uninstall: $out" ;; esac
out=$(dig uninstall --json)
case $out in '{"error":{"message":"dig-relay: no service registration for \"net.dignetwork.dig-relay\" was found at system scope'*)
    ok "uninstall again: nothing to uninstall" ;; *) bad "second uninstall: $out" ;; esac
rm -f "$prefix_c/dig-relay.exe"
exit $failed
