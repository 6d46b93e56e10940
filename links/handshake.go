package links

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"time"

	"github.com/quic-go/quic-go"
)

// tlsConfig builds the TLS configuration for both directions. A
// certificate is required; it is checked against the node's identity by
// verifying, which each connection's configuration is, not by TLS's own
// chain building (a mesh certificate names a node, not a host).
func (t *QUICTransport) tlsConfig() *tls.Config {
	current := func() (*tls.Certificate, error) {
		c := t.identity().TLSCertificate()
		return &c, nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return current()
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return current()
		},
		ClientAuth:         tls.RequireAnyClientCert,
		InsecureSkipVerify: true, // checked by verifying, in TLS, and again with the hello's name by verifyPeer
		NextProtos:         []string{ALPN},
		ServerName:         "circuitmesh",
	}
}

// ourHello is the hello this node sends; nonce is the dial nonce.
func (t *QUICTransport) ourHello(nonce uint64) helloMsg {
	h := helloMsg{
		Version: ProtocolVersion, Role: t.cfg.Role, Features: t.cfg.Features,
		Instance: t.instance, Nonce: nonce,
		Mesh: t.identity().Mesh, Node: t.identity().Node,
	}
	if t.cfg.testVersion != 0 {
		h.Version = t.cfg.testVersion
	}
	if t.cfg.testNode != "" {
		h.Node = t.cfg.testNode
	}
	if t.cfg.testMesh != "" {
		h.Mesh = t.cfg.testMesh
	}
	return h
}

// verifyPeer checks the peer's hello and certificate. The returned error's
// text is the refusal reason sent to the peer. The node name the hello
// claims is not checked before the certificate is: the error carries it
// cleaned by PeerText (a peer chooses these bytes, and the error reaches
// logs, Node.Link's caller and terminals).
func (t *QUICTransport) verifyPeer(conn *quic.Conn, h helloMsg) error {
	if err := t.checkHello(h); err != nil {
		return err
	}
	return t.verifyPeerCert(conn, h)
}

// checkHello checks the peer's hello's protocol version and mesh, the
// part of verifyPeer before the certificate check.
func (t *QUICTransport) checkHello(h helloMsg) error {
	id := t.identity()
	claimed := PeerText(h.Node)
	if h.Version != ProtocolVersion {
		return fmt.Errorf("protocol version mismatch: %s speaks version %d, %s speaks version %d", claimed, h.Version, id.Node, ProtocolVersion)
	}
	if h.Mesh != id.Mesh {
		return fmt.Errorf("mesh mismatch: %s claims mesh %q, %s is in mesh %q", claimed, h.Mesh, id.Node, id.Mesh)
	}
	return nil
}

// verifyPeerCert checks the peer's certificate and the name its hello
// claims, the part of verifyPeer after checkHello.
func (t *QUICTransport) verifyPeerCert(conn *quic.Conn, h helloMsg) error {
	id := t.identity()
	claimed := PeerText(h.Node)
	p, err := id.VerifyPeer(peerCerts(conn), time.Now())
	if err != nil {
		return certRejected(claimed, id.Node, err)
	}
	if err := p.CheckNode(h.Node); err != nil {
		return fmt.Errorf("name mismatch: hello claims node %q but its certificate names %q", h.Node, p.Node)
	}
	if h.Node == id.Node {
		return fmt.Errorf("peer claims this node's own name %q", h.Node)
	}
	return nil
}

// certRejected is the refusal of a peer, named who (the node name its
// hello claims, or its address), whose certificate node refused with err.
func certRejected(who, node string, err error) error {
	return &certRejection{fmt.Errorf("certificate of %s rejected by %s: %w", who, node, err)}
}

// certRejection is the error of certRejected: what tlsRefusal finds in a
// TLS handshake this node ended.
type certRejection struct{ err error }

func (e *certRejection) Error() string { return e.err.Error() }
func (e *certRejection) Unwrap() error { return e.err }

