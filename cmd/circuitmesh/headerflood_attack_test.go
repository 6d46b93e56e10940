package main

import (
	"fmt"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// TestAttackPendingHeadersHoldDaemonMemory: a stranger who reaches the
// --metrics port (or the mesh page's, served the same way) opens the 64
// connections the bounds allow, 8 from each of 8 addresses, and on each
// sends a request header of about 1 MiB made of short lines with distinct
// field names ("h00001:", "h00002:", ...), without the blank line that
// ends the header. The server parses the header as it arrives and keeps
// every field in the request's header map (over 100 bytes each). With
// net/http's default bound of 1 MiB each connection held some 17 MiB of
// the daemon's memory until the 10 s header timeout (135 and 144 MiB for
// one address's 8 in two runs, about 1 GiB for 8 addresses or 8 IPv6
// /64s), and the attacker opened the next 64 as soon as those closed. The
// header is bounded at 8 KiB now (httpserve.Limits.MaxHeaderBytes): the
// test sends one address's 8 and measures the daemon's heap.
func TestAttackPendingHeadersHoldDaemonMemory(t *testing.T) {
	addr := serveTestMetrics(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "circuitmesh_up 1") }))

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	// The header: just under net/http's default limit of 1 MiB + 4 KiB.
	hdr := []byte("GET /metrics HTTP/1.1\r\nHost: x\r\n")
	for n := 0; n < (1<<20)/8; n++ {
		hdr = fmt.Appendf(hdr, "h%05x:\n", n)
	}
	// One address's share (8); eight addresses, or eight IPv6 /64s, take
	// all 64 places, eight times as much.
	const sources, perSource = 1, 8
	conns := make([]net.Conn, 0, sources*perSource)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	start := time.Now()
	errs := make(chan error, sources*perSource)
	for s := range sources {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+s))}, Timeout: 5 * time.Second}
		for range perSource {
			c, err := d.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			go func() {
				_, err := c.Write(hdr)
				errs <- err
			}()
		}
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Fatalf("sending a header: %v", err)
		}
	}
	t.Logf("%d headers of %d bytes sent in %v", len(conns), len(hdr), time.Since(start))
	// The daemon parses what was sent within the header timeout; look at
	// its heap until it stops growing (or 8 s have passed).
	var held int64
	limit := int64(len(conns)) << 20 // generous: 1 MiB a connection, the bytes sent themselves
	for time.Since(start) < 8*time.Second {
		time.Sleep(500 * time.Millisecond)
		runtime.GC()
		var during runtime.MemStats
		runtime.ReadMemStats(&during)
		now := int64(during.HeapInuse) - int64(before.HeapInuse)
		if now > limit && now < held+held/20 {
			held = max(held, now)
			break
		}
		held = max(held, now)
	}
	t.Logf("%d connections from one address, each with an unfinished header of about 1 MiB: the daemon holds %.1f MiB more heap after %v",
		len(conns), float64(held)/(1<<20), time.Since(start).Round(time.Millisecond))
	if held > limit {
		t.Fatalf("a stranger's %d connections with unfinished headers hold %.1f MiB of the daemon's heap, over %d MiB (1 MiB a connection); the 64 the bounds allow would hold %.0f MiB",
			len(conns), float64(held)/(1<<20), limit>>20, float64(held)/(1<<20)*64/float64(len(conns)))
	}
}
