package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/node"
)

// run3 runs a CLI command against d and returns its exit status, stdout
// and stderr separately.
func (d *daemon) run3(args ...string) (int, string, string) {
	d.lab.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.lab.bin, append(args, "--data-dir", d.dir)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	}
	d.lab.t.Fatalf("circuitmesh %v: %v", args, err)
	return 0, "", ""
}

// ndjson decodes one JSON object per line.
func ndjson(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not a JSON object: %v\n%s", sc.Text(), err, s)
		}
		out = append(out, m)
	}
	return out
}

func TestE2EPingLikePing8AndJSONShapes(t *testing.T) {
	l := newLab(t, "e2e")
	a := l.start("a", "")
	l.start("b", "", "--link", a.addr)
	a.waitRoute(t, "b", anyRoute)

	code, out, stderr := a.run3("ping", "b", "-c", "2", "-i", "10ms", "--json")
	lines := ndjson(t, out)
	if code != 0 || stderr != "" || len(lines) != 3 {
		t.Fatalf("ping --json: exit %d, stderr %q, %d lines:\n%s", code, stderr, len(lines), out)
	}
	for i, want := range []string{"reply", "reply", "summary"} {
		if lines[i]["type"] != want {
			t.Fatalf("line %d type %v, want %s:\n%s", i, lines[i]["type"], want, out)
		}
	}
	if s := lines[2]; s["sent"] != 2.0 || s["replies"] != 2.0 || s["loss_percent"] != 0.0 {
		t.Fatalf("summary %v", s)
	}

	// The text form, as the README shows it: a line per reply with the
	// path, then ping(8)'s statistics header and summary.
	code, out, stderr = a.run3("ping", "b", "-c", "2", "-i", "10ms")
	text := regexp.MustCompile(`^pong from b via a → b: seq=1 open \S+, rtt \S+\n` +
		`pong from b via a → b: seq=2 open \S+, rtt \S+\n` +
		`--- b ping statistics ---\n` +
		`2 sent, 2 replies, 0% loss, rtt min/avg/max = \S+/\S+/\S+\n$`)
	if code != 0 || stderr != "" || !text.MatchString(out) {
		t.Fatalf("ping: exit %d, stderr %q, stdout:\n%s", code, stderr, out)
	}

	// No reply at all: ping(8) prints the failures and the summary and
	// exits 1, without repeating the error on stderr.
	code, out, stderr = a.run3("ping", "nobody", "-c", "2", "-i", "10ms")
	if code != 1 || stderr != "" || strings.Count(out, "no reply from nobody") != 2 || !strings.Contains(out, "2 sent, 0 replies, 100% loss") {
		t.Fatalf("ping nobody: exit %d, stdout %q, stderr %q", code, out, stderr)
	}

	// Every list prints an array of objects.
	for _, cmd := range []string{"peers", "links", "routes", "services", "forwards"} {
		_, out, _ := a.run3(cmd, "--json")
		var v []map[string]any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Errorf("%s --json is not an array of objects: %v\n%s", cmd, err, out)
		}
	}
}

