package node

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// metrics are the node's Prometheus metrics, in a registry of the node's
// own so that many nodes can live in one process.
type metrics struct {
	reg              *prometheus.Registry
	links            prometheus.Gauge
	linkRefused      prometheus.Counter
	circuitsOpened   *prometheus.CounterVec // by role: dial, accept, relay
	circuitsRefused  *prometheus.CounterVec // by code
	circuitsActive   *prometheus.GaugeVec   // by role
	relayBytes       prometheus.Counter
	routingMalformed prometheus.Counter
	routingDropped   prometheus.Counter
	eventsDropped    prometheus.Counter

	// The per-role children, resolved once: opening and closing a circuit
	// must not hash label values on the relay path.
	dial, accept, relay roleMetrics
}

// roleMetrics are the circuit counters of one role (dial, accept, relay).
type roleMetrics struct {
	opened prometheus.Counter
	active prometheus.Gauge
}

func (m *metrics) roleOf(role string) roleMetrics {
	return roleMetrics{opened: m.circuitsOpened.WithLabelValues(role), active: m.circuitsActive.WithLabelValues(role)}
}

func newMetrics(n *Node) *metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &metrics{
		reg:   reg,
		links: prometheus.NewGauge(prometheus.GaugeOpts{Name: "circuitmesh_links", Help: "Live links to neighbours."}),
		linkRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: "circuitmesh_links_refused_total",
			Help: "Incoming links refused during the handshake."}),
		circuitsOpened: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "circuitmesh_circuits_opened_total",
			Help: "Circuits opened, by role (dial, accept, relay)."}, []string{"role"}),
		circuitsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "circuitmesh_circuits_refused_total",
			Help: "Circuits refused by this node, by result code (no_route, no_such_service, hop_limit_exceeded, refused_by_policy, overloaded, shutting_down, link_lost, internal_error)."}, []string{"code"}),
		circuitsActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "circuitmesh_circuits_active",
			Help: "Circuits open, by role."}, []string{"role"}),
		relayBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "circuitmesh_relay_bytes_total",
			Help: "Bytes forwarded by this node for relayed circuits (both directions)."}),
		routingMalformed: prometheus.NewCounter(prometheus.CounterOpts{Name: "circuitmesh_routing_malformed_total",
			Help: "Routing messages rejected as malformed."}),
		routingDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "circuitmesh_routing_dropped_total",
			Help: "Routing messages dropped because a control queue was full."}),
		eventsDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "circuitmesh_events_dropped_total",
			Help: "Events dropped because a subscriber's buffer was full."}),
	}
	for _, c := range []prometheus.Collector{m.links, m.linkRefused, m.circuitsOpened, m.circuitsRefused,
		m.circuitsActive, m.relayBytes, m.routingMalformed, m.routingDropped, m.eventsDropped} {
		f(c)
	}
	m.dial, m.accept, m.relay = m.roleOf("dial"), m.roleOf("accept"), m.roleOf("relay")
	for c := circuit.NoRoute; c <= circuit.Internal; c++ {
		m.circuitsRefused.WithLabelValues(codeLabel(c)) // every code from zero, so rate() sees the first
	}
	f(newStateCollector(n))
	f(newFloodCollector(n))
	f(buildInfo())
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// MetricsHandler serves the node's Prometheus metrics.
func (n *Node) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{})
}
