#!/usr/bin/env bash
# Builds the gateway's collector from builder-config.yaml with the OpenTelemetry Collector
# Builder, or reuses an earlier build. The build lives in a cache outside the checkout, keyed by
# the collector release and a hash of the manifest (and of the local components it names); the
# binary is then linked to collector-config/_build/otelcol-otel-usage.
#   OTEL_USAGE_CACHE_DIR  cache root (default /var/cache/otel-usage, else ~/.cache/otel-usage)
# Fails, with the reason, when Go or the Go module proxy is unavailable.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=0.161.0
name=otelcol-otel-usage

die() { echo "collector-config/build.sh: $*" >&2; exit 1; }

cache_root=${OTEL_USAGE_CACHE_DIR:-}
if [ -z "$cache_root" ]; then
  cache_root=/var/cache/otel-usage
  mkdir -p "$cache_root" 2>/dev/null && [ -w "$cache_root" ] \
    || cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/otel-usage
fi
# The key covers the manifest and every file of the local components it builds in.
key=$(cd "$here" && { cat builder-config.yaml
  if [ -d components ]; then find components -type f -print0 | sort -z | xargs -0 cat; fi
} | sha256sum | cut -c1-16)
dir="$cache_root/otelcol-$version-$key"
link() {
  mkdir -p "$here/_build"
  ln -sfn "$dir/$name" "$here/_build/$name"
}
if [ -x "$dir/$name" ]; then link; exit 0; fi

command -v go >/dev/null 2>&1 \
  || die "Go is not installed, and the collector must be built with it (scripts/setup test installs golang-go)"
mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
flock 9   # one build at a time; a waiting run then finds the finished binary.
if [ -x "$dir/$name" ]; then link; exit 0; fi

echo "building the collector $version into $dir (the first build takes several minutes)" >&2
start=$(date +%s)
builder="$cache_root/builder-$version/builder"
if [ ! -x "$builder" ]; then
  GOBIN="$cache_root/builder-$version" go install "go.opentelemetry.io/collector/cmd/builder@v$version" \
    || die "could not install the collector builder v$version with Go (is the Go module proxy, $(go env GOPROXY), reachable?)"
fi

work="$dir.tmp"
rm -rf "$work"
mkdir -p "$work"
# The same manifest with absolute paths: the output in the work folder, local components here.
sed -e "s|^\(  output_path:\).*|\1 $work/dist|" \
    -e "s|\(path:\) \./|\1 $here/|" "$here/builder-config.yaml" >"$work/builder-config.yaml"
"$builder" --config "$work/builder-config.yaml" >"$work/build.log" 2>&1 || {
  tail -n 40 "$work/build.log" >&2
  die "the collector build failed (log: $work/build.log); if modules could not be downloaded, the Go module proxy ($(go env GOPROXY)) is unavailable"
}
mv "$work/dist/$name" "$work/$name"
rm -rf "$dir"
mv "$work" "$dir"
link
echo "built the collector in $(( $(date +%s) - start )) s" >&2