func TestE2ELinkCostPinsAndReleasesARoute(t *testing.T) {
	// First a and c alone, so that the direct link is the only route and
	// its cost is exactly what the pin says. (With a third node the
	// route may go around the pinned link at any moment: measured
	// loopback costs swing by 10x on a loaded machine.)
	l := newLab(t, "e2e")
	a := l.start("a", "", "--link-cost", "c=700")
	c := l.start("c", "", "--link", a.addr)
	direct := func(want func(uint32) bool) func(node.PeerInfo) bool {
		return func(p node.PeerInfo) bool { return p.NextHop == "c" && p.Hops == 1 && want(p.Cost) }
	}
	is := func(v uint32) func(uint32) bool { return func(got uint32) bool { return got == v } }
	a.waitRoute(t, "c", direct(is(700))) // pinned at start-up
	if out := a.cli("link-cost", "c", "900"); !strings.Contains(out, "pinned at cost 900") {
		t.Fatalf("link-cost said %q", out)
	}
	a.waitRoute(t, "c", direct(is(900)))
	pinnedLink := func() *node.LinkInfo {
		var ls []node.LinkInfo
		if err := json.Unmarshal([]byte(a.cli("links", "--json")), &ls); err != nil {
			t.Fatal(err)
		}
		for _, li := range ls {
			if li.Peer == "c" {
				return &li
			}
		}
		t.Fatalf("links has no link to c: %+v", ls)
		return nil
	}
	if li := pinnedLink(); !li.Pinned || li.Cost != 900 {
		t.Fatalf("links shows %+v, want c pinned at 900", li)
	}
	if out := a.cli("link-cost", "c", "auto"); !strings.Contains(out, "measured cost") {
		t.Fatalf("link-cost auto said %q", out)
	}
	// The route takes the link's measured cost again. (Not "any cost but
	// 900": a measured cost may be 900 too.)
	waitUntil(t, "links to show c measured and the route to c at that cost", func() bool {
		li, route := pinnedLink(), a.peers(t)["c"]
		return !li.Pinned && route.Reachable && direct(is(li.Cost))(route)
	})

	// A pin far above any measured path moves the route around the link.
	l.start("b", "", "--link", a.addr, "--link", c.addr)
	a.waitRoute(t, "b", anyRoute)
	a.cli("link-cost", "c", "1000000")
	a.waitRoute(t, "c", func(p node.PeerInfo) bool { return p.NextHop == "b" && p.Hops == 2 })

	if code, _, stderr := a.run3("link-cost", "Not A Name", "50"); code == 0 || !strings.Contains(stderr, "Not A Name") {
		t.Fatalf("link-cost with a bad peer name: exit %d %q", code, stderr)
	}
}

// Ctrl-C stops ping as it stops ping(8): the replies so far are summed up
// and the exit status is 0, since replies came back. Before, the process
// died of the signal with no summary.
func TestE2EPingInterruptedPrintsItsSummary(t *testing.T) {
	l := newLab(t, "e2e")
	a := l.start("a", "")
	l.start("b", "", "--link", a.addr)
	a.waitRoute(t, "b", anyRoute)

	for _, form := range []struct {
		flags   []string
		summary *regexp.Regexp
	}{
		{nil, regexp.MustCompile(`\n--- b ping statistics ---\n(\d+) sent, (\d+) replies, \d+% loss, rtt min/avg/max = \S+/\S+/\S+\n$`)},
		{[]string{"--json"}, regexp.MustCompile(`\n\{"type":"summary","peer":"b","sent":(\d+),"replies":(\d+),"loss_percent":[\d.]+,[^\n]*\}\n$`)},
	} {
		args := append([]string{"ping", "b", "-c", "1000", "-i", "100ms", "--data-dir", a.dir}, form.flags...)
		cmd := exec.Command(l.bin, args...)
		out, errb := &syncBuffer{}, &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() { cmd.Process.Kill() })
		waitUntil(t, "a first reply from b", func() bool {
			return strings.Contains(out.String(), "pong from b") || strings.Contains(out.String(), `"type":"reply"`)
		})
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		var err error
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("ping %v still runs 30 s after SIGINT:\n%s", form.flags, out.String())
		}
		// A ping lost to a slow machine is no failure of the summary:
		// it counts at least the reply seen, and no more than it sent.
		var sent, replies int
		if m := form.summary.FindStringSubmatch(out.String()); m != nil {
			sent, _ = strconv.Atoi(m[1])
			replies, _ = strconv.Atoi(m[2])
		}
		if err != nil || errb.String() != "" || replies < 1 || replies > sent {
			t.Fatalf("ping %v after SIGINT: %v, stderr %q, stdout (want a summary of its replies last):\n%s",
				form.flags, err, errb.String(), out.String())
		}
	}
}
