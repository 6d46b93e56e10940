package routing

import (
	"fmt"
	"testing"
)

// BenchmarkDecode decodes a message shaped like those of a cold start: 64
// entries, attestations of 64 bytes each followed by their update for
// half of them, updates alone for the others, names interned from a table.
func BenchmarkDecode(b *testing.B) {
	var in []entry
	names := map[string]string{}
	for i := 0; len(in) < 64; i++ {
		name := fmt.Sprintf("n%04d", i)
		names[name] = name
		if i%2 == 0 {
			in = append(in, entry{kind: kindAttest, origin: name, seqno: 7, att: make([]byte, 64)})
		}
		in = append(in, entry{kind: kindUpdate, origin: name, seqno: 7, metric: Metric(100 + i), hops: 3})
	}
	in = in[:64]
	msg := encodeMessage(in)
	intern := func(n []byte) (string, *origin) { return names[string(n)], nil }
	var dst []entry
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		out, err := decodeInto(dst, msg, 64, intern)
		if err != nil || len(out) != 64 {
			b.Fatal(err, len(out))
		}
		clear(out)
		dst = out[:0]
	}
}
