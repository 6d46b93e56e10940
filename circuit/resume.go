package circuit

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit/seal"
	"github.com/circuitmesh/circuitmesh/internal/stack"
	"github.com/circuitmesh/circuitmesh/links"
)

// Open header flags of resumable circuits (docs/PROTOCOL.md §3.9). Both
// need FlagSealed.
const (
	// FlagResumable: the sealed payload carries the resumable framing, so
	// the circuit can outlive the death of a relay on its path.
	FlagResumable Flags = 1 << 3
	// FlagResume: the open takes over a suspended resumable circuit.
	FlagResume Flags = 1 << 4
)

// Resumption sentinels.
var (
	// ErrResumeTimeout: the path of a resumable circuit broke and no new
	// path took it over within the resume timeout.
	ErrResumeTimeout = errors.New("circuit: no new path within the resume timeout")
	// ErrResumeRefused: the destination does not know the circuit to
	// resume (wrong id or source, or it already gave up on it).
	ErrResumeRefused = errors.New("circuit: the destination refused to resume the circuit")
	// ErrNoProgress: nothing arrived on the path for the progress timeout
	// while this end waited for an acknowledgement or a pong (a relay
	// that stopped forwarding); the circuit resumes on another path.
	ErrNoProgress = errors.New("circuit: the path made no progress")
	// ErrBufferBudget: the circuit's receive buffers would have grown
	// beyond what its ResumeBudget grants (or, without a SendBudget, its
	// retransmit buffer), or the budget's owner took the circuit's share
	// back (Abort). The path is reset with CloseOverBudget: the other end
	// sees ErrBufferBudget too.
	ErrBufferBudget = errors.New("circuit: the resumable circuit's buffers are over budget")
	// ErrResumeLoop: MaxResumesWithoutProgress resumed paths in a row
	// failed before anything moved on them (a relay on the path that
	// resets the circuit whenever it carries data); the circuit ends
	// instead of resuming again.
	ErrResumeLoop = errors.New("circuit: resumed paths kept failing before carrying any data")
)

// ResumeBudget is an account the buffers of a resumable circuit are
// charged to: the retransmit buffer and the receive queue, by the size of
// the memory they hold (which grows by doubling up to the window and goes
// back when a buffer empties), and each received record kept unread (its
// record buffer, seal.MaxRecord or seal.MaxLargeRecord, while held). Both methods are called with
// the circuit's lock held: they must not call the Resumable's methods. A
// circuit gives back everything it was granted by the time it ended.
type ResumeBudget interface {
	// Grow asks for n more bytes; false refuses them, and the circuit ends
	// with ErrBufferBudget.
	Grow(n int) bool
	// Shrink gives back n bytes granted by Grow.
	Shrink(n int)
}

// SendBudget is a ResumeBudget that holds this end's Writes back when the
// retransmit buffer would grow beyond it, instead of ending the circuit:
// that buffer holds what this end's application wrote and the other end
// did not acknowledge yet, and the application can wait for room in it
// as it waits when the window is full. The receive buffers are charged
// with Grow as with any ResumeBudget: the other end was granted the
// window and cannot be held back.
type SendBudget interface {
	ResumeBudget
	// GrowSend asks for n more bytes for the retransmit buffer; false
	// refuses them for now, and the Write that asked waits until
	// Resumable.SendRoom says the budget may have room again (the budget
	// must then call it once it has, for every circuit it refused since
	// its last call), the window changes, or its deadline passes. With
	// floor (the buffer would hold at most MinSendBuffer bytes) it must
	// grant them, even beyond its bounds: the least every circuit holds,
	// so that none waits for another's room forever. It is called with
	// the circuit's lock held, like Grow.
	GrowSend(n int, floor bool) bool
	// StopWaiting says that no Write of the circuit waits for the room
	// GrowSend last refused any more (they returned: deadline, Close, or
	// what room the buffer had was enough), so the budget need not keep
	// its turn. It is called with the circuit's lock held.
	StopWaiting()
}

// ResendBudget is a ResumeBudget that is also charged with what resumes
// have the circuit send again: a destination's Budget may implement it to
// bound those re-sends by source (a source can resume its circuits as
// often as it likes, each time saying it received nothing).
type ResendBudget interface {
	ResumeBudget
	// Resend charges n positions (data bytes and the fin) that a resume
	// that took the circuit over has it send again: those it had sent on
	// its paths beyond the offset the resume said the source received.
	// It is called with the circuit's lock held, like Grow.
	Resend(n int64)
}

// Defaults of ResumeConfig.
const (
	DefaultResumeTimeout = 30 * time.Second
	DefaultResumeWindow  = 4 << 20
	// DefaultProgressTimeout is the least silence after which a path that
	// owes this end an acknowledgement or a pong is deemed broken.
	DefaultProgressTimeout = 2 * time.Second
	// MaxResumeCharge is the most the buffers of one circuit with the
	// default window are charged to its ResumeBudget: a receive queue and
	// a retransmit buffer of a window each, and the buffers of the
	// received records it may keep unread (at most heldRecords times
	// seal.MaxRecord bytes).
	MaxResumeCharge = 2*DefaultResumeWindow + max(1, DefaultResumeWindow/heldShare/seal.MaxRecord)*seal.MaxRecord
	// MinSendBuffer is the retransmit buffer a SendBudget always grants
	// (GrowSend's floor): one record's data.
	MinSendBuffer = seal.MaxData
)

// heldShare: a circuit keeps received records unread in the buffers they
// came in up to 1/heldShare of its window.
const heldShare = 4

// Bounds of the destination's table of resumable circuits.
const (
	MaxResumablePerSource = 1024
	MaxResumable          = 16384
)

// Frame types of the resumable framing.
const (
	frameHello   = 1
	frameData    = 2
	frameAck     = 3
	frameFin     = 4
	frameResume  = 5
	frameResumed = 6
	framePing    = 7
	framePong    = 8

	idLen = 16
	// frameRoom is what a record leaves for frames other than its data
	// frame's data: a data frame fits one sealed record with it.
	frameRoom = 64
)

// Path is one path of a resumable circuit: a sealed circuit opened with
// FlagResumable (or FlagResume). *Conn is one.
type Path interface {
	io.Reader
	io.Writer
	Close() error
	Reset(code uint64)
	SetReadDeadline(time.Time) error
}

// ResumeConfig configures one end of a resumable circuit. The zero value
// takes the defaults.
type ResumeConfig struct {
	// Timeout bounds how long the circuit waits for a new path once its
	// path broke, and how long Close keeps delivering. Default 30 s. A
	// source counts it from the suspension after the last path that moved
	// (see notePathFailedLocked).
	Timeout time.Duration
	// Window bounds the bytes kept for retransmission, and the bytes
	// received but not yet read, per direction. Default 4 MiB.
	Window int
	// Redial (source only) opens a new path to the same destination and
	// service with FlagResume set, along the current best route. ctx ends
	// at the resume deadline.
	Redial func(ctx context.Context) (Path, error)
	// OnResume, when set, is called when a new path took the circuit
	// over, or with the final error (ErrResumeTimeout, ErrResumeRefused,
	// ...) when the circuit gave up. It runs with the circuit's lock held:
	// it must not call the Resumable's methods.
	OnResume func(ResumeEvent)
	// OnEnd, when set, is called once when the circuit ended (cleanly or
	// not) and its goroutines are about to exit.
	OnEnd func()
	// OnPathFailed, when set, is called with a path that failed and is
	// about to be replaced (the circuit is suspended), under the circuit's
	// lock like OnResume. At a source, err wraps ErrNoProgress when the
	// path was a resumed one on which nothing moved.
	OnPathFailed func(p Path, err error)
	// ProgressTimeout is the least silence after which the path is
	// deemed broken (ErrNoProgress) and the circuit resumes on another:
	// the silence counts while this end has data or a fin the other end
	// did not acknowledge, or a ping it did not answer; the limit is
	// max(ProgressTimeout, 8 × the round trip its pongs measured, at most
	// 2 × ProgressTimeout), plus
	// the time the unacknowledged bytes take at the rate acks came (at
	// most 4 × that, since a ping queues behind them; all of it before an
	// ack measured the rate), doubled for each path the circuit already
	// failed this way (at most 16 ×). A
	// quarter of the way a ping asks the other end for a sign of life. A
	// source fails a path this way only once an ack or pong came on it
	// (the destination holds the circuit). Default 2 s; negative turns
	// the detection off.
	ProgressTimeout time.Duration
	// OpenSlack (source) is how much longer than ProgressTimeout allows
	// the first path may stay silent before the destination showed that
	// it holds the circuit: the time within which the relays and the
	// destination read an open's header and the handshake's messages, or
	// reset the circuit (node: Limits.HeaderTimeout). Default 5 s.
	OpenSlack time.Duration
	// Budget, when set, is charged with the memory of the circuit's
	// buffers (see ResumeBudget); if it is a SendBudget, Writes wait for
	// it instead of ending the circuit; if it is a ResendBudget, it is
	// charged with what resumes have the circuit send again.
	Budget ResumeBudget
	// Early (source): the first path is an early circuit, whose first
	// Write travels with the open; the hello then waits for the first
	// Write or Read to go with it. Otherwise it is sent at once, so that
	// the destination can resume the circuit before anything was written.
	Early bool
}

// ResumeEvent reports a resume: the path that took the circuit over and
// how long the circuit had no path, or Err when the circuit gave up.
type ResumeEvent struct {
	Path     Path
	Stall    time.Duration
	Attempts int
	Cause    error // the failure of the previous path
	Err      error
}

