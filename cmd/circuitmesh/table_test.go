package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/admin"
	"github.com/circuitmesh/circuitmesh/node"
)

func TestPeerTableIsAlignedAndMarksUnreachable(t *testing.T) {
	var b bytes.Buffer
	peers := []node.PeerInfo{
		{Name: "b", Reachable: true, NextHop: "b", Cost: 10, Hops: 1},
		{Name: "delta-long-name", Reachable: true, NextHop: "b", Cost: 35, Hops: 3},
		{Name: "x", Reachable: false},
	}
	if err := printTable(&b, []string{"PEER", "REACHABLE", "VIA", "COST", "HOPS"}, peerRows(peers)); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"PEER             REACHABLE  VIA  COST  HOPS\n" +
		"b                yes        b    10    1\n" +
		"delta-long-name  yes        b    35    3\n" +
		"x                no         -    -     -\n"
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestLinkRowsShowRTTLossAndAge(t *testing.T) {
	now := time.Now()
	rows := linkRows([]node.LinkInfo{{
		Peer: "b", Address: "10.0.0.2:4242", Outbound: true, RTT: 1234567 * time.Nanosecond,
		Loss: 0.025, Cost: 123, Pinned: true, Streams: 4, Since: now.Add(-90 * time.Second),
	}}, now)
	got := strings.Join(rows[0], "|")
	if want := "b|10.0.0.2:4242|out|1.23ms|2.5%|123 (pinned)|4|1m30s"; got != want {
		t.Fatalf("row = %q, want %q", got, want)
	}
	rows = linkRows([]node.LinkInfo{{Peer: "c", Cost: 16777215, Draining: true, Since: now}}, now)
	if got := rows[0][5]; got != "16777215 (draining)" {
		t.Fatalf("cost of a draining peer's link = %q", got)
	}
}

func TestRoutesListOnlyReachableDestinations(t *testing.T) {
	rows := routeRows([]node.PeerInfo{
		{Name: "d", Reachable: true, NextHop: "b", Cost: 20, Hops: 2, Seqno: 7, Alternates: []string{"c"}},
		{Name: "gone"},
	})
	if len(rows) != 1 || strings.Join(rows[0], "|") != "d|b|20|2|7|c" {
		t.Fatalf("routes = %v", rows)
	}
}

func TestServiceListNamesTheBackend(t *testing.T) {
	list := serviceList(admin.Services{
		Services: []string{"_info", "echo", "lib", "web"},
		Exposed:  []admin.Expose{{Service: "web", Target: "127.0.0.1:8080"}},
	})
	var got []string
	for _, e := range list {
		got = append(got, e.Service+"="+e.Backend+" "+e.Target)
	}
	if strings.Join(got, ",") != "_info=info ,echo=echo ,lib=in-process ,web=tcp 127.0.0.1:8080" {
		t.Fatalf("services = %v", got)
	}
}

func TestInterspersedFlagsAfterArguments(t *testing.T) {
	app := newApp(nil, nil, nil)
	got := strings.Join(interspersed(app, strings.Fields("cm ping d -c 3 --json --data-dir /x")), " ")
	if want := "cm ping -c 3 --json --data-dir /x -- d"; got != want {
		t.Fatalf("args = %q, want %q", got, want)
	}
}

// TestPrintedTextHasNoControls: names and reasons the CLI prints may come
// from other nodes (a name gossip announced, a relay's refusal reason, a
// recorded path). Tables, key-value lists and paths print every rune that
// is not printable as '?', so that such text cannot rewrite the
// terminal's lines, title or clipboard, nor break the columns.
func TestPrintedTextHasNoControls(t *testing.T) {
	const forged = "b\x1b]0;owned\x07\x1b]52;c;ZXZpbAo=\x07\r\x1b[2Kc\td\ne\xff\u202e"
	var out strings.Builder
	if err := printTable(&out, []string{"PEER", "REASON"}, [][]string{{forged, "refused (" + forged + ")"}}); err != nil {
		t.Fatal(err)
	}
	if err := printKV(&out, [][2]string{{"name", forged}}); err != nil {
		t.Fatal(err)
	}
	out.WriteString(fmtPath([]string{"a", forged, "d"}) + "\n")
	got := out.String()
	for i, r := range got {
		if r != '\n' && (r == utf8.RuneError || !unicode.IsPrint(r)) {
			t.Fatalf("printed output carries %q at byte %d:\n%q", r, i, got)
		}
	}
	if !strings.Contains(got, "b?]0;owned??]52;c;ZXZpbAo=???[2Kc?d?e??") {
		t.Errorf("the printable part of the text is not kept in place:\n%q", got)
	}
}
