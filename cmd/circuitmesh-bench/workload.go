package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime/trace"
	"sync"
	"sync/atomic"
	"time"
)

// The same workloads run over circuits (node role) and over bare quic-go
// streams (quic role), so a circuit and its baseline differ only in what
// carries the bytes.

// stream is what a workload needs from a circuit or a quic-go stream.
type stream interface {
	io.ReadWriter
	// CloseWrite half-closes: the peer reads io.EOF.
	CloseWrite() error
	// Close ends both directions.
	Close() error
}

// writeChunk is the size of the sender's writes, for circuits and
// baselines alike.
const writeChunk = 64 << 10

var payload = make([]byte, writeChunk)

// sendBulk writes n bytes, half-closes, and waits for the receiver to
// report how many it read: the transfer is timed end to end.
func sendBulk(s stream, n int64) error {
	for left := n; left > 0; {
		w := min(left, writeChunk)
		if _, err := s.Write(payload[:w]); err != nil {
			return fmt.Errorf("write after %d of %d bytes: %w", n-left, n, err)
		}
		left -= w
	}
	if err := s.CloseWrite(); err != nil {
		return fmt.Errorf("half-close after sending: %w", err)
	}
	var ack [8]byte
	if _, err := io.ReadFull(s, ack[:]); err != nil {
		return fmt.Errorf("read the receiver's byte count: %w", err)
	}
	if got := int64(binary.BigEndian.Uint64(ack[:])); got != n {
		return fmt.Errorf("receiver read %d bytes, sent %d", got, n)
	}
	return nil
}

// serveSink reads until EOF and answers with the byte count.
func serveSink(s stream) error {
	defer s.Close()
	buf := make([]byte, writeChunk)
	var total int64
	for {
		n, err := s.Read(buf)
		total += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("sink read after %d bytes: %w", total, err)
		}
	}
	var ack [8]byte
	binary.BigEndian.PutUint64(ack[:], uint64(total))
	if _, err := s.Write(ack[:]); err != nil {
		return fmt.Errorf("sink ack: %w", err)
	}
	return s.CloseWrite()
}

// serveEcho echoes until EOF.
func serveEcho(s stream) error {
	defer s.Close()
	buf := make([]byte, 16<<10)
	if _, err := io.CopyBuffer(s, s, buf); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	return s.CloseWrite()
}

// echoOnce writes one byte and reads it back.
func echoOnce(s stream) error {
	b := [1]byte{'x'}
	if _, err := s.Write(b[:]); err != nil {
		return fmt.Errorf("echo write: %w", err)
	}
	if _, err := io.ReadFull(s, b[:]); err != nil {
		return fmt.Errorf("echo read: %w", err)
	}
	return nil
}

// openEcho times count rounds of: open a stream with open, echo one byte,
// close it. open must not wait for the far end: the byte travels with the
// open, so a round is one end-to-end round trip. A round that fails with
// an error retry accepts is done again (the caller counts those).
func openEcho(count int, open func() (stream, error), retry func(error) bool) ([]int64, error) {
	return openEchoSeen(count, open, retry, nil)
}

// openEchoSeen is openEcho that also shows seen each stream whose echo
// came back, before it is closed.
func openEchoSeen(count int, open func() (stream, error), retry func(error) bool, seen func(stream)) ([]int64, error) {
	out := make([]int64, 0, count)
	for len(out) < count {
		// Marks each open in an execution trace (-profile-dir), where
		// the roles' events line up on the machine's clock.
		trace.Log(context.Background(), "open", "")
		t := time.Now()
		s, err := open()
		if err == nil {
			if err = echoOnce(s); err == nil && seen != nil {
				seen(s)
			}
			s.Close()
		}
		d := time.Since(t)
		if err != nil && retry != nil && retry(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, d.Nanoseconds())
	}
	return out, nil
}

// pingRounds echoes one byte count times on each open stream, taking the
// streams in turn so that they share the machine's noise alike.
func pingRounds(streams map[string]stream, count int) (map[string][]int64, error) {
	out := make(map[string][]int64, len(streams))
	for range count {
		for name, s := range streams {
			t := time.Now()
			if err := echoOnce(s); err != nil {
				return nil, fmt.Errorf("ping %s: %w", name, err)
			}
			out[name] = append(out[name], time.Since(t).Nanoseconds())
		}
	}
	return out, nil
}

// inParallel runs fn count times, conc at a time (i is the run's number
// from 1), and stops at the first failure.
func inParallel(ctx context.Context, count, conc int, fn func(ctx context.Context, i int64) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, max(conc, 1))
	for w := range max(conc, 1) {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(count) && ctx.Err() == nil; i = next.Add(1) {
				if err := fn(ctx, i); err != nil {
					errs[w] = err
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// churn opens count streams with open, conc at a time, echoes one byte on
// each and closes it: the open rate a relay sustains, without the memory
// of streams kept open. Up to maxFailed streams may fail (counted in the
// reply, with the last error); one more ends the churn with its error.
func churn(ctx context.Context, count, conc, maxFailed int, open func(context.Context) (stream, error)) (reply, error) {
	var (
		mu   sync.Mutex
		rep  reply
		last error
	)
	err := inParallel(ctx, count, conc, func(ctx context.Context, i int64) error {
		s, err := open(ctx)
		if err == nil {
			err = echoOnce(s)
			s.Close()
		}
		if err == nil {
			return nil
		}
		err = fmt.Errorf("stream %d: %w", i, err)
		mu.Lock()
		defer mu.Unlock()
		if rep.Failed >= maxFailed || ctx.Err() != nil {
			return err
		}
		rep.Failed++
		last = err
		return nil
	})
	if last != nil {
		rep.LastFailure = last.Error()
	}
	return rep, err
}

// holder keeps idle streams open.
type holder struct {
	mu   sync.Mutex
	held []stream
}

// open opens count streams with open, conc at a time, and keeps them.
func (h *holder) open(ctx context.Context, count, conc int, open func(context.Context) (stream, error)) error {
	return inParallel(ctx, count, conc, func(ctx context.Context, i int64) error {
		s, err := open(ctx)
		if err != nil {
			return fmt.Errorf("open idle stream %d: %w", i, err)
		}
		h.mu.Lock()
		h.held = append(h.held, s)
		h.mu.Unlock()
		return nil
	})
}

// release closes every held stream.
func (h *holder) release() {
	h.mu.Lock()
	held := h.held
	h.held = nil
	h.mu.Unlock()
	for _, s := range held {
		s.Close()
	}
}

// keep holds s (an accepted idle stream) until release.
func (h *holder) keep(s stream) {
	h.mu.Lock()
	h.held = append(h.held, s)
	h.mu.Unlock()
}

// len is the number of held streams.
func (h *holder) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.held)
}
