package node

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/serf/coordinate"
)

// A node's Vivaldi coordinate spreads by gossip: each node publishes its
// own in its gossip metadata (memberMeta.Coord), which memberlist carries
// to every member with the rest of the node's state (its alive messages,
// and the full state a join or push-pull exchanges). memberlist keys a
// member's metadata by the member's name; a forged alive message about a
// member replaces it until the member refutes it with its own
// (docs/SECURITY.md). A coordinate from gossip is an
// estimate of the member's position; the node's own probes of the member
// (the round trip, and the coordinate the ack carries) override it.

// The wire form of a coordinate in gossip metadata: the vector, then the
// error, the adjustment and the height, each in seconds (the error is a
// ratio) rounded to coordQuantum.
const (
	coordQuantum = 1e-6
	// Bounds on a coordinate taken from the wire (a probe ack or gossip
	// metadata), in seconds: its vector's length, its adjustment and its
	// height. They are far beyond any round trip a mesh measures (a
	// round trip half way round the earth is about 0.3 s) and keep a
	// member from placing itself where distances swamp everyone else's.
	coordVecMax    = 2.0
	coordAdjustMax = 1.0
	coordHeightMax = 1.0
	// A probe's sample is refused when the member's coordinate puts it
	// further from this node than coordSampleSlack times the measured
	// round trip plus coordSampleFloor: an honest member's coordinate
	// may be wrong while coordinates settle, but not by that much, and a
	// sample that passes moves this node's coordinate by at most about
	// the round trip (a Vivaldi step moves it by at most a quarter of
	// the difference between the predicted and the measured round trip).
	coordSampleSlack = 4
	coordSampleFloor = 50 * time.Millisecond
)

// Publishing: a node publishes its coordinate once coordMinSamples probes
// have moved it from the origin, then again when it has moved by at
// least coordMove (and by coordMoveRatio of its distance from the
// origin), coordEvery after the first publication, then twice as long
// after each (up to coordEveryMax): a coordinate settles within minutes,
// and each publication is an alive message that gossip carries to every
// member, which each member passes on several times. Push-pull and joins
// carry the latest to members that missed it. On the simulator (100
// nodes) the minute after the joins carried 3.2 times the gossip
// datagrams (5.8 times the bytes) of no publication when the second
// publication came 30 s after the first: both fell in that minute. With
// coordEvery at 2 min the minute after a mass join carries one
// publication per node; the first, the one that tells members far from
// near, is as early as before.
// The first publication comes after coordMinSamples (4) probes of at
// least coordMinMembers (3) different members, so that one member's
// answers are at most half of what the first coordinate rests on, checked
// every coordCheck (1 s): on the simulator (30 nodes in three regions,
// TestDiscoverCoordinatesEarly) 92 % of the (node, member) pairs knew a
// coordinate 6 s after every pair was reachable, against 21 % after 8
// probes checked every 5 s. The bounds on a coordinate taken from the
// wire do not depend on it.
const (
	coordMinSamples = 4
	coordMinMembers = 3
	coordMove       = 2 * time.Millisecond
	coordMoveRatio  = 0.1
	coordEvery      = 2 * time.Minute
	coordEveryMax   = 32 * time.Minute
	coordCheck      = time.Second
)

// coordGap is the least time after the n-th publication (n ≥ 1) before
// the next.
func coordGap(n int) time.Duration {
	return min(coordEvery<<min(n-1, 10), coordEveryMax)
}

var coordConfig = coordinate.DefaultConfig()

// coordWire is a coordinate in its wire form (nil for nil).
func coordWire(c *coordinate.Coordinate) []float64 {
	if c == nil {
		return nil
	}
	// Divided by the exact constant 1/coordQuantum, not multiplied by
	// coordQuantum: the nearest float to n µs prints as such (0.028184,
	// not 0.028183999999999997), which keeps the wire form short.
	q := func(x float64) float64 { return math.Round(x/coordQuantum) / (1 / coordQuantum) }
	out := make([]float64, 0, len(c.Vec)+3)
	for _, v := range c.Vec {
		out = append(out, q(v))
	}
	return append(out, q(c.Error), q(c.Adjustment), q(c.Height))
}

// coordFromWire validates a coordinate in its wire form (checkCoordinate).
func coordFromWire(v []float64) (*coordinate.Coordinate, error) {
	dim := int(coordConfig.Dimensionality)
	if len(v) != dim+3 {
		return nil, fmt.Errorf("%w: %d values, want %d", errBadCoordinate, len(v), dim+3)
	}
	c := &coordinate.Coordinate{Vec: append([]float64(nil), v[:dim]...), Error: v[dim], Adjustment: v[dim+1], Height: v[dim+2]}
	if err := checkCoordinate(c); err != nil {
		return nil, err
	}
	return c, nil
}

