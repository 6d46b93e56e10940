package routing

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// redMesh is a mesh of engines, each with a Certifier of its own (so that
// every node checks every new attestation itself), and m, a neighbour of
// some of them that the test speaks for (no engine).
type redMesh struct {
	t       *testing.T
	engines map[string]*Engine
	certs   map[string]*fakeCertifier
	order   []string
	mLinks  []string
	now     time.Time
	// toM, if set, sees every message an engine sends m.
	toM func(from string, msg Message)
	// half: the attack runs every half second.
	half bool
	// tally of what the engines sent one another (not m).
	msgs, bytes, requests int
}

// newRedMesh links n nodes in a ring with n/2 random chords (seeded), all
// of cost 10, and m to the nodes named in mLinks.
func newRedMesh(t *testing.T, n int, mLinks []string) *redMesh {
	s := &redMesh{t: t, engines: map[string]*Engine{}, certs: map[string]*fakeCertifier{}, now: ct0, mLinks: mLinks}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("n%03d", i)
		c := &fakeCertifier{}
		e, err := New(Config{Self: name, Certifier: hostCertifier{f: c}})
		if err != nil {
			t.Fatal(err)
		}
		s.engines[name], s.certs[name] = e, c
		s.order = append(s.order, name)
	}
	link := func(a, b string) {
		s.engines[a].LinkUp(s.now, b, 10, false)
		s.engines[b].LinkUp(s.now, a, 10, false)
	}
	linked := map[[2]string]bool{}
	for i := 0; i < n; i++ {
		a, b := s.order[i], s.order[(i+1)%n]
		link(a, b)
		linked[[2]string{a, b}], linked[[2]string{b, a}] = true, true
	}
	rng := rand.New(rand.NewPCG(7, 11))
	for k := 0; k < n/2; {
		a, b := s.order[rng.IntN(n)], s.order[rng.IntN(n)]
		if a == b || linked[[2]string{a, b}] {
			continue
		}
		link(a, b)
		linked[[2]string{a, b}], linked[[2]string{b, a}] = true, true
		k++
	}
	for _, x := range mLinks {
		s.engines[x].LinkUp(s.now, "m", 10, false)
	}
	return s
}

// deliver hands every queued message to its engine, at once, until none
// is left; messages to m go to toM.
func (s *redMesh) deliver() {
	deliverAll(s.t, s.now, s.order, s.engines, func(from string, msg Message, delivered bool) {
		if !delivered {
			if s.toM != nil {
				s.toM(from, msg)
			}
			return
		}
		s.msgs++
		s.bytes += len(msg.Payload)
		es, err := decodeMessage(msg.Payload, maxEntriesLimit)
		if err != nil {
			s.t.Fatal(err)
		}
		for _, en := range es {
			if en.kind == kindRequest {
				s.requests++
			}
		}
	})
}

// step advances the mesh by 5 ms.
func (s *redMesh) step() {
	s.now = s.now.Add(5 * time.Millisecond)
	tickDue(s.now, s.order, s.engines)
	s.deliver()
}

// fromM delivers entries from m to node x, in messages of at most
// DefaultMaxRoutesPerMessage entries, and returns the bytes sent.
func (s *redMesh) fromM(x string, entries []entry) int {
	n := 0
	for len(entries) > 0 {
		k := min(len(entries), DefaultMaxRoutesPerMessage)
		p := encodeMessage(entries[:k])
		n += len(p)
		if err := s.engines[x].Receive(s.now, "m", p); err != nil {
			s.t.Fatal(err)
		}
		entries = entries[k:]
	}
	return n
}

// redTally is what the mesh did in one phase: messages, bytes and
// request entries the engines sent one another, seqno raises of the
// origins, signature checks, and what m sent.
type redTally struct {
	msgs, bytes, requests, raises, checks int
	mEntries, mBytes                      int
	unreachable                           int // pairs (node, origin) without a route at the end
}

func (s *redMesh) counters() (raises, checks int) {
	for _, name := range s.order {
		raises += int(s.engines[name].Stats().SeqnoBumps)
		checks += s.certs[name].verified
	}
	return raises, checks
}

// phase runs the mesh for d; each second, attack (if set) sends what m
// sends and returns the entries and bytes.
func (s *redMesh) phase(d time.Duration, attack func() (entries, bytes int)) redTally {
	every := 200
	if s.half {
		every = 100
	}
	return s.phaseEvery(d, every, attack)
}

