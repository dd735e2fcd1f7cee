# portcullis container: Debian bookworm builds, bookworm-slim runs.
#   podman build --isolation=chroot -t localhost/portcullis .
#   docker build -t portcullis .
FROM debian:bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config \
      libevent-dev libpq-dev libyaml-dev libssl-dev libjwt-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY proxy/ proxy/
COPY rules/ rules/
COPY policies/ policies/
RUN make -j"$(nproc)" BUILD=/build CFLAGS="-O2 -g0" && strip /build/portcullis

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libevent-core-2.1-7 libpq5 libyaml-0-2 libssl3 libjwt0 \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin portcullis
COPY --from=build /build/portcullis /usr/local/bin/portcullis
COPY rules/dify.yaml /etc/portcullis/portcullis.yaml
COPY policies/invalidate.sql /usr/share/portcullis/invalidate.sql
USER 10001:10001
ENV PORTCULLIS_LISTEN=0.0.0.0:8080
EXPOSE 8080
STOPSIGNAL SIGTERM
# no curl in the image: the binary checks itself
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/portcullis", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["-c", "/etc/portcullis/portcullis.yaml"]
