package node

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/circuit/seal"
)

// metricDoc is what a row of docs/METRICS.md says of one metric: its
// labels, and for each the values the row (or, for a label it names
// without values, the nearest row above that gave them) lists.
type metricDoc struct {
	labels map[string][]string
	row    string
}

var backticked = regexp.MustCompile("`([^`]+)`")

// freeLabels take values no list can hold: names and versions.
var freeLabels = map[string]bool{"peer": true, "version": true, "commit": true, "go_version": true}

// readMetricDocs parses the metric table of docs/METRICS.md.
func readMetricDocs(t *testing.T) map[string]metricDoc {
	t.Helper()
	doc, err := os.ReadFile("../docs/METRICS.md")
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]metricDoc{}
	given := map[string][]string{} // a label's values, as the last row to list them has them
	for _, line := range strings.Split(string(doc), "\n") {
		m := metricRows.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		cols := strings.Split(line, "|")
		if len(cols) < 5 {
			t.Fatalf("row of %s has %d columns", m[1], len(cols)-2)
		}
		d := metricDoc{labels: map[string][]string{}, row: line}
		for _, l := range docLabels(cols[3]) {
			if l.values == nil {
				l.values = given[l.name]
			} else {
				given[l.name] = l.values
			}
			d.labels[l.name] = l.values
		}
		docs[m[1]] = d
	}
	if len(docs) < 20 {
		t.Fatalf("docs/METRICS.md lists %d metrics", len(docs))
	}
	return docs
}

type docLabel struct {
	name   string
	values []string
}

// docLabels reads a labels column: "`role` (`dial`, `accept`)": each
// backticked name outside parentheses is a label, and the backticked words
// of the parenthesised text right after it are its values.
func docLabels(col string) []docLabel {
	var out []docLabel
	for i := 0; i < len(col); i++ {
		switch col[i] {
		case '`':
			end := strings.IndexByte(col[i+1:], '`')
			if end < 0 {
				return out
			}
			out = append(out, docLabel{name: col[i+1 : i+1+end]})
			i += end + 1
		case '(':
			depth, j := 0, i
			for ; j < len(col); j++ {
				if col[j] == '(' {
					depth++
				} else if col[j] == ')' {
					if depth--; depth == 0 {
						break
					}
				}
			}
			if len(out) > 0 && out[len(out)-1].values == nil {
				vals := []string{}
				for _, v := range backticked.FindAllStringSubmatch(col[i:min(j, len(col))], -1) {
					vals = append(vals, v[1])
				}
				out[len(out)-1].values = vals
			}
			i = j
		}
	}
	return out
}

// checkLabelsDocumented fails when a metric n exports has other label
// names than its row in docs/METRICS.md, or a label value the row does not
// list.
func checkLabelsDocumented(t *testing.T, n *Node) {
	t.Helper()
	docs := readMetricDocs(t)
	fams, err := n.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range fams {
		d, ok := docs[f.GetName()]
		if !ok {
			continue // TestEveryMetricIsDocumented reports it
		}
		names := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				names[lp.GetName()] = true
				if freeLabels[lp.GetName()] {
					continue
				}
				allowed := append([]string(nil), d.labels[lp.GetName()]...)
				if f.GetName() == "circuitmesh_circuit_open_seconds" && lp.GetName() == "result" {
					allowed = append(allowed, docs["circuitmesh_circuits_refused_total"].labels["code"]...) // "a refusal `code`"
				}
				if !contains(allowed, lp.GetValue()) {
					t.Errorf("%s{%s=%q} is exported; docs/METRICS.md lists the values %q", f.GetName(), lp.GetName(), lp.GetValue(), allowed)
				}
				checked++
			}
		}
		if len(f.GetMetric()) == 0 {
			continue
		}
		var got, want []string
		for l := range names {
			got = append(got, l)
		}
		for l := range d.labels {
			want = append(want, l)
		}
		sort.Strings(got)
		sort.Strings(want)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s has the labels %q; docs/METRICS.md names %q", f.GetName(), got, want)
		}
	}
	if checked < 30 {
		t.Fatalf("only %d labelled series checked", checked)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Every label a node with gossip and a link exports is the one
// docs/METRICS.md names for its metric, with a value the row lists (the
// series created from zero, such as every reason of
// circuitmesh_gossip_refused_total, included).
func TestMetricLabelsAreDocumented(t *testing.T) {
	c := gossipMesh(t, "a", "b")
	a := c.nodes["a"]
	waitFor(t, "a's link cost series", 20*time.Second, func() bool {
		return len(labelValues(t, a, "circuitmesh_link_cost", "pinned")) > 0
	})
	checkLabelsDocumented(t, a)
}

// A destination that cannot take a one-message handshake refuses the open
// with the retry code; circuitmesh_circuits_refused_total counts it under
// a code docs/METRICS.md lists.
func TestRetryRefusalCodeIsDocumented(t *testing.T) {
	c := newCluster(t, true)
	c.build("m-b")
	c.waitRoute("m", "b", 1)
	b, m := c.nodes["b"], c.nodes["m"]
	serve(t, b, "svc", echoHandler)
	s, err := m.link("b").OpenStream(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset(circuit.CloseCancelled)
	o := &circuit.Open{Dest: "b", Source: "m", Service: "svc", Hop: 0, HopLimit: 10, Flags: circuit.FlagSealed}
	buf, err := o.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(seal.AppendMessage(buf, []byte{1, 2, 3})); err != nil { // not a handshake message
		t.Fatal(err)
	}
	res, err := circuit.ReadResult(s, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Code != circuit.Retry {
		t.Fatalf("undecryptable first message: result %v (%s), want retry", res.Code, res.Reason)
	}
	if v := metricValue(t, b, "circuitmesh_circuits_refused_total", "code", codeLabel(circuit.Retry)); v != 1 {
		t.Fatalf("circuitmesh_circuits_refused_total{code=%q} is %v, want 1", codeLabel(circuit.Retry), v)
	}
	checkLabelsDocumented(t, b)
}
