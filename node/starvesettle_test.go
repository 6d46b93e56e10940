package node

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/internal/cpuquota"
)

// The starved mesh test gives its process starveQuota of CPU per
// starvePeriod (without starve's busy loop: the ten nodes use it up):
// their loopback links then measure RTTs of 1.5 to 3.5 s, as on a 2-core
// machine at a load average of 25, where the mesh was seen tearing its
// links down the whole time. starveChangesPerMin bounds the settled
// starved mesh's link changes (LinkUp and LinkDown events of all ten
// nodes) a minute.
const starveChangesPerMin = 10

// Ten QUIC nodes of at most 3 links join through one seed in a process
// starved of CPU (a cgroup quota): every ordered pair becomes reachable,
// and after a settle window the mesh keeps its links (at most
// starveChangesPerMin link changes a minute) and every pair reachable,
// instead of tearing links down and making them again.
func TestStarvedMeshSettles(t *testing.T) {
	if testing.Short() {
		t.Skip("minutes of ten QUIC nodes starved of CPU")
	}
	cpuquota.Under(t, starveQuota, starvePeriod)
	const n, maxLinks = 10, 3
	c := newCluster(t, true)
	var seed string
	gossip := gossipTweak(&seed, maxLinks, 1)
	logged := &starveLog{counts: map[string]int{}}
	c.tweak = func(cfg *Config) {
		gossip(cfg)
		cfg.Logger = slog.New(logged)
	}
	var (
		mu      sync.Mutex
		changes []time.Time
	)
	names := meshNames(n)
	joinThroughSeed(c, &seed, names, func(nd *Node) {
		stop, err := nd.SubscribeFunc(func(ev Event) {
			if ev.Kind == LinkUp || ev.Kind == LinkDown {
				mu.Lock()
				changes = append(changes, ev.Time)
				mu.Unlock()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
	})
	took, _ := waitMesh(t, c, names, maxLinks, 4*time.Minute)
	const settle, window = 30 * time.Second, time.Minute
	time.Sleep(settle)
	from := time.Now()
	logged.start()
	var worstRTT time.Duration
	unreachable, samples := 0, 0
	for time.Since(from) < window {
		st := statsOf(c, names)
		unreachable = max(unreachable, st.unreachable)
		for _, name := range names {
			for _, l := range c.nodes[name].Links() {
				worstRTT = max(worstRTT, l.RTT)
			}
		}
		samples++
		time.Sleep(time.Second)
	}
	mu.Lock()
	in := 0
	for _, at := range changes {
		if !at.Before(from) {
			in++
		}
	}
	mu.Unlock()
	watched := time.Since(from)
	perMin := float64(in) / watched.Minutes()
	why := logged.get()
	t.Logf("every pair reachable %v after the last start; %.1f link changes a minute in the %v after a further %v (at most %d ordered pairs unreachable at %d samples; worst link RTT %v); discovery's log then: %s",
		took.Round(time.Millisecond), perMin, watched.Round(time.Second), settle, unreachable, samples, worstRTT.Round(time.Millisecond), why)
	if perMin > starveChangesPerMin {
		t.Errorf("%.1f link changes a minute after a settle window of %v, want at most %d", perMin, settle, starveChangesPerMin)
	}
	waitMesh(t, c, names, maxLinks, 30*time.Second)
}

// starveLog counts, once started, the log records that say why links
// change: dials, closes, refusals and links down, by reason.
type starveLog struct {
	mu     sync.Mutex
	on     bool
	counts map[string]int
}

func (h *starveLog) start() { h.mu.Lock(); h.on = true; h.mu.Unlock() }

func (h *starveLog) get() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Sprint(h.counts)
}

func (h *starveLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *starveLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *starveLog) WithGroup(string) slog.Handler            { return h }

func (h *starveLog) Handle(_ context.Context, r slog.Record) error {
	counted := false
	for _, p := range []string{"discovery dials", "discovery closes", "link refused", "link down", "gossip says"} {
		counted = counted || strings.HasPrefix(r.Message, p)
	}
	if !counted {
		return nil
	}
	key := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "reason" || a.Key == "err" {
			v := a.Value.String()
			if i := strings.LastIndex(v, ": "); i >= 0 {
				v = v[i+2:] // the cause, without the peer or address
			}
			key += "/" + v
		}
		return true
	})
	h.mu.Lock()
	if h.on {
		h.counts[key]++
	}
	h.mu.Unlock()
	return nil
}
