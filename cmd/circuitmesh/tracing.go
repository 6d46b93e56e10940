package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/circuitmesh/circuitmesh/links/ratelog"
)

// tracingWanted reports whether the standard OTEL_* variables ask for
// trace export.
func tracingWanted() bool {
	if e := os.Getenv("OTEL_TRACES_EXPORTER"); e != "" {
		return e != "none"
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// tracerProvider builds an SDK tracer provider exporting as the OTEL_*
// variables say (autoexport), or returns nil when tracing is not asked
// for. shutdown flushes pending spans for at most within: a stalled
// collector holds the daemon's exit no longer than that.
// Exporter errors, and what the SDK logs, go to log instead of the
// standard logger, so --log-format json holds for them too.
func tracerProvider(ctx context.Context, nodeName string, log *slog.Logger) (trace.TracerProvider, func(within time.Duration), error) {
	if !tracingWanted() {
		return nil, func(time.Duration) {}, nil
	}
	// One line a minute, the next carrying how many were held back: each
	// failed batch is an error, and the opens of the node's peers fill
	// batches (TestE2ETraceExportErrorsLoggedOnceAMinute).
	exportLog := ratelog.New(log, time.Minute, 1)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		exportLog.Warn("export", "trace export", "err", err)
	}))
	otel.SetLogger(logr.FromSlogHandler(otelLevels{log.With("logger", "opentelemetry").Handler()}))
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("trace exporter (OTEL_* variables): %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(
			semconv.ServiceName("circuitmesh"),
			semconv.ServiceInstanceID(nodeName),
			semconv.ServiceVersion(buildVersion()),
			attribute.String("circuitmesh.node", nodeName),
		),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
		resource.WithTelemetrySDK(),
		resource.WithHost(),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return tp, func(within time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		tp.Shutdown(ctx)
	}, nil
}

// traceFlushTimeout bounds the flush of pending spans when the daemon
// stops (after the drain and the node's close): deploy/systemd's
// TimeoutStopSec leaves room for the default drain, the goodbye and it.
const traceFlushTimeout = 5 * time.Second

// otelLevels gives the OpenTelemetry SDK's messages slog's levels. The SDK
// logs warnings at logr V(1), information at V(4) and debugging at V(8),
// which logr passes to slog as levels -1, -4 and -8: without the mapping
// a warning would read DEBUG+3 and vanish at the daemon's INFO level.
type otelLevels struct{ slog.Handler }

func otelLevel(l slog.Level) slog.Level {
	switch {
	case l >= 0:
		return l
	case l >= -1:
		return slog.LevelWarn
	case l >= -4:
		return slog.LevelInfo
	default:
		return slog.LevelDebug
	}
}

func (h otelLevels) Enabled(ctx context.Context, l slog.Level) bool {
	return h.Handler.Enabled(ctx, otelLevel(l))
}

func (h otelLevels) Handle(ctx context.Context, r slog.Record) error {
	r.Level = otelLevel(r.Level)
	return h.Handler.Handle(ctx, r)
}

func (h otelLevels) WithAttrs(as []slog.Attr) slog.Handler {
	return otelLevels{h.Handler.WithAttrs(as)}
}

func (h otelLevels) WithGroup(name string) slog.Handler { return otelLevels{h.Handler.WithGroup(name)} }