// Resumable is one end of a resumable circuit: a net.Conn whose bytes
// survive the failure of the path under it. Writes are kept until the
// other end acknowledges them (at most Window bytes; Write blocks beyond),
// and after a path failure the source opens a new path (Redial) which the
// destination matches in its ResumeTable; both then send again what the
// other did not receive. See docs/PROTOCOL.md §3.9.
type Resumable struct {
	cfg           ResumeConfig
	source        bool
	id            [idLen]byte
	local, remote net.Addr
	table         *ResumeTable
	tkey          resumeKey
	service       string

	mu    sync.Mutex
	cond  sync.Cond // the application's Reads and Writes, readLoop
	wcond sync.Cond // writeLoop alone (see broadcast)

	cur         Path
	gen         uint64
	downAt      time.Time // when the path broke; zero while one is up
	cause       error     // why the last path broke
	timer       *time.Timer
	ackTimer    *time.Timer // a delayed acknowledgement, while armed
	ackSpare    *time.Timer // an earlier one's, stopped or spent: armed again by the next
	ackWaitFrom time.Time   // when the oldest read not acknowledged was read
	ackNow      bool        // its delay ran out
	roomWaiters int         // Writes waiting for room in the window
	sendRefused bool        // the SendBudget's last answer to GrowSend was no
	linger      *time.Timer
	quit        chan struct{} // closed once ended
	ended       bool
	cleanClose  bool  // ended after both directions finished: close the path gracefully
	err         error // why the circuit ended, when it failed
	appClosed   bool
	closedByApp atomic.Bool // appClosed, read without mu (AppClosed)
	aborted     bool        // Abort came before any Close or Reset (see closedErrLocked)
	cut         bool        // the last Write ran into its deadline (see Close)
	registered  bool
	pending     bool   // destination: counted in its table as awaiting its hello
	helloDue    bool   // source: the hello is still to be sent
	helloNow    bool   // source: send it even without data (a Read started)
	idle        bool   // source of an early circuit: readLoop and writeLoop not started yet (startLocked)
	helloSent   bool   // source: the first path's first write returned: it may be read
	wantHello   bool   // destination: the first frame must be a hello
	writing     bool   // a frame is being written (by writeLoop or a Write)
	wstarted    bool   // writeLoop was started (see kickLocked)
	readerEnds  bool   // readLoop is acting on what it read, and closes the path itself if that ends the circuit
	wstopped    uint64 // 1 + the generation of a path the other end stopped reading
	wclosed     uint64 // 1 + the generation of a path whose writing end this end closed with its fin
	// Records writeLoop sealed from the ring and pipeLoop writes, so
	// that the next record is sealed while the path writes the last one
	// (see sendLocked): pipe carries them, inflight counts those not
	// written yet, and while it is not 0 they hold pipePath's write lock.
	pipe     chan pipeRec // made when first needed
	piping   bool         // a pipeLoop runs: inflight is not 0
	inflight int
	pipePath Path

	sbuf              ring // sent positions not yet acknowledged: [acked, written)
	acked, written    int64
	credit            int64 // what the other end's application read (its last ack): the window's base
	sent              int64 // positions sent on the current path
	sentMost          int64 // the most positions sent on any path: what the other end can have received
	resent            int64 // destination: positions resumes had it send again (adopt)
	finQueued         bool
	rq                ring         // received, not yet read
	held              []heldRecord // received, not yet read, before rq: records' payloads taken from the path, in order
	heldBytes         int          // the bytes of held
	heldBufs          int          // the size of held's buffers
	heldCharge        int          // the share of cfg.Budget held's buffers hold (part of charged)
	takeCharged       bool         // takeRecord charged the record it agreed to hold to cfg.Budget
	rw                readWait
	recv, ackSent     int64
	gotFin            bool
	readDL, writeDL   time.Time
	in, out           atomic.Int64
	wg                sync.WaitGroup
	endOnce           sync.Once
	firstPath         Path
	resumes, failures atomic.Int64
	fast              fastPaths
	// The frame head readPath reads into: a field, as a local passed to
	// the path's Read would be allocated on every readPath. Only one
	// readPath runs at a time (readEarly before readLoop starts).
	rhdr [1 + idLen + 8]byte

	// Progress detection (see ResumeConfig.ProgressTimeout).
	frames     atomic.Int64 // frames read, on any path
	seenFrames int64        // frames at the last check
	heard      time.Time    // when the last check saw frames arrive, or the wait began
	probe      *time.Timer  // the next check; nil while nothing is owed
	pingDue    bool         // a ping is to be sent
	pongDue    bool         // a ping arrived: a pong is to be sent
	runOver    bool         // readRun met a data frame beyond the window
	run        frameRun     // what readRun took of the frames it read
	pingAt     time.Time    // when the outstanding ping left; zero if none
	pongs      atomic.Int64 // pongs that answered a ping
	peerShown  bool         // an ack or pong came on this path, or it is a resumed one
	srtt       time.Duration
	rate       float64   // bytes/s the other end acknowledged on this path while this end waited; 0 unknown
	rateAt     time.Time // start of the current rate sample
	rateBase   int64     // credit at rateAt

	silentPaths int // paths failed for no progress (see silenceLimitLocked)

	// Resume accounting (source, see notePathFailedLocked).
	pathResumed                     bool      // the current path is a resumed one
	pathAcked, pathCredit, pathRecv int64     // acked, credit and recv when it took over
	stuckPaths                      int       // resumed paths in a row that failed with nothing moved
	stuckSince                      time.Time // the suspension the resume timeout counts from

	// The share of cfg.Budget the buffers hold (see sized).
	charged    int
	overBudget bool       // a Grow was refused: the circuit ends
	sendBudget SendBudget // cfg.Budget, when it is one
}

var _ net.Conn = (*Resumable)(nil)

// readWait is the buffer of a Read waiting for data, into which readLoop
// copies a data frame's bytes straight from the path's decrypted record
// when nothing is queued before them (rq empty): no hop through rq.
type readWait struct {
	busy bool   // a Read owns the slot
	b    []byte // where the next bytes go; nil once some came
	n    int    // bytes delivered into b
}

// heldRecord is the payload of a received record kept in the record
// buffer it came in (see holdLocked).
type heldRecord struct {
	data []byte
	buf  *[]byte // back to its pool (putRecord) once data was read
}

// fastPaths counts the data path's shortcuts, for tests: bytes delivered
// straight into a waiting Read, records sealed where writeLoop laid them
// out, bytes queued in the record they came in (held), records sealed
// straight from the retransmit ring, and those of them written in one
// write after another one (batched); how often writeLoop went back to
// waiting with nothing to send (idleWaits: woken for nothing, but for its
// first wait), and the records that carried an acknowledgement alone
// (ackOnly).
type fastPaths struct {
	direct, inPlace, held, fromRing, batched, idleWaits, ackOnly atomic.Int64
}

// NewResumableSource makes the source's end of a resumable circuit over p,
// a sealed circuit opened with FlagResumable. cfg.Redial is required.
func NewResumableSource(p Path, local, remote net.Addr, cfg ResumeConfig) (*Resumable, error) {
	if cfg.Redial == nil {
		return nil, errors.New("circuit: a resumable source needs Redial")
	}
	r := newResumable(p, local, remote, cfg)
	r.source = true
	if _, err := rand.Read(r.id[:]); err != nil {
		return nil, fmt.Errorf("circuit: resumable id: %w", err)
	}
	r.helloDue, r.helloNow = true, !cfg.Early
	if cfg.Early {
		// Started by the first call on the circuit, once the first
		// flight left (a Write) or the open is due (a Read): starting
		// two goroutines, and the contention for r.mu with them, then
		// runs while the open travels instead of before it is sent.
		r.idle = true
	} else {
		r.start()
	}
	return r, nil
}

// NewResumableDest makes the destination's end of a resumable circuit over
// p, accepted from source for service. Once the source's hello arrives the
// circuit is registered in t, so that a FlagResume open can take it over.
func NewResumableDest(p Path, local, remote net.Addr, t *ResumeTable, source, service string, cfg ResumeConfig) *Resumable {
	r := newResumable(p, local, remote, cfg)
	r.table, r.tkey.source, r.service = t, source, service
	r.wantHello = true
	if t != nil {
		t.pend(source)
		r.pending = true
	}
	r.readEarly(p)
	r.start()
	return r
}

func newResumable(p Path, local, remote net.Addr, cfg ResumeConfig) *Resumable {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultResumeTimeout
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultResumeWindow
	}
	if cfg.ProgressTimeout == 0 {
		cfg.ProgressTimeout = DefaultProgressTimeout
	}
	r := &Resumable{cfg: cfg, local: local, remote: remote, cur: p, firstPath: p, quit: make(chan struct{})}
	r.cond.L, r.wcond.L = &r.mu, &r.mu
	r.sbuf.max, r.rq.max = cfg.Window, cfg.Window
	if cfg.Budget != nil {
		r.sbuf.sized, r.rq.sized = r, r
		r.sendBudget, _ = cfg.Budget.(SendBudget)
	}
	return r
}

func (r *Resumable) start() {
	r.mu.Lock()
	r.launchLocked()
	r.mu.Unlock()
}

// launchLocked starts readLoop, and writeLoop when it has something to do
// already (kickLocked). r.mu held.
func (r *Resumable) launchLocked() {
	r.wg.Add(1)
	go r.readLoop()
	r.kickLocked()
}

// startLocked starts the goroutines of a source that has not yet: every
// exported method that reads, writes or ends the circuit calls it, so that
// they run before anything needs them (a frame to write, a path to read,
// OnEnd to call). r.mu held.
func (r *Resumable) startLocked() {
	if r.idle {
		r.idle = false
		r.launchLocked()
	}
}

// kickLocked wakes writeLoop for what may have come its way, and starts
// it the first time there is something: a frame the Writes did not send
// themselves (sendInlineLocked), or, once the circuit ended cleanly, the
// path to close, unless readLoop ended the circuit and closes the path
// itself (readerEnds). A circuit whose frames all went inline and whose
// end readLoop saw (a short exchange) never starts it: one goroutine, and
// its wake-ups, fewer per circuit. Until writeLoop started, nothing waits
// on wcond. r.mu held.
func (r *Resumable) kickLocked() {
	switch {
	case r.wstarted:
		r.wcond.Signal()
	case r.idle:
		// startLocked decides.
	case r.ended:
		if r.cleanClose && r.cur != nil && !r.readerEnds {
			r.startWriterLocked()
		}
	case r.cur != nil && !r.mutedLocked() && r.workLocked():
		r.startWriterLocked()
	}
}

// startWriterLocked starts writeLoop. A caller runs while readLoop runs
// (it ends only once the circuit ended, and it then leaves no path for
// writeLoop to close, see readLoop), so Wait sees both. r.mu held.
func (r *Resumable) startWriterLocked() {
	r.wstarted = true
	r.wg.Add(1)
	go r.writeLoop()
}

// Wait blocks until the circuit's goroutines ended: after Close once
// everything was delivered, after Reset, or after a failure.
func (r *Resumable) Wait() {
	r.mu.Lock()
	r.startLocked()
	r.mu.Unlock()
	r.wg.Wait()
}

// Done is closed once the circuit ended: cleanly (Err is nil) or
// failed. A copy loop blocked on another connection learns from it that
// the circuit is gone, which its Reads and Writes tell only once called.
func (r *Resumable) Done() <-chan struct{} { return r.quit }

// Err is nil while the circuit runs and once it ended cleanly (both
// directions finished, or the other end closed after its end of stream);
// after a failure or a Reset it is why the circuit ended.
func (r *Resumable) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ended || r.cleanClose {
		return nil
	}
	return r.errLocked()
}

// Resumes is how many times a new path took the circuit over.
func (r *Resumable) Resumes() int64 { return r.resumes.Load() }

// resumableError reports whether a path failure may be resumed: a link on
// the path died, or a relay (not an end) gave up on the circuit.
func resumableError(err error) bool {
	var re *ResetError
	if errors.As(err, &re) {
		switch re.Code.Reason() {
		case CloseLinkLost:
			return true
		case CloseShuttingDown, CloseInternal:
			return re.Code.Hop() > 0
		}
		return false
	}
	var lre *links.StreamResetError
	if errors.As(err, &lre) {
		return resumableError(&ResetError{Code: CloseCode(lre.Code), Remote: lre.Remote, cause: lre})
	}
	return errors.Is(err, links.ErrLinkLost) || errors.Is(err, ErrNoProgress)
}

// refusedForGood reports whether a resume attempt's failure ends the
// circuit: the destination itself refused or reset it, or its identity
// did not hold.
func refusedForGood(err error) bool {
	var re *ResetError
	if errors.As(err, &re) {
		return re.Remote && re.Code.Hop() == 0 && re.Code.Reason() != CloseLinkLost
	}
	var rf *RefusedError
	if errors.As(err, &rf) {
		switch rf.Code {
		case NoService, Policy, HopLimit:
			return true
		}
		return false
	}
	return errors.Is(err, ErrAuth) || errors.Is(err, ErrIntegrity) || errors.Is(err, ErrResumeRefused)
}

// totalLocked is the positions this end has to send: data and the fin.
func (r *Resumable) totalLocked() int64 {
	if r.finQueued {
		return r.written + 1
	}
	return r.written
}

func (r *Resumable) workLocked() bool {
	if r.helloDue {
		return r.helloNow || r.sent < r.totalLocked() || r.ackDueLocked()
	}
	return r.sent < r.totalLocked() || r.pingDue || r.pongDue || r.ackDueLocked()
}

// mutedLocked reports whether nothing can be written on the current path:
// the other end stopped reading it, or this end ended its writing side
// with its fin.
func (r *Resumable) mutedLocked() bool {
	return r.wstopped == r.gen+1 || r.wclosed == r.gen+1
}

// ackDelay bounds how long a read smaller than the ack threshold waits to
// be acknowledged.
const ackDelay = 5 * time.Millisecond

