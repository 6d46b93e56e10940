package routing

import (
	"reflect"
	"testing"
	"time"
	"unsafe"
)

// One origin exists per destination at every node: a 5000-node mesh holds
// 25 million of them in a simulation. With room for three routes of 16
// bytes it takes 112,
// and it holds no pointer, so that the collector never scans a slab of
// them.
func TestOriginEntrySize(t *testing.T) {
	if s := unsafe.Sizeof(origin{}); s > 112 {
		t.Fatalf("origin takes %d bytes, want at most 112", s)
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[origin](), reflect.TypeFor[routeEntry]()} {
		if hasPointers(typ) {
			t.Fatalf("%v holds pointers", typ)
		}
	}
	if s := unsafe.Sizeof(routeEntry{}); s > 16 {
		t.Fatalf("routeEntry takes %d bytes, want at most 16", s)
	}
}

// What a received update reads of its origin's entry before it knows
// whether the route selected moves (handleUpdate, upsert) lies in its
// first 64 bytes: an entry then spans one or two cache lines of it, not
// two or three.
func TestOriginUpdateFieldsFirst(t *testing.T) {
	var o origin
	end := func(off, size uintptr) uintptr { return off + size }
	for name, e := range map[string]uintptr{
		"inl":         end(unsafe.Offsetof(o.inl), unsafe.Sizeof(o.inl)),
		"rtMetric":    end(unsafe.Offsetof(o.rtMetric), unsafe.Sizeof(o.rtMetric)),
		"selSlot":     end(unsafe.Offsetof(o.selSlot), unsafe.Sizeof(o.selSlot)),
		"attSeq":      end(unsafe.Offsetof(o.attSeq), unsafe.Sizeof(o.attSeq)),
		"nInl":        end(unsafe.Offsetof(o.nInl), 1),
		"rtReachable": end(unsafe.Offsetof(o.rtReachable), 1),
		"attValid":    end(unsafe.Offsetof(o.attValid), 1),
		"hasMore":     end(unsafe.Offsetof(o.hasMore), 1),
		"hasExt":      end(unsafe.Offsetof(o.hasExt), 1),
	} {
		if e > 64 {
			t.Errorf("origin.%s ends at byte %d, beyond the first 64", name, e)
		}
	}
}

// hasPointers reports whether a value of typ holds a pointer the collector
// would scan.
func hasPointers(typ reflect.Type) bool {
	switch typ.Kind() {
	case reflect.Pointer, reflect.String, reflect.Slice, reflect.Map, reflect.Chan, reflect.Func, reflect.Interface, reflect.UnsafePointer:
		return true
	case reflect.Array:
		return typ.Len() > 0 && hasPointers(typ.Elem())
	case reflect.Struct:
		for i := range typ.NumField() {
			if hasPointers(typ.Field(i).Type) {
				return true
			}
		}
	}
	return false
}

// A slab of table entries (no allocator header: they hold no pointer)
// fits the 8,192-byte size class with little left over: a slab just over
// a size class takes the next one.
func TestOriginSlabFillsItsSizeClass(t *testing.T) {
	size := originSlab * unsafe.Sizeof(origin{})
	if size > 8192 || size < 8192*9/10 {
		t.Fatalf("a slab of %d entries takes %d bytes, want 90-100 %% of 8192", originSlab, size)
	}
}

// A chunk of side entries, with the allocator's header, fits the
// 6,528-byte size class with little left over.
func TestSideChunkFillsItsSizeClass(t *testing.T) {
	size := sideChunk*unsafe.Sizeof(originSide{}) + 8
	if size > 6528 || size < 6528*9/10 {
		t.Fatalf("a chunk of %d side entries takes %d bytes, want 90-100 %% of 6528", sideChunk, size)
	}
}

// A cold start emits one or two events per destination at every node
// (153 MB at 1000 nodes before their fields were ordered by size).
func TestEventSize(t *testing.T) {
	if s := unsafe.Sizeof(Event{}); s > 80 {
		t.Fatalf("Event takes %d bytes, want at most 80", s)
	}
}

// Routes beyond the three held in the entry move out together and keep
// their order through removals, as when they all fit.
func TestOriginRoutesBeyondTheEntry(t *testing.T) {
	var nbs [5]neighbour
	e := &Engine{}
	e.side.add()
	e.side.add()
	for i := range nbs {
		nbs[i].slot = i
		e.held = append(e.held, &nbs[i])
	}
	o := &origin{id: 0}
	for i := range nbs {
		e.upsert(o, routeEntry{slot: uint16(i), metric: Metric(i)})
	}
	e.upsert(o, routeEntry{slot: 2, metric: 20}) // replaces, adds nothing
	if !e.removeRoute(o, &nbs[1]) || e.removeRoute(o, &nbs[1]) {
		t.Fatal("remove of a route held once did not succeed exactly once")
	}
	e.removeAt(o, 0)
	var got []Metric
	for _, r := range e.routes(o) {
		got = append(got, r.metric)
	}
	if len(got) != 3 || got[0] != 20 || got[1] != 3 || got[2] != 4 {
		t.Fatalf("metrics %v, want [20 3 4]", got)
	}
	if e.find(o, &nbs[4]) != 2 || e.find(o, &nbs[0]) != -1 {
		t.Fatalf("find: %d, %d; want 2, -1", e.find(o, &nbs[4]), e.find(o, &nbs[0]))
	}
	small := &origin{id: 1}
	e.upsert(small, routeEntry{slot: 0, metric: 1})
	e.upsert(small, routeEntry{slot: 1, metric: 2})
	e.removeAt(small, 0)
	if rs := e.routes(small); len(rs) != 1 || rs[0].slot != 1 || small.inl[1] != (routeEntry{}) {
		t.Fatalf("after removing the first of two: %+v (inl %+v)", rs, small.inl)
	}
}

// A route's expiry is a 32-bit count of milliseconds: it must still
// expire on time after the count wraps around (an engine up for 49
// days), and report when it expires exactly.
func TestRouteExpiryWrapsAround(t *testing.T) {
	const ms = time.Millisecond
	for _, now := range []time.Duration{0, 5 * ms, (1<<32 - 3) * ms, (1<<32 + 7) * ms, (3<<32 - 1) * ms} {
		var r routeEntry
		r.setExpiry(now, now+14*time.Second)
		if !r.expiring() || !r.hasSeqno() {
			t.Fatalf("now %v: route not expiring", now)
		}
		if at := r.expiresAt(now); at != now+14*time.Second {
			t.Fatalf("now %v: expires at %v, want %v", now, at, now+14*time.Second)
		}
		if r.expiredAt(now) || r.expiredAt(now+14*time.Second-ms) {
			t.Fatalf("now %v: expired early", now)
		}
		if !r.expiredAt(now+14*time.Second) || !r.expiredAt(now+20*time.Second) {
			t.Fatalf("now %v: not expired on time", now)
		}
	}
	// Rounded up to the millisecond, never down.
	var r routeEntry
	r.setExpiry(0, 1500*time.Microsecond)
	if r.expiredAt(time.Millisecond) || !r.expiredAt(2*time.Millisecond) {
		t.Fatal("an expiry between two ticks is not rounded up")
	}
}
