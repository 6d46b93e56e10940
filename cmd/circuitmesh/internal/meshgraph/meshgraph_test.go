package meshgraph

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/node"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// mesh starts real nodes over QUIC on loopback and links every "a-b" edge.
func mesh(t *testing.T, tweak func(*node.Config), edges ...string) map[string]*node.Node {
	t.Helper()
	ca, err := identity.NewCA("graph", 0)
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]*node.Node{}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.Close()
		}
	})
	get := func(name string) *node.Node {
		if n := nodes[name]; n != nil {
			return n
		}
		id, err := ca.Issue(name, 0)
		if err != nil {
			t.Fatal(err)
		}
		cfg := node.Config{Identity: id, GracePeriod: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		if tweak != nil {
			tweak(&cfg)
		}
		n, err := node.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		nodes[name] = n
		return n
	}
	for _, e := range edges {
		a, b, _ := strings.Cut(e, "-")
		na, nb := get(a), get(b)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := na.Link(ctx, nb.Addr().String())
		cancel()
		if err != nil {
			t.Fatalf("link %s: %v", e, err)
		}
	}
	return nodes
}

// gather waits until from's topology has the links want ("a-b c-d"),
// sorted, and returns it.
func gather(t *testing.T, from *node.Node, want string) node.Graph {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		g, err := from.Topology(ctx, node.TopologyOptions{})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range g.Links {
			got = append(got, l.A+"-"+l.B)
		}
		if strings.Join(got, " ") == want {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("links %q, want %q (unreachable %+v)", got, want, g.Unreachable)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestFormatsOfARealMesh(t *testing.T) {
	nodes := mesh(t, func(c *node.Config) { c.DisableInfo = c.Identity.Node == "d" }, "a-b", "b-c", "c-d", "a-c")
	lis, err := nodes["c"].Listen("web")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	g := gather(t, nodes["a"], "a-b a-c b-c c-d")
	// c-d is drawn in the colour of the quality class c measured for it.
	// Which class a loopback link gets follows its RTT: on a loaded
	// machine it can be fair or poor (TestLinksAreColouredByQuality pins
	// each class to its colour).
	var cd node.GraphLink
	for _, l := range g.Links {
		if l.A == "c" && l.B == "d" {
			cd = l
		}
	}
	cdColour, ok := classColour[cd.Quality]
	if !ok {
		t.Fatalf("link c-d has no quality class: %+v", cd)
	}

	var dot bytes.Buffer
	if err := DOT(&dot, g); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`graph mesh {`, `"a" -- "b" [label="cost `, `"a" -- "c"`, `"b" -- "c"`, `"c" -- "d"`,
		`"c" [label="c\nrouter `, `· web"`, `"d" [label="d\nunreachable", style="rounded,dashed"`,
		`, reported by c only", color="` + cdColour + `", style=dashed];`} {
		if !strings.Contains(dot.String(), want) {
			t.Errorf("DOT lacks %q:\n%s", want, dot.String())
		}
	}
	// d does not answer: only c-d rests on one end's word.
	if strings.Count(dot.String(), " -- ") != 4 || strings.Count(dot.String(), "style=dashed]") != 1 {
		t.Errorf("DOT has %d edges, want 4:\n%s", strings.Count(dot.String(), " -- "), dot.String())
	}

	var mer bytes.Buffer
	if err := Mermaid(&mer, g); err != nil {
		t.Fatal(err)
	}
	m := mer.String()
	edge := regexp.MustCompile(`(?m)^\t(n\d+) ---\|"cost \d+, rtt [^"]+"\| (n\d+)$`)
	if !strings.HasPrefix(m, "graph LR\n") || len(edge.FindAllString(m, -1)) != 4 || strings.Count(m, "linkStyle ") != 4 ||
		strings.Count(m, ",stroke-dasharray:5 5\n") != 1 || !strings.Contains(m, `reported by c only"|`) ||
		!strings.Contains(m, `["d<br/>unreachable"]:::down`) {
		t.Errorf("Mermaid output:\n%s", m)
	}

	var js bytes.Buffer
	if err := json.NewEncoder(&js).Encode(g); err != nil {
		t.Fatal(err)
	}
	var back node.Graph
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Nodes) != 3 || len(back.Links) != 4 ||
		len(back.Unreachable) != 1 || back.Unreachable[0].Name != "d" {
		t.Errorf("JSON round trip: %+v, %v", back, err)
	}

	var svg1, svg2 bytes.Buffer
	path := []string{"a", "c", "d"}
	if err := SVG(&svg1, g, SVGOptions{Path: path}); err != nil {
		t.Fatal(err)
	}
	SVG(&svg2, g, SVGOptions{Path: path})
	if svg1.String() != svg2.String() {
		t.Error("the same graph drew two different pictures")
	}
	checkSVG(t, svg1.String(), []string{"a", "b", "c", "d"}, 4, []string{"a-c", "c-d"})
	if !regexp.MustCompile(`data-a="c" data-b="d" data-quality="[a-z]+" data-reported-by="c">`).MatchString(svg1.String()) ||
		!strings.Contains(svg1.String(), `stroke-dasharray="8 5"><title>c — d: `) ||
		strings.Count(svg1.String(), "data-reported-by=") != 1 || strings.Count(svg1.String(), `stroke-dasharray="8 5"><title>`) != 1 {
		t.Errorf("SVG does not dash c-d alone as reported by c only:\n%s", svg1.String())
	}
}