// ackDueLocked reports whether an acknowledgement should go now: an
// eighth of the window was read since the last one, the fin came and this
// end's own fin is queued (the ack rides with it), or the oldest read not
// acknowledged waited ackDelay. Between those, acks ride on frames the
// writer sends anyway: a fin is acknowledged with the application's answer
// to it (its CloseWrite or Close) when that comes within the delay, one
// frame instead of two.
func (r *Resumable) ackDueLocked() bool {
	a := r.ackableLocked()
	switch {
	case a <= r.ackSent, r.ended:
		// An ended circuit sends nothing more: no timer for it either.
		return false
	case a-r.ackSent >= int64(r.cfg.Window/8), r.ackNow, r.gotFin && a == r.recv && r.finQueued:
		return true
	}
	if r.ackWaitFrom.IsZero() {
		r.ackWaitFrom = time.Now()
	}
	if r.ackTimer == nil {
		r.armAckTimerLocked(ackDelay)
	}
	return false
}

// armAckTimerLocked makes an acknowledgement due in d, unless what is
// unacknowledged then was read less than ackDelay before: its own delay
// then runs. An acknowledgement that rode on a frame since the timer was
// armed is not due: a timer that made an ack due for data read after that
// (an application that sends a request a millisecond after reading the
// answer to its last one) would send it in a record of its own beside the
// next request, two packets per message at every hop instead of one.
//
// A circuit makes its timer once and arms it again for each delayed
// acknowledgement: an interactive circuit arms one at each end for every
// message it reads (the answer carries the acknowledgement and stops it),
// and a timer made each time cost two allocations per message and end.
func (r *Resumable) armAckTimerLocked(d time.Duration) {
	if t := r.ackSpare; t != nil {
		r.ackSpare, r.ackTimer = nil, t
		t.Reset(d)
		return
	}
	r.ackTimer = time.AfterFunc(d, r.ackTimerFired)
}

// ackTimerFired is the delayed acknowledgement's timer running out. The
// timer is spent: it is kept for the next one.
func (r *Resumable) ackTimerFired() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ackSpare, r.ackTimer = r.ackTimer, nil
	if r.ended || r.ackableLocked() <= r.ackSent {
		return
	}
	if left := ackDelay - time.Since(r.ackWaitFrom); !r.ackWaitFrom.IsZero() && left > 0 {
		r.armAckTimerLocked(left)
		return
	}
	r.ackNow = true
	r.broadcast()
}

// stopAckTimerLocked disarms the delayed acknowledgement's timer. A timer
// stopped before it ran out is kept for the next one; one whose run is
// under way (waiting for r.mu) stays armed until that run, which re-arms
// only for data read since.
func (r *Resumable) stopAckTimerLocked() {
	if r.ackTimer != nil && r.ackTimer.Stop() {
		r.ackSpare, r.ackTimer = r.ackTimer, nil
	}
}

// writeLoop writes the frames of the paths (hello, acknowledgements, data
// and the fin, in that order of priority) whenever a Write does not send
// them itself (see sendInlineLocked); r.writing makes one writer at a time.
func (r *Resumable) writeLoop() {
	defer r.wg.Done()
	stack.Grow8K() // sealing a record grows a 2 KiB stack twice
	var bp *[]byte // a frame buffer, held only while there is work
	defer func() {
		if bp != nil {
			putFrame(bp)
		}
	}()
	r.mu.Lock()
	for {
		if r.ended && !r.cleanClose {
			r.mu.Unlock()
			return
		}
		// A clean end closes the path after the records in the pipe.
		if r.writing || r.inflight >= pipeDepth || r.ended && r.inflight > 0 {
			r.wcond.Wait()
			continue
		}
		// An ended circuit sends nothing more: it ended cleanly (else
		// it returned above), and the path's clean end tells the other
		// end that this one took all it needed (docs/PROTOCOL.md §3.9).
		if r.cur == nil || r.mutedLocked() || !r.workLocked() || r.ended {
			if r.ended {
				p := r.cur
				r.cur = nil
				r.mu.Unlock()
				if p != nil {
					_ = p.Close()
				}
				return
			}
			if bp != nil {
				putFrame(bp)
				bp = nil
			}
			r.fast.idleWaits.Add(1)
			r.wcond.Wait()
			continue
		}
		if bp = frameFor(bp, r.cur); r.sendLocked(bp, false) {
			bp = nil // in the pipe
		}
	}
}

// pipeDepth bounds the records sealed ahead of the path's writes: one
// being written, one waiting (writeLoop seals a third meanwhile).
const pipeDepth = 2

// pipeRec is a sealed record on its way to its path.
type pipeRec struct {
	path  Path
	gen   uint64
	bp    *[]byte // rec's buffer, back to framePool once written
	rec   []byte
	n     int  // the frames' bytes in rec
	recs  int  // the records in rec
	hello bool // rec carries the hello
}

// pipeLoop writes the records writeLoop sealed into the pipe, in order,
// until the pipe is empty: the last record written of a run releases its
// path's write lock, which the run held since its first was sealed, and
// pipeLoop ends (the next record starts another), so that a circuit
// holds its goroutine only while records are in flight. A path that
// failed or was closed fails its writes at once.
func (r *Resumable) pipeLoop(pipe <-chan pipeRec) {
	defer r.wg.Done()
	// quic-go's stream write grows a 2 KiB stack, copying it deep in
	// that call (in one pipe write of four in a bulk benchmark): grown
	// here it is copied while it holds one frame.
	stack.Grow8K()
	for done := false; !done; {
		pr := <-pipe
		c := pr.path.(sealedPath)
		err := c.writeHeld(pr.rec, pr.n)
		putFrame(pr.bp)
		r.mu.Lock()
		if r.inflight--; r.inflight == 0 {
			c.releaseWrite()
			r.pipePath, r.piping, done = nil, false, true
		}
		if err == nil {
			r.fast.fromRing.Add(int64(pr.recs))
			r.fast.batched.Add(int64(pr.recs - 1))
		}
		r.wroteLocked(pr.gen, err, false, pr.hello)
		r.wcond.Signal()
		r.mu.Unlock()
	}
}

// sendLocked builds the next frame in *bp and writes it on the current
// path, unlocked meanwhile (r.writing held), or, when it is a record
// sealed from the ring and not inline, puts it in the pipe for pipeLoop
// to write: it then reports that *bp went with it. Inline (a Write
// sending its own small frame, sendInlineLocked), a record sealed from
// the ring is written by the caller too: handing it to pipeLoop would
// start a goroutine and wait for it to run, for every small message.
func (r *Resumable) sendLocked(bp *[]byte, inline bool) (piped bool) {
	p, gen := r.cur, r.gen
	b := (*bp)[:seal.RecordHead] // the record's head, filled when sealed in place
	hello := r.helloDue
	if hello {
		b = append(b, frameHello)
		b = append(b, r.id[:]...)
		r.helloDue = false
	}
	if a := r.ackableLocked(); a > r.ackSent {
		b = binary.BigEndian.AppendUint64(append(b, frameAck), uint64(a))
		r.ackSent = a
		r.ackWaitFrom = time.Time{}
		// Its acknowledgement rode here: a timer left to run out would
		// start a goroutine to find nothing due.
		r.stopAckTimerLocked()
	}
	r.ackNow = false // what was read is acknowledged now
	b = r.appendProbeLocked(b)
	var rec []byte // records sealed from the ring (sealFromRingLocked)
	var recs int   // how many
	var err error
	last := false
	if !r.ended {
		if r.sent < r.written {
			maxData := frameDataMax(p)
			n := min(r.written-r.sent, maxData)
			at := r.sent - r.acked
			var k int
			if rec, k, err = r.sealFromRingLocked(p, (*bp)[:0:cap(*bp)], b, at, n, false); k > 0 || err != nil {
				r.sent += int64(k)
				recs = 1
				// More records of data alone after it, in one Write: half
				// the writes (and hand-offs to pipeLoop) of one record
				// each. Sealing holds the path's write lock now.
				for err == nil && r.sent < r.written && int64(cap(rec)-len(rec)) >= maxData+frameRoom+seal.Overhead {
					n := min(r.written-r.sent, maxData)
					more, k, _ := r.sealFromRingLocked(p, rec[len(rec):len(rec):cap(rec)], b[:seal.RecordHead], r.sent-r.acked, n, true)
					if k == 0 {
						break // sent with the next frame, or that fails too
					}
					rec = rec[:len(rec)+len(more)]
					r.sent += int64(k)
					recs++
				}
			} else {
				b = binary.BigEndian.AppendUint16(append(b, frameData), uint16(n))
				b = b[:len(b)+int(n)]
				r.sbuf.copyOut(b[len(b)-int(n):], int(at), int(n))
				r.sent += n
			}
		} else if r.finQueued && r.sent == r.written {
			b = append(b, frameFin)
			r.sent++
			// An application that closed reads nothing more: this end's
			// side of the path ends with its fin (docs/PROTOCOL.md §3.9).
			last = r.appClosed
		}
		r.sentMost = max(r.sentMost, r.sent)
		if r.sent > r.acked {
			r.armProbeLocked()
		}
	}
	if rec == nil && err == nil && len(b) == seal.RecordHead {
		// Nothing left to send: an ended circuit with its fin unsent, or
		// an acknowledgement already carried by an earlier frame.
		return false
	}
	if rec != nil && inline {
		// The record holds p's write lock (sealRecord, with nothing in
		// the pipe): write it from here, as writeFrames would.
		r.writing = true
		r.mu.Unlock()
		c := p.(sealedPath)
		err = c.writeHeld(rec, len(rec)-recs*seal.Overhead)
		c.releaseWrite()
		r.mu.Lock()
		r.writing = false
		if err == nil {
			r.fast.fromRing.Add(int64(recs))
			r.fast.batched.Add(int64(recs - 1))
		}
		r.wroteLocked(gen, err, false, hello)
		return false
	}
	if rec != nil {
		// pipeLoop writes it while writeLoop seals the next: sealing is
		// off the path's critical path. The pipe has room (inflight <
		// pipeDepth), and holds p's write lock until it is empty.
		if r.pipe == nil {
			r.pipe = make(chan pipeRec, pipeDepth)
		}
		if !r.piping {
			// A circuit with no record in flight runs no pipeLoop.
			r.piping = true
			r.wg.Add(1)
			go r.pipeLoop(r.pipe)
		}
		r.inflight++
		r.pipePath = p
		r.pipe <- pipeRec{path: p, gen: gen, bp: bp, rec: rec, n: len(rec) - recs*seal.Overhead, recs: recs, hello: hello}
		return true
	}
	if len(b) == seal.RecordHead+9 && b[seal.RecordHead] == frameAck {
		r.fast.ackOnly.Add(1)
	}
	r.writing = true
	for r.inflight > 0 {
		// What goes another way waits for the sealed records before it.
		r.wcond.Wait()
	}
	r.mu.Unlock()
	closed := false
	if err == nil { // else sealing failed: the path is closed or broken
		closed, err = r.writeFrames(p, b, last)
	}
	r.mu.Lock()
	r.writing = false
	r.wroteLocked(gen, err, closed, hello)
	return false
}

// wroteLocked acts on the end of a write on the path of generation gen:
// closed, it ended the path's writing side; hello, it carried the hello.
func (r *Resumable) wroteLocked(gen uint64, err error, closed, hello bool) {
	if closed {
		r.wclosed = gen + 1
	}
	if hello {
		r.helloSent = true
		r.broadcast()
	}
	switch {
	case err == nil:
	case isGracefulStop(err) && gen == r.gen:
		// The other end stopped reading the path gracefully: it closed or
		// refused the circuit, and what it said (a refusal, the end of
		// stream) comes on the read side, which decides, within
		// stopDecideTimeout: a hop that stops reading one direction while
		// the other stays open (nothing ever comes to decide) fails the
		// path as any other write error does.
		r.wstopped = gen + 1
		time.AfterFunc(stopDecideTimeout, func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.wstopped == gen+1 {
				r.pathFailedLocked(gen, err)
			}
		})
	default:
		r.pathFailedLocked(gen, err)
	}
}

