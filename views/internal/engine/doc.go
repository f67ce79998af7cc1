// Package engine is what runs on a views engine: the registry of functions
// callable by name (registry.go: Register, Find, Function.Call with the
// codec's conversions and Ref), the Context a function gets (its engine's
// identity, namespace and communicators, reached through Runner), the
// engine's namespace (namespace.go: dropped values kept until no task can
// see them) and output capture (stdcapture.go, output.go: the first and
// last MiB of each stream).
//
// views re-exports what users name (views.Register, views.Context, ...);
// the Engine's connection to the hub stays in views (engine.go).
//
// Usage:
//
//	engine.MustRegister("add", func(a, b int) int { return a + b })
//	fn, err := engine.Find("add")
//	out, err := fn.Call(engine.Bind(&engine.Context{Context: ctx}, runner), []any{1, 2})
//
// It imports the protocol and the codec, nothing else of views.
package engine
