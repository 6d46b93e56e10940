package node

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// String is one line: the time, kind, peer and, for a lost link, why.
func (e Event) String() string {
	s := e.Time.Format("15:04:05.000") + " " + e.Kind.String() + " " + e.Peer
	if e.Kind == PeerUp {
		s += fmt.Sprintf(" via %s (%d hops)", e.Route.NextHop, e.Route.Hops)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// WriteState writes the node's live links and its routing table as text,
// one line each: what to look at when a mesh does not do what was
// expected (failing tests print it).
func (n *Node) WriteState(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "node %s at %s, %d circuits\n", n.cfg.Name, addrString(n.Addr()), n.circuits.len())
	ls := n.Links()
	fmt.Fprintf(&b, "  links (%d):\n", len(ls))
	for _, l := range ls {
		dir := "in"
		if l.Outbound {
			dir = "out"
		}
		fmt.Fprintf(&b, "    %s %s %s rtt %v cost %d loss %.2f streams %d up %v\n", l.Peer, l.Address, dir,
			l.RTT.Round(10*time.Microsecond), l.Cost, l.Loss, l.Streams, time.Since(l.Since).Round(time.Millisecond))
	}
	ps := n.Peers()
	fmt.Fprintf(&b, "  routes (%d):\n", len(ps))
	for _, p := range ps {
		if !p.Reachable {
			fmt.Fprintf(&b, "    %s unreachable seqno %d\n", p.Name, p.Seqno)
			continue
		}
		fmt.Fprintf(&b, "    %s via %s cost %d hops %d seqno %d", p.Name, p.NextHop, p.Cost, p.Hops, p.Seqno)
		if len(p.Alternates) > 0 {
			fmt.Fprintf(&b, " alternates %s", strings.Join(p.Alternates, ","))
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}
