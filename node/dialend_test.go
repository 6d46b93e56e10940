package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/memlink"
)

// prompt bounds how long a dial may take to return once its context
// ended or its node's Close began: far below the waits it was in (a
// minute's RouteWait, a context without end), generous for a loaded
// machine.
const prompt = 10 * time.Second

// dialAsync dials to's echo service from from in the background (a Ping
// when ping is set); the channel gets the error.
func dialAsync(ctx context.Context, from *Node, to string, ping bool) <-chan error {
	res := make(chan error, 1)
	go func() {
		if ping {
			_, err := from.Ping(ctx, to)
			res <- err
			return
		}
		c, err := from.Dial(ctx, to, EchoService)
		if err == nil {
			c.Close()
		}
		res <- err
	}()
	return res
}

// dialEnded is the error of the dial on res, which must return within
// prompt of what ended it.
func dialEnded(t *testing.T, res <-chan error, what string) error {
	t.Helper()
	start := time.Now()
	select {
	case err := <-res:
		t.Logf("%s: returned after %v: %v", what, time.Since(start).Round(time.Millisecond), err)
		if err == nil {
			t.Fatalf("%s: the dial succeeded", what)
		}
		return err
	case <-time.After(prompt):
		t.Fatalf("%s: the dial had not returned after %v", what, prompt)
		return nil
	}
}

// waitingForARoute reports whether a dial waits for routing to offer a
// next hop.
func waitingForARoute() bool {
	return routeWaits() > 0
}

// routeWaits counts the dials waiting for routing to offer a next hop.
func routeWaits() int {
	return goroutinesIn("node.(*Node).awaitNewHop", "node.(*Node).dial(")
}

// lostRouteCluster is a–b–c with RouteWait a minute, in which a just
// lost its route to c (b's link to c was cut and is not redialled).
func lostRouteCluster(t *testing.T) *cluster {
	c := newCluster(t, false)
	c.tweak = func(cfg *Config) { cfg.RouteWait = time.Minute }
	c.build("a-b", "b-c")
	c.waitRoute("a", "c", 2)
	cutAndLose(t, c, "a", "b", "c")
	return c
}

// TestDialEndedWhileWaitingForARouteFailsWithCtxErr: a dial to c, whose
// route a lost a moment ago, waits for routing to find a new one
// (RouteWait, a minute here). Its caller cancels it meanwhile, or its
// deadline passes. Before, Dial returned at once with a bare refusal
// `no route`, matching neither context.Canceled nor
// context.DeadlineExceeded, though the Dial doc promises ctx's error.
// Now the error matches ctx's, and still circuit.ErrNoRoute.
func TestDialEndedWhileWaitingForARouteFailsWithCtxErr(t *testing.T) {
	c := lostRouteCluster(t)
	a := c.nodes["a"]

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := dialAsync(ctx, a, "c", false)
	waitFor(t, "a's dial to wait for a route to c", patience, waitingForARoute)
	cancel()
	err := dialEnded(t, res, "cancelled while waiting for a route")
	if !errors.Is(err, context.Canceled) || !errors.Is(err, circuit.ErrNoRoute) {
		t.Errorf("dial cancelled while waiting for a route: %v, want an error matching context.Canceled and circuit.ErrNoRoute", err)
	}

	err = dialEnded(t, dialAsync(ctxT(t, 2*time.Second), a, "c", false), "deadline passed while waiting for a route")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, circuit.ErrNoRoute) {
		t.Errorf("dial whose deadline passed while waiting for a route: %v, want an error matching context.DeadlineExceeded and circuit.ErrNoRoute", err)
	}
}

// stuckLine builds a–b–c (over QUIC when quic) in which relay b, once
// stuck is set, swallows what the circuits it relays carry (the
// destination's answer too); each circuit b relays then adds one to
// relayed.
func stuckLine(t *testing.T, quic bool) (c *cluster, stuck *atomic.Bool, relayed *atomic.Int64) {
	c, stuck, relayed = newCluster(t, quic), new(atomic.Bool), new(atomic.Int64)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "b" {
			cfg.hooks = &hooks{relay: func(in, out links.Stream) (links.Stream, links.Stream) {
				if stuck.Load() {
					relayed.Add(1)
				}
				return stuckStream{in, stuck}, stuckStream{out, stuck}
			}}
		}
	}
	c.build("a-b", "b-c")
	c.waitRoute("a", "c", 2)
	return c, stuck, relayed
}

