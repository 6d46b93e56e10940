package routing

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

func attUpd(origin string, seqno uint16, metric Metric, hops uint16, b string) entry {
	return entry{kind: kindAttUpdate, origin: origin, seqno: seqno, metric: metric, hops: hops, att: []byte(b)}
}

// unsharedCert is a fakeCertifier whose verdicts are not shared between
// engines (it cannot be compared: cacheable): the process's verdict cache
// remembers one certifier per attestation, so that engines checking the
// same attestations with two certifiers of their own would find each
// other's verdicts missing in turns.
type unsharedCert struct {
	*fakeCertifier
	_ func()
}

// split returns es with each attested update as the attestation and the
// update it stands for.
func split(es []entry) []entry {
	var out []entry
	for _, en := range es {
		if en.kind != kindAttUpdate {
			out = append(out, en)
			continue
		}
		out = append(out, entry{kind: kindAttest, origin: en.origin, seqno: en.seqno, att: en.att},
			entry{kind: kindUpdate, origin: en.origin, seqno: en.seqno, metric: en.metric, hops: en.hops})
	}
	return out
}

// sentTo returns the entries of the messages to each neighbour, in order,
// attested updates split (split).
func sentTo(t *testing.T, ms []Message) map[string][]entry {
	t.Helper()
	out := map[string][]entry{}
	for _, m := range ms {
		es, err := decodeMessage(m.Payload, maxEntriesLimit)
		if err != nil {
			t.Fatal(err)
		}
		out[m.To] = append(out[m.To], split(es)...)
	}
	return out
}

// TestAttestedUpdateIsAttestationAndUpdate: an engine fed attested updates
// ends every step in the state, counters and output of an engine fed the
// same attestations and updates as separate entries, through thousands
// of random messages from routers and a leaf: forged attestations, stale
// and wrapped seqnos, retractions, implausible hop counts, our own name,
// several attestations of one origin in a message (the older ones
// unchecked), and the check budgets of a neighbour spent and recovered.
func TestAttestedUpdateIsAttestationAndUpdate(t *testing.T) {
	cfg := Config{Self: "a", MaxRoutes: 12, MaxVerifyFailures: 2}
	cfg.Certifier = unsharedCert{&fakeCertifier{}, nil}
	sep := newEngine(t, cfg)
	cfg.Certifier = unsharedCert{&fakeCertifier{}, nil}
	joint := newEngine(t, cfg)
	nbrs := []string{"b", "c", "l"}
	for _, e := range []*Engine{sep, joint} {
		e.LinkUp(ct0, "b", 10, false)
		e.LinkUp(ct0, "c", 25, false)
		e.LinkUp(ct0, "l", 15, true)
	}
	sentTo(t, sep.Ready().Messages)
	sentTo(t, joint.Ready().Messages)
	origins := []string{"a", "b", "c", "l", "w", "x", "y", "z"}
	rng := rand.New(rand.NewPCG(7, 11))
	now := ct0
	joints := 0
	for step := range 4000 {
		// Bursts of messages (budgets spent) and pauses (recovered,
		// routes expired).
		now = now.Add(time.Duration(rng.IntN(40)) * time.Millisecond)
		if rng.IntN(200) == 0 {
			now = now.Add(time.Duration(rng.IntN(120)) * time.Second)
		}
		from := nbrs[rng.IntN(len(nbrs))]
		var a, b []entry // as separate entries, with attested updates
		for range 1 + rng.IntN(5) {
			o := origins[rng.IntN(len(origins))]
			s := uint16(rng.IntN(12))
			if rng.IntN(20) == 0 {
				s += 0x8000 // half the circle away
			}
			m := Metric(1 + rng.IntN(300))
			if rng.IntN(8) == 0 {
				m = DefaultInfinity
			}
			h := uint16(1 + rng.IntN(4))
			if rng.IntN(16) == 0 {
				h = 0
			}
			if o == from {
				m, h = 0, 0
			}
			// The origins move to a new epoch every 100 steps, so
			// that newer attestations keep coming; in epoch 0 (the
			// first 100) they compare modulo 2^16, as an origin's of
			// the release before (attNewer), later by epoch.
			ep := uint64(step / 100)
			sig := string(fakeAtt(o, ep, s))
			if rng.IntN(6) == 0 {
				sig = string(fakeAtt(o, ep, s+1)) // forged
			}
			u := entry{kind: kindUpdate, origin: o, seqno: s, metric: m, hops: h}
			if rng.IntN(4) == 0 {
				a, b = append(a, u), append(b, u) // an update alone
				continue
			}
			a = append(a, entry{kind: kindAttest, origin: o, seqno: s, att: []byte(sig)}, u)
			b = append(b, attUpd(o, s, m, h, sig))
			joints++
		}
		errA := sep.Receive(now, from, encodeVersion(wireBase, a))
		errB := joint.Receive(now, from, encodeVersion(wireVersion, b))
		if (errA == nil) != (errB == nil) {
			t.Fatalf("step %d: errors %v and %v", step, errA, errB)
		}
		if sep.NextTick().After(now) != joint.NextTick().After(now) {
			t.Fatalf("step %d: next ticks %v and %v", step, sep.NextTick(), joint.NextTick())
		}
		if !sep.NextTick().After(now) {
			sep.Tick(now)
			joint.Tick(now)
		}
		if ra, rb := sep.Routes(), joint.Routes(); !reflect.DeepEqual(ra, rb) {
			t.Fatalf("step %d: routes differ:\n%+v\n%+v", step, ra, rb)
		}
		if sa, sb := sep.Stats(), joint.Stats(); sa != sb {
			t.Fatalf("step %d: stats differ:\n%+v\n%+v", step, sa, sb)
		}
		if oa, ob := sentTo(t, sep.Ready().Messages), sentTo(t, joint.Ready().Messages); !reflect.DeepEqual(oa, ob) {
			t.Fatalf("step %d: output differs:\n%+v\n%+v", step, oa, ob)
		}
	}
	st := joint.Stats()
	t.Logf("%d attested updates; %d verified, %d bad, %d throttled, %d uncertified, %d held, %d from the leaf ignored, %d destinations",
		joints, st.Verified, st.BadAttestations, st.ThrottledAttestations, st.Uncertified, st.AttestationsHeld, st.IgnoredFromLeaf, st.Destinations)
	if st.Verified == 0 || st.BadAttestations == 0 || st.ThrottledAttestations == 0 || st.Uncertified == 0 ||
		st.AttestationsHeld == 0 || st.IgnoredFromLeaf == 0 || st.AttestationsOut == 0 {
		t.Fatalf("the messages missed a case: %+v", st)
	}
}

