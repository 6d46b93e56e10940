package node

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/node/policy"
)

func mustPolicy(t *testing.T, text string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// policyMesh is four nodes on loopback QUIC: a (group ops) and b (group
// web) reach d only through the relay r.
//
//	a ─┐
//	   r ── d
//	b ─┘
//
// more, if any, change every node's Config after the policy is set.
func policyMesh(t *testing.T, policies map[string]string, more ...func(*Config)) (*cluster, map[string]*syncBuf) {
	c := newCluster(t, true)
	groups := map[string][]string{"a": {"ops"}, "b": {"web"}, "r": {"infra"}, "d": {"infra"}}
	logs := map[string]*syncBuf{}
	c.tweak = func(cfg *Config) {
		id, err := c.ca.IssueWith(cfg.Name, identity.IssueOptions{Groups: groups[cfg.Name]})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Identity = id
		if text, ok := policies[cfg.Name]; ok {
			cfg.Policy = mustPolicy(t, text)
		}
		logs[cfg.Name] = &syncBuf{}
		cfg.Logger = slog.New(slog.NewTextHandler(logs[cfg.Name], nil))
		for _, f := range more {
			f(cfg)
		}
	}
	c.build("a-r", "b-r", "r-d")
	c.waitConverged()
	for _, s := range []string{"ssh", "web"} {
		serve(t, c.node("d"), s, echoHandler)
	}
	return c, logs
}

// wantRefused checks that err is a policy refusal by node whose reason
// contains reason.
func wantRefused(t *testing.T, what string, err error, node, reason string) {
	t.Helper()
	var re *circuit.RefusedError
	if !errors.As(err, &re) || !errors.Is(err, circuit.ErrRefusedByPolicy) || re.Code != circuit.Policy {
		t.Fatalf("%s: %v, want a refusal by policy", what, err)
	}
	if re.Node != node || !strings.Contains(re.Reason, reason) {
		t.Fatalf("%s: refused by %s (%q), want by %s with a reason containing %q", what, re.Node, re.Reason, node, reason)
	}
}

const destPolicy = `
allow dial from=group:ops service=ssh,web
allow dial from=b         service=web
`

func TestPolicyDialMatrix(t *testing.T) {
	c, logs := policyMesh(t, map[string]string{"d": destPolicy})
	msg := []byte("hello")
	for _, tc := range []struct {
		from, service string
		reason        string // "" allowed, else the refusal's reason contains it
	}{
		{"a", "ssh", ""},                             // by group
		{"a", "web", ""},                             // by group
		{"b", "web", ""},                             // by name
		{"b", "ssh", "default deny"},                 // no rule: denied, since dial rules exist
		{"r", "web", "default deny"},                 // a relay is no exception
		{"a", "echo", "default deny"},                // ping's service too
		{"b", "ssh", "default deny"},                 // again, now on the one-message handshake path
		{"a", "nosuch", "denied by the policy of d"}, // no service is not revealed to the denied, nor the rule to a claim
		{"a", "ssh", ""},                             // again, on the one-message handshake path
		{"b", "web", ""},                             // again
		{"d", "ssh", "default deny"},                 // a node's circuits to itself are no exception
	} {
		err := roundTrip(t, c.node(tc.from), "d", tc.service, msg)
		if tc.reason == "" {
			if err != nil {
				t.Fatalf("%s dials d/%s: %v, want allowed", tc.from, tc.service, err)
			}
			continue
		}
		wantRefused(t, tc.from+" dials d/"+tc.service, err, "d", tc.reason)
	}
	// A refusal by a rule names it.
	c.node("d").SetPolicy(mustPolicy(t, destPolicy+"deny dial from=group:web service=*\n"))
	err := roundTrip(t, c.node("b"), "d", "ssh", msg)
	wantRefused(t, "b dials d/ssh after a deny rule", err, "d", "by rule at line 4 (deny dial from=group:web service=*)")
	if err := roundTrip(t, c.node("b"), "d", "web", msg); err != nil {
		t.Fatalf("b dials d/web: %v (the name rule comes first)", err)
	}
	// Defaults: r has no policy and relays everything, with a warning at
	// start; d states its default.
	if l := logs["r"].String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "no authorization policy") {
		t.Errorf("r started without a policy and without the warning:\n%s", l)
	}
	if l := logs["d"].String(); strings.Contains(l, "no authorization policy") || !strings.Contains(l, `dial="default deny"`) {
		t.Errorf("d's start does not state its policy:\n%s", l)
	}
}

