package node

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// BenchmarkRelayHopRTT echoes one byte back and forth on established
// streams and circuits: a quic-go stream to an echo server (direct) and
// through a relay that io.Copies it to the next hop (naive_k1), and
// circuits a–r (k0) and a–r–b (k1) with end-to-end security off (clear)
// and on (sealed, not resumable), the kinds taking turns so that they share
// the machine's load alike. It reports each kind's median round trip in µs
// and what one relay adds to it against what the naive relay adds:
// hop/naive_hop is (k1 − k0) / (naive_k1 − direct) in median round trip,
// for clear and sealed circuits, and clear-hop-cpu/naive_hop-cpu the same
// ratio in the process's CPU per echo (clear circuits):
// go test -run '^$' -bench RelayHopRTT -benchtime 4000x ./node/
func BenchmarkRelayHopRTT(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	direct, naive := openEchoBaselines(b, ctx, &wg)
	sealed, clear := openEchoCluster(b, E2EOn), openEchoCluster(b, E2EOff)
	type kind struct {
		name string
		conn io.ReadWriter
		lat  []float64
		cpu  time.Duration
	}
	var kinds []*kind
	for _, q := range []struct {
		name string
		open func() (io.ReadWriteCloser, error)
	}{
		{"direct", func() (io.ReadWriteCloser, error) { return direct.OpenStreamSync(ctx) }},
		{"naive_k1", func() (io.ReadWriteCloser, error) { return naive.OpenStreamSync(ctx) }},
		{"k0clear", func() (io.ReadWriteCloser, error) {
			return clear.DialWith(ctx, "r", EchoService, DialOptions{NoResume: true})
		}},
		{"k1clear", func() (io.ReadWriteCloser, error) {
			return clear.DialWith(ctx, "b", EchoService, DialOptions{NoResume: true})
		}},
		{"k0", func() (io.ReadWriteCloser, error) {
			return sealed.DialWith(ctx, "r", EchoService, DialOptions{NoResume: true})
		}},
		{"k1", func() (io.ReadWriteCloser, error) {
			return sealed.DialWith(ctx, "b", EchoService, DialOptions{NoResume: true})
		}},
	} {
		c, err := q.open()
		if err != nil {
			b.Fatalf("%s: %v", q.name, err)
		}
		defer c.Close()
		for range 10 { // warm
			if err := echoOne(c); err != nil {
				b.Fatalf("%s: %v", q.name, err)
			}
		}
		kinds = append(kinds, &kind{name: q.name, conn: c})
	}
	b.ResetTimer()
	for i := range b.N {
		for j := range kinds {
			k := kinds[(i+j)%len(kinds)]
			cpu0, t := processCPU(), time.Now()
			if err := echoOne(k.conn); err != nil {
				b.Fatalf("%s: %v", k.name, err)
			}
			k.lat = append(k.lat, float64(time.Since(t).Nanoseconds())/1e3)
			k.cpu += processCPU() - cpu0
		}
	}
	b.StopTimer()
	med, cpu := map[string]float64{}, map[string]float64{}
	for _, k := range kinds {
		slices.Sort(k.lat)
		med[k.name] = k.lat[len(k.lat)/2]
		cpu[k.name] = float64(k.cpu.Nanoseconds()) / 1e3 / float64(b.N)
		b.ReportMetric(med[k.name], k.name+"-µs")
	}
	naiveHop, naiveCPU := med["naive_k1"]-med["direct"], cpu["naive_k1"]-cpu["direct"]
	if naiveHop > 0 {
		b.ReportMetric((med["k1clear"]-med["k0clear"])/naiveHop, "clear-hop/naive_hop")
		b.ReportMetric((med["k1"]-med["k0"])/naiveHop, "sealed-hop/naive_hop")
	}
	if naiveCPU > 0 {
		b.ReportMetric((cpu["k1clear"]-cpu["k0clear"])/naiveCPU, "clear-hop-cpu/naive_hop-cpu")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkReclaimKey names a relayed open's source for the links'
// reclaim, three hops out: by its checked path (reclaimSource, a hash)
// and, for comparison, by the string of the source as claimed by the
// neighbour (the string the reclaim used before it keyed by path):
// go test -run '^$' -bench ReclaimKey -benchmem ./node/
func BenchmarkReclaimKey(b *testing.B) {
	o := &circuit.Open{Dest: "dest-node", Source: "source-node", Hop: 3, Path: []string{"relay-one", "relay-two", "relay-three"}}
	b.Run("path", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = reclaimSource(o)
		}
	})
	b.Run("neighbour_string", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = fmt.Sprintf("%s (as claimed by %s)", o.Source, o.Path[len(o.Path)-1])
		}
	})
}
