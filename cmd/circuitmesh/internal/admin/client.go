package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"time"
)

// Client talks to a daemon's admin socket.
type Client struct {
	// Socket is the admin socket path.
	Socket string
	http   *http.Client
}

// NewClient returns a client for the admin socket at path.
func NewClient(path string) *Client {
	c := &Client{Socket: path}
	c.http = &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return c.dialSocket(ctx)
			},
		},
		Timeout: meshTimeout + 5*time.Second,
	}
	return c
}

// dialSocket connects to the socket and says what a failure means. It
// refuses (ErrUntrustedSocket) a socket served by a process of another
// user than root and this one, unless that user owns the socket's
// directory and no one else can change it or any directory above it
// (dirOf): whoever made the socket path first would otherwise receive
// what the CLI sends (a gossip key to install, circuits' bytes) and
// choose its answers. The exception lets root use the daemon of a systemd
// unit, which runs as a dynamic user in its own state directory.
func (c *Client) dialSocket(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Socket)
	switch {
	case err == nil:
		me := uint32(os.Geteuid())
		uid, ok, err := peerAllowed(conn.(*net.UnixConn), me)
		if !ok && err == nil && dirOf(c.Socket, uid) {
			ok = true
		}
		if !ok {
			conn.Close()
			if err != nil {
				return nil, fmt.Errorf("admin socket %s: %w", c.Socket, err)
			}
			return nil, fmt.Errorf("%w: the process listening on %s runs as uid %d, neither root nor this user (uid %d) nor the owner of its directory; nothing was sent (check who made it, and point --data-dir or --admin at your daemon's socket)",
				ErrUntrustedSocket, c.Socket, uid, me)
		}
		return conn, nil
	case errors.Is(err, syscall.ENOENT):
		return nil, fmt.Errorf("%w: no admin socket at %s (start the daemon with `circuitmesh run`, or point --data-dir or --admin at its socket)", ErrNotRunning, c.Socket)
	case errors.Is(err, syscall.ECONNREFUSED) && !isSocket(c.Socket):
		return nil, fmt.Errorf("admin socket %s is not a socket (point --admin at the daemon's socket, or remove the file): %w", c.Socket, ErrNotRunning)
	case errors.Is(err, syscall.ECONNREFUSED):
		return nil, fmt.Errorf("%w: admin socket %s is left over from a stopped daemon (start it with `circuitmesh run`)", ErrNotRunning, c.Socket)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return nil, fmt.Errorf("%w %s: run as the daemon's user or root", ErrPermission, c.Socket)
	}
	return nil, fmt.Errorf("admin socket %s: %w", c.Socket, err)
}

func isSocket(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode()&os.ModeSocket != 0
}

// Get fetches path and decodes the JSON answer into out.
func (c *Client) Get(ctx context.Context, path string, query url.Values, out any) error {
	return c.do(ctx, http.MethodGet, path, query, nil, out)
}

// Post sends in as JSON to path and decodes the answer into out.
func (c *Client) Post(ctx context.Context, path string, in, out any) error {
	return c.do(ctx, http.MethodPost, path, nil, in, out)
}

// Delete calls DELETE on path with query.
func (c *Client) Delete(ctx context.Context, path string, query url.Values) error {
	return c.do(ctx, http.MethodDelete, path, query, nil, nil)
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	u := url.URL{Scheme: "http", Host: "circuitmesh", Path: path, RawQuery: query.Encode()}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return c.unanswered(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return decodeError(resp)
	}
	if out == nil {
		return nil
	}
	limit := maxAnswer(path)
	answer := &io.LimitedReader{R: resp.Body, N: limit + 1}
	if err := json.NewDecoder(answer).Decode(out); err != nil {
		if answer.N == 0 {
			return fmt.Errorf("answer of %s: %w: more than %d bytes", path, ErrAnswerTooLarge, limit)
		}
		return fmt.Errorf("decode answer of %s: %w", path, err)
	}
	return nil
}

