package simulate

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// Op is what a scenario step does.
type Op int

// Scenario operations (see the package documentation for the syntax).
const (
	OpNodes Op = iota + 1
	OpLink
	OpUnlink
	OpCut
	OpHeal
	OpSet
	OpPartition
	OpIsolate
	OpKill
	OpRestart
	OpRandom
	OpWait
	OpWaitConverged
	OpExpectRoute
	OpExpectUnreachable
	OpTransfer
	OpPrint
	OpWorkload
	OpWaitOptimal
)

var opNames = map[Op]string{
	OpNodes: "nodes", OpLink: "link", OpUnlink: "unlink", OpCut: "cut", OpHeal: "heal",
	OpSet: "set", OpPartition: "partition", OpIsolate: "isolate", OpKill: "kill",
	OpRestart: "restart", OpRandom: "random", OpWait: "wait", OpWaitConverged: "wait converged",
	OpExpectRoute: "expect route", OpExpectUnreachable: "expect unreachable",
	OpTransfer: "transfer", OpPrint: "print",
	OpWorkload: "workload", OpWaitOptimal: "wait optimal",
}

func (o Op) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// changesTopology reports whether the step changes links or nodes (the
// runner measures times from the last such step).
func (o Op) changesTopology() bool {
	switch o {
	case OpNodes, OpLink, OpUnlink, OpCut, OpHeal, OpSet, OpPartition, OpIsolate, OpKill, OpRestart, OpRandom:
		return true
	}
	return o == OpDiscover || o == OpRegions
}

// isFault reports whether the step takes links or nodes away.
func (o Op) isFault() bool {
	switch o {
	case OpUnlink, OpCut, OpPartition, OpIsolate, OpKill:
		return true
	}
	return false
}

// Defaults and bounds of scenario steps.
const (
	DefaultWithin         = 5 * time.Second  // expect route / unreachable
	DefaultConvergeTimout = 30 * time.Second // wait converged
	DefaultTransferWithin = 60 * time.Second // transfer
	// MaxNodes bounds the nodes of one scenario.
	MaxNodes = 5000
	// MaxRandomEdges bounds the links of a random graph.
	MaxRandomEdges = 10000
	// MaxTransfer bounds one transfer.
	MaxTransfer = 1 << 30
	// MaxDuration bounds every duration in a scenario.
	MaxDuration = 10 * time.Minute
)

// Step is one parsed scenario line. Which fields are set depends on Op.
type Step struct {
	Line int    // 1-based line number
	Text string // the line without its comment
	Op   Op
	// Nodes: the names of nodes, kill, restart and isolate; from and to of
	// expect and transfer; the node of print.
	Nodes []string
	// Edges of link, unlink, cut, heal and set (a dials b).
	Edges [][2]string
	// Sets are the two sides of a partition.
	Sets [2][]string
	// Params of link, set and random; SetLatency and SetLoss say which
	// were given (set changes only those).
	Params              LinkParams
	SetLatency, SetLoss bool
	// SetShape names the shape options given (bandwidth, queue, jitter,
	// reorder, dup).
	SetShape []string
	// Duration: wait's time, wait converged's timeout, expect's and
	// transfer's deadline (0 for expect means check once, now).
	Duration time.Duration
	Hops     int    // expect route: required hop count (0: any)
	Via      string // expect route: required next hop ("" any)
	Size     int64  // transfer: bytes
	Count    int    // random: edges in total
	Seed     uint64 // random: seed
	What     string // print: routes, links or events
	// Workload is the workload step's circuits.
	Workload *WorkloadSpec
	// Underlay of regions; Order of discover (name or random; the seed
	// node is Nodes[0], the nodes joining it follow).
	Underlay *Underlay
	Order    string
}

// Script is a parsed scenario.
type Script struct {
	Name  string
	Steps []Step
}

