package node

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// Terminal and log escapes a member writes into the text of its info
// answer: clear the screen, set the terminal's title, move the cursor up
// and rewrite the line, colour what follows.
const (
	escClear = "\x1b[2J\x1b[H"
	escTitle = "\x1b]0;owned\x07"
	escUp    = "\r\x1b[1A"
	escRed   = "\x1b[31m"
)

// TestAttackInfoTextReachesTerminal: the text of a node's info answer
// (mesh, role, version, commit, its links' roles) is the answering
// node's word, and `circuitmesh graph` prints it (DOT or Mermaid, to the
// terminal by default), as the mesh page and an application calling
// Topology or Info show it. m, a node with a valid certificate, answers
// _info with escapes in every such field; s, an unmodified node, tries to
// publish a service whose name holds them, which Listen refuses
// (circuit.ValidateService; before that rule it published it, and a's
// graph carried the name; an answer listing it is now bad,
// TestAttackInfoServicesAreServiceNames).
// Before, a's graph carried them as sent, so that printing it cleared the
// operator's screen, set the terminal's title and rewrote lines; now every
// rune that is not printable reads as '?', and the text is still there.
func TestAttackInfoTextReachesTerminal(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.DisableInfo = cfg.Name == "m" }
	c.build("a-m", "a-s")
	c.waitConverged()
	m, s := c.nodes["m"], c.nodes["s"]

	evilService := "svc" + escTitle + escRed
	if sl, err := s.Listen(evilService); !errors.Is(err, ErrInvalidService) {
		if sl != nil {
			sl.Close()
		}
		t.Fatalf("s.Listen(%q): %v, want ErrInvalidService", evilService, err)
	}

	serveInfoAnswer(t, m, NodeInfo{Name: "m", Mesh: "test" + escUp, Role: "router" + escClear, Version: "v1" + escTitle,
		Commit: escUp + "commit", Services: []string{InfoService},
		Links: []InfoLink{{Peer: "a", Role: "router" + escUp, RTT: time.Millisecond, Cost: 10}}})

	g := waitTopology(t, c.nodes["a"], TopologyOptions{}, "m's and s's answers", func(g Graph) bool {
		return nodeNames(g) == "a m s"
	})
	var bad []string
	check := func(where, text string) {
		if strings.IndexFunc(text, func(r rune) bool { return r == utf8.RuneError || !unicode.IsPrint(r) }) >= 0 {
			bad = append(bad, fmt.Sprintf("%s %q", where, text))
		}
	}
	for _, n := range g.Nodes {
		check(n.Name+"'s name", n.Name)
		check(n.Name+"'s mesh", n.Mesh)
		check(n.Name+"'s role", n.Role)
		check(n.Name+"'s version", n.Version)
		check(n.Name+"'s commit", n.Commit)
		for _, svc := range n.Services {
			check(n.Name+"'s service", svc)
		}
		for _, l := range n.Links {
			check(n.Name+"'s link's peer", l.Peer)
			check(n.Name+"'s link's role", l.Role)
		}
	}
	for _, l := range g.Links {
		check("link", l.A+" "+l.B+" "+l.Quality+" "+l.ReportedBy)
	}
	if len(bad) > 0 {
		t.Fatalf("a's graph carries %d texts other nodes wrote with runes that are not printable, e.g. %s", len(bad), strings.Join(bad[:min(len(bad), 4)], "; "))
	}
	// The text is kept, made printable: the operator still reads it.
	var mv string
	for _, n := range g.Nodes {
		if n.Name == "m" {
			mv = n.Version
		}
	}
	if want := "v1?]0;owned?"; mv != want {
		t.Errorf("m's version reads %q, want %q", mv, want)
	}
}
