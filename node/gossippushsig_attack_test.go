package node

import (
	"bufio"
	"encoding/json"
	"io"
	"math"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// forgeHandle encodes the messages the tests forge: as memberlist does
// (structs as msgpack maps) unless a test sets StructToArray, as
// go-msgpack decodes a struct from an array by position too.
var forgeHandle = &codec.MsgpackHandle{}

// asArrays runs f with the forged messages encoded as maps (as memberlist
// sends them) and as arrays (as memberlist also reads them).
func asArrays(t *testing.T, f func(t *testing.T)) {
	for _, array := range []bool{false, true} {
		name := "map"
		if array {
			name = "array"
		}
		t.Run(name, func(t *testing.T) {
			forgeHandle = &codec.MsgpackHandle{}
			forgeHandle.StructToArray = array
			defer func() { forgeHandle = &codec.MsgpackHandle{} }()
			f(t)
		})
	}
}

// pushStates sends one push-pull of the states next makes, n of them, to
// addr over TCP and waits until the node closes the connection (once it
// has merged them, or refused them: then the writes fail). The states
// are made before the connection, as memberlist makes its own: the node
// refuses a stream whose first bytes are late (gossipFirstBytes), and
// signing 300 states before the first 64 KiB went out took longer
// beside busy loops.
func pushStates(t *testing.T, addr string, n int, next func() gossipPushState) {
	t.Helper()
	states := make([]gossipPushState, n)
	for i := range states {
		states[i] = next()
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	w := bufio.NewWriterSize(conn, 1<<16)
	_, _ = w.Write(pushPullHeader(t, n, 0))
	enc := codec.NewEncoder(w, forgeHandle)
	for _, st := range states {
		if err := enc.Encode(st); err != nil {
			t.Logf("push-pull cut short: %v", err) // the node refused it
			return
		}
	}
	if err := w.Flush(); err != nil {
		t.Logf("push-pull cut short: %v", err)
		return
	}
	_, _ = io.Copy(io.Discard, conn)
}

// TestAttackGossipPushPullForgedSignaturesCostCPU: a stranger with no
// certificate and no gossip key (the default is none) pushes, over TCP,
// push-pulls whose states are all alive states of a member whose
// certificate the node knows, each with metadata carrying a random
// signature and a new timestamp. memberlist hands each state to
// NotifyAlive, and each cost an Ed25519 check: the budget of failed
// checks per source prefix covered alive datagrams only. It must cover
// push-pull states as well, whether the states are encoded as msgpack
// maps (as memberlist sends them) or arrays (which memberlist reads as
// well; the guard read other fields from them and recorded none).
func TestAttackGossipPushPullForgedSignaturesCostCPU(t *testing.T) {
	asArrays(t, func(t *testing.T) {
		a, b := gossipPair(t)
		a.disco.mu.Lock()
		ts := a.disco.verified["b"].ts
		a.disco.mu.Unlock()
		ga, err := net.ResolveUDPAddr("udp", b.Status().GossipAddr)
		if err != nil {
			t.Fatal(err)
		}
		forgery := func() gossipPushState {
			ts++
			body, _ := json.Marshal(memberMeta{Link: "127.0.0.1:9", Mesh: "test", TS: ts})
			return gossipPushState{Name: "b", Addr: ga.IP.To4(), Port: uint16(ga.Port), Meta: randomlySigned(body),
				Incarnation: math.MaxUint32, Vsn: []uint8{1, 5, 2, 0, 0, 0}}
		}

		const pushes, states = 4, 1000
		checks0, fails0, cpu0 := sigChecks.Load(), sigFails.Load(), cpuTime()
		start := time.Now()
		for range pushes {
			pushStates(t, a.Status().GossipAddr, states, forgery)
		}
		elapsed := time.Since(start)
		checks, fails, cpu := sigChecks.Load()-checks0, sigFails.Load()-fails0, cpuTime()-cpu0
		t.Logf("a stranger pushed %d push-pulls of %d forged states in %v: the process ran %d Ed25519 checks (%.0f a second), %v of CPU",
			pushes, states, elapsed.Round(time.Millisecond), checks, float64(checks)/elapsed.Seconds(), cpu.Round(time.Millisecond))
		if linkAddrOf(a, "b") == "127.0.0.1:9" {
			t.Fatal("a took the forged address for b")
		}
		// The budget of failed checks per source; the process's other
		// checks (honest attestations and metadata) verify.
		limit := int64(sigFailBurst + sigFailRate*elapsed.Seconds() + 1)
		if fails > limit {
			t.Errorf("pushed forgeries from a stranger cost %d failed signature checks in %v (want at most %d)", fails, elapsed.Round(time.Millisecond), limit)
		}
	})
}

// TestGossipPushPullBudgetSparesValidSignatures: pushed states whose
// signatures verify cost their source nothing, however many: 3 budgets'
// worth of new signed metadata of a member, pushed from one address, are
// all checked and taken; forgeries pushed after them from the same
// address spend its budget and are dropped unchecked.
func TestGossipPushPullBudgetSparesValidSignatures(t *testing.T) {
	a, b := gossipPair(t)
	dropped := a.disco.guard.metric.WithLabelValues("alive", refuseSignatures)
	a.disco.mu.Lock()
	ts := a.disco.verified["b"].ts
	a.disco.mu.Unlock()
	link := linkAddrOf(a, "b")
	ga, err := net.ResolveUDPAddr("udp", b.Status().GossipAddr)
	if err != nil {
		t.Fatal(err)
	}
	key := b.identity().Key
	state := func(sign func(body []byte) []byte) func() gossipPushState {
		return func() gossipPushState {
			ts++
			body, _ := json.Marshal(memberMeta{Link: link, Mesh: "test", TS: ts})
			return gossipPushState{Name: "b", Addr: ga.IP.To4(), Port: uint16(ga.Port), Meta: sign(body),
				Incarnation: math.MaxUint32, Vsn: []uint8{1, 5, 2, 0, 0, 0}}
		}
	}

	pushStates(t, a.Status().GossipAddr, 3*sigFailBurst, state(func(body []byte) []byte { return signMeta(key, "test", "b", body) }))
	a.disco.mu.Lock()
	got := a.disco.verified["b"].ts
	a.disco.mu.Unlock()
	if got != ts {
		t.Fatalf("a holds b's metadata of timestamp %d, want the last pushed, %d", got, ts)
	}
	if n := counterValue(dropped); n != 0 {
		t.Fatalf("a dropped %v pushed states with valid signatures for their source's budget", n)
	}

	fails0 := sigFails.Load()
	start := time.Now()
	pushStates(t, a.Status().GossipAddr, 3*sigFailBurst, state(randomlySigned))
	checks := sigFails.Load() - fails0 // only the forgeries' checks fail
	limit := int64(sigFailBurst + sigFailRate*time.Since(start).Seconds() + 1)
	t.Logf("%d pushed forgeries from one address: %d checked, %v dropped unchecked", 3*sigFailBurst, checks, counterValue(dropped))
	if checks > limit || counterValue(dropped) == 0 {
		t.Errorf("pushed forgeries from one address cost %d signature checks (want at most %d), %v dropped", checks, limit, counterValue(dropped))
	}
}
