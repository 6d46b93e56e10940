package ui

import (
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/meshgraph"
	"github.com/circuitmesh/circuitmesh/node"
)

// maxDrawnPaths bounds the pictures kept for one graph, one per path
// highlighted (none, the page's usual view, is one): a path comes from a
// ping, which pingRate bounds, so few differ within a graph's reuse time.
const maxDrawnPaths = 8

// drawing is what the views of one gathered graph share: the graph as
// JSON and its picture as a JSON string, one per path highlighted. They
// are most of a view's cost (for a mesh of 100 nodes about 10 ms of CPU
// and 2 MiB allocated, against a request of a few dozen bytes), so each
// is drawn once per graph, not once per request.
type drawing struct {
	mu    sync.Mutex // held while drawing: one drawing at a time
	at    time.Time  // when the graph they were drawn from was gathered
	graph []byte
	svgs  map[string][]byte // by path, its names joined with "\n"
}

// get returns g, gathered at at, as JSON and its picture with path
// highlighted as a JSON string, drawing what was not drawn yet for at.
func (d *drawing) get(g node.Graph, at time.Time, path []string) (graph, svg []byte, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.graph == nil || !d.at.Equal(at) {
		b, err := json.Marshal(g)
		if err != nil {
			return nil, nil, err
		}
		d.at, d.graph, d.svgs = at, b, make(map[string][]byte)
	}
	key := strings.Join(path, "\n")
	if s, ok := d.svgs[key]; ok {
		return d.graph, s, nil
	}
	var b strings.Builder
	if err := meshgraph.SVG(&b, g, meshgraph.SVGOptions{Path: path}); err != nil {
		return nil, nil, err
	}
	s, err := json.Marshal(b.String())
	if err != nil {
		return nil, nil, err
	}
	if len(d.svgs) >= maxDrawnPaths {
		clear(d.svgs)
	}
	d.svgs[key] = s
	return d.graph, s, nil
}
