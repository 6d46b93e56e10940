package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/quic-go/quic-go"

	"github.com/circuitmesh/circuitmesh/links"
)

// BenchmarkHonestWorkDuringFloods measures, in one run on loopback, the
// p99 of honest circuit opens (h→r→d, echo) and of honest link setups to
// d, without a flood and during each flood, and reports each as the ratio
// to the value without a flood (goal: at most 2). The run without a flood
// is repeated at the end (none-again) to show the machine's own noise:
//
//   - handshake: 256 QUIC handshakes from 127.0.0.2 with a certificate of
//     another CA held open toward d, renewed as d drops them;
//   - slowheader: 300 streams on the link m→r each carrying one byte of an
//     open header;
//   - stalled: 128 fail-fast circuits m→r→d to a service of d that never
//     reads, written to until they fail: they pin the receive buffers of
//     the links r→d and m→r until reclaimed. (A resumable end would read
//     them into its own window, up to 4 MiB each: that is a bulk transfer
//     of 512 MiB, which an attacker does not need to send, and which on
//     one machine slows honest opens by the CPU it takes, not by any
//     buffer it pins.)
//   - fakemembers: 16 real memberlist members with the gossip key but no
//     certificate (more than d's MaxLinks) join d's gossip, each
//     announcing a link address where nobody answers: d's discovery dials
//     them into its free link slots, each dial holding its slot until the
//     handshake times out, until the unproven addresses are banned. The
//     fake members run in a process of their own, like the handshake
//     flood.
//
// Every node runs gossip in every phase, so that its cost is in the base
// figures too. Their LinkPolicy refuses the honest members, so discovery
// links no honest pair and the measured paths stay as built; the fake
// members pass it, as they would with no policy.
//
// The attacker's handshakes come from 127.0.0.2, the honest nodes dial
// from 127.0.0.1: on loopback every address is the local host, and the
// handshake gate shares its slots per source address, as another host's
// would be.
//
// Per phase it also logs the p50 of the opens, the phase's wall time, the
// CPU the nodes' process and the flood's process used, the handshakes d
// admitted and refused, and the datagrams the kernel dropped at d's
// socket: a delay that moves p50 or comes with drops is the node's, a
// tail alone with the CPU of the flood's process is the machine's.
//
// It runs its work once whatever b.N (make bench uses -benchtime 1x).
func BenchmarkHonestWorkDuringFloods(b *testing.B) {
	const opens, setups = 200, 30
	c := newCluster(b, true)
	key := benchGossipKey()
	honest := map[string]bool{"h": true, "r": true, "d": true, "m": true}
	var seed string // h's gossip address, once h runs
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: key, Interval: 500 * time.Millisecond,
			LinkPolicy: func(m Member) bool { return !honest[m.Name] }}
		if seed != "" {
			cfg.Discovery.Join = []string{seed}
		}
	}
	c.add("h")
	seed = c.nodes["h"].Status().GossipAddr
	c.build("h-r", "r-d", "m-r")
	c.waitRoute("h", "d", 2)
	c.waitRoute("m", "d", 2)
	h, d, m := c.nodes["h"], c.nodes["d"], c.nodes["m"]
	waitFor(b, "every honest node to be a gossip member of d", time.Minute, func() bool { return len(d.Members()) == len(honest) })

	measure := func(name string) (open, open50, setup time.Duration) {
		b.Helper()
		var o, s []time.Duration
		for i := range opens {
			start := time.Now()
			conn, err := h.Dial(ctxT(b, 30*time.Second), "d", EchoService)
			if err != nil {
				b.Fatalf("%s: honest open %d: %v", name, i, err)
			}
			o = append(o, time.Since(start))
			conn.Close()
		}
		for i := range setups {
			id, err := c.ca.Issue(fmt.Sprintf("j-%s-%d", name, i), 0)
			if err != nil {
				b.Fatal(err)
			}
			tr, err := links.NewQUICTransport(links.QUICConfig{Identity: id, Handler: nopHandler{}, Logger: testLogger(b)})
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			_, err = tr.Dial(ctxT(b, 30*time.Second), d.Addr().String())
			took := time.Since(start)
			_ = tr.Close()
			if err != nil {
				b.Fatalf("%s: honest link setup %d: %v", name, i, err)
			}
			s = append(s, took)
		}
		return p99(o), quantile(o, 50), p99(s)
	}

	// Per phase, besides the honest times: the wall time of the
	// measurement, the CPU this process (every node) and the flood's own
	// process used meanwhile, and d's inbound handshake counters, to tell
	// where an honest delay comes from.
	type result struct {
		name                 string
		open, open50, setup  time.Duration
		wall, cpu, attackCPU time.Duration
		admitted, refused    uint64
		drops                int64
	}
	var res []result
	dst := d.transport.(handshakeStatser)
	run := func(name string, start func() (stop func(), attackCPU func() time.Duration)) {
		stop, attackCPU := start()
		st0, cpu0, at0, dr0, t0 := dst.HandshakeStats(), processCPU(), attackCPU(), udpDrops(d.Addr()), time.Now()
		o, o50, s := measure(name)
		st1, cpu1, at1, dr1, wall := dst.HandshakeStats(), processCPU(), attackCPU(), udpDrops(d.Addr()), time.Since(t0)
		stop()
		res = append(res, result{name: name, open: o, open50: o50, setup: s, wall: wall, cpu: cpu1 - cpu0, attackCPU: at1 - at0,
			drops: dr1 - dr0, admitted: st1.Failed - st0.Failed + uint64(max(st1.InProgress-st0.InProgress, 0)),
			refused: st1.RefusedFull + st1.RefusedShare + st1.RefusedRate - st0.RefusedFull - st0.RefusedShare - st0.RefusedRate})
	}
	noAttack := func() time.Duration { return 0 }
	run("none", func() (func(), func() time.Duration) { return func() {}, noAttack })
	run("handshake", func() (func(), func() time.Duration) {
		return startFloodProcess(b, d.Addr())
	})
	run("slowheader", func() (func(), func() time.Duration) {
		f := startSlowHeaders(b, m.link("r"), 300)
		waitFor(b, "the slow streams to be written", time.Minute, func() bool { return f.written.Load() >= 300 })
		return f.stop, noAttack
	})
	run("stalled", func() (func(), func() time.Duration) {
		return startStalledCircuits(b, m, d, 128), noAttack
	})
	run("fakemembers", func() (func(), func() time.Duration) {
		stop, cpu := startAttackProcess(b, fakeMembersArg+d.Status().GossipAddr)
		waitFor(b, "d to know the fake members", time.Minute, func() bool { return len(d.Members()) >= len(honest)+benchFakeMembers })
		return func() {
			// Shows the attack was carried out: d dialled the fakes.
			b.Logf("fakemembers: their link addresses received %s packets", strings.TrimSpace(stop()))
		}, cpu
	})
	// Without a flood again: how far the machine's own noise moves p99.
	run("none-again", func() (func(), func() time.Duration) { return func() {}, noAttack })

	base := res[0]
	for _, r := range res {
		b.Logf("%-11s open p99 %8v (x%.2f) p50 %8v (x%.2f)  link setup p99 %8v (x%.2f)", r.name,
			r.open.Round(time.Microsecond), ratio(r.open, base.open), r.open50.Round(time.Microsecond), ratio(r.open50, base.open50),
			r.setup.Round(time.Microsecond), ratio(r.setup, base.setup))
		b.Logf("%-11s   took %v: nodes' CPU %v (%.0f%%), attacker process CPU %v; d admitted %d handshakes, refused %d; its socket dropped %d packets", r.name,
			r.wall.Round(time.Millisecond), r.cpu.Round(time.Millisecond), 100*r.cpu.Seconds()/r.wall.Seconds(),
			r.attackCPU.Round(time.Millisecond), r.admitted, r.refused, r.drops)
		if r.name == "none" || r.name == "none-again" {
			b.ReportMetric(float64(r.open.Microseconds()), "open-p99-us-"+r.name)
			b.ReportMetric(float64(r.setup.Microseconds()), "setup-p99-us-"+r.name)
			continue
		}
		b.ReportMetric(ratio(r.open, base.open), "open-p99-x-"+r.name)
		b.ReportMetric(ratio(r.open50, base.open50), "open-p50-x-"+r.name)
		b.ReportMetric(ratio(r.setup, base.setup), "setup-p99-x-"+r.name)
	}
}

