package node

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// dashPanel is a panel of the Grafana dashboard; a row holds panels.
type dashPanel struct {
	Title   string `json:"title"`
	Type    string `json:"type"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"`
}

// TestGrafanaDashboardQueriesExistingMetrics parses the dashboard in
// deploy/grafana and checks that every metric its queries name is one a
// node exports, and that every label a query selects or groups by is one
// of those metrics' labels (or instance, job, le, which Prometheus and
// histograms add).
func TestGrafanaDashboardQueriesExistingMetrics(t *testing.T) {
	raw, err := os.ReadFile("../deploy/grafana/circuitmesh.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels     []dashPanel `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	labels := map[string]map[string]bool{} // metric → its label names
	for _, f := range linkedNodeMetrics(t) {
		names := []string{f.GetName()}
		if f.GetType() == dto.MetricType_HISTOGRAM { // its series
			names = append(names, f.GetName()+"_bucket", f.GetName()+"_sum", f.GetName()+"_count")
		}
		for _, name := range names {
			labels[name] = map[string]bool{"instance": true, "job": true}
			for _, m := range f.GetMetric() {
				for _, lp := range m.GetLabel() {
					labels[name][lp.GetName()] = true
				}
			}
		}
		if f.GetType() == dto.MetricType_HISTOGRAM {
			labels[f.GetName()+"_bucket"]["le"] = true
		}
	}
	var exprs []string
	panels := 0
	var walk func(ps []dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			panels++
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				exprs = append(exprs, tg.Expr)
			}
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		exprs = append(exprs, v.Definition)
	}

	metricName := regexp.MustCompile(`\b(circuitmesh|go|process)_[a-z_]+\b`)
	grouping := regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	selector := regexp.MustCompile(`\{([^}]*)\}`)
	matcher := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	checked := 0
	for _, e := range exprs {
		names := metricName.FindAllString(e, -1)
		if len(names) == 0 && e != "" {
			t.Errorf("query %q names no metric", e)
		}
		// A label is fine when one of the query's metrics has it.
		has := func(label string) bool {
			for _, name := range names {
				if labels[name][label] {
					return true
				}
			}
			return false
		}
		for _, name := range names {
			checked++
			if labels[name] == nil {
				t.Errorf("query %q uses %s, which no node exports", e, name)
			}
		}
		var used []string
		for _, g := range grouping.FindAllStringSubmatch(e, -1) {
			for _, l := range strings.Split(g[1], ",") {
				used = append(used, strings.TrimSpace(l))
			}
		}
		for _, s := range selector.FindAllStringSubmatch(e, -1) {
			for _, m := range matcher.FindAllStringSubmatch(s[1], -1) {
				used = append(used, m[1])
			}
		}
		for _, l := range used {
			if l != "" && !has(l) {
				t.Errorf("query %q selects or groups by label %q, which none of %v has", e, l, names)
			}
		}
	}
	if panels < 8 || checked < 10 {
		t.Fatalf("%d panels, %d metric references: the dashboard looks empty", panels, checked)
	}
}
