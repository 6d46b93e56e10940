package admin

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine the server starts (requests, spliced circuits) ends with
// Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
