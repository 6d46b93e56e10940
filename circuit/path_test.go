package circuit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/circuitmesh/circuitmesh/links"
)

// testPath is a chain of QUIC links from a caller ("s") to a destination
// ("d"); relay i ("r<i+1>") sits between links[i] and links[i+1] and
// forwards circuits with Forward, WriteOpen and StartSplice, as a node does.
type testPath struct {
	links   []*link
	bufSize int
	tap     *tap // when set, measures what relay 0 holds in the up direction
	// wrap, when set, replaces relay 0's streams (a malicious relay).
	wrap func(in, out links.Stream) (links.Stream, links.Stream)
	// forge, when set, rewrites the header relay 0 forwards.
	forge func(*Open)
	// bounds, when set, are the relays' splice bounds (as a node's).
	bounds *SpliceBounds
}

func newPath(t testing.TB, relays int, cfg *quic.Config) *testPath {
	p := &testPath{}
	for i := 0; i <= relays; i++ {
		p.links = append(p.links, newLink(t, cfg))
	}
	return p
}

// circuit is one circuit through a testPath.
type circuit struct {
	caller, dest *Conn
	splicers     []*Splicer
}

// stop closes both ends and waits for the relays, resetting a splice that
// does not end by itself.
func (c *circuit) stop() {
	for _, conn := range []*Conn{c.caller, c.dest} {
		if conn != nil {
			conn.Close()
		}
	}
	c.waitRelays(2 * time.Second)
}

func (c *circuit) waitRelays(grace time.Duration) {
	for _, sp := range c.splicers {
		select {
		case <-sp.Done():
		case <-time.After(grace):
			sp.Reset(CloseCancelled)
			<-sp.Done()
		}
	}
}

// relay forwards one circuit arriving on links[i] to links[i+1]. It refuses
// with HopLimit when the hop limit is spent.
func (p *testPath) relay(ctx context.Context, i int) (*Splicer, error) {
	name := fmt.Sprintf("r%d", i+1)
	in, err := p.links[i].accept(ctx)
	if err != nil {
		return nil, err
	}
	o, err := ReadOpen(in, 0)
	if err != nil {
		in.Reset(CloseProtocol)
		return nil, err
	}
	fo, err := o.Forward(name)
	if err != nil {
		return nil, Refuse(in, Result{Code: HopLimit, Node: name, Reason: err.Error(), Path: o.Path})
	}
	if p.forge != nil && i == 0 {
		p.forge(fo)
	}
	out, err := p.links[i+1].open()
	if err == nil {
		err = WriteOpen(out, fo)
	}
	if err != nil {
		in.Reset(CloseInternal)
		return nil, err
	}
	if p.tap != nil && i == 0 {
		in, out = tapIn{in, p.tap}, tapOut{out, p.tap}
	}
	if p.wrap != nil && i == 0 {
		in, out = p.wrap(in, out)
	}
	if p.bounds != nil {
		return StartSpliceBounded(in, out, p.bufSize, *p.bounds, nil), nil
	}
	return StartSplice(in, out, p.bufSize), nil
}

// arrive accepts the circuit stream at the destination and reads its header.
func (p *testPath) arrive(ctx context.Context) (links.Stream, *Open, error) {
	s, err := p.links[len(p.links)-1].accept(ctx)
	if err != nil {
		return nil, nil, err
	}
	o, err := ReadOpen(s, 0)
	if err != nil {
		s.Reset(CloseProtocol)
		return nil, nil, err
	}
	return s, o, nil
}

// destFunc decides at the destination; nil means accept.
type destFunc func(s links.Stream, o *Open) (*Conn, error)

func acceptAll(s links.Stream, o *Open) (*Conn, error) {
	return Accept(s, o, Addr{Node: "d", Service: o.Service})
}

// start runs the relays and the destination for one circuit in the
// background. wait returns their outcome.
func (p *testPath) start(ctx context.Context, dest destFunc) (wait func() (*Conn, []*Splicer, error)) {
	if dest == nil {
		dest = acceptAll
	}
	relays := len(p.links) - 1
	type relayed struct {
		sp  *Splicer
		err error
	}
	rch := make(chan relayed, relays)
	for i := 0; i < relays; i++ {
		go func() {
			sp, err := p.relay(ctx, i)
			rch <- relayed{sp, err}
		}()
	}
	type arrived struct {
		c   *Conn
		err error
	}
	dch := make(chan arrived, 1)
	go func() {
		s, o, err := p.arrive(ctx)
		if err != nil {
			dch <- arrived{nil, err}
			return
		}
		c, err := dest(s, o)
		dch <- arrived{c, err}
	}()
	return func() (*Conn, []*Splicer, error) {
		var sps []*Splicer
		var first error
		for i := 0; i < relays; i++ {
			r := <-rch
			if r.sp != nil {
				sps = append(sps, r.sp)
			}
			if first == nil {
				first = r.err
			}
		}
		d := <-dch
		if first == nil {
			first = d.err
		}
		return d.c, sps, first
	}
}

// connect dials an accepted circuit from the caller to the destination,
// with Dial or, when early is set, DialEarly.
func (p *testPath) connect(o *Open, early bool) (*circuit, error) {
	return p.connectWith(o, nil, func(ctx context.Context, s links.Stream) (*Conn, error) {
		if early {
			return DialEarly(s, o, Addr{Node: "s", Service: o.Service})
		}
		return Dial(ctx, s, o, Addr{Node: "s", Service: o.Service})
	})
}

// connectWith connects a circuit with dial at the caller and dest at the
// destination (nil: Accept).
func (p *testPath) connectWith(o *Open, dest destFunc, dial func(context.Context, links.Stream) (*Conn, error)) (*circuit, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := p.links[0].open()
	if err != nil {
		return nil, err
	}
	wait := p.start(ctx, dest)
	caller, err := dial(ctx, s)
	dc, sps, werr := wait()
	c := &circuit{caller: caller, dest: dc, splicers: sps}
	if err == nil {
		err = werr
	}
	if err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

func basicOpen() *Open { return &Open{Dest: "d", Source: "s", Service: "echo"} }
