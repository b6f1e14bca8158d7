# syntax=docker/dockerfile:1
# face-server: the self-hosted Face API v1.0. Build: `docker build -t face-server .`
# Run:  docker run -p 5000:5000 -v face-data:/data face-server Eula=accept Billing=<url> ApiKey=<key>
# The build stage runs `cargo xtask package --release`, the same command the test suite runs
# (in the dev profile) before starting the packaged server the way ENTRYPOINT does.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv nodejs npm \
    && rm -rf /var/lib/apt/lists/*
RUN rustup target add wasm32-wasip1 wasm32-wasip2 wasm32-unknown-unknown
WORKDIR /src
COPY . .
# The repo's rust-toolchain.toml says "stable"; build with the image's own 1.95.0.
ENV FACE_CACHE=/cache CARGO_TARGET_DIR=/cache/target RUSTUP_TOOLCHAIN=1.95.0
RUN cargo xtask package --release /opt/face

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 face \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin face \
    && mkdir -p /data /output \
    && chown face:face /data /output
COPY --from=build /opt/face /opt/face
ENV Storage__DataDirectory=/data Mounts__Output=/output Server__Address=0.0.0.0:5000
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=6s --start-period=60s --retries=3 CMD ["/opt/face/face-server", "healthcheck"]
ENTRYPOINT ["/opt/face/face-server"]
