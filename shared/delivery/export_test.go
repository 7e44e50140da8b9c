package delivery

// SetCrash makes h call crash between the steps of a job, as a kill would land there.
func SetCrash(h *Handler, crash func(step string) error) { h.crash = crash }
