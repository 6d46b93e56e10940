package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"sync"

	"github.com/quic-go/quic-go"

	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/node"
)

// The quic role is the baseline: plain quic-go streams over one connection,
// with the exact quic.Config links use (links.QUICConfig.QUIC) and the same
// TLS setup (TLS 1.3, ed25519 node certificates, mutual authentication).
// The first byte of each stream picks what the accepting side does with it.
const (
	modeSink = 's'
	modeEcho = 'e'
	modeHold = 'h'
)

const baselineALPN = "circuitmesh-bench"

// qstream adapts a quic-go stream to the workloads.
type qstream struct{ *quic.Stream }

func (s qstream) CloseWrite() error { return s.Stream.Close() }

func (s qstream) Close() error {
	err := s.Stream.Close()
	s.CancelRead(0)
	return err
}

// quicEndpoint is the UDP socket, transport and listener of a quic or
// naive role, with the TLS and quic-go configuration every baseline uses.
type quicEndpoint struct {
	udp  net.PacketConn
	tr   *quic.Transport
	ln   *quic.Listener
	tls  *tls.Config
	conf *quic.Config
}

func newQUICEndpoint(role string, rf *roleFlags) (*quicEndpoint, error) {
	id, err := identity.Insecure("baseline", node.DefaultMesh)
	if err != nil {
		return nil, fmt.Errorf("%s: identity: %w", role, err)
	}
	conf, err := rf.tune.quicConfig().QUIC()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", role, err)
	}
	e := &quicEndpoint{
		tls: &tls.Config{
			MinVersion:         tls.VersionTLS13,
			Certificates:       []tls.Certificate{id.TLSCertificate()},
			ClientAuth:         tls.RequireAnyClientCert,
			InsecureSkipVerify: true, // a baseline: peers are not checked
			NextProtos:         []string{baselineALPN},
			ServerName:         "circuitmesh",
		},
		conf: conf,
	}
	if e.udp, err = net.ListenPacket("udp", rf.listen); err != nil {
		return nil, fmt.Errorf("%s: listen on %s: %w", role, rf.listen, err)
	}
	e.tr = &quic.Transport{Conn: e.udp}
	if e.ln, err = e.tr.Listen(e.tls, e.conf); err != nil {
		e.close()
		return nil, fmt.Errorf("%s: listen on %s: %w", role, e.udp.LocalAddr(), err)
	}
	return e, nil
}

func (e *quicEndpoint) dial(ctx context.Context, addr string) (*quic.Conn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	conn, err := e.tr.Dial(ctx, ua, e.tls, e.conf)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return conn, nil
}

func (e *quicEndpoint) close() {
	if e.ln != nil {
		e.ln.Close()
	}
	e.tr.Close()
	e.udp.Close()
}

// acceptStreams runs serve on every stream of every connection accepted
// until ctx ends.
func (e *quicEndpoint) acceptStreams(ctx context.Context, serve func(*quic.Stream)) {
	for {
		conn, err := e.ln.Accept(ctx)
		if err != nil {
			return
		}
		go func() {
			for {
				s, err := conn.AcceptStream(ctx)
				if err != nil {
					return
				}
				go serve(s)
			}
		}()
	}
}

// quicRole runs a quic-go endpoint that accepts streams and, once told to
// "dial" others, opens streams to them (a dial's Peer names the
// connection; requests pick one by their Peer, "" being the default):
//
//	circuitmesh-bench quic --listen 127.0.0.1:0
func quicRole(args []string) error {
	fs, rf := newRoleFlags("quic")
	stopProfile, err := rf.parse(fs, args)
	if err != nil {
		return err
	}
	defer stopProfile()
	e, err := newQUICEndpoint("quic", rf)
	if err != nil {
		return err
	}
	defer e.close()
	q := &quicRunner{e: e, conns: map[string]*quic.Conn{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.acceptStreams(ctx, func(s *quic.Stream) { q.serveStream(qstream{s}) })
	defer q.accepted.release()
	defer q.held.release()
	return serveControl(os.Stdin, os.Stdout, reply{Addr: e.udp.LocalAddr().String()}, q.handle)
}

type quicRunner struct {
	e        *quicEndpoint
	mu       sync.Mutex
	conns    map[string]*quic.Conn // connections opened by "dial", by name
	held     holder
	accepted holder
}

// serveStream reads the mode byte and serves the stream accordingly.
func (q *quicRunner) serveStream(s qstream) {
	var mode [1]byte
	if _, err := io.ReadFull(s, mode[:]); err != nil {
		s.Close()
		return
	}
	switch mode[0] {
	case modeSink:
		_ = serveSink(s)
	case modeEcho:
		_ = serveEcho(s)
	case modeHold:
		// An idle stream with its reader blocked, as a server holds one.
		q.accepted.keep(s)
		for {
			if _, err := s.Read(mode[:]); err != nil {
				return
			}
		}
	default:
		s.CancelWrite(1)
		s.CancelRead(1)
	}
}

// open opens a stream on the dialled connection and writes its mode byte
// without waiting for the peer.
func (q *quicRunner) open(ctx context.Context, peer string, mode byte) (stream, error) {
	q.mu.Lock()
	conn := q.conns[peer]
	q.mu.Unlock()
	if conn == nil {
		return nil, fmt.Errorf("not connected to %q: send \"dial\" first", peer)
	}
	s, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	if _, err := s.Write([]byte{mode}); err != nil {
		s.CancelWrite(1)
		return nil, fmt.Errorf("write stream mode: %w", err)
	}
	return qstream{s}, nil
}

func (q *quicRunner) handle(req request) (reply, error) {
	ctx := context.Background()
	switch req.Op {
	case "dial":
		conn, err := q.e.dial(ctx, req.Addr)
		if err != nil {
			return reply{}, err
		}
		q.mu.Lock()
		q.conns[req.Peer] = conn
		q.mu.Unlock()
		return reply{}, nil
	case "send":
		s, err := q.open(ctx, req.Peer, modeSink)
		if err != nil {
			return reply{}, err
		}
		defer s.Close()
		return timedSend(s, req.Bytes)
	case "open-echo":
		s, err := openEcho(req.Count, func() (stream, error) { return q.open(ctx, req.Peer, modeEcho) }, nil)
		return reply{Samples: map[string][]int64{connKey(req.Peer): s}}, err
	case "ping":
		// One stream per connection named in Peers (none: the default).
		peers := req.Peers
		if len(peers) == 0 {
			peers = []string{""}
		}
		streams := map[string]stream{}
		defer func() {
			for _, s := range streams {
				s.Close()
			}
		}()
		for _, p := range peers {
			s, err := q.open(ctx, p, modeEcho)
			if err != nil {
				return reply{}, err
			}
			streams[connKey(p)] = s
		}
		samples, err := pingRounds(streams, req.Count)
		return reply{Samples: samples}, err
	case "hold":
		err := q.held.open(ctx, req.Count, req.Conc, func(ctx context.Context) (stream, error) {
			return q.open(ctx, req.Peer, modeHold)
		})
		return reply{}, err
	case "churn":
		return churn(ctx, req.Count, req.Conc, req.MaxFailed, func(ctx context.Context) (stream, error) {
			return q.open(ctx, req.Peer, modeEcho)
		})
	case "release":
		q.held.release()
		return reply{}, nil
	}
	return reply{}, fmt.Errorf("unknown op %q", req.Op)
}

// connKey is the sample key of the connection named peer.
func connKey(peer string) string {
	if peer == "" {
		return "direct"
	}
	return peer
}
