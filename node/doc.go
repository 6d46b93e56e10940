// Package node composes a circuitmesh node and is the embedding API.
//
// A Node owns its links (QUIC by default, or any links.Transport such as
// the in-memory one of package links/memlink for simulation), the routing
// engine of package routing, circuit dispatch and relaying (package
// circuit), published services, gossip discovery (hashicorp/memberlist),
// tracing (OpenTelemetry) and metrics (Prometheus).
//
// Typical use:
//
//	n, err := node.New(node.Config{Name: "billing-7", DataDir: "/var/lib/circuitmesh",
//		ListenAddr: "0.0.0.0:4242", StaticLinks: []string{"10.0.0.2:4242"}})
//	if err != nil { ... }
//	if err := n.Start(ctx); err != nil { ... }
//	defer n.Close()
//
//	lis, _ := n.Listen("grpc")          // serve: lis.Accept() returns circuits
//	conn, err := n.Dial(ctx, "ledger-2", "grpc") // a net.Conn across any number of relays
//
// Dial returns once the destination accepted: one end-to-end round trip
// over warm links. DialWith{Early: true} returns at once and lets the first
// bytes travel with the open; a refusal then surfaces on the first Read or
// Write. Refusals are *circuit.RefusedError values that name the node that
// produced them and match circuit.ErrNoRoute, ErrNoService, ErrHopLimit,
// ErrRefusedByPolicy, ErrOverloaded, ErrShuttingDown and ErrLinkLost with
// errors.Is. Dialling the node's own name gives a local circuit.
//
// Every node answers the built-in "echo" service (Ping uses it), each
// circuit on the goroutine that read its open: no backlog, no hand-off to
// an Accept loop.
//
// Circuits are sealed end to end by default (Config.E2E, docs/SECURITY.md):
// the source a destination sees (Conn.RemoteAddr) proved its name with its
// certificate in the circuit's handshake, the source knows it reached the
// named destination, and relays carry only ciphertext. With E2EOff the
// source is only as trustworthy as the routers on the path: a node refuses
// a header whose source is not the neighbour that sent it unless the
// neighbour is a router relaying it (docs/PROTOCOL.md, trust model).
//
// Config.Policy (package node/policy) says which sources may open which
// services here and which circuits this node relays; SetPolicy replaces it
// and resets only the open circuits it no longer allows. Without a policy
// everything is allowed and Start logs a warning. The gossip keyring can
// be rotated at run time (InstallGossipKey, UseGossipKey, RemoveGossipKey).
//
// The caller must Close the node; Close drains (refuses new circuits,
// tells neighbours to route around this node, lets open ones finish for
// Config.GracePeriod), resets the rest, says goodbye to neighbours and
// waits for every goroutine the node started. Every table and queue is
// bounded: by Config.Limits or by constants named in docs/SECURITY.md
// (Limits), such as a service's Backlog, the gossip members held and the
// process-wide verification caches. Beyond a circuit limit circuits are
// refused as overloaded.
package node
