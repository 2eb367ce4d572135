# syntax=docker/dockerfile:1
# vault-svc: the card vault. Build from the repository root (the context must be the workspace):
#   docker build -f deploy/docker/vault-svc.Dockerfile -t payvault/vault-svc:dev .
# Runs as uid 10001. The manifests run it with a read-only root filesystem (plus an emptyDir
# at /tmp) and mount keys, TLS and the merchant directory read-only.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the registry and target/ between builds; the binary is copied out of
# target/ in the same step because a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p vault-svc \
 && install -D -m 0755 target/release/vault-svc /out/vault-svc

FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 payvault \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin payvault \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/payvault
COPY --from=builder /out/vault-svc /usr/local/bin/vault-svc
# A local `docker run` without database URLs uses the embedded SQLite store: give it a
# writable working directory. In Kubernetes the stores are Redis/PostgreSQL and / is read-only.
WORKDIR /var/lib/payvault
USER 10001:10001
EXPOSE 50051 50061 9464
ENTRYPOINT ["/usr/local/bin/vault-svc"]
CMD ["serve"]
