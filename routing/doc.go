// Package routing is circuitmesh's routing engine: a pure, deterministic,
// loop-free distance-vector protocol in the style of Babel (RFC 8966), where
// routers are named nodes and the destination ("prefix") is a node name.
//
// The Engine does no I/O, starts no goroutines, never reads the clock and
// uses randomness only from Config.Seed (and a random seed for where its
// name index keeps entries, which shows in no output). Like etcd's
// raft.RawNode it consumes
// events and produces outputs:
//
//	inputs:  LinkUp, LinkCost, LinkDown, Receive (a message from a
//	         neighbour), Tick (a timer firing), each carrying "now"
//	outputs: Ready: Messages to send to neighbours, Events (destination up,
//	         down, next hop changed)
//
// # The caller's duties
//
//  1. Feed every link event: LinkUp when a link to a neighbour is
//     established (with its cost and whether the neighbour is a leaf),
//     LinkCost when its measured cost changes, LinkDown as soon as it dies.
//     Fast failover depends on LinkDown arriving promptly: routes through
//     the link are withdrawn in that very call.
//  2. Deliver every routing message: after each call, drain Ready and send
//     each Message.Payload to neighbour Message.To over the link's control
//     stream, in order (reordering keeps routes loop-free, but costs
//     seqno requests, and an older route delivered after a newer one
//     from the same neighbour stays, possibly longer than the shortest,
//     until that neighbour's next summary); on the other side pass it
//     to Receive with the authenticated name of the sending neighbour.
//     Messages may be lost or arrive after a LinkDown (Receive then
//     returns ErrUnknownNeighbour);
//     the engine copes through periodic summaries and seqno requests.
//     Ready's Events are the engine's own buffer, reused by the next
//     call: consume them (or copy them) before calling the engine
//     again. Messages and payloads are the caller's to keep.
//  3. Call Tick at or after NextTick. Between calls the engine does
//     nothing by itself. Receive sends nothing itself: what a message
//     changes goes out at the next Tick, and NextTick is then due at once
//     (or at the triggered-update rate limit). Deliver the messages at
//     hand, then Tick: a burst of changes leaves as one batch per
//     neighbour, with the best routes of the whole burst.
//  4. Use one goroutine: the Engine is not safe for concurrent use.
//
// # Algorithm
//
// Each node advertises itself with a 16-bit sequence number. A route is
// accepted only if it satisfies the feasibility condition: its advertised
// (seqno, metric) is strictly better than the best distance this node ever
// advertised for that destination with the same seqno, or carries a newer
// seqno. This keeps the next-hop graph loop-free at every instant and rules
// out counting to infinity. The route selected stays when its next hop's
// metric rises past that distance by less than half of it (at least a
// link's cost; keeping a next hop cannot close a loop), while a seqno
// request makes it feasible again. A neighbour whose route, selected,
// was lost twice soon after it lowered that distance, leaving a better
// route unfeasible, has its next improvements of that origin sent on at
// the metric sent before until they held (damp.go): sending more than
// the metric used is loop-free, and keeps the other routes feasible if
// the improvement is withdrawn. When a destination is lost, a retraction
// (infinite metric) goes out, and a seqno request travels toward the
// destination so that it issues a newer seqno, making fresh routes feasible
// without waiting for the periodic refresh. Updates are incremental: a
// new neighbour gets the whole table once, after that only changes go out,
// as triggered updates rate-limited per neighbour
// (Config.MinTriggeredInterval; a destination never announced before,
// first heard over a link costing more than 100 while the node has a
// link of 100 or less to a router, is announced one interval later,
// with the best route heard meanwhile) and paced to Config.MaxBurstBytes per
// neighbour per MinTriggeredInterval, so that a link's control queue does
// not overflow (the rest waits for the next interval). Every Config.UpdateInterval each
// neighbour gets a summary (per-bucket digests) of what it was told
// instead of the table; it asks again only for the buckets that differ
// from what it holds, which repairs lost messages, and a matching bucket
// refreshes its routes. Routes not refreshed for Config.RouteExpiry are
// dropped; a neighbour whose summaries came late (its timers running
// behind on a starved machine) has its routes held in proportion, at
// most twice as long. A next hop is replaced at once only by one better by more than
// Config.Hysteresis, and by one better by less only once the route
// selected has stayed beaten within that margin for an update interval
// (by whichever routes: one offered and withdrawn in turn does not
// restart the wait), so jittering link costs do not flap
// routes and routes still settle on the shortest paths. A route's next
// hop is told the route has infinite metric (poison reverse) if it was
// told a finite one.
//
// Guarantees checked by the tests on seeded random graphs of up to 1000
// nodes, driven by package routingtest: next hops never form a loop at any
// step; once messages stop, every metric equals the shortest path on the
// live graph (with Hysteresis 0; with the default margin, once small
// changes have travelled with the refreshes, exactly too);
// after a node dies every other node marks it unreachable within 3×H+2
// update rounds, H being the longest route toward it in hops (measured:
// at most 2×H+3), with no metric ever exceeding the largest pre-death
// metric plus two link costs; a partition heals to shortest paths.
//
// Lookups: Lookup gives the route (reachable, metric, next hop, hops),
// NextHop is its cheap form for forwarding, NextHops adds the loop-free
// alternates for immediate failover when opening a stream on the best link
// fails, and Routes lists the table (Self excluded; Lookup(Self) is a
// reachable route with metric 0).
//
// Metrics are additive link costs; one unit is 10 µs of round-trip time
// (links floor a link at 10 units). Config.Infinity (default 2^24-1) means
// unreachable.
//
// A leaf (Config.Leaf) advertises only itself; routes that a leaf neighbour
// (LinkUp leaf=true) advertises for other nodes are ignored, so a leaf is
// never transit.
//
// Tables are bounded: at most Config.MaxRoutes destinations (new ones beyond
// are refused and counted in Stats.RefusedOrigins), at most
// Config.MaxRoutesPerMessage entries per message, and the output queues are
// bounded (overflow is counted) in case the caller stops draining Ready.
//
// The wire encoding of messages is described in wire.go and in the
// "Routing messages" section of docs/PROTOCOL.md.
package routing
