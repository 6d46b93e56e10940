package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/circuitmesh/circuitmesh/links"
)

// floodCollector exports the counters of the fair-share limits read at
// scrape time: inbound link handshakes refused or failed before the peer
// proved a certificate (links.HandshakeStats), QUIC packets dropped from
// addresses of no connection (links.QUICTransport.PathDrops), and circuit
// opens refused because a pending-open bound was reached.
type floodCollector struct {
	n                                 *Node
	hsRefused, hsFailed, hsRetries    *prometheus.Desc
	hsExcused                         *prometheus.Desc
	hsInProgress, pendingOpensRefused *prometheus.Desc
	stalledReset, circuitEvents       *prometheus.Desc
	pathDrops                         *prometheus.Desc
}

// handshakeStatser is implemented by transports that count inbound
// handshakes (the QUIC transport).
type handshakeStatser interface {
	HandshakeStats() links.HandshakeStats
	StalledStreams() uint64
	PathDrops() uint64
}

func newFloodCollector(n *Node) *floodCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &floodCollector{
		n:         n,
		hsRefused: d("circuitmesh_link_handshakes_refused_total", "Inbound link handshakes refused at their first packet, by reason (full, share, rate, node_rate).", "reason"),
		hsFailed:  d("circuitmesh_link_handshakes_failed_total", "Inbound link handshakes that took a slot and did not end in a link."),
		hsExcused: d("circuitmesh_link_handshakes_excused_total",
			"Inbound link handshakes counted in circuitmesh_link_handshakes_failed_total that a QUIC timeout ended before TLS completed while this node's own work was behind (the Go scheduler's wait to run), not held against their source prefix."),
		hsRetries:    d("circuitmesh_link_handshake_retries_total", "Inbound first packets answered with a QUIC Retry (address validation) because the node was busy."),
		hsInProgress: d("circuitmesh_link_handshakes_in_progress", "Inbound link handshakes holding a slot now."),
		pendingOpensRefused: d("circuitmesh_pending_opens_refused_total",
			"Circuit streams refused because the node's or their link's bound on open headers being read was reached."),
		circuitEvents: d("circuitmesh_circuit_events_total",
			"Circuit events a remote member can cause one per circuit, logged at most once a minute per peer with the count: relayed circuits ended by a bound (relay_bound), next hops tried by a dial that reached a node that could not prove it is the destination, once per next hop (impostor), circuits closed after their handshake because the policy denies their authenticated source (dial_denied).", "event"),
		pathDrops: d("circuitmesh_link_path_packets_dropped_total",
			"QUIC short-header packets dropped before QUIC read them because they came from an address of no connection of the node whose peer showed it receives there (links refuse QUIC path changes: a peer moving its link, a spoofed source)."),
		stalledReset: d("circuitmesh_stalled_circuits_reset_total",
			"Circuit streams reset (circuit.CloseStalled) because their reader made no progress while the stalled streams of their link could hold more than half of its receive window, or because the streams of their source held more than half of it unread."),
	}
}

func (c *floodCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.hsRefused, c.hsFailed, c.hsExcused, c.hsRetries, c.hsInProgress, c.pendingOpensRefused, c.stalledReset, c.circuitEvents, c.pathDrops} {
		ch <- d
	}
}

func (c *floodCollector) Collect(ch chan<- prometheus.Metric) {
	ctr := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	var st links.HandshakeStats
	var stalled, pathDrops uint64
	// The transport is set by Start; the metrics may be served before.
	if s, ok := c.n.transportNow().(handshakeStatser); ok {
		st = s.HandshakeStats()
		stalled = s.StalledStreams()
		pathDrops = s.PathDrops()
	}
	ctr(c.pathDrops, pathDrops)
	ctr(c.stalledReset, stalled)
	ctr(c.hsRefused, st.RefusedFull, "full")
	ctr(c.hsRefused, st.RefusedShare, "share")
	ctr(c.hsRefused, st.RefusedRate, "rate")
	ctr(c.hsRefused, st.RefusedNodeRate, "node_rate")
	ctr(c.hsFailed, st.Failed)
	ctr(c.hsExcused, st.Excused)
	ctr(c.hsRetries, st.Retries)
	ch <- prometheus.MustNewConstMetric(c.hsInProgress, prometheus.GaugeValue, float64(st.InProgress))
	ctr(c.pendingOpensRefused, c.n.limits.pendingRefused.Load())
	ctr(c.circuitEvents, c.n.limits.boundEnded.Load(), "relay_bound")
	ctr(c.circuitEvents, c.n.limits.impostors.Load(), "impostor")
	ctr(c.circuitEvents, c.n.limits.dialDenied.Load(), "dial_denied")
}
