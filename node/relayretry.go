package node

import (
	"bytes"
	"io"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// A relay cannot tell a one-message first message that will fail at the
// destination (a stale key, a replay, bytes that do not decrypt) from one
// that will not, and the destination charges those that fail to its
// budget for the link they arrive on, the last relay's, whatever source
// they claim: every source behind that relay shares it. So the last relay
// learns which failed from the destination's answer, read as it passes
// back: retry, or overloaded once that budget (or another) is spent. It
// budgets those by the link they came in on (limiter.tryRelayOneMessage).

// retryWatch is the stream of a relayed open toward the destination: the
// first read (or peek) of the splice reads the result header the
// destination answers, tells done whether it is retry or overloaded, and
// hands the header on as read. A header that does not parse is handed on
// as well and counts as another answer; a stream that fails before any
// header tells done nothing.
type retryWatch struct {
	links.Stream
	done    func(failed bool)
	read    bool
	pending []byte
}

// peekRetryWatch is a retryWatch on a stream that can peek, so that the
// splice waits on it without a buffer as on the stream itself.
type peekRetryWatch struct {
	*retryWatch
}

type peeker interface {
	Peek(p []byte) (int, error)
}

// watchRetry returns out read through a retryWatch calling done.
func watchRetry(out links.Stream, done func(failed bool)) links.Stream {
	w := &retryWatch{Stream: out, done: done}
	if _, ok := out.(peeker); ok {
		return peekRetryWatch{w}
	}
	return w
}

// OnStopSending is the stream's own (see readFirst).
func (w *retryWatch) OnStopSending(f func(error)) (stop func() bool) {
	return onStopSending(w.Stream, f)
}

// result reads the result header once. Only the splice's reader calls it.
func (w *retryWatch) result() {
	if w.read {
		return
	}
	w.read = true
	var got bytes.Buffer
	res, err := circuit.ReadResult(io.TeeReader(w.Stream, &got), 0)
	w.pending = got.Bytes()
	switch {
	case err == nil:
		w.done(res.Code == circuit.Retry || res.Code == circuit.Overloaded)
	case len(w.pending) > 0:
		w.done(false)
	}
}

func (w *retryWatch) Read(p []byte) (int, error) {
	w.result()
	if len(w.pending) == 0 {
		return w.Stream.Read(p)
	}
	n := copy(p, w.pending)
	w.pending = w.pending[n:]
	return n, nil
}

func (w peekRetryWatch) Peek(p []byte) (int, error) {
	w.result()
	if len(w.pending) == 0 {
		return w.Stream.(peeker).Peek(p)
	}
	return copy(p, w.pending), nil
}
