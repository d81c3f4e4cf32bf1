# Builds simtest and runs it as an unprivileged user. Used by docker-compose.yml.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY examples ./examples
RUN cargo build --release --locked --bin simtest

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/simtest simtest \
    && mkdir -p /var/lib/simtest && chown simtest /var/lib/simtest
COPY --from=build /src/target/release/simtest /usr/local/bin/simtest
USER simtest
WORKDIR /var/lib/simtest
ENV SIMTEST_LISTEN=0.0.0.0:8080 \
    SIMTEST_DATA_DIR=/var/lib/simtest
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q ' 200 ' <&3"]
ENTRYPOINT ["simtest"]
CMD ["serve"]