// unanswered says what err means when it is the daemon closing the
// connection before its answer (EOF, a reset or a broken pipe, or
// net/http's "server closed idle connection" when the close came before
// the request was sent, as the request's size and the timing have it):
// the daemon does that to the connections beyond MaxConns, and to all
// when it stops. Other errors are returned as they are.
func (c *Client) unanswered(err error) error {
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET) &&
		!errors.Is(err, syscall.EPIPE) && err.Error() != errServerClosedIdle {
		return err
	}
	cause := "EOF"
	if errno := syscall.Errno(0); errors.As(err, &errno) {
		cause = errno.Error()
	}
	return fmt.Errorf("%w: the daemon closed the connection on %s without answering (%s), as it does beyond the %d connections its admin API holds open at once (requests and dial circuits together), and when it stops: try again",
		ErrBusy, c.Socket, cause, MaxConns)
}

// errServerClosedIdle is the text of the error net/http's client returns
// when the server closed a connection before the request was written on
// it (the error itself is not exported).
const errServerClosedIdle = "http: server closed idle connection"

// Bounds of the JSON answer the client reads: MaxGraphAnswer for
// PathGraph (an answer of at most node.MaxInfoSize from each of up to
// Limits.MaxRoutes nodes, escaped again), MaxAnswer for every other path.
const (
	MaxAnswer      = 16 << 20
	MaxGraphAnswer = 1 << 30
)

func maxAnswer(path string) int64 {
	if path == PathGraph {
		return MaxGraphAnswer
	}
	return MaxAnswer
}

// decodeError turns an error response into an error wrapping the sentinel
// that matches its status.
func decodeError(resp *http.Response) error {
	var eb ErrorBody
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
		eb.Error = fmt.Sprintf("daemon answered %s", resp.Status)
	}
	var sentinel error
	switch resp.StatusCode {
	case http.StatusBadRequest:
		sentinel = ErrBadRequest
	case http.StatusNotFound:
		sentinel = ErrNotFound
	case http.StatusConflict:
		sentinel = ErrConflict
	case http.StatusServiceUnavailable:
		sentinel = ErrBusy
	default:
		sentinel = ErrUnreachable
	}
	return &RemoteError{Msg: eb.Error, Status: resp.StatusCode, sentinel: sentinel}
}

// RemoteError is an error reported by the daemon. It unwraps to ErrNotFound,
// ErrConflict, ErrBadRequest, ErrBusy or ErrUnreachable.
type RemoteError struct {
	Msg      string
	Status   int
	sentinel error
}

func (e *RemoteError) Error() string { return e.Msg }
func (e *RemoteError) Unwrap() error { return e.sentinel }

// Circuit is a byte stream to a mesh service opened through the daemon.
type Circuit struct {
	net.Conn
	r *frameReader
}

// Read reads from the circuit. It returns io.EOF when the service ended
// its side cleanly, and an error wrapping ErrCircuitReset with the reason
// when the circuit failed.
func (c *Circuit) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite half-closes: the service reads EOF; reading continues.
func (c *Circuit) CloseWrite() error {
	return c.Conn.(*net.UnixConn).CloseWrite()
}

// Dial opens a circuit to service on peer through the daemon.
func (c *Client) Dial(ctx context.Context, peer, service string) (*Circuit, error) {
	conn, err := c.dialSocket(ctx)
	if err != nil {
		return nil, err
	}
	q := url.Values{"peer": {peer}, "service": {service}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://circuitmesh"+PathDial+"?"+q.Encode(), nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", UpgradeProtocol)
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	failed := func(err error) (*Circuit, error) {
		conn.Close()
		if u := c.unanswered(err); u != err {
			return nil, u
		}
		return nil, fmt.Errorf("dial through %s: %w", c.Socket, err)
	}
	if err := req.Write(conn); err != nil {
		return failed(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return failed(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer conn.Close()
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	conn.SetDeadline(time.Time{})
	return &Circuit{Conn: conn, r: &frameReader{r: br}}, nil
}
