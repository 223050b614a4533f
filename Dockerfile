# syntax=docker/dockerfile:1
# Statecraft server image: multi-stage (build with the Rust toolchain, run on
# a slim Debian), non-root, data on a volume, health from /healthz.
#
#   docker build -t statecraft .
#   docker run -d -p 7470:7470 -p 7471:7471 -v statecraft-data:/var/lib/statecraft statecraft
#
# Settings are STATECRAFT_* environment variables (statecraft serve --help);
# the ones below make the server reachable from outside the container.
# tests: crates/cli/tests/ops.rs checks the binary path, the flags and the
# environment variables this file uses against the real CLI.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p statecraft \
 && install -D -m 0755 target/release/statecraft /out/statecraft

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 statecraft \
 && useradd --system --uid 10001 --gid statecraft --home-dir /var/lib/statecraft \
      --shell /usr/sbin/nologin statecraft \
 && install -d -o statecraft -g statecraft -m 0750 /var/lib/statecraft
COPY --from=build /out/statecraft /usr/local/bin/statecraft
ENV STATECRAFT_DATA_DIR=/var/lib/statecraft \
    STATECRAFT_HTTP=0.0.0.0:7470 \
    STATECRAFT_TCP=0.0.0.0:7471 \
    STATECRAFT_LOG_FORMAT=json
USER statecraft:statecraft
WORKDIR /var/lib/statecraft
VOLUME ["/var/lib/statecraft"]
EXPOSE 7470 7471
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS http://127.0.0.1:7470/healthz || exit 1
# SIGTERM drains, commits and acks what was admitted (docs/http-api.md,
# "Shutdown"); give it time before docker's SIGKILL: docker stop -t 60.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/statecraft"]
CMD ["serve"]