// sealFromRingLocked seals a record of the frames laid out in b (after
// seal.RecordHead bytes) and a data frame of up to n bytes at offset at
// of the retransmit ring straight from the ring into out's memory
// (capacity for seal.MaxRecord), saving the
// copy of the data into b: the record's type and the frames' bytes are
// written over the ring's bytes just before the data (data sent and not
// acknowledged, kept for a resume), the record is sealed from there, and
// those bytes are put back. It needs a sealed path whose handshake
// completed, and those bytes and the data (cut at the ring's end) in one
// piece of the ring. It returns the record and the data bytes it carries
// (0: nothing sealed, b is sent the ordinary way) or the path's failure.
// r.mu is held throughout, so no Write grows the ring meanwhile. With
// held, the caller holds p's write lock already (a record sealed before
// this one and not yet written took it).
func (r *Resumable) sealFromRingLocked(p Path, out, b []byte, at, n int64, held bool) ([]byte, int, error) {
	c, ok := p.(sealedPath)
	if !ok {
		return nil, 0, nil
	}
	q := &r.sbuf
	var saved [64]byte
	h := 1 + len(b) - seal.RecordHead + 3 // type, the frames, a data frame's head
	start := (q.head + int(at)) % len(q.buf)
	if at < int64(h) || start < h || h > len(saved) {
		return nil, 0, nil
	}
	k := min(int(n), len(q.buf)-start)
	plain := q.buf[start-h : start+k]
	copy(saved[:h], plain)
	plain[0] = seal.RecordData
	w := 1 + copy(plain[1:], b[seal.RecordHead:])
	plain[w] = frameData
	binary.BigEndian.PutUint16(plain[w+1:], uint16(k))
	var rec []byte
	var err error
	switch {
	case held:
		rec, err = c.sealHeld(plain, out)
	case r.inflight == 0:
		rec, ok, err = c.sealRecord(plain, out)
	case r.pipePath == p:
		// The pipe holds p's write lock: this record goes after its own.
		rec, err = c.sealHeld(plain, out)
	default:
		ok = false // the pipe still writes to a path since replaced
	}
	copy(plain, saved[:h])
	switch {
	case !ok:
		return nil, 0, nil
	case err != nil:
		return nil, 0, err
	}
	return rec, k, nil
}

// maxInline bounds the unsent bytes a Write sends itself: few enough that
// the path's Write copies them and returns without waiting (a QUIC stream
// buffers up to a packet's worth).
const maxInline = 1 << 10

// stopDecideTimeout bounds the wait for the read side's verdict on a path
// whose other end stopped reading it gracefully.
const stopDecideTimeout = 5 * time.Second

// sendInlineLocked sends what a Write just queued from the writer's own
// goroutine, when no frame is being written and it all fits one small
// frame: the first flight of an open and a small reply then leave at once,
// without waking writeLoop (a goroutine hand-off, and a stack of its own
// grown for the handshake). It reports whether it sent; writeLoop sends
// the rest. A path whose write would wait for a handshake round trip (the
// full handshake, data beyond the early data) is left to writeLoop, and so
// is everything while sent data is unacknowledged: the path's stream may
// then be out of flow-control credit (a hop or the other end not reading),
// and its Write would block the caller; with everything acknowledged the
// stream holds at most small control frames, and a small Write is copied
// and returns. With no record in the pipe (inflight 0) sendLocked never
// waits on wcond here, which writeLoop alone may wait on.
func (r *Resumable) sendInlineLocked() bool {
	if r.writing || r.inflight > 0 || r.cur == nil || r.mutedLocked() || r.ended || r.written-r.sent > maxInline || r.sent != r.acked {
		return false
	}
	if w, ok := r.cur.(interface{ writeWaits() bool }); ok && w.writeWaits() {
		return false
	}
	bp := frameFor(nil, r.cur)
	if !r.sendLocked(bp, true) {
		putFrame(bp)
	}
	if r.ended || r.workLocked() {
		r.kickLocked() // what came meanwhile, or the path to close
	}
	return true
}

// sealedPath is a sealed path whose records the resumable layer fills and
// drains in place: a *Conn, or a type that embeds one (as a node's
// circuits do).
type sealedPath interface {
	writeDataRecord(rec []byte) (bool, error)
	writeLastRecord(rec []byte) (bool, error)
	sealRecord(plain, out []byte) ([]byte, bool, error)
	sealHeld(plain, out []byte) ([]byte, error)
	writeHeld(rec []byte, n int) error
	releaseWrite()
	readBuffered(b []byte) int
	takeBuffered(n int, t recordTaker) ([]byte, *[]byte)
	recordData() int
}

// writeFrames writes b[seal.RecordHead:], frames laid out after room for a
// record's head: a sealed path (*Conn) seals them in place into one
// record, others get them as bytes. With last (the frames end with this
// end's fin and its application closed), a sealed path whose handshake
// completed also ends its writing side in the same write (the end record,
// then FIN): closed reports that it did.
func (r *Resumable) writeFrames(p Path, b []byte, last bool) (closed bool, err error) {
	if c, ok := p.(sealedPath); ok {
		write := c.writeDataRecord
		if last {
			write = c.writeLastRecord
		}
		if done, err := write(b); done {
			if err == nil {
				r.fast.inPlace.Add(1)
			}
			return last && err == nil, err
		}
	}
	_, err = p.Write(b[seal.RecordHead:])
	return false, err
}

// readLoop reads the frames of each path in turn.
func (r *Resumable) readLoop() {
	defer r.wg.Done()
	stack.Grow8K() // the handshake's reply and a record's opening grow a 2 KiB stack twice
	defer r.endOnce.Do(r.onEnd)
	for {
		r.mu.Lock()
		// An early path is read only once its first flight left with the
		// hello: a Read first would send the open without it.
		for !r.ended && (r.cur == nil || r.source && !r.helloSent) {
			r.cond.Wait()
		}
		if r.ended {
			// A clean end closes the path: here when writeLoop never
			// started, after a Write still writing inline (writeLoop then
			// closes it once that write returned).
			var p Path
			if !r.wstarted && r.cleanClose && r.cur != nil {
				if r.writing {
					r.startWriterLocked()
				} else {
					p, r.cur = r.cur, nil
				}
			}
			r.mu.Unlock()
			if p != nil {
				_ = p.Close()
			}
			return
		}
		p, gen := r.cur, r.gen
		r.mu.Unlock()
		err := r.readPath(p, gen, nil)
		r.mu.Lock()
		if err == io.EOF {
			r.readerEnds = true
			r.pathEndedLocked(gen)
			r.readerEnds = false
		} else {
			r.pathFailedLocked(gen, err)
		}
		r.mu.Unlock()
	}
}

func (r *Resumable) onEnd() {
	r.mu.Lock()
	if r.linger != nil {
		r.linger.Stop()
	}
	r.mu.Unlock()
	if r.cfg.OnEnd != nil {
		r.cfg.OnEnd()
	}
}

var errStale = errors.New("circuit: path replaced")

// errPeerClosed is what a circuit's Reads and Writes fail with once it
// ended cleanly because the other end closed it: the reset from the other
// side with CloseNormal that a plain circuit's Write fails with then
// (matching net.ErrClosed and links.ErrStreamReset). One value for every
// circuit: a clean end, which every circuit comes to, then costs no
// allocation.
var errPeerClosed = &ResetError{Code: CloseCode(CloseNormal), Remote: true,
	cause: &links.StreamResetError{Code: CloseNormal, Remote: true}}

// errEnded: the frame just read ended the circuit (cleanly); its path is
// read no further.
var errEnded = errors.New("circuit: ended")

// readPath reads frames from p until it fails (io.EOF: it ended cleanly
// at a frame boundary), or, when more is set, until more reports false
// before a frame.
func (r *Resumable) readPath(p Path, gen uint64, more func() bool) error {
	hdr := &r.rhdr
	for {
		if more != nil && !more() {
			return nil
		}
		if _, err := io.ReadFull(p, hdr[:1]); err != nil {
			return err
		}
		r.frames.Add(1)
		r.mu.Lock()
		wantHello := r.wantHello
		r.mu.Unlock()
		if wantHello != (hdr[0] == frameHello) {
			return r.integrity(fmt.Sprintf("frame %d where a hello %s expected", hdr[0], map[bool]string{true: "was", false: "was not"}[wantHello]))
		}
		switch hdr[0] {
		case frameHello:
			if _, err := io.ReadFull(p, hdr[1:1+idLen]); err != nil {
				return unexpected(err)
			}
			r.mu.Lock()
			r.wantHello = false
			copy(r.id[:], hdr[1:1+idLen])
			r.tkey.id = r.id
			if r.table != nil && !r.ended {
				r.registered = r.table.register(r)
			}
			r.unpendLocked()
			r.mu.Unlock()
		case frameData:
			if _, err := io.ReadFull(p, hdr[1:3]); err != nil {
				return unexpected(err)
			}
			n := int(binary.BigEndian.Uint16(hdr[1:3]))
			if n == 0 {
				return r.integrity("empty data frame")
			}
			if err := r.readData(p, gen, n); err != nil {
				return err
			}
			if err := r.readRun(p, gen, nil); err != nil {
				return err
			}
		case frameAck:
			if _, err := io.ReadFull(p, hdr[1:9]); err != nil {
				return unexpected(err)
			}
			if err := r.readRun(p, gen, hdr[:9]); err != nil {
				return err
			}
		case frameFin:
			r.mu.Lock()
			if gen != r.gen {
				r.mu.Unlock()
				return errStale
			}
			if r.gotFin {
				r.mu.Unlock()
				return r.integrity("second fin")
			}
			r.gotFin = true
			r.recv++
			// The readers see the end of stream; writeLoop only when the
			// fin made something due (its ack, with this end's own fin
			// queued): else it would wake to find nothing to send, once
			// per circuit, and the ack waits for its delay or rides on
			// the application's answer.
			r.cond.Broadcast()
			if r.workLocked() {
				r.kickLocked()
			}
			r.readerEnds = true
			r.checkDoneLocked()
			r.readerEnds = false
			ended := r.ended
			r.mu.Unlock()
			if ended {
				return errEnded // readLoop closes the path
			}
		case framePing, framePong:
			if err := r.readRun(p, gen, hdr[:1]); err != nil {
				return err
			}
		default:
			return r.integrity(fmt.Sprintf("unknown frame type %d", hdr[0]))
		}
	}
}

// readEarly (destination) takes the hello and the data frames that came
// with the open, already received and opened (Conn.buffered), before the
// circuit is handed to the application: its first Read then finds them
// without waiting for readLoop. It reads only whole frames (never waits);
// readLoop reads the rest.
func (r *Resumable) readEarly(p Path) {
	b, ok := p.(interface{ buffered() []byte })
	if !ok {
		return
	}
	whole := func() bool {
		e := b.buffered()
		switch {
		case len(e) >= 1+idLen && e[0] == frameHello:
			return true
		case len(e) >= 3 && e[0] == frameData:
			return len(e) >= 3+int(binary.BigEndian.Uint16(e[1:3]))
		}
		return false
	}
	// Nothing else knows r before the hello registers it, so r.gen is
	// read here unlocked; a failure is charged to that generation, not to
	// a resume that registered it and replaced p meanwhile (whose new
	// path this read never touched).
	gen := r.gen
	if err := r.readPath(p, gen, whole); err != nil {
		r.mu.Lock()
		r.pathFailedLocked(gen, err)
		r.mu.Unlock()
	}
}

