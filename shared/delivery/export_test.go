package delivery

// SetJitter fixes the jitter, so tests can assert exact delays.
func SetJitter(h *Handler, f func() float64) { h.jitter = f }
