#!/usr/bin/env bash
# From-scratch proof, run by .ci/run: the whole setup against a new, empty cache folder, then Python
# in a container session (on Podman and on Docker) and in a VM session that use what this run built
# (test/setup/from-scratch.test.ts checks that), then the folder and the engine images this run
# made are removed, also when a step failed.
#
# Reused from outside the cache, on purpose: the host's Debian packages (apt installs only what is
# missing), node_modules and dist/ of this checkout, and the engines' services. Everything in the
# cache (rootfs, guest image, snapshot) and every image the sessions run (imported from this run's
# rootfs: its tag carries the rootfs build id) comes from this run.
set -euo pipefail
cd "$(dirname "$0")/../.."

# The parent must be searchable by others: VM sessions run QEMU as unprivileged uids that open the
# guest image in the cache (a 0700 `mktemp -d` under /tmp would be refused by setup's preflight).
parent=/var/tmp/sandpool-from-scratch
mkdir -p "$parent"
chmod 755 "$parent"
cache=$(mktemp -d "$parent/cache.XXXXXX")
chmod 755 "$cache"
run_id=$(basename "$cache" | tr -dc 'a-zA-Z0-9' | tr 'A-Z' 'a-z')
tag="localhost/sandpool/code-interpreter:scratch-$run_id"
started=$(date +%s)

docker_cli=(docker --host "unix://${SANDPOOL_DOCKER_SOCKET:-/run/sandpool-docker/docker.sock}")

# Remove this run's images from an engine: the checkout tag, the content-hash tag of the same image,
# and the rootfs base it was built on (imported by this run: its tag names this run's rootfs build).
remove_images() {
  local -a cli=("$@")
  local base id
  base=$("${cli[@]}" image inspect --format '{{index .Config.Labels "sandpool.base"}}' "$tag" 2>/dev/null) || return 0
  id=$("${cli[@]}" image inspect --format '{{.Id}}' "$tag" 2>/dev/null) || return 0
  "${cli[@]}" rmi -f "$id" >/dev/null 2>&1 || true
  case "$base" in localhost/sandpool/rootfs:*) "${cli[@]}" rmi "$base" >/dev/null 2>&1 || true ;; esac
}

cleanup() {
  local status=$?
  remove_images podman
  remove_images "${docker_cli[@]}"
  # removeTree: stops processes left in the folder and unmounts what an interrupted debootstrap
  # mounted inside it before deleting.
  node --input-type=module -e "
    import { removeTree } from './scripts/setup/lib/fs-safe.mjs';
    await removeTree(process.argv[1], (m) => console.error('[from-scratch] ' + m));
  " "$cache"
  echo "[from-scratch] removed $cache and this run's images; $( [ $status -eq 0 ] && echo passed || echo "FAILED (exit $status)" ) in $(( $(date +%s) - started )) s" >&2
}
trap cleanup EXIT

export SANDPOOL_CACHE_DIR=$cache SANDPOOL_CONTAINER_IMAGE=$tag
echo "[from-scratch] setup into the empty cache $cache (image tag $tag)" >&2
setup_started=$(date +%s)
node scripts/setup.mjs
echo "[from-scratch] setup took $(( $(date +%s) - setup_started )) s" >&2
SANDPOOL_FROM_SCRATCH_SINCE=$started npx vitest run --project from-scratch
