package simulate

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseGossipSteps(t *testing.T) {
	s, err := Parse("g", `regions eu:n1..n3,x us:n4 inside=2ms between=40ms
discover seed=n1 nodes=n2..n4,x order=random
wait members timeout=30s
wait reachable
partition {n1,n2} {n3,n4,x}
heal
measure
expect route n1 x within=1s
`)
	if err != nil {
		t.Fatal(err)
	}
	ops := []Op{}
	for _, st := range s.Steps {
		ops = append(ops, st.Op)
	}
	if want := []Op{OpRegions, OpDiscover, OpWaitMembers, OpWaitReachable, OpPartition, OpHeal, OpMeasure, OpExpectRoute}; !reflect.DeepEqual(ops, want) {
		t.Fatalf("ops %v, want %v", ops, want)
	}
	u := s.Steps[0].Underlay
	if u.Region["x"] != "eu" || u.Region["n4"] != "us" || u.Inside != 2*time.Millisecond || u.Latency("n1", "n4") != 40*time.Millisecond {
		t.Errorf("underlay %+v", u)
	}
	d := s.Steps[1]
	if !reflect.DeepEqual(d.Nodes, []string{"n1", "n2", "n3", "n4", "x"}) || d.Order != "random" {
		t.Errorf("discover nodes %v order %q", d.Nodes, d.Order)
	}
	if s.Steps[2].Duration != 30*time.Second || s.Steps[3].Duration != DefaultGossipTimeout {
		t.Errorf("timeouts %v, %v", s.Steps[2].Duration, s.Steps[3].Duration)
	}
	if !OpDiscover.changesTopology() || !OpRegions.changesTopology() || OpMeasure.changesTopology() {
		t.Errorf("discover and regions change the topology, measure does not")
	}
	if OpWaitReachable.String() != "wait reachable" {
		t.Errorf("op name %q", OpWaitReachable)
	}
}

func TestParseGossipErrors(t *testing.T) {
	for _, tc := range []struct {
		src  string
		line int
		msg  string
	}{
		{"discover nodes=a,b", 1, "want discover seed=NODE nodes=NODES"},
		{"discover seed=a", 1, "want discover seed=NODE nodes=NODES"},
		{"discover seed=a nodes=b order=size", 1, "order=name or order=random"},
		{"discover seed=a nodes=b colour=red", 1, "does not take colour="},
		{"discover seed=a nodes=b seed=a", 1, "given twice"},
		{"discover seed=a nodes=b..c", 1, "range"},
		{"discover seed=a nodes=b,b", 1, "declared twice"},
		{"nodes a\ndiscover seed=a nodes=b", 2, "runs without gossip"},
		{"nodes b\ndiscover seed=a nodes=b", 2, "declared twice"},
		{"discover seed=a nodes=b\ndiscover seed=c nodes=d", 2, "one seed per scenario"},
		{"discover seed=A nodes=b", 1, "bad node name"},
		{"discover seed=a nodes=x1..x5000", 1, "more than 5000 nodes"},
		{"wait members", 1, "needs nodes started by discover"},
		{"discover seed=a nodes=b\nwait reachable timeout=1h", 2, "timeout=1h"},
		{"discover seed=a nodes=b\nwait converged", 2, "use wait reachable"},
		{"discover seed=a nodes=b\nwait members within=1s", 2, "does not take within="},
		{"regions", 1, "want regions NAME:NODES"},
		{"regions eu", 1, "bad region"},
		{"regions eu:a us:a", 1, "in regions eu and us"},
		{"regions eu:a eu:b", 1, "region eu given twice"},
		{"regions eu:a between=80ms..30ms", 1, "increasing range"},
		{"regions eu:a between=fast", 1, "increasing range"},
		{"regions eu:a inside=-1ms", 1, "inside=-1ms"},
		{"regions eu:a seed=-1", 1, "non-negative integer"},
		{"regions eu:a loss=0.1", 1, "does not take loss="},
		{"regions eu:a\nregions us:b", 2, "regions given twice"},
		{"regions Eu:a", 1, "region \"Eu\""},
		{"measure now", 1, "no arguments"},
		{"nodes a b\ndiscover seed=c nodes=d\nrandom edges=2", 3, "a connected graph of 2 nodes"},
	} {
		_, err := Parse("g.sim", tc.src)
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line != tc.line || !strings.Contains(pe.Msg, tc.msg) {
			t.Errorf("Parse(%q) = %v, want line %d with %q", tc.src, err, tc.line, tc.msg)
		}
	}
}

// spread= places a region's nodes on a plane: the latency inside a region
// is the floor plus their distance (within the disc's diameter), it grows
// with distance (a metric: the triangle inequality holds), and the same
// seed gives the same places.
func TestRegionsSpreadPlacesNodesOnAPlane(t *testing.T) {
	src := "regions eu:n1..n30 us:n31..n40 inside=0.5ms between=40ms spread=20ms seed=3"
	s, err := Parse("g", src)
	if err != nil {
		t.Fatal(err)
	}
	u := s.Steps[0].Underlay
	var names []string
	for i := 1; i <= 40; i++ {
		names = append(names, fmt.Sprintf("n%d", i))
	}
	lo, hi := time.Hour, time.Duration(0)
	for _, a := range names {
		for _, b := range names {
			if a == b {
				continue
			}
			l := u.Latency(a, b)
			if l != u.Latency(b, a) {
				t.Fatalf("%s-%s: %v one way, %v the other", a, b, l, u.Latency(b, a))
			}
			if u.Region[a] == u.Region[b] {
				if l < 500*time.Microsecond || l > 20500*time.Microsecond {
					t.Fatalf("%s-%s inside a region: %v, want 0.5ms..20.5ms", a, b, l)
				}
				lo, hi = min(lo, l), max(hi, l)
			} else if l < 40*time.Millisecond || l > 60*time.Millisecond {
				t.Fatalf("%s-%s between regions: %v, want 40ms plus at most 20ms", a, b, l)
			}
			for _, c := range names[:10] {
				if c != a && c != b && u.Region[a] == u.Region[b] && u.Region[c] == u.Region[a] &&
					l > u.Latency(a, c)+u.Latency(c, b) {
					t.Fatalf("%s-%s %v is longer than via %s (%v + %v)", a, b, l, c, u.Latency(a, c), u.Latency(c, b))
				}
			}
		}
	}
	if hi-lo < 10*time.Millisecond {
		t.Errorf("latencies inside a region span %v..%v: the nodes are not spread", lo, hi)
	}
	again, _ := Parse("g", src)
	if again.Steps[0].Underlay.Latency("n3", "n17") != u.Latency("n3", "n17") {
		t.Errorf("the same seed gave other places")
	}
	for _, bad := range []string{"spread=0s", "spread=x", "spread=-1ms"} {
		if _, err := Parse("g", "regions eu:a,b "+bad); err == nil || !strings.Contains(err.Error(), "spread=") {
			t.Errorf("%s: err %v", bad, err)
		}
	}
}
