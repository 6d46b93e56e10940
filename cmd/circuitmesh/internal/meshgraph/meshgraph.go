// Package meshgraph prints a mesh graph (node.Graph) as Graphviz DOT,
// Mermaid or SVG. The SVG is drawn here, without Graphviz: nodes sorted by
// name on a circle, the gathering node at the top, so the same graph always
// gives the same picture. Links are coloured by their quality class
// (node.LinkQuality) and the links of a highlighted path drawn over them;
// a link only one end reported (node.GraphLink.ReportedBy) is dashed and
// its label says who reported it.
package meshgraph

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/circuitmesh/circuitmesh/node"
)

// Colours of the quality classes, of unreachable nodes and of a path.
var qualityColour = map[string]string{"good": "#2e7d32", "fair": "#f9a825", "poor": "#c62828"}

const (
	downColour = "#9e9e9e"
	pathColour = "#1565c0"
)

func colour(quality string) string {
	if c, ok := qualityColour[quality]; ok {
		return c
	}
	return downColour
}

// linkLabel is the text shown on a link.
func linkLabel(l node.GraphLink) string {
	s := fmt.Sprintf("cost %d, rtt %s, loss %.1f%%", l.Cost, fmtRTT(l.RTT), 100*l.Loss)
	if l.ReportedBy != "" {
		s += ", reported by " + l.ReportedBy + " only"
	}
	return s
}

// nodeLabel is the second line shown under a node's name.
func nodeLabel(n node.GraphNode) string {
	s := n.Role + " " + n.Version
	if svc := userServices(n.Services); len(svc) > 0 {
		s += " · " + strings.Join(svc, ",")
	}
	return s
}

// userServices drops the built-in services every node has.
func userServices(svc []string) []string {
	var out []string
	for _, s := range svc {
		if s != node.EchoService && s != node.InfoService {
			out = append(out, s)
		}
	}
	return out
}

func fmtRTT(d time.Duration) string {
	switch {
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0fms", float64(d)/1e6)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.0fµs", float64(d)/1e3)
}

// DOT writes g as an undirected Graphviz graph.
func DOT(w io.Writer, g node.Graph) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "graph mesh {\n\tlabel=%s;\n\tnode [shape=box, style=rounded];\n",
		dotQuote(fmt.Sprintf("mesh seen from %s at %s", g.Origin, g.Taken.UTC().Format(time.RFC3339))))
	for _, n := range g.Nodes {
		attrs := ""
		if n.Name == g.Origin {
			attrs = ", penwidth=2"
		}
		fmt.Fprintf(b, "\t%s [label=%s%s];\n", dotQuote(n.Name), dotQuote(n.Name+"\n"+nodeLabel(n)), attrs)
	}
	for _, u := range g.Unreachable {
		fmt.Fprintf(b, "\t%s [label=%s, style=\"rounded,dashed\", color=%q, fontcolor=%q];\n",
			dotQuote(u.Name), dotQuote(u.Name+"\nunreachable"), downColour, downColour)
	}
	for _, l := range g.Links {
		dashed := ""
		if l.ReportedBy != "" {
			dashed = ", style=dashed"
		}
		fmt.Fprintf(b, "\t%s -- %s [label=%s, color=%q%s];\n", dotQuote(l.A), dotQuote(l.B), dotQuote(linkLabel(l)), colour(l.Quality), dashed)
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// dotQuote quotes s as a DOT string.
func dotQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// Mermaid writes g as a Mermaid flowchart.
func Mermaid(w io.Writer, g node.Graph) error {
	b := &strings.Builder{}
	b.WriteString("graph LR\n")
	ids := map[string]string{}
	id := func(name string) string {
		if v, ok := ids[name]; ok {
			return v
		}
		v := fmt.Sprintf("n%d", len(ids))
		ids[name] = v
		return v
	}
	for _, n := range g.Nodes {
		fmt.Fprintf(b, "\t%s[%s]\n", id(n.Name), mermaidQuote(mermaidText(n.Name)+"<br/>"+mermaidText(nodeLabel(n))))
	}
	for _, u := range g.Unreachable {
		fmt.Fprintf(b, "\t%s[%s]:::down\n", id(u.Name), mermaidQuote(mermaidText(u.Name)+"<br/>unreachable"))
	}
	for _, l := range g.Links {
		fmt.Fprintf(b, "\t%s ---|%s| %s\n", id(l.A), mermaidQuote(mermaidText(linkLabel(l))), id(l.B))
	}
	for i, l := range g.Links {
		dashed := ""
		if l.ReportedBy != "" {
			dashed = ",stroke-dasharray:5 5"
		}
		fmt.Fprintf(b, "\tlinkStyle %d stroke:%s,stroke-width:2px%s\n", i, colour(l.Quality), dashed)
	}
	fmt.Fprintf(b, "\tclassDef down stroke-dasharray:5 5,color:%s\n", downColour)
	_, err := io.WriteString(w, b.String())
	return err
}

// mermaidQuote quotes a Mermaid label.
func mermaidQuote(s string) string { return `"` + s + `"` }

// mermaidText escapes text for a Mermaid label, which may hold markup.
func mermaidText(s string) string {
	return strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;", "&", "#amp;").Replace(s)
}
