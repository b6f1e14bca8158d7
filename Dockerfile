# syntax=docker/dockerfile:1
# face-server: the self-hosted Face API v1.0.
# Build: docker build -t face-server .          (or: cargo xtask image [--offline-bases])
# Run:   docker run --rm -it -p 5000:5000 --memory 6g --cpus 2 -v face-data:/data face-server \
#          Eula=accept Billing=<url> ApiKey=<key>
# The build stage runs `cargo xtask package --release`, the command the test suite runs (in the
# dev profile) before building the runtime stage over its own package folder: `--build-arg
# PACKAGE=prebuilt` with a build context holding that folder as `package/` (cargo xtask image
# --package DIR), so the runtime stage below is the same text either way.

# Which stage gives /opt/face: "build" (compile here) or "prebuilt" (the context's package/).
ARG PACKAGE=build

FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv nodejs npm \
    && rm -rf /var/lib/apt/lists/*
RUN rustup target add wasm32-wasip1 wasm32-wasip2 wasm32-unknown-unknown
WORKDIR /src
COPY . .
# The repo's rust-toolchain.toml says "stable"; build with the image's own 1.95.0. The build
# folder, the downloads, the crate registry and the tools cargo installs (wasm-bindgen-cli) live
# in cache mounts, so a rebuild after an edit compiles only what changed.
ENV FACE_CACHE=/cache CARGO_TARGET_DIR=/cache/target RUSTUP_TOOLCHAIN=1.95.0 \
    CARGO_INSTALL_ROOT=/cache/tools PATH=/cache/tools/bin:$PATH
RUN --mount=type=cache,id=face-build,target=/cache \
    --mount=type=cache,id=face-cargo-registry,target=/usr/local/cargo/registry \
    cargo xtask package --release /opt/face

FROM scratch AS prebuilt
COPY package /opt/face

# (Written with a default: podman 4.3's buildah does not apply a global ARG's default to FROM.)
FROM ${PACKAGE:-build} AS package

FROM debian:bookworm-slim AS runtime
# cargo xtask image passes the workspace's version and repository (Cargo.toml).
ARG VERSION=0.1.0
ARG SOURCE=unknown
# The code's license; each model's own is in /opt/face/models/manifest.toml.
LABEL org.opencontainers.image.title="face-server" \
      org.opencontainers.image.description="Self-hosted Face API v1.0 whose face engine is WebAssembly" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 face \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin face \
    && mkdir -p /data /output \
    && chown face:face /data /output
COPY --from=package /opt/face /opt/face
# Every shared library the binaries and the onnxruntime backend load is in this image.
RUN ldd /opt/face/face-server /opt/face/face-meter /opt/face/models/libonnxruntime.so > /tmp/ldd.txt \
    && ! grep "not found" /tmp/ldd.txt \
    && rm /tmp/ldd.txt
ENV Storage__DataDirectory=/data Mounts__Output=/output Server__Address=0.0.0.0:5000
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 5000
# SIGTERM (docker stop) stops accepting and drains requests in flight for up to
# Server:ShutdownTimeoutSeconds (30 by default); give `docker stop -t` at least that.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=6s --start-period=60s --retries=3 CMD ["/opt/face/face-server", "healthcheck"]
ENTRYPOINT ["/opt/face/face-server"]
