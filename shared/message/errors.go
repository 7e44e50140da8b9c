package message

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an error so each transport can map it to a status in one place.
type Kind int

// The kinds, append-only.
const (
	Internal         Kind = iota // a bug or an unexpected failure
	Invalid                      // the request is malformed or a field is wrong
	Unauthorized                 // missing, malformed or unknown token
	NotFound                     // no such route or resource
	MethodNotAllowed             // the route exists for another method
	Conflict                     // messageId reused or still in progress
	TooLarge                     // body over the limit
	BotFailed                    // the bot failed or timed out
	Unavailable                  // a store or queue failed; a retry may succeed
	Forbidden                    // the token is valid but may not do this
)

// Error is the one error type the API answers with. Code is a stable machine code,
// Message a human sentence, Field the request field at fault when there is one.
type Error struct {
	Kind       Kind
	Code       string
	Message    string
	Field      string
	RetryAfter time.Duration // sent as Retry-After with Conflict and Unavailable
	Err        error         // the cause, logged but never shown to the caller
}

func (e *Error) Error() string {
	s := e.Code + ": " + e.Message
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Invalidf returns an Invalid error naming field.
func Invalidf(field, code, format string, args ...any) *Error {
	return &Error{Kind: Invalid, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// KindOf returns the kind of err, Internal when err is not an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// ErrGone is returned by stores when an accepted message's record is no longer there:
// its conversation was erased.
var ErrGone = errors.New("record gone: the conversation was erased")

// BotBusyError says the bot's provider is rate limiting or overloaded: the caller
// should retry the same message later (503), unlike a bot failure (502).
type BotBusyError struct {
	RetryAfter time.Duration // 0 when the provider did not say
	Err        error
}

func (e *BotBusyError) Error() string { return "bot busy: " + e.Err.Error() }

func (e *BotBusyError) Unwrap() error { return e.Err }

// ErrCursor is what a store returns for a history cursor it did not make.
var ErrCursor = Invalidf("cursor", "invalid_cursor", "cursor is not one this API returned")

// Errors of stores that keep channels and tokens.
var (
	ErrExists   = errors.New("already exists")
	ErrNotFound = errors.New("not found")
)
