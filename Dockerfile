# dig-relay in an empty image: the static linux-x64 release binary (musl, no libc needed), run
# as uid 10001, nothing else inside. Build it with `make docker` (it runs make release for
# linux-x64 and passes build/docker/ as the context), or by hand:
#   docker build --build-arg BINARY=dig-relay -f Dockerfile build/docker
# Run: docker run -p 9450:9450 -p 9451:9451 -p 8080:8080 -p 3478:3478/udp dig-relay
#      (or --network host). Flags go after the image name; DIG_RELAY_* variables work too.
FROM scratch
ARG BINARY=dig-relay
COPY --chown=0:0 ${BINARY} /dig-relay
# State (TURN allocations and the like) lives under /var/lib/dig-relay, owned by the relay's user.
COPY --chown=10001:10001 state/ /var/lib/dig-relay/
VOLUME ["/var/lib/dig-relay"]
USER 10001:10001
WORKDIR /var/lib/dig-relay
# 9450 relay WebSocket (and its HTTP routes), 9451 GET /health, 8080 the redirect to https://,
# 3478/udp STUN.
EXPOSE 9450 9451 8080 3478/udp
# Docker gives containers no IPv6 loopback unless IPv6 is switched on, so the health listener is
# IPv4 here and `status` asks 127.0.0.1 (the relay port stays dual-stack [::]:9450). Set the
# listeners with -e DIG_RELAY_* rather than flags so HEALTHCHECK's `status` sees them too.
ENV DIG_RELAY_HEALTH_LISTEN=0.0.0.0:9451
# `status` asks /health on loopback and exits 1 when the relay does not answer: no shell needed.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 CMD ["/dig-relay", "status"]
ENTRYPOINT ["/dig-relay"]
CMD ["serve"]
