package circuit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// A relay that clears SEALED on the way to a destination that takes clear
// circuits (a node running --e2e=off) cannot talk the source into the
// clear. The destination hands the source's handshake to its service as
// payload; the service (an echo) answers with it, which is no handshake
// reply, and the source fails with ErrAuth. What the destination read holds
// neither the early data the source sealed into its first message nor
// anything the application wrote after: the source writes no byte of
// payload unsealed, with a one-message or a full handshake, Dial or
// DialEarly.
func TestAttackRelayStripsSealedAtAClearDestination(t *testing.T) {
	const secret, after = "early secret of the source", "written after the handshake failed"
	for _, tc := range []struct {
		name        string
		full, early bool
	}{
		{"one-message", false, false},
		{"one-message early", false, true},
		{"full", true, false},
		{"full early", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPath(t, 1, nil)
			p.forge = func(o *Open) { o.Flags &^= FlagSealed }
			k := newSealKeys(t)
			read := make(chan []byte, 1)
			dest := func(s links.Stream, o *Open) (*Conn, error) {
				if o.Flags&FlagSealed != 0 {
					return nil, errors.New("SEALED reached the destination")
				}
				c, err := Accept(s, o, Addr{Node: "d", Service: o.Service})
				if err != nil {
					return nil, err
				}
				go func() {
					var seen bytes.Buffer
					_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
					io.Copy(c, io.TeeReader(c, &seen))
					read <- seen.Bytes()
				}()
				return c, nil
			}
			sec := Security{Keys: k.s}
			if !tc.full {
				rec := k.d.Record()
				sec.Peer = &rec
			}
			o := basicOpen()
			local := Addr{Node: "s", Service: o.Service}
			dial := func(ctx context.Context, s links.Stream) (*Conn, error) {
				if !tc.early {
					return DialSecure(ctx, s, o, local, sec)
				}
				c, err := DialEarlySecure(s, o, local, sec)
				if err != nil {
					return nil, err
				}
				if _, err := c.Write([]byte(secret)); err != nil {
					// The full handshake carries no early data: the
					// Write waits for the reply and fails on it.
					if !tc.full || !errors.Is(err, ErrAuth) {
						t.Errorf("early Write: %v", err)
					}
				}
				return c, nil
			}
			c, err := p.connectWith(o, dest, dial)
			if !tc.early {
				if !errors.Is(err, ErrAuth) {
					t.Fatalf("Dial through a relay that cleared SEALED: %v, want ErrAuth", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				defer c.stop()
				if _, err := c.caller.Read(make([]byte, 64)); !errors.Is(err, ErrAuth) {
					t.Fatalf("Read through a relay that cleared SEALED: %v, want ErrAuth", err)
				}
				if _, err := c.caller.Write([]byte(after)); err == nil {
					t.Fatal("a Write after the failed handshake succeeded")
				}
			}
			var got []byte
			select {
			case got = <-read:
			case <-time.After(15 * time.Second):
				t.Fatal("the destination's service did not end")
			}
			if len(got) == 0 {
				t.Fatal("the destination read nothing: the relay did not carry the open")
			}
			if bytes.Contains(got, []byte(secret)) || bytes.Contains(got, []byte(after)) {
				t.Fatalf("the destination read the source's payload in the clear: %q", got)
			}
		})
	}
}
