package pdguardproc

// PID is the server process's id, 0 before it started; load tools read its memory and
// pin it to a CPU.
func (s *Server) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}