// readData reads the n bytes of a data frame: into a waiting Read's
// buffer (deliverLocked) or kept in their record (holdLocked) when nothing
// is queued before them, else straight into the free space of the receive
// queue (pinned meanwhile: the application's Reads may drain it but it
// stays in place). A path replaced meanwhile is stale:
// its data is sent again on the new one. The queue needs no wait: the
// other end sends at most Window bytes beyond what this end acknowledged,
// and it acknowledges only what was read (a resume's received offset
// frees retransmit data but gives no credit).
func (r *Resumable) readData(p Path, gen uint64, n int) error {
	for n > 0 {
		r.mu.Lock()
		if gen != r.gen || r.ended {
			r.mu.Unlock()
			return errStale
		}
		if r.gotFin {
			r.mu.Unlock()
			return r.integrity(errDataAfterFin)
		}
		if r.queuedLocked()+n > r.cfg.Window {
			r.mu.Unlock()
			return r.integrity("the other end sent beyond its window")
		}
		if k := r.deliverLocked(p, n); k > 0 {
			n -= k
			r.mu.Unlock()
			continue
		}
		if k := r.holdLocked(p, n); k > 0 {
			n -= k
			r.mu.Unlock()
			continue
		}
		dst := r.rq.tail(n)
		if r.overBudget {
			r.mu.Unlock()
			return r.budgetErr()
		}
		r.rq.pinned = true
		r.mu.Unlock()
		k, err := p.Read(dst)
		r.mu.Lock()
		stale := gen != r.gen || r.ended
		if k > 0 && !stale {
			if !r.appClosed { // else the bytes are dropped
				r.rq.commit(k)
			}
			r.recv += int64(k)
			n -= k
			r.cond.Broadcast() // the readers; acknowledgements wait for Reads
			if r.appClosed {
				r.kickLocked()
			}
		}
		r.rq.unpin()
		r.mu.Unlock()
		if stale {
			return errStale
		}
		if err != nil && n > 0 {
			return unexpected(err)
		}
	}
	return nil
}

// errDataAfterFin: the fin is a direction's last position, so a data
// frame after it is beyond what the other end can have sent.
const errDataAfterFin = "data after the fin"

// readRun acts on the frame just read, first (an acknowledgement, a ping
// or a pong; nil after a data frame, which readData took), and on the
// frames that follow it in the record p (a sealed Conn) already
// decrypted, taken in one pass under one take of the lock (takeFrame):
// pings, pongs, acknowledgements and whole data frames, in any order.
// An honest end sends one data frame a record, with an acknowledgement
// or a probe before it; a record of many small frames, read one by one,
// cost one to three Reads of the path, a take of the lock and, for data,
// a wake of the readers each: several times the CPU of the same bytes in
// one data frame (TestAttackTinyResumableFramesReadInBulk,
// TestAttackAckFloodReadInBulk). Each frame is checked as a lone one is;
// the first that fails a check ends the run, and its failure is
// returned once what came before it took effect.
func (r *Resumable) readRun(p Path, gen uint64, first []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if gen != r.gen || r.ended {
		return errStale
	}
	r.run = frameRun{recv: r.recv}
	r.runOver = false
	// An acknowledgement that ends the circuit ends it here: readLoop
	// then closes the path (see kickLocked).
	r.readerEnds = true
	defer func() { r.readerEnds = false }()
	more := true
	if first != nil {
		_, more = r.takeFrame(first)
	}
	if q, ok := p.(frameRunTaker); ok && more {
		r.frames.Add(int64(q.takeFrames(r)))
	}
	run := &r.run
	if run.acks {
		r.sampleRateLocked(r.credit)
		r.peerShown = true
		r.wakeForAckLocked()
	}
	if run.pong {
		r.probeFrameLocked(framePong)
	}
	if run.ping {
		r.probeFrameLocked(framePing)
	}
	if r.recv > run.recv {
		r.cond.Broadcast() // the readers; acknowledgements wait for Reads
		if r.appClosed {
			r.kickLocked()
		}
	}
	switch {
	case r.ended:
		return errEnded // readLoop closes the path
	case run.badAck:
		return r.integrity(fmt.Sprintf("acknowledgement of %d outside [%d, %d]", run.ackOff, r.credit, r.sent))
	case run.afterFin:
		return r.integrity(errDataAfterFin)
	case r.runOver:
		return r.integrity("the other end sent beyond its window")
	case r.overBudget:
		return r.budgetErr()
	}
	return nil
}

// frameRun is what readRun took of a run of frames: whether it met a ping,
// a pong, and acknowledgements (the highest, checked one by one, is
// r.credit), the one that failed its check (ackOff), and r.recv before.
type frameRun struct {
	ping, pong, acks, badAck bool
	afterFin                 bool // a data frame came after the fin
	ackOff                   int64
	recv                     int64
}

// takeFrame is readRun's taking of one frame f of a run, whole: it
// reports whether it took f, and whether the run goes on after it. An
// acknowledgement must lie between the last one (r.credit) and what was
// sent, as a lone one must; once one ended the circuit nothing after it
// is taken. A data frame is taken as takeData takes it. r.mu held.
func (r *Resumable) takeFrame(f []byte) (took, more bool) {
	switch f[0] {
	case framePing:
		r.run.ping = true
	case framePong:
		r.run.pong = true
	case frameAck:
		off := int64(binary.BigEndian.Uint64(f[1:9]))
		if off < r.credit || off > r.sent {
			r.run.badAck, r.run.ackOff = true, off
			return false, false
		}
		r.credit, r.run.acks = off, true
		r.ackLocked(off)
		return true, !r.ended
	case frameData:
		took = r.takeData(f[3:])
		return took, took
	}
	return true, true
}

// runFrame is the length of the frame b starts with when it is one that
// a run takes (takeFrame) and whole in b, else 0: a ping, a pong, an
// acknowledgement, or a data frame of at least one byte (an empty one
// is left for readPath to refuse) that does not end b. A data frame
// that ends what was decrypted, as an honest end's one data frame a
// record does, is left for readData, which hands its bytes to a waiting
// Read or keeps them in their record (holdLocked) instead of copying
// them into the receive queue.
func runFrame(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	switch b[0] {
	case framePing, framePong:
		return 1
	case frameAck:
		if len(b) >= 9 {
			return 9
		}
	case frameData:
		if len(b) >= 3 {
			if n := 3 + int(binary.BigEndian.Uint16(b[1:3])); n > 3 && len(b) > n {
				return n
			}
		}
	}
	return 0
}

// takeData is takeFrame's taking of one data frame's bytes, as readData
// takes them into the receive queue: it reports false, taking nothing,
// for bytes beyond the window (r.runOver then says so) or that the budget
// refuses room for. r.mu held.
func (r *Resumable) takeData(data []byte) bool {
	if r.run.afterFin = r.gotFin; r.run.afterFin {
		return false
	}
	if r.runOver = r.queuedLocked()+len(data) > r.cfg.Window; r.runOver {
		return false
	}
	// The queue makes room for the whole frame at its first tail, which
	// the budget may refuse.
	for rest := data; len(rest) > 0 && !r.appClosed; { // else the bytes are dropped
		dst := r.rq.tail(len(rest))
		if r.overBudget {
			return false
		}
		k := copy(dst, rest)
		r.rq.commit(k)
		rest = rest[k:]
	}
	r.recv += int64(len(data))
	return true
}

// frameRunTaker is a path that can hand over, without blocking, the
// frames already decrypted after the one just read (Conn.takeFrames).
type frameRunTaker interface {
	takeFrames(t frameTaker) int
}

// frameTaker takes one frame of a run (Conn.takeFrames). A *Resumable is
// one: a closure in its place, passed through the path's interface, was
// allocated for every run read.
type frameTaker interface {
	takeFrame(f []byte) (took, more bool)
}

// deliverLocked copies up to n bytes of a data frame that p (a sealed
// Conn) already decrypted straight into the buffer of a waiting Read, when
// nothing is queued before them, and returns how many. It never blocks:
// the Read's buffer is written only under the lock the Read waits for.
func (r *Resumable) deliverLocked(p Path, n int) int {
	w := &r.rw
	if w.b == nil || r.queuedLocked() > 0 || r.appClosed {
		return 0
	}
	c, ok := p.(sealedPath)
	if !ok {
		return 0
	}
	k := c.readBuffered(w.b[:min(len(w.b), n)])
	if k == 0 {
		return 0
	}
	w.b, w.n = nil, k
	r.recv += int64(k)
	r.in.Add(int64(k))
	r.fast.direct.Add(int64(k))
	r.cond.Broadcast()
	if r.ackDueLocked() {
		r.kickLocked()
	}
	return k
}

// holdLocked queues up to n bytes of a data frame that p (a sealed Conn)
// already decrypted in the record buffer they came in, taking that buffer
// over instead of copying them into rq, when nothing is queued in rq: the
// frame's bytes must be the rest of the record (a data frame is the last
// of its batch). Records queue this way behind each other, a bulk stream
// read a little behind its arrival without a copy into rq, up to
// maxHeldLocked records, so the buffers a circuit holds stay bounded
// (rq takes what comes next). Each record's buffer is charged to the
// budget while held; when the budget has no room for it, nothing is held
// (the bytes go to rq, whose growth the budget refuses in turn).
func (r *Resumable) holdLocked(p Path, n int) int {
	if r.rq.len() > 0 || r.appClosed || r.overBudget {
		return 0
	}
	c, ok := p.(sealedPath)
	if !ok {
		return 0
	}
	r.takeCharged = false
	data, bp := c.takeBuffered(n, r)
	if data == nil {
		return 0
	}
	size := len(*bp)
	r.heldBufs += size
	if r.takeCharged {
		r.charged += size
		r.heldCharge += size
	}
	r.held = append(r.held, heldRecord{data, bp})
	r.heldBytes += len(data)
	r.recv += int64(len(data))
	r.fast.held.Add(int64(len(data)))
	r.cond.Broadcast()
	return len(data)
}

// recordTaker agrees to take over a received record's buffer of size
// bytes (Conn.takeBuffered). A *Resumable is one: a closure in its place
// was allocated for every record held.
type recordTaker interface{ takeRecord(size int) bool }

// takeRecord is holdLocked's agreement to hold a record whose buffer is
// size bytes: the held buffers stay within maxHeldLocked, and with a
// budget the buffer is charged to it (r.takeCharged then says so). r.mu
// held.
func (r *Resumable) takeRecord(size int) bool {
	if r.heldBufs+size > r.maxHeldLocked() {
		return false
	}
	if r.cfg.Budget != nil {
		if !r.cfg.Budget.Grow(size) {
			return false
		}
		r.takeCharged = true
	}
	return true
}

// maxHeldLocked bounds the buffers of the records held, in bytes: at most
// a quarter of the window (one record of seal.MaxRecord at least), beside
// rq's.
func (r *Resumable) maxHeldLocked() int { return heldRecords(r.cfg.Window) * seal.MaxRecord }

// heldRecords is how many received records of up to seal.MaxData bytes a
// circuit with the given window keeps unread in the buffers they came in:
// a quarter of the window, one at least. Larger records take the room of
// two.
func heldRecords(window int) int { return max(1, window/heldShare/seal.MaxRecord) }

// queuedLocked is what was received and not read yet.
func (r *Resumable) queuedLocked() int { return r.heldBytes + r.rq.len() }

// readHeldLocked copies held payload into b, in order, and returns how
// much; emptied records' buffers go back.
func (r *Resumable) readHeldLocked(b []byte) int {
	n := 0
	for len(r.held) > 0 && n < len(b) {
		h := &r.held[0]
		k := copy(b[n:], h.data)
		n += k
		if h.data = h.data[k:]; len(h.data) == 0 {
			r.dropFirstHeldLocked()
		}
	}
	r.heldBytes -= n
	return n
}

// dropFirstHeldLocked returns the first held record's buffer, and its
// charge to the budget unless the circuit ended (endLocked gave
// everything back).
func (r *Resumable) dropFirstHeldLocked() {
	size := len(*r.held[0].buf)
	putRecord(r.held[0].buf)
	k := copy(r.held, r.held[1:])
	r.held[k] = heldRecord{}
	r.held = r.held[:k]
	r.heldBufs -= size
	if r.heldCharge > 0 {
		r.sizedLocked(-size)
		r.heldCharge -= size
	}
}

// dropHeldLocked drops every held record.
func (r *Resumable) dropHeldLocked() {
	for len(r.held) > 0 {
		r.dropFirstHeldLocked()
	}
	r.heldBytes = 0
}

