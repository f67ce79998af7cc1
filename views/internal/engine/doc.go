// Package engine is what runs on a views engine: its connection to the hub
// (engine.go: Serve registers, then a reader handles control frames at
// once while a worker runs tasks in arrival order and sends results back,
// with large arrays on the bulk path), the registry of functions
// callable by name (registry.go: Register, Find, Function.Call with the
// codec's conversions and Ref), the Context a function gets (its engine's
// identity, namespace and communicators, reached through Runner), the
// engine's namespace (namespace.go: dropped values kept until no task can
// see them) and output capture (stdcapture.go, output.go: the first and
// last MiB of each stream).
//
// views re-exports what users name (views.Register, views.Context,
// views.ServeEngine, views.EngineConfig, ...).
//
// Usage:
//
//	engine.MustRegister("add", func(a, b int) int { return a + b })
//	fn, err := engine.Find("add")
//	out, err := fn.Call(engine.Bind(&engine.Context{Context: ctx}, runner), []any{1, 2})
//
// It imports the protocol, the bulk path and the codec, nothing else of
// views.
package engine
