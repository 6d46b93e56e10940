package simulate

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Shape is the part of LinkParams beyond latency and loss: a bandwidth
// limit with a bounded queue, jitter, reordering and duplication. Each
// applies to each direction of a link separately, with the direction's own
// random stream (derived from the seed and the two names). Only the QUIC
// backend shapes packets; the mem backend refuses a non-zero Shape.
type Shape struct {
	// Bandwidth is the rate, in bits per second, at which each direction
	// sends: a packet leaves when the packets before it have (a token
	// bucket one packet deep), then travels for Latency. 0: unlimited.
	Bandwidth int64
	// Queue is how many bytes may wait for the transmitter of each
	// direction; a packet that does not fit is dropped (a tail-drop
	// queue). Default DefaultQueue when Bandwidth is set; without a
	// Bandwidth it must be 0.
	Queue int64
	// Jitter varies each packet's latency uniformly within ±Jitter (never
	// below 0). Packets still arrive in the order they were sent unless
	// Reorder picks them.
	Jitter time.Duration
	// Reorder is the probability, 0 to 1, that a packet is held back for
	// one more Latency (at least 1 ms), so packets sent after it overtake
	// it.
	Reorder float64
	// Duplicate is the probability, 0 to 1, that a packet arrives twice.
	Duplicate float64
}

// Bounds of a Shape.
const (
	// DefaultQueue is the queue of a link with a bandwidth and no queue=.
	DefaultQueue = 64 << 10
	// MaxQueue bounds the queue of one direction of a link.
	MaxQueue = 64 << 20
	// MinBandwidth is the slowest link: 1 kbit/s.
	MinBandwidth = 1000
)

// shapeKeys are the script options that set a Shape.
var shapeKeys = []string{"bandwidth", "queue", "jitter", "reorder", "dup"}

func (s Shape) validate() error {
	switch {
	case s.Bandwidth != 0 && s.Bandwidth < MinBandwidth:
		return fmt.Errorf("bandwidth %d bit/s is below %d", s.Bandwidth, MinBandwidth)
	case s.Queue < 0 || s.Queue > MaxQueue:
		return fmt.Errorf("queue %d bytes is not between 0 and %d", s.Queue, MaxQueue)
	case s.Queue != 0 && s.Bandwidth == 0:
		return fmt.Errorf("queue %d bytes without a bandwidth: no packet would wait in it (give a bandwidth as well)", s.Queue)
	case s.Jitter < 0:
		return fmt.Errorf("jitter %v is negative", s.Jitter)
	case !(s.Reorder >= 0 && s.Reorder <= 1):
		return fmt.Errorf("reorder %v is not between 0 and 1", s.Reorder)
	case !(s.Duplicate >= 0 && s.Duplicate <= 1):
		return fmt.Errorf("dup %v is not between 0 and 1", s.Duplicate)
	}
	return nil
}

// IsZero reports whether the shape changes nothing.
func (s Shape) IsZero() bool { return s == Shape{} }

// queue is the queue limit in bytes.
func (s Shape) queue() int64 {
	if s.Queue == 0 {
		return DefaultQueue
	}
	return s.Queue
}

// pathState is one direction of a link in the packet network: its
// transmitter and its packets in flight.
type pathState struct {
	// busyUntil is when the transmitter will have sent every queued
	// packet.
	busyUntil time.Time
	// lastArrival is when the latest in-order packet arrives; a packet
	// sent after it (without Reorder) does not arrive earlier.
	lastArrival time.Time
	// inOrder holds the in-order packets in flight, oldest first.
	inOrder fifo
}

// path returns the state of the path from → to. n.mu is held.
func (n *packetNet) path(from, to string) *pathState {
	key := [2]string{from, to}
	ps := n.inflight[key]
	if ps == nil {
		ps = &pathState{}
		n.inflight[key] = ps
	}
	return ps
}

