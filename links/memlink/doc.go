// Package memlink is an in-memory implementation of links.Transport,
// links.Link and links.Stream, so that tests and the cluster simulator can
// run many real nodes in one process.
//
// A Network connects Transports by name: Dial(ctx, "b") links to the
// transport named "b". Links behave like the QUIC links: the hello refuses
// a peer of another mesh (an error wrapping links.ErrRefused), there is one
// link per pair of nodes (a second or simultaneous dial returns the existing
// link), routing payloads travel in order through a queue bounded in
// payloads and in bytes per link and direction (Config.ControlQueue,
// Config.ControlBytes; beyond either a payload is dropped with
// links.ErrQueueFull; a QUIC link queues more before it drops: its
// control stream's flow-control window, which grows to 4 MiB, then 4 MiB
// in at most 256 frames; Network.RoutingLoad counts what the links hold
// and dropped) and
// reach the peer's Handler as the very slice the sender passed, not a copy, Handler
// calls for a link are serialised (LinkUp, then Routing and CostChanged,
// then LinkDown exactly once), streams have bounded buffers (a writer blocks
// when the peer has not read: backpressure), deadlines, half-close and
// reset, and the number of streams a peer may have open is bounded.
//
// The network is scripted with SetCost, Cut, Heal, Isolate, Rejoin and
// Kill. A cut link stops carrying data at once and is reported down (with
// an error wrapping links.ErrLinkLost) after Config.DetectDelay; dials
// across a cut, to an isolated or dead node fail with ErrUnreachable.
// Halt stops the whole network for good without reporting any link down,
// so that the nodes of a network going away can close without each close
// making the others re-route.
//
// What the caller must do: close every Transport (or Kill its node) when
// done, and keep Handler methods short. Handler calls are asynchronous:
// LinkDown may arrive after Close returns. No goroutine runs while a link is
// idle: handler calls are made from a short-lived goroutine per link that
// exits when its queue is empty, and streams need no goroutines.
//
// An ordered network (Config.Settle, e.g. synctest.Wait inside a
// testing/synctest bubble) makes every Handler call of every link from a
// single goroutine, one at a time, in an order fixed by the calls' due
// times and the names of the nodes and links rather than by how the
// senders were scheduled, and calls Settle after each, so that runs
// repeat exactly. There SetPath delays routing payloads and retransmits
// the lost ones (in order, as a reliable stream would), from a random
// stream per link and direction derived from Config.Seed.
package memlink