// ParseError is a scenario error with its position.
type ParseError struct {
	File string // the script's name
	Line int    // 1-based line number
	Msg  string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Parse parses a scenario. name is used in errors and reports. It checks
// syntax and meaning (nodes declared before use, edges that exist, values
// in range) so that a script that parses can run; a script without a
// command is an error. A leading byte order mark is skipped.
func Parse(name, src string) (*Script, error) {
	p := &parser{s: &Script{Name: name}, declared: map[string]bool{}, edges: map[pair]bool{}, down: map[string]int{}}
	src = strings.TrimPrefix(src, "\ufeff") // a byte order mark some editors write
	for i, raw := range strings.Split(src, "\n") {
		text, _, _ := strings.Cut(raw, "#")
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		st := Step{Line: i + 1, Text: text}
		if err := p.parseLine(&st); err != nil {
			return nil, &ParseError{File: name, Line: i + 1, Msg: err.Error()}
		}
		p.s.Steps = append(p.s.Steps, st)
	}
	if len(p.s.Steps) == 0 {
		// Most likely the wrong file: running nothing would pass.
		return nil, &ParseError{File: name, Line: 1, Msg: "no command (a script needs at least one, such as nodes a b)"}
	}
	return p.s, nil
}

type parser struct {
	s        *Script
	declared map[string]bool
	nnodes   int
	edges    map[pair]bool
	down     map[string]int // killed nodes: the line of their kill
	g        gossipState
}

func (p *parser) parseLine(st *Step) error {
	words := strings.Fields(st.Text)
	cmd, args := words[0], words[1:]
	switch cmd {
	case "nodes":
		st.Op = OpNodes
		return p.nodes(st, args)
	case "link", "unlink", "cut", "heal", "set":
		st.Op = map[string]Op{"link": OpLink, "unlink": OpUnlink, "cut": OpCut, "heal": OpHeal, "set": OpSet}[cmd]
		return p.edgeStep(st, args)
	case "partition":
		st.Op = OpPartition
		return p.partition(st, strings.TrimSpace(strings.TrimPrefix(st.Text, "partition")))
	case "isolate", "kill", "restart":
		st.Op = map[string]Op{"isolate": OpIsolate, "kill": OpKill, "restart": OpRestart}[cmd]
		if len(args) == 0 || st.Op == OpIsolate && len(args) != 1 {
			return fmt.Errorf("%s needs %s", cmd, map[bool]string{true: "one node", false: "node names"}[st.Op == OpIsolate])
		}
		if err := p.names(st, args); err != nil {
			return err
		}
		return p.killRestart(st)
	case "random":
		st.Op = OpRandom
		return p.random(st, args)
	case "wait":
		return p.wait(st, args)
	case "expect":
		return p.expect(st, args)
	case "transfer":
		st.Op = OpTransfer
		return p.transfer(st, args)
	case "workload":
		return p.workload(st, args)
	case "regions":
		st.Op = OpRegions
		return p.regions(st, args)
	case "discover":
		st.Op = OpDiscover
		return p.discover(st, args)
	case "measure":
		st.Op = OpMeasure
		if len(args) > 0 {
			return fmt.Errorf("measure takes no arguments")
		}
		return nil
	case "print":
		st.Op = OpPrint
		if len(args) != 2 || args[0] != "routes" && args[0] != "links" && args[0] != "events" {
			return fmt.Errorf("want print routes|links|events NODE")
		}
		st.What = args[0]
		return p.names(st, args[1:])
	}
	return fmt.Errorf("unknown command %q (want nodes, link, unlink, cut, heal, set, partition, isolate, kill, restart, random, regions, discover, wait, expect, transfer, workload, measure or print)", cmd)
}

// killRestart checks that kill names running nodes and restart killed
// ones, each once, and records which nodes are down: only kill takes a
// node down and only restart brings it back, so this is what the run finds.
func (p *parser) killRestart(st *Step) error {
	if st.Op != OpKill && st.Op != OpRestart {
		return nil
	}
	seen := map[string]bool{}
	for _, name := range st.Nodes {
		if seen[name] {
			return fmt.Errorf("%s: %s named twice", st.Op, name)
		}
		seen[name] = true
		line, down := p.down[name]
		switch {
		case st.Op == OpKill && down:
			return fmt.Errorf("kill %s: %s is down already (killed on line %d)", name, name, line)
		case st.Op == OpRestart && !down:
			return fmt.Errorf("restart %s: %s is running (kill it first)", name, name)
		}
	}
	for _, name := range st.Nodes {
		if st.Op == OpKill {
			p.down[name] = st.Line
		} else {
			delete(p.down, name)
		}
	}
	return nil
}

// up fails when one of the nodes is down (killed and not restarted), for
// the steps that need them running: link, random and transfer.
func (p *parser) up(names ...string) error {
	for _, name := range names {
		if line, down := p.down[name]; down {
			return fmt.Errorf("%s is down (killed on line %d; restart it first)", name, line)
		}
	}
	return nil
}

// nodes declares node names; "n1..n30" declares n1 to n30.
func (p *parser) nodes(st *Step, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("nodes needs at least one name")
	}
	for _, a := range args {
		names, err := expandRange(a, MaxNodes-p.nnodes)
		if err != nil {
			return err
		}
		for _, name := range names {
			if err := checkName(name); err != nil {
				return err
			}
			if p.declared[name] {
				return fmt.Errorf("node %s declared twice", name)
			}
			p.declared[name] = true
			p.nnodes++
			st.Nodes = append(st.Nodes, name)
		}
	}
	return nil
}