// schedule sends one packet of from to the socket of node to through the
// path's transmitter (bandwidth and queue), then loss, latency, jitter,
// reordering and duplication, each drawn from the path's random stream.
// n.mu is held.
func (n *packetNet) schedule(from, to string, params LinkParams, b []byte, src net.Addr, conn *packetConn) {
	now := time.Now()
	ps := n.path(from, to)
	rng := n.pathRand(from, to)
	depart := now
	if bw := params.Bandwidth; bw > 0 {
		start := now
		if ps.busyUntil.After(now) {
			start = ps.busyUntil
		}
		// Bytes still waiting for the transmitter.
		backlog := int64(start.Sub(now).Seconds() * float64(bw) / 8)
		if backlog+int64(len(b)) > params.queue() {
			return // tail drop
		}
		ps.busyUntil = start.Add(time.Duration(float64(len(b)) * 8 / float64(bw) * float64(time.Second)))
		depart = ps.busyUntil
	}
	if params.Loss > 0 && rng.Float64() < params.Loss {
		return
	}
	delay := params.Latency
	if j := params.Jitter; j > 0 {
		delay = max(delay+time.Duration(rng.Int64N(2*int64(j)+1))-j, 0)
	}
	dup := params.Duplicate > 0 && rng.Float64() < params.Duplicate
	reorder := params.Reorder > 0 && rng.Float64() < params.Reorder
	pkt := packet{data: append([]byte(nil), b...), from: src}
	arrive := depart.Add(delay)
	if dup {
		n.deliverAt(from, to, arrive.Sub(now), func() packet { return pkt }, conn)
	}
	if reorder {
		held := max(params.Latency, time.Millisecond)
		n.deliverAt(from, to, arrive.Add(held).Sub(now), func() packet { return pkt }, conn)
		return
	}
	if arrive.Before(ps.lastArrival) {
		arrive = ps.lastArrival
	}
	ps.lastArrival = arrive
	if !arrive.After(now) && ps.inOrder.empty() {
		conn.deliver(pkt)
		return
	}
	// Timers due at the same instant may fire in any order; each firing
	// delivers the oldest in-order packet in flight, so the path keeps its
	// order.
	ps.inOrder.push(pkt)
	n.deliverAt(from, to, arrive.Sub(now), ps.inOrder.pop, conn)
}

// deliverAt hands the packet next() returns to conn after d, unless the
// path was cut, a node went down or the network closed meanwhile. n.mu is
// held.
func (n *packetNet) deliverAt(from, to string, d time.Duration, next func() packet, conn *packetConn) {
	n.timers.Add(1)
	time.AfterFunc(d, func() {
		defer n.timers.Done()
		pkt := next()
		n.mu.Lock()
		lost := n.closed || n.down[from] || n.down[to] || n.blocked[mkpair(from, to)]
		n.mu.Unlock()
		if !lost {
			conn.deliver(pkt)
		}
	})
}

// parseShapeOption sets the Shape option k (one of shapeKeys) of a
// script step.
func parseShapeOption(st *Step, k, v string) (err error) {
	s := &st.Params.Shape
	switch k {
	case "bandwidth":
		s.Bandwidth, err = parseBandwidth(v)
	case "queue":
		var q int64
		if q, err = parseSize(v); err == nil && q > MaxQueue {
			err = fmt.Errorf("a queue holds at most %dMiB", MaxQueue>>20)
		}
		s.Queue = q
	case "jitter":
		s.Jitter, err = parseDuration(v)
	case "reorder", "dup":
		f, perr := strconv.ParseFloat(v, 64)
		if perr != nil || !(f >= 0 && f <= 1) {
			err = fmt.Errorf("want a fraction from 0 to 1")
		}
		if k == "reorder" {
			s.Reorder = f
		} else {
			s.Duplicate = f
		}
	default:
		return fmt.Errorf("unknown option")
	}
	if err == nil {
		st.SetShape = append(st.SetShape, k)
	}
	return err
}

// setShape copies the shape options a set step names from st onto p.
func setShape(p *LinkParams, st Step) {
	for _, k := range st.SetShape {
		switch k {
		case "bandwidth":
			p.Bandwidth = st.Params.Bandwidth
		case "queue":
			p.Queue = st.Params.Queue
		case "jitter":
			p.Jitter = st.Params.Jitter
		case "reorder":
			p.Reorder = st.Params.Reorder
		case "dup":
			p.Duplicate = st.Params.Duplicate
		}
	}
}

// parseBandwidth accepts a rate in bits per second with an optional
// decimal unit: bit, kbit, Mbit, Gbit (10Mbit is 10,000,000 bit/s).
func parseBandwidth(v string) (int64, error) {
	num := strings.TrimRight(v, "bitkKMG")
	mult, ok := map[string]float64{"": 1, "bit": 1, "kbit": 1e3, "Kbit": 1e3, "Mbit": 1e6, "Gbit": 1e9}[v[len(num):]]
	f, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || !(f*mult >= MinBandwidth && f*mult <= 1e12) {
		return 0, fmt.Errorf("bad bandwidth %q: want 1kbit to 1000Gbit per second, such as 10Mbit, 512kbit or 1Gbit", v)
	}
	return int64(f * mult), nil
}