// TestDialEndedAfterItsNextHopFailedFailsWithCtxErr: a's dial to c goes
// through b, which passes nothing back; a's link to b is cut while the
// dial waits for c's answer, so the dial waits for routing to offer
// another next hop. Its caller cancels it meanwhile. Before, Dial
// returned a refusal `link lost` matching no context error; now the
// error matches context.Canceled, and still circuit.ErrLinkLost.
func TestDialEndedAfterItsNextHopFailedFailsWithCtxErr(t *testing.T) {
	c, stuck, relayed := stuckLine(t, false)
	a := c.nodes["a"]
	stuck.Store(true)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := dialAsync(ctx, a, "c", false)
	waitFor(t, "b to relay a's dial", patience, func() bool { return relayed.Load() == 1 })
	c.memNet.Cut("a", "b")
	waitFor(t, "a's dial to wait for another next hop", patience, waitingForARoute)
	cancel()
	err := dialEnded(t, res, "cancelled while waiting for another next hop")
	if !errors.Is(err, context.Canceled) || !errors.Is(err, circuit.ErrLinkLost) {
		t.Errorf("dial cancelled while waiting for another next hop: %v, want an error matching context.Canceled and circuit.ErrLinkLost", err)
	}
}

// isShuttingDown reports whether err is the refusal of node shutting
// down, as Dial returns once Close has begun.
func isShuttingDown(err error, node string) bool {
	var re *circuit.RefusedError
	return errors.Is(err, circuit.ErrShuttingDown) && errors.As(err, &re) && re.Code == circuit.ShuttingDown && re.Node == node
}

// TestDialInFlightWhenCloseRunsIsRefusedShuttingDown: a's Dial and Ping
// to c wait for the answer, which relay b swallows, or wait for a route
// to c, which a just lost, when a's Close runs. Before, they returned
// `link lost` ("transport closing") or `no route`, as if the path had
// failed. Now they fail as a Dial after Close does: refused by a,
// shutting down.
func TestDialInFlightWhenCloseRunsIsRefusedShuttingDown(t *testing.T) {
	t.Run("waiting for the answer", func(t *testing.T) {
		c, stuck, relayed := stuckLine(t, true)
		a := c.nodes["a"]
		// a learns c's key: neither open below waits for the other's
		// handshake.
		if err := roundTrip(t, a, "c", EchoService, []byte("key")); err != nil {
			t.Fatal(err)
		}
		stuck.Store(true)
		dial := dialAsync(ctxT(t, patience), a, "c", false)
		ping := dialAsync(ctxT(t, patience), a, "c", true)
		waitFor(t, "b to relay a's dial and ping", patience, func() bool { return relayed.Load() == 2 })
		go a.Close()
		for what, res := range map[string]<-chan error{"dial": dial, "ping": ping} {
			if err := dialEnded(t, res, what+" waiting for the answer when Close ran"); !isShuttingDown(err, "a") {
				t.Errorf("%s waiting for the answer when Close ran: %v, want a's refusal, shutting down", what, err)
			}
		}
	})
	t.Run("waiting for a route", func(t *testing.T) {
		c := lostRouteCluster(t)
		a := c.nodes["a"]
		dial := dialAsync(ctxT(t, patience), a, "c", false)
		ping := dialAsync(ctxT(t, patience), a, "c", true)
		waitFor(t, "a's dial and ping to wait for a route to c", patience, func() bool {
			return routeWaits() == 2
		})
		go a.Close()
		for what, res := range map[string]<-chan error{"dial": dial, "ping": ping} {
			if err := dialEnded(t, res, what+" waiting for a route when Close ran"); !isShuttingDown(err, "a") {
				t.Errorf("%s waiting for a route when Close ran: %v, want a's refusal, shutting down", what, err)
			}
		}
	})
}

// heldDown passes the events of a node's links to its handler, each
// LinkDown once release is closed: the node keeps a link that has just
// closed meanwhile.
type heldDown struct {
	links.Handler
	release <-chan struct{}
}

func (h heldDown) LinkDown(l links.Link, err error) {
	<-h.release
	h.Handler.LinkDown(l, err)
}

// holdLinkDowns makes node name of c (on c's memlink network) keep each
// link that closes until the test ends (heldDown): a dial then finds the
// closed link in the node's table. Cuts are reported after an hour
// (closeUnheard).
func holdLinkDowns(t *testing.T, c *cluster, name string) {
	c.memNet = memlink.NewNetwork(memlink.Config{DetectDelay: time.Hour})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // before the cluster closes
	prev := c.tweak
	c.tweak = func(cfg *Config) {
		if prev != nil {
			prev(cfg)
		}
		if cfg.Name == name {
			cfg.NewTransport = func(h links.Handler, role links.Role) (links.Transport, error) {
				return c.memNet.Transport(memlink.TransportConfig{Name: name, Mesh: "test", Role: role, Handler: heldDown{h, release}})
			}
		}
	}
}

// closeUnheard makes from close its link to to, which neither end dials
// again: the network between them is cut first, to's end not told.
func closeUnheard(c *cluster, from, to string) {
	l := c.mustLink(from, to)
	c.memNet.Cut(from, to)
	l.Close("test closes " + from + "-" + to)
}

