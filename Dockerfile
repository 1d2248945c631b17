# tide's container image: `docker build -t tide .` from the repository root. Debian 12, two
# stages: the first builds tide and the dashboard and packages them as the .deb of
# `cpack -G DEB`; the second installs that package (apt resolves its runtime libraries) and runs
# as an unprivileged user. deploy/kubernetes/deployment.yaml runs this image.
#   docker build --build-arg TIDE_GIT_COMMIT=$(git rev-parse --short=12 HEAD) -t tide .
FROM debian:12 AS build
ARG TIDE_GIT_COMMIT=""
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN apt-get update -q && apt-get install -y --no-install-recommends ca-certificates file \
    && scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DTIDE_BUILD_TESTS=OFF \
      -DTIDE_BUILD_BENCH=OFF -DTIDE_GIT_COMMIT="${TIDE_GIT_COMMIT}" \
    && cmake --build /build -j "$(nproc)" \
    && cd /build && cpack -G DEB -B /pkg && /build/bin/tide --version

FROM debian:12-slim
ENV DEBIAN_FRONTEND=noninteractive
COPY --from=build /pkg/tide_*.deb /tmp/
RUN apt-get update -q && apt-get install -y --no-install-recommends ca-certificates /tmp/tide_*.deb \
    && rm -rf /var/lib/apt/lists/* /tmp/tide_*.deb \
    && useradd --system --uid 10001 --home-dir /var/lib/tide --create-home tide
USER 10001:10001
WORKDIR /var/lib/tide
EXPOSE 8080 8081
ENTRYPOINT ["/usr/bin/tide"]
CMD ["serve", "--config", "/etc/tide/tide.yaml"]