// certified says whether the peer of conn proved in a completed TLS
// handshake that it holds the key of a certificate of the mesh (TLS
// checked the signature with the certificate's key; this checks the
// certificate), and the node name the certificate names.
func (t *QUICTransport) certified(conn *quic.Conn) (name string, ok bool) {
	if !conn.ConnectionState().TLS.HandshakeComplete {
		return "", false
	}
	p, err := t.identity().VerifyPeer(peerCerts(conn), time.Now())
	return p.Node, err == nil
}

// peerCerts is the certificates the peer of conn presented in TLS.
func peerCerts(conn *quic.Conn) [][]byte {
	return rawCerts(conn.ConnectionState().TLS.PeerCertificates)
}

// rawCerts is the DER bytes of certs.
func rawCerts(certs []*x509.Certificate) [][]byte {
	var raw [][]byte
	for _, c := range certs {
		raw = append(raw, c.Raw)
	}
	return raw
}

// checkDuplicateName refuses a peer, on conn, whose name is already
// linked from another node that is alive: two live nodes hold the same
// name. The established link wins. Whether the old peer lives is shown by
// its packets and its link's failure detector: the newcomer waits,
// within ctx (the handshake's time), until a packet of the old peer
// arrives (a live one sends a probe every interval), and is then
// refused, or until the old link is declared dead (the newcomer is that
// node restarted); a link of the old name that replaced it meanwhile (the
// old node dialled again) is then waited on the same way, and with none
// the newcomer is accepted. Deciding at once on the old link's silence
// (accepted after two probe intervals of it) refused a node that
// restarted sooner and accepted a second live node whenever the first
// was quiet for 400 ms, which the detector allows under load; the two
// then took the link from each other. Packets, not the detector's last
// sign of life, are what is counted: a probe tick of this process that
// runs late renews that without hearing anything.
//
// A link of the same node, which adopt settles as a duplicate dial, is
// one from the same transport instance whose certificate has the same
// public key. The instance alone proves nothing: the peer sends it in its
// hello to every node it links to, and a second node that sent a copy of
// it was taken for another dial of the established one, and took its
// link whenever the dialler and dial nonce favoured it. The key is proved
// in TLS. A node that reloaded its identity with a new key is therefore
// refused like a second node while a link of its old key lives, and
// linked once that link ends.
//
// A handshake of the name with another key that passed this check and is
// not adopted yet is waited for first, and the check then runs again: two
// nodes of one name dialling at once both passed it, neither being linked
// yet, and the one adopted second replaced the first. adopt refuses a
// newcomer that still gets past (its check between the other's look and
// pend).
func (t *QUICTransport) checkDuplicateName(ctx context.Context, conn *quic.Conn, h helloMsg) error {
	tick := time.NewTicker(max(t.cfg.ProbeInterval/4, time.Millisecond))
	defer tick.Stop()
	key := peerSPKI(conn)
	for {
		t.mu.Lock()
		old := t.links[h.Node]
		var other chan struct{}
		for _, q := range t.pending[h.Node] {
			if !bytes.Equal(q.spki, key) {
				other = q.done
				break
			}
		}
		t.mu.Unlock()
		if other != nil {
			select {
			case <-other:
				continue
			case <-ctx.Done():
				return fmt.Errorf("%w: %s is linking another node named %q; refusing the newcomer",
					ErrDuplicateName, t.name(), h.Node)
			}
		}
		if old == nil || !old.alive() || old.hello.Instance == h.Instance && samePeerKey(old.conn, conn) {
			return nil
		}
		if err := t.waitOldPeer(ctx, tick.C, old, h); err != nil {
			return err
		}
	}
}

// samePeerKey says whether the peers of a and b presented certificates
// of the same public key in TLS.
func samePeerKey(a, b *quic.Conn) bool {
	ka := peerSPKI(a)
	return ka != nil && bytes.Equal(ka, peerSPKI(b))
}

// peerSPKI is the public key of the certificate the peer of conn
// presented in TLS, nil without one.
func peerSPKI(conn *quic.Conn) []byte {
	if certs := conn.ConnectionState().TLS.PeerCertificates; len(certs) > 0 {
		return certs[0].RawSubjectPublicKeyInfo
	}
	return nil
}