func p99(xs []time.Duration) time.Duration { return quantile(xs, 99) }

// quantile is the q-th percentile of xs.
func quantile(xs []time.Duration, q int) time.Duration {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[min(len(xs)-1, len(xs)*q/100)]
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// udpDrops is the count of datagrams the kernel dropped for the UDP
// socket bound to addr (its receive buffer full), from /proc/net/udp.
func udpDrops(addr net.Addr) int64 {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0
	}
	tab, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return 0
	}
	local := fmt.Sprintf(":%04X", ua.Port)
	for _, line := range strings.Split(string(tab), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) >= 13 && strings.HasSuffix(f[1], local) {
			n, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
			return n
		}
	}
	return 0
}

// childCPU is the user and system CPU time process pid has used, read
// from /proc (0 where there is none).
func childCPU(pid int) time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which ends with the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(max(b, 1)) }

// floodTargetEnv names the address a re-executed test binary floods with
// handshakes (runBadHandshakes) instead of running tests: the attacker
// then runs in a process of its own, as it would on its own host.
const floodTargetEnv = "CIRCUITMESH_TEST_FLOOD_TARGET"

// startFloodProcess runs a handshake flood (256 connections) toward target
// in a child process and returns once it has made its first 256
// attempts; stop ends it, cpu reads the CPU time the process has used.
func startFloodProcess(t testing.TB, target net.Addr) (stop func(), cpu func() time.Duration) {
	t.Helper()
	end, cpu := startAttackProcess(t, target.String())
	return func() { end() }, cpu
}

