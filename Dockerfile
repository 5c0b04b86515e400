# One image, both programs: `producer` (HTTP 3005, WebSocket 8080; also `producer flood`)
# and `listener` (HTTP 3000). docker-compose.yml picks the program with `command:`.
#
#   docker build -t dedup .
#   docker run --rm dedup producer --help
#
# Stage 1 builds release binaries on the official Swift image (Debian 12, the same
# distribution as the runtime stage, so the C libraries' sonames match). Stage 2 is
# debian:bookworm-slim with only what the binaries load: hiredis, libpq, libcrypto (libssl3),
# the C++ runtime the Swift runtime needs, and the Swift runtime libraries themselves,
# copied from the build image (exactly the ones `ldd` says the binaries load).
# Tests/SystemTests/ContainerConfigTests.swift checks this file against `ldd`.

ARG SWIFT_VERSION=6.3

# ---------------------------------------------------------------------------- build
FROM swift:${SWIFT_VERSION}-bookworm AS build

RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get -q update \
    && apt-get -q install -y --no-install-recommends libhiredis-dev libpq-dev libssl-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build

# Dependencies first: this layer is reused until Package.swift / Package.resolved change.
COPY ./Package.* ./
RUN swift package resolve

COPY . .
RUN swift build -c release --product producer \
    && swift build -c release --product listener \
    && bin="$(swift build -c release --show-bin-path)" \
    && mkdir -p /staging/bin /staging/swift-lib \
    && cp "$bin/producer" "$bin/listener" /staging/bin/ \
    # The Swift runtime libraries the two binaries load (their RUNPATH is
    # /usr/lib/swift/linux, where the runtime stage puts them back).
    && ldd /staging/bin/producer /staging/bin/listener \
       | awk '$3 ~ /\/lib\/swift\/linux\// { print $3 }' | sort -u \
       | xargs -r cp -L -t /staging/swift-lib/ \
    && ls -l /staging/bin /staging/swift-lib

# -------------------------------------------------------------------------- runtime
FROM debian:bookworm-slim AS runtime

RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get -q update \
    && apt-get -q install -y --no-install-recommends libhiredis0.14 libpq5 libssl3 zlib1g libstdc++6 libgcc-s1 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

# The Swift runtime (copied, not installed: there is no Debian package of it).
COPY --from=build /staging/swift-lib/ /usr/lib/swift/linux/
RUN echo /usr/lib/swift/linux > /etc/ld.so.conf.d/swift.conf && ldconfig
# Readable crash backtraces (the runtime's out-of-process backtracer).
COPY --from=build /usr/libexec/swift/linux/swift-backtrace-static /usr/libexec/swift/linux/swift-backtrace-static
ENV SWIFT_BACKTRACE=enable=yes,sanitize=yes,threads=all,images=all,interactive=no,swift-backtrace=/usr/libexec/swift/linux/swift-backtrace-static

COPY --from=build /staging/bin/producer /staging/bin/listener /usr/local/bin/

# Never run as root.
RUN groupadd --system --gid 10001 dedup \
    && useradd --system --uid 10001 --gid dedup --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin dedup \
    && mkdir -p /var/lib/dedup/producer && chown dedup:dedup /var/lib/dedup/producer
# The producer's event log (DATA_DIR); a named volume mounted here starts with this owner.
USER dedup:dedup
WORKDIR /tmp

EXPOSE 3000 3005 8080

# GET /health of whichever program this container runs: the producer's HTTP API is on
# HTTP_PORT (default 3005), a listener's on PORT (default 3000). A listener answers 200
# only while its producer, Redis and PostgreSQL links are all up. `producer flood` is a
# one-shot client with no API: always healthy.
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=5 \
    CMD set -- $(tr '\0' ' ' < /proc/1/cmdline); \
        case "$1" in *docker-init|*tini) while [ $# -gt 0 ] && [ "$1" != "--" ]; do shift; done; shift ;; esac; \
        case "${1##*/} ${2:-}" in \
          "producer flood") exit 0 ;; \
          "producer "*) port="${HTTP_PORT:-3005}" ;; \
          *) port="${PORT:-3000}" ;; \
        esac; \
        curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:${port}/health" || exit 1

# Both programs stop cleanly on SIGTERM (a listener finishes or releases in-flight claims).
STOPSIGNAL SIGTERM
CMD ["listener"]