// waitOldPeer waits until a packet of old's peer arrives (it returns the
// refusal of the newcomer h), old ends (nil), or ctx ends (the refusal,
// saying so).
func (t *QUICTransport) waitOldPeer(ctx context.Context, tick <-chan time.Time, old *quicLink, h helloMsg) error {
	since := old.conn.ConnectionStats().PacketsReceived
	for old.conn.ConnectionStats().PacketsReceived == since {
		select {
		case <-old.done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("%w: %s has a link to another node named %q (at %s, up since %s), not heard for %v and not declared dead within the handshake; refusing the newcomer",
				ErrDuplicateName, t.name(), h.Node, old.RemoteAddr(), old.est.UTC().Format(time.RFC3339),
				time.Since(time.Unix(0, old.lastHeard.Load())).Round(time.Millisecond))
		case <-tick:
		}
	}
	return t.duplicateName(old, h.Node)
}

// duplicateName is the refusal of a newcomer named name while old, the
// established link of that name, lives.
func (t *QUICTransport) duplicateName(old *quicLink, name string) error {
	return fmt.Errorf("%w: %s already has a live link to another node named %q (at %s, up since %s); refusing the newcomer",
		ErrDuplicateName, t.name(), name, old.RemoteAddr(), old.est.UTC().Format(time.RFC3339))
}

// refuse closes conn with a refusal reason and returns the local error.
func refuse(conn *quic.Conn, reason error) error {
	_ = conn.CloseWithError(codeRefused, truncReason(reason.Error()))
	return fmt.Errorf("%w: %w", ErrRefused, reason)
}

// handshakeErr maps a failure while waiting for the peer in the handshake.
// A refusal by the peer carries its reason.
func (t *QUICTransport) handshakeErr(conn *quic.Conn, step string, err error) error {
	err = cleanPeerClose(err)
	var ae *quic.ApplicationError
	if errors.As(err, &ae) && ae.Remote {
		switch ae.ErrorCode {
		case codeRefused:
			return fmt.Errorf("%w by peer %s: %s", ErrRefused, conn.RemoteAddr(), PeerText(ae.ErrorMessage))
		case codeDuplicate:
			return fmt.Errorf("%s: %w", step, errDuplicate)
		}
	}
	if refusal := t.tlsRefusal(conn.RemoteAddr(), err); refusal != nil {
		return refusal
	}
	if busy := busyRefusal(err); busy != nil {
		return fmt.Errorf("%s: %w", step, busy)
	}
	_ = conn.CloseWithError(codeProtocol, step+" failed")
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s: control stream ended early: %w", step, err)
	}
	return fmt.Errorf("%s: %w", step, err)
}

// tlsRefusal is the refusal err is, if it ended the TLS handshake of a
// connection with remote: this node refused the peer's certificate
// (verifying; err carries why), or the peer refused the handshake with a
// TLS alert, which says no more than its name; if this node's own
// certificate does not verify against its own identity, or is a
// development one, that is said too. Otherwise nil.
func (t *QUICTransport) tlsRefusal(remote net.Addr, err error) error {
	var te *quic.TransportError
	if !errors.As(err, &te) || !te.ErrorCode.IsCryptoError() {
		return nil
	}
	if !te.Remote {
		if cr, ok := errors.AsType[*certRejection](err); ok {
			return fmt.Errorf("%w: %w", ErrRefused, cr)
		}
		return fmt.Errorf("%w: TLS handshake with %s: %w", ErrRefused, remote, err)
	}
	what := fmt.Sprintf("TLS handshake with %s failed at the peer (%s)", remote, te.ErrorCode.Message())
	if te.ErrorCode == tlsBadCertificate {
		what = fmt.Sprintf("the peer at %s refused this node's certificate (%s)", remote, te.ErrorCode.Message())
	}
	id := t.identity()
	if id.Insecure {
		return fmt.Errorf("%w: %s: this node is in development mode: its certificate is self-signed, not signed by the CA of a mesh", ErrRefused, what)
	}
	if _, own := id.VerifyPeer([][]byte{id.Cert.Raw}, time.Now()); own != nil {
		return fmt.Errorf("%w: %s: this node's own certificate does not verify: %w", ErrRefused, what, own)
	}
	return fmt.Errorf("%w: %s", ErrRefused, what)
}

