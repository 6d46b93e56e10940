package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
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
		// The port is one net.Listen takes (Atoi's "+80" and "0080" too).
		if _, err := net.ResolveTCPAddr("tcp", net.JoinHostPort("127.0.0.1", port)); err != nil {
			t.Fatalf("accepted listen address %q whose port net does not take: %v", listen, err)
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
		want := map[int]error{400: ErrBadRequest, 404: ErrNotFound, 409: ErrConflict, 503: ErrBusy}[status]
		if want == nil {
			want = ErrUnreachable
		}
		if !errors.Is(err, want) || err.Error() == "" {
			t.Fatalf("status %d body %q: error %q does not wrap %v", status, body, err, want)
		}
	})
}

// adminFuzzRoutes are the requests FuzzAdminRequest sends: every endpoint
// but those that open listeners or circuits or resolve names (POST expose
// and forward, dial), which their own tests cover.
var adminFuzzRoutes = []string{
	"GET " + PathStatus, "GET " + PathPeers, "GET " + PathLinks, "GET " + PathServices,
	"DELETE " + PathExpose, "DELETE " + PathForward, "GET " + PathPing, "GET " + PathGraph,
	"POST " + PathLinkCost, "GET " + PathPolicyCheck, "GET " + PathKeys, "POST " + PathKeys, "POST " + PathReload,
}

// FuzzAdminRequest sends the daemon's admin API any query and body on
// each endpoint: every answer is a JSON body, and every error answer a
// client status (4xx) or the node's own failure (502) with its text.
func FuzzAdminRequest(f *testing.F) {
	for i := range adminFuzzRoutes {
		f.Add(uint8(i), "", []byte(nil))
	}
	f.Add(uint8(6), "peer=b", []byte(nil))
	f.Add(uint8(7), "timeout=1s", []byte(nil))
	f.Add(uint8(7), "timeout=-1h", []byte(nil))
	f.Add(uint8(8), "", []byte(`{"peer":"b","cost":10}`))
	f.Add(uint8(8), "", []byte(`{"peer":"b","cost":10,"x":1}`))
	f.Add(uint8(9), "from=a&service=web&group=ops", []byte(nil))
	f.Add(uint8(9), "from=a&to=b&to-group=A", []byte(nil))
	f.Add(uint8(11), "", []byte(`{"op":"rotate"}`))
	s := NewServer(newFake(), slog.New(slog.DiscardHandler))
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, route uint8, query string, body []byte) {
		method, path, _ := strings.Cut(adminFuzzRoutes[int(route)%len(adminFuzzRoutes)], " ")
		req := httptest.NewRequest(method, "http://admin"+path, bytes.NewReader(body))
		req.URL.RawQuery = query
		rec := httptest.NewRecorder()
		s.http.Handler.ServeHTTP(rec, req)
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s?%s: status %d, body %q is not JSON", method, path, query, rec.Code, rec.Body.Bytes())
		}
		if rec.Code >= 300 {
			var eb ErrorBody
			if json.Unmarshal(rec.Body.Bytes(), &eb) != nil || eb.Error == "" || (rec.Code >= 500 && rec.Code != http.StatusBadGateway) {
				t.Fatalf("%s %s?%s: status %d, body %q", method, path, query, rec.Code, rec.Body.Bytes())
			}
		}
	})
}
