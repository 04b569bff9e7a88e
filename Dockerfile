# The pbibatch image for schedulers (Kestra `containerImage`, CI jobs): one static-enough binary
# on a small Debian base with CA certificates, run as a non-root user.
#
#   docker build -t pbibatch .
#   docker run --rm -v "$PWD:/work" pbibatch run jobs/order_list.yaml --simulate
#
# Debian slim rather than distroless: Kestra's script tasks run their `commands` through
# `/bin/sh -c`, so the image needs a shell; the base is ~75 MB and gets security updates.

# --- build --------------------------------------------------------------------------------
FROM rust:1-slim-bookworm AS build
WORKDIR /src
# git: build.rs puts the revision into `pbibatch --version` when .git is in the context;
# without .git (or git) the version is the bare package version. PBIBATCH_GIT_REVISION
# overrides it for builds from an exported tree (`--build-arg PBIBATCH_GIT_REVISION=...`).
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*
ARG PBIBATCH_GIT_REVISION
ENV PBIBATCH_GIT_REVISION=${PBIBATCH_GIT_REVISION}
COPY . .
# The release profile of Cargo.toml (thin LTO, stripped), the same build `cargo install` makes.
RUN cargo build --release --locked --bin pbibatch \
    && install -m 0755 target/release/pbibatch /usr/local/bin/pbibatch

# --- run ----------------------------------------------------------------------------------
FROM debian:bookworm-slim
# CA certificates: the TLS stack (rustls) verifies Power BI, Fabric and Entra against the
# system's trust store.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --user-group pbibatch
COPY --from=build /usr/local/bin/pbibatch /usr/local/bin/pbibatch
USER pbibatch
# Job files are mounted or copied here; relative paths (reports, `.pbibatch/state.db`)
# resolve against it.
WORKDIR /work
ENTRYPOINT ["/usr/local/bin/pbibatch"]
CMD ["--help"]
