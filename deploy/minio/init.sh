#!/bin/sh
# The minio-init one-shot of docker-compose.yml (the only container besides minio that holds the
# MinIO root keys): the landing and warehouse buckets, then two users, each with one policy:
#   S3_ACCESS_KEY_ID         lakehouse-readwrite: read and write both buckets (the code server, its runs)
#   S3_READER_ACCESS_KEY_ID  warehouse-readonly: list and read the warehouse, nothing else (serve,
#                            dashboard: they read tables, never write or see the landing zone)
# Idempotent: buckets and policies are made again, users' secrets set again, attachments kept.
# The policies are deploy/minio/policies/*.json with the bucket names put in.
set -eu
: "${MC_CONFIG_DIR:=/tmp/.mc}"
export MC_CONFIG_DIR
policies="${POLICY_DIR:-/lakehouse/minio/policies}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mc alias set lake "$S3_ENDPOINT" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "lake/$LANDING_BUCKET" "lake/$WAREHOUSE_BUCKET"

attach() { # policy user: attached once; "already in effect" is no error
    if ! out="$(mc admin policy attach lake "$1" --user "$2" 2>&1)"; then
        case "$out" in
            *"already in effect"*) ;;
            *) echo "$out" >&2; exit 1 ;;
        esac
    fi
}

for name in lakehouse-readwrite warehouse-readonly; do
    sed -e "s/__LANDING_BUCKET__/$LANDING_BUCKET/g" -e "s/__WAREHOUSE_BUCKET__/$WAREHOUSE_BUCKET/g" \
        "$policies/$name.json" > "$work/$name.json"
    mc admin policy create lake "$name" "$work/$name.json" >/dev/null
done
mc admin user add lake "$S3_ACCESS_KEY_ID" "$S3_SECRET_ACCESS_KEY" >/dev/null
attach lakehouse-readwrite "$S3_ACCESS_KEY_ID"
mc admin user add lake "$S3_READER_ACCESS_KEY_ID" "$S3_READER_SECRET_ACCESS_KEY" >/dev/null
attach warehouse-readonly "$S3_READER_ACCESS_KEY_ID"
echo "minio-init: buckets $LANDING_BUCKET, $WAREHOUSE_BUCKET; users $S3_ACCESS_KEY_ID (read-write), $S3_READER_ACCESS_KEY_ID (warehouse read-only)"
