package main

import (
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/node"
)

// TestE2EResumeOnKill9 downloads a file with curl through --forward on a
// and --expose on d, across a diamond a–{b,c}–d, and kills the relay the
// download crosses with SIGKILL mid-transfer: the circuit moves to the
// other relay and curl gets the whole file, intact. Without curl it skips,
// or fails in CI (toolMissing).
func TestE2EResumeOnKill9(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		toolMissing(t, "curl is not installed (Debian package curl; .ci/run installs it): cannot download through --forward")
	}
	size, rate := 64<<20, "16M"
	if testing.Short() {
		size, rate = 16<<20, "8M"
	}
	l := newLab(t, "e2e")
	web, wantSum := bodyServer(t, size)
	a, victim, _, _ := startDiamond(t, l, []string{"--expose", "web=" + web})
	fwd := a.forward(t, "d/web")

	out := filepath.Join(t.TempDir(), "body")
	cmd := exec.Command(curl, "-sS", "--fail", "--max-time", "120", "--limit-rate", rate, "-o", out, "http://"+fwd+"/")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var curlErr error
	exited := make(chan struct{})
	go func() {
		curlErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	waitUntil(t, "curl to have a quarter of the file", func() bool {
		st, err := os.Stat(out)
		return err == nil && st.Size() >= int64(size/4)
	})
	killed := time.Now()
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-victim.exited
	select {
	case <-exited:
		if curlErr != nil {
			t.Fatalf("curl after %s was killed: %v", victim.name, curlErr)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("curl did not finish")
	}
	body, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(body) != size || sha256.Sum256(body) != wantSum {
		t.Fatalf("downloaded %d of %d bytes, intact %v", len(body), size, sha256.Sum256(body) == wantSum)
	}
	t.Logf("%d MiB intact; %v from the kill of %s to the end", size>>20, time.Since(killed), victim.name)
}

// startDiamond starts a–{b,c}–d, d with dArgs and both relays with
// relayArgs, and returns a, the relay a's route to d crosses (the victim),
// the other relay and d. c pins its link to d far above any measured
// cost (loopback costs swing tenfold on a loaded machine), so that the
// route crosses b for as long as b is up, and c only then: a test that
// kills or drains the victim knows its circuits crossed it.
func startDiamond(t *testing.T, l *lab, dArgs []string, relayArgs ...string) (a, victim, other, d *daemon) {
	t.Helper()
	a = l.start("a", "")
	victim = l.start("b", "", append([]string{"--link", a.addr}, relayArgs...)...)
	other = l.start("c", "", append([]string{"--link", a.addr, "--link-cost", "d=1000000"}, relayArgs...)...)
	d = l.start("d", "", append([]string{"--link", victim.addr, "--link", other.addr}, dArgs...)...)
	// Both relays have a route to d over their own link to it (other's
	// is its alternate while its pinned cost sends it around by a).
	for _, r := range []*daemon{victim, other} {
		r.waitRoute(t, "d", func(p node.PeerInfo) bool { return p.NextHop == "d" || slices.Contains(p.Alternates, "d") })
	}
	a.waitRoute(t, "d", func(p node.PeerInfo) bool { return p.NextHop == victim.name && p.Hops == 2 })
	return a, victim, other, d
}
