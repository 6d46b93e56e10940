package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/coordinate"
)

// wireCoord is a valid coordinate in its wire form, its vector filled
// with x.
func wireCoord(x float64) []float64 {
	v := make([]float64, 0, coordConfig.Dimensionality+3)
	for range coordConfig.Dimensionality {
		v = append(v, x)
	}
	return append(v, 0.5, 0, 1e-4)
}

func TestCoordFromWire(t *testing.T) {
	with := func(i int, x float64) []float64 {
		v := wireCoord(0.01)
		v[i] = x
		return v
	}
	dim := int(coordConfig.Dimensionality)
	cases := []struct {
		name string
		v    []float64
		ok   bool
	}{
		{"valid", wireCoord(0.01), true},
		{"negative components", wireCoord(-0.05), true},
		{"vector at the bound", wireCoord(coordVecMax / math.Sqrt(float64(dim)) * 0.999), true},
		{"vector beyond the bound", wireCoord(coordVecMax / math.Sqrt(float64(dim)) * 1.01), false},
		{"height at the minimum, as published", with(dim+2, math.Round(coordConfig.HeightMin/coordQuantum)*coordQuantum), true},
		{"height above the bound", with(dim+2, coordHeightMax*1.01), false},
		{"adjustment beyond the bound", with(dim+1, coordAdjustMax*1.01), false},
		{"NaN component", with(0, math.NaN()), false},
		{"+Inf component", with(3, math.Inf(1)), false},
		{"-Inf component", with(7, math.Inf(-1)), false},
		{"huge component", with(1, 1e300), false},
		{"component beyond the bound", with(2, coordVecMax*1.01), false},
		{"NaN error", with(dim, math.NaN()), false},
		{"negative error", with(dim, -0.1), false},
		{"error above the maximum", with(dim, coordConfig.VivaldiErrorMax+1), false},
		{"NaN adjustment", with(dim+1, math.NaN()), false},
		{"huge adjustment", with(dim+1, -1e12), false},
		{"height below the minimum", with(dim+2, 0), false},
		{"huge height", with(dim+2, 1e9), false},
		{"Inf height", with(dim+2, math.Inf(1)), false},
		{"too few values", wireCoord(0.01)[:dim+2], false},
		{"too many values", append(wireCoord(0.01), 0), false},
		{"empty", nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := coordFromWire(tc.v)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !c.IsValid() || len(c.Vec) != dim {
					t.Fatalf("accepted an unusable coordinate %+v", c)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted %v", tc.v)
			}
			if !errors.Is(err, errBadCoordinate) {
				t.Fatalf("error %v does not unwrap to errBadCoordinate", err)
			}
		})
	}
}

// The wire form keeps a coordinate to coordQuantum, and what a node
// publishes passes its own validation.
func TestCoordWireRoundTrip(t *testing.T) {
	c := coordinate.NewCoordinate(coordConfig)
	for i := range c.Vec {
		c.Vec[i] = 0.0123456789 * float64(i-3)
	}
	c.Error, c.Adjustment, c.Height = 0.37, -0.0004, 0.0021
	b, err := json.Marshal(coordWire(c))
	if err != nil {
		t.Fatal(err)
	}
	got := metaCoord(b)
	if got == nil {
		t.Fatalf("own coordinate %s refused", b)
	}
	if moved := coordMoved(c, got); moved > time.Duration(4*coordQuantum*float64(time.Second)) {
		t.Fatalf("the wire form moved the coordinate by %v", moved)
	}
	if len(b) > 200 {
		t.Errorf("wire form of %d bytes: the metadata limit is %d", len(b), memberlist.MetaMaxSize)
	}
	// Whole microseconds print as such, not as the float just beside.
	for _, v := range coordWire(c) {
		s := strconv.FormatFloat(v, 'f', -1, 64)
		if i := strings.IndexByte(s, '.'); i >= 0 && len(s)-i-1 > 6 {
			t.Errorf("wire value %s has more than 6 decimals: %s", s, b)
		}
	}
}

