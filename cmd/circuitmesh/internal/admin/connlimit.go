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
// as it is open. A request and its answer take at most RequestTimeout
// (its header at most 10 s of it; the longest handlers, ping and graph,
// end within 15 s), so that a client that sends its request slowly, or
// never reads the answer, gives its place and the answer's memory back
// then. IdleTimeout bounds an idle kept-alive connection should
// keep-alives be enabled, and the connections open at once are bounded
// (dial circuits included), so that a client opening connections without
// end cannot hold the daemon's goroutines, buffers and file descriptors
// without end. Dial circuits take at most MaxDialCircuits of the places:
// the others stay for the requests of the other commands (status,
// reload, ...), whatever circuits are open.
const (
	IdleTimeout     = 30 * time.Second
	RequestTimeout  = 30 * time.Second
	MaxConns        = 256
	MaxDialCircuits = MaxConns - 32
)

// limitConns is ln with at most max connections open at once (a unix
// socket's clients are one source).
func limitConns(ln net.Listener, max int, log *slog.Logger) net.Listener {
	return httpserve.Limit(ln, httpserve.Limits{MaxConns: max, MaxConnsPerSource: max}, "admin API", log)
}
