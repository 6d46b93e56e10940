package admin

import (
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/circuitmesh/circuitmesh/links/ratelog"
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

// connLimiter is a listener that closes a connection beyond max open at
// once as soon as it is accepted, logging it at most once a minute.
type connLimiter struct {
	net.Listener
	max      int
	refusals *ratelog.Log

	mu   sync.Mutex
	open int
}

func limitConns(ln net.Listener, max int, log *slog.Logger) *connLimiter {
	return &connLimiter{Listener: ln, max: max, refusals: ratelog.New(log, time.Minute, 1)}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		full := l.open >= l.max
		if !full {
			l.open++
		}
		l.mu.Unlock()
		if full {
			c.Close()
			l.refusals.Warn("", "admin API: refused a connection: as many are open as it serves at once", "max", l.max)
			continue
		}
		return &limitedConn{Conn: c, release: l.release}, nil
	}
}

func (l *connLimiter) release() {
	l.mu.Lock()
	l.open--
	l.mu.Unlock()
}

// limitedConn gives its place back once, on the first Close.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite half-closes the connection (a unix socket's), as a dial's
// end of stream does.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
