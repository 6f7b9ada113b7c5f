# syntax=docker/dockerfile:1

# One image with every notify binary; each container picks its command.

FROM rust:1-bookworm AS build

RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# Use checked-in query metadata (.sqlx) if there is any, never a live database.
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never

# target/ lives in a cache mount, so the binaries are copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    set -eux; \
    cargo build --release --locked --bins; \
    mkdir -p /out; \
    find target/release -maxdepth 1 -type f -executable \
        \( -name 'notify-*' -o -name notifyctl \) -exec cp {} /out/ \; ; \
    for bin in notify-ingest notify-enrich notify-render \
               notify-deliver-email notify-deliver-webhook notify-scheduler notifyctl; do \
        test -x "/out/$bin"; \
    done; \
    ls -l /out

FROM debian:bookworm-slim AS runtime

LABEL org.opencontainers.image.title="notify" \
      org.opencontainers.image.description="Multi-tenant notification pipeline workers and notifyctl" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# Fixed numeric ids so Kubernetes can verify runAsNonRoot.
RUN groupadd --system --gid 10001 notify \
 && useradd --system --uid 10001 --gid notify --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin notify

COPY --from=build /out/ /usr/local/bin/

USER 10001:10001
WORKDIR /tmp

# Bind every interface inside a container; the binaries default to loopback.
ENV NOTIFY_HTTP_ADDR=0.0.0.0:8080 \
    NOTIFY_LOG=info

# 8080: ingest API; 9100-9104: /metrics, /healthz, /readyz of each worker.
EXPOSE 8080 9100 9101 9102 9103 9104

CMD ["notifyctl", "--help"]
