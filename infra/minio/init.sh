#!/bin/sh
# One-shot, idempotent S3 initialisation (compose services minio-init and seaweedfs-init):
# the artifact bucket, private; on MinIO also the application's user with a policy limited to
# that bucket (SeaweedFS's compose profile uses the application's key pair as its only identity).
set -eu
: "${S3_KIND:?minio or seaweedfs}" "${S3_ENDPOINT:?}" "${S3_ROOT_USER:?}" "${S3_ROOT_PASSWORD:?}"
: "${S3_BUCKET:?}"

tries=0
until mc alias set hearteye "$S3_ENDPOINT" "$S3_ROOT_USER" "$S3_ROOT_PASSWORD" >/dev/null 2>&1 \
    && mc ls hearteye >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 30 ]; then
    echo "S3 server at $S3_ENDPOINT not reachable" >&2
    exit 1
  fi
  sleep 1
done

mc mb --ignore-existing "hearteye/$S3_BUCKET"

if [ "$S3_KIND" = minio ]; then
  : "${S3_APP_ACCESS_KEY:?}" "${S3_APP_SECRET_KEY:?}"
  mc anonymous set none "hearteye/$S3_BUCKET"
  policy=/tmp/hearteye-app-policy.json
  sed "s/@BUCKET@/$S3_BUCKET/g" /opt/hearteye/app-policy.json > "$policy"
  mc admin policy create hearteye hearteye-app "$policy"
  mc admin user add hearteye "$S3_APP_ACCESS_KEY" "$S3_APP_SECRET_KEY"
  if ! mc admin user info hearteye "$S3_APP_ACCESS_KEY" | grep -q hearteye-app; then
    mc admin policy attach hearteye hearteye-app --user "$S3_APP_ACCESS_KEY"
  fi
fi
echo "bucket $S3_BUCKET ready on $S3_ENDPOINT ($S3_KIND)"
