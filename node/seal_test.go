package node

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/circuit/seal"
	"github.com/circuitmesh/circuitmesh/links"
)

// spy is a malicious relay's view of one direction of a circuit: it keeps
// every byte it reads and may change the stream (flip one byte at offset
// flip, or end it after cut bytes).
type spy struct {
	links.Stream
	mu        sync.Mutex
	seen      bytes.Buffer
	flip, cut int // 0: off
}

func (s *spy) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	off := s.seen.Len()
	if s.cut > 0 && off >= s.cut {
		return 0, io.EOF
	}
	if s.cut > 0 && off+len(p) > s.cut {
		p = p[:s.cut-off]
	}
	n, err := s.Stream.Read(p)
	if s.flip > 0 && off <= s.flip && s.flip < off+n {
		p[s.flip-off] ^= 0x20
	}
	s.seen.Write(p[:n])
	return n, err
}

func (s *spy) bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.seen.Bytes()...)
}

// maliciousLine builds a - m - b where m is a real router with a valid
// certificate whose relayed circuits pass through up (from a) and down
// (from b).
func maliciousLine(t *testing.T, up *spy, e2e ...E2E) (*cluster, *spy) {
	down := &spy{}
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if len(e2e) > 0 {
			cfg.E2E = e2e[0]
		}
		if cfg.Name == "m" {
			cfg.hooks = &hooks{relay: func(in, out links.Stream) (links.Stream, links.Stream) {
				up.Stream, down.Stream = in, out
				return up, down
			}}
		}
	}
	c.build("a-m", "m-b")
	c.waitRoute("a", "b", 2)
	c.waitRoute("b", "a", 2)
	return c, down
}

// A relay that records everything it splices, both ways, finds neither the
// request nor the reply: it carried only ciphertext. The destination sees
// the authenticated source.
func TestSealedRelayRecordsNoPayload(t *testing.T) {
	up := &spy{}
	c, down := maliciousLine(t, up)
	remote := make(chan string, 1)
	serve(t, c.nodes["b"], "svc", func(conn io.ReadWriteCloser) {
		remote <- conn.(Conn).RemoteAddr().String()
		echoHandler(conn)
	})
	msg := bytes.Repeat([]byte("top secret payload "), 5000)
	if err := roundTrip(t, c.nodes["a"], "b", "svc", msg); err != nil {
		t.Fatal(err)
	}
	if got := <-remote; got != "a/svc" {
		t.Fatalf("destination saw source %s, want a/svc", got)
	}
	for name, s := range map[string]*spy{"a to b": up, "b to a": down} {
		b := s.bytes()
		if len(b) < len(msg) {
			t.Fatalf("%s: relay carried %d bytes, less than the %d-byte payload", name, len(b), len(msg))
		}
		if bytes.Contains(b, []byte("secret")) {
			t.Fatalf("%s: relay read payload in the clear", name)
		}
	}
}

// The same relay with end-to-end security off reads the payload: what the
// test above would catch.
func TestClearRelayRecordsPayload(t *testing.T) {
	up := &spy{}
	c, _ := maliciousLine(t, up, E2EOff)
	serve(t, c.nodes["b"], "svc", echoHandler)
	if err := roundTrip(t, c.nodes["a"], "b", "svc", []byte("top secret payload")); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(up.bytes(), []byte("secret")) {
		t.Fatal("the spying relay did not see the clear payload")
	}
}

