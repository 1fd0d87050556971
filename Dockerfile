# One image with every service; docker-compose.yml picks the binary per container.
# Build stage: the workspace in release mode (librdkafka is compiled from source here).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins \
 && mkdir -p /out \
 && for bin in $(awk '!/^ *(#|$)/ {print $1}' services/registry.txt) dlt-replay; do cp "target/release/$bin" /out/; done

# Runtime: a slim Debian with curl for health checks, running as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /app app \
 && mkdir -p /app/data && chown app /app/data
COPY --from=build /out/ /app/
USER app
WORKDIR /app
ENV PATH=/app:$PATH
