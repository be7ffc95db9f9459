#!/bin/sh
# The Docker image end to end (CI, after make release): build it from the linux-x64 artifact,
# run it with host networking on free loopback ports (configured with DIG_RELAY_* variables, as
# the Dockerfile advises), and check that HEALTHCHECK's `dig-relay status` turns it healthy,
# /health answers, a real WebSocket client (tests/interop_client.py) registers and relays
# through it, it runs as uid 10001, and `docker stop` ends it cleanly (exit code 0).
# Needs a running Docker engine (.ci/run starts dockerd). Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   docker: $1"; }
bad() { failed=$((failed + 1)); echo "FAIL docker: $1"; }
version=$(make -s version)
bin=dist/dig-relay-$version-linux-x64
name=dig-relay-ci-$$
base=$((21000 + $$ % 8000))

if make -s docker-image >/dev/null 2>&1; then ok "image builds"; else bad "image builds"; fi
size=$(docker image inspect -f '{{.Size}}' "dig-relay:$version")
[ "${size:-0}" -lt 1048576 ] && ok "image is $size bytes" || bad "image is $size bytes"
[ "$(docker image inspect -f '{{.Config.User}}' "dig-relay:$version")" = 10001:10001 ] &&
    ok "image user 10001" || bad "image user"

docker run -d --name "$name" --network host --health-interval 1s \
    -e DIG_RELAY_LISTEN=127.0.0.1:$base -e DIG_RELAY_HEALTH_LISTEN=127.0.0.1:$((base + 1)) \
    -e DIG_RELAY_STUN_LISTEN=127.0.0.1:$((base + 2)) \
    -e DIG_RELAY_DASHBOARD_LISTEN=127.0.0.1:$((base + 3)) "dig-relay:$version" >/dev/null
health=""
i=0
while [ $i -lt 60 ] && [ "$health" != healthy ]; do
    sleep 0.5; i=$((i + 1))
    health=$(docker inspect -f '{{.State.Health.Status}}' "$name" 2>/dev/null)
done
[ "$health" = healthy ] && ok "HEALTHCHECK (dig-relay status) says healthy" ||
    { bad "health is '$health'"; docker logs "$name" 2>&1 | tail -n 20; }
"$bin" status --health-listen "127.0.0.1:$((base + 1))" >/dev/null &&
    ok "/health answers on the host" || bad "/health does not answer"
out=$(/usr/bin/python3 tests/interop_client.py "ws://127.0.0.1:$base" 127.0.0.1 2>&1)
[ "$out" = "interop ok" ] && ok "a WebSocket client registers and relays" || bad "client: $out"
uid=$(docker top "$name" -eo pid,uid | awk 'NR == 2 {print $2}')
[ "$uid" = 10001 ] && ok "the relay process runs as uid 10001" || bad "process uid $uid"
docker stop -t 10 "$name" >/dev/null
code=$(docker inspect -f '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] && ok "docker stop: clean shutdown, exit code 0" || bad "exit code $code"
docker rm -f "$name" >/dev/null 2>&1
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
