package links

// adopt registers a handshaken link, resolving duplicates, and starts it.
// It returns the surviving link to the peer (l or an existing one), or nil
// when the transport is closed.
func (t *QUICTransport) adopt(l *quicLink) *quicLink {
	peer := l.hello.Node
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		_ = l.conn.CloseWithError(codeGoodbye, "transport closing")
		return nil
	}
	old := t.links[peer]
	if old != nil && !t.prefer(l, old) {
		t.mu.Unlock()
		t.cfg.Logger.Debug("closing duplicate link", "peer", peer, "outbound", l.outbound)
		_ = l.conn.CloseWithError(codeDuplicate, "duplicate link to "+t.name())
		return old
	}
	t.links[peer] = l
	t.mu.Unlock()
	if old != nil {
		reason := "duplicate link"
		if old.hello.Instance != l.hello.Instance {
			reason = "replaced by a link to the restarted peer"
		}
		t.cfg.Logger.Debug("replacing link", "peer", peer, "reason", reason)
		old.down(old.connLost(errReplaced(reason)), codeDuplicate, reason)
	}
	t.cfg.Logger.Info("link up", "peer", peer, "remote", l.conn.RemoteAddr(), "outbound", l.outbound,
		"role", l.hello.Role, "rtt", l.conn.ConnectionStats().SmoothedRTT)
	l.start()
	return l
}

// prefer reports whether the new link nl should replace the existing link
// old to the same peer (docs/PROTOCOL.md, "Duplicate links"): a peer that
// restarted wins; otherwise the link dialled by the smaller node name, and
// then the smaller dial nonce.
func (t *QUICTransport) prefer(nl, old *quicLink) bool {
	if nl.hello.Instance != old.hello.Instance {
		return true
	}
	nd, od := t.dialler(nl), t.dialler(old)
	if nd != od {
		return nd < od
	}
	return nl.nonce < old.nonce
}

func (t *QUICTransport) dialler(l *quicLink) string {
	if l.outbound {
		return t.name()
	}
	return l.hello.Node
}

// unregister removes l from the table if it is the current link to its peer.
func (t *QUICTransport) unregister(l *quicLink) {
	t.mu.Lock()
	if t.links[l.hello.Node] == l {
		delete(t.links, l.hello.Node)
	}
	t.mu.Unlock()
}

type errReplaced string

func (e errReplaced) Error() string { return string(e) }