// expandRange expands "n1..n30"; other words are one name. At most limit
// names. As the shell's {007..009} does, a range whose first or last
// number has a leading zero keeps its width: n007..n010 is n007, n008,
// n009, n010, and n8..n010 is n008, n009, n010.
func expandRange(word string, limit int) ([]string, error) {
	lo, hi, ok := strings.Cut(word, "..")
	if !ok {
		if limit < 1 {
			return nil, fmt.Errorf("more than %d nodes", MaxNodes)
		}
		return []string{word}, nil
	}
	prefix := strings.TrimRight(lo, "0123456789")
	if prefix == "" || !strings.HasPrefix(hi, prefix) {
		return nil, fmt.Errorf("range %q: want PREFIX<from>..PREFIX<to>, as in n1..n30", word)
	}
	loDigits, hiDigits := lo[len(prefix):], hi[len(prefix):]
	from, err1 := strconv.Atoi(loDigits)
	to, err2 := strconv.Atoi(hiDigits)
	// loDigits is digits only; hiDigits must be too (Atoi takes a sign).
	if err1 != nil || err2 != nil || from > to || strings.TrimLeft(hiDigits, "0123456789") != "" {
		return nil, fmt.Errorf("range %q: want increasing numbers, as in n1..n30", word)
	}
	if to-from >= limit { // not to-from+1 > limit: that overflows for n0..n<MaxInt>
		return nil, fmt.Errorf("range %q: more than %d nodes", word, MaxNodes)
	}
	width := 0 // no padding
	if padded(loDigits) || padded(hiDigits) {
		width = max(len(loDigits), len(hiDigits))
	}
	names := make([]string, 0, to-from+1)
	for i := from; i <= to; i++ {
		names = append(names, fmt.Sprintf("%s%0*d", prefix, width, i))
	}
	return names, nil
}

// padded reports whether a range's number has a leading zero (007, not 0).
func padded(digits string) bool {
	return len(digits) > 1 && digits[0] == '0'
}

// scriptNamePattern is the node names scenarios accept: identity's names
// without '-', which separates the ends of a link.
const scriptNamePattern = "[a-z0-9][a-z0-9._]*"

// checkName accepts node names without '-', which separates edge ends.
func checkName(name string) error {
	if strings.Contains(name, "-") {
		return fmt.Errorf("bad node name %q: '-' separates the ends of a link in scenarios (want %s)", name, scriptNamePattern)
	}
	if identity.ValidateName(name) != nil {
		// Not identity's message: it quotes a pattern that allows '-'.
		return fmt.Errorf("bad node name %.40q: want %s, at most %d bytes", name, scriptNamePattern, identity.MaxNameLen)
	}
	return nil
}

// names sets st.Nodes to declared node names.
func (p *parser) names(st *Step, args []string) error {
	for _, a := range args {
		if !p.declared[a] {
			return fmt.Errorf("unknown node %q (declare it with nodes)", a)
		}
	}
	st.Nodes = args
	return nil
}

