package topology

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// stepper runs the policy of "me" among r0..r9, 10, 11, ..., 19 ms away
// (measured round trips), every 2 s as discovery does; a link the policy
// adds is up at the next step and one it drops is gone. A router in full
// is at its maximum: it refuses the link, and the node backs off from it
// as discovery does (15 s, then doubling from 16 s to 5 min) and lists it
// in Input.Full until a link to it comes up. A router in down fails the
// dial: the node backs off from it as discovery does from an address no
// handshake proved (doubling from 1 s, an hour from the second failure)
// and lists it in Input.Failed until a link to it comes up.
type stepper struct {
	t           *testing.T
	cfg         Config
	members     []Member
	links       map[string]*stepLink
	unavailable []string
	full, down  map[string]bool
	refused     map[string]*stepBackoff
	now         time.Duration
	changes     []string // "+r3 long", "-r2 replace", "!r4 long" (refused)
}

type stepLink struct {
	out, long bool
	since     time.Duration
	// Attributes of links the policy did not make.
	static, shortcut, bridge bool // bridge: no other neighbour reaches the peer
	stranded                 int
}

type stepBackoff struct {
	wait   time.Duration
	until  time.Duration
	fails  int  // dials failed in a row
	failed bool // the last dial failed rather than was refused
}

func newStepper(t *testing.T, seed int64) *stepper {
	s := &stepper{t: t, cfg: Config{Target: 3, Max: 6, Long: 1, Probes: -1, Seed: seed}, links: map[string]*stepLink{},
		full: map[string]bool{}, down: map[string]bool{}, refused: map[string]*stepBackoff{}}
	for i := range 10 {
		name := fmt.Sprintf("r%d", i)
		s.members = append(s.members, Member{Name: name, Addr: name, RTT: ms(float64(10 + i))})
	}
	return s
}

func (s *stepper) step() Plan {
	var ls []Link
	for _, m := range s.members {
		if l, ok := s.links[m.Name]; ok {
			alt := 1
			if l.bridge {
				alt = 0
			}
			ls = append(ls, Link{Peer: m.Name, Outbound: l.out, Long: l.long, RTT: m.RTT, Age: s.now - l.since + time.Millisecond, Alternates: alt,
				Static: l.static, Shortcut: l.shortcut, Stranded: l.stranded})
		}
	}
	unavailable := slices.Clone(s.unavailable)
	var full, failed []string
	for name, b := range s.refused {
		if b.failed {
			failed = append(failed, name)
		} else {
			full = append(full, name)
		}
		if s.now < b.until {
			unavailable = append(unavailable, name)
		}
	}
	slices.Sort(full)
	slices.Sort(failed)
	p := Decide(Input{Self: "me", Members: s.members, Links: ls, Unavailable: unavailable, Full: full, Failed: failed, Config: s.cfg})
	for i, m := range p.Add {
		if s.full[m.Name] || s.down[m.Name] {
			b := s.refused[m.Name]
			if b == nil {
				b = &stepBackoff{}
				s.refused[m.Name] = b
			}
			b.wait = min(max(2*b.wait, time.Second), 5*time.Minute)
			b.fails++
			b.failed = s.down[m.Name]
			switch {
			case !b.failed:
				b.until = s.now + max(b.wait, 15*time.Second)
			case b.fails >= 2:
				b.until = s.now + max(b.wait, time.Hour)
			default:
				b.until = s.now + b.wait
			}
			s.changes = append(s.changes, fmt.Sprintf("!%s %s", m.Name, p.Why[i]))
			continue
		}
		delete(s.refused, m.Name)
		s.links[m.Name] = &stepLink{out: true, long: p.Why[i] == WhyLong, since: s.now}
		s.changes = append(s.changes, fmt.Sprintf("+%s %s", m.Name, p.Why[i]))
	}
	for _, d := range p.Drop {
		delete(s.links, d.Peer)
		s.changes = append(s.changes, fmt.Sprintf("-%s %s", d.Peer, d.Why))
	}
	s.now += 2 * time.Second
	return p
}

