# syntax=docker/dockerfile:1
# MinIO server from the community edition's last release. MinIO publishes its community edition as
# source only since that release (October 2025), so the image is built here from the tag.

FROM golang:1.25-bookworm AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG MINIO_RELEASE=RELEASE.2025-10-15T17-29-55Z
WORKDIR /src
RUN git clone --depth 1 --branch "${MINIO_RELEASE}" https://github.com/minio/minio.git .
ENV CGO_ENABLED=0
# DL3062 reads `go run <file>` as an unpinned package: it is a file of the tag-pinned checkout.
# hadolint ignore=DL3062
RUN ldflags="$(MINIO_RELEASE=RELEASE go run buildscripts/gen-ldflags.go "$(git log -1 --format=%cI)")" \
    && go build -trimpath -tags kqueue -ldflags "${ldflags}" -o /out/minio . \
    && /out/minio --version

FROM alpine:3.22
RUN addgroup -S -g 10001 minio \
    && adduser -S -D -H -u 10001 -G minio minio \
    && mkdir /data \
    && chown minio:minio /data
COPY --from=build /out/minio /usr/bin/minio
USER 10001:10001
EXPOSE 9000 9001
VOLUME ["/data"]
ENTRYPOINT ["/usr/bin/minio"]
CMD ["server", "/data", "--console-address", ":9001"]