// A relay that changes one byte, or cuts the circuit short (FIN before
// the end), makes the destination fail with ErrIntegrity after delivering
// only a prefix of what was sent.
func TestSealedRelayTamperAndTruncate(t *testing.T) {
	for name, up := range map[string]*spy{"tamper": {flip: 100 << 10}, "truncate": {cut: 100 << 10}} {
		t.Run(name, func(t *testing.T) {
			c, _ := maliciousLine(t, up)
			type outcome struct {
				got []byte
				err error
			}
			res := make(chan outcome, 1)
			serve(t, c.nodes["b"], "sink", func(conn io.ReadWriteCloser) {
				got, err := io.ReadAll(conn)
				res <- outcome{got, err}
			})
			conn, err := c.nodes["a"].Dial(ctxT(t, 10*time.Second), "b", "sink")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			sent := make([]byte, 1<<20)
			for i := range sent {
				sent[i] = byte(i % 251)
			}
			go func() {
				conn.Write(sent)
				conn.(Conn).CloseWrite()
			}()
			o := <-res
			if !errors.Is(o.err, circuit.ErrIntegrity) {
				t.Fatalf("destination read %d bytes, err %v; want ErrIntegrity", len(o.got), o.err)
			}
			if len(o.got) >= len(sent) || !bytes.HasPrefix(sent, o.got) {
				t.Fatalf("destination got %d bytes that are not a strict prefix of the payload", len(o.got))
			}
		})
	}
}

// A router with a valid certificate opens circuits at hop 1 claiming to
// relay them for a: in the clear, with garbage, or with a real handshake
// made with its own keys. The destination refuses them all, never counts
// them against a, and a still gets through, seen as a.
func TestSealedForgedSourceAtRelay(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.Limits.MaxCircuitsPerSource = 4 }
	c.build("a-m", "m-b")
	c.waitRoute("a", "b", 2)
	serve(t, c.nodes["b"], "svc", echoHandler)
	m := c.nodes["m"]
	rec := c.nodes["b"].seal.Load().Record()
	l := m.link("b")
	var held []links.Stream
	defer func() {
		for _, s := range held {
			s.Reset(circuit.CloseCancelled)
		}
	}()
	for i := 0; i < 3*4; i++ {
		s, err := l.OpenStream(ctxT(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, s)
		o := &circuit.Open{Dest: "b", Source: "a", Service: "svc", Hop: 1, HopLimit: 10, Path: []string{"m"}}
		b, _ := o.AppendTo(nil)
		switch i % 3 {
		case 1:
			o.Flags |= circuit.FlagSealed
			b, _ = o.AppendTo(nil)
			b = seal.AppendMessage(b, []byte{1, 2, 3})
		case 2:
			o.Flags |= circuit.FlagSealed
			b, _ = o.AppendTo(nil)
			ini, err := m.seal.Load().Initiate(seal.Prologue("b", "a", "svc", uint16(o.Flags)), "b", &rec)
			if err != nil {
				t.Fatal(err)
			}
			if b, err = ini.First(b, []byte("GET /"), time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Write(b); err != nil {
			t.Fatal(err)
		}
		res, err := circuit.ReadResult(s, 0)
		if err != nil {
			t.Fatalf("forged open %d: %v", i, err)
		}
		want := circuit.Policy // in the clear, or m's certificate is not a's
		if i%3 == 1 {
			want = circuit.Retry // undecryptable first message
		}
		if res.Code != want {
			t.Fatalf("forged open %d: result %v, want %v", i, res.Code, want)
		}
	}
	remote := make(chan string, 1)
	serve(t, c.nodes["b"], "who", func(conn io.ReadWriteCloser) { remote <- conn.(Conn).RemoteAddr().String() })
	for i := 0; i < 4; i++ { // a's whole per-source allowance is intact
		conn, err := c.nodes["a"].Dial(ctxT(t, 10*time.Second), "b", "who")
		if err != nil {
			t.Fatalf("a's circuit %d after the forgeries: %v", i, err)
		}
		defer conn.Close()
		if got := <-remote; got != "a/who" {
			t.Fatalf("destination saw %s, want a/who", got)
		}
	}
}

// A node that attracted the route to b and answers for it cannot prove it
// is b: the source tries the other next hop and reaches the real b; with
// no other next hop the dial fails with ErrAuth.
func TestSealedImpostorDestination(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		switch cfg.Name {
		case "a":
			cfg.LinkCosts = map[string]links.Cost{"m": 10, "c": 5000}
		case "m":
			cfg.LinkCosts = map[string]links.Cost{"b": 1000}
			cfg.hooks = &hooks{claim: func(dest string) bool { return dest == "b" }}
		case "c":
			cfg.LinkCosts = map[string]links.Cost{"b": 10}
		}
	}
	c.build("a-m", "m-b", "a-c", "c-b")
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, _ := c.nodes["a"].Peer("b")
		if p.Reachable && p.NextHop == "m" && len(p.Alternates) > 0 && p.Alternates[0] == "c" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a never routed to b via m with c as alternate: %+v", p)
		}
		time.Sleep(10 * time.Millisecond)
	}
	serve(t, c.nodes["m"], EchoService+"-m", echoHandler) // m's own services are irrelevant
	dialPath(t, c.nodes["a"], "b", "[a c b]")

	// Without the honest path, the source gets a typed error.
	c.nodes["c"].Close()
	c.waitNextHop("a", "b", "m")
	for {
		p, _ := c.nodes["a"].Peer("b")
		if len(p.Alternates) == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.nodes["a"].keyBook.forget("b")
	_, err := c.nodes["a"].Dial(ctxT(t, 10*time.Second), "b", EchoService)
	if !errors.Is(err, circuit.ErrAuth) {
		t.Fatalf("dial through the impostor alone: %v, want ErrAuth", err)
	}
	// Also when a holds b's real key (one-message handshake): m cannot
	// decrypt, a retries in full and m fails to prove it is b.
	rec := c.nodes["b"].seal.Load().Record()
	c.nodes["a"].keyBook.store(&rec)
	_, err = c.nodes["a"].Dial(ctxT(t, 10*time.Second), "b", EchoService)
	if !errors.Is(err, circuit.ErrAuth) {
		t.Fatalf("dial through the impostor with b's key: %v, want ErrAuth", err)
	}
}

