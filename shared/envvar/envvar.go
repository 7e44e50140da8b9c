// Package envvar reads typed configuration through a getenv function and collects
// every bad value, so a process reports all of its configuration problems at once
// instead of one per restart.
package envvar

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Reader reads variables and remembers what was wrong with them.
type Reader struct {
	getenv func(string) string
	errs   []error
}

// New returns a Reader over getenv (os.Getenv, or a map in tests).
func New(getenv func(string) string) *Reader { return &Reader{getenv: getenv} }

// String returns the variable, or def when it is unset or empty.
func (r *Reader) String(name, def string) string {
	if v := r.getenv(name); v != "" {
		return v
	}
	return def
}

// Lookup returns the variable as it is set, "" when unset.
func (r *Reader) Lookup(name string) string { return r.getenv(name) }

// Required returns the variable and notes an error when it is unset.
func (r *Reader) Required(name string) string {
	v := r.getenv(name)
	if v == "" {
		r.errs = append(r.errs, fmt.Errorf("%s is not set", name))
	}
	return v
}

// Duration returns the variable as a Go duration within [lo, hi], or def when unset.
func (r *Reader) Duration(name string, def, lo, hi time.Duration) time.Duration {
	v := r.getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		r.errs = append(r.errs, fmt.Errorf("%s=%q: want a Go duration from %s to %s, such as 5s or 2m", name, v, lo, hi))
		return def
	}
	return d
}

// Int returns the variable as a whole number within [lo, hi], or def when unset.
func (r *Reader) Int(name string, def, lo, hi int) int {
	v := r.getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		r.errs = append(r.errs, fmt.Errorf("%s=%q: want a whole number from %d to %d", name, v, lo, hi))
		return def
	}
	return n
}

// Float returns the variable as a number within [lo, hi], or nil when unset.
func (r *Reader) Float(name string, lo, hi float64) *float64 {
	v := r.getenv(name)
	if v == "" {
		return nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < lo || f > hi {
		r.errs = append(r.errs, fmt.Errorf("%s=%q: want a number from %g to %g", name, v, lo, hi))
		return nil
	}
	return &f
}

// Float64 returns the variable as a number within [lo, hi], or def when unset.
func (r *Reader) Float64(name string, def, lo, hi float64) float64 {
	if f := r.Float(name, lo, hi); f != nil {
		return *f
	}
	return def
}

// Check notes err, if any, among the problems.
func (r *Reader) Check(err error) {
	if err != nil {
		r.errs = append(r.errs, err)
	}
}

// Err joins every problem noted, nil when there were none.
func (r *Reader) Err() error { return errors.Join(r.errs...) }
