// Package simulate runs many real circuitmesh nodes (package node: New,
// Start, Link, Dial, Listen, Close — no copy of node logic) in one process
// on a simulated network, injects faults, checks expectations and
// measures convergence, reroute, open time and throughput.
//
// # Cluster
//
// NewCluster starts an empty cluster on one of two backends:
//
//   - BackendQUIC (the default): real QUIC links with TLS 1.3 and a
//     throwaway mesh CA (identity.NewCA/Issue), over a simulated datagram
//     network passed as node.Config.PacketConn. Every pair of nodes has a
//     one-way latency and a loss rate; cuts, partitions and crashes drop
//     packets silently, so nodes detect them the way they would in the
//     field (liveness probes, QUIC timeouts).
//   - BackendMem: in-memory links (package links/memlink) passed as
//     node.Config.NewTransport: no packets and no cryptography, for
//     hundreds of nodes. Latency becomes the link's cost (one cost unit per
//     10 µs of round trip). In virtual time (Config.Ordered, which Test and
//     RunVirtual set) latency also delays the routing messages and loss
//     retransmits them, and runs repeat byte for byte; in real time loss
//     is not supported.
//
// AddNodes starts named nodes; Link adds an edge (the first node dials and
// keeps the link up); Unlink, Cut, Heal, Partition, Isolate, Kill (a crash:
// no goodbye) and Restart (same name, identity and address) change the
// network; SetLink changes latency and loss. Converged and WaitConverged
// compare every node's routing table with the topology's connected
// components; Route, Peers, Links and Events (node.SubscribeFunc, recorded until Close)
// observe; RouteStretch compares every route with the shortest path over
// the links' costs (Dijkstra); Transfer opens a circuit to SinkService, which every node
// answers, sends pseudo-random bytes and checks the receiver's count and
// SHA-256. Heal and Restart make the dialling end redial at once rather
// than after its redial backoff, so what follows measures routing.
//
// Discover starts nodes that run memberlist gossip over the simulated
// network (a memberlist.NodeAwareTransport given as
// node.DiscoveryConfig.Transport: datagrams with the pair's latency, loss
// and faults, streams over QUIC on the QUIC backend and in-memory pipes on
// mem) and join a seed; their discovery makes the links. SetUnderlay
// places nodes in regions whose latencies the network applies;
// PartitionUnderlay and HealUnderlay split and restore it; WaitMembers,
// WaitReachable and MeasureMesh (MeshStats: reachability, degrees,
// diameter, path stretch over the underlay, link churn, gossip traffic)
// observe the mesh discovery built.
//
// The caller must Close the cluster; Close stops the simulated network
// without telling the nodes (so none re-routes around another that
// closes), closes the nodes 64 at a time and waits for every goroutine the
// cluster started. A node still starting when Close begins is closed by
// the AddNodes, Discover or Restart that started it, which Close cancels
// and waits for and which then fails with an error wrapping
// net.ErrClosed; so do AddNodes, Restart and Kill after Close.
//
// # Virtual time
//
// Test runs a scenario inside a testing/synctest bubble: every timer of the
// nodes, of quic-go and of the simulated network runs on the bubble's fake
// clock, which jumps forward whenever the whole cluster is blocked. Waits
// and timeouts then cost no wall time, and the report's durations are
// virtual, with the wall time beside them (Report.Virtual, Report.Wall,
// StepResult.Wall). A Cluster created inside synctest.Test runs in virtual
// time the same way, and RunVirtual (`circuitmesh simulate --virtual`)
// runs a scenario in virtual time outside go test. On BackendMem, Test
// and RunVirtual order the network (Config.Ordered, unless
// Config.Unordered): the same script and seed give
// the same report but for its wall-clock fields, the same event logs and
// routing tables (TestVirtualRunsRepeat). On BackendQUIC only the step
// outcomes repeat: goroutines ready at the same virtual instant run in an
// order the Go scheduler picks and links and QUIC draw unseeded
// randomness.
//
// # Scenarios
//
// A scenario is a text file of one command per line; '#' starts a comment
// and blank lines are ignored. Node names are lower-case letters, digits,
// '.' and '_' (no '-': it joins the two ends of a link, as in a-b). Options
// are key=value words after the other arguments; durations are Go
// durations (5ms, 1.5s).
//
//	nodes a b c n1..n30            start nodes (n1..n30 is n1, n2, ... n30;
//	                               n007..n010 is n007, n008, n009, n010)
//	link a-b c-d [latency=D] [loss=P]  link (a dials b) with one-way latency and loss 0..1
//	random edges=N [seed=S] [latency=D] [loss=P]
//	                               a random connected graph of N links over every node declared so far
//	set a-b [latency=D] [loss=P]   change latency or loss of existing links
//	    link, random and set take bandwidth=R (10Mbit) queue=S (64KiB) jitter=D reorder=P dup=P
//	                               too (QUIC backend; Shape)
//	unlink a-b                     remove a link for good: its dialler drops it (heal does not restore it)
//	cut a-b                        drop all traffic of a link, silently
//	heal [a-b ...]                 undo cuts, partitions and isolation (all, or the links named)
//	partition {a,b} {c,d}          cut every link between the two sets
//	isolate a                      cut every link of a
//	kill a [b ...]                 crash nodes: no goodbye, their packets vanish
//	restart a [b ...]              start killed nodes again with the same identity and address
//	wait D                         sleep
//	wait converged [timeout=D]     wait until routing matches the topology (default 30s)
//	wait optimal [timeout=D]       wait until every route is also the shortest
//	workload [circuits=N] [pairs=random|all] [rate=R] [size=S] [duration=D] [seed=S] [within=D]
//	                               many verified circuits (Cluster.Workload): success rate, open
//	                               and per-hop times, throughput, path stretch, routing messages
//	expect route a b [hops=N] [via=X] [within=D]
//	                               a reaches b (in N hops, with next hop X) within D (default 5s; 0 checks once)
//	expect unreachable a b [within=D]
//	                               a has no route to b within D
//	transfer a b SIZE [within=D]   send SIZE bytes (4MiB, 512KiB, 1MB, 1000) over a circuit and verify them
//	print routes|links|events a    include a node's table in the report
//	regions eu:n1..n9 us:n10,x [inside=D] [between=D|D..D] [spread=D] [seed=S]
//	                               the underlay: latency inside a region and between regions
//	discover seed=n1 nodes=n2..n9 [order=name|random]
//	                               start nodes with gossip that join n1 and make their own links
//	wait members [timeout=D]       wait until every gossip node knows the others on its side
//	wait reachable [timeout=D]     wait until every node reaches the others on its side
//	measure                        reachability, degrees, diameter, path stretch, churn, gossip traffic
//
// Parse checks syntax and meaning (nodes declared before use, links that
// exist, values in range, kill naming running nodes and restart killed
// ones, link, random and transfer naming running nodes) and returns a *ParseError with the line number.
// Run executes a Script on a new cluster and returns a Report: one
// StepResult per line (ok, pass or fail with the reason), and
// Measurements: convergence (wait converged, from the start of the last
// step that changed the topology), reroute (an expectation that held only
// after waiting, following a fault), route (the same after a non-fault
// change), throughput and open (transfers). A failed step does not stop
// the run; Report.OK says whether everything passed. WriteTable and
// WriteJSON render the report; it also gives the teardown time. The command `circuitmesh simulate` is the
// front end; docs/SIMULATE.md describes the language with examples.
package simulate