// phaseEvery is phase with attack called every `every` steps of 5 ms.
func (s *redMesh) phaseEvery(d time.Duration, every int, attack func() (entries, bytes int)) redTally {
	r0, c0 := s.counters()
	m0, b0, q0 := s.msgs, s.bytes, s.requests
	var c redTally
	steps := int(d / (5 * time.Millisecond))
	for i := 0; i < steps; i++ {
		if attack != nil && i%every == 0 {
			e, b := attack()
			c.mEntries += e
			c.mBytes += b
		}
		s.step()
	}
	r1, c1 := s.counters()
	c.msgs, c.bytes, c.requests = s.msgs-m0, s.bytes-b0, s.requests-q0
	c.raises, c.checks = r1-r0, c1-c0
	for _, a := range s.order {
		for _, o := range s.order {
			if _, ok := s.engines[a].Lookup(o); a != o && !ok {
				c.unreachable++
			}
		}
	}
	return c
}

func (c redTally) String() string {
	return fmt.Sprintf("%d msgs, %d bytes, %d request entries, %d seqno raises, %d signature checks, %d pairs unreachable (m sent %d entries, %d bytes)",
		c.msgs, c.bytes, c.requests, c.raises, c.checks, c.unreachable, c.mEntries, c.mBytes)
}

// unfeasibleLies returns m's attack: to each node m is linked to, for
// every origin, a route one seqno older than the node holds at metric 1:
// better than any the node has, and unfeasible. With relay, m also sends
// each request it got since the last call to its other neighbours, as a
// node forwarding them would.
func (s *redMesh) unfeasibleLies(relay bool) func() (int, int) {
	var asked []entry
	s.toM = func(from string, msg Message) {
		for _, en := range decodeAll(s.t, []Message{msg}) {
			if en.kind == kindRequest {
				asked = append(asked, en)
			}
		}
	}
	return func() (int, int) {
		var extra []entry
		if relay {
			for _, en := range asked {
				en.hopcnt = requestHopCount
				extra = append(extra, en)
			}
		}
		asked = asked[:0]
		return s.sendPerOrigin(func(o string, r Route) entry {
			return entry{kind: kindUpdate, origin: o, seqno: r.Seqno - 1, metric: 1, hops: 1}
		}, extra)
	}
}

// sendPerOrigin has m send each node it is linked to the entry mk makes,
// for every origin that node routes, plus extra, and returns the entries
// and bytes sent.
func (s *redMesh) sendPerOrigin(mk func(o string, r Route) entry, extra []entry) (entries, bytes int) {
	for _, x := range s.mLinks {
		var batch []entry
		for _, o := range s.order {
			if r, ok := s.engines[x].Lookup(o); o != x && ok {
				batch = append(batch, mk(o, r))
			}
		}
		batch = append(batch, extra...)
		entries += len(batch)
		bytes += s.fromM(x, batch)
	}
	return entries, bytes
}

// directRequests returns m's attack of asking each node it is linked to,
// once a second, for the next seqno of every origin.
func (s *redMesh) directRequests() func() (int, int) {
	return func() (int, int) {
		return s.sendPerOrigin(func(o string, r Route) entry {
			return entry{kind: kindRequest, origin: o, seqno: r.Seqno + 1, hopcnt: requestHopCount}
		}, nil)
	}
}

// flapLies returns m's attack of telling its neighbours, for every
// origin, a route at metric 1 at the seqno they hold, then (half a
// second later, step half) the same at metric 5000.
func (s *redMesh) flapLies() func() (int, int) {
	calls := 0
	s.half = true
	return func() (int, int) {
		calls++
		metric := Metric(1)
		if calls%2 == 0 {
			metric = 5000
		}
		return s.sendPerOrigin(func(o string, r Route) entry {
			return entry{kind: kindUpdate, origin: o, seqno: r.Seqno, metric: metric, hops: 1}
		}, nil)
	}
}

