package routing

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkResendEveryBucket measures answering a neighbour that asks for
// every bucket of its last summary again, as one that lost its table does:
// the cost of the messages of resend entries, not of the routes they
// cause to be sent.
func BenchmarkResendEveryBucket(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			e, err := New(Config{Self: "a", MaxRoutes: 2 * n})
			if err != nil {
				b.Fatal(err)
			}
			e.LinkUp(t0, "b", 10, false)
			e.LinkUp(t0, "m", 10, false)
			var ups []entry
			for i := range n {
				ups = append(ups, entry{kind: kindUpdate, origin: fmt.Sprintf("o%05d", i), seqno: 1, metric: 10, hops: 1})
				if len(ups) == DefaultMaxRoutesPerMessage || i == n-1 {
					if err := e.Receive(t0, "b", encodeMessage(ups)); err != nil {
						b.Fatal(err)
					}
					ups = ups[:0]
				}
			}
			// Tick until m has been sent a summary.
			nb := e.nbrs["m"]
			for at := t0; nb.sumBuckets == 0; at = at.Add(100 * time.Millisecond) {
				if at.Sub(t0) > time.Minute {
					b.Fatal("no summary sent to m within a minute")
				}
				e.Tick(at)
				e.Ready()
			}
			var msgs [][]byte
			var asks []entry
			for i := range nb.sumBuckets {
				asks = append(asks, entry{kind: kindResend, buckets: nb.sumBuckets, bucket: i})
				if len(asks) == DefaultMaxRoutesPerMessage || i == nb.sumBuckets-1 {
					msgs = append(msgs, encodeMessage(asks))
					asks = asks[:0]
				}
			}
			at := t0.Add(time.Minute)
			b.ReportMetric(float64(nb.sumBuckets), "buckets")
			for b.Loop() {
				clear(nb.answered)
				for _, m := range msgs {
					if err := e.Receive(at, "m", m); err != nil {
						b.Fatal(err)
					}
				}
				if len(nb.repair) != n+3 { // the routes, b, m and ourselves
					b.Fatalf("%d routes queued for resending, want %d", len(nb.repair), n+3)
				}
				clear(nb.repair)
			}
		})
	}
}
