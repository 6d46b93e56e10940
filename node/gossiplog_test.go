package node

import (
	"bytes"
	"log"
	"log/slog"
	"strings"
	"testing"
)

// TestGossipWarningsRateLimited: one gossip packet can repeat a refused
// alive message a thousand times, and memberlist logs a WARN line for
// each; the node logs one line per kind of warning a minute, with the
// count of the lines it left out, and every kind still appears.
func TestGossipWarningsRateLimited(t *testing.T) {
	var buf bytes.Buffer
	sl := slog.New(slog.NewTextHandler(&buf, nil))
	ml := log.New(&slogWriter{l: sl, warns: newGossipLineLog(sl)}, "", 0)
	for i := range 1000 {
		ml.Printf("[WARN] memberlist: ignoring alive message for 'm%d': member m%d: metadata signature does not verify", i, i)
		ml.Printf("[WARN] memberlist: handler queue full, dropping message (4) from=10.0.0.%d:7946", i%250)
		// Lines naming a node unquoted, with names a sender chooses.
		name := strings.Repeat("x", i%7+1) + string(rune('a'+i%26)) + string(rune('a'+i/26%26))
		ml.Printf("[WARN] memberlist: Got ping for unexpected node %s from=10.0.0.1:7946", name)
		ml.Printf("[WARN] memberlist: Rejected node %s (%s): not allowed", name, "10.0.0.1")
	}
	ml.Printf("[WARN] memberlist: Was able to connect to b over TCP but UDP probes failed, network may be misconfigured")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("4001 memberlist warnings of 5 kinds gave %d lines, want 5:\n%s", len(lines), strings.Join(lines[:min(len(lines), 8)], "\n"))
	}
	for i, want := range []string{"ignoring alive message for 'm0'", "handler queue full", "Got ping for unexpected node xaa", "Rejected node xaa", "UDP probes failed"} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d is %q, want it to say %q", i, lines[i], want)
		}
	}
	ml.Printf("[WARN] memberlist: ignoring alive message for 'm1000': once more")
	if got := buf.String(); strings.Contains(got, "m1000") {
		t.Errorf("a warning of a kind logged within the minute was logged again")
	}
}

// TestGossipErrorsRateLimited: anyone who reaches the gossip port can make
// memberlist log an error per datagram or connection (a datagram that
// does not decrypt, a stream of an unknown type); each was an ERROR line
// of its own. The node logs one line per kind of error a minute, kinds of
// three words apart ("Failed to decode" does not hide "Failed to send"),
// at ERROR, and all kinds together at most gossipLinesMax a minute
// however many names the kinds hold.
func TestGossipErrorsRateLimited(t *testing.T) {
	var buf bytes.Buffer
	sl := slog.New(slog.NewTextHandler(&buf, nil))
	ml := log.New(&slogWriter{l: sl, warns: newGossipLineLog(sl)}, "", 0)
	for i := range 1000 {
		ml.Printf("[ERR] memberlist: Decrypt packet failed: cipher: message authentication failed from=10.0.0.%d:7946", i%250)
		ml.Printf("[ERR] memberlist: Failed to decode ping request: EOF from=10.0.0.%d:7946", i%250)
	}
	ml.Printf("[ERR] memberlist: Failed to send ack: write: broken pipe from=10.0.0.1:7946")
	ml.Printf("[WARN] memberlist: Failed to send ping: timeout")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("2002 memberlist lines of 4 kinds gave %d lines, want 4:\n%s", len(lines), strings.Join(lines[:min(len(lines), 8)], "\n"))
	}
	for i, want := range []string{"level=ERROR msg=\"[ERR] memberlist: Decrypt", "level=ERROR msg=\"[ERR] memberlist: Failed to decode", "level=ERROR msg=\"[ERR] memberlist: Failed to send ack", "level=WARN msg=\"[WARN] memberlist: Failed to send ping"} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d is %q, want it to say %q", i, lines[i], want)
		}
	}
	buf.Reset()
	for i := range 1000 {
		ml.Printf("[ERR] memberlist: Push/Pull with n%c%c failed: EOF", 'a'+rune(i%26), 'a'+rune(i/26%26))
	}
	if n := strings.Count(buf.String(), "\n"); n > gossipLinesMax {
		t.Errorf("errors naming 1000 nodes gave %d lines in a minute, want at most %d", n, gossipLinesMax)
	}
}

// TestGossipWithoutKeySaysSoAtWarn: a node gossiping without a key takes
// every gossip packet, an outsider's too (docs/SECURITY.md, "An
// outsider"), and says so at WARN when it starts; one with a key does
// not.
func TestGossipWithoutKeySaysSoAtWarn(t *testing.T) {
	c := newCluster(t, true)
	keyless, keyed := c.captureLog("a"), c.captureLog("b")
	prev := c.tweak
	c.tweak = func(cfg *Config) {
		prev(cfg)
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0"}
		if cfg.Name == "b" {
			cfg.Discovery.Key = make([]byte, 32)
		}
	}
	c.add("a")
	c.add("b")
	const warning = `level=WARN msg="gossip is NOT encrypted`
	if !strings.Contains(keyless.String(), warning) {
		t.Errorf("a node gossiping without a key logged no warning:\n%s", keyless.String())
	}
	if strings.Contains(keyed.String(), "NOT encrypted") {
		t.Errorf("a node gossiping with a key warned it is not encrypted:\n%s", keyed.String())
	}
}
