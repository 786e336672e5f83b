package main

import "fmt"

// Exit codes shared by the offline commands: 0 allowed (or Succeeded), 1 denied (or any
// other verdict), 2 bad input.
const (
	exitDenied   = 1
	exitBadInput = 2
)

// exitCodeError carries the process exit code out of a command's RunE so the
// commands stay testable without os.Exit: main prints Err, when set, on stderr
// and exits with Code. A verdict the command already printed has no Err.
type exitCodeError struct {
	Code int
	Err  error
}

func (e *exitCodeError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit code %d", e.Code)
	}
	return e.Err.Error()
}

func (e *exitCodeError) Unwrap() error { return e.Err }

// badInput marks an error as the user's input being wrong (exit code 2).
func badInput(err error) error { return &exitCodeError{Code: exitBadInput, Err: err} }
