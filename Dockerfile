# run-notifier: multi-stage build, non-root runtime with the stripped binary, templates and config.
# The build runs the same cargo command as CI (`--locked`, the committed Cargo.lock) with the
# `dist` profile (release, symbols stripped: about a sixth of the size).
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, in a layer of their own: rebuilt only when Cargo.toml or Cargo.lock change.
# Empty stand-ins for the crate's own targets let cargo resolve and compile every dependency.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && for bench in $(grep -A1 '^\[\[bench\]\]' Cargo.toml | sed -n 's/^name = "\(.*\)"/\1/p'); do \
      echo 'fn main() {}' > "benches/$bench.rs"; \
    done \
 && cargo build --profile dist --locked --bin run-notifier \
 && rm -rf src benches
COPY src src
COPY benches benches
COPY migrations migrations
COPY config config
COPY templates templates
# The stand-ins are newer than the real sources' checkout times: touch so cargo rebuilds them.
RUN touch src/main.rs src/lib.rs \
 && cargo build --profile dist --locked --bin run-notifier

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin run-notifier \
 && mkdir -p /app /var/lib/run-notifier \
 && chown 10001 /var/lib/run-notifier
WORKDIR /app
COPY --from=build /src/target/dist/run-notifier /usr/local/bin/run-notifier
COPY templates templates
COPY config config
USER 10001
# The SQLite ledger (config/container.yaml: ledger.path); a volume, so it outlives the container.
VOLUME /var/lib/run-notifier
ENV RUN_NOTIFIER_CONFIG=/app/config/container.yaml
# The admin listener (/healthz, /readyz, /metrics); config/container.yaml binds 0.0.0.0:9464.
EXPOSE 9464
ENTRYPOINT ["run-notifier"]
CMD ["run"]
