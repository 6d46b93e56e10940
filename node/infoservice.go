package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/node/policy"
)

// InfoService is the reserved service every node answers (unless
// Config.DisableInfo is set) with a JSON description of itself: name,
// role, version, links and services (NodeInfo). Topology queries it on
// every reachable node. See docs/PROTOCOL.md §4.
const InfoService = "_info"

// Bounds of an info answer: a node reports at most MaxInfoLinks links and
// MaxInfoServices services, and the answer is at most MaxInfoSize bytes.
// A reader refuses a larger answer.
const (
	MaxInfoLinks    = 256
	MaxInfoServices = 256
	MaxInfoSize     = 64 << 10
)

// infoWriteTimeout bounds how long a node waits on a reader of its info
// answer.
const infoWriteTimeout = 10 * time.Second

// ErrBadInfo: an info answer that is not valid JSON, too large, or that
// breaks the bounds above.
var ErrBadInfo = errors.New("bad info answer")

// NodeInfo is what a node's info service answers.
type NodeInfo struct {
	Name    string `json:"name"`
	Mesh    string `json:"mesh"`
	Role    string `json:"role"` // "router" or "leaf"
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	// Links are the node's live links, sorted by peer (at most
	// MaxInfoLinks; LinksTruncated says when there were more).
	Links          []InfoLink `json:"links"`
	LinksTruncated bool       `json:"links_truncated,omitempty"`
	// Services are the published services the asker may dial under the
	// node's dial policy (all of them in LocalInfo), sorted, reserved ones
	// included (at most MaxInfoServices).
	Services          []string `json:"services"`
	ServicesTruncated bool     `json:"services_truncated,omitempty"`
}

// InfoLink is one link as the info service reports it: quality, not
// addresses.
type InfoLink struct {
	Peer    string        `json:"peer"`
	Role    string        `json:"role"`
	RTT     time.Duration `json:"rtt_ns"`
	Loss    float64       `json:"loss"`
	Cost    uint32        `json:"cost"`
	Pinned  bool          `json:"pinned,omitempty"`
	Streams int           `json:"streams"`
}

// LocalInfo is this node's description of itself, every service listed.
// Its info service answers an asker with the services the asker may dial
// only (see infoFor).
func (n *Node) LocalInfo() NodeInfo { return n.infoFor(nil) }

// infoFor is the info answer for asker, the authenticated source of the
// info circuit: the services the policy lets asker dial (all when asker
// is nil).
func (n *Node) infoFor(asker *policy.Subject) NodeInfo {
	b := Build()
	services := n.Services()
	if asker != nil {
		p := n.Policy()
		services = slices.DeleteFunc(services, func(svc string) bool { return !p.Dial(*asker, svc).Allowed })
	}
	info := NodeInfo{Name: n.cfg.Name, Mesh: n.cfg.Mesh, Role: n.role.String(), Version: b.Version, Commit: b.Commit,
		Links: []InfoLink{}, Services: services}
	for _, l := range n.Links() {
		if len(info.Links) == MaxInfoLinks {
			info.LinksTruncated = true
			break
		}
		info.Links = append(info.Links, InfoLink{Peer: l.Peer, Role: l.Role, RTT: l.RTT, Loss: l.Loss,
			Cost: l.Cost, Pinned: l.Pinned, Streams: l.Streams})
	}
	if len(info.Services) > MaxInfoServices {
		info.Services, info.ServicesTruncated = info.Services[:MaxInfoServices], true
	}
	return info
}

// encodeInfo encodes info within MaxInfoSize, dropping services, then
// links, while it is too large (names are at most 63 bytes, so this
// only happens near the bounds).
func encodeInfo(info NodeInfo) []byte {
	for {
		b, err := json.Marshal(info)
		if err == nil && len(b) <= MaxInfoSize {
			return b
		}
		switch {
		case len(info.Services) > 0:
			info.Services, info.ServicesTruncated = info.Services[:len(info.Services)/2], true
		case len(info.Links) > 0:
			info.Links, info.LinksTruncated = info.Links[:len(info.Links)/2], true
		default:
			b, _ := json.Marshal(NodeInfo{Name: info.Name, Mesh: info.Mesh, Role: info.Role,
				Links: []InfoLink{}, Services: []string{}, LinksTruncated: true, ServicesTruncated: true})
			return b
		}
	}
}

