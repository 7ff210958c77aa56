#!/usr/bin/env bash
# Usage: e2e/image.sh IMAGE VERSION   (`make image` passes apprelease/operator and `git describe`)
# Builds the operator's production image IMAGE:VERSION from operator/Dockerfile and prints its reference.
#  1. wheels for apprelease and every dependency into build/wheelhouse/ (from PyPI, on the host; wheels already
#     there are reused), so `docker build` needs no network;
#  2. the base image: $BASE_IMAGE, else python:3.11-slim when the engine has it, else a local Debian bookworm
#     base made once by e2e/testbed/python-base.sh;
#  3. docker build with the OCI labels (version, revision, source, created).
# Writes nothing in the repository outside build/ (git-ignored). Progress goes to stderr, the reference to stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"

log() { echo "[image] $*" >&2; }
die() { echo "[image] ERROR: $*" >&2; exit 1; }

[[ $# -eq 2 && -n "$1" && -n "$2" ]] || die "usage: $0 IMAGE VERSION"
image="$1" version="$2"
# A tag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}; `git describe` fits, anything else is made to.
tag="$(printf '%s' "$version" | tr -c 'A-Za-z0-9_.-' '-' | sed -E 's/^[.-]+//' | cut -c1-128)"
[[ -n "$tag" ]] || die "VERSION '$version' has nothing usable as a tag"
[[ "$tag" == "$version" ]] || log "tagging as '$tag' (VERSION '$version' is not a valid tag)"

cd "$root"
pip="${PIP:-$root/.venv/bin/pip}"
[[ -x "$pip" ]] || die "$pip is missing; run 'make venv'"
command -v docker >/dev/null || die "docker is missing; run 'make deps'"
docker info >/dev/null 2>&1 || die "no Docker engine at ${DOCKER_HOST:-the default socket}; run 'make testbed-up'"

# --- 1. wheelhouse ------------------------------------------------------------------------------------------
wheelhouse=build/wheelhouse
mkdir -p "$wheelhouse"
# Only this build's apprelease wheel may be there (the Dockerfile installs the highest version it finds), and
# setuptools' in-tree build/lib must not carry modules deleted since the last build into the wheel.
rm -rf "$wheelhouse"/apprelease-*.whl build/lib build/bdist.*
# setuptools writes *.egg-info next to the package; remove the ones this build makes (an editable install's stay).
mapfile -t egg_info_before < <(find operator -maxdepth 1 -name '*.egg-info' -type d)
remove_new_egg_info() {
  local d
  for d in operator/*.egg-info; do
    [[ -d "$d" ]] || continue
    [[ " ${egg_info_before[*]:-} " == *" $d "* ]] || rm -rf "$d"
  done
}
trap remove_new_egg_info EXIT
log "building wheels into $wheelhouse"
started=$SECONDS
# A fixed SOURCE_DATE_EPOCH makes the wheels built here byte-identical while their sources are, so an unchanged
# wheelhouse keeps Docker's layer cache.
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-315532800}" \
  "$pip" wheel --quiet --disable-pip-version-check --wheel-dir "$wheelhouse" --find-links "$wheelhouse" . >&2
remove_new_egg_info
ls "$wheelhouse"/apprelease-*.whl >/dev/null 2>&1 || die "no apprelease wheel in $wheelhouse"
log "wheels ready in $((SECONDS - started))s ($(find "$wheelhouse" -name '*.whl' | wc -l) wheels)"

# --- 2. base image -----------------------------------------------------------------------------------------
if [[ -n "${BASE_IMAGE:-}" ]]; then
  base="$BASE_IMAGE"
elif docker image inspect python:3.11-slim >/dev/null 2>&1; then
  base=python:3.11-slim
else
  log "python:3.11-slim is not in the engine (and cannot be pulled here): using a local Debian bookworm base"
  base="$("$here/testbed/python-base.sh")"
fi
log "base image: $base"
# The wheelhouse holds binary wheels for the venv's Python and platform: the base's must be the same.
probe='import sys, sysconfig; print("%d.%d" % sys.version_info[:2], sysconfig.get_platform())'
python="$(dirname "$pip")/python"
[[ -x "$python" ]] || python=python3
want="$("$python" -c "$probe")"
have="$(docker run --rm --network none --entrypoint python3 "$base" -c "$probe")" \
  || die "cannot run python3 in the base image $base"
[[ "$have" == "$want" ]] || die "the base image has Python $have, the wheels are for $want (the venv's): use a base \
with the same Python and platform, or a venv made with that Python"

# --- 3. docker build ---------------------------------------------------------------------------------------
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
# The remote's URL, without credentials; scp-like git@host:path becomes https://host/path.
remote="$(git remote 2>/dev/null | grep -x origin || git remote 2>/dev/null | head -n 1 || true)"
source_url="$([[ -n "$remote" ]] && git remote get-url "$remote" 2>/dev/null || true)"
source_url="$(printf '%s' "$source_url" | sed -E \
  -e 's#^([a-z+]+://)[^/@]*@#\1#' \
  -e 's#^[^/@:]+@([^:/]+):(.*)$#https://\1/\2#' \
  -e 's#\.git$##')"
if [[ -n "${SOURCE_DATE_EPOCH:-}" ]]; then
  created="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
else
  created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
fi

previous="$(docker image inspect -f '{{.Id}}' "$image:$tag" 2>/dev/null || true)"
log "docker build -t $image:$tag (revision $revision)"
started=$SECONDS
docker build -f operator/Dockerfile \
  --build-arg BASE_IMAGE="$base" \
  --build-arg VERSION="$version" \
  --build-arg REVISION="$revision" \
  --build-arg CREATED="$created" \
  --build-arg SOURCE="$source_url" \
  -t "$image:$tag" . >&2
log "built $image:$tag in $((SECONDS - started))s ($(docker image inspect -f '{{.Size}}' "$image:$tag" \
  | awk '{printf "%.0f MB", $1 / 1e6}'))"

# Each change of the wheels leaves ~200 MB of untagged images behind: drop the image this tag pointed at when
# nothing else names it, and the build stages but the newest (the cache of the next build).
if [[ -n "$previous" && "$previous" != "$(docker image inspect -f '{{.Id}}' "$image:$tag")" \
      && "$(docker image inspect -f '{{len .RepoTags}}' "$previous" 2>/dev/null)" == 0 ]]; then
  docker rmi "$previous" >/dev/null 2>&1 || true  # still used by a container: kept
fi
docker image ls -q --filter dangling=true --filter label=dev.apprelease.stage=operator-build | tail -n +2 \
  | xargs -r docker rmi >/dev/null 2>&1 || true
echo "$image:$tag"
