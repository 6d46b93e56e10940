package links

import "context"

// FeatureStatic is the hello feature bit a dialler sets on a link it keeps
// as static (configured by the operator and redialled whenever it is down),
// so that the acceptor can tell it from a link discovery made. It is a
// claim, not a proof: the acceptor decides how many such claims it honours.
const FeatureStatic uint64 = 1 << 0

type staticKey struct{}

// WithStatic marks the dials made with ctx as static links: their hello
// carries FeatureStatic. Keep marks its dials itself.
func WithStatic(ctx context.Context) context.Context {
	return context.WithValue(ctx, staticKey{}, true)
}

// IsStatic reports whether ctx marks a static dial (see WithStatic).
func IsStatic(ctx context.Context) bool {
	v, _ := ctx.Value(staticKey{}).(bool)
	return v
}