func TestPolicyRelayRules(t *testing.T) {
	c, _ := policyMesh(t, map[string]string{"r": "allow relay from=group:ops to=group:infra\n"})
	msg := []byte("hello")
	if err := roundTrip(t, c.node("a"), "d", "web", msg); err != nil {
		t.Fatalf("a (ops) through r: %v", err)
	}
	wantRefused(t, "b through r", roundTrip(t, c.node("b"), "d", "web", msg), "r", "default deny")
	wantRefused(t, "d to b through r", roundTrip(t, c.node("d"), "b", EchoService, msg), "r", "relaying d to b")
	// Circuits ending at the relay are dial circuits: relay rules do not
	// apply to them.
	if err := roundTrip(t, c.node("b"), "r", EchoService, msg); err != nil {
		t.Fatalf("b dials r itself: %v", err)
	}
	// A relay that the source must not use is refused also when the
	// source is one hop further: the rule sees the source's groups.
	c.node("r").SetPolicy(mustPolicy(t, "deny relay from=a to=*\nallow relay from=* to=*\n"))
	wantRefused(t, "a through r after deny", roundTrip(t, c.node("a"), "d", "web", msg), "r", "by rule at line 1")
	if err := roundTrip(t, c.node("b"), "d", "web", msg); err != nil {
		t.Fatalf("b through r after allow-all: %v", err)
	}
}

// openEcho opens a circuit to an echo service and checks it works.
func openEcho(t *testing.T, from *Node, to, service string) Conn {
	t.Helper()
	conn, err := from.Dial(ctxT(t, 10*time.Second), to, service)
	if err != nil {
		t.Fatalf("%s dials %s/%s: %v", from.Name(), to, service, err)
	}
	t.Cleanup(func() { conn.Close() })
	echoOnce(t, conn, "before")
	return conn
}

func echoOnce(t *testing.T, conn Conn, msg string) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != msg {
		t.Fatalf("echo of %q: %q, %v", msg, got, err)
	}
}

// wantDenied waits for conn to be ended by a policy reset.
func wantDenied(t *testing.T, what string, conn Conn, hop int) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, err := io.ReadAll(conn)
	var re *circuit.ResetError
	if !errors.Is(err, circuit.ErrRefusedByPolicy) || !errors.As(err, &re) || re.Code.Hop() != hop {
		t.Fatalf("%s: %v, want a reset refused by policy at hop %d", what, err, hop)
	}
}

// TestPolicyReloadKeepsAllowedCircuits: a new policy ends exactly the
// open circuits it no longer allows, at the destination and at a relay.
func TestPolicyReloadKeepsAllowedCircuits(t *testing.T) {
	c, logs := policyMesh(t, map[string]string{"d": destPolicy, "r": "allow relay from=* to=*\n"})
	aSSH := openEcho(t, c.node("a"), "d", "ssh")
	aWeb := openEcho(t, c.node("a"), "d", "web")
	bWeb := openEcho(t, c.node("b"), "d", "web")

	if n := c.node("d").SetPolicy(mustPolicy(t, "allow dial from=group:ops service=web\nallow dial from=b service=web\n")); n != 1 {
		t.Errorf("d's new policy closed %d circuits, want 1 (a's ssh)", n)
	}
	wantDenied(t, "a's ssh circuit after d dropped ssh", aSSH, 0)
	echoOnce(t, aWeb, "a's web still allowed")
	echoOnce(t, bWeb, "b's web still allowed")
	wantRefused(t, "a dials d/ssh after the reload", roundTrip(t, c.node("a"), "d", "ssh", []byte("x")), "d", "default deny")

	if n := c.node("r").SetPolicy(mustPolicy(t, "allow relay from=group:ops to=*\n")); n < 1 {
		t.Errorf("r's new policy closed %d circuits, want b's", n)
	}
	wantDenied(t, "b's web circuit after r stopped relaying for b", bWeb, 1)
	echoOnce(t, aWeb, "a's web still relayed")

	// Removing the policy allows everything again, with a warning as at
	// start.
	c.node("d").SetPolicy(nil)
	c.node("r").SetPolicy(mustPolicy(t, "# nothing left\n"))
	if err := roundTrip(t, c.node("b"), "d", "ssh", []byte("x")); err != nil {
		t.Fatalf("b dials d/ssh with no policy: %v", err)
	}
	for _, name := range []string{"d", "r"} {
		if l := logs[name].String(); !strings.Contains(l, `level=WARN msg="authorization policy replaced by none`) {
			t.Errorf("%s's policy was replaced by none without a warning:\n%s", name, l)
		}
	}
}

