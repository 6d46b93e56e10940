package links

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// TestRefusals checks that each bad peer is refused with a readable reason
// on both sides and that no link is left behind. A certificate is refused
// in TLS, whose alert names no reason: the side refused says so, and
// names its own certificate's fault if it knows one.
func TestRefusals(t *testing.T) {
	ca := testCA(t, "m")
	otherCA := testCA(t, "m") // same mesh name, different key
	expired, err := ca.IssueAt("b", time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	insecure, err := identity.Insecure("b", "m")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		// the dialler's identity and hooks; the acceptor is a good node "a"
		dialler  *identity.Identity
		mod      func(*QUICConfig)
		acceptor func(*QUICConfig)
		want     string // in the errors of both sides
		// acceptorWant, if set, is in the acceptor's error instead.
		acceptorWant string
	}{
		// The dialler, of another CA, refuses the acceptor's
		// certificate before it sends its own.
		{name: "wrong CA", dialler: issue(t, otherCA, "b"), want: `not signed by the CA of mesh "m"`,
			acceptorWant: "refused this node's certificate"},
		{name: "expired", dialler: expired, want: "expired at"},
		{name: "insecure peer", dialler: insecure, want: "not signed by the CA"},
		{name: "name mismatch", dialler: issue(t, ca, "b"),
			mod:  func(c *QUICConfig) { c.testNode = "c" },
			want: `hello claims node "c" but its certificate names "b"`},
		{name: "mesh mismatch", dialler: issue(t, ca, "b"),
			mod:  func(c *QUICConfig) { c.testMesh = "other" },
			want: `b claims mesh "other", a is in mesh "m"`},
		{name: "dialler version", dialler: issue(t, ca, "b"),
			mod:  func(c *QUICConfig) { c.testVersion = ProtocolVersion + 1 },
			want: "protocol version mismatch: b speaks version 3, a speaks version 2"},
		{name: "acceptor version", dialler: issue(t, ca, "b"),
			acceptor: func(c *QUICConfig) { c.testVersion = ProtocolVersion + 1 },
			want:     "protocol version mismatch: a speaks version 3, b speaks version 2"},
		{name: "own name", dialler: issue(t, ca, "a"), want: `peer claims this node's own name "a"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := newNode(t, issue(t, ca, "a"), c.acceptor)
			b := newNode(t, c.dialler, c.mod)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := b.Dial(ctx, a.LocalAddr().String())
			t.Logf("dialler: %v", err)
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("dialler's error: %v\nwant ErrRefused with %q", err, c.want)
			}
			select {
			case aerr := <-a.refused:
				t.Logf("acceptor: %v", aerr)
				want := c.want
				if c.acceptorWant != "" {
					want = c.acceptorWant
				}
				if !errors.Is(aerr, ErrRefused) || !strings.Contains(aerr.Error(), want) {
					t.Fatalf("acceptor's error: %v\nwant ErrRefused with %q", aerr, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("acceptor reported no refusal")
			}
			for _, n := range []*node{a, b} {
				if ups, _ := n.rec.counts(); ups != 0 || len(n.Links()) != 0 {
					t.Fatalf("refused link left %d LinkUp and %d links", ups, len(n.Links()))
				}
			}
		})
	}
}

func TestInsecureMode(t *testing.T) {
	ida, err := identity.Insecure("a", "dev")
	if err != nil {
		t.Fatal(err)
	}
	idb, err := identity.Insecure("b", "dev")
	if err != nil {
		t.Fatal(err)
	}
	idc, err := identity.Insecure("c", "prod")
	if err != nil {
		t.Fatal(err)
	}
	a := newNode(t, ida, nil)
	b := newNode(t, idb, nil)
	if l := dial(t, b, a); l.Peer() != "a" {
		t.Fatalf("insecure link to %q", l.Peer())
	}
	// The mesh name is still checked in development mode.
	c := newNode(t, idc, nil)
	_, err = c.Dial(context.Background(), a.LocalAddr().String())
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "mesh mismatch") {
		t.Fatalf("cross-mesh dial in development mode: %v", err)
	}
}

func TestInsecureModeWarns(t *testing.T) {
	id, err := identity.Insecure("a", "dev")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tr, err := NewQUICTransport(QUICConfig{Identity: id, Handler: newRecorder(),
		Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	_ = tr.Close()
	if !strings.Contains(buf.String(), "level=WARN msg=\"INSECURE DEVELOPMENT MODE") {
		t.Fatalf("no warning logged in development mode:\n%s", buf.String())
	}
}

// TestJSONLogsNameRoleAndAddress: in JSON logs a link's role is its name
// and its remote address a string, as in text logs. Before, "link up"
// logged "role":0 and the address as an object of its IP and port.
func TestJSONLogsNameRoleAndAddress(t *testing.T) {
	ca := testCA(t, "m")
	var buf lockedBuffer
	a := newNode(t, issue(t, ca, "a"), func(c *QUICConfig) {
		c.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
	})
	b := newNode(t, issue(t, ca, "b"), nil)
	dial(t, b, a)
	waitFor(t, "a's link up logged", patience, func() bool { return strings.Contains(buf.String(), `"msg":"link up"`) })
	for line := range strings.Lines(buf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] != "link up" {
			continue
		}
		if rec["role"] != "router" {
			t.Errorf("link up: role %#v, want \"router\"", rec["role"])
		}
		if s, ok := rec["remote"].(string); !ok || !strings.HasPrefix(s, "127.0.0.1:") {
			t.Errorf("link up: remote %#v, want an address string", rec["remote"])
		}
	}
}
