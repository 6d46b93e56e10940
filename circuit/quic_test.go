package circuit

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/circuitmesh/circuitmesh/links"
)

// qstream adapts a *quic.Stream to links.Stream the way the links package
// does: stream errors become *links.StreamResetError, connection errors wrap
// links.ErrLinkLost.
type qstream struct{ s *quic.Stream }

func (q qstream) Read(p []byte) (int, error) {
	n, err := q.s.Read(p)
	return n, mapQUICErr(err)
}

// Peek lets splices over these streams take buffers lazily, as over links'
// QUIC streams.
func (q qstream) Peek(p []byte) (int, error) {
	n, err := q.s.Peek(p)
	return n, mapQUICErr(err)
}

func (q qstream) Write(p []byte) (int, error) {
	n, err := q.s.Write(p)
	return n, mapQUICErr(err)
}

// OnStopSending is links' (see links.quicStream).
func (q qstream) OnStopSending(f func(error)) (stop func() bool) {
	ctx := q.s.Context()
	return context.AfterFunc(ctx, func() {
		var se *quic.StreamError
		if errors.As(context.Cause(ctx), &se) && se.Remote {
			f(mapQUICErr(se))
		}
	})
}

func (q qstream) CloseWrite() error {
	err := q.s.Close()
	if _, werr := q.s.Write(nil); err != nil && werr != nil {
		err = werr // the cancellation, with its code, as links reports it
	}
	return mapQUICErr(err)
}

func (q qstream) CloseRead(code uint64) { q.s.CancelRead(quic.StreamErrorCode(code)) }
func (q qstream) Reset(code uint64) {
	q.s.CancelWrite(quic.StreamErrorCode(code))
	q.s.CancelRead(quic.StreamErrorCode(code))
}

func (q qstream) Close() error {
	err := q.CloseWrite()
	q.CloseRead(CloseNormal)
	return err
}

func (q qstream) SetDeadline(t time.Time) error      { return q.s.SetDeadline(t) }
func (q qstream) SetReadDeadline(t time.Time) error  { return q.s.SetReadDeadline(t) }
func (q qstream) SetWriteDeadline(t time.Time) error { return q.s.SetWriteDeadline(t) }

func mapQUICErr(err error) error {
	var se *quic.StreamError
	switch {
	case err == nil, err == io.EOF, errors.Is(err, os.ErrDeadlineExceeded):
		return err
	case errors.As(err, &se):
		return &links.StreamResetError{Code: uint64(se.ErrorCode), Remote: se.Remote}
	case errors.Is(err, links.ErrClosed):
		return fmt.Errorf("%w: %w", links.ErrLinkLost, err)
	}
	return err
}

var (
	tlsOnce sync.Once
	tlsCert tls.Certificate
)

func testTLS(t testing.TB) (server, client *tls.Config) {
	tlsOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), DNSNames: []string{"localhost"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		tlsCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	})
	const alpn = "circuit-test"
	return &tls.Config{Certificates: []tls.Certificate{tlsCert}, NextProtos: []string{alpn}},
		&tls.Config{InsecureSkipVerify: true, NextProtos: []string{alpn}}
}

// link is one QUIC connection on loopback: streams opened on dialer are
// accepted on listener.
type link struct {
	dialer, listener *quic.Conn
}

// newLink connects two QUIC endpoints on loopback; cfg may be nil. Each
// end has a transport of its own, closed at cleanup: a transport that
// quic.ListenAddr or quic.DialAddr creates keeps its goroutines until its
// closed connections' IDs retire, after the package's leak check.
func newLink(t testing.TB, cfg *quic.Config) *link {
	t.Helper()
	stls, ctls := testTLS(t)
	var closers []func() error
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	transport := func() *quic.Transport {
		uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			closeAll()
			t.Fatal(err)
		}
		tr := &quic.Transport{Conn: uc}
		closers = append(closers, uc.Close, tr.Close)
		return tr
	}
	ln, err := transport().Listen(stls, cfg)
	if err != nil {
		closeAll()
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := transport().Dial(ctx, ln.Addr(), ctls, cfg)
	if err != nil {
		closeAll()
		t.Fatal(err)
	}
	l, err := ln.Accept(ctx)
	if err != nil {
		closeAll()
		t.Fatal(err)
	}
	// One cleanup, registered once the link is up: a link made while the
	// test's cleanups run (a redial) is not closed under its own dial.
	t.Cleanup(func() {
		d.CloseWithError(0, "")
		l.CloseWithError(0, "")
		closeAll()
	})
	return &link{dialer: d, listener: l}
}

// open opens a stream on the dialer side. The listener sees it once data
// (the open header) is written.
func (l *link) open() (links.Stream, error) {
	s, err := l.dialer.OpenStream()
	if err != nil {
		return nil, err
	}
	return qstream{s}, nil
}

func (l *link) accept(ctx context.Context) (links.Stream, error) {
	s, err := l.listener.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	return qstream{s}, nil
}
