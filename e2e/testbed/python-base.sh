#!/usr/bin/env bash
# Makes a local Python 3.11 base image from Debian bookworm packages, for machines that cannot pull
# python:3.11-slim: `debootstrap --variant=minbase` with python3, python3-venv and ca-certificates, trimmed
# like debian:bookworm-slim (no docs, man pages, locales, apt caches), then `docker import`.
# Prints the image name on stdout. Idempotent: an existing image is reused (delete it to rebuild).
# Needs root (debootstrap) and a Debian mirror: $DEBIAN_MIRROR, else the bookworm entry of the host's apt
# sources, else deb.debian.org. Python there is /usr/bin/python3 (no `python`).
set -euo pipefail
IMAGE="${PYTHON_BASE_IMAGE:-apprelease-testbed/python:3.11-bookworm}"
SUITE=bookworm

log() { echo "[python-base] $*" >&2; }
die() { echo "[python-base] ERROR: $*" >&2; exit 1; }

exists() { docker image inspect "$IMAGE" >/dev/null 2>&1; }
if exists; then echo "$IMAGE"; exit 0; fi

# One maker at a time (two test sessions or `make image` runs may race); re-check after waiting.
exec 9>"${TMPDIR:-/tmp}/apprelease-python-base.lock"
flock 9
if exists; then echo "$IMAGE"; exit 0; fi

command -v debootstrap >/dev/null || die "debootstrap is missing; run 'make deps' (apt: debootstrap)"
[[ "$(id -u)" == 0 ]] || die "debootstrap needs root"

# The first http(s) mirror serving $SUITE in the host's apt sources (one-line or deb822 format).
host_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    # deb [options] URI SUITE COMPONENTS...
    sed -E 's/#.*//; s/\[[^]]*\]//' "$f" \
      | awk -v s="$SUITE" '$1 == "deb" && $3 == s && $2 ~ /^https?:\/\// {print $2; exit}'
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    # Stanzas separated by blank lines; URIs: and Suites: may list several values.
    awk -v s="$SUITE" '
      function flush() { if (deb && uri != "" && hit) { print uri; found = 1; exit } deb = 1; uri = ""; hit = 0 }
      BEGIN { deb = 1 }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      tolower($1) == "types:" { deb = 0; for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
      tolower($1) == "uris:" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\//) { uri = $i; break } }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == s) hit = 1 }
      tolower($1) == "enabled:" && tolower($2) == "no" { deb = 0 }
      END { if (!found) flush() }
    ' "$f"
  done
}
mirror="${DEBIAN_MIRROR:-$(host_mirror | head -n 1)}"
mirror="${mirror:-http://deb.debian.org/debian}"

work="$(mktemp -d "${TMPDIR:-/var/tmp}/apprelease-python-base.XXXXXX")"
rootfs="$work/rootfs"
cleanup() {
  # debootstrap mounts /proc and /sys in the target while it runs; never delete through a mount.
  local m
  for m in $(awk -v d="$rootfs" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

log "debootstrap $SUITE (minbase + python3, python3-venv, ca-certificates) from $mirror; log in $work/debootstrap.log"
if ! debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$SUITE" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 30 "$work/debootstrap.log" >&2
  [[ -f "$rootfs/debootstrap/debootstrap.log" ]] && tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2
  die "debootstrap failed"
fi

# Trim like debian:bookworm-slim, and keep later `apt-get install`s in derived images trimmed too.
cat > "$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/var/tmp/*
: > "$rootfs/etc/resolv.conf"  # the host's, copied by debootstrap; Docker mounts its own
: > "$rootfs/etc/hostname"

chroot "$rootfs" /usr/bin/python3 -c 'import ensurepip, ssl, sys, venv; assert sys.version_info[:2] == (3, 11)' \
  || die "the bootstrapped python3 is not a working Python 3.11 with venv and ssl"

log "importing $IMAGE"
# Device nodes are left out: Docker gives every container its own /dev.
tar --numeric-owner -C "$rootfs" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . \
  | docker import \
      -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      -c 'ENV LANG=C.UTF-8' \
      -c 'CMD ["python3"]' \
      -m "debootstrap --variant=minbase $SUITE + python3 python3-venv ca-certificates" \
      - "$IMAGE" >/dev/null
log "made $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}'))"
echo "$IMAGE"
