package simulate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/node"
)

// SinkService is the service every simulated node answers: it reads a
// circuit to its end and answers with the byte count (8 bytes, big endian)
// and the SHA-256 of what it read.
const SinkService = "sim-sink"

// sinkAnswerSize is the size of the sink's answer.
const sinkAnswerSize = 8 + sha256.Size

// serveSink answers SinkService on n until the node closes, and waits for
// its circuits to end.
func serveSink(n *node.Node) {
	lis, err := n.Listen(SinkService)
	if err != nil {
		return // the node is closing
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	defer lis.Close()
	for {
		conn, err := lis.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sink(ctx, conn)
		}()
	}
}

func sink(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	h := sha256.New()
	count, err := io.Copy(h, conn)
	if err != nil {
		return
	}
	answer := binary.BigEndian.AppendUint64(make([]byte, 0, sinkAnswerSize), uint64(count))
	conn.Write(h.Sum(answer))
}

// TransferResult measures one verified transfer.
type TransferResult struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Bytes int64  `json:"bytes"`
	// Path is the nodes the circuit crossed, source first, as the relays
	// recorded them (node.DialOptions.RecordPath): the path the circuit
	// ran on the last time the transfer found it running on one, looking
	// after Dial, after each write, after the half-close and after the
	// receiver's answer (or the failure). A resumable circuit that moved
	// to another path around a dead relay reports the path it moved to,
	// not the one it was opened on; one that ended as the answer arrived
	// reports the path of the last look before that.
	Path []string `json:"path"`
	// Open is how long Dial took: the open header's round trip.
	Open time.Duration `json:"open_ns"`
	// Duration runs from the end of Dial to the receiver's verified answer.
	Duration time.Duration `json:"duration_ns"`
	// openPath is the path at the end of Dial, the one Open crossed.
	openPath []string
}

// Throughput is the transfer's payload rate in bytes per second.
func (r TransferResult) Throughput() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Bytes) / r.Duration.Seconds()
}

// ErrCorrupted: the receiver's count or hash of a transfer differs from
// what was sent.
var ErrCorrupted = errors.New("transfer corrupted")

// Transfer opens a circuit from from to to's SinkService, sends size
// pseudo-random bytes, half-closes and checks the receiver's count and
// hash of what it read. A negative size fails with ErrInvalidArgument,
// a from or to that is no node of the cluster with ErrUnknownNode, and
// one that is down (killed and not restarted, or whose start failed) with
// ErrNodeDown, before any circuit opens. A to that runs but that from
// cannot reach fails with the node's error (circuit.ErrNoRoute).
func (c *Cluster) Transfer(ctx context.Context, from, to string, size int64) (TransferResult, error) {
	r := TransferResult{From: from, To: to, Bytes: size}
	var conn node.Conn
	look := func() {
		if p, ok := runningPath(conn); ok {
			r.Path = p
		}
	}
	fail := func(err error) (TransferResult, error) {
		if conn != nil {
			look()
		}
		return r, fmt.Errorf("transfer %d bytes %s→%s: %w", size, from, to, err)
	}
	if size < 0 {
		return fail(fmt.Errorf("size %d: want 0 or more: %w", size, ErrInvalidArgument))
	}
	n, err := c.live(from)
	if err == nil {
		_, err = c.live(to)
	}
	if err != nil {
		return fail(err)
	}
	start := time.Now()
	conn, err = n.DialWith(ctx, to, SinkService, node.DialOptions{RecordPath: true})
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	r.Open = time.Since(start)
	r.openPath = conn.Path()
	r.Path = r.openPath
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	start = time.Now()
	h := sha256.New()
	src := rand.NewChaCha8([32]byte{byte(size), 's', 'i', 'm'})
	buf := make([]byte, min(size, 64<<10)) // small for the many circuits of a workload
	for left := size; left > 0; {
		chunk := buf[:min(int64(len(buf)), left)]
		src.Read(chunk)
		h.Write(chunk)
		if _, err := conn.Write(chunk); err != nil {
			return fail(fmt.Errorf("after %d bytes: %w", size-left, orCtx(ctx, err)))
		}
		look() // a resumable circuit may have moved since Dial
		left -= int64(len(chunk))
	}
	if err := conn.CloseWrite(); err != nil {
		return fail(fmt.Errorf("half-close: %w", orCtx(ctx, err)))
	}
	look()
	answer := make([]byte, sinkAnswerSize)
	if _, err := io.ReadFull(conn, answer); err != nil {
		return fail(fmt.Errorf("read the receiver's answer: %w", orCtx(ctx, err)))
	}
	r.Duration = time.Since(start)
	look()
	if got := int64(binary.BigEndian.Uint64(answer)); got != size {
		return fail(fmt.Errorf("%w: receiver read %d bytes", ErrCorrupted, got))
	}
	if !bytes.Equal(answer[8:], h.Sum(nil)) {
		return fail(fmt.Errorf("%w: receiver's SHA-256 differs", ErrCorrupted))
	}
	return r, nil
}

// runningPath is the recorded path of the path conn runs on now, and
// whether it runs on one. A resumable circuit (one with Current, as
// circuit.Resumable has) runs on none between two paths and once it
// ended, when its Path names the first path it had; any other circuit
// runs on the path it opened.
func runningPath(conn node.Conn) ([]string, bool) {
	rc, ok := conn.(interface{ Current() circuit.Path })
	if !ok {
		return conn.Path(), true
	}
	p, ok := rc.Current().(interface{ Path() []string })
	if !ok {
		return nil, false
	}
	return p.Path(), true
}

// orCtx prefers the context's error when it ended the operation.
func orCtx(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}