// startAttackProcess re-executes the test binary with floodTargetEnv set
// to arg and returns once the child says it is ready; stop ends it and
// returns what it printed then, cpu reads the CPU time it has used.
func startAttackProcess(t testing.TB, arg string) (stop func() string, cpu func() time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), floodTargetEnv+"="+arg)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	var rest []byte
	stop = func() string {
		once.Do(func() {
			_ = stdin.Close() // the child stops when its stdin closes
			rest, _ = io.ReadAll(stdout)
			_ = cmd.Wait()
		})
		return string(rest)
	}
	line := make([]byte, 6)
	if _, err := io.ReadFull(stdout, line); err != nil || string(line) != "ready\n" {
		stop()
		t.Fatalf("attack process: %q, %v", line, err)
	}
	return stop, func() time.Duration { return childCPU(cmd.Process.Pid) }
}

// fakeMembersArg prefixes the gossip address that a re-executed test
// binary joins benchFakeMembers fake members to (runFakeMembers).
const fakeMembersArg = "fakemembers="

// benchFakeMembers is how many fake members the benchmark's fakemembers
// phase joins: more than d's link slots (MaxLinks, default 14).
const benchFakeMembers = 16

// benchGossipKey is the gossip key of the benchmark's nodes, which the
// fake members hold.
func benchGossipKey() []byte { return bytes.Repeat([]byte{5}, 32) }

// runFakeMembers is the child process of the fakemembers phase: it
// joins the fake members to the gossip at seed, says ready, and when its
// stdin closes makes them leave and prints the packets their link
// addresses received.
func runFakeMembers(seed string) int {
	var tb floodTB
	stop, packets := startFakeMembers(&tb, benchFakeMembers, benchGossipKey(), seed)
	_, _ = os.Stdout.WriteString("ready\n")
	_, _ = io.Copy(io.Discard, os.Stdin)
	stop()
	fmt.Println(packets.Load())
	return 0
}

// runBadHandshakes is the child process of startFloodProcess, or with
// fakeMembersArg that of the fakemembers phase (runFakeMembers).
func runBadHandshakes(target string) int {
	if seed, ok := strings.CutPrefix(target, fakeMembersArg); ok {
		return runFakeMembers(seed)
	}
	addr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return 2
	}
	var tb floodTB
	f := startBadHandshakes(&tb, addr, 256)
	for f.attempts.Load() < 256 {
		time.Sleep(10 * time.Millisecond)
	}
	_, _ = os.Stdout.WriteString("ready\n")
	_, _ = io.Copy(io.Discard, os.Stdin)
	f.stop()
	return 0
}

// floodTB is the testing.TB of the flood process: a failure ends it.
type floodTB struct{ testing.TB }

func (floodTB) Helper()                   {}
func (floodTB) Cleanup(func())            {}
func (floodTB) Fatal(args ...any)         { fmt.Fprintln(os.Stderr, args...); os.Exit(2) }
func (floodTB) Fatalf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...); os.Exit(2) }

// badHandshakes keeps QUIC handshakes open toward a node from one socket
// with a certificate of another CA, and renews each one the node drops.
// The node refuses such a certificate in TLS, so each handshake holds its
// place by stalling before it sends its certificate, past the node's
// handshake timeout.
type badHandshakes struct {
	tr       *quic.Transport
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	attempts atomic.Int64
}

