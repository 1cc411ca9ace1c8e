# fvhost in a container: built from source, shipped as the binary alone.
#
#   docker build -t fvhost .
#   docker run --rm -v "$PWD/repo:/repo:ro" fvhost run -r /repo --admin 0.0.0.0:6570
#
# The build stage compiles the release binary and splits its debug info off
# (scripts/dist.sh); the debug file stays in the build stage (copy it out with
# `docker build --target build` and `docker cp` to keep it for crash reports).
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake build-essential perl binutils \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN scripts/dist.sh /dist

# The runtime: Debian's slim image (glibc, zlib), the binary, a user without
# privileges. Transforms and repos are mounted; modules compiled at run time
# are cached in FVHOST_CACHE_DIR.
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/fvhost --create-home fvhost
COPY --from=build /dist/fvhost /usr/local/bin/fvhost
USER 10001:10001
ENV FVHOST_CACHE_DIR=/var/lib/fvhost/cache
WORKDIR /var/lib/fvhost
EXPOSE 6566 6570
ENTRYPOINT ["/usr/local/bin/fvhost"]
CMD ["--help"]
