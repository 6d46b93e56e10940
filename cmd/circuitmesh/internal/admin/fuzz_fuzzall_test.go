package admin

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links/identity"
)

// FuzzValidateForward checks any forward a request names: a refusal wraps
// ErrBadRequest; an accepted one has a listen address with a port from 0
// to 65535, a valid node name and a valid service name.
func FuzzValidateForward(f *testing.F) {
	f.Add("127.0.0.1:0", "b", "web")
	f.Add("[::1]:65535", "node-1", "api/v1")
	f.Add(":65536", "b", "web")
	f.Add("300.1.1.1:80", "b", "web")
	f.Add("localhost:+80", "B", "a b")
	f.Add("host:0x50", "b", "")
	f.Add("127.0.0.1:+80", "b", "web")
	f.Add("127.0.0.1:-0", "b", "web")
	f.Fuzz(func(t *testing.T, listen, peer, service string) {
		err := ValidateForward(listen, peer, service)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("ValidateForward(%q, %q, %q): %v does not wrap ErrBadRequest", listen, peer, service, err)
			}
			return
		}
		_, port, err := net.SplitHostPort(listen)
		if err != nil {
			t.Fatalf("accepted listen address %q: %v", listen, err)
		}
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || strconv.FormatUint(p, 10) != port && port != "0"+strconv.FormatUint(p, 10) {
			// Atoi takes "+80" and "0080"; what net.Listen takes is checked below.
			if _, err := net.ResolveTCPAddr("tcp", net.JoinHostPort("127.0.0.1", port)); err != nil {
				t.Fatalf("accepted listen address %q whose port net does not take: %v", listen, err)
			}
		}
		if identity.ValidateName(peer) != nil || circuit.ValidateService(service) != nil {
			t.Fatalf("accepted peer %q service %q", peer, service)
		}
	})
}

// FuzzDecodeError reads any error answer of the daemon: the error unwraps
// to the sentinel of its status and has a message.
func FuzzDecodeError(f *testing.F) {
	f.Add(400, []byte(`{"error":"service \"x\": bad request"}`))
	f.Add(404, []byte(`{"error":""}`))
	f.Add(409, []byte(`not json`))
	f.Add(502, []byte(`{"error":1}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		resp := &http.Response{StatusCode: status, Status: strconv.Itoa(status), Body: io.NopCloser(bytes.NewReader(body))}
		err := decodeError(resp)
		want := map[int]error{400: ErrBadRequest, 404: ErrNotFound, 409: ErrConflict}[status]
		if want == nil {
			want = ErrUnreachable
		}
		if !errors.Is(err, want) || err.Error() == "" {
			t.Fatalf("status %d body %q: error %q does not wrap %v", status, body, err, want)
		}
	})
}
