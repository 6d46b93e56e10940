package quic

// A minimal stand-in for the parts of testify's require used by upstream's
// frame_sorter_test.go, so that file runs without testify's dependencies.

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

type requireStandIn struct{}

var require requireStandIn

// newUpstreamFrameSorter returns a frame sorter that keeps upstream's entry
// layout: small frames are not copied or merged.
func newUpstreamFrameSorter() *frameSorter {
	s := newFrameSorter()
	s.copySmall = false
	return s
}

func requireEqualValues(a, b any) bool {
	if ab, ok := a.([]byte); ok {
		if bb, ok := b.([]byte); ok {
			return bytes.Equal(ab, bb)
		}
	}
	return reflect.DeepEqual(a, b)
}

func requireIsNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Chan, reflect.Func, reflect.Interface, reflect.Map, reflect.Pointer, reflect.Slice:
		return rv.IsNil()
	}
	return false
}

func requireNumber(v any) float64 {
	rv := reflect.ValueOf(v)
	switch {
	case rv.CanInt():
		return float64(rv.Int())
	case rv.CanUint():
		return float64(rv.Uint())
	case rv.CanFloat():
		return rv.Float()
	}
	panic("not a number")
}

func (requireStandIn) Equal(t testing.TB, expected, actual any, _ ...any) {
	t.Helper()
	if !requireEqualValues(expected, actual) {
		t.Fatalf("not equal:\nexpected: %v\nactual:   %v", expected, actual)
	}
}

func (requireStandIn) True(t testing.TB, v bool, _ ...any) {
	t.Helper()
	if !v {
		t.Fatal("should be true")
	}
}

func (requireStandIn) False(t testing.TB, v bool, _ ...any) {
	t.Helper()
	if v {
		t.Fatal("should be false")
	}
}

func (requireStandIn) NoError(t testing.TB, err error, _ ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func (requireStandIn) ErrorIs(t testing.TB, err, target error, _ ...any) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v is not %v", err, target)
	}
}

func (requireStandIn) EqualError(t testing.TB, err error, msg string, _ ...any) {
	t.Helper()
	if err == nil || err.Error() != msg {
		t.Fatalf("error %v, want %q", err, msg)
	}
}

func (requireStandIn) Nil(t testing.TB, v any, _ ...any) {
	t.Helper()
	if !requireIsNil(v) {
		t.Fatalf("should be nil: %v", v)
	}
}

func (requireStandIn) NotNil(t testing.TB, v any, _ ...any) {
	t.Helper()
	if requireIsNil(v) {
		t.Fatal("should not be nil")
	}
}

func (requireStandIn) Zero(t testing.TB, v any, _ ...any) {
	t.Helper()
	if v != nil && !reflect.ValueOf(v).IsZero() {
		t.Fatalf("should be zero: %v", v)
	}
}

func (requireStandIn) NotEmpty(t testing.TB, v any, _ ...any) {
	t.Helper()
	if v == nil || reflect.ValueOf(v).Len() == 0 {
		t.Fatal("should not be empty")
	}
}

func (requireStandIn) Len(t testing.TB, v any, n int, _ ...any) {
	t.Helper()
	if l := reflect.ValueOf(v).Len(); l != n {
		t.Fatalf("length %d, want %d", l, n)
	}
}

func (requireStandIn) Contains(t testing.TB, m, key any, _ ...any) {
	t.Helper()
	rv := reflect.ValueOf(m)
	if rv.Kind() != reflect.Map || !rv.MapIndex(reflect.ValueOf(key)).IsValid() {
		t.Fatalf("%v does not contain %v", m, key)
	}
}

func (requireStandIn) Less(t testing.TB, a, b any, _ ...any) {
	t.Helper()
	if !(requireNumber(a) < requireNumber(b)) {
		t.Fatalf("%v is not less than %v", a, b)
	}
}

func (requireStandIn) LessOrEqual(t testing.TB, a, b any, _ ...any) {
	t.Helper()
	if !(requireNumber(a) <= requireNumber(b)) {
		t.Fatalf("%v is not less than or equal to %v", a, b)
	}
}