// edgeStep parses link, unlink, cut, heal and set: edges then options.
func (p *parser) edgeStep(st *Step, args []string) error {
	words, opts, err := splitOptions(args)
	if err != nil {
		return err
	}
	for _, w := range words {
		a, b, ok := strings.Cut(w, "-")
		if !ok || strings.Contains(b, "-") {
			return fmt.Errorf("bad link %q: want A-B", w)
		}
		for _, n := range []string{a, b} {
			if !p.declared[n] {
				return fmt.Errorf("link %q: unknown node %q (declare it with nodes)", w, n)
			}
		}
		if a == b {
			return fmt.Errorf("link %q: a node cannot link to itself", w)
		}
		if st.Op == OpLink {
			if err := p.up(a, b); err != nil {
				return fmt.Errorf("link %s: %v", w, err)
			}
		}
		switch {
		case st.Op == OpLink:
			p.edges[mkpair(a, b)] = true
		case !p.edges[mkpair(a, b)]:
			return fmt.Errorf("%s %s: no such link (link it first)", st.Op, w)
		case st.Op == OpUnlink:
			delete(p.edges, mkpair(a, b))
		}
		st.Edges = append(st.Edges, [2]string{a, b})
	}
	if len(st.Edges) == 0 && st.Op != OpHeal {
		return fmt.Errorf("%s needs at least one link A-B", st.Op)
	}
	allowed := []string{}
	if st.Op == OpLink || st.Op == OpSet {
		allowed = append([]string{"latency", "loss"}, shapeKeys...)
	}
	if err := p.options(st, opts, allowed...); err != nil {
		return err
	}
	if err := queueNeedsBandwidth(st); err != nil {
		return err
	}
	if st.Op == OpSet && !st.SetLatency && !st.SetLoss && len(st.SetShape) == 0 {
		return fmt.Errorf("set needs latency= or loss= (or bandwidth=, queue=, jitter=, reorder=, dup=)")
	}
	return nil
}

// queueNeedsBandwidth refuses queue= without bandwidth= on link and
// random, which set every parameter of their links; set keeps the link's
// bandwidth, so its merged parameters are checked when it runs.
func queueNeedsBandwidth(st *Step) error {
	if st.Op != OpLink && st.Op != OpRandom {
		return nil
	}
	if slices.Contains(st.SetShape, "queue") && !slices.Contains(st.SetShape, "bandwidth") {
		return fmt.Errorf("queue= needs bandwidth=: without a rate no packet waits in the queue")
	}
	return nil
}

// splitOptions separates plain words from key=value options.
func splitOptions(args []string) (words []string, opts [][2]string, err error) {
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			if len(opts) > 0 {
				return nil, nil, fmt.Errorf("%q after the options: put options last", a)
			}
			words = append(words, a)
			continue
		}
		if k == "" || v == "" {
			return nil, nil, fmt.Errorf("bad option %q: want key=value", a)
		}
		opts = append(opts, [2]string{k, v})
	}
	return words, opts, nil
}

// options applies key=value options; only allowed keys are accepted.
func (p *parser) options(st *Step, opts [][2]string, allowed ...string) error {
	seen := map[string]bool{}
	for _, o := range opts {
		k, v := o[0], o[1]
		ok := false
		for _, a := range allowed {
			ok = ok || a == k
		}
		if !ok {
			if len(allowed) == 0 {
				return fmt.Errorf("%s takes no options (got %s=)", st.Op, k)
			}
			return fmt.Errorf("%s does not take %s= (options: %s)", st.Op, k, strings.Join(allowed, "=, ")+"=")
		}
		if seen[k] {
			return fmt.Errorf("option %s= given twice", k)
		}
		seen[k] = true
		if err := p.option(st, k, v); err != nil {
			return fmt.Errorf("%s=%s: %v", k, v, err)
		}
	}
	return nil
}

func (p *parser) option(st *Step, k, v string) error {
	switch k {
	case "latency":
		d, err := parseDuration(v)
		st.Params.Latency, st.SetLatency = d, true
		return err
	case "loss":
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f >= 0 && f <= 1) {
			return fmt.Errorf("want a fraction from 0 to 1")
		}
		st.Params.Loss, st.SetLoss = f, true
	case "within", "timeout":
		d, err := parseDuration(v)
		st.Duration = d
		return err
	case "hops":
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 255 {
			return fmt.Errorf("want a hop count from 1 to 255")
		}
		st.Hops = n
	case "via":
		if !p.declared[v] {
			return fmt.Errorf("unknown node")
		}
		st.Via = v
	case "edges":
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("want a number of links")
		}
		st.Count = n
	case "seed":
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("want a non-negative integer")
		}
		st.Seed = n
	default:
		return parseShapeOption(st, k, v)
	}
	return nil
}

