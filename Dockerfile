# portcullis container: Debian bookworm builds, the image is FROM scratch.
#   podman build --format docker --isolation=chroot -t localhost/portcullis .
#   docker build -t portcullis .
# --format docker keeps HEALTHCHECK (the OCI image format has no field for it).
# Where debian:bookworm cannot be pulled, build on a local base instead:
#   --build-arg BUILD_IMAGE=debian:bookworm-slim
#
# The runtime image holds the binary, the shared libraries ldd finds for it
# (and their plugin directories), glibc's NSS modules and nsswitch.conf, the
# CA bundle, passwd/group entries for uid 10001, the Dify pack as the default
# config and the invalidation SQL: tools/image-rootfs.sh computes the list from
# the built binary. No shell, no package manager.
ARG BUILD_IMAGE=debian:bookworm

FROM ${BUILD_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config ca-certificates \
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
COPY tools/image-rootfs.sh /usr/local/bin/image-rootfs
RUN sh /usr/local/bin/image-rootfs /build/portcullis /rootfs \
 && mkdir -p /rootfs/etc/portcullis /rootfs/usr/share/portcullis \
 && cp rules/dify.yaml /rootfs/etc/portcullis/portcullis.yaml \
 && cp policies/invalidate*.sql /rootfs/usr/share/portcullis/ \
 && chmod 0644 /rootfs/etc/portcullis/portcullis.yaml /rootfs/usr/share/portcullis/*

FROM scratch
COPY --from=build /rootfs/ /
USER 10001:10001
# a scratch image has no PATH of its own: "exec portcullis ..." finds it here
ENV PATH=/usr/local/bin \
    PORTCULLIS_LISTEN=0.0.0.0:8080
EXPOSE 8080
STOPSIGNAL SIGTERM
# no shell and no curl in the image: the binary checks itself (on $PORTCULLIS_LISTEN)
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/portcullis", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["-c", "/etc/portcullis/portcullis.yaml"]
