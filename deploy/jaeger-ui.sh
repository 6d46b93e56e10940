#!/usr/bin/env bash
# Builds Jaeger's UI (github.com/jaegertracing/jaeger-ui) into
# bin/jaeger-ui-$JAEGER_UI_VERSION, where `make trace-demo` looks for it:
# a Jaeger built from Go source embeds no UI assets and serves only its
# query API until it is pointed at this directory.
#
# The UI is tagged with the same version as the Jaeger release it ships in
# (jaeger v1.76.0 embeds jaeger-ui v1.76.0). Sources come from a shallow
# git clone of that tag, or from an existing checkout given as
# JAEGER_UI_SRC (built in place). Needs node and npm; the packages come
# from the npm registry. The UI declares node >= 24 but builds with node 20
# (checked with 20.20), so the engine check is relaxed.
set -euo pipefail

cd "$(dirname "$0")/.."
JAEGER_UI_VERSION="${JAEGER_UI_VERSION:-${JAEGER_VERSION:-v1.76.0}}"
out="$PWD/bin/jaeger-ui-$JAEGER_UI_VERSION"

src="${JAEGER_UI_SRC:-}"
if [ -z "$src" ]; then
	src="$PWD/bin/jaeger-ui-src-$JAEGER_UI_VERSION"
	if [ ! -f "$src/package.json" ]; then
		rm -rf "$src"
		git clone --depth 1 --branch "$JAEGER_UI_VERSION" \
			https://github.com/jaegertracing/jaeger-ui "$src"
	fi
fi
src="$(cd "$src" && pwd)"

echo "jaeger-ui: installing packages in $src"
# --ignore-scripts: the root "prepare" script installs git hooks (and needs
# a .git directory); the one package it builds, plexus, is built below.
(cd "$src" && npm ci --ignore-scripts --no-audit --no-fund --engine-strict=false)
echo "jaeger-ui: building"
(cd "$src" && npm run --workspace @jaegertracing/plexus build)
(cd "$src/packages/jaeger-ui" && npm run build)

rm -rf "$out"
cp -r "$src/packages/jaeger-ui/build" "$out"
echo "jaeger-ui: assets in $out; make trace-demo serves them on :16686"
