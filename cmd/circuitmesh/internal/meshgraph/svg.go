package meshgraph

import (
	"fmt"
	"html"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/circuitmesh/circuitmesh/node"
)

// SVGOptions adjusts the SVG picture.
type SVGOptions struct {
	// Path highlights the links between consecutive nodes of a path
	// (source first), e.g. a ping's recorded path.
	Path []string
}

// placed is a node's position in the picture.
type placed struct {
	name, label, state string // state: "origin", "up" or "down"
	x, y               float64
}

// layout places the origin at the top of a circle and every other node
// (answering, unreachable, or only named by a link), sorted by name,
// clockwise after it, so that a node keeps its place while the set of
// nodes stays the same.
func layout(g node.Graph) ([]placed, float64, float64) {
	byName := map[string]placed{}
	for _, l := range g.Links {
		byName[l.A] = placed{name: l.A, label: "not queried", state: "down"}
		byName[l.B] = placed{name: l.B, label: "not queried", state: "down"}
	}
	for _, u := range g.Unreachable {
		byName[u.Name] = placed{name: u.Name, label: "unreachable", state: "down"}
	}
	for _, n := range g.Nodes {
		state := "up"
		if n.Name == g.Origin {
			state = "origin"
		}
		byName[n.Name] = placed{name: n.Name, label: nodeLabel(n), state: state}
	}
	ps := make([]placed, 0, len(byName))
	for _, p := range byName {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool {
		if oi, oj := ps[i].name == g.Origin, ps[j].name == g.Origin; oi != oj {
			return oi
		}
		return ps[i].name < ps[j].name
	})
	r := math.Max(160, 90*float64(len(ps))/math.Pi)
	w, h := 2*r+320, 2*r+200
	for i := range ps {
		a := 2*math.Pi*float64(i)/float64(len(ps)) - math.Pi/2
		if len(ps) == 1 {
			a = -math.Pi / 2
			ps[i].x, ps[i].y = w/2, h/2
			continue
		}
		ps[i].x, ps[i].y = w/2+r*math.Cos(a), h/2+r*math.Sin(a)
	}
	return ps, w, h
}

// SVG draws g: a circle per node (named, with its role, version and
// services), a line per link coloured by quality and labelled with its
// cost (dashed when only one end reported it), and the links of opt.Path
// highlighted. Elements carry data-node, data-a/data-b, data-quality and,
// on a link one end reported, data-reported-by attributes for scripts and
// tests.
func SVG(w io.Writer, g node.Graph, opt SVGOptions) error {
	ps, width, height := layout(g)
	pos := map[string]placed{}
	for _, p := range ps {
		pos[p.name] = p
	}
	onPath := map[[2]string]bool{}
	for i := 0; i+1 < len(opt.Path); i++ {
		a, b := opt.Path[i], opt.Path[i+1]
		if b < a {
			a, b = b, a
		}
		onPath[[2]string{a, b}] = true
	}
	e := html.EscapeString
	b := &strings.Builder{}
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" font-family="sans-serif" font-size="13" data-origin="%s">`+"\n",
		width, height, width, height, e(g.Origin))
	fmt.Fprintf(b, `<text x="12" y="22" font-size="14">mesh seen from %s · %d nodes, %d links, %d unreachable</text>`+"\n",
		e(g.Origin), len(g.Nodes), len(g.Links), len(g.Unreachable))
	b.WriteString(`<g class="links">` + "\n")
	for _, l := range g.Links {
		pa, pb := pos[l.A], pos[l.B]
		stroke, width, class := colour(l.Quality), 3, "link"
		if onPath[[2]string{l.A, l.B}] {
			class += " on-path"
		}
		fmt.Fprintf(b, `<g class="%s" data-a="%s" data-b="%s" data-quality="%s"`, class, e(l.A), e(l.B), e(l.Quality))
		dash := ""
		if l.ReportedBy != "" {
			fmt.Fprintf(b, ` data-reported-by="%s"`, e(l.ReportedBy))
			dash = ` stroke-dasharray="8 5"`
		}
		b.WriteString(">")
		if strings.Contains(class, "on-path") {
			fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="11" stroke-opacity="0.45" stroke-linecap="round"/>`,
				pa.x, pa.y, pb.x, pb.y, pathColour)
		}
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%d"%s><title>%s — %s: %s</title></line>`,
			pa.x, pa.y, pb.x, pb.y, stroke, width, dash, e(l.A), e(l.B), e(linkLabel(l)))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11" fill="#333" paint-order="stroke" stroke="#fff" stroke-width="3">%d</text></g>`+"\n",
			(pa.x+pb.x)/2, (pa.y+pb.y)/2-4, l.Cost)
	}
	b.WriteString("</g>\n" + `<g class="nodes">` + "\n")
	for _, p := range ps {
		fill, stroke, dash := "#e3f2fd", "#0d47a1", ""
		switch p.state {
		case "origin":
			fill = "#bbdefb"
		case "down":
			fill, stroke, dash = "#f5f5f5", downColour, ` stroke-dasharray="5 4"`
		}
		fmt.Fprintf(b, `<g class="node" data-node="%s" data-state="%s" transform="translate(%.1f %.1f)">`, e(p.name), p.state, p.x, p.y)
		fmt.Fprintf(b, `<circle r="24" fill="%s" stroke="%s" stroke-width="2"%s/>`, fill, stroke, dash)
		fmt.Fprintf(b, `<text text-anchor="middle" dy="5" font-weight="bold">%s</text>`, e(p.name))
		fmt.Fprintf(b, `<text text-anchor="middle" dy="42" font-size="11" fill="#555">%s</text></g>`+"\n", e(p.label))
	}
	b.WriteString("</g>\n")
	legend := []struct{ name, colour, dash string }{{"good", colour("good"), ""}, {"fair (≥1% loss or ≥50ms)", colour("fair"), ""},
		{"poor (≥5% loss or ≥250ms)", colour("poor"), ""}, {"path", pathColour, ""},
		{"reported by one end only", downColour, ` stroke-dasharray="8 5"`}}
	for i, l := range legend {
		y := height - 18*float64(len(legend)-i)
		fmt.Fprintf(b, `<line x1="12" y1="%.0f" x2="36" y2="%.0f" stroke="%s" stroke-width="4"%s/><text x="42" y="%.0f" font-size="11">%s</text>`+"\n",
			y-4, y-4, l.colour, l.dash, y, e(l.name))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
