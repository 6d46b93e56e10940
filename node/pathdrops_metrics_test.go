package node

import (
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// QUIC short-header packets from an address of no connection (a peer
// moving its link, a spoofed source) are dropped by the link layer before
// QUIC reads them, and the node's metrics count them, so an operator sees
// such traffic.
func TestPathDropsInMetrics(t *testing.T) {
	c := newCluster(t, true)
	d := c.add("d")
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	to, err := net.ResolveUDPAddr("udp", d.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// A short header (first bit 0, fixed bit 1), a connection ID, then
	// bytes no connection of d can open.
	pkt := append([]byte{0x40}, make([]byte, 40)...)
	const sent = 20
	for range sent {
		if _, err := udp.WriteToUDP(pkt, to); err != nil {
			t.Fatal(err)
		}
	}
	var last string
	waitFor(t, "d's metrics to count the dropped packets", 30*time.Second, func() bool {
		rec := httptest.NewRecorder()
		d.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		for _, line := range strings.Split(rec.Body.String(), "\n") {
			if v, ok := strings.CutPrefix(line, "circuitmesh_link_path_packets_dropped_total "); ok {
				last = line
				n, err := strconv.ParseFloat(v, 64)
				return err == nil && n >= sent
			}
		}
		return false
	})
	t.Logf("after %d stray packets: %s", sent, last)
}
