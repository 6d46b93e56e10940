#!/usr/bin/env bash
# Runs Jaeger and `circuitmesh demo` exporting its spans to it over OTLP,
# then keeps Jaeger up so the traces can be queried at http://localhost:16686
# (Ctrl-C stops it; KEEP=0 stops it as soon as the demo is done). A Jaeger
# built from Go source embeds no UI assets, only the query API; when
# deploy/jaeger-ui.sh has built the UI into bin/jaeger-ui-$JAEGER_VERSION
# (or JAEGER_UI points at a built UI), Jaeger serves it from there.
#
# Jaeger is built from github.com/jaegertracing/jaeger/cmd/jaeger at
# JAEGER_VERSION as a Go tool in a module of its own under bin/, so the
# project's go.mod is not touched. Its ports: 4317 (OTLP gRPC), 4318 (OTLP
# HTTP), 16686 (UI).
set -euo pipefail

cd "$(dirname "$0")/.."
GO="${GO:-go}"
JAEGER_VERSION="${JAEGER_VERSION:-v1.76.0}"
KEEP="${KEEP:-1}"
tooldir="bin/jaeger-$JAEGER_VERSION"
jaeger="$tooldir/jaeger"
ui="${JAEGER_UI:-bin/jaeger-ui-$JAEGER_VERSION}"

if [ ! -x "$jaeger" ]; then
	echo "trace-demo: building Jaeger $JAEGER_VERSION (once; takes a few minutes)"
	mkdir -p "$tooldir/mod"
	(
		cd "$tooldir/mod"
		[ -f go.mod ] || "$GO" mod init circuitmesh-jaeger-tool >/dev/null
		"$GO" get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION"
		"$GO" build -o ../jaeger github.com/jaegertracing/jaeger/cmd/jaeger
	)
fi

for port in 4317 16686; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "trace-demo: port $port is in use (another Jaeger?); stop it first" >&2
		exit 1
	fi
done

args=()
if [ -f "$ui/index.html" ]; then
	ui="$(cd "$ui" && pwd)"
	args+=(--set "extensions.jaeger_query.ui.assets_path=$ui")
fi
"$jaeger" "${args[@]}" >"$tooldir/jaeger.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT
up=""
for _ in $(seq 150); do
	if (exec 3<>/dev/tcp/127.0.0.1/4317) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/16686) 2>/dev/null; then
		up=1
		break
	fi
	if ! kill -0 "$pid" 2>/dev/null; then
		break
	fi
	sleep 0.2
done
if [ -z "$up" ]; then
	echo "trace-demo: Jaeger did not start; its log ($tooldir/jaeger.log):" >&2
	cat "$tooldir/jaeger.log" >&2
	exit 1
fi

OTEL_TRACES_EXPORTER=otlp \
	OTEL_EXPORTER_OTLP_PROTOCOL=grpc \
	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 \
	"$GO" run ./cmd/circuitmesh demo --size 4

echo
if [ ${#args[@]} -gt 0 ]; then
	echo "trace-demo: spans exported; Jaeger's UI (from $ui):"
	echo "  http://127.0.0.1:16686/search?service=circuitmesh&operation=circuitmesh.dial"
else
	echo "trace-demo: spans exported. Jaeger built from Go source has no UI assets;"
	echo "make jaeger-ui builds them (node and npm), then run make trace-demo again. Meanwhile"
	echo "  curl -s 'http://127.0.0.1:16686/api/traces?service=circuitmesh&operation=circuitmesh.dial&limit=5'"
	echo "lists the traces."
fi
if [ "$KEEP" = 1 ]; then
	echo "trace-demo: Jaeger keeps running; Ctrl-C stops it"
	wait "$pid" || true
fi
