package routing

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleEntries() []entry {
	return []entry{
		{kind: kindUpdate, origin: "a", seqno: 7, metric: 30, hops: 2},
		{kind: kindUpdate, origin: strings.Repeat("x", MaxNameLen), seqno: 0xffff, metric: DefaultInfinity},
		{kind: kindRequest, origin: "node-9", seqno: 1, hopcnt: requestHopCount},
		{kind: kindAttest, origin: "b", seqno: 9, att: []byte("signed by b")},
		{kind: kindSummary, buckets: 8, bucket: 5, count: 31, digest: 0x0123456789abcdef},
		{kind: kindResend, buckets: 4096, bucket: 4095},
		{kind: kindAttUpdate, origin: "c", seqno: 3, metric: 40, hops: 3, att: []byte("signed by c")},
	}
}

func TestWireRoundTrip(t *testing.T) {
	in := sampleEntries()
	b := encodeMessage(in)
	out, err := decodeMessage(b, 64)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n in %+v\nout %+v", in, out)
	}
	if b[0] != wireVersion {
		t.Fatalf("a message with an attested update has version %d, want %d", b[0], wireVersion)
	}
	if _, err := decodeMessage(b, len(in)-1); !errors.Is(err, ErrMalformed) {
		t.Fatalf("%d entries with limit %d: err = %v", len(in), len(in)-1, err)
	}
	// Without attested updates, a message of either version.
	for _, v := range []uint8{wireBase, wireVersion} {
		b := encodeVersion(v, in[:len(in)-1])
		if out, err := decodeMessage(b, 64); err != nil || !reflect.DeepEqual(in[:len(in)-1], out) {
			t.Fatalf("version %d: %v\n in %+v\nout %+v", v, err, in[:len(in)-1], out)
		}
	}
}

// An attested update is 4 bytes and a name shorter than the attestation
// and the update it stands for.
func TestAttestedUpdateSize(t *testing.T) {
	au := attUpd("n0042", 9, 300, 4, "signature")
	pair := split([]entry{au})
	if got, want := len(encodeVersion(wireVersion, []entry{au})), len(encodeVersion(wireVersion, pair))-4-len("n0042"); got != want {
		t.Fatalf("attested update: %d bytes, want %d", got, want)
	}
}

