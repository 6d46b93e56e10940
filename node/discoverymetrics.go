package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/circuitmesh/circuitmesh/node/topology"
)

// whyGone is the kind of a drop of a link this node dialled to a member
// gossip no longer shows alive.
const whyGone topology.Why = "gone"

// whyMute is the kind of a drop of a link over which routing heard nothing
// of its peer for the grace (discoverymute.go).
const whyMute topology.Why = "mute"

// discoveryMetrics count the links discovery makes and closes, by the
// policy's kind of decision (a fixed set of label values). They are
// registered with discovery, so a node without gossip does not export
// them.
type discoveryMetrics struct {
	added, dropped *prometheus.CounterVec
}

func newDiscoveryMetrics(reg prometheus.Registerer) (*discoveryMetrics, error) {
	m := &discoveryMetrics{
		added: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "circuitmesh_discovery_links_added_total",
			Help: "Links discovery dialled and the peer's certificate proved, by reason (target, long, repair, replace, shortcut)."}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "circuitmesh_discovery_links_dropped_total",
			Help: "Links discovery closed, by reason (max, which counts links refused at admission too; room, a redundant idle link closed at the maximum for a repair link; replace, gone; mute, a link over which routing heard nothing of its peer)."}, []string{"reason"}),
	}
	for _, w := range []topology.Why{topology.WhyTarget, topology.WhyLong, topology.WhyRepair, topology.WhyReplace, topology.WhyShortcut} {
		m.added.WithLabelValues(string(w)) // from zero, so rate() sees the first
	}
	for _, w := range []topology.Why{topology.WhyMax, topology.WhyRoom, topology.WhyReplace, whyGone, whyMute} {
		m.dropped.WithLabelValues(string(w))
	}
	for _, c := range []prometheus.Collector{m.added, m.dropped} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
