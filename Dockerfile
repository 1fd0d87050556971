# One image with every service; docker-compose.yml picks the binary per container.
# Build stage: the workspace in release mode (librdkafka is compiled from source here).
# Cargo's registry and the target dir are BuildKit cache mounts, kept from one build to
# the next: a code change recompiles the workspace's crates, not every dependency.
# (BuildKit is Docker's builder since 23.0; before, DOCKER_BUILDKIT=1.)
# The two base images are build arguments only so that a machine without an image
# registry can build from local stand-ins (tools/compose-ci.sh); the defaults are the
# images everyone else builds from.
ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim
FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins \
 && mkdir -p /out \
 && for bin in $(awk '!/^ *(#|$)/ {print $1}' services/registry.txt) dlt-replay; do cp "target/release/$bin" /out/; done

# Runtime: a slim Debian with curl for health checks, running as an unprivileged user.
FROM ${RUNTIME_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /app app \
 && mkdir -p /app/data && chown app /app/data
COPY --from=build /out/ /app/
USER app
WORKDIR /app
ENV PATH=/app:$PATH