// parseDuration accepts Go durations from 0 to MaxDuration.
func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > MaxDuration {
		return 0, fmt.Errorf("want a duration from 0 to %v, such as 5ms or 1.5s", MaxDuration)
	}
	return d, nil
}

// partition parses "{a,b} {c,d}".
func (p *parser) partition(st *Step, rest string) error {
	bad := fmt.Errorf("want partition {A,B,...} {C,D,...}")
	for i := range 2 {
		rest = strings.TrimSpace(rest)
		if !strings.HasPrefix(rest, "{") {
			return bad
		}
		inner, after, ok := strings.Cut(rest[1:], "}")
		if !ok {
			return bad
		}
		rest = after
		for _, name := range strings.Split(inner, ",") {
			name = strings.TrimSpace(name)
			if !p.declared[name] {
				return fmt.Errorf("partition: unknown node %q", name)
			}
			for _, set := range st.Sets {
				for _, s := range set {
					if s == name {
						return fmt.Errorf("partition: %s is on both sides", name)
					}
				}
			}
			st.Sets[i] = append(st.Sets[i], name)
		}
	}
	if strings.TrimSpace(rest) != "" {
		return bad
	}
	return nil
}

// random parses "random edges=N [seed=S] [latency=D] [loss=P]".
func (p *parser) random(st *Step, args []string) error {
	words, opts, err := splitOptions(args)
	if err != nil {
		return err
	}
	if len(words) > 0 {
		return fmt.Errorf("want random edges=N [seed=S] [latency=D] [loss=P]")
	}
	st.Count = -1
	if err := p.options(st, opts, append([]string{"edges", "seed", "latency", "loss"}, shapeKeys...)...); err != nil {
		return err
	}
	if err := queueNeedsBandwidth(st); err != nil {
		return err
	}
	n := len(p.declaredOrder()) // nodes started by discover are not linked by random
	switch {
	case n < 2:
		return fmt.Errorf("random needs at least two declared nodes")
	case st.Count < 0:
		return fmt.Errorf("random needs edges=N")
	case st.Count < n-1 || st.Count > n*(n-1)/2 || st.Count > MaxRandomEdges:
		return fmt.Errorf("edges=%d: a connected graph of %d nodes has %d to %d links (at most %d here)",
			st.Count, n, n-1, n*(n-1)/2, MaxRandomEdges)
	}
	if err := p.up(p.declaredOrder()...); err != nil {
		return fmt.Errorf("random links every declared node: %v", err)
	}
	st.Edges = randomGraph(p.declaredOrder(), st.Count, st.Seed)
	for _, e := range st.Edges {
		if p.edges[mkpair(e[0], e[1])] {
			return fmt.Errorf("random: %s-%s is already linked (use random before link)", e[0], e[1])
		}
		p.edges[mkpair(e[0], e[1])] = true
	}
	return nil
}

// declaredOrder lists the declared nodes in declaration order.
func (p *parser) declaredOrder() []string {
	var names []string
	for _, st := range p.s.Steps {
		if st.Op == OpNodes {
			names = append(names, st.Nodes...)
		}
	}
	return names
}

func (p *parser) wait(st *Step, args []string) error {
	words, opts, err := splitOptions(args)
	if err != nil {
		return err
	}
	if len(words) == 1 && (words[0] == "members" || words[0] == "reachable") {
		return p.waitGossip(st, words[0], opts)
	}
	if len(words) == 1 && (words[0] == "converged" || words[0] == "optimal") && p.g.seed != "" {
		return fmt.Errorf("wait %s compares routes with the links the script made; nodes started by discover make their own: use wait reachable", words[0])
	}
	if len(words) == 1 && (words[0] == "converged" || words[0] == "optimal") {
		st.Op, st.Duration = OpWaitConverged, DefaultConvergeTimout
		if words[0] == "optimal" {
			st.Op = OpWaitOptimal
		}
		return p.options(st, opts, "timeout")
	}
	if len(words) != 1 || len(opts) > 0 {
		return fmt.Errorf("want wait DURATION, wait converged [timeout=D], wait optimal [timeout=D], wait members [timeout=D] or wait reachable [timeout=D]")
	}
	st.Op = OpWait
	st.Duration, err = parseDuration(words[0])
	return err
}