// framePool holds writeLoop's buffers: a record's head, up to 64 bytes of
// control frames, a data frame, and room for the record's tag; or two
// records sealed from the ring (see sendLocked).
// largeFramePool holds the same for paths whose other end reads records
// of up to seal.MaxLargeData bytes.
var (
	framePool      = sync.Pool{New: func() any { b := make([]byte, 0, 2*seal.MaxRecord); return &b }}
	largeFramePool = sync.Pool{New: func() any { b := make([]byte, 0, 2*seal.MaxLargeRecord); return &b }}
)

// frameDataMax is the most data one data frame on p carries: as much as
// fits one record of the size the other end reads.
func frameDataMax(p Path) int64 {
	if c, ok := p.(sealedPath); ok {
		return int64(c.recordData() - frameRoom)
	}
	return seal.MaxData - frameRoom
}

// frameFor is a frame buffer for the records of p: bp when it has the
// size they need, else one from the pool for it (bp goes back).
func frameFor(bp *[]byte, p Path) *[]byte {
	pool := &framePool
	if frameDataMax(p) > seal.MaxData-frameRoom {
		pool = &largeFramePool
	}
	if bp != nil {
		if (cap(*bp) > 2*seal.MaxRecord) == (pool == &largeFramePool) {
			return bp
		}
		putFrame(bp)
	}
	return pool.Get().(*[]byte)
}

// putFrame gives back a buffer of frameFor.
func putFrame(bp *[]byte) {
	if cap(*bp) > 2*seal.MaxRecord {
		largeFramePool.Put(bp)
	} else {
		framePool.Put(bp)
	}
}

// unexpected is err of a path read inside a frame: an io.EOF there, or
// the io.ErrUnexpectedEOF of a frame's fields read in part, is
// errEndInsideFrame.
func unexpected(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errEndInsideFrame
	}
	return err
}

// errEndInsideFrame: a path ended cleanly inside a frame. The other end
// (or a relay) cut it there, as it fails the circuit ending at a frame
// boundary before the fin (pathEndedLocked): it broke the framing.
var errEndInsideFrame = fmt.Errorf("%w: resumable framing: the path ended inside a frame: %w", ErrIntegrity, io.ErrUnexpectedEOF)

// integrity is a framing failure: the other end broke the protocol.
func (r *Resumable) integrity(what string) error {
	return fmt.Errorf("%w: resumable framing: %s", ErrIntegrity, what)
}

// ackableLocked is what this end acknowledges: what it received, less what
// the application has not read yet.
func (r *Resumable) ackableLocked() int64 {
	return r.recv - int64(r.queuedLocked())
}

// ackLocked drops what the other end acknowledged.
func (r *Resumable) ackLocked(off int64) {
	if off <= r.acked {
		return
	}
	data := min(off, r.written) - r.acked
	if data > 0 {
		r.sbuf.pop(int(data))
	}
	r.acked = off
	r.checkDoneLocked()
}

// wakeForAckLocked wakes whom an acknowledgement concerns: the Writes
// waiting for room in the window, and writeLoop when it has work. An
// acknowledgement mostly rides with the other end's answer: waking a Read
// that waits for that answer before the data frame after it was read, or
// writeLoop with nothing to send, would be two wake-ups for nothing per
// message. The end of the circuit it may bring wakes everyone
// (endLocked).
func (r *Resumable) wakeForAckLocked() {
	if r.roomWaiters > 0 {
		r.cond.Broadcast()
	}
	if r.workLocked() {
		r.kickLocked()
	}
}

// checkDoneLocked ends the circuit once this end's fin was acknowledged
// and the other end finished too (or the application closed).
func (r *Resumable) checkDoneLocked() {
	if r.ended || !r.finQueued || r.acked != r.written+1 || !(r.gotFin || r.appClosed) {
		return
	}
	r.cleanClose = true
	r.endLocked()
}

// sizedLocked charges a change of a buffer's size to the budget. Once
// the circuit ended everything went back (endLocked): what its buffers
// still hold until the application drops them is not counted.
func (r *Resumable) sizedLocked(delta int) {
	switch {
	case r.ended:
	case delta < 0:
		delta = min(-delta, r.charged)
		r.charged -= delta
		r.cfg.Budget.Shrink(delta)
	case delta > 0 && !r.overBudget:
		if !r.cfg.Budget.Grow(delta) {
			r.overBudget = true
			return
		}
		r.charged += delta
	}
}

// sendRoomLocked is how many of the k bytes a Write may queue in the
// retransmit buffer now: all when they fit its buffer, or when the
// SendBudget grants the buffer they need; else as many as fit the next
// size up if granted, or the buffer as it is (0 when full: the Write
// waits). Without a SendBudget, all (the buffer grows, and a refusal
// ends the circuit). r.mu held.
func (r *Resumable) sendRoomLocked(k int) int {
	q := &r.sbuf
	if r.sendBudget == nil || r.ended || q.n+k <= len(q.buf) {
		return k
	}
	if size := q.sizeFor(k); r.growSendLocked(size) {
		return k
	}
	if size := q.nextSize(); size > 0 && size < q.sizeFor(k) && r.growSendLocked(size) {
		return min(k, size-q.n)
	}
	return len(q.buf) - q.n
}

// growSendLocked moves the retransmit buffer to one of size bytes if the
// SendBudget grants the growth, charged as the ring's growth would be.
// r.mu held.
func (r *Resumable) growSendLocked(size int) bool {
	q := &r.sbuf
	delta := size - len(q.buf)
	r.sendRefused = !r.sendBudget.GrowSend(delta, size <= MinSendBuffer)
	if r.sendRefused {
		return false
	}
	r.charged += delta
	q.sized = nil // charged above
	q.resize(size)
	q.sized = r
	return true
}

// writeDoneLocked: a Write returns. If the SendBudget refused the
// circuit room and no other Write waits, the budget stops keeping its
// turn for it. r.mu held.
func (r *Resumable) writeDoneLocked() {
	if r.sendRefused && r.roomWaiters == 0 {
		r.sendRefused = false
		r.sendBudget.StopWaiting()
	}
}

// SendRoom tells the circuit that its SendBudget may have room again: its
// Writes waiting for it ask again. It takes the circuit's lock: the
// budget must not call it while a circuit's lock or its own is held.
func (r *Resumable) SendRoom() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.roomWaiters > 0 {
		r.cond.Broadcast()
	}
}

// budgetErr is the failure of a circuit whose buffers went over budget.
func (r *Resumable) budgetErr() error {
	return fmt.Errorf("%w (circuit with %s)", ErrBufferBudget, r.remote)
}

// Abort ends the circuit with err (wrapped by the errors of its Reads and
// Writes); its path, if any, is reset with code. It is never resumed.
// As after Conn.Abort, the end then counts as closed: pending and later
// Reads and Writes fail at once with err (or why the circuit had already
// ended), and the deadline setters, CloseWrite and Close with
// net.ErrClosed. AppClosed stays false until the application calls
// Close or Reset (which then fail or do nothing). It does nothing to an
// end closed by Close or Reset but end the delivery a Close left under
// way, and nothing to a circuit that had already ended: its Reads still
// return what arrived before the end, then io.EOF or why it ended.
func (r *Resumable) Abort(code uint64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.startLocked()
	if !r.appClosed && !r.ended {
		r.aborted = true
	}
	r.abortLocked(code, err)
}

func (r *Resumable) abortLocked(code uint64, err error) {
	if r.ended {
		return
	}
	r.err = err
	if r.cur != nil {
		dropPath(r.cur, code)
		r.cur = nil
	}
	r.endLocked()
}

// endLocked marks the circuit ended and wakes everyone.
func (r *Resumable) endLocked() {
	if !r.ended {
		r.ended = true
		close(r.quit)
		if r.charged > 0 {
			r.cfg.Budget.Shrink(r.charged)
			r.charged, r.heldCharge = 0, 0
		}
	}
	r.stopTimerLocked()
	r.unregisterLocked()
	r.broadcast()
	// An early source that ended before its goroutines started (its first
	// Write over the budget) starts them now: they see the end and call
	// OnEnd.
	r.startLocked()
}

func (r *Resumable) stopTimerLocked() {
	if r.ackTimer != nil && r.ended {
		r.ackTimer.Stop()
		r.ackTimer = nil
	}
	if r.probe != nil && r.ended {
		r.probe.Stop()
		r.probe = nil
	}
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
}

func (r *Resumable) unregisterLocked() {
	if r.registered {
		r.registered = false
		r.table.unregister(r)
	}
	r.unpendLocked()
}

// unpendLocked: the destination no longer awaits its hello (it came, or
// the circuit ended): a resume waiting for it looks again.
func (r *Resumable) unpendLocked() {
	if r.pending {
		r.pending = false
		r.table.unpend(r.tkey.source)
	}
}

// pathEndedLocked: the other end closed the path cleanly: it is done.
func (r *Resumable) pathEndedLocked(gen uint64) {
	if gen != r.gen || r.ended {
		return
	}
	// The other end closes its side cleanly once it ended: it took all this
	// end sent (its fin included), or its application closed and wants
	// none of it. Without its fin that is a protocol failure, unless this
	// end's application closed too and wants nothing more from it.
	if !r.gotFin && !r.appClosed {
		r.failLocked(fmt.Errorf("%w: the other end closed the circuit before its end of stream", ErrIntegrity))
		return
	}
	r.cleanClose = true
	r.err = errPeerClosed
	r.endLocked()
}

// pathFailedLocked acts on a failure of the path of generation gen:
// suspend the circuit when the failure may be resumed, else end it.
func (r *Resumable) pathFailedLocked(gen uint64, err error) {
	if gen != r.gen || r.ended || errors.Is(err, errStale) {
		return
	}
	if !resumableError(err) || !r.source && !r.registered {
		r.failLocked(err)
		return
	}
	old := r.cur
	now := time.Now()
	if r.source {
		err = r.notePathFailedLocked(err, now)
	}
	r.cur, r.cause, r.downAt = nil, err, now
	r.gen++
	if old != nil {
		if r.cfg.OnPathFailed != nil {
			r.cfg.OnPathFailed(old, err)
		}
		dropPath(old, CloseLinkLost)
	}
	r.broadcast()
	if r.source {
		deadline := r.stuckSince.Add(r.cfg.Timeout)
		switch {
		case r.stuckPaths >= MaxResumesWithoutProgress:
			r.giveUpLocked(fmt.Errorf("%w (%s): %d resumed paths in a row failed before anything moved on them: %w",
				ErrResumeLoop, r.remote, r.stuckPaths, err), 0)
		case !now.Before(deadline):
			r.giveUpLocked(fmt.Errorf("%w (%s): nothing moved for %v across %d resumed paths: %w",
				ErrResumeTimeout, r.remote, now.Sub(r.stuckSince).Round(time.Millisecond), r.stuckPaths, err), 0)
		default:
			r.wg.Add(1)
			go r.resumeLoop(r.gen, deadline, resumeDelay(r.stuckPaths))
		}
		return
	}
	g := r.gen
	r.timer = time.AfterFunc(r.cfg.Timeout, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.gen == g && r.cur == nil && !r.ended {
			r.giveUpLocked(fmt.Errorf("%w (%s) after %v: %w", ErrResumeTimeout, r.remote, r.cfg.Timeout, r.cause), 0)
		}
	})
}

// dropPath resets a path and releases it.
func dropPath(p Path, code uint64) {
	p.Reset(code)
	_ = p.Close()
}

// failLocked ends the circuit with err.
func (r *Resumable) failLocked(err error) {
	if r.ended {
		return
	}
	code := CloseCancelled
	switch {
	case errors.Is(err, ErrIntegrity):
		code = CloseProtocol
	case errors.Is(err, ErrBufferBudget):
		code = CloseOverBudget
	}
	r.abortLocked(code, err)
}

