package policy

// InputError is a request pdguard can never decide as it is (an image reference that
// does not parse, a product container named twice): retrying does not help, fixing the
// object does.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }

func (e *InputError) Unwrap() error { return e.Err }