// checkSVG parses the picture as XML and checks its nodes, link count and
// highlighted links.
func checkSVG(t *testing.T, svg string, nodes []string, links int, onPath []string) {
	t.Helper()
	type g struct {
		Class string `xml:"class,attr"`
		Node  string `xml:"data-node,attr"`
		A     string `xml:"data-a,attr"`
		B     string `xml:"data-b,attr"`
		Kids  []g    `xml:"g"`
	}
	var doc struct {
		XMLName xml.Name `xml:"svg"`
		Groups  []g      `xml:"g"`
	}
	if err := xml.Unmarshal([]byte(svg), &doc); err != nil {
		t.Fatalf("SVG is not well-formed XML: %v\n%s", err, svg)
	}
	var gotNodes, gotPath []string
	gotLinks := 0
	for _, grp := range doc.Groups {
		for _, k := range grp.Kids {
			switch {
			case k.Class == "node":
				gotNodes = append(gotNodes, k.Node)
			case strings.HasPrefix(k.Class, "link"):
				gotLinks++
				if strings.Contains(k.Class, "on-path") {
					gotPath = append(gotPath, k.A+"-"+k.B)
				}
			}
		}
	}
	sort.Strings(gotNodes)
	sort.Strings(gotPath)
	if strings.Join(gotNodes, " ") != strings.Join(nodes, " ") || gotLinks != links || strings.Join(gotPath, " ") != strings.Join(onPath, " ") {
		t.Fatalf("SVG draws nodes %v, %d links, path %v; want %v, %d, %v", gotNodes, gotLinks, gotPath, nodes, links, onPath)
	}
}

func TestQuotingOfOddNames(t *testing.T) {
	g := node.Graph{Origin: `a"<b>`, Nodes: []node.GraphNode{{NodeInfo: node.NodeInfo{Name: `a"<b>`, Role: "router", Services: []string{`x"y`}}}},
		Links: []node.GraphLink{{A: `a"<b>`, B: `c\d`, Cost: 5, Quality: "good"}}}
	var dot, mer, svg bytes.Buffer
	DOT(&dot, g)
	Mermaid(&mer, g)
	SVG(&svg, g, SVGOptions{})
	if !strings.Contains(dot.String(), `"a\"<b>" -- "c\\d"`) {
		t.Errorf("DOT quoting:\n%s", dot.String())
	}
	if strings.Contains(mer.String(), `<b>`) || !strings.Contains(mer.String(), `a#quot;#lt;b#gt;`) {
		t.Errorf("Mermaid quoting:\n%s", mer.String())
	}
	checkSVG(t, svg.String(), []string{`a"<b>`, `c\d`}, 1, nil)
}

// classColour is the colour of each link quality class.
var classColour = map[string]string{"good": "#2e7d32", "fair": "#f9a825", "poor": "#c62828"}

func TestLinksAreColouredByQuality(t *testing.T) {
	g := node.Graph{Origin: "a"}
	for _, n := range []string{"a", "b", "c", "d"} {
		g.Nodes = append(g.Nodes, node.GraphNode{NodeInfo: node.NodeInfo{Name: n, Role: "router"}})
	}
	for _, l := range []struct {
		b    string
		rtt  time.Duration
		loss float64
	}{{"b", time.Millisecond, 0}, {"c", 80 * time.Millisecond, 0}, {"d", time.Millisecond, 0.2}} {
		g.Links = append(g.Links, node.GraphLink{A: "a", B: l.b, RTT: l.rtt, Loss: l.loss, Cost: 10, Quality: node.LinkQuality(l.rtt, l.loss)})
	}
	var svg, dot bytes.Buffer
	SVG(&svg, g, SVGOptions{})
	DOT(&dot, g)
	for b, class := range map[string]string{"b": "good", "c": "fair", "d": "poor"} {
		want := classColour[class]
		link := regexp.MustCompile(`data-a="a" data-b="` + b + `" data-quality="[a-z]+"><line [^>]*stroke="([^"]+)"`).FindStringSubmatch(svg.String())
		if link == nil || link[1] != want {
			t.Errorf("SVG link a-%s: %v, want stroke %s", b, link, want)
		}
		if !strings.Contains(dot.String(), `"a" -- "`+b+`" [label="cost 10, `) || !regexp.MustCompile(`"a" -- "`+b+`" [^\n]*color="`+want+`"`).MatchString(dot.String()) {
			t.Errorf("DOT link a-%s is not coloured %s:\n%s", b, want, dot.String())
		}
	}
}
