package routing

import (
	"fmt"
	"testing"
)

// BenchmarkDecode decodes a message shaped like those of a cold start: 64
// entries, names interned from a table; for half of the origins an
// attestation of 64 bytes followed by its update (separate), or as one
// attested update (attested), for the others an update alone. Per
// origin, attested decodes the same routes and attestations from fewer
// entries and bytes.
func BenchmarkDecode(b *testing.B) {
	for _, joint := range []bool{false, true} {
		var in []entry
		names := map[string]string{}
		for i := 0; len(in) < 64; i++ {
			name := fmt.Sprintf("n%04d", i)
			names[name] = name
			u := entry{kind: kindUpdate, origin: name, seqno: 7, metric: Metric(100 + i), hops: 3}
			switch {
			case i%2 != 0:
				in = append(in, u)
			case joint:
				u.kind, u.att = kindAttUpdate, make([]byte, 64)
				in = append(in, u)
			default:
				in = append(in, entry{kind: kindAttest, origin: name, seqno: 7, att: make([]byte, 64)}, u)
			}
		}
		in = in[:64]
		name := "separate"
		if joint {
			name = "attested"
		}
		b.Run(name, func(b *testing.B) {
			msg := encodeMessage(in)
			intern := func(n []byte) (string, *origin) { return names[string(n)], nil }
			var dst []entry
			b.SetBytes(int64(len(msg)))
			origins := 0
			for _, en := range in {
				if en.kind != kindAttest {
					origins++
				}
			}
			for b.Loop() {
				out, err := decodeInto(dst, msg, 64, intern)
				if err != nil || len(out) != 64 {
					b.Fatal(err, len(out))
				}
				clear(out)
				dst = out[:0]
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(origins), "ns/update")
		})
	}
}