func TestShouldPublish(t *testing.T) {
	at := time.Unix(1000, 0)
	origin := coordinate.NewCoordinate(coordConfig)
	moved := func(by time.Duration) *coordinate.Coordinate {
		c := coordinate.NewCoordinate(coordConfig)
		c.Vec[0] = by.Seconds()
		return c
	}
	cases := []struct {
		name     string
		cur, pub *coordinate.Coordinate
		samples  int64
		members  int
		n        int
		since    time.Duration
		want     bool
	}{
		{"too few probes yet", moved(5 * time.Millisecond), nil, coordMinSamples - 1, coordMinMembers, 0, 0, false},
		{"enough probes, too few members", moved(5 * time.Millisecond), nil, coordMinSamples, coordMinMembers - 1, 0, 0, false},
		{"first", moved(5 * time.Millisecond), nil, coordMinSamples, coordMinMembers, 0, 0, true},
		{"moved, too soon", moved(20 * time.Millisecond), origin, 100, coordMinMembers, 1, coordEvery - time.Second, false},
		{"moved, after the gap", moved(20 * time.Millisecond), origin, 100, coordMinMembers, 1, coordEvery, true},
		{"moved too little", moved(coordMove / 2), origin, 100, coordMinMembers, 1, time.Hour, false},
		{"moved little against its distance", moved(200 * time.Millisecond), moved(190 * time.Millisecond), 100, coordMinMembers, 1, time.Hour, false},
		{"second gap doubles", moved(20 * time.Millisecond), origin, 100, coordMinMembers, 2, coordEvery + time.Second, false},
		{"second gap passed", moved(20 * time.Millisecond), origin, 100, coordMinMembers, 2, 2 * coordEvery, true},
		{"gap bounded", moved(20 * time.Millisecond), origin, 100, coordMinMembers, 40, coordEveryMax, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := shouldPublish(tc.cur, tc.pub, tc.samples, tc.members, tc.n, at, at.Add(tc.since)); got != tc.want {
				t.Fatalf("shouldPublish = %v, want %v", got, tc.want)
			}
		})
	}
}

// A member's gossip metadata with a bogus coordinate keeps the member
// (its link address stands) without a coordinate; a valid one is taken
// for that member only, whatever else the metadata says.
func TestBogusGossipCoordinatesRefused(t *testing.T) {
	d := &discovery{n: &Node{cfg: Config{Name: "a", Mesh: "test"}}, members: map[string]gossipMember{}}
	good := wireCoord(0.02)
	meta := func(coord string, extra string) []byte {
		return []byte(fmt.Sprintf(`{"link":"127.0.0.1:9","mesh":"test","coord":%s%s}`, coord, extra))
	}
	enc := func(v []float64) string { b, _ := json.Marshal(v); return string(b) }
	huge := slices.Clone(good)
	huge[0] = 1e300
	cases := map[string][]byte{
		"overflow":         meta("["+strings.Repeat("1e999,", 10)+"1e999]", ""),
		"huge":             meta(enc(huge), ""),
		"NaN as a string":  meta(`["NaN","NaN","NaN","NaN","NaN","NaN","NaN","NaN",1,0,1]`, ""),
		"wrong dimension":  meta(enc(good[:5]), ""),
		"an object":        meta(`{"Vec":[1,2,3,4,5,6,7,8],"Error":1,"Adjustment":0,"Height":1}`, ""),
		"oversized":        meta("["+strings.Repeat("0,", coordSize)+"0]", ""),
		"claims b as well": meta(enc(good), `,"name":"b","node":"b"`),
	}
	for name, m := range cases {
		d.record(&memberlist.Node{Name: name, Addr: net.IPv4(127, 0, 0, 2), Port: 7946, Meta: m})
	}
	d.record(&memberlist.Node{Name: "b", Addr: net.IPv4(127, 0, 0, 3), Port: 7946, Meta: []byte(`{"link":"127.0.0.1:10","mesh":"test"}`)})
	for name := range cases {
		gm, ok := d.members[name]
		if !ok || !gm.ok {
			t.Errorf("%s: member dropped (%+v): a bad coordinate should lose only itself", name, gm)
			continue
		}
		if name == "claims b as well" {
			if gm.coord == nil || gm.coord.Vec[0] != good[0] {
				t.Errorf("%s: valid coordinate not taken: %+v", name, gm.coord)
			}
			continue
		}
		if gm.coord != nil {
			t.Errorf("%s: accepted coordinate %+v", name, gm.coord)
		}
	}
	if c := d.members["b"].coord; c != nil {
		t.Errorf("b has coordinate %+v from another member's metadata", c)
	}
}