// TestDialOnALinkTheNodeClosedTriesAnotherNextHop: in the square a-b-c,
// a-d-c, a closes its link to its next hop toward c itself (as discovery
// does to make room, or as a duplicate's close does) just as a Dial to c
// takes it. Before, the dial failed at once with the link's error
// ("link to b closed", matching links.ErrClosed), though d still
// reached c, where the close of a peer made it try d. Now it tries d and
// the circuit opens.
func TestDialOnALinkTheNodeClosedTriesAnotherNextHop(t *testing.T) {
	c := newCluster(t, false)
	holdLinkDowns(t, c, "a")
	c.build("a-b", "a-d", "b-c", "d-c")
	p := c.waitRoute("a", "c", 2)
	a := c.nodes["a"]
	other := map[string]string{"b": "d", "d": "b"}[p.NextHop]
	c.waitRoute("a", other, 1)
	c.mustLink("a", p.NextHop).Close("test makes room")
	if err := roundTrip(t, a, "c", EchoService, []byte("ping")); err != nil {
		t.Fatalf("dial to c after a closed its link to next hop %s, %s up: %v", p.NextHop, other, err)
	}
}

// TestDialErrorNamesEachContextOnce: the error of a Dial names the dial
// and the stream it opened once. Before, a dial on a link that closed
// under it (a's node not yet told) failed with "dial b/echo: open stream
// to b: open stream to b: link to b closed", a dial that gave up on the
// destination's answer with "dial c/echo: circuit: dial c/echo: context
// canceled", and one that gave up waiting for another dial's handshake
// with c with "dial c/echo: dial c/echo: context canceled"; a relay's
// refusal, its link onward closed, said "open stream to c: open stream
// to c: link to c closed".
func TestDialErrorNamesEachContextOnce(t *testing.T) {
	once := func(t *testing.T, err error, want ...string) {
		t.Helper()
		for _, w := range want {
			if n := strings.Count(fmt.Sprint(err), w); n != 1 {
				t.Errorf("the error names %q %d times: %v", w, n, err)
			}
		}
	}
	t.Run("link closing under the dial", func(t *testing.T) {
		c := newCluster(t, false)
		holdLinkDowns(t, c, "a")
		c.build("a-b")
		c.waitRoute("a", "b", 1)
		a := c.nodes["a"]
		closeUnheard(c, "a", "b")
		// The dial waits for another next hop until its deadline.
		_, err := a.Dial(ctxT(t, 2*time.Second), "b", EchoService)
		if err == nil {
			t.Fatal("dial on a closed link succeeded")
		}
		once(t, err, "dial b/echo", "open stream to b")
	})
	t.Run("relay's link onward closing under the circuit", func(t *testing.T) {
		// b closed its link to c, not yet told: b refuses a's circuit to
		// c, naming the stream it could not open. Before, the refusal
		// said "open stream to c: open stream to c: link to c closed".
		c := newCluster(t, false)
		holdLinkDowns(t, c, "b")
		c.build("a-b", "b-c")
		c.waitRoute("a", "c", 2)
		closeUnheard(c, "b", "c")
		_, err := c.nodes["a"].Dial(ctxT(t, 2*time.Second), "c", EchoService)
		if !errors.Is(err, circuit.ErrNoRoute) {
			t.Fatalf("dial through a relay whose link onward closed: %v, want b's refusal, no route", err)
		}
		once(t, err, "dial c/echo", "open stream to c")
	})
	t.Run("giving up on the answer or another dial's handshake", func(t *testing.T) {
		c, stuck, relayed := stuckLine(t, false)
		a := c.nodes["a"]
		stuck.Store(true)
		// The first dial takes the full handshake with c, whose key a
		// does not know yet; the second waits for it.
		ctx1, cancel1 := context.WithCancel(context.Background())
		defer cancel1()
		first := dialAsync(ctx1, a, "c", false)
		waitFor(t, "b to relay a's first dial", patience, func() bool { return relayed.Load() == 1 })
		ctx2, cancel2 := context.WithCancel(context.Background())
		defer cancel2()
		second := dialAsync(ctx2, a, "c", false)
		waitFor(t, "a's second dial to wait for the first's handshake", patience, func() bool {
			return goroutinesIn("node.(*Node).awaitKey(") == 1
		})
		cancel2()
		err := dialEnded(t, second, "cancelled waiting for another dial's handshake")
		if !errors.Is(err, context.Canceled) {
			t.Errorf("dial cancelled waiting for another dial's handshake: %v, want an error matching context.Canceled", err)
		}
		once(t, err, "dial c/echo")
		cancel1()
		err = dialEnded(t, first, "cancelled waiting for the answer")
		if !errors.Is(err, context.Canceled) {
			t.Errorf("dial cancelled waiting for the answer: %v, want an error matching context.Canceled", err)
		}
		once(t, err, "dial c/echo")
	})
}
