package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/node"
)

func TestE2EGraphPrintsTheMeshInEveryFormat(t *testing.T) {
	l := newLab(t, "graph")
	a := l.start("a", "")
	b := l.start("b", "", "--link", a.addr, "--expose", "web=127.0.0.1:9")
	l.start("c", "", "--link", b.addr, "--no-info")
	a.waitRoute(t, "c", anyRoute)

	// b reports its link to c a moment after c came up; c answers nothing.
	var g node.Graph
	var stderr string
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, out, errOut := a.run3("graph", "--format", "json")
		g, stderr = node.Graph{}, errOut
		if code == 0 && json.Unmarshal([]byte(out), &g) == nil && len(g.Links) == 2 && len(g.Unreachable) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("graph --format json never showed a-b, b-c with c unreachable: exit %d\n%s\n%s", code, out, errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if g.Origin != "a" || len(g.Nodes) != 2 || g.Links[0].A != "a" || g.Links[0].B != "b" || g.Links[1].A != "b" || g.Links[1].B != "c" ||
		g.Unreachable[0].Name != "c" || !strings.Contains(g.Unreachable[0].Error, "no such service") {
		t.Fatalf("graph: %+v", g)
	}
	if !strings.Contains(stderr, "c did not answer") {
		t.Fatalf("graph did not name the node that did not answer on stderr: %q", stderr)
	}

	_, dot, _ := a.run3("graph")
	for _, want := range []string{"graph mesh {", `"a" -- "b"`, `"b" -- "c"`, `router (devel) · web"`, `"c" [label="c\nunreachable"`} {
		if !strings.Contains(dot, want) {
			t.Fatalf("graph (DOT) lacks %q:\n%s", want, dot)
		}
	}
	if _, mer, _ := a.run3("graph", "-f", "mermaid"); !strings.HasPrefix(mer, "graph LR\n") || strings.Count(mer, " ---|") != 2 {
		t.Fatalf("graph --format mermaid:\n%s", mer)
	}
	_, svg, _ := a.run3("graph", "--format", "svg", "--path", "b")
	if !strings.HasPrefix(svg, "<svg ") || !strings.Contains(svg, `class="link on-path" data-a="a" data-b="b"`) ||
		!strings.Contains(svg, `data-node="c" data-state="down"`) {
		t.Fatalf("graph --format svg --path b:\n%s", svg)
	}
	if code, _, errOut := a.run3("graph", "--format", "png"); code != 2 || !strings.Contains(errOut, "want dot, json, mermaid or svg") {
		t.Fatalf("graph --format png: exit %d, %q", code, errOut)
	}
}
