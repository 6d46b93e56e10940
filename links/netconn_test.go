package links

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// faultConn wraps a UDP socket: it can delay every outgoing datagram by a
// settable latency, and kill the socket as a crashed process would.
type faultConn struct {
	net.PacketConn
	delay atomic.Int64 // nanoseconds added to every datagram sent
	cut   atomic.Bool  // drop every datagram sent
	loss  atomic.Int32 // drop one in loss datagrams sent (0: none)
	sent  atomic.Int32
	q     chan delayed
	stop  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

type delayed struct {
	at   time.Time
	b    []byte
	addr net.Addr
}

func newFaultConn() (*faultConn, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &faultConn{PacketConn: pc, q: make(chan delayed, 4096), stop: make(chan struct{})}
	c.wg.Add(1)
	go c.send()
	return c, nil
}

func (c *faultConn) setDelay(d time.Duration) { c.delay.Store(int64(d)) }

func (c *faultConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.cut.Load() {
		return len(b), nil
	}
	if n := c.loss.Load(); n > 0 && c.sent.Add(1)%n == 0 {
		return len(b), nil
	}
	d := time.Duration(c.delay.Load())
	if d == 0 {
		return c.PacketConn.WriteTo(b, addr)
	}
	select {
	case c.q <- delayed{at: time.Now().Add(d), b: append([]byte(nil), b...), addr: addr}:
	default: // queue full: the packet is lost
	}
	return len(b), nil
}

func (c *faultConn) send() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case p := <-c.q:
			if wait := time.Until(p.at); wait > 0 {
				select {
				case <-c.stop:
					return
				case <-time.After(wait):
				}
			}
			_, _ = c.PacketConn.WriteTo(p.b, p.addr)
		}
	}
}

// Close closes the socket without any goodbye, like a killed process.
func (c *faultConn) Close() error {
	c.once.Do(func() { close(c.stop) })
	err := c.PacketConn.Close()
	c.wg.Wait()
	return err
}
