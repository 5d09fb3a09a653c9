# Builds the outflow binary (librdkafka is compiled in by rdkafka's
# cmake-build feature, so the runtime image needs no Kafka libraries).
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake libcurl4-openssl-dev libsasl2-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --bin outflow

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libcurl4 libsasl2-2 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/outflow /usr/local/bin/outflow
# [admin] listen (examples/outflow.compose.toml): /healthz /readyz /status /metrics
EXPOSE 9187
ENTRYPOINT ["outflow"]
