package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// childEnv marks a process started by the coordinator: main runs the role
// named by its arguments. It also lets a test binary act as a role.
const childEnv = "CIRCUITMESH_BENCH_CHILD"

// proc is a role process driven by the coordinator.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	enc    *json.Encoder
	dec    *json.Decoder
	stderr *tailBuffer
	addr   string
	pid    int
	done   chan struct{}
	waitMu sync.Mutex
	err    error
}

// startProc starts this binary as a role (args[0] is "node" or "quic") and
// waits for its ready line. Its stderr is kept (the last few KiB, for error
// messages) and copied to logTo when it is not nil.
func startProc(name string, logTo io.Writer, args ...string) (*proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start %s: find own executable: %w", name, err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	p := &proc{name: name, cmd: cmd, stderr: &tailBuffer{max: 8 << 10}, done: make(chan struct{})}
	if logTo != nil {
		cmd.Stderr = io.MultiWriter(p.stderr, prefixWriter(logTo, name))
	} else {
		cmd.Stderr = p.stderr
	}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.waitMu.Lock()
		p.err = cmd.Wait()
		p.waitMu.Unlock()
		close(p.done)
	}()
	p.enc = json.NewEncoder(p.stdin)
	p.dec = json.NewDecoder(bufio.NewReader(stdout))
	var ready reply
	if err := p.read("start", &ready); err != nil {
		p.kill()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.addr, p.pid = ready.Addr, ready.PID
	return p, nil
}

// read reads one reply; op names what it answers.
func (p *proc) read(op string, rep *reply) error {
	if err := p.dec.Decode(rep); err != nil {
		return fmt.Errorf("%s: no reply to %s (%v); its log ends with:\n%s", p.name, op, err, p.stderr.String())
	}
	if rep.Err != "" {
		return fmt.Errorf("%s: %s", p.name, rep.Err)
	}
	return nil
}

// callTimeout bounds one request: a role that does not answer in time is
// killed, so a stuck process cannot hang the suite.
const callTimeout = 5 * time.Minute

// call sends req and waits for the reply.
func (p *proc) call(req request) (reply, error) {
	var rep reply
	if err := p.enc.Encode(req); err != nil {
		return rep, fmt.Errorf("%s: send %s: %w", p.name, req.Op, err)
	}
	timer := time.AfterFunc(callTimeout, p.kill)
	defer timer.Stop()
	err := p.read(req.Op, &rep)
	return rep, err
}

// cpu is the CPU time the process used so far.
func (p *proc) cpu() (time.Duration, error) {
	rep, err := p.call(request{Op: "cpu"})
	return time.Duration(rep.CPUNS), err
}

// stop closes the process's stdin and waits for it to exit, killing it
// after a grace period.
func (p *proc) stop() error {
	p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.kill()
		return fmt.Errorf("%s did not exit within 10s; killed", p.name)
	}
	p.waitMu.Lock()
	defer p.waitMu.Unlock()
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return fmt.Errorf("%s exited with %v; its log ends with:\n%s", p.name, p.err, p.stderr.String())
	}
	return p.err
}

// kill sends SIGKILL and reaps the process.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	p.stdin.Close()
	<-p.done
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// prefixWriter prefixes every line written to w with "[name] ".
func prefixWriter(w io.Writer, name string) io.Writer {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			fmt.Fprintf(w, "[%s] %s\n", name, sc.Text())
		}
		pr.CloseWithError(sc.Err())
	}()
	return pw
}
