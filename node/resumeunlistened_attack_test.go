package node

import (
	"encoding/binary"
	"io"
	"testing"
	"time"
)

// TestAttackResumeOpenForServiceNotListenedOn: m, a member with a valid
// certificate, opens a sealed circuit to v with the resume flag, naming a
// service v does not listen on, and sends a resume frame for a circuit v
// never had. A resume open passes the check for a listener (a circuit
// already accepted outlives its listener), and v then read the missing
// listener's queueing mode: a nil dereference that ended v's process,
// every link and circuit of v with it, for one open from any member, a
// neighbour or one behind relays. Now v refuses the resume and carries on.
func TestAttackResumeOpenForServiceNotListenedOn(t *testing.T) {
	for _, relayed := range []bool{false, true} {
		name := map[bool]string{false: "neighbour", true: "through a relay"}[relayed]
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, true)
			if relayed {
				c.build("m-r", "r-v")
				c.waitRoute("m", "v", 2)
			} else {
				c.build("m-v")
			}
			m := c.nodes["m"]
			conn, err := m.DialWith(ctxT(t, patience), "v", "nosuch", DialOptions{resume: true})
			if err == nil {
				// Accepted as a resume: the frame naming the circuit to
				// take over is refused, the circuit never one of v's.
				defer conn.Close()
				var id [16]byte
				frame := binary.BigEndian.AppendUint64(append([]byte{frameResumeType}, id[:]...), 0)
				conn.SetDeadline(time.Now().Add(patience))
				if _, err := conn.Write(frame); err != nil {
					t.Fatalf("write the resume frame: %v", err)
				}
				if n, err := conn.Read(make([]byte, 64)); err == nil {
					t.Fatalf("v answered a resume of a circuit it never had with %d bytes", n)
				}
			}
			t.Logf("m's resume open for a service v does not listen on: %v", err)
			if err := roundTrip(t, m, "v", EchoService, []byte("v is up")); err != nil {
				t.Fatalf("m's next circuit to v: %v", err)
			}
		})
	}
}

// TestResumeAfterListenerClosed: a holds a resumable circuit to d's
// service through b, the cheaper relay of a diamond a–{b,c}–d; d's
// application closes the listener (a circuit already accepted outlives
// it), then b crashes. a resumes through c, which needs no listener: the
// circuit carries on. Before, d's process ended at the resume, reading
// the closed listener's queueing mode.
func TestResumeAfterListenerClosed(t *testing.T) {
	c := newCluster(t, true)
	sockets := buildDiamond(t, c)
	a, d := c.nodes["a"], c.nodes["d"]
	lis, err := d.Listen("svc")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	closed := make(chan struct{}) // d's service closed its listener
	served := make(chan error, 1)
	go func() {
		served <- func() error {
			conn, err := lis.Accept()
			if err != nil {
				return err
			}
			defer conn.Close()
			lis.Close()
			close(closed)
			conn.SetDeadline(time.Now().Add(patience))
			_, err = io.Copy(conn, conn)
			return err
		}()
	}()
	conn, err := a.Dial(ctxT(t, patience), "d", "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc, ok := conn.(*resumableConn)
	if !ok {
		t.Fatalf("dial returned %T, want a resumable circuit", conn)
	}
	conn.SetDeadline(time.Now().Add(patience))
	echo := func(msg string) {
		t.Helper()
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatalf("write %q: %v", msg, err)
		}
		b := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, b); err != nil || string(b) != msg {
			t.Fatalf("echo of %q: %q, %v", msg, b, err)
		}
	}
	echo("hello")
	<-closed
	sockets["b"].Close() // b's process dies
	echo("again, through c")
	if rc.Resumes() == 0 {
		t.Fatal("a's circuit never resumed: b's crash did not break its path")
	}
	conn.(Conn).CloseWrite()
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("the circuit's end: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("d's side: %v", err)
	}
}
