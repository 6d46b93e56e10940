package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

func TestConfigValidation(t *testing.T) {
	ca, err := identity.NewCA("prod", 0)
	if err != nil {
		t.Fatal(err)
	}
	id, err := ca.Issue("alpha", 0)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no name", Config{Insecure: true}, "Name is required"},
		{"no identity", Config{Name: "a"}, "no identity"},
		{"name differs from certificate", Config{Name: "beta", Identity: id}, `does not match the identity's node name "alpha"`},
		{"mesh differs from certificate", Config{Identity: id, Mesh: "dev"}, `does not match the identity's mesh "prod"`},
		{"negative limit", Config{Name: "a", Insecure: true, Limits: Limits{MaxCircuits: -1}}, "Limits.MaxCircuits must not be negative"},
		{"negative stream aborts budget", Config{Name: "a", Insecure: true, Limits: Limits{StreamAborts: -1}}, "Limits.StreamAborts must not be negative"},
		{"tiny header limit", Config{Name: "a", Insecure: true, Limits: Limits{MaxHeaderSize: 10}}, "MaxHeaderSize"},
		{"bad gossip key", Config{Name: "a", Insecure: true, Discovery: DiscoveryConfig{Key: []byte("short")}}, "16, 24 or 32 bytes"},
		{"max links below target", Config{Name: "a", Insecure: true, Discovery: DiscoveryConfig{TargetLinks: 6, MaxLinks: 4}}, "at least Discovery.TargetLinks"},
		{"missing files", Config{Name: "a", DataDir: t.TempDir()}, "node.crt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// The identity alone is enough: name and mesh come from it.
	n, err := New(Config{Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	if n.Name() != "alpha" || n.Status().Mesh != "prod" {
		t.Fatalf("name %q mesh %q from the identity", n.Name(), n.Status().Mesh)
	}
	n.Close()
	// Missing identity files wrap identity.ErrNoIdentity.
	if _, err := New(Config{Name: "a", DataDir: t.TempDir()}); !errors.Is(err, identity.ErrNoIdentity) {
		t.Fatalf("missing files: %v", err)
	}
}

func TestIdentityFromDataDir(t *testing.T) {
	ca, _ := identity.NewCA("test", 0)
	id, _ := ca.Issue("a", 0)
	dir := t.TempDir()
	if err := identity.SaveIdentity(dir, id, false); err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Name: "a", Mesh: "test", DataDir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.Addr() == nil || n.Status().Insecure {
		t.Fatalf("status %+v", n.Status())
	}
}

func TestPingReportsPathAndTimes(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-r", "r-b")
	c.waitRoute("a", "b", 2)
	res, err := c.nodes["a"].Ping(ctxT(t, 5*time.Second), "b")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Path, " ") != "a r b" || res.Open <= 0 || res.RTT <= 0 {
		t.Fatalf("ping result %+v", res)
	}
}

// TestMetricsAndStatus checks a relay's metrics and status after circuits
// and a refusal.
func TestMetricsAndStatus(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-r", "r-b")
	c.waitRoute("a", "b", 2)
	if err := roundTrip(t, c.nodes["a"], "b", EchoService, []byte("m")); err != nil {
		t.Fatal(err)
	}
	_, _ = c.nodes["a"].Dial(ctxT(t, time.Second), "b", "missing")
	rec := httptest.NewRecorder()
	c.nodes["r"].MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`circuitmesh_circuits_opened_total{role="relay"} 2`,
		`circuitmesh_links 2`,
		`circuitmesh_peers_reachable 2`,
		`circuitmesh_routes 2`,
		`circuitmesh_link_streams{peer="a"}`,
		`circuitmesh_link_cost{peer="b",pinned="false"}`,
		`circuitmesh_link_rtt_seconds{peer="a"}`,
		`circuitmesh_build_info{commit=`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("relay metrics lack %q", want)
		}
	}
	rec = httptest.NewRecorder()
	c.nodes["b"].MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `circuitmesh_circuits_refused_total{code="no_such_service"} 1`) {
		t.Errorf("destination metrics lack the refusal:\n%s", grepLines(rec.Body.String(), "refused"))
	}
	st := c.nodes["r"].Status()
	if st.Name != "r" || st.Links != 2 || st.Reachable != 2 || st.Role != "router" {
		t.Fatalf("status %+v", st)
	}
	ls := c.nodes["a"].Links()
	if len(ls) != 1 || ls[0].Peer != "r" || ls[0].RTT <= 0 || ls[0].Cost == 0 || ls[0].Address == "" {
		t.Fatalf("links %+v", ls)
	}
	ps := c.nodes["a"].Peers()
	if len(ps) != 2 || ps[0].Name != "b" || ps[0].NextHop != "r" || ps[0].Hops != 2 {
		t.Fatalf("peers %+v", ps)
	}
	// Every node's live metrics pass promlint, the checks of `promtool check
	// metrics`.
	for _, name := range []string{"a", "r", "b"} {
		rec := httptest.NewRecorder()
		c.nodes[name].MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		problems, err := promlint.New(rec.Body).Lint()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s: %s", name, p.Metric, p.Text)
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestListenRules(t *testing.T) {
	c := newCluster(t, false)
	a := c.add("a")
	l, err := a.Listen("svc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Listen("svc"); !errors.Is(err, ErrServiceInUse) {
		t.Fatalf("second listener: %v", err)
	}
	if l, err := a.Listen(""); !errors.Is(err, ErrInvalidService) || l != nil {
		t.Fatalf("empty service: listener %v, error %v; want no listener and ErrInvalidService", l, err)
	}
	if got := strings.Join(a.Services(), ","); got != "_info,echo,svc" {
		t.Fatalf("services %q", got)
	}
	if l.Addr().String() != "a/svc" {
		t.Fatalf("listener addr %s", l.Addr())
	}
	l.Close()
	if _, err := l.Accept(); err == nil {
		t.Fatal("accept on a closed listener succeeded")
	}
	if _, err := a.Listen("svc"); err != nil {
		t.Fatalf("listen again after close: %v", err)
	}
}

func TestGossipDiscoveryLinksNodes(t *testing.T) {
	// No static links: gossip alone makes the mesh.
	c := gossipMesh(t, "a", "b", "c")
	a := c.nodes["a"]
	seed := a.Status().GossipAddr
	if len(a.Members()) != 3 {
		t.Fatalf("members %+v", a.Members())
	}
	if err := roundTrip(t, c.nodes["b"], "c", EchoService, []byte("found you")); err != nil {
		t.Fatal(err)
	}
	// A node with another gossip key is not let in.
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: bytes.Repeat([]byte{8}, 32), Join: []string{seed}}
	}
	c.add("x")
	time.Sleep(500 * time.Millisecond)
	if len(a.Members()) != 3 {
		t.Fatalf("a node with a wrong gossip key joined: %+v", a.Members())
	}
	_ = io.Discard
}

