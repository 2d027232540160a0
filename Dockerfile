# peerline in a container: build with the Rust toolchain, run on Debian slim as a
# non-root user. State (database, pepper, Matrix stores) lives in the /data volume:
# relative paths in peerline.toml resolve there. Set `flows = "/etc/peerline/flows"`
# in the mounted peerline.toml to use the flows shipped in the image.
#
#   docker build -t peerline .
#   docker run -d --name peerline -v peerline-data:/data \
#     -v ./peerline.toml:/etc/peerline/peerline.toml:ro \
#     -e PEERLINE_MATRIX_STORE_PASSPHRASE_FILE=/run/secrets/matrix_store_passphrase peerline
#   docker kill -s HUP peerline      # reload the flows
#   docker stop peerline             # SIGTERM: finishes messages in progress

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --profile deploy --locked \
 && install -D target/deploy/peerline /out/peerline \
 && ./target/deploy/peerline check flows

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin peerline \
 && mkdir -p /data /etc/peerline \
 && chown peerline:peerline /data && chmod 0700 /data
COPY --from=build /out/peerline /usr/local/bin/peerline
COPY flows /etc/peerline/flows
COPY peerline.example.toml /etc/peerline/peerline.example.toml
USER peerline
# glibc gives every thread its own malloc arena; two are plenty (less idle memory).
ENV MALLOC_ARENA_MAX=2
WORKDIR /data
VOLUME ["/data"]
# tini forwards SIGTERM and SIGHUP to peerline and reaps; peerline is not PID 1.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/peerline"]
CMD ["run", "--config", "/etc/peerline/peerline.toml"]
