package main

import (
	"context"
	"crypto/tls"
	"errors"
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

// quicRole runs a quic-go endpoint that accepts streams and, once told to
// "dial" another one, opens streams to it:
//
//	circuitmesh-bench quic --listen 127.0.0.1:0
func quicRole(args []string) error {
	fs, rf := newRoleFlags("quic")
	stopProfile, err := rf.parse(fs, args)
	if err != nil {
		return err
	}
	defer stopProfile()

	id, err := identity.Insecure("baseline", node.DefaultMesh)
	if err != nil {
		return fmt.Errorf("quic: identity: %w", err)
	}
	tlsConf := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{id.TLSCertificate()},
		ClientAuth:         tls.RequireAnyClientCert,
		InsecureSkipVerify: true, // a baseline: peers are not checked
		NextProtos:         []string{baselineALPN},
		ServerName:         "circuitmesh",
	}
	quicConf := rf.tune.quicConfig().QUIC()

	udp, err := net.ListenPacket("udp", rf.listen)
	if err != nil {
		return fmt.Errorf("quic: listen on %s: %w", rf.listen, err)
	}
	defer udp.Close()
	tr := &quic.Transport{Conn: udp}
	defer tr.Close()
	ln, err := tr.Listen(tlsConf, quicConf)
	if err != nil {
		return fmt.Errorf("quic: listen on %s: %w", udp.LocalAddr(), err)
	}
	q := &quicRunner{tr: tr, tls: tlsConf, conf: quicConf}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.acceptLoop(ctx, ln)
	defer q.accepted.release()
	defer q.held.release()
	return serveControl(os.Stdin, os.Stdout, reply{Addr: udp.LocalAddr().String()}, q.handle)
}

type quicRunner struct {
	tr       *quic.Transport
	tls      *tls.Config
	conf     *quic.Config
	mu       sync.Mutex
	conn     *quic.Conn // the connection opened by "dial"
	held     holder
	accepted holder
}

func (q *quicRunner) acceptLoop(ctx context.Context, ln *quic.Listener) {
	for {
		conn, err := ln.Accept(ctx)
		if err != nil {
			return
		}
		go func() {
			for {
				s, err := conn.AcceptStream(ctx)
				if err != nil {
					return
				}
				go q.serveStream(qstream{s})
			}
		}()
	}
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
func (q *quicRunner) open(ctx context.Context, mode byte) (stream, error) {
	q.mu.Lock()
	conn := q.conn
	q.mu.Unlock()
	if conn == nil {
		return nil, errors.New("not connected: send \"dial\" first")
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
		addr, err := net.ResolveUDPAddr("udp", req.Addr)
		if err != nil {
			return reply{}, fmt.Errorf("dial: %w", err)
		}
		conn, err := q.tr.Dial(ctx, addr, q.tls, q.conf)
		if err != nil {
			return reply{}, fmt.Errorf("dial %s: %w", req.Addr, err)
		}
		q.mu.Lock()
		q.conn = conn
		q.mu.Unlock()
		return reply{}, nil
	case "send":
		s, err := q.open(ctx, modeSink)
		if err != nil {
			return reply{}, err
		}
		defer s.Close()
		return timedSend(s, req.Bytes)
	case "open-echo":
		s, err := openEcho(req.Count, func() (stream, error) { return q.open(ctx, modeEcho) }, nil)
		return reply{Samples: map[string][]int64{"direct": s}}, err
	case "ping":
		s, err := q.open(ctx, modeEcho)
		if err != nil {
			return reply{}, err
		}
		defer s.Close()
		samples, err := pingRounds(map[string]stream{"direct": s}, req.Count)
		return reply{Samples: samples}, err
	case "hold":
		err := q.held.open(ctx, req.Count, req.Conc, func(ctx context.Context) (stream, error) {
			return q.open(ctx, modeHold)
		})
		return reply{}, err
	case "release":
		q.held.release()
		return reply{}, nil
	}
	return reply{}, fmt.Errorf("unknown op %q", req.Op)
}
