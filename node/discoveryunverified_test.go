package node

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// TestVerifiedMemberLeavesUnverifiedCount: a member taken before its
// certificate was known counts against maxUnverified; once routing
// brings its certificate and its signed metadata verifies (checkPending),
// it must count no more, so that in a mesh of more than 4,096 honest
// members they do not fill the bound.
func TestVerifiedMemberLeavesUnverifiedCount(t *testing.T) {
	c, nodes := gossipNodes(t, "a")
	a := nodes[0]
	id, err := c.ca.Issue("newcomer", 0)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(memberMeta{Link: "127.0.0.2:9", Mesh: "test", TS: 1})
	m := &memberlist.Node{Addr: loopback4, Port: 9, Name: "newcomer", Meta: signMeta(id.Key, "test", "newcomer", body)}
	counted := func() bool {
		a.disco.mu.Lock()
		defer a.disco.mu.Unlock()
		_, ok := a.disco.unverified["newcomer"]
		return ok
	}
	if err := a.disco.NotifyAlive(m); err != nil {
		t.Fatalf("signed metadata of a member whose certificate is not known: %v", err)
	}
	a.disco.record(m) // as memberlist's NotifyJoin
	if !counted() {
		t.Fatal("a member taken before its certificate was known does not count as unverified")
	}
	now := time.Now()
	cert := a.router.cert
	cert.mu.Lock()
	cert.certOf["newcomer"] = &sharedChain{node: "newcomer", pub: id.Key.Public().(ed25519.PublicKey),
		notBefore: now.Add(-time.Hour), notAfter: now.Add(time.Hour)}
	cert.mu.Unlock()
	a.disco.checkPending(now)
	if counted() {
		t.Error("a member whose signed metadata verified still counts against maxUnverified")
	}
	if err := a.disco.NotifyAlive(m); err != nil || counted() {
		t.Errorf("its alive message again: %v, counted as unverified: %v", err, counted())
	}
}