// DecodeInfo parses an info answer and checks its bounds. Its names (the
// node's, its links' peers) must be node names (identity.ValidateName)
// and its services service names (circuit.ValidateService), else the
// answer is bad. Its text (mesh, role, version, commit, the links' roles)
// comes back as links.PeerText makes it: every rune that is not printable
// reads as '?'.
func DecodeInfo(b []byte) (NodeInfo, error) {
	var info NodeInfo
	if len(b) > MaxInfoSize {
		return info, fmt.Errorf("%w: %d bytes, more than %d", ErrBadInfo, len(b), MaxInfoSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&info); err != nil {
		return NodeInfo{}, fmt.Errorf("%w: %v", ErrBadInfo, err)
	}
	if dec.More() {
		return NodeInfo{}, fmt.Errorf("%w: data after the JSON object", ErrBadInfo)
	}
	if err := identity.ValidateName(info.Name); err != nil {
		return NodeInfo{}, fmt.Errorf("%w: node %w", ErrBadInfo, err)
	}
	switch {
	case len(info.Links) > MaxInfoLinks:
		return NodeInfo{}, fmt.Errorf("%w: %d links, more than %d", ErrBadInfo, len(info.Links), MaxInfoLinks)
	case len(info.Services) > MaxInfoServices:
		return NodeInfo{}, fmt.Errorf("%w: %d services, more than %d", ErrBadInfo, len(info.Services), MaxInfoServices)
	}
	for i, svc := range info.Services {
		if err := circuit.ValidateService(svc); err != nil {
			return NodeInfo{}, fmt.Errorf("%w: service %d: %w", ErrBadInfo, i, err)
		}
	}
	for i, l := range info.Links {
		if err := identity.ValidateName(l.Peer); err != nil {
			return NodeInfo{}, fmt.Errorf("%w: link %d: peer %w", ErrBadInfo, i, err)
		}
		if l.RTT < 0 || !(l.Loss >= 0 && l.Loss <= 1) || l.Streams < 0 {
			return NodeInfo{}, fmt.Errorf("%w: link %q out of range", ErrBadInfo, l.Peer)
		}
		info.Links[i].Role = links.PeerText(l.Role)
	}
	// The text is the answering node's word, which `circuitmesh graph`
	// prints to a terminal and the mesh page draws: made printable as a
	// refusal's reason is.
	for _, f := range []*string{&info.Mesh, &info.Role, &info.Version, &info.Commit} {
		*f = links.PeerText(*f)
	}
	if info.Links == nil {
		info.Links = []InfoLink{}
	}
	if info.Services == nil {
		info.Services = []string{}
	}
	return info, nil
}

// Info asks peer's info service for its NodeInfo over a circuit (this
// node's own answer when peer is this node's name). ctx bounds the whole
// of it: once ctx is done the read ends, and Info returns an error
// wrapping ctx.Err().
func (n *Node) Info(ctx context.Context, peer string) (NodeInfo, error) {
	if peer == n.cfg.Name {
		return n.LocalInfo(), nil
	}
	c, err := n.Dial(ctx, peer, InfoService)
	if err != nil {
		return NodeInfo{}, fmt.Errorf("info of %s: %w", peer, err)
	}
	defer c.Close()
	defer bindContext(ctx, c)()
	b, err := io.ReadAll(io.LimitReader(c, MaxInfoSize+1))
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return NodeInfo{}, fmt.Errorf("info of %s: read: %w (%w)", peer, cerr, err)
		}
		return NodeInfo{}, fmt.Errorf("info of %s: read: %w", peer, err)
	}
	info, err := DecodeInfo(b)
	if err != nil {
		return NodeInfo{}, fmt.Errorf("info of %s: %w", peer, err)
	}
	if info.Name != peer {
		return NodeInfo{}, fmt.Errorf("info of %s: %w: answered for %q", peer, ErrBadInfo, info.Name)
	}
	return info, nil
}

// infoAsker is the source of an info circuit as the dial policy decided
// it (authenticated by the end-to-end handshake). A circuit without one
// is answered as a source of no name and no groups.
func infoAsker(c net.Conn) *policy.Subject {
	if rc, ok := c.(*resumableConn); ok {
		c = rc.first
	}
	if tc, ok := c.(*trackedConn); ok {
		if p := tc.police.Load(); p != nil {
			from := p.from
			return &from
		}
	}
	return &policy.Subject{}
}

// serveInfo answers one circuit to the info service: it gets this node's
// NodeInfo, then the end of the stream. Circuits are admitted like any
// other (per-source and total limits), and a reader that does not read is
// dropped after infoWriteTimeout.
func (n *Node) serveInfo(c net.Conn) {
	c.SetWriteDeadline(time.Now().Add(infoWriteTimeout))
	if _, err := c.Write(encodeInfo(n.infoFor(infoAsker(c)))); err != nil {
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}
