# run-notifier: multi-stage build, non-root runtime with the binary, templates and config.
# The build runs the same cargo command as CI (`--locked`, the committed Cargo.lock).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY config config
COPY templates templates
COPY benches benches
RUN cargo build --release --locked --bin run-notifier

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin run-notifier \
 && mkdir -p /app /var/lib/run-notifier \
 && chown run-notifier /var/lib/run-notifier
WORKDIR /app
COPY --from=build /src/target/release/run-notifier /usr/local/bin/run-notifier
COPY templates templates
COPY config config
USER 10001
ENV RUN_NOTIFIER_CONFIG=/app/config/run-notifier.yaml
# The admin listener (/healthz, /readyz, /metrics); bind it to 0.0.0.0 in the config.
EXPOSE 9464
ENTRYPOINT ["run-notifier"]
CMD ["run"]