// giveUpLocked ends a suspended circuit for good.
func (r *Resumable) giveUpLocked(err error, attempts int) {
	r.failures.Add(1)
	r.failLocked(err)
	if r.cfg.OnResume != nil {
		r.cfg.OnResume(ResumeEvent{Stall: time.Since(r.downAt), Attempts: attempts, Cause: r.cause, Err: err})
	}
}

// resumeLoop (source) opens new paths until one takes the circuit over,
// the deadline passes, or the destination refuses.
func (r *Resumable) resumeLoop(gen uint64, deadline time.Time, delay time.Duration) {
	defer r.wg.Done()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	r.wg.Add(1)
	go func() {
		// Cancel the attempt when the circuit ends (Reset, Close).
		defer r.wg.Done()
		select {
		case <-r.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		var p Path
		err := ctx.Err()
		if err == nil {
			p, err = r.cfg.Redial(ctx)
		}
		if err == nil {
			var off int64
			if off, err = r.greet(p, deadline); err == nil {
				r.mu.Lock()
				if r.ended || r.gen != gen {
					r.mu.Unlock()
					dropPath(p, CloseCancelled)
					return
				}
				r.installLocked(p, off)
				r.resumes.Add(1)
				if r.cfg.OnResume != nil {
					r.cfg.OnResume(ResumeEvent{Path: p, Stall: time.Since(r.downAt), Attempts: attempt, Cause: r.cause})
				}
				r.downAt = time.Time{}
				r.mu.Unlock()
				return
			}
			dropPath(p, CloseLinkLost)
		}
		r.mu.Lock()
		switch {
		case r.ended || r.gen != gen:
		case refusedForGood(err):
			r.giveUpLocked(fmt.Errorf("%w: %w", ErrResumeRefused, err), attempt)
		case !time.Now().Before(deadline) || ctx.Err() != nil:
			r.giveUpLocked(fmt.Errorf("%w (%s) after %d attempts: %w", ErrResumeTimeout, r.remote, attempt, err), attempt)
		default:
			r.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		r.mu.Unlock()
		return
	}
}

// broadcast wakes every waiter: the application's Reads and Writes,
// readLoop and writeLoop. The data path wakes only whom it concerns:
// Write and an acknowledgement due after a Read wake writeLoop, received
// data wakes the readers.
func (r *Resumable) broadcast() {
	r.cond.Broadcast()
	r.kickLocked()
}

func (r *Resumable) wake() {
	r.mu.Lock()
	r.broadcast()
	r.mu.Unlock()
}

// greet (source) sends the resume frame on a new path and reads the
// destination's answer: the offset it received.
func (r *Resumable) greet(p Path, deadline time.Time) (int64, error) {
	r.mu.Lock()
	b := append([]byte{frameResume}, r.id[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.recv))
	r.mu.Unlock()
	if _, err := p.Write(b); err != nil {
		return 0, err
	}
	_ = p.SetReadDeadline(deadline)
	var a [9]byte
	_, err := io.ReadFull(p, a[:])
	_ = p.SetReadDeadline(time.Time{})
	if err != nil {
		return 0, err
	}
	if a[0] != frameResumed {
		return 0, r.integrity(fmt.Sprintf("frame %d where resumed was expected", a[0]))
	}
	// The destination received at least what it acknowledged and at most
	// what this end sent: the writer sends from this offset out of the
	// retransmit buffer, which holds only that range. No path moves acked
	// or what was sent meanwhile.
	off := int64(binary.BigEndian.Uint64(a[1:]))
	r.mu.Lock()
	lo, hi := r.acked, r.sentMost
	r.mu.Unlock()
	if off < lo || off > hi {
		return 0, r.integrity(fmt.Sprintf("resumed at %d outside [%d, %d]", off, lo, hi))
	}
	return off, nil
}

// installLocked makes p the circuit's path; off is what the other end
// reported it received: the retransmit data below it goes, but the window
// stays based on what the other end's application read (credit), else a
// non-reading application would be sent a further Window each resume.
// The next acknowledgement of what was read goes at once (ackSent reset):
// the last one may have been lost with the old path.
func (r *Resumable) installLocked(p Path, off int64) {
	r.ackLocked(off)
	r.pathResumed = true
	r.pathAcked, r.pathRecv = r.acked, r.recv
	r.cur, r.sent, r.ackSent, r.ackNow = p, off, 0, true
	r.gen++
	r.resetProbeLocked()
	r.peerShown = true
	r.stopTimerLocked()
	r.broadcast()
}

// adopt (destination) takes over the circuit with p, whose source
// received off positions.
func (r *Resumable) adopt(p Path, off int64) error {
	r.mu.Lock()
	if r.ended {
		r.mu.Unlock()
		return fmt.Errorf("%w: the circuit already ended", ErrResumeRefused)
	}
	// The source received at most what this end sent: positions queued
	// but never sent that it claimed would go from the retransmit buffer
	// as delivered.
	if off < r.acked || off > r.sentMost {
		r.mu.Unlock()
		return fmt.Errorf("%w: resume from %d outside [%d, %d]", ErrIntegrity, off, r.acked, r.sentMost)
	}
	// What the source says it did not receive is sent again: at most
	// ResumeResendSlack windows beyond what it acknowledged over the
	// circuit's life, or a source that resumes without ever
	// acknowledging has the same window sent and sealed again for each
	// resume it asks. An honest source gives up after
	// MaxResumesWithoutProgress resumed paths on which nothing moved.
	again := max(r.sent-off, 0)
	if credit := max(r.acked, off) + int64(ResumeResendSlack)*int64(r.cfg.Window); r.resent+again > credit {
		err := fmt.Errorf("%w: the resume from %d would have %d positions sent again in all, more than the %d acknowledged and %d windows of %d",
			ErrResumeRefused, off, r.resent+again, max(r.acked, off), ResumeResendSlack, r.cfg.Window)
		r.giveUpLocked(err, 0)
		r.mu.Unlock()
		return err
	}
	r.resent += again
	if r.cur != nil {
		// The source found the break first: the old path goes.
		old := r.cur
		r.cur, r.cause, r.downAt = nil, errors.New("replaced by a resume"), time.Now()
		r.gen++
		dropPath(old, CloseLinkLost)
	}
	gen := r.gen
	b := binary.BigEndian.AppendUint64([]byte{frameResumed}, uint64(r.recv))
	r.mu.Unlock()
	if _, err := p.Write(b); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended || r.gen != gen {
		return fmt.Errorf("%w: the circuit ended during the resume", ErrResumeRefused)
	}
	stall := time.Since(r.downAt)
	r.installLocked(p, off)
	if r.table != nil {
		r.table.resent.Add(again)
	}
	if rb, ok := r.cfg.Budget.(ResendBudget); ok && again > 0 {
		rb.Resend(again)
	}
	r.downAt = time.Time{}
	r.resumes.Add(1)
	if r.cfg.OnResume != nil {
		r.cfg.OnResume(ResumeEvent{Path: p, Stall: stall, Cause: r.cause, Attempts: 1})
	}
	return nil
}

// Read reads received bytes; a path failure that is resumed is not seen.
func (r *Resumable) Read(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.helloDue && !r.helloNow {
		r.helloNow = true
		r.broadcast()
	}
	r.startLocked()
	for {
		if err := r.closedErrLocked("read"); err != nil {
			return 0, err
		}
		if avail := r.queuedLocked(); avail > 0 || len(b) == 0 {
			// Held records come before rq; a Read takes from both.
			n := r.readHeldLocked(b)
			if k := min(r.rq.len(), len(b)-n); k > 0 {
				r.rq.copyOut(b[n:], 0, k)
				r.rq.pop(k)
				n += k
			}
			r.in.Add(int64(n))
			if r.ackDueLocked() {
				r.kickLocked()
			}
			return n, nil
		}
		if r.gotFin {
			return 0, io.EOF
		}
		if r.ended {
			return 0, r.opError("read", r.errLocked())
		}
		// The first waiting Read lends readLoop its buffer.
		mine := !r.rw.busy
		if mine {
			r.rw = readWait{busy: true, b: b}
		}
		err := r.waitLocked(r.readDL, "read")
		if mine {
			n := r.rw.n
			r.rw = readWait{}
			if n > 0 {
				return n, nil
			}
		}
		if err != nil {
			return 0, err
		}
	}
}

// Write queues b to be sent and kept until acknowledged; it blocks while
// Window bytes are beyond what the other end's application read.
// After the other end closed the circuit cleanly it fails as a Conn's
// Write does then: a *net.OpError wrapping a *ResetError from the other
// side with CloseNormal, matching net.ErrClosed and links.ErrStreamReset.
func (r *Resumable) Write(b []byte) (n int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer func() { r.cut = errors.Is(err, os.ErrDeadlineExceeded) }()
	defer r.writeDoneLocked()
	for {
		if n > 0 && n == len(b) && (!r.ended || r.cleanClose) {
			// All of b is queued and sent or to be: the circuit ending
			// cleanly meanwhile (the other end took all it wanted and
			// closed, while this Write sent b inline) is no failure of
			// this Write.
			return n, nil
		}
		if err := r.closedErrLocked("write"); err != nil {
			return n, err
		}
		switch {
		case r.finQueued:
			return n, r.opError("write", net.ErrClosed)
		case r.ended:
			return n, r.opError("write", r.errLocked())
		}
		if n == len(b) {
			return n, nil
		}
		if !r.writeDL.IsZero() && !time.Now().Before(r.writeDL) {
			return n, r.opError("write", os.ErrDeadlineExceeded)
		}
		k := 0
		if room := int64(r.cfg.Window) - (r.written - r.credit); room > 0 {
			k = r.sendRoomLocked(int(min(room, int64(len(b)-n))))
		}
		if k == 0 {
			// The window is full, or the budget has no room for the
			// retransmit buffer to grow (SendRoom wakes then).
			r.roomWaiters++
			err = r.waitLocked(r.writeDL, "write")
			r.roomWaiters--
			if err != nil {
				return n, err
			}
			continue
		}
		r.sbuf.push(b[n : n+k])
		if r.overBudget {
			r.abortLocked(CloseOverBudget, r.budgetErr())
			return n, r.opError("write", r.err)
		}
		r.written += int64(k)
		r.out.Add(int64(k))
		n += k
		if !r.sendInlineLocked() {
			r.kickLocked()
		}
		r.startLocked() // after the first flight went inline
	}
}

func (r *Resumable) errLocked() error {
	if r.err != nil {
		return r.err
	}
	return net.ErrClosed
}

// closedErrLocked is the error op fails with on an end its application
// closed (Close, Reset) or Abort ended, nil on any other: net.ErrClosed,
// but after Abort a Read's or Write's is why the circuit ended, as on a
// Conn.
func (r *Resumable) closedErrLocked(op string) error {
	switch {
	case r.aborted && (op == "read" || op == "write"):
		return r.opError(op, r.errLocked())
	case r.appClosed || r.aborted:
		return r.opError(op, net.ErrClosed)
	}
	return nil
}

// waitLocked waits for a change, at most until dl.
func (r *Resumable) waitLocked(dl time.Time, op string) error {
	if dl.IsZero() {
		r.cond.Wait()
		return nil
	}
	d := time.Until(dl)
	if d <= 0 {
		return r.opError(op, os.ErrDeadlineExceeded)
	}
	t := time.AfterFunc(d, r.wake)
	r.cond.Wait()
	t.Stop()
	return nil
}

// opError is err as the application sees it from op: a *net.OpError
// naming the circuit's ends once.
func (r *Resumable) opError(op string, err error) error {
	if err == io.EOF {
		return err
	}
	var re *RefusedError
	if errors.As(err, &re) {
		return re
	}
	if oe, ok := err.(*net.OpError); ok {
		// A path's error names the same ends: once is enough.
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: Network, Source: r.local, Addr: r.remote, Err: err}
}

// CloseWrite ends this direction once everything written was sent; the
// other end reads io.EOF. Reading continues. On a circuit that failed
// (the other end reset it, a resume that timed out, ...) it fails with
// why, as Read and Write do and as Conn.CloseWrite does after a reset.
func (r *Resumable) CloseWrite() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.closedErrLocked("close"); err != nil {
		return err
	}
	if r.ended && !r.cleanClose {
		return r.opError("close", r.errLocked())
	}
	r.finQueued = true
	r.cut = false // the application ended its data here itself
	r.cond.Broadcast()
	if !r.sendInlineLocked() {
		r.kickLocked()
	}
	r.startLocked()
	return nil
}

// Close ends the circuit from this end: what was written is still
// delivered (across resumes, for at most the resume timeout) and the other
// end reads io.EOF after it; pending and later Reads and Writes, the
// deadline setters, CloseWrite and a second Close fail with net.ErrClosed
// (as on a Conn), and bytes that arrive later are dropped. After a Write
// that ran into its deadline (none completed since, no CloseWrite) it
// resets the circuit with CloseCancelled instead, as Conn.Close does:
// the data stops short of what the application meant to send, which an
// io.EOF would pass off as whole.
func (r *Resumable) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.closedErrLocked("close"); err != nil {
		r.closedByApp.Store(true) // AppClosed: the application closed it, after an Abort too
		return err
	}
	if r.cut {
		r.resetLocked(CloseCancelled)
		return nil
	}
	r.appClosed = true
	r.closedByApp.Store(true)
	r.finQueued = true
	r.rq.pop(r.rq.len())
	r.dropHeldLocked()
	r.cond.Broadcast()
	if !r.sendInlineLocked() {
		r.kickLocked()
	}
	r.startLocked()
	r.checkDoneLocked()
	if !r.ended {
		r.linger = time.AfterFunc(r.cfg.Timeout, func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.failLocked(fmt.Errorf("%w: undelivered at close", ErrResumeTimeout))
		})
	}
	return nil
}

