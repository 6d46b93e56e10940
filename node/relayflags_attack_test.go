package node

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// flagFlipLink is a link whose circuit streams opened by this node (a
// relay forwarding a circuit) have the open header's flags rewritten on
// their first write.
type flagFlipLink struct {
	links.Link
	flip circuit.Flags
}

type flagFlipStream struct {
	links.Stream
	once sync.Once
	flip circuit.Flags
}

func (s *flagFlipStream) Write(p []byte) (int, error) {
	s.once.Do(func() {
		// header: version, kind, len u16, flags u16, ...
		if len(p) >= 6 {
			p = append([]byte(nil), p...)
			f := circuit.Flags(p[4])<<8 | circuit.Flags(p[5])
			f ^= s.flip
			p[4], p[5] = byte(f>>8), byte(f)
		}
	})
	return s.Stream.Write(p)
}

func (l *flagFlipLink) OpenStream(ctx context.Context) (links.Stream, error) {
	s, err := l.Link.OpenStream(ctx)
	if err != nil {
		return s, err
	}
	return &flagFlipStream{Stream: s, flip: l.flip}, nil
}

// flagFlipHandler passes links to the node wrapped, the same wrapper for a
// link in every event.
type flagFlipHandler struct {
	h    links.Handler
	flip circuit.Flags
	mu   sync.Mutex
	m    map[links.Link]*flagFlipLink
}

func (h *flagFlipHandler) wrap(l links.Link) links.Link {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.m[l]
	if w == nil {
		w = &flagFlipLink{Link: l, flip: h.flip}
		h.m[l] = w
	}
	return w
}
func (h *flagFlipHandler) LinkUp(l links.Link)                       { h.h.LinkUp(h.wrap(l)) }
func (h *flagFlipHandler) Routing(l links.Link, p []byte)            { h.h.Routing(h.wrap(l), p) }
func (h *flagFlipHandler) CostChanged(l links.Link, q links.Quality) { h.h.CostChanged(h.wrap(l), q) }
func (h *flagFlipHandler) LinkDown(l links.Link, err error)          { h.h.LinkDown(h.wrap(l), err) }

// TestRelayFlippedFlagsFailHandshake: r, a relay with a valid
// certificate, flips a flag of the open headers it forwards that changes
// how the destination reads the payload. The prologue binds the flags, so
// the handshake fails (the source's Dial with ErrAuth) and d's service
// gets no circuit: before, clearing RESUMABLE made d hand its service the
// source's resumable framing as if it were the application's bytes.
func TestRelayFlippedFlagsFailHandshake(t *testing.T) {
	for _, tc := range []struct {
		name string
		flip circuit.Flags
	}{
		{"clear RESUMABLE", circuit.FlagResumable},
		{"set RESUME", circuit.FlagResume},
		{"clear LARGE_RECORDS", circuit.FlagLargeRecords},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, true)
			c.tweak = func(cfg *Config) {
				if cfg.Name != "r" {
					return
				}
				id := cfg.Identity
				cfg.NewTransport = func(h links.Handler, role links.Role) (links.Transport, error) {
					return links.NewQUICTransport(links.QUICConfig{
						Identity: id, Role: role, ListenAddr: "127.0.0.1:0",
						Handler: &flagFlipHandler{h: h, flip: tc.flip, m: map[links.Link]*flagFlipLink{}},
					})
				}
			}
			c.build("h-r", "r-d")
			c.waitRoute("h", "d", 2)
			h, d := c.nodes["h"], c.nodes["d"]
			ln, err := d.Listen("sink")
			if err != nil {
				t.Fatal(err)
			}
			accepted := make(chan error, 1)
			go func() {
				conn, err := ln.Accept()
				if err == nil {
					conn.Close()
				}
				accepted <- err
			}()
			for i := 0; i < 2; i++ { // the second dial knows d's key (IK), if the first learned it
				conn, err := h.Dial(ctxT(t, 10*time.Second), "d", "sink")
				if err == nil {
					conn.Write([]byte("transfer 100 to alice\n"))
					conn.Close()
					t.Fatalf("dial %d: h's circuit to d was accepted with the flags changed on the way", i)
				}
				if !errors.Is(err, circuit.ErrAuth) {
					t.Fatalf("dial %d: h's dial failed with %v, want ErrAuth", i, err)
				}
			}
			ln.Close()
			if err := <-accepted; err == nil {
				t.Fatal("d's service accepted a circuit whose flags a relay changed")
			}
		})
	}
}
