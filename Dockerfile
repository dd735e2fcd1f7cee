# portcullis container: Debian bookworm builds, bookworm-slim runs.
#   podman build --format docker --isolation=chroot -t localhost/portcullis .
#   docker build -t portcullis .
# --format docker keeps HEALTHCHECK (the OCI image format has no field for it).
# Where debian:bookworm cannot be pulled, build on a local base instead:
#   --build-arg BUILD_IMAGE=debian:bookworm-slim
ARG BUILD_IMAGE=debian:bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${BUILD_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config \
      libevent-dev libpq-dev libmariadb-dev libyaml-dev libssl-dev libjwt-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY lib/ lib/
COPY proxy/ proxy/
COPY rules/ rules/
COPY policies/ policies/
# CFLAGS from the environment: only -O2/-g0 change, the Makefile's own flags
# (-std, -D_GNU_SOURCE, pkg-config) stay
RUN CFLAGS="-O2 -g0" make -j"$(nproc)" BUILD=/build \
 && strip --strip-all /build/portcullis

FROM ${RUNTIME_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libevent-core-2.1-7 libpq5 libmariadb3 libyaml-0-2 libssl3 libjwt0 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
      /usr/share/doc/* /usr/share/man/* \
 && groupadd --gid 10001 portcullis \
 && useradd --uid 10001 --gid 10001 --no-create-home --no-log-init --home-dir /nonexistent \
      --shell /usr/sbin/nologin portcullis
COPY --from=build /build/portcullis /usr/local/bin/portcullis
COPY rules/dify.yaml /etc/portcullis/portcullis.yaml
COPY policies/invalidate.sql policies/invalidate.mysql.sql policies/invalidate-agents.mysql.sql /usr/share/portcullis/
USER 10001:10001
ENV PORTCULLIS_LISTEN=0.0.0.0:8080
EXPOSE 8080
STOPSIGNAL SIGTERM
# no curl in the image: the binary checks itself (on $PORTCULLIS_LISTEN)
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/portcullis", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["-c", "/etc/portcullis/portcullis.yaml"]
