package node

import (
	"net/http"
	"sync"
	"time"

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
	relayBytes       *relayBytes
	openSeconds      *prometheus.HistogramVec // dial to result, by result
	linkRTT          prometheus.Histogram
	routingMalformed prometheus.Counter
	routingDropped   prometheus.Counter
	eventsDropped    prometheus.Counter
	resume           resumeMetrics

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
			Help: "Incoming links refused during the handshake: by this node, or by the peer refusing this node's certificate in TLS."}),
		circuitsOpened: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "circuitmesh_circuits_opened_total",
			Help: "Circuits opened, by role (dial, accept, relay)."}, []string{"role"}),
		circuitsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "circuitmesh_circuits_refused_total",
			Help: "Circuits refused by this node, by result code (no_route, no_such_service, hop_limit_exceeded, refused_by_policy, overloaded, shutting_down, link_lost, internal_error)."}, []string{"code"}),
		circuitsActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "circuitmesh_circuits_active",
			Help: "Circuits open, by role."}, []string{"role"}),
		relayBytes: newRelayBytes(),
		openSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "circuitmesh_circuit_open_seconds",
			Help:    "Time from Dial to the circuit's result (one round trip to the destination), by result (accepted, a refusal code, error).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15)}, []string{"result"}),
		linkRTT: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "circuitmesh_link_rtt_sampled_seconds",
			Help:    "Smoothed round-trip time of every link, sampled once a second.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		routingMalformed: prometheus.NewCounter(prometheus.CounterOpts{Name: "circuitmesh_routing_malformed_total",
			Help: "Routing messages rejected as malformed."}),
		routingDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "circuitmesh_routing_dropped_total",
			Help: "Routing messages dropped because a control queue was full."}),
		eventsDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "circuitmesh_events_dropped_total",
			Help: "Events dropped because a subscriber's buffer was full."}),
	}
	for _, c := range []prometheus.Collector{m.links, m.linkRefused, m.circuitsOpened, m.circuitsRefused,
		m.circuitsActive, m.relayBytes, m.openSeconds, m.linkRTT, m.routingMalformed, m.routingDropped, m.eventsDropped} {
		f(c)
	}
	m.dial, m.accept, m.relay = m.roleOf("dial"), m.roleOf("accept"), m.roleOf("relay")
	m.resume = newResumeMetrics(reg)
	m.openSeconds.WithLabelValues(codeLabel(circuit.Accepted))
	for c := circuit.NoRoute; c <= circuit.Internal; c++ {
		m.circuitsRefused.WithLabelValues(codeLabel(c)) // every code from zero, so rate() sees the first
	}
	f(newStateCollector(n))
	f(newFloodCollector(n))
	for _, c := range processCollectors() {
		f(c)
	}
	return m
}

// processCollectors are the collectors of what every node of a process
// shares (the Go runtime, the process, the build), created once and
// registered in each node's registry: a process of a thousand nodes keeps
// one set of them, not a thousand.
var processCollectors = sync.OnceValue(func() []prometheus.Collector {
	return []prometheus.Collector{
		buildInfo(),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
})

// MetricsHandler serves the node's Prometheus metrics.
func (n *Node) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{})
}

// relayBytes is circuitmesh_relay_bytes_total: bytes relayed for others,
// counted as they move. Each running relay's splice counts into counters
// of its own (no shared cache line on the copy path); a scrape adds them
// to the totals of the relays that ended. Bounded by the relays the limits
// admit.
type relayBytes struct {
	desc  *prometheus.Desc
	mu    sync.Mutex
	ended [2]int64 // up, down
	live  map[*circuit.SpliceCounters]struct{}
}

func newRelayBytes() *relayBytes {
	return &relayBytes{
		desc: prometheus.NewDesc("circuitmesh_relay_bytes_total",
			"Bytes forwarded by this node for relayed circuits as they move, by direction (up: toward the destination, down: toward the source).",
			[]string{"direction"}, nil),
		live: make(map[*circuit.SpliceCounters]struct{}),
	}
}

// start returns the counters of a new relay's splice.
func (r *relayBytes) start() *circuit.SpliceCounters {
	c := new(circuit.SpliceCounters)
	r.mu.Lock()
	r.live[c] = struct{}{}
	r.mu.Unlock()
	return c
}

// end moves the counts of a relay whose splice returned into the totals.
func (r *relayBytes) end(c *circuit.SpliceCounters) {
	r.mu.Lock()
	delete(r.live, c)
	r.ended[0] += c.Up.Load()
	r.ended[1] += c.Down.Load()
	r.mu.Unlock()
}

func (r *relayBytes) Describe(ch chan<- *prometheus.Desc) { ch <- r.desc }

func (r *relayBytes) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	up, down := r.ended[0], r.ended[1]
	for c := range r.live {
		up += c.Up.Load()
		down += c.Down.Load()
	}
	r.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(r.desc, prometheus.CounterValue, float64(up), "up")
	ch <- prometheus.MustNewConstMetric(r.desc, prometheus.CounterValue, float64(down), "down")
}

// observeOpen records how long a dial took to learn its result.
func (m *metrics) observeOpen(start time.Time, err error) {
	result := codeLabel(circuit.Accepted)
	if err != nil {
		result = resultLabel(err)
	}
	m.openSeconds.WithLabelValues(result).Observe(time.Since(start).Seconds())
}

// linkRTTEvery is how often every link's RTT goes into the
// circuitmesh_link_rtt_sampled_seconds histogram.
const linkRTTEvery = time.Second

// sampleLinkRTT feeds every link's smoothed RTT into the RTT histogram
// once a linkRTTEvery until the node closes.
func (n *Node) sampleLinkRTT() {
	t := time.NewTicker(linkRTTEvery)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		n.mu.Lock()
		for _, l := range n.links {
			n.metrics.linkRTT.Observe(l.Quality().RTT.Seconds())
		}
		n.mu.Unlock()
	}
}