// checkCoordinate refuses a coordinate this node cannot use: another
// dimension, a value that is not finite, a vector longer than
// coordVecMax, an adjustment beyond ±coordAdjustMax, an error outside
// [0, VivaldiErrorMax], a height outside [HeightMin, coordHeightMax]
// (HeightMin less half a quantum: the wire form rounds it).
func checkCoordinate(c *coordinate.Coordinate) error {
	if len(c.Vec) != int(coordConfig.Dimensionality) {
		return fmt.Errorf("%w: dimension %d", errBadCoordinate, len(c.Vec))
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	var norm float64
	for _, x := range c.Vec {
		if !finite(x) || math.Abs(x) > coordVecMax {
			return fmt.Errorf("%w: component %v", errBadCoordinate, x)
		}
		norm += x * x
	}
	switch {
	case math.Sqrt(norm) > coordVecMax:
		return fmt.Errorf("%w: vector of length %.3g s", errBadCoordinate, math.Sqrt(norm))
	case !finite(c.Error) || c.Error < 0 || c.Error > coordConfig.VivaldiErrorMax:
		return fmt.Errorf("%w: error %v", errBadCoordinate, c.Error)
	case !finite(c.Adjustment) || math.Abs(c.Adjustment) > coordAdjustMax:
		return fmt.Errorf("%w: adjustment %v", errBadCoordinate, c.Adjustment)
	case !finite(c.Height) || c.Height < coordConfig.HeightMin-coordQuantum/2 || c.Height > coordHeightMax:
		return fmt.Errorf("%w: height %v", errBadCoordinate, c.Height)
	}
	return nil
}

// plausibleSample reports whether a probe's sample, a member at
// coordinate c answering in rtt, may update this node's coordinate own:
// c may not put the member further than coordSampleSlack round trips
// (plus coordSampleFloor) away.
func plausibleSample(own, c *coordinate.Coordinate, rtt time.Duration) bool {
	if !own.IsCompatibleWith(c) {
		return false
	}
	return own.DistanceTo(c) <= coordSampleSlack*rtt+coordSampleFloor
}

// coordMoved is how far coordinate b is from a: the distance of their
// vectors plus the difference of their heights (not DistanceTo, which
// adds both heights: a coordinate is not at distance 0 from itself).
func coordMoved(a, b *coordinate.Coordinate) time.Duration {
	var s float64
	for i := range min(len(a.Vec), len(b.Vec)) {
		d := a.Vec[i] - b.Vec[i]
		s += d * d
	}
	return time.Duration((math.Sqrt(s) + math.Abs(a.Height-b.Height)) * float64(time.Second))
}

// coordNorm is a coordinate's distance from the origin.
func coordNorm(c *coordinate.Coordinate) time.Duration {
	return coordMoved(c, coordinate.NewCoordinate(coordConfig))
}

// shouldPublish reports whether a node whose coordinate is cur, after
// samples probe updates from members different members, publishes it
// now, having published n times, the last pub (nil: none) at at.
func shouldPublish(cur, pub *coordinate.Coordinate, samples int64, members, n int, at, now time.Time) bool {
	if samples < coordMinSamples || members < coordMinMembers {
		return false
	}
	if pub == nil || n == 0 {
		return true
	}
	if now.Sub(at) < coordGap(n) {
		return false
	}
	moved := coordMoved(pub, cur)
	return moved >= coordMove && float64(moved) >= coordMoveRatio*float64(coordNorm(cur))
}

// coordLoop publishes this node's coordinate in its gossip metadata when
// shouldPublish says so; it ends when the node closes.
func (d *discovery) coordLoop() {
	d.every(coordCheck, func() {
		now := time.Now()
		cur := d.vc.GetCoordinate()
		d.mu.Lock()
		pub, at, count, members := d.published, d.publishedAt, d.publishedN, len(d.sampledFrom)
		d.mu.Unlock()
		if checkCoordinate(cur) != nil || !shouldPublish(cur, pub, d.samples.Load(), members, count, at, now) {
			return
		}
		d.mu.Lock()
		d.published, d.publishedAt, d.publishedN = cur, now, count+1
		d.mu.Unlock()
		// UpdateNode calls NodeMeta, which publishes d.published; it
		// waits for the alive message's broadcast, at most a second.
		if err := d.ml.UpdateNode(time.Second); err != nil {
			d.n.log.Debug("gossip metadata update", "err", err)
		}
	})
}

// metaCoord is the coordinate a member's metadata carries, nil when it
// carries none or one that fails coordFromWire (the member's other
// metadata stands).
func metaCoord(raw json.RawMessage) *coordinate.Coordinate {
	if len(raw) == 0 || len(raw) > coordSize {
		return nil
	}
	var v []float64
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	c, err := coordFromWire(v)
	if err != nil {
		return nil
	}
	return c
}

// Coordinates reports how many of the members gossip knows (this node
// excluded) this node has a network coordinate for, from gossip or its
// own probes, and how many of them its own probes measured a round trip
// to. Without discovery all are 0.
func (n *Node) Coordinates() (known, probed, members int) {
	d := n.discoNow()
	if d == nil {
		return 0, 0, 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, m := range d.members {
		if name == n.cfg.Name || !m.ok {
			continue
		}
		members++
		if d.coords[name] != nil || m.coord != nil {
			known++
		}
		if d.rtts[name].rtt() > 0 {
			probed++
		}
	}
	return known, probed, members
}
