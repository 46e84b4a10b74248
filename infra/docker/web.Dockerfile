# syntax=docker/dockerfile:1
# The clinicians' application at `/` for Kubernetes: infra/nginx/html served by an unprivileged
# nginx (compose's nginx mounts the same folder). Build from the repository root:
#   docker build -f infra/docker/web.Dockerfile -t hearteye/web:0.1.0 .

FROM alpine:3.22 AS files
COPY infra/nginx/html/ /out/html/
# Files readable by anyone, owned by root: the server (uid 101) cannot change what it serves.
RUN find /out/html -type d -exec chmod 0755 {} + \
    && find /out/html -type f -exec chmod 0644 {} +

FROM nginxinc/nginx-unprivileged:1.28.0-alpine
COPY --from=files /out/html/ /usr/share/nginx/html/
COPY infra/docker/web.conf /etc/nginx/conf.d/default.conf
USER 101:101
EXPOSE 8080
