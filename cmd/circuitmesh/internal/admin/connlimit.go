package admin

import (
	"log/slog"
	"net"
	"time"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/httpserve"
)

// Bounds of the admin API's connections. Its clients are the CLI's
// commands: a request and its answer on a connection the server closes
// once it has answered (no keep-alive), or a `dial` circuit for as long
// as it is open. IdleTimeout bounds an idle kept-alive connection should
// keep-alives be enabled, and the connections open at once are bounded
// (dial circuits included), so that a client opening connections without
// end cannot hold the daemon's goroutines, buffers and file descriptors
// without end.
const (
	IdleTimeout = 30 * time.Second
	MaxConns    = 256
)

// limitConns is ln with at most max connections open at once (a unix
// socket's clients are one source).
func limitConns(ln net.Listener, max int, log *slog.Logger) net.Listener {
	return httpserve.Limit(ln, httpserve.Limits{MaxConns: max, MaxConnsPerSource: max}, "admin API", log)
}