// A relay that recorded a circuit's first flight (open header, handshake
// and early data) replays it to the destination on a new stream: the
// destination refuses it (retry) and its service never sees the early data
// a second time.
func TestSealedRelayReplaysFirstFlight(t *testing.T) { replayFirstFlight(t, false) }

// spiedLine is maliciousLine with, at b, a service "svc" that reports the
// first read of each circuit on got and answers "ok".
func spiedLine(t *testing.T) (c *cluster, up *spy, got chan string) {
	up = &spy{}
	c, _ = maliciousLine(t, up)
	got = make(chan string, 4)
	serve(t, c.nodes["b"], "svc", func(conn io.ReadWriteCloser) {
		b := make([]byte, 64)
		n, _ := conn.Read(b)
		got <- string(b[:n])
		conn.Write([]byte("ok"))
	})
	return c, up, got
}

// waitRelayIdle waits until m relays no circuit. A spy follows the latest
// circuit m relays: a warm-up circuit still closing (a resumable one
// exchanges its fin and acknowledgements) would read through it.
func waitRelayIdle(t *testing.T, c *cluster) {
	t.Helper()
	waitFor(t, "m to finish relaying the warm-up circuits", 10*time.Second, func() bool {
		return c.nodes["m"].circuits.len() == 0
	})
}

