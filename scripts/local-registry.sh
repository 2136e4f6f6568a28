# shellcheck shell=bash
# Sourced by scripts/demo and scripts/bench: a directory (the test rootfs)
# as a one-layer OCI image, in a registry of its own on 127.0.0.1, with no
# internet and no docker: docker-registry serves it, skopeo pushes it.
#
#   registry_image ROOTFS WORK NAME   set $registry_ref to 127.0.0.1:PORT/NAME
#                                     (in this shell: $registry_pid is the server)
#   registry_stop                     stop the server
#
# Everything is written under WORK.

# oci_layout ROOTFS DIR: the OCI image layout (a gzipped tar, a config, a
# manifest, an index) of ROOTFS, tagged "latest".
oci_layout() {
  local rootfs=$1 dir=$2 arch layer diff config manifest
  case $(uname -m) in
    x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;;
  esac
  mkdir -p "$dir/blobs/sha256"
  tar -C "$rootfs" --numeric-owner --exclude=./.myruntime-rootfs -cf "$dir/layer.tar" .
  diff=$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)
  gzip -n "$dir/layer.tar"
  layer=$(sha256sum "$dir/layer.tar.gz" | cut -d' ' -f1)
  mv "$dir/layer.tar.gz" "$dir/blobs/sha256/$layer"
  printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$arch" "$diff" >"$dir/config"
  config=$(sha256sum "$dir/config" | cut -d' ' -f1)
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$config" "$(stat -c %s "$dir/config")" "$layer" "$(stat -c %s "$dir/blobs/sha256/$layer")" >"$dir/manifest"
  manifest=$(sha256sum "$dir/manifest" | cut -d' ' -f1)
  mv "$dir/config" "$dir/blobs/sha256/$config"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
    "$manifest" "$(stat -c %s "$dir/manifest")" >"$dir/index.json"
  mv "$dir/manifest" "$dir/blobs/sha256/$manifest"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
}

registry_pid=""
# shellcheck disable=SC2034  # read by the scripts that source this one
registry_ref=""

registry_image() {
  local rootfs=$1 work=$2 name=$3 port
  command -v docker-registry >/dev/null && command -v skopeo >/dev/null || return 1
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$work/registry" "$port" >"$work/registry.yml"
  docker-registry serve "$work/registry.yml" >/dev/null 2>&1 &
  registry_pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  oci_layout "$rootfs" "$work/layout"
  skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:latest" "docker://127.0.0.1:$port/$name:latest" || return 1
  # shellcheck disable=SC2034  # read by the scripts that source this one
  registry_ref=127.0.0.1:$port/$name
}

registry_stop() {
  if [ -n "$registry_pid" ]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
    registry_pid=""
  fi
}
