// Package admin is the daemon's control API: HTTP with JSON over a unix
// socket in the node's data directory (mode 0600, so only the daemon's
// user can use it).
//
// The daemon serves it with NewServer and Serve; the CLI talks to it with
// Client. Besides the read-only inspection endpoints it changes the running
// node (expose, forward and their removal), pings peers, and opens circuits
// for the CLI by upgrading an HTTP request to a raw byte stream (POST
// /v1/dial with "Upgrade: circuitmesh-circuit").
package admin

import (
	"context"
	"errors"
	"net"

	"github.com/circuitmesh/circuitmesh/node"
)

// Endpoint paths.
const (
	PathStatus   = "/v1/status"
	PathPeers    = "/v1/peers"
	PathLinks    = "/v1/links"
	PathServices = "/v1/services"
	PathExpose   = "/v1/expose"
	PathForward  = "/v1/forward"
	PathPing     = "/v1/ping"
	PathDial     = "/v1/dial"
	PathLinkCost = "/v1/link-cost"
	// PathReload (POST) reloads the node's identity files (and the
	// daemon's policy) and answers a ReloadResult.
	PathReload = "/v1/reload"
	// PathGraph (GET) gathers the mesh topology (node.Graph); the query
	// parameter timeout (a Go duration) bounds each node's answer.
	PathGraph = "/v1/graph"
)

// ReloadResult answers PathReload: the node's status after the reload
// and, when the daemon has a policy source, what the reload did to the
// policy.
type ReloadResult struct {
	node.Status
	Policy *PolicyReload `json:"policy,omitempty"`
}

// PolicyReload is the policy a reload applied.
type PolicyReload struct {
	Source         string `json:"source"`          // where it was read
	Rules          int    `json:"rules"`           // how many rules it has
	CircuitsClosed int    `json:"circuits_closed"` // open circuits it no longer allows, reset
}

// Reloader is a Node whose reload also reloads a policy and says what it
// did; the reload endpoint uses it instead of ReloadIdentity when the
// node implements it.
type Reloader interface {
	Reload() (*PolicyReload, error)
}

// UpgradeProtocol is the Upgrade token of the dial endpoint (framed
// answers, frame.go).
const UpgradeProtocol = "circuitmesh-circuit/2"

// Node is what the server needs from the running node; *node.Node
// implements it.
type Node interface {
	Status() node.Status
	Peers() []node.PeerInfo
	Links() []node.LinkInfo
	Services() []string
	Ping(ctx context.Context, peer string) (node.PingResult, error)
	DialWith(ctx context.Context, peer, service string, o node.DialOptions) (node.Conn, error)
	Expose(service, tcpAddr string) (stop func() error, err error)
	Forward(listenAddr, peer, service string) (net.Addr, func() error, error)
	SetLinkCost(peer string, cost uint32) error
	ReloadIdentity() error
	Topology(ctx context.Context, opt node.TopologyOptions) (node.Graph, error)
}

// LinkCost pins the cost of the link to Peer; Cost 0 returns to the
// measured cost.
type LinkCost struct {
	Peer string `json:"peer"`
	Cost uint32 `json:"cost"`
}

// Expose is a local TCP service published as a mesh service.
type Expose struct {
	Service string `json:"service"`
	Target  string `json:"target"`
}

// Forward is a local TCP listener tunnelled to a mesh service.
type Forward struct {
	Listen  string `json:"listen"`
	Peer    string `json:"peer"`
	Service string `json:"service"`
}

// Services lists what the node publishes and forwards.
type Services struct {
	// Services are all services published on the node, sorted.
	Services []string `json:"services"`
	// Exposed are the services backed by a local TCP address.
	Exposed []Expose `json:"exposed"`
	// Forwards are the local TCP listeners tunnelled to mesh services.
	Forwards []Forward `json:"forwards"`
}

// Ping is one ping result as JSON.
type Ping struct {
	Peer   string   `json:"peer"`
	OpenNS int64    `json:"open_ns"`
	RTTNS  int64    `json:"rtt_ns"`
	Path   []string `json:"path"`
}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error string `json:"error"`
}

// Sentinel errors returned by Client (wrapped with context).
var (
	// ErrNotRunning: nothing listens on the admin socket.
	ErrNotRunning = errors.New("daemon not running")
	// ErrPermission: the socket exists but this user may not use it.
	ErrPermission = errors.New("permission denied on admin socket")
	// ErrUntrustedSocket: the process listening on the admin socket runs
	// as another user than root and this one, so it is not this user's
	// daemon; nothing is sent to it.
	ErrUntrustedSocket = errors.New("admin socket served by another user")
	// ErrNotFound: the peer, service, expose or forward does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the service or listen address is already in use, or
	// the daemon's state forbids the request (the primary gossip key
	// cannot be removed; a node without a gossip keyring has none to
	// list or change).
	ErrConflict = errors.New("already in use")
	// ErrBadRequest: the daemon rejected the arguments.
	ErrBadRequest = errors.New("bad request")
	// ErrUnreachable: the mesh could not deliver (no route, refused, timeout).
	ErrUnreachable = errors.New("unreachable")
	// ErrBusy: the daemon's admin API is at a bound of what it holds at
	// once (MaxConns connections, MaxDialCircuits dial circuits), or it
	// closed the connection without answering as it does at that bound
	// and when it stops.
	ErrBusy = errors.New("admin API busy")
	// ErrAnswerTooLarge: the daemon's answer is longer than the client
	// reads (MaxAnswer); the client stops reading it there.
	ErrAnswerTooLarge = errors.New("answer too large")
)