// replayFirstFlight: a one-message open, or with resumed one that resumes
// the session a one-message open gave.
func replayFirstFlight(t *testing.T, resumed bool) {
	c, up, got := spiedLine(t)
	a := c.nodes["a"]
	// The first circuit learns b's key (full handshake); the second is a
	// one-message open, which gets a session to resume.
	warmup := 1
	if resumed {
		warmup = 2
	}
	for range warmup {
		waitRelayIdle(t, c) // the spy follows one circuit at a time
		if err := roundTrip(t, a, "b", EchoService, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := a.keyBook.LookupKey("b"); !ok {
		t.Fatal("a did not cache b's key record after the first circuit")
	}
	waitRelayIdle(t, c)
	up.mu.Lock()
	up.seen.Reset()
	up.mu.Unlock()
	conn, err := a.DialWith(ctxT(t, 10*time.Second), "b", "svc", DialOptions{Early: true})
	if err != nil {
		t.Fatal(err)
	}
	if r := conn.(interface{ SessionResumed() bool }).SessionResumed(); r != resumed {
		t.Fatalf("circuit resumed %v, want %v", r, resumed)
	}
	if _, err := conn.Write([]byte("transfer 100 to m")); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, 2)
	if _, err := io.ReadFull(conn, reply); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if s := <-got; s != "transfer 100 to m" {
		t.Fatalf("service got %q", s)
	}
	flight := up.bytes()
	if len(flight) < 2 {
		t.Fatal("relay saw no first flight")
	}
	first := flight[:2+(int(flight[0])<<8|int(flight[1]))]
	if bytes.Contains(first, []byte("transfer")) {
		t.Fatal("early data crossed the relay in the clear")
	}
	res := sendForged(t, c.nodes["m"], "a", first)
	if res.Code != circuit.Retry {
		t.Fatalf("replayed first flight: result %v (%s), want retry", res.Code, res.Reason)
	}
	select {
	case s := <-got:
		t.Fatalf("the service received the replayed early data %q", s)
	default:
	}
}

// sendForged opens a stream from m to b at hop 1 with an open header
// claiming source and service svc, followed by first (a framed handshake
// message), and returns b's answer.
func sendForged(t *testing.T, m *Node, source string, first []byte) *circuit.Result {
	t.Helper()
	s, err := m.link("b").OpenStream(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset(circuit.CloseCancelled)
	o := &circuit.Open{Dest: "b", Source: source, Service: "svc", Hop: 1, HopLimit: 15, Path: []string{m.cfg.Name}, Flags: circuit.FlagEarly | circuit.FlagSealed}
	hdr, _ := o.AppendTo(nil)
	if _, err := s.Write(append(hdr, first...)); err != nil {
		t.Fatal(err)
	}
	res, err := circuit.ReadResult(s, 0)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// Early dials learn the destination's key too: after one early circuit the
// next open is a one-message handshake.
func TestSealedEarlyDialCachesKey(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	a := c.nodes["a"]
	conn, err := a.DialWith(ctxT(t, 10*time.Second), "b", EchoService, DialOptions{Early: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echoByte(t, conn)
	rec, ok := a.keyBook.LookupKey("b")
	if !ok || rec.Key != c.nodes["b"].seal.Load().Record().Key {
		t.Fatalf("after an early circuit a holds b's key: %v", ok)
	}
}

// modeSpy records the handshake mode of each circuit a relay carries: the
// byte after the first handshake message's length, the third of the
// stream once the relay read the open header.
type modeSpy struct {
	links.Stream
	modes *modeCount
	n     int
}

type modeCount struct {
	mu      sync.Mutex
	full    int // first messages in the full (XX) mode
	one     int // first messages in the one-message (IK) mode
	resumed int // first messages resuming a session (a ticket's psk)
}

func (s *modeSpy) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	if s.n <= 2 && s.n+n > 2 {
		s.modes.mu.Lock()
		switch p[2-s.n] {
		case 2:
			s.modes.full++
		case 1:
			s.modes.one++
		case 3:
			s.modes.resumed++
		}
		s.modes.mu.Unlock()
	}
	s.n += n
	return n, err
}

// Concurrent first dials to a node whose key record the source does not
// know yet take one full handshake between them; the others wait for it
// and open in one message. (Each full handshake's third message must cross
// the path within the destination's HeaderTimeout, behind the traffic of
// the circuits opened before it: a burst of them failed under load with
// "reset by the path: protocol error".)
func TestConcurrentFirstDialsTakeOneFullHandshake(t *testing.T) {
	modes := &modeCount{}
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "r" {
			cfg.hooks = &hooks{relay: func(in, out links.Stream) (links.Stream, links.Stream) {
				return &modeSpy{Stream: in, modes: modes}, out
			}}
		}
	}
	c.build("a-r", "r-b")
	c.waitRoute("a", "b", 2)
	serve(t, c.nodes["b"], "svc", echoHandler)
	const dials = 16
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, dials)
	for i := 0; i < dials; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := roundTrip(t, c.nodes["a"], "b", "svc", []byte("hello")); err != nil {
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	modes.mu.Lock()
	defer modes.mu.Unlock()
	if modes.full != 1 || modes.one != dials-1 {
		t.Fatalf("%d concurrent first dials took %d full and %d one-message handshakes, want 1 and %d",
			dials, modes.full, modes.one, dials-1)
	}
}

// First dials to one destination waiting for one full handshake do not
// hold open slots at the next hop: each opens its stream only once the
// handshake it waits for ended. (In QUIC the first write on a later stream
// makes the earlier ones visible to the peer; a waiting dial that had
// opened its stream left an empty one pending at the relay until
// HeaderTimeout refused it, and more of them than the link's pending room
// (MaxPendingOpensPerLink, 64 by default) were refused at once.)
func TestWaitingFirstDialsHoldNoOpenSlots(t *testing.T) {
	c := newCluster(t, true)
	reached, gate := make(chan struct{}), make(chan struct{})
	var gateOnce sync.Once
	release := func() { gateOnce.Do(func() { close(gate) }) }
	t.Cleanup(release)
	var calls sync.Mutex
	first := true
	c.tweak = func(cfg *Config) {
		switch cfg.Name {
		case "r", "b":
			// Room for the waiting dials' opens once they all go at
			// once, when the handshake ended.
			cfg.Limits.MaxPendingOpensPerLink = 1024
			cfg.Limits.MaxPendingOpens = 1024
		}
		switch cfg.Name {
		case "r":
			cfg.hooks = &hooks{relay: func(in, out links.Stream) (links.Stream, links.Stream) {
				calls.Lock()
				hold := first
				first = false
				calls.Unlock()
				if hold { // the one full handshake to b
					close(reached)
					<-gate
				}
				return in, out
			}}
		case "b":
			// b waits for the held handshake message.
			cfg.Limits.HeaderTimeout = time.Minute
		}
	}
	c.build("a-r", "r-b", "r-c")
	c.waitRoute("a", "b", 2)
	c.waitRoute("a", "c", 2)
	serve(t, c.nodes["b"], "svc", echoHandler)
	serve(t, c.nodes["c"], "svc", echoHandler)
	r := c.nodes["r"]
	const dials = 80
	var wg sync.WaitGroup
	errs := make(chan error, dials+1)
	for i := 0; i < dials; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := roundTrip(t, c.nodes["a"], "b", "svc", []byte("hello")); err != nil {
				errs <- err
			}
		}()
	}
	select {
	case <-reached:
	case <-time.After(30 * time.Second):
		t.Fatal("the full handshake to b never reached r")
	}
	// Let the other dials reach their wait, then write on a new stream of
	// the same link.
	time.Sleep(200 * time.Millisecond)
	if err := roundTrip(t, c.nodes["a"], "c", "svc", []byte("hello")); err != nil {
		errs <- err
	}
	// r accepted the stream to c, and so every stream a opened before it.
	pending, refused := r.limits.pendingOn("a"), r.limits.pendingRefused.Load()
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if pending != 0 || refused != 0 {
		t.Errorf("while %d dials waited for a handshake the relay held %d empty opens pending and refused %d, want 0 and 0",
			dials-1, pending, refused)
	}
	if n := r.limits.pendingRefused.Load(); n != 0 {
		t.Errorf("relay refused %d opens for want of pending room, want 0", n)
	}
}
