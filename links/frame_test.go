package links

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func mustFrame(t testing.TB, typ uint8, p []byte) []byte {
	b, err := appendFrame(nil, typ, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFrameRoundTripAndSkip(t *testing.T) {
	h := helloMsg{Version: 1, Role: RoleLeaf, Features: 7, Instance: 9, Nonce: 11, Mesh: "m", Node: "n1"}
	hb, err := h.marshal()
	if err != nil {
		t.Fatal(err)
	}
	var stream []byte
	stream = append(stream, mustFrame(t, frameHello, hb)...)
	stream = append(stream, mustFrame(t, 0x7f, []byte("from a later version"))...) // unknown: skipped
	stream = append(stream, mustFrame(t, frameRouting, []byte("r"))...)
	r := bytes.NewReader(stream)
	f, err := readFrame(r)
	if err != nil || f.typ != frameHello {
		t.Fatalf("first frame %v %v", f, err)
	}
	var got helloMsg
	if err := got.unmarshal(f.payload); err != nil || got != h {
		t.Fatalf("hello %+v %v, want %+v", got, err, h)
	}
	if f, err = readFrame(r); err != nil || f.typ != frameRouting || string(f.payload) != "r" {
		t.Fatalf("frame after unknown type: %v %v", f, err)
	}
	if _, err = readFrame(r); err != io.EOF {
		t.Fatalf("end of stream: %v", err)
	}
}

func TestFrameLimits(t *testing.T) {
	if _, err := appendFrame(nil, frameRouting, make([]byte, MaxFrameSize+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("encode oversized: %v", err)
	}
	huge := []byte{frameRouting, 0xff, 0xff, 0xff, 0xff}
	if _, err := readFrame(bytes.NewReader(huge)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("decode oversized: %v", err)
	}
	cut := mustFrame(t, frameRouting, []byte("abcdef"))[:8]
	if _, err := readFrame(bytes.NewReader(cut)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated frame: %v", err)
	}
	var h helloMsg
	if err := h.unmarshal([]byte{0, 1, 0}); !errors.Is(err, errBadFrame) {
		t.Fatalf("short hello: %v", err)
	}
	long := helloMsg{Node: string(make([]byte, maxNameLen+1))}
	if _, err := long.marshal(); err == nil {
		t.Fatal("hello with a 256-byte name encoded")
	}
}

// FuzzReadFrame decodes arbitrary control-stream bytes: it must never panic
// or allocate beyond MaxFrameSize per frame, and every decoded hello must
// re-encode to an equal hello.
func FuzzReadFrame(f *testing.F) {
	h := helloMsg{Version: 1, Features: 1, Instance: 2, Nonce: 3, Mesh: "mesh", Node: "node"}
	hb, _ := h.marshal()
	f.Add(mustFrame(f, frameHello, hb))
	f.Add(append(mustFrame(f, frameProbe, probePayload(1, 2)), mustFrame(f, frameProbeReply, probePayload(1, 2))...))
	f.Add(append(mustFrame(f, 0x42, []byte("unknown")), mustFrame(f, frameGoodbye, []byte("bye"))...))
	f.Add(mustFrame(f, frameReady, nil))
	f.Add([]byte{frameRouting, 0, 1, 0, 0})
	f.Add([]byte{frameHello, 0, 0, 0, 3, 0, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			fr, err := readFrame(r)
			if err != nil {
				return
			}
			if len(fr.payload) > MaxFrameSize {
				t.Fatalf("frame of %d bytes", len(fr.payload))
			}
			switch fr.typ {
			case frameHello:
				var h helloMsg
				if h.unmarshal(fr.payload) != nil {
					continue
				}
				b, err := h.marshal()
				if err != nil {
					t.Fatalf("decoded hello does not encode: %v", err)
				}
				var h2 helloMsg
				if err := h2.unmarshal(b); err != nil || h2 != h {
					t.Fatalf("hello round trip: %+v -> %+v (%v)", h, h2, err)
				}
			case frameProbe, frameProbeReply:
				_, _, _ = parseProbe(fr.payload)
			}
		}
	})
}
