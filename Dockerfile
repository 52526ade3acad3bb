# warren services image: customer-service, order-service, the `warren` CLI.
#
#   docker build -t warren .            (or: docker-compose build)
#
# Stage 1 builds on Debian 12 with the same -dev packages as scripts/deps (build,
# libraries, code generation; the test-only tools stay out). Stage 2 is Debian 12 with
# only the shared libraries the binaries load (libwarren itself is linked statically)
# plus curl for the healthchecks. tests/unit/test_deploy.c checks both package lists
# against scripts/deps and against the binaries' DT_NEEDED entries.

FROM debian:bookworm AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config git \
      librabbitmq-dev libpq-dev libprotobuf-c-dev libmicrohttpd-dev libcmocka-dev libjansson-dev \
      protobuf-compiler protobuf-c-compiler libprotoc-dev libprotobuf-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DWARREN_WERROR=ON -DWARREN_TESTS=OFF -DWARREN_BENCH=OFF \
 && cmake --build build \
 && strip --strip-debug build/bin/*

FROM debian:bookworm
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      librabbitmq4 libpq5 libprotobuf-c1 libmicrohttpd12 libjansson4 libssl3 \
      ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin warren
COPY --from=build /src/build/bin/ /usr/local/bin/
USER warren
# Both services read their configuration from the environment (see docs/SERVICES.md);
# the compose file chooses the binary per service.
EXPOSE 8081 8082
STOPSIGNAL SIGTERM
CMD ["customer-service", "--help"]