func (p *parser) expect(st *Step, args []string) error {
	words, opts, err := splitOptions(args)
	if err != nil {
		return err
	}
	if len(words) != 3 || words[0] != "route" && words[0] != "unreachable" {
		return fmt.Errorf("want expect route A B [hops=N] [via=X] [within=D] or expect unreachable A B [within=D]")
	}
	if err := p.pairOfNodes(st, words[1:]); err != nil {
		return err
	}
	st.Duration = DefaultWithin
	if words[0] == "route" {
		st.Op = OpExpectRoute
		return p.options(st, opts, "hops", "via", "within")
	}
	st.Op = OpExpectUnreachable
	return p.options(st, opts, "within")
}

// pairOfNodes sets st.Nodes to two different declared nodes.
func (p *parser) pairOfNodes(st *Step, args []string) error {
	if err := p.names(st, args); err != nil {
		return err
	}
	if args[0] == args[1] {
		return fmt.Errorf("%s to itself", args[0])
	}
	return nil
}

func (p *parser) transfer(st *Step, args []string) error {
	words, opts, err := splitOptions(args)
	if err != nil {
		return err
	}
	if len(words) != 3 {
		return fmt.Errorf("want transfer FROM TO SIZE [within=D]")
	}
	if err := p.pairOfNodes(st, words[:2]); err != nil {
		return err
	}
	if err := p.up(words[0], words[1]); err != nil {
		return fmt.Errorf("transfer %s %s: %v", words[0], words[1], err)
	}
	if st.Size, err = parseSize(words[2]); err != nil {
		return err
	}
	st.Duration = DefaultTransferWithin
	return p.options(st, opts, "within")
}

// parseSize accepts bytes with an optional unit: B, KiB, MiB, GiB, KB, MB,
// GB (1 to MaxTransfer).
func parseSize(v string) (int64, error) {
	num := strings.TrimRight(v, "BKMGibk")
	unit := v[len(num):]
	mult, ok := map[string]float64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30,
		"KB": 1e3, "kB": 1e3, "MB": 1e6, "GB": 1e9}[unit]
	f, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || !(f*mult >= 1 && f*mult <= MaxTransfer) {
		return 0, fmt.Errorf("bad size %q: want 1 byte to 1GiB, such as 4MiB, 512KiB or 1000", v)
	}
	return int64(f * mult), nil
}

// randomGraph returns count distinct links that connect all names: a
// random spanning tree plus random extra links, the same for the same seed.
func randomGraph(names []string, count int, seed uint64) [][2]string {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	perm := rng.Perm(len(names))
	seen := map[pair]bool{}
	var edges [][2]string
	add := func(a, b string) {
		if a != b && !seen[mkpair(a, b)] {
			seen[mkpair(a, b)] = true
			edges = append(edges, [2]string{a, b})
		}
	}
	for i := 1; i < len(perm); i++ {
		add(names[perm[rng.IntN(i)]], names[perm[i]])
	}
	for len(edges) < count {
		add(names[rng.IntN(len(names))], names[rng.IntN(len(names))])
	}
	return edges
}

// Nodes returns how many distinct nodes the script starts (nodes and
// discover steps).
func (s *Script) Nodes() int { return s.count(OpNodes, OpDiscover) }

// GossipNodes returns how many distinct nodes the script starts with
// gossip (discover steps).
func (s *Script) GossipNodes() int { return s.count(OpDiscover) }

// count returns how many distinct nodes steps of the given ops name.
func (s *Script) count(ops ...Op) int {
	seen := map[string]bool{}
	for _, st := range s.Steps {
		if slices.Contains(ops, st.Op) {
			for _, name := range st.Nodes {
				seen[name] = true
			}
		}
	}
	return len(seen)
}
