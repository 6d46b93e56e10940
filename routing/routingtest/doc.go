// Package routingtest is an in-memory message network for routing engines,
// for tests and benchmarks. It runs many routing.Engine values in lock step:
// each round advances virtual time by Network.Step, delivers the messages
// due, fires due timers and collects outputs. Links can be brought up and
// down (reported to both engines), have their cost changed, or be cut
// (messages silently dropped while the engines still believe the link is
// up); nodes can be isolated or killed; messages can be dropped at random,
// delayed and reordered. Everything is deterministic for a given seed.
//
// The package also holds a reference shortest-path computation (Dijkstra
// with leaf nodes barred from transit) that tests compare engines against.
package routingtest
