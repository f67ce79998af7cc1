package engine

// Lookup returns the function registered under name with Register, so that
// other packages (the sweep engine) call the same registry; ok is false
// when no function has that name.
func Lookup(name string) (fn any, ok bool) {
	registry.RLock()
	defer registry.RUnlock()
	f, ok := registry.m[name]
	if !ok {
		return nil, false
	}
	return f.fn.Interface(), true
}
