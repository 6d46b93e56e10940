package quic

import (
	"errors"
	"io"
	"testing"

	"github.com/quic-go/quic-go/internal/monotime"
	"github.com/quic-go/quic-go/internal/protocol"
	"github.com/quic-go/quic-go/internal/utils"
	"github.com/quic-go/quic-go/internal/wire"
)

type fakeSender struct{ completed int }

func (*fakeSender) onHasConnectionData()                                                {}
func (*fakeSender) onHasStreamData(protocol.StreamID, *SendStream)                      {}
func (*fakeSender) onHasStreamRetransmission(protocol.StreamID, *SendStream)            {}
func (*fakeSender) onHasStreamControlFrame(protocol.StreamID, streamControlFrameGetter) {}
func (*fakeSender) updateStreamPriority(protocol.StreamID)                              {}
func (*fakeSender) recordStreamPriorityUpdated(protocol.StreamID, int8, bool)           {}
func (f *fakeSender) onStreamCompleted(protocol.StreamID)                               { f.completed++ }
func (*fakeSender) onStreamCreditReleased(protocol.StreamID)                            {}

func newBudgetRS(t *testing.T) (*ReceiveStream, *frameBudget, *fakeSender) {
	rtt := &utils.RTTStats{}
	cfc := newConnectionFlowController(1<<24, 1<<24, nil, rtt, utils.DefaultLogger)
	fc := newStreamFlowController(4, cfc, 1<<22, 1<<22, 1<<22, rtt, utils.DefaultLogger)
	fs := &fakeSender{}
	s := newReceiveStream(4, fs, fc)
	b := &frameBudget{max: 1 << 40}
	s.frameQueue.budget = b
	return s, b, fs
}

func pushTiny(t *testing.T, s *ReceiveStream, from, to int) {
	// every other byte: entries that cannot merge
	for i := from; i < to; i += 2 {
		if err := s.handleStreamFrame(&wire.StreamFrame{StreamID: 4, Offset: protocol.ByteCount(i), Data: []byte{byte(i)}}, monotime.Now()); err != nil {
			t.Fatal(err)
		}
	}
}

// RESET_STREAM_AT with a reliable size: the reader reads up to it and the
// stream completes; the entries queued beyond it were never released, and
// stayed counted in the connection's frame budget.
func TestBudgetResetStreamAtLeaks(t *testing.T) {
	s, b, fs := newBudgetRS(t)
	if err := s.handleStreamFrame(&wire.StreamFrame{StreamID: 4, Offset: 0, Data: make([]byte, 10)}, monotime.Now()); err != nil {
		t.Fatal(err)
	}
	pushTiny(t, s, 20, 220)
	if err := s.handleResetStreamFrame(&wire.ResetStreamFrame{StreamID: 4, ErrorCode: 1, FinalSize: 1000, ReliableSize: 10}, monotime.Now()); err != nil {
		t.Fatal(err)
	}
	// frames after the reset, beyond the reliable size
	pushTiny(t, s, 221, 421)
	buf := make([]byte, 100)
	n, err := s.Read(buf)
	var se *StreamError
	t.Logf("Read: %d, %v; completed %d; budget %d; queue %d", n, err, fs.completed, b.entries.Load(), len(s.frameQueue.queue))
	if !errors.As(err, &se) {
		n2, err2 := s.Read(buf)
		t.Logf("Read again: %d %v completed %d", n2, err2, fs.completed)
	}
	if fs.completed == 1 && b.entries.Load() != 0 {
		t.Errorf("stream completed with %d entries still counted", b.entries.Load())
	}
}

// A second RESET_STREAM_AT lowering the reliable size to what was read
// makes the reset effective: what is queued is released then too.
func TestBudgetResetStreamAtLowered(t *testing.T) {
	s, b, fs := newBudgetRS(t)
	pushTiny(t, s, 20, 220)
	s.handleResetStreamFrame(&wire.ResetStreamFrame{StreamID: 4, ErrorCode: 1, FinalSize: 1000, ReliableSize: 10}, monotime.Now())
	s.handleResetStreamFrame(&wire.ResetStreamFrame{StreamID: 4, ErrorCode: 1, FinalSize: 1000, ReliableSize: 0}, monotime.Now())
	_, err := s.Read(make([]byte, 10))
	t.Logf("Read: %v; completed %d; budget %d", err, fs.completed, b.entries.Load())
	if fs.completed == 1 && b.entries.Load() != 0 {
		t.Errorf("stream completed with %d entries still counted", b.entries.Load())
	}
}

// A plain reset, CancelRead and EOF leave nothing counted.
func TestBudgetPlainPaths(t *testing.T) {
	s, b, _ := newBudgetRS(t)
	pushTiny(t, s, 20, 220)
	s.handleResetStreamFrame(&wire.ResetStreamFrame{StreamID: 4, ErrorCode: 1, FinalSize: 1000}, monotime.Now())
	pushTiny(t, s, 221, 421)
	if b.entries.Load() != 0 {
		t.Errorf("reset: %d", b.entries.Load())
	}
	s, b, _ = newBudgetRS(t)
	pushTiny(t, s, 20, 220)
	s.CancelRead(1)
	pushTiny(t, s, 221, 421)
	if b.entries.Load() != 0 {
		t.Errorf("cancel: %d", b.entries.Load())
	}
	s, b, _ = newBudgetRS(t)
	data := make([]byte, 300)
	for i := 299; i >= 0; i-- {
		s.handleStreamFrame(&wire.StreamFrame{StreamID: 4, Offset: protocol.ByteCount(i), Data: data[i : i+1], Fin: i == 299}, monotime.Now())
	}
	got, err := io.ReadAll(s)
	if err != nil || len(got) != 300 || b.entries.Load() != 0 {
		t.Errorf("eof: %d %v %d", len(got), err, b.entries.Load())
	}
}