// TestAttestedUpdatesOnlyToReaders: an engine sends attested updates only
// to a neighbour that sent it a message of wireVersion (its hello) since
// their link came up; every other neighbour gets messages of wireBase, with
// the attestation and the update as two entries, as a release before
// attested updates reads them.
func TestAttestedUpdatesOnlyToReaders(t *testing.T) {
	e := certEngine(t, &fakeCertifier{})
	for _, n := range []string{"c", "old", "new"} {
		e.LinkUp(ct0, n, 10, false)
	}
	for _, m := range e.Ready().Messages {
		if m.Payload[0] != wireBase && !(len(m.Payload) == headerLen && m.Payload[0] == wireVersion && m.Payload[1] == 0 && m.Payload[2] == 0) {
			t.Fatalf("message to %s before its hello: %v", m.To, m.Payload)
		}
	}
	mustReceive(t, e, ct0, "new", []byte{wireVersion, 0, 0})
	now := ct0.Add(time.Second)
	x := []entry{att("x", 3, "att:x/3"), upd("x", 3, 20)}
	mustReceive(t, e, now, "c", encodeMessage(x))
	check := func(want map[string]uint8) {
		t.Helper()
		e.Tick(now.Add(time.Second)) // past the triggered updates' rate limit
		got := map[string]uint8{}
		for _, m := range e.Ready().Messages {
			es, err := decodeMessage(m.Payload, maxEntriesLimit)
			if err != nil {
				t.Fatal(err)
			}
			for i, en := range es {
				if en.origin != "x" {
					continue
				}
				got[m.To] = en.kind
				if en.kind == kindAttest && (i+1 == len(es) || es[i+1].kind != kindUpdate || es[i+1].origin != "x") {
					t.Fatalf("attestation of x to %s not followed by its update: %+v", m.To, es)
				}
				if m.Payload[0] == wireBase && en.kind == kindAttUpdate {
					t.Fatalf("attested update in a message of version %d", wireBase)
				}
				break
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("first entry about x to each neighbour: %v, want %v", got, want)
		}
	}
	check(map[string]uint8{"old": kindAttest, "new": kindAttUpdate})
	// A new link may lead to another release: separate entries again
	// until its hello.
	now = now.Add(time.Second)
	e.LinkUp(now, "new", 10, false)
	if ms := e.Ready().Messages; len(ms) == 0 || ms[0].To != "new" || string(ms[0].Payload) != string([]byte{wireVersion, 0, 0}) {
		t.Fatalf("messages after a new link: %+v, want a hello first", ms)
	}
	e.LinkUp(now, "old", 10, false)
	e.Ready()
	now = now.Add(time.Second)
	mustReceive(t, e, now, "old", []byte{wireVersion, 0, 0})
	// A new seqno and a new metric (a new seqno alone would be held
	// back from neighbours that did not ask for it, seqhold.go).
	mustReceive(t, e, now, "c", encodeMessage([]entry{att("x", 4, "att:x/4"), upd("x", 4, 40)}))
	check(map[string]uint8{"old": kindAttUpdate, "new": kindAttest})
}