// prober is the discovery state of a node that takes probe results
// (NotifyPingComplete) into its own coordinate client vc.
func prober(t *testing.T) (*discovery, *coordinate.Client) {
	t.Helper()
	vc, err := coordinate.NewClient(coordConfig)
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{cfg: Config{Name: "prober", Mesh: "test"}, log: slog.New(slog.DiscardHandler)}
	return &discovery{n: n, vc: vc, coords: map[string]*coordinate.Coordinate{}, rtts: map[string]probeRTT{}}, vc
}

// A probe ack with a bogus coordinate neither enters the member table nor
// moves this node's own coordinate.
func TestBogusProbeCoordinateRefused(t *testing.T) {
	d, vc := prober(t)
	before := vc.GetCoordinate()
	c := coordinate.NewCoordinate(coordConfig)
	c.Vec[0] = 1e300
	huge, _ := json.Marshal(c)
	c.Vec[0], c.Height = 0, 1e9
	high, _ := json.Marshal(c)
	for _, payload := range [][]byte{huge, high, []byte(`{"Vec":[1,2],"Error":1,"Adjustment":0,"Height":1}`), []byte(`{"Vec":[1,2,3,4,5,6,7,8],"Error":-1,"Adjustment":0,"Height":1}`)} {
		d.NotifyPingComplete(&memberlist.Node{Name: "evil"}, 10*time.Millisecond, payload)
	}
	if len(d.coords) != 0 {
		t.Errorf("coordinates taken from bogus acks: %v", d.coords)
	}
	if d.samples.Load() != 0 || coordMoved(before, vc.GetCoordinate()) != 0 {
		t.Errorf("bogus acks moved this node's coordinate to %+v", vc.GetCoordinate())
	}
}

// A member's probe ack whose coordinate passes every bound but puts the
// member seconds away, while it answered in a millisecond, does not move
// this node's own coordinate (which the node then publishes to every
// member): a sample is taken only when the coordinate is within a few
// round trips of where the member answers from.
func TestImplausibleProbeSampleRefused(t *testing.T) {
	d, vc := prober(t)
	// Settle on 20 honest members about a millisecond away.
	honest := make([]*coordinate.Coordinate, 20)
	for i := range honest {
		c := coordinate.NewCoordinate(coordConfig)
		for j := range c.Vec {
			c.Vec[j] = 0.0001 * float64((i*7+j*3)%20)
		}
		c.Error, c.Height = 0.2, 1e-4
		honest[i] = c
	}
	for range 20 {
		for i, c := range honest {
			b, _ := json.Marshal(c)
			d.NotifyPingComplete(&memberlist.Node{Name: fmt.Sprint("h", i)}, time.Millisecond, b)
		}
	}
	before := vc.GetCoordinate()
	// The attacker: at the bounds, with full confidence (error 0).
	evil := coordinate.NewCoordinate(coordConfig)
	for j := range evil.Vec {
		evil.Vec[j] = coordVecMax / math.Sqrt(float64(len(evil.Vec)))
	}
	evil.Error, evil.Adjustment, evil.Height = 0, coordAdjustMax, coordHeightMax
	if err := checkCoordinate(evil); err != nil {
		t.Fatalf("the attacker's coordinate must pass the bounds for this test: %v", err)
	}
	b, _ := json.Marshal(evil)
	for range 3 {
		d.NotifyPingComplete(&memberlist.Node{Name: "evil"}, time.Millisecond, b)
	}
	if moved := coordMoved(before, vc.GetCoordinate()); moved > 0 {
		t.Errorf("three acks from 1 ms away claiming to be seconds away moved this node's coordinate by %v", moved)
	}
	if d.coords["evil"] != nil {
		t.Errorf("the implausible coordinate was kept for the member")
	}
	// What this node publishes and sends in its acks passes others' checks.
	own, _ := json.Marshal(coordWire(vc.GetCoordinate()))
	if metaCoord(own) == nil {
		t.Errorf("this node's coordinate %s is refused by its peers", own)
	}
	if _, err := decodeCoordinate(d.AckPayload()); err != nil {
		t.Errorf("this node's ack payload is refused: %v", err)
	}
}
