package node

import (
	"context"
	"io"
	"testing"
	"time"
)

// BenchmarkOpenEcho opens a circuit with its first byte as early data,
// reads the byte back from the echo service and closes: one end-to-end
// round trip, over zero and one relay (a–r–b on loopback QUIC, key already
// cached), sealed (the default) and with end-to-end security off.
// go test -run '^$' -bench OpenEcho -benchtime 300x ./node/
func BenchmarkOpenEcho(b *testing.B) {
	for _, e2e := range []E2E{E2EOn, E2EOff} {
		b.Run("e2e="+e2e.String(), func(b *testing.B) { benchmarkOpenEcho(b, e2e) })
	}
}

func benchmarkOpenEcho(b *testing.B, e2e E2E) {
	c := newCluster(b, true)
	c.tweak = func(cfg *Config) { cfg.E2E = e2e }
	c.build("a-r", "r-b")
	c.waitRoute("a", "b", 2)
	a := c.nodes["a"]
	once := func(peer string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := a.DialWith(ctx, peer, EchoService, DialOptions{Early: true})
		if err != nil {
			return err
		}
		defer conn.Close()
		buf := []byte{'x'}
		if _, err := conn.Write(buf); err != nil {
			return err
		}
		_, err = io.ReadFull(conn, buf)
		return err
	}
	for _, peer := range []string{"r", "b"} {
		if err := once(peer); err != nil { // caches the key
			b.Fatal(err)
		}
	}
	for _, k := range []struct{ name, peer string }{{"k0", "r"}, {"k1", "b"}} {
		b.Run(k.name, func(b *testing.B) {
			for range b.N {
				if err := once(k.peer); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
