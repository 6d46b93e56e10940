package simulate

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Package-level helpers started once by dependencies.
		goleak.IgnoreAnyFunction("github.com/hashicorp/go-metrics.(*InmemSink).run"),
		goleak.IgnoreAnyFunction("github.com/armon/go-metrics.(*InmemSink).run"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}