// settle steps until a minute passes without a change, for at most
// 10 minutes, and returns the changes it saw. The degree never falls
// below min (make before break).
func (s *stepper) settle(phase string, min int) []string {
	s.t.Helper()
	before, quiet := len(s.changes), 0
	for range 300 {
		if p := s.step(); len(p.Add) == 0 && len(p.Drop) == 0 {
			if quiet++; quiet == 30 {
				return s.changes[before:]
			}
		} else {
			quiet = 0
		}
		if len(s.links) < min {
			s.t.Fatalf("%s: %d links %v after %v: below %d (changes %v)", phase, len(s.links), s.held(), s.changes[before:], min, s.changes[before:])
		}
	}
	s.t.Fatalf("%s: links still change after 10 minutes: %v", phase, s.changes[before:])
	return nil
}

func (s *stepper) held() []string {
	var out []string
	for name, l := range s.links {
		switch {
		case l.long:
			name += " (long)"
		case !l.out:
			name += " (in)"
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// longRouter returns the router "me" dials as its long link with no links.
func (s *stepper) longRouter() string {
	s.t.Helper()
	p := Decide(Input{Self: "me", Members: s.members, Config: Config{Target: 3, Long: 1, Probes: -1, Adds: 10, Seed: s.cfg.Seed}})
	if i := slices.Index(p.Why, WhyLong); i >= 0 {
		return p.Add[i].Name
	}
	s.t.Fatalf("no long link for a node without links: %+v", p)
	return ""
}

// TestMissingLongLinkAtTarget: a node at its target degree (3: two near
// links and a long one) that holds no long link dials it, whatever kept
// it from holding one. Its long link's router could not be dialled while
// the node joined (backing off, at its maximum), so it filled its third
// slot with the nearest other router; or the long link was lost while
// incoming links kept the node at its target. Before, a node at its
// target added only closer near neighbours and shortcuts, so it held no
// long link from then on. Now it dials the long link and, once that is
// up, drops the local link it no longer needs (make before break: the
// degree never falls below the target), then nothing changes for a
// minute. A node that has just joined waits until that link may be
// replaced rather than hold its long link beside it for good.
func TestMissingLongLinkAtTarget(t *testing.T) {
	// Each seed gives other long routers and other ages at which links
	// may be replaced (ReplaceSpread).
	for seed := range int64(8) {
		t.Run(fmt.Sprintf("its router unavailable at join/seed=%d", seed), func(t *testing.T) {
			s := newStepper(t, seed)
			long := s.longRouter()
			s.unavailable = []string{long}
			for len(s.links) < 3 && s.now < time.Minute {
				s.step()
			}
			if len(s.links) != 3 || s.links[long] != nil {
				t.Fatalf("joined with %v (changes %v): want 3 links, none to the unavailable long router %s", s.held(), s.changes, long)
			}
			var filler string
			for name, l := range s.links {
				if name != "r0" && name != "r1" {
					filler = name
					if l.long {
						t.Fatalf("joined with %v: want the near r0, r1 and the nearest other, not a long link", s.held())
					}
				}
			}
			// Available as soon as the node is at its target, with links
			// seconds old: it waits for its third link to be old enough to
			// be replaced, rather than hold the long link beside it for
			// good.
			s.unavailable = nil
			got := s.settle("the long router available", 3)
			if l := s.links[long]; l == nil || !l.out || !l.long {
				t.Fatalf("at its target with %v (changes once %s was available: %v): want the long link to %s dialled", s.held(), long, got, long)
			}
			want := []string{"+" + long + " long", "-" + filler + " replace"}
			if !slices.Equal(got, want) || len(s.links) != 3 {
				t.Errorf("once %s was available: changes %v, links %v: want %v, 3 links", long, got, s.held(), want)
			}
		})
	}
	t.Run("its link lost above the target", func(t *testing.T) {
		s := newStepper(t, 0)
		long := s.longRouter()
		// Near r0, r1 and the long link, plus an incoming link from a
		// router that is neither.
		in := "r9"
		if long == in {
			in = "r8"
		}
		s.links = map[string]*stepLink{"r0": {out: true}, "r1": {out: true}, long: {out: true, long: true}, in: {}}
		if got := s.settle("settled", 4); len(got) != 0 {
			t.Fatalf("a settled node changed its links: %v", got)
		}
		delete(s.links, long)
		s.unavailable = []string{long} // backing off after the link ended
		s.step()
		s.unavailable = nil
		got := s.settle("the long link lost", 3)
		if l := s.links[long]; l == nil || !l.long {
			t.Fatalf("with %v after its long link to %s was lost (changes %v): want it dialled again", s.held(), long, got)
		}
		// No outgoing link is unwanted: none goes.
		if want := []string{"+" + long + " long"}; !slices.Equal(got, want) {
			t.Errorf("after the long link was lost: changes %v, links %v: want %v", got, s.held(), want)
		}
	})
}

// TestMissingLongLinkNoneToReplace: a node at or above its target (3,
// at most 6 links) whose long link is missing and none of whose links
// the long link may replace: its outgoing links are its near neighbours
// or links it must keep (a bridge no other neighbour reaches past, a link
// some route depends on alone, a shortcut still nearby), the others are
// incoming or static. It dials the long link beside them, also at
// Max − 1, where that takes its last free slot, and then nothing changes
// for a minute. Before, below Max − 1 it did, but at Max − 1 it kept
// the slot free for a repair link that a node at its maximum admits
// anyway in place of a redundant idle link, and held no long link for as
// long as its links stayed. At Max it has no room and changes nothing.
func TestMissingLongLinkNoneToReplace(t *testing.T) {
	s := newStepper(t, 0)
	long := s.longRouter()
	// Routers that are neither near (r0, r1) nor the long link.
	var others []string
	for i := 9; i >= 2; i-- {
		if name := fmt.Sprintf("r%d", i); name != long {
			others = append(others, name)
		}
	}
	near := func() map[string]*stepLink {
		return map[string]*stepLink{"r0": {out: true}, "r1": {out: true}}
	}
	for _, tc := range []struct {
		name string
		// links builds the node's links besides r0 and r1 from others.
		links func(map[string]*stepLink)
		full  bool // at Max: no room
	}{
		{name: "incoming, at the target", links: func(ls map[string]*stepLink) { ls[others[0]] = &stepLink{} }},
		{name: "incoming, above the target", links: func(ls map[string]*stepLink) {
			ls[others[0]], ls[others[1]] = &stepLink{}, &stepLink{}
		}},
		{name: "incoming, at max-1", links: func(ls map[string]*stepLink) {
			ls[others[0]], ls[others[1]], ls[others[2]] = &stepLink{}, &stepLink{}, &stepLink{}
		}},
		{name: "a bridge, at max-1", links: func(ls map[string]*stepLink) {
			ls[others[0]], ls[others[1]], ls[others[2]] = &stepLink{out: true, bridge: true}, &stepLink{}, &stepLink{}
		}},
		{name: "a stranded link, at max-1", links: func(ls map[string]*stepLink) {
			ls[others[0]], ls[others[1]], ls[others[2]] = &stepLink{out: true, stranded: 2}, &stepLink{}, &stepLink{}
		}},
		{name: "a shortcut nearby, at max-1", links: func(ls map[string]*stepLink) {
			// r2..r5 are 12-15 ms away: within twice the farthest near
			// neighbour's 11 ms plus 2 ms.
			sc := "r2"
			if sc == long {
				sc = "r3"
			}
			ls[sc] = &stepLink{out: true, shortcut: true}
			n := 0
			for _, o := range others {
				if o != sc && n < 2 {
					ls[o] = &stepLink{}
					n++
				}
			}
		}},
		{name: "static links, at max-1", links: func(ls map[string]*stepLink) {
			ls[others[0]], ls[others[1]], ls[others[2]] = &stepLink{}, &stepLink{}, &stepLink{}
			ls[others[3]], ls[others[4]] = &stepLink{out: true, static: true}, &stepLink{static: true}
		}},
		{name: "incoming, at max", full: true, links: func(ls map[string]*stepLink) {
			ls[others[0]], ls[others[1]], ls[others[2]], ls[others[3]] = &stepLink{}, &stepLink{}, &stepLink{}, &stepLink{}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStepper(t, 0)
			s.links = near()
			tc.links(s.links)
			before := s.held()
			got := s.settle("long link missing", len(s.links))
			if tc.full {
				if len(got) != 0 {
					t.Errorf("at its maximum with %v: changes %v: want none (no room)", before, got)
				}
				return
			}
			if want := []string{"+" + long + " long"}; !slices.Equal(got, want) {
				t.Errorf("with %v and its long link to %s missing: changes %v, links %v: want %v", before, long, got, s.held(), want)
			}
		})
	}
}