func TestSubscribersAreBounded(t *testing.T) {
	c := newCluster(t, false)
	a := c.add("a")
	// The cluster's event collector is the first subscriber.
	for i := 1; i < MaxSubscribers; i++ {
		ch, cancel, err := a.Subscribe(1)
		if err != nil {
			t.Fatalf("subscriber %d of %d: %v", i+1, MaxSubscribers, err)
		}
		defer cancel()
		select {
		case _, open := <-ch:
			if !open {
				t.Fatalf("subscriber %d of %d got a closed channel", i+1, MaxSubscribers)
			}
		default:
		}
	}
	if _, _, err := a.Subscribe(1); !errors.Is(err, ErrTooManySubscribers) {
		t.Fatalf("a subscriber beyond MaxSubscribers: %v, want ErrTooManySubscribers", err)
	}
}

// linkedNodeMetrics gathers the metric families of a node with one live
// link and a route.
func linkedNodeMetrics(t *testing.T) []*dto.MetricFamily {
	t.Helper()
	c := newCluster(t, true)
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	fams, err := c.nodes["a"].metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// TestEveryMetricIsDocumented keeps docs/METRICS.md in step with the code.
func TestEveryMetricIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/METRICS.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for _, m := range metricRows.FindAllStringSubmatch(string(doc), -1) {
		rows[m[1]] = true
	}
	// A node with gossip and a link exports every metric there is.
	fams, err := gossipMesh(t, "a", "b").nodes["a"].metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, f := range fams {
		name := f.GetName()
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			continue
		}
		seen++
		if !rows[name] {
			t.Errorf("metric %s has no row in docs/METRICS.md", name)
		}
	}
	if seen < 15 {
		t.Fatalf("only %d circuitmesh metrics gathered", seen)
	}
}

func TestUnlinkStopsAStaticLink(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-b", "b-c", "a-c")
	c.waitConverged()
	a, b := c.nodes["a"], c.nodes["b"]
	addr := b.Addr().String()
	if err := a.Unlink("127.0.0.1:1"); !errors.Is(err, ErrNotLinked) {
		t.Fatalf("unlink of an address never linked: %v, want ErrNotLinked", err)
	}
	if err := a.Unlink(addr); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); a.link("b") != nil || b.link("a") != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the a-b link is still up 10s after Unlink")
		}
	}
	c.waitNextHop("a", "b", "c") // routing moved to the remaining path
	// No redial: the link stays down.
	time.Sleep(500 * time.Millisecond)
	if a.link("b") != nil {
		t.Fatal("a redialled b after Unlink")
	}
	if err := a.Unlink(addr); !errors.Is(err, ErrNotLinked) {
		t.Fatalf("second unlink: %v, want ErrNotLinked", err)
	}
}

func TestLinkCostPinsAreBounded(t *testing.T) {
	c := newCluster(t, false)
	a := c.add("a")
	for i := range MaxLinkCostPins {
		if err := a.SetLinkCost(fmt.Sprintf("p%d", i), 100); err != nil {
			t.Fatalf("pin %d: %v", i, err)
		}
	}
	if err := a.SetLinkCost("one-more", 100); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("pin past the bound: %v, want ErrInvalidConfig", err)
	}
	if err := a.SetLinkCost("p0", 200); err != nil {
		t.Fatalf("re-pinning an existing peer at the bound: %v", err)
	}
	if err := a.SetLinkCost("p0", 0); err != nil {
		t.Fatal(err)
	}
	if err := a.SetLinkCost("one-more", 100); err != nil {
		t.Fatalf("pin after one was released: %v", err)
	}
}
