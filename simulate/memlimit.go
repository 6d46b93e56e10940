package simulate

// Memory limits for a process that runs one scenario.
const (
	// memLimitFrom is the smallest scenario MemoryLimit limits: smaller
	// ones stay well within a gigabyte without a limit.
	memLimitFrom = 300
	memLimitBase = 256 << 20 // what a run holds besides its nodes
	memLimitAt1k = 1 << 30   // and its nodes at 1000 nodes
	// and the state of 1000 nodes that run discovery: every node keeps
	// every member (memberlist's node table, discovery's member,
	// coordinate and round-trip tables) and, once linked, a route with an
	// attested origin to each; 2.2 GB were live before half the routes
	// were known
	memLimitGossipAt1k = 4 << 30
)

// MemoryLimit is the soft memory limit (runtime/debug.SetMemoryLimit) that
// `circuitmesh simulate` sets for a scenario of the given number of nodes,
// or 0 for none: none up to 300 nodes, then 256 MiB plus 1 GiB × (nodes /
// 1000)², since the routing state of every node grows with the nodes of
// the mesh: 1.25 GiB at 1000 nodes, 25.25 GiB at 5000. Near the limit the
// garbage collector works harder instead of letting the heap grow to twice
// what is live, trading CPU for memory.
func MemoryLimit(nodes int) int64 {
	return MemoryLimitGossip(nodes, 0)
}

// MemoryLimitGossip is MemoryLimit for a scenario of which gossip nodes
// run discovery: 4 GiB × (gossip / 1000)² more, since each of them also
// keeps every member (5.25 GiB at 1000 nodes with gossip, 1.5 GiB at
// 500). A limit below what is live makes the garbage collector run
// without pause: 1000 nodes with gossip under the 1.25 GiB of
// MemoryLimit spent half their CPU collecting (30 % under 3.25 GiB, with
// 2.2 GB live before half the routes were known; 27 % at 300 nodes
// without a limit).
func MemoryLimitGossip(nodes, gossip int) int64 {
	if nodes <= memLimitFrom {
		return 0
	}
	k, g := float64(nodes)/1000, float64(gossip)/1000
	return memLimitBase + int64(k*k*memLimitAt1k) + int64(g*g*memLimitGossipAt1k)
}