// tlsBadCertificate is the QUIC crypto error of TLS's bad_certificate
// alert, which crypto/tls sends when tls.Config.VerifyConnection refuses
// the peer's certificate.
const tlsBadCertificate = quic.TransportErrorCode(0x100 + 42)

// peerRefusedCertificate says whether err, how a connection ended, is the
// peer's refusal of this node's certificate in TLS.
func peerRefusedCertificate(err error) bool {
	var te *quic.TransportError
	return errors.As(err, &te) && te.Remote && te.ErrorCode == tlsBadCertificate
}

// refusedIn reports the refusal of an inbound link: logged at WARN once
// per source prefix per minute, and passed to QUICConfig.OnRefused.
func (t *QUICTransport) refusedIn(remote net.Addr, err error) {
	t.inRefusals.Warn(SourcePrefix(remote).String(), "link refused", "remote", remote.String(), "err", err)
	if t.cfg.OnRefused != nil {
		t.cfg.OnRefused(remote, err)
	}
}

// errDuplicate: the peer closed a link in the handshake as a duplicate.
var errDuplicate = errors.New("duplicate link")

// expectFrame reads one frame and checks its type.
func expectFrame(s io.Reader, typ uint8) (frame, error) {
	f, err := readFrame(s)
	if err != nil {
		return f, err
	}
	if f.typ != typ {
		return f, fmt.Errorf("got frame type %#x, want %#x: %w", f.typ, typ, errBadFrame)
	}
	return f, nil
}

func writeFrame(s io.Writer, typ uint8, payload []byte) error {
	b, err := appendFrame(nil, typ, payload)
	if err != nil {
		return err
	}
	_, err = s.Write(b)
	return err
}

func writeHello(s io.Writer, h helloMsg) error {
	b, err := h.marshal()
	if err != nil {
		return err
	}
	return writeFrame(s, frameHello, b)
}

func readHello(s io.Reader) (helloMsg, error) {
	var h helloMsg
	f, err := expectFrame(s, frameHello)
	if err != nil {
		return h, err
	}
	return h, h.unmarshal(f.payload)
}

// dialHandshake runs the dialler's side of the link handshake on conn.
func (t *QUICTransport) dialHandshake(ctx context.Context, conn *quic.Conn) (*quicLink, error) {
	stopGuard := guardEarlyStreams(ctx, conn)
	defer stopGuard()
	ctrl, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, t.handshakeErr(conn, "open control stream", err)
	}
	stopDeadline := context.AfterFunc(ctx, func() { _ = ctrl.SetDeadline(time.Now()) })
	defer stopDeadline()
	nonce := rand.Uint64()
	hello := t.ourHello(nonce)
	if IsStatic(ctx) {
		hello.Features |= FeatureStatic
	}
	if err := writeHello(ctrl, hello); err != nil {
		return nil, t.handshakeErr(conn, "send hello", err)
	}
	peer, err := readHello(ctrl)
	if err != nil {
		return nil, t.handshakeErr(conn, "read hello", err)
	}
	if err := t.verifyPeer(conn, peer); err != nil {
		return nil, refuse(conn, err)
	}
	if s := slotOf(conn); s != nil {
		s.prove(peer.Node)
	}
	if err := t.checkAborts(peer.Node); err != nil {
		return nil, refuse(conn, err)
	}
	if err := t.checkDuplicateName(ctx, conn, peer); err != nil {
		return nil, refuse(conn, err)
	}
	p := t.pendDial(linkKey{peer: peer.Node, instance: peer.Instance, nonce: nonce, outbound: true}, conn)
	if p == nil {
		// Another dial of ours to this peer is up or finishing: this one
		// ends before the peer could adopt it.
		_ = conn.CloseWithError(codeDuplicate, "duplicate link to "+t.name())
		return nil, fmt.Errorf("finish handshake: %w", errDuplicate)
	}
	// The peer may open circuit streams once it has our ready.
	stopGuard()
	if err := writeFrame(ctrl, frameReady, nil); err != nil {
		t.release(p)
		return nil, t.handshakeErr(conn, "send ready", err)
	}
	stopDeadline()
	_ = ctrl.SetDeadline(time.Time{})
	return newQUICLink(t, conn, ctrl, peer, p), nil
}

