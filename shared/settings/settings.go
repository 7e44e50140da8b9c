// Package settings declares every setting of Parley once: its environment variable,
// its type, default and bounds, which parts read it, its deploy-time name (the CDK
// context key and the SAM parameter) and what it means. The Lambda mains, the local
// stack and the CDK app read settings through these declarations; the README's
// configuration table and template.yaml's parameters are generated from them; and a
// test fails when a part reads a variable that is not declared for it.
package settings

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/shared/envvar"
)

// Part is a part of Parley that reads settings.
type Part uint8

// The parts.
const (
	Inbound  Part = 1 << iota // the inbound Lambda
	Delivery                  // the delivery Lambda
	Local                     // the local stack (make run)
	Deploy                    // the deployment only: the CDK app and template.yaml
)

// Kind is a setting's type.
type Kind int

// The kinds.
const (
	String Kind = iota
	Duration
	Int
	Float
	URL
	Enum
)

// Setting is one declared setting.
type Setting struct {
	Env         string // the environment variable; "" for a deploy-only setting
	Kind        Kind
	Default     string // "" for none
	Min, Max    string // bounds, in the kind's text
	Values      []string
	Parts       Part
	Context     string // the CDK context key; "" when not set at deploy time
	Parameter   string // the SAM parameter; "" when SAM does not offer it
	Description string
	// Bot names the only bot that uses this setting ("" for all): given to another
	// bot it does nothing, which is worth a warning.
	Bot string
}

// Reads says whether part p reads s.
func (s *Setting) Reads(p Part) bool { return s.Parts&p != 0 }

// Duration reads s (a Duration) through r within its bounds.
func (s *Setting) Duration(r *envvar.Reader) time.Duration {
	return r.Duration(s.Env, mustDuration(s.Default), mustDuration(s.Min), mustDuration(s.Max))
}

// Int reads s (an Int).
func (s *Setting) Int(r *envvar.Reader) int {
	return r.Int(s.Env, mustInt(s.Default), mustInt(s.Min), mustInt(s.Max))
}

// Float reads s (a Float); nil when unset and without a default.
func (s *Setting) Float(r *envvar.Reader) *float64 {
	f := r.Float(s.Env, mustFloat(s.Min), mustFloat(s.Max))
	if f == nil && s.Default != "" {
		d := mustFloat(s.Default)
		return &d
	}
	return f
}

// String reads s (a String, URL or Enum); an Enum outside its values is noted.
func (s *Setting) String(r *envvar.Reader) string {
	v := r.String(s.Env, s.Default)
	if s.Kind == Enum && v != "" && !contains(s.Values, v) {
		r.Check(fmt.Errorf("%s=%q: want one of %s", s.Env, v, strings.Join(s.Values, ", ")))
	}
	if s.Kind == URL && v != "" && !isHTTPURL(v) {
		r.Check(fmt.Errorf("%s=%q: want an absolute http or https URL", s.Env, v))
	}
	return v
}

// Required reads s and notes when it is unset.
func (s *Setting) Required(r *envvar.Reader) string {
	if r.Lookup(s.Env) == "" {
		return r.Required(s.Env)
	}
	return s.String(r)
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func isHTTPURL(v string) bool {
	return (strings.HasPrefix(v, "http://") || strings.HasPrefix(v, "https://")) && len(strings.SplitN(v, "/", 4)) >= 3 && strings.SplitN(v, "/", 4)[2] != ""
}

func mustDuration(s string) time.Duration {
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		panic("settings: bad duration " + s)
	}
	return d
}

func mustInt(s string) int {
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		panic("settings: bad int " + s)
	}
	return n
}

func mustFloat(s string) float64 {
	if s == "" {
		return 0
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		panic("settings: bad float " + s)
	}
	return f
}

// Lookup finds a declared setting by its environment variable.
func Lookup(env string) (*Setting, bool) {
	for _, s := range All {
		if s.Env == env {
			return s, true
		}
	}
	return nil, false
}
