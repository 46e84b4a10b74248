#!/usr/bin/env bash
# Install and start what HeartEye needs outside Python, idempotently (nothing happens when all is
# present). Components, all four without arguments:
#   nginx        Debian's nginx (the native stack's public entry; tests/integration, tests/infra)
#   chromium     Debian's chromium and chromedriver (the browser tests)
#   prometheus   Debian's prometheus and promtool (the native stack's Prometheus; the alert rules'
#                tests in tests/infra)
#   postgresql   a running PostgreSQL on 127.0.0.1:5432 (the native stack, tests/identity)
#   wrk          Debian's wrk (the serving benchmark's independent load generator; not a default:
#                `make bench-wrk` asks for it)
#   scripts/ensure-system.sh nginx prometheus postgresql    # what `make stack-up` needs
set -euo pipefail

components=("$@")
[ ${#components[@]} -gt 0 ] || components=(nginx chromium prometheus postgresql)
wants() { [[ " ${components[*]} " == *" $1 "* ]]; }
for c in "${components[@]}"; do
  case "$c" in nginx|chromium|prometheus|postgresql|wrk) ;; *) echo "unknown component: $c" >&2; exit 2 ;; esac
done

need=()
if wants nginx; then
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
fi
if wants chromium; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium chromium-driver)
fi
if wants prometheus; then
  command -v promtool >/dev/null 2>&1 || [ -x /usr/bin/promtool ] || need+=(prometheus)
fi
if wants wrk; then
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages: ${need[*]} (install them as root: apt-get install ${need[*]})" >&2
    exit 1
  fi
  # Never let a package start a system-wide nginx on port 80 or a prometheus on 9090: the tests
  # run their own.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created_policy=1
  fi
  echo "installing ${need[*]} …" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${need[@]}" >/dev/null
  [ "$created_policy" -eq 1 ] && rm -f "$policy"
fi

wants postgresql || exit 0
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "starting PostgreSQL …" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 -q || { echo "PostgreSQL is not answering on 127.0.0.1:5432" >&2; exit 1; }
