#!/usr/bin/env bash
# The system packages the tests start for real or build against: OpenSSH's server and client
# (the ssh runner's tests start real sshd on 127.0.0.1), headless Chromium (the dashboard test),
# pkg-config with the OpenSSL and zlib headers (ssh2 builds libssh2 against them), make (the
# benchmarks compare against it) and Python's venv module (the venvs of scripts/setup-*.sh).
# Installs what is missing when run as root (Debian/Ubuntu apt-get); otherwise prints the one
# command that would, and fails. Does nothing when everything is there.
set -euo pipefail
need=()
command -v make >/dev/null || need+=(make)
command -v chromium >/dev/null || need+=(chromium)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v pkg-config >/dev/null || need+=(pkg-config)
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
dpkg -s zlib1g-dev >/dev/null 2>&1 || need+=(zlib1g-dev)
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "installing system packages: ${need[*]}"
    log=$(mktemp)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } >"$log" 2>&1; then
      cat "$log" >&2; rm -f "$log"; exit 1
    fi
    rm -f "$log"
  else
    echo "the tests need these system packages; install them with:" >&2
    echo "  sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi
# sshd refuses to start without its privilege-separation folder.
if [ "$(id -u)" -eq 0 ] && [ ! -d /run/sshd ]; then
  mkdir -p -m 0755 /run/sshd
fi