// acceptHandshake runs the acceptor's side of the link handshake on conn.
func (t *QUICTransport) acceptHandshake(ctx context.Context, conn *quic.Conn) (*quicLink, error) {
	ctrl, err := conn.AcceptStream(ctx)
	if err != nil {
		return nil, t.handshakeErr(conn, "accept control stream", err)
	}
	// The control stream lasts as long as the link: its credit is not
	// worth holding.
	ctrl.ReleaseStreamCredit()
	stopDeadline := context.AfterFunc(ctx, func() { _ = ctrl.SetDeadline(time.Now()) })
	defer stopDeadline()
	stopGuard := guardEarlyStreams(ctx, conn)
	defer stopGuard()
	peer, err := readHello(ctrl)
	if err != nil {
		return nil, t.handshakeErr(conn, "read hello", err)
	}
	if err := t.checkHello(peer); err != nil {
		// Its certificate verified in TLS, but the hello's name is not
		// checked against it: a peer of another protocol version still
		// proved a certificate of the mesh (see accept).
		return nil, refuse(conn, err)
	}
	s := slotOf(conn)
	if s != nil {
		s.checked.Store(true)
	}
	if err := t.verifyPeerCert(conn, peer); err != nil {
		return nil, refuse(conn, err)
	}
	if s != nil {
		s.prove(peer.Node)
	}
	if err := t.checkAborts(peer.Node); err != nil {
		return nil, refuse(conn, err)
	}
	if err := t.checkDuplicateName(ctx, conn, peer); err != nil {
		return nil, refuse(conn, err)
	}
	p := t.pend(linkKey{peer: peer.Node, instance: peer.Instance, nonce: peer.Nonce, outbound: false}, conn)
	// The peer may open circuit streams once it has our hello.
	stopGuard()
	if err := writeHello(ctrl, t.ourHello(peer.Nonce)); err != nil {
		t.release(p)
		return nil, t.handshakeErr(conn, "send hello", err)
	}
	if _, err := expectFrame(ctrl, frameReady); err != nil {
		t.release(p)
		return nil, t.handshakeErr(conn, "read ready", err)
	}
	stopDeadline()
	_ = ctrl.SetDeadline(time.Time{})
	return newQUICLink(t, conn, ctrl, peer, p), nil
}

// guardEarlyStreams closes conn with a protocol error if the peer opens a
// stream besides the control stream before stop is called, that is before
// this side has verified the peer's hello and answered it: an honest peer
// opens circuit streams only once it has that answer (a dialler once it
// has the acceptor's hello, an acceptor once it has the dialler's ready).
// Without the guard, a
// peer with a certificate of the mesh (TLS refuses others) could fill the
// link's whole receive window (LinkWindow) on streams nobody reads, for
// each handshake slot, until the handshake timed out. stop ends the guard and
// waits for its goroutine; it may be called more than once.
func guardEarlyStreams(ctx context.Context, conn *quic.Conn) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s, err := conn.AcceptStream(ctx)
		if err != nil {
			return
		}
		s.CancelRead(0)
		s.CancelWrite(0)
		s.ReleaseStreamCredit()
		_ = conn.CloseWithError(codeProtocol, "stream opened before the link handshake ended")
	}()
	return func() {
		cancel()
		<-done
	}
}

// sameAddr reports whether two UDP addresses are equal.
func sameAddr(a, b net.Addr) bool {
	ua, ok1 := a.(*net.UDPAddr)
	ub, ok2 := b.(*net.UDPAddr)
	if ok1 && ok2 {
		return ua.Port == ub.Port && ua.IP.Equal(ub.IP)
	}
	return a.String() == b.String()
}
