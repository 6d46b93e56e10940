package admin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/node"
)

// handleDial opens a circuit to ?peer=&service= early (the caller's first
// bytes travel with the open), answers 101 Switching Protocols unless the
// open failed at once (no route), and splices the HTTP connection onto the
// circuit; a refusal that arrives later comes back as an error frame. EOF from the client half-closes the circuit and EOF
// from the circuit half-closes the socket.
func (s *Server) handleDial(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != UpgradeProtocol {
		writeError(w, fmt.Errorf("dial needs \"Upgrade: %s\": %w", UpgradeProtocol, ErrBadRequest))
		return
	}
	q := r.URL.Query()
	peer, service := q.Get("peer"), q.Get("service")
	if err := validatePeer(peer); err != nil {
		writeError(w, err)
		return
	}
	if !s.takeDialPlace() {
		writeError(w, fmt.Errorf("%w: %d dial circuits are open through the admin socket, as many as it carries (its other %d places are kept for the other commands): close one, or tunnel many connections through one `circuitmesh forward`",
			ErrBusy, MaxDialCircuits, MaxConns-MaxDialCircuits))
		return
	}
	defer s.giveDialPlace()
	ctx, cancel := context.WithTimeout(r.Context(), meshTimeout)
	// Early: the caller's first bytes travel with the open; a refusal
	// further along arrives as an error frame after the upgrade.
	circ, err := s.node.DialWith(ctx, peer, service, node.DialOptions{Early: true})
	cancel()
	if err != nil {
		writeError(w, err) // the node's error names peer and service
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		circ.Close()
		writeError(w, errors.New("connection cannot be upgraded"))
		return
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		circ.Close()
		return
	}
	// The request's deadlines (RequestTimeout) do not bound the circuit.
	conn.SetDeadline(time.Time{})
	if !s.trackCircuit(conn, circ) {
		conn.Close()
		circ.Close()
		return
	}
	defer s.untrackCircuit(conn, circ)
	if _, err := io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+UpgradeProtocol+"\r\n\r\n"); err != nil {
		conn.Close()
		circ.Close()
		return
	}
	spliceHalves(conn, rw.Reader, circ)
}

// spliceHalves copies client→circuit (reading through br, which may hold
// bytes already buffered) and circuit→client in frames (frame.go): the
// circuit's clean end is an end frame, its failure an error frame with the
// reason. EOF from the client half-closes the circuit; a failed read (a
// client killed with bytes unread) resets it, so that the service never
// reads a cut upload as whole. Both are closed when both directions
// ended.
func spliceHalves(client net.Conn, br *bufio.Reader, circ node.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := io.Copy(circ, br); err != nil {
			cancel(circ)
			return
		}
		circ.CloseWrite()
	}()
	_, err := io.Copy(frameWriter{client}, circ)
	switch {
	case err == nil:
		if writeFrame(client, frameEnd, nil) == nil {
			if cw, ok := client.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
		}
	default:
		_ = writeFrame(client, frameError, []byte(truncate(failReason(peer(circ), err), maxReason)))
		circ.Close()
		client.Close()
	}
	<-done
	client.Close()
	circ.Close()
}

// peer names the far end of a circuit.
func peer(c node.Conn) string { return c.RemoteAddr().String() }

// failReason says why a circuit to far failed, naming the close-reason
// code of a reset.
func failReason(far string, err error) string {
	var re *circuit.ResetError
	if errors.As(err, &re) {
		return fmt.Sprintf("circuit to %s: %v (code %d)", far, re, re.Code)
	}
	return fmt.Sprintf("circuit to %s failed: %v", far, err)
}

// takeDialPlace takes one of the MaxDialCircuits places of dial
// circuits, or says there is none left.
func (s *Server) takeDialPlace() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dials >= MaxDialCircuits {
		return false
	}
	s.dials++
	return true
}

func (s *Server) giveDialPlace() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dials--
}

func (s *Server) trackCircuit(conns ...net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	for _, c := range conns {
		s.circuits[c] = struct{}{}
	}
	return true
}

func (s *Server) untrackCircuit(conns ...net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range conns {
		delete(s.circuits, c)
	}
}

// statusOf picks the HTTP status for err so that the client can map it
// back to a sentinel.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrBadRequest), errors.Is(err, node.ErrInvalidConfig):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound), errors.Is(err, circuit.ErrNoRoute), errors.Is(err, circuit.ErrNoService):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict), errors.Is(err, syscall.EADDRINUSE), errors.Is(err, node.ErrNoKeyring):
		return http.StatusConflict
	case errors.Is(err, ErrBusy):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// cancel resets circ with CloseCancelled where it can be reset (a
// circuit; a local one too), else closes it.
func cancel(circ node.Conn) {
	if r, ok := circ.(interface{ Reset(uint64) }); ok {
		r.Reset(circuit.CloseCancelled)
		return
	}
	circ.Close()
}