// TestPolicyDeniesAfterFullHandshake: when the destination cannot decide
// before answering (first contact from a source whose certificate it has
// not seen), it decides once the full handshake authenticated the source,
// and the caller gets the refusal with code Policy from the destination
// and the reason naming the rule, sealed end to end: on Read, and on
// Write once the circuit ended.
func TestPolicyDeniesAfterFullHandshake(t *testing.T) {
	c, logs := policyMesh(t, map[string]string{"d": destPolicy})
	d := c.node("d")
	// d forgets which certificate attested b's routes, as if it had
	// never verified one.
	d.router.cert.mu.Lock()
	delete(d.router.cert.certOf, "b")
	d.router.cert.mu.Unlock()
	if _, known := d.subjectOf("b"); known {
		t.Fatal("d still knows b's groups")
	}
	err := roundTrip(t, c.node("b"), "d", "ssh", []byte("x"))
	wantRefused(t, "b dials d/ssh on first contact", err, "d", "default deny")
	if re := (*circuit.RefusedError)(nil); errors.As(err, &re) && (!re.Authenticated || strings.Contains(err.Error(), "unauthenticated")) {
		t.Errorf("d's sealed refusal: %v, Authenticated %v; want it authenticated", err, re.Authenticated)
	}
	// The same on a caller that only writes: d forgets b again.
	d.router.cert.mu.Lock()
	delete(d.router.cert.certOf, "b")
	d.router.cert.mu.Unlock()
	d.keyBook.forget("b")
	c.node("b").keyBook.forget("d")
	conn, err := c.node("b").Dial(ctxT(t, 30*time.Second), "d", "ssh")
	if err != nil {
		t.Fatalf("b dials d/ssh again: %v", err)
	}
	defer conn.Close()
	chunk := make([]byte, 1<<10)
	for {
		if _, err = conn.Write(chunk); err != nil {
			break
		}
	}
	wantRefused(t, "b writes to d/ssh after a late denial", err, "d", "default deny")
	if l := logs["d"].String(); !strings.Contains(l, "closed a circuit its authenticated source may not open") || !strings.Contains(l, "b to dial ssh") {
		t.Errorf("d does not log the late denial:\n%s", l)
	}
	// b's name rule for web still lets it in on the same first contact.
	if err := roundTrip(t, c.node("b"), "d", "web", []byte("x")); err != nil {
		t.Fatalf("b dials d/web: %v", err)
	}
}

// A relay rule that denies by the destination's group still denies when
// the relay dropped the groups it verified (a full cache, a reload that
// changed the CA): they are read again from the attestation routing holds,
// and a subject whose groups cannot be known is denied while relay rules
// select by group.
func TestRelayDenyByGroupSurvivesDroppedGroups(t *testing.T) {
	c, _ := policyMesh(t, map[string]string{"r": "deny relay from=* to=group:infra\nallow relay from=* to=*\n"})
	msg := []byte("hello")
	r := c.node("r")
	wantRefused(t, "a to d (infra) through r", roundTrip(t, c.node("a"), "d", "web", msg), "r", "by rule at line 1")
	r.router.cert.mu.Lock()
	clear(r.router.cert.certOf)
	r.router.cert.mu.Unlock()
	wantRefused(t, "a to d through r after r dropped the groups", roundTrip(t, c.node("a"), "d", "web", msg), "r", "by rule at line 1")
	if err := roundTrip(t, c.node("d"), "a", EchoService, msg); err != nil {
		t.Fatalf("d to a (ops) through r: %v", err)
	}
	// A destination no attestation vouches for.
	o := &circuit.Open{Source: "a", Dest: "unheard-of", Service: "web"}
	if _, d := r.relayDecision(o); d.Allowed || !strings.Contains(d.Reason, "groups unknown") {
		t.Fatalf("relaying to a node of unknown groups: %+v, want denied as unknown", d)
	}
	r.SetPolicy(mustPolicy(t, "deny relay from=b to=*\nallow relay from=* to=*\n"))
	if _, d := r.relayDecision(o); !d.Allowed {
		t.Fatalf("relaying to a node of unknown groups under rules by name only: %+v, want allowed", d)
	}
}

// The info service lists to each asker only the services the policy lets
// it dial; under a default-deny dial policy the info service itself must
// be allowed.
func TestInfoListsOnlyServicesTheAskerMayDial(t *testing.T) {
	c, _ := policyMesh(t, map[string]string{"d": destPolicy})
	ctx := ctxT(t, 10*time.Second)
	if _, err := c.node("b").Info(ctx, "d"); !errors.Is(err, circuit.ErrRefusedByPolicy) {
		t.Fatalf("b asks d's info with no rule for it: %v, want refused by policy", err)
	}
	c.node("d").SetPolicy(mustPolicy(t, destPolicy+"allow dial from=* service="+InfoService+"\n"))
	for _, tc := range []struct{ from, want string }{
		{"a", InfoService + ",ssh,web"},
		{"b", InfoService + ",web"},
	} {
		info, err := c.node(tc.from).Info(ctx, "d")
		if err != nil {
			t.Fatalf("%s asks d's info: %v", tc.from, err)
		}
		if got := strings.Join(info.Services, ","); got != tc.want {
			t.Errorf("d's info to %s lists services %q, want %q", tc.from, got, tc.want)
		}
	}
	if got := strings.Join(c.node("d").LocalInfo().Services, ","); !strings.Contains(got, "echo") || !strings.Contains(got, "ssh") {
		t.Errorf("d's own view lists %q, want every service", got)
	}
}
