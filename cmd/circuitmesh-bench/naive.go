package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/quic-go/quic-go"
)

// The naive role is the relay baseline: the simplest correct relay anyone
// could write with quic-go. It accepts streams and, for each, opens a
// stream on its one connection to the next hop and io.Copy's both ways,
// with the quic.Config and TLS setup of the quic role (those of links).
// It knows nothing of circuits: no header, routing, limits, tracing or
// security; the bytes a sender writes reach whatever is behind the next
// hop unchanged (the quic role reads its mode byte as usual).
//
//	circuitmesh-bench naive --listen 127.0.0.1:0 --next 127.0.0.1:4242

// naiveRole runs the relay.
func naiveRole(args []string) error {
	fs, rf := newRoleFlags("naive")
	next := fs.String("next", "", "UDP address of the next hop (a quic or naive role; required)")
	stopProfile, err := rf.parse(fs, args)
	if err != nil {
		return err
	}
	defer stopProfile()
	if *next == "" {
		return errors.New("naive: --next is required")
	}
	e, err := newQUICEndpoint("naive", rf)
	if err != nil {
		return err
	}
	defer e.close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, err := e.dial(ctx, *next)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		e.acceptStreams(ctx, func(in *quic.Stream) { naiveSplice(ctx, in, out) })
	})
	return serveControl(os.Stdin, os.Stdout, reply{Addr: e.udp.LocalAddr().String()},
		func(req request) (reply, error) { return reply{}, fmt.Errorf("unknown op %q", req.Op) })
}

// naiveSplice relays one stream: open the next stream, copy both ways,
// forward FIN as FIN and any failure as a reset of both.
func naiveSplice(ctx context.Context, in *quic.Stream, out *quic.Conn) {
	next, err := out.OpenStreamSync(ctx)
	if err != nil {
		in.CancelRead(1)
		in.CancelWrite(1)
		return
	}
	abort := func() {
		for _, s := range []*quic.Stream{in, next} {
			s.CancelRead(1)
			s.CancelWrite(1)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := io.Copy(next, in); err != nil {
			abort()
			return
		}
		next.Close()
	}()
	if _, err := io.Copy(in, next); err != nil {
		abort()
	} else {
		in.Close()
	}
	<-done
}