func startBadHandshakes(t testing.TB, target net.Addr, conns int) *badHandshakes {
	t.Helper()
	id := foreignIdentity(t)
	// Another source prefix than the honest nodes (all on 127.0.0.1).
	udp, err := net.ListenPacket("udp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &badHandshakes{tr: &quic.Transport{Conn: udp}}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	cert := id.TLSCertificate()
	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, NextProtos: []string{links.ALPN}, ServerName: "circuitmesh",
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			select {
			case <-ctx.Done():
			case <-time.After(links.DefaultHandshakeTimeout + time.Second):
			}
			return &cert, nil
		},
	}
	qc := &quic.Config{HandshakeIdleTimeout: 10 * time.Second, MaxIdleTimeout: 30 * time.Second}
	for range conns {
		f.wg.Go(func() {
			for ctx.Err() == nil {
				f.attempts.Add(1)
				conn, err := f.tr.Dial(ctx, target, tlsConf, qc)
				if err != nil {
					select {
					case <-ctx.Done():
					case <-time.After(500 * time.Millisecond):
					}
					continue
				}
				select {
				case <-conn.Context().Done():
				case <-ctx.Done():
				}
				_ = conn.CloseWithError(0, "")
			}
		})
	}
	t.Cleanup(func() { f.stop(); _ = udp.Close() })
	return f
}

func (f *badHandshakes) stop() {
	f.cancel()
	f.wg.Wait()
	_ = f.tr.Close()
}

// startStalledCircuits has from open n fail-fast circuits to a service of
// to that accepts them and never reads, each written to until it fails;
// stop ends them.
func startStalledCircuits(t testing.TB, from, to *Node, n int) (stop func()) {
	t.Helper()
	keep, closeAll := startSink(t, to)
	var wg sync.WaitGroup
	chunk := make([]byte, 16<<10)
	var written atomic.Int64
	for range n {
		conn, err := from.DialWith(ctxT(t, 10*time.Second), to.Name(), "sink", DialOptions{NoResume: true})
		if err != nil {
			continue // the circuits opened so far may starve the links until reclaimed
		}
		keep(conn)
		wg.Go(func() {
			for {
				if _, err := conn.Write(chunk); err != nil {
					return
				}
				written.Add(1)
			}
		})
	}
	waitFor(t, "the stalled circuits to fill their windows", time.Minute, func() bool { return written.Load() >= int64(n) })
	return func() {
		closeAll()
		wg.Wait()
	}
}

// startFakeMembers joins n real memberlist members to the gossip at seed:
// each has the gossip key and announces as its link address a UDP socket
// that reads and never answers, and runs no node and holds no
// certificate. stop makes them leave the gossip and closes the sockets; packets counts
// what the sockets received.
func startFakeMembers(t testing.TB, n int, key []byte, seed string) (stop func(), packets *atomic.Int64) {
	t.Helper()
	var mls []*memberlist.Memberlist
	var socks []net.PacketConn
	var wg sync.WaitGroup
	var once sync.Once
	packets = new(atomic.Int64)
	stop = func() {
		once.Do(func() {
			var lw sync.WaitGroup
			for _, ml := range mls {
				lw.Go(func() {
					_ = ml.Leave(time.Second)
					_ = ml.Shutdown()
				})
			}
			lw.Wait()
			for _, pc := range socks {
				_ = pc.Close()
			}
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	for i := range n {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, pc)
		wg.Go(func() {
			buf := make([]byte, 2048)
			for {
				if _, _, err := pc.ReadFrom(buf); err != nil {
					return
				}
				packets.Add(1)
			}
		})
		mc := memberlist.DefaultLANConfig()
		mc.Name, mc.BindAddr, mc.BindPort = "fake"+strconv.Itoa(i), "127.0.0.1", 0
		mc.SecretKey = key
		mc.LogOutput = io.Discard // memberlist may log after Shutdown
		meta, _ := json.Marshal(memberMeta{Link: pc.LocalAddr().String(), Mesh: "test"})
		mc.Delegate = staticMeta(meta)
		ml, err := memberlist.Create(mc)
		if err != nil {
			t.Fatal(err)
		}
		mls = append(mls, ml)
		if _, err := ml.Join([]string{seed}); err != nil {
			t.Fatal(err)
		}
	}
	return stop, packets
}

// startSink publishes the service "sink" on n: it accepts circuits and
// never reads them. keep holds another conn to close with them;
// closeAll closes the service and every conn held.
func startSink(t testing.TB, n *Node) (keep func(net.Conn), closeAll func()) {
	t.Helper()
	sink, err := n.Listen("sink")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	keep = func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	wg.Go(func() {
		for {
			conn, err := sink.Accept()
			if err != nil {
				return
			}
			keep(conn)
		}
	})
	var once sync.Once
	closeAll = func() {
		once.Do(func() {
			_ = sink.Close()
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				_ = c.Close()
			}
		})
	}
	t.Cleanup(closeAll)
	return keep, closeAll
}
