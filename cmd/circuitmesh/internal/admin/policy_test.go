package admin

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/url"
	"testing"

	"github.com/circuitmesh/circuitmesh/node"
	"github.com/circuitmesh/circuitmesh/node/policy"
)

// authzFake is fakeNode with a policy, certified groups and a keyring.
type authzFake struct {
	*fakeNode
	pol     *policy.Policy
	primary []byte
	keys    [][]byte
}

func (f *authzFake) Policy() *policy.Policy { return f.pol }

func (f *authzFake) PolicySubject(n string) (policy.Subject, bool) {
	if n == "a" {
		return policy.Subject{Name: n, Groups: []string{"ops"}}, true
	}
	return policy.Subject{Name: n}, false
}

// RelayDecision is the policy's relay rules alone: the endpoint's part
// is to ask the node.
func (f *authzFake) RelayDecision(from, to policy.Subject, _ bool) policy.Decision {
	return f.pol.Relay(from, to)
}

func (f *authzFake) GossipKeys() (node.GossipKeyring, error) {
	kr := node.GossipKeyring{Primary: node.KeyFingerprint(f.primary)}
	for _, k := range f.keys {
		kr.Keys = append(kr.Keys, node.KeyFingerprint(k))
	}
	return kr, nil
}

func (f *authzFake) InstallGossipKey(k []byte) error { f.keys = append(f.keys, k); return nil }
func (f *authzFake) UseGossipKey(k []byte) error     { return node.ErrKeyNotInstalled }
func (f *authzFake) RemoveGossipKey(k []byte) error {
	if bytes.Equal(k, f.primary) {
		return node.ErrKeyInUse
	}
	return nil
}

func TestPolicyCheckEndpoint(t *testing.T) {
	p, err := policy.Parse("allow dial from=group:ops service=ssh\ndeny relay from=* to=group:ops\n")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := startServer(t, &authzFake{fakeNode: newFake(), pol: p})
	ctx := context.Background()
	check := func(q url.Values) (PolicyCheck, error) {
		var res PolicyCheck
		err := c.Get(ctx, PathPolicyCheck, q, &res)
		return res, err
	}
	res, err := check(url.Values{"from": {"a"}, "service": {"ssh"}})
	if err != nil || !res.Allowed || res.Line != 1 || res.From.GroupsFrom != "certificate" {
		t.Fatalf("a ssh: %+v, %v", res, err)
	}
	res, err = check(url.Values{"from": {"b"}, "service": {"ssh"}})
	if err != nil || res.Allowed || res.Line != 0 || res.From.GroupsFrom != "unknown" {
		t.Fatalf("b ssh: %+v, %v", res, err)
	}
	res, err = check(url.Values{"from": {"b"}, "group": {"ops"}, "service": {"ssh"}})
	if err != nil || !res.Allowed || res.From.GroupsFrom != "given" {
		t.Fatalf("b in ops ssh: %+v, %v", res, err)
	}
	res, err = check(url.Values{"from": {"b"}, "to": {"a"}})
	if err != nil || res.Allowed || res.Kind != policy.Relay || res.Line != 2 || res.To == nil || res.To.Groups[0] != "ops" {
		t.Fatalf("relay b to a: %+v, %v", res, err)
	}
	for _, q := range []url.Values{
		{"from": {"a"}},
		{"from": {"a"}, "service": {"ssh"}, "to": {"b"}},
		{"service": {"ssh"}},
		{"from": {"a"}, "service": {"ssh"}, "group": {"bad group"}},
		{"from": {"a"}, "to": {"b"}, "to-group": {"bad group"}},
	} {
		if _, err := check(q); !errors.Is(err, ErrBadRequest) {
			t.Errorf("check %v: %v, want a bad request", q, err)
		}
	}
	// A node without policy support says so.
	c2, _ := startServer(t, newFake())
	if err := c2.Get(ctx, PathPolicyCheck, url.Values{"from": {"a"}, "service": {"x"}}, nil); !errors.Is(err, ErrBadRequest) {
		t.Errorf("policy check on a node without policy: %v", err)
	}
}

func TestKeysEndpoint(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	f := &authzFake{fakeNode: newFake(), primary: k1, keys: [][]byte{k1}}
	c, _ := startServer(t, f)
	ctx := context.Background()
	op := func(o, key string) (node.GossipKeyring, error) {
		var kr node.GossipKeyring
		err := c.Post(ctx, PathKeys, KeyOp{Op: o, Key: key}, &kr)
		return kr, err
	}
	b64 := base64.StdEncoding.EncodeToString
	kr, err := op("install", b64(k2))
	if err != nil || len(kr.Keys) != 2 || kr.Keys[1] != node.KeyFingerprint(k2) {
		t.Fatalf("install: %+v, %v", kr, err)
	}
	for _, tc := range []struct {
		op, key string
		want    error
	}{
		{"use", b64(bytes.Repeat([]byte{3}, 32)), ErrNotFound},
		{"remove", b64(k1), ErrConflict},
		{"install", "not base64!", ErrBadRequest},
		{"rotate", b64(k2), ErrBadRequest},
	} {
		if _, err := op(tc.op, tc.key); !errors.Is(err, tc.want) {
			t.Errorf("%s %q: %v, want %v", tc.op, tc.key, err, tc.want)
		}
	}
}