// AppClosed reports whether the application closed this end (Close or
// Reset, also after Abort, when they fail or do nothing). An end closed
// but not ended only waits to deliver what it wrote and its end (across
// resumes, for at most the resume timeout): ending it costs the other
// end that tail, and no one else anything. It takes no lock.
func (r *Resumable) AppClosed() bool { return r.closedByApp.Load() }

// Reset aborts the circuit in both directions with code; it is never
// resumed.
func (r *Resumable) Reset(code uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resetLocked(code)
}

// resetLocked is Reset with r.mu held. After Abort it changes nothing
// but AppClosed, as Conn.Reset after Conn.Abort changes nothing.
func (r *Resumable) resetLocked(code uint64) {
	if r.aborted {
		r.closedByApp.Store(true)
		return
	}
	r.appClosed = true
	r.closedByApp.Store(true)
	r.startLocked()
	if r.ended {
		return
	}
	r.err = net.ErrClosed
	if r.cur != nil {
		dropPath(r.cur, code)
		r.cur = nil
	}
	r.endLocked()
}

// LocalAddr is this end's address.
func (r *Resumable) LocalAddr() net.Addr { return r.local }

// RemoteAddr is the other end's address.
func (r *Resumable) RemoteAddr() net.Addr { return r.remote }

// SetDeadline sets both deadlines. After Close or Reset it fails with
// net.ErrClosed, as the deadline setters of a Conn do.
func (r *Resumable) SetDeadline(t time.Time) error { return r.setDeadlines(&t, &t) }

// SetReadDeadline sets the read deadline; zero means none.
func (r *Resumable) SetReadDeadline(t time.Time) error { return r.setDeadlines(&t, nil) }

// SetWriteDeadline sets the write deadline; zero means none.
func (r *Resumable) SetWriteDeadline(t time.Time) error { return r.setDeadlines(nil, &t) }

func (r *Resumable) setDeadlines(read, write *time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.closedErrLocked("set deadline"); err != nil {
		return err
	}
	if read != nil {
		r.readDL = *read
	}
	if write != nil {
		r.writeDL = *write
	}
	r.broadcast()
	return nil
}

// BytesIn is the payload bytes read so far.
func (r *Resumable) BytesIn() int64 { return r.in.Load() }

// BytesOut is the payload bytes written so far.
func (r *Resumable) BytesOut() int64 { return r.out.Load() }

// Path is the recorded path (DialOptions.RecordPath) of the path the
// circuit runs on, or of its first one while it has none.
func (r *Resumable) Path() []string {
	p := r.Current()
	if p == nil {
		p = r.firstPath
	}
	if rp, ok := p.(interface{ Path() []string }); ok {
		return rp.Path()
	}
	return nil
}

// Current is the path the circuit runs on, nil while it has none.
func (r *Resumable) Current() Path {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// Sealed reports true: resumable circuits are always sealed.
func (r *Resumable) Sealed() bool { return true }

type resumeKey struct {
	source string
	id     [idLen]byte
}

// ResumeTable is a destination's table of resumable circuits, by
// authenticated source and id, bounded per source and in all.
type ResumeTable struct {
	mu   sync.Mutex
	m    map[resumeKey]*Resumable
	per  map[string]int
	maxS int
	max  int
	// awaiting counts, per source, the circuits accepted whose hello has
	// not been read yet.
	awaiting map[string]int
	// The lookups waiting (see lookup), woken only by what they wait
	// for: byKey when the circuit they name registers, bySource when
	// none of their source's circuits awaits its hello any more. One
	// channel for every change woke every waiting lookup, of any
	// source, at every circuit: a source holding many resume opens
	// waiting made each circuit of the others wake them all.
	byKey    map[resumeKey]*tableWait
	bySource map[string]*tableWait
	woken    atomic.Uint64
	// resent counts the positions the resumes the table took had their
	// circuits send again (see Resent).
	resent atomic.Int64
}

// tableWait is what the lookups waiting for one event share: ch closes
// when it happens; n counts the lookups holding it, and the last one to
// leave removes it from its map unless the event removed it.
type tableWait struct {
	ch chan struct{}
	n  int
}

// NewResumeTable returns a table bounded by MaxResumablePerSource and
// MaxResumable.
func NewResumeTable() *ResumeTable {
	return NewResumeTableSized(MaxResumablePerSource, MaxResumable)
}

// NewResumeTableSized returns a table holding at most perSource circuits
// of one source and total in all. A circuit the table cannot hold when
// its hello arrives carries its bytes but is not resumable: its resume is
// refused. So a destination sizes its table to what its limits admit
// (the circuits of a source and those waiting for a resume), never below
// what they let a source or all sources hold.
func NewResumeTableSized(perSource, total int) *ResumeTable {
	return &ResumeTable{m: make(map[resumeKey]*Resumable), per: make(map[string]int), maxS: perSource, max: total,
		awaiting: make(map[string]int), byKey: make(map[resumeKey]*tableWait), bySource: make(map[string]*tableWait)}
}

// Woken is how many times a resume open waiting for the circuit it
// names (see Resume) woke to look again.
func (t *ResumeTable) Woken() uint64 { return t.woken.Load() }

// Resent is the positions (data bytes and fins) that the resumes the
// table took had their circuits send again: for each, what the circuit
// had sent on its paths beyond the offset the resume said the source
// received.
func (t *ResumeTable) Resent() int64 { return t.resent.Load() }

// Len is the number of circuits in the table.
func (t *ResumeTable) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

func (t *ResumeTable) register(r *Resumable) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, dup := t.m[r.tkey]; dup || t.per[r.tkey.source] >= t.maxS || len(t.m) >= t.max {
		return false
	}
	t.m[r.tkey] = r
	t.per[r.tkey.source]++
	if w := t.byKey[r.tkey]; w != nil {
		close(w.ch)
		delete(t.byKey, r.tkey)
	}
	return true
}

// pend counts a circuit of source whose hello is still to be read.
func (t *ResumeTable) pend(source string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.awaiting[source]++
}

// unpend: a circuit counted by pend read its hello or ended.
func (t *ResumeTable) unpend(source string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.awaiting[source]--; t.awaiting[source] <= 0 {
		delete(t.awaiting, source)
		if w := t.bySource[source]; w != nil {
			close(w.ch)
			delete(t.bySource, source)
		}
	}
}

// lookup finds the circuit k names. While circuits of the same source
// still await their hello, one of them may be it (its hello is in its
// path, unread yet, when the resume overtook it): lookup waits until k
// registers, none awaits its hello any more, or deadline.
func (t *ResumeTable) lookup(k resumeKey, deadline time.Time) *Resumable {
	var timeout <-chan time.Time
	for {
		t.mu.Lock()
		r, waiting := t.m[k], t.awaiting[k.source] > 0
		if r != nil || !waiting {
			t.mu.Unlock()
			return r
		}
		kw, sw := waitOn(t.byKey, k), waitOn(t.bySource, k.source)
		t.mu.Unlock()
		if timeout == nil {
			tm := time.NewTimer(time.Until(deadline))
			defer tm.Stop()
			timeout = tm.C
		}
		var expired bool
		select {
		case <-kw.ch:
		case <-sw.ch:
		case <-timeout:
			expired = true
		}
		if !expired {
			t.woken.Add(1)
		}
		t.mu.Lock()
		leaveWait(t.byKey, k, kw)
		leaveWait(t.bySource, k.source, sw)
		t.mu.Unlock()
		if expired {
			return nil
		}
	}
}

// waitOn joins the lookups waiting in m for key (t.mu held).
func waitOn[K comparable](m map[K]*tableWait, key K) *tableWait {
	w := m[key]
	if w == nil {
		w = &tableWait{ch: make(chan struct{})}
		m[key] = w
	}
	w.n++
	return w
}

// leaveWait: a lookup stops waiting on w, which is m's entry for key
// unless the event happened (t.mu held). The last to leave removes it.
func leaveWait[K comparable](m map[K]*tableWait, key K, w *tableWait) {
	if w.n--; w.n == 0 && m[key] == w {
		delete(m, key)
	}
}

func (t *ResumeTable) unregister(r *Resumable) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[r.tkey] != r {
		return
	}
	delete(t.m, r.tkey)
	if t.per[r.tkey.source]--; t.per[r.tkey.source] <= 0 {
		delete(t.per, r.tkey.source)
	}
}

// Resume hands p, a path opened with FlagResume by source (authenticated
// by its handshake) to service, to the circuit it names: it reads the
// resume frame (until deadline), then the circuit continues on p. A
// circuit of source not registered yet while others of it still await
// their hello is waited for, until deadline. A circuit the table does not
// hold is refused (p is reset with
// CloseCancelled); the error wraps ErrResumeRefused. A resume frame that
// does not arrive whole and intact by deadline is the path's failure, not
// the source's: p is reset with CloseLinkLost, which the source answers
// by trying another path, as it does when a link of the path dies.
func (t *ResumeTable) Resume(p Path, source, service string, deadline time.Time) (*Resumable, error) {
	fail := func(code uint64, err error) (*Resumable, error) {
		dropPath(p, code)
		return nil, fmt.Errorf("circuit: resume from %s/%s: %w", source, service, err)
	}
	refuse := func(err error) (*Resumable, error) { return fail(CloseCancelled, err) }
	_ = p.SetReadDeadline(deadline)
	var b [1 + idLen + 8]byte
	_, err := io.ReadFull(p, b[:])
	_ = p.SetReadDeadline(time.Time{})
	if err != nil {
		return fail(CloseLinkLost, err)
	}
	if b[0] != frameResume {
		return refuse(fmt.Errorf("%w: resumable framing: frame %d where resume was expected", ErrIntegrity, b[0]))
	}
	k := resumeKey{source: source}
	copy(k.id[:], b[1:1+idLen])
	r := t.lookup(k, deadline)
	if r == nil || r.service != service {
		return refuse(fmt.Errorf("%w: no such circuit", ErrResumeRefused))
	}
	if err := r.adopt(p, int64(binary.BigEndian.Uint64(b[1+idLen:]))); err != nil {
		return refuse(err)
	}
	return r, nil
}