func TestWireRejects(t *testing.T) {
	good := encodeMessage(sampleEntries()[:1])
	cases := map[string][]byte{
		"empty":         nil,
		"short header":  {1, 0},
		"bad version":   append([]byte{1}, good[1:]...),
		"truncated":     good[:len(good)-1],
		"trailing":      append(bytes.Clone(good), 0),
		"version 2":     append([]byte{2}, good[1:]...),
		"empty name":    {3, 0, 1, kindUpdate, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"unknown kind":  {3, 0, 1, 9, 1, 'a', 0, 0, 0},
		"count too big": {3, 0xff, 0xff, kindRequest, 1, 'a', 0, 0, 0},
		"empty attest":  {3, 0, 1, kindAttest, 1, 'a', 0, 1, 0, 0},
		"attest short":  {3, 0, 1, kindAttest, 1, 'a', 0, 1, 0, 3, 'x'},
		"attest huge":   append([]byte{3, 0, 1, kindAttest, 1, 'a', 0, 1, 0x10, 0x01}, make([]byte, 4097)...),
		"named summary": {3, 0, 1, kindSummary, 1, 'a', 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"summary short": {3, 0, 1, kindSummary, 0, 0, 1, 0, 0, 0, 0},
		"zero buckets":  {3, 0, 1, kindResend, 0, 0, 0, 0, 0},
		"3 buckets":     {3, 0, 1, kindResend, 0, 0, 3, 0, 0},
		"bucket beyond": {3, 0, 1, kindResend, 0, 0, 4, 0, 4},
		"too many":      {3, 0, 1, kindResend, 0, 0x20, 0, 0, 0},
		"version 5":     append([]byte{5}, good[1:]...),
		// Attested updates: only in version 4, with a name and an
		// attestation of 1..4096 bytes.
		"attupd in v3":    {3, 0, 1, kindAttUpdate, 1, 'a', 0, 1, 0, 0, 0, 9, 0, 1, 0, 1, 'z'},
		"attupd no name":  {4, 0, 1, kindAttUpdate, 0, 0, 1, 0, 0, 0, 9, 0, 1, 0, 1, 'z'},
		"attupd no att":   {4, 0, 1, kindAttUpdate, 1, 'a', 0, 1, 0, 0, 0, 9, 0, 1, 0, 0},
		"attupd short":    {4, 0, 1, kindAttUpdate, 1, 'a', 0, 1, 0, 0, 0, 9, 0, 1, 0, 2, 'z'},
		"attupd no body":  {4, 0, 1, kindAttUpdate, 1, 'a', 0, 1, 0, 0, 0, 9, 0, 1, 0},
		"attupd huge":     append([]byte{4, 0, 1, kindAttUpdate, 1, 'a', 0, 1, 0, 0, 0, 9, 0, 1, 0x10, 0x01}, make([]byte, 4097)...),
		"attupd trailing": {4, 0, 1, kindAttUpdate, 1, 'a', 0, 1, 0, 0, 0, 9, 0, 1, 0, 1, 'z', 0},
	}
	for name, b := range cases {
		if _, err := decodeMessage(b, maxEntriesLimit); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

// FuzzDecode: the decoder never panics, accepts only what it can
// re-encode byte for byte, and never exceeds its entry limit.
func FuzzDecode(f *testing.F) {
	f.Add(encodeMessage(sampleEntries()))
	f.Add(encodeMessage(nil))
	f.Add([]byte{3, 0, 1, kindRequest, 1, 'a', 0, 1, 5})
	f.Add([]byte{3, 0, 1, kindAttest, 1, 'a', 0, 1, 0, 1, 'z'})
	f.Add([]byte{3, 0, 1, kindResend, 0, 0, 2, 0, 1})
	f.Add([]byte{3, 0, 1, kindSummary, 0, 0, 1, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(encodeMessage([]entry{{kind: kindAttest, origin: "ab", seqno: 4, att: []byte{9}},
		{kind: kindUpdate, origin: "ab", seqno: 4, metric: 30, hops: 2},
		{kind: kindUpdate, origin: "ac", seqno: 1, metric: 30, hops: 2},
		{kind: kindUpdate, origin: "ab", seqno: 4, metric: 31, hops: 2}}))
	f.Add([]byte{3, 0xff, 0xff})
	f.Add([]byte{})
	f.Add([]byte{4, 0, 0})
	f.Add([]byte{4, 0, 1, kindAttUpdate, 1, 'a', 0, 1, 0, 0, 0, 9, 0, 1, 0, 1, 'z'})
	f.Add(encodeVersion(wireVersion, []entry{attUpd("ab", 4, 30, 2, "\x09"),
		{kind: kindUpdate, origin: "ab", seqno: 4, metric: 31, hops: 2},
		{kind: kindAttest, origin: "ac", seqno: 1, att: []byte{1}},
		attUpd("ac", 1, 30, 2, "\x01")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 16
		out, err := decodeMessage(b, limit)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if len(out) > limit {
			t.Fatalf("decoded %d entries, limit %d", len(out), limit)
		}
		for _, en := range out {
			if en.kind == kindAttUpdate && b[0] != wireVersion {
				t.Fatalf("attested update decoded from a message of version %d", b[0])
			}
		}
		if re := encodeVersion(b[0], out); !bytes.Equal(re, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, re)
		}
		// With an intern function (the engine's path, which reuses
		// the previous entry's name when it repeats) the entries are
		// the same.
		interned, err := decodeInto(nil, b, limit, func(n []byte) (string, *origin) { return string(n), nil })
		if err != nil || !reflect.DeepEqual(interned, out) {
			t.Fatalf("interned decoding differs: %v\n%+v\n%+v", err, interned, out)
		}
	})
}

// FuzzReceive: any payload fed to an engine either is refused with
// ErrMalformed and changes nothing, or is processed without breaking the
// engine's invariants.
func FuzzReceive(f *testing.F) {
	f.Add(encodeMessage(sampleEntries()))
	f.Add(encodeMessage([]entry{{kind: kindUpdate, origin: "self", seqno: 9, metric: 1}}))
	f.Add(encodeMessage([]entry{{kind: kindRequest, origin: "self", seqno: 9, hopcnt: 1}}))
	f.Add(encodeMessage([]entry{{kind: kindUpdate, origin: "z", seqno: 1, metric: 10}, {kind: kindUpdate, origin: "z", seqno: 1, metric: DefaultInfinity}}))
	f.Add(encodeMessage([]entry{{kind: kindSummary, buckets: 1, count: 3, digest: 7}, {kind: kindResend, buckets: 1}}))
	f.Add([]byte{3, 0, 1})
	f.Add([]byte{4, 0, 0})
	f.Add(encodeVersion(wireVersion, []entry{attUpd("z", 1, 10, 1, "att:z/1"), attUpd("self", 9, 1, 1, "att:self/9"),
		attUpd("n", 3, 0, 0, "att:n/3"), attUpd("y", 2, 20, 2, "att:y/1"), {kind: kindAttest, origin: "y", seqno: 3, att: []byte("att:y/3")}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := New(Config{Self: "self", MaxRoutes: 8, MaxRoutesPerMessage: 8, Certifier: unsharedCert{&fakeCertifier{}, nil}})
		if err != nil {
			t.Fatal(err)
		}
		e.LinkUp(t0, "n", 10, false)
		e.LinkUp(t0, "m", 20, false)
		e.Ready()
		before, pending := e.Routes(), e.Pending()
		err = e.Receive(t0, "n", b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if !reflect.DeepEqual(before, e.Routes()) || e.HasReady() || e.Pending() != pending {
				t.Fatal("a malformed message changed the engine")
			}
			return
		}
		if got := len(e.Routes()); got > 8 {
			t.Fatalf("table holds %d destinations, bound 8", got)
		}
		for _, r := range e.Routes() {
			if r.Reachable && (r.NextHop != "n" && r.NextHop != "m" || r.Metric >= DefaultInfinity) {
				t.Fatalf("bad route %+v", r)
			}
		}
		e.Tick(t0.Add(time.Minute))
		for _, m := range e.Ready().Messages {
			if _, err := decodeMessage(m.Payload, 8); err != nil {
				t.Fatalf("engine emitted an undecodable message: %v", err)
			}
		}
	})
}

var t0 = time.Unix(1_700_000_000, 0)

// TestLargestMessageFitsAFrame: the largest message the engine may send
// fits the links layer's 64 KiB control frame.
func TestLargestMessageFitsAFrame(t *testing.T) {
	es := make([]entry, maxEntriesLimit)
	for i := range es {
		es[i] = entry{kind: kindUpdate, origin: strings.Repeat("n", MaxNameLen)}
	}
	if n := len(encodeMessage(es)); n > 65536 {
		t.Fatalf("largest message is %d bytes", n)
	}
}

// TestDecodeIntoReusesCleanBuffer: the engine decodes every message into
// one buffer whose entries are written field by field, so a message
// refused halfway must leave no field of its entries behind for the next
// one (an attestation's bytes on a later update, say).
func TestDecodeIntoReusesCleanBuffer(t *testing.T) {
	good := encodeMessage([]entry{
		{kind: kindAttest, origin: "a", seqno: 1, att: []byte("sig")},
		{kind: kindUpdate, origin: "a", seqno: 1, metric: 10, hops: 1},
		{kind: kindSummary, buckets: 2, bucket: 1, count: 3, digest: 9},
	})
	truncated := good[:len(good)-1]
	trailing := append(bytes.Clone(good), 0)
	next := []entry{
		{kind: kindUpdate, origin: "b", seqno: 2, metric: 20, hops: 2},
		{kind: kindRequest, origin: "c", seqno: 3, hopcnt: 4},
		{kind: kindResend, buckets: 4, bucket: 3},
	}
	for name, bad := range map[string][]byte{"truncated": truncated, "trailing": trailing} {
		buf := make([]entry, 0, 8)
		if _, err := decodeInto(buf, bad, 8, nil); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: err = %v, want ErrMalformed", name, err)
		}
		out, err := decodeInto(buf, encodeMessage(next), 8, nil)
		if err != nil || !reflect.DeepEqual(out, next) {
			t.Fatalf("after a %s message: %v\n got %+v\nwant %+v", name, err, out, next)
		}
	}
}