// redRun builds the 120-node mesh with m linked to three nodes, lets it
// settle for 15 s, and runs it secs seconds without m, then secs seconds
// with attack.
func redRun(t *testing.T, secs int, attack func(s *redMesh) func() (int, int)) (s *redMesh, quiet, loud redTally) {
	t.Helper()
	s = newRedMesh(t, 120, []string{"n000", "n040", "n080"})
	for i := 0; i < 15*200; i++ {
		s.step()
	}
	quiet = s.phase(time.Duration(secs)*time.Second, nil)
	loud = s.phase(time.Duration(secs)*time.Second, attack(s))
	t.Logf("%ds without m: %v", secs, quiet)
	t.Logf("%ds with m:    %v", secs, loud)
	return s, quiet, loud
}

// TestAttackUnfeasibleRoutesDrawNoMeshWork: m, a neighbour of three nodes
// of a 120-node mesh with a valid certificate, tells them, every second,
// a route to every origin one seqno older than theirs at metric 1: better
// than any they hold, and unfeasible. They ask for a newer seqno, and
// retry while the route stays, but only m, which holds those routes: the
// mesh sends no request, raises and checks nothing, and sends no more
// messages than without m (20 s: 2,160 without m, 1,800 with it), and
// every node keeps every route.
func TestAttackUnfeasibleRoutesDrawNoMeshWork(t *testing.T) {
	_, quiet, loud := redRun(t, 20, func(s *redMesh) func() (int, int) { return s.unfeasibleLies(false) })
	// The messages differ by where the periodic summaries fall in each
	// run, not by what m sent (a tenth is over a summary set of each node).
	if loud.msgs > quiet.msgs*11/10 || loud.requests != 0 || loud.raises != 0 || loud.checks != 0 {
		t.Errorf("m's unfeasible routes made the mesh work: %v, against %v without m", loud, quiet)
	}
	if loud.unreachable > 0 {
		t.Errorf("%d (node, origin) pairs unreachable under m's unfeasible routes", loud.unreachable)
	}
}

// TestAttackRelayedRequestsRaiseOncePerSecond is the attack above with m
// sending each request it gets on to its other neighbours, as a node
// forwarding it would. The origins raise on those requests as on
// requests m made up (TestAttackSeqnoRequestsFanOutFromTheHub), at most
// once a second each, and no route is lost.
func TestAttackRelayedRequestsRaiseOncePerSecond(t *testing.T) {
	const secs = 20
	_, _, loud := redRun(t, secs, func(s *redMesh) func() (int, int) { return s.unfeasibleLies(true) })
	if loud.raises == 0 {
		t.Fatal("no origin raised: m's relayed requests did not reach them")
	}
	if max := 120 * (secs + 1); loud.raises > max {
		t.Errorf("the origins raised %d times in %ds, want at most %d (once a second each)", loud.raises, secs, max)
	}
	if loud.unreachable > 0 {
		t.Errorf("%d (node, origin) pairs unreachable under m's relayed requests", loud.unreachable)
	}
}

// TestAttackFlappingDistanceLie measures what a distance lie taken back
// costs the mesh. m tells its three neighbours, for every origin, a route
// at metric 1 at the seqno they hold, and half a second later the same
// at metric 5000, once a second. The nodes that took the lie advertised
// a smaller distance than before, which their routes at that seqno can
// no longer beat: when m takes the lie back they ask the origin for a new
// seqno, which raises, signs, and sends it to all of them. What bounds it
// is the origin's raise rate (once a second per origin): the origins
// raise at most once a second each, and once m stops every node reaches
// every origin again within three update intervals.
func TestAttackFlappingDistanceLie(t *testing.T) {
	const secs = 20
	s, quiet, loud := redRun(t, secs, func(s *redMesh) func() (int, int) { return s.flapLies() })
	if loud.raises == 0 {
		t.Fatal("no origin raised: m's lies were not taken")
	}
	if max := 120 * (secs + 1); loud.raises > max {
		t.Errorf("the origins raised %d times in %ds, want at most %d (once a second each)", loud.raises, secs, max)
	}
	t.Logf("for each entry m sent: %.1f messages, %.0f bytes, %.1f signature checks in the mesh beyond the quiet run",
		float64(loud.msgs-quiet.msgs)/float64(loud.mEntries), float64(loud.bytes-quiet.bytes)/float64(loud.mEntries),
		float64(loud.checks-quiet.checks)/float64(loud.mEntries))
	after := s.phase(3*DefaultUpdateInterval, nil)
	if after.unreachable > 0 {
		t.Errorf("%d (node, origin) pairs still unreachable %v after m stopped", after.unreachable, 3*DefaultUpdateInterval)
	}
}
