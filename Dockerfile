# syntax=docker/dockerfile:1
# connect-manager: release build in a Rust image, run from a slim Debian image as a non-root user.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
# Dependencies first, in a layer that is rebuilt only when the manifests or the lock file change:
# the workspace's crates are stubbed so that only the dependencies compile here.
COPY Cargo.toml Cargo.lock ./
COPY crates/connect-manager-core/Cargo.toml crates/connect-manager-core/
COPY crates/connect-manager-store/Cargo.toml crates/connect-manager-store/
COPY crates/connect-manager-server/Cargo.toml crates/connect-manager-server/
COPY crates/connect-manager-cli/Cargo.toml crates/connect-manager-cli/
COPY crates/connect-manager-gateway/Cargo.toml crates/connect-manager-gateway/
COPY crates/connect-manager/Cargo.toml crates/connect-manager/
RUN for c in core store server cli gateway; do \
        mkdir -p crates/connect-manager-$c/src && touch crates/connect-manager-$c/src/lib.rs; \
    done \
    && mkdir -p crates/connect-manager/src && echo 'fn main() {}' > crates/connect-manager/src/main.rs \
    && cargo build --release --locked -p connect-manager \
    && rm -rf crates target/release/.fingerprint/connect-manager*
# Then the service itself.
COPY crates crates
COPY migrations migrations
COPY openapi.yaml ./
RUN cargo build --release --locked -p connect-manager \
    && install -m 0755 target/release/connect-manager /usr/local/bin/connect-manager

FROM debian:${DEBIAN_RELEASE}-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="connect-manager" \
      org.opencontainers.image.description="Self-hosted management service for 1Password Connect-style servers" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.documentation="README.md"
# CA certificates for PostgreSQL over TLS; nothing else.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin connect-manager \
    && mkdir -p /data && chown 10001:10001 /data && chmod 0700 /data
COPY --from=build /usr/local/bin/connect-manager /usr/local/bin/connect-manager
USER 10001:10001
ENV CONNECT_MANAGER_BIND=0.0.0.0:8080 \
    CONNECT_MANAGER_DATA_DIR=/data \
    LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
# The binary checks itself: no curl in the image.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["connect-manager", "healthcheck"]
ENTRYPOINT ["connect-manager"]
CMD ["serve"]
