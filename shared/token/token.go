// Package token makes and checks API tokens. Tokens are 256-bit random strings shown
// once; only their SHA-256 is stored. A fast hash is enough for secrets of that
// entropy (no dictionary to guess from), and it lets the lookup be a key read.
package token

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"time"

	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/ttlmap"
)

// Prefix starts every token Parley makes, so a leaked one is recognisable.
const Prefix = "prly_"

// Generate returns a new token and its stored form.
func Generate(name string, now time.Time) (string, message.Token) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	plain := Prefix + base64.RawURLEncoding.EncodeToString(b[:])
	return plain, message.Token{Hash: Hash(plain), Name: name, CreatedAt: now.UTC()}
}

// Hash is the stored form of a token: hex SHA-256.
func Hash(plain string) string {
	sum := sha256.Sum256([]byte(plain))
	return hex.EncodeToString(sum[:])
}

var errUnknown = &message.Error{Kind: message.Unauthorized, Code: "invalid_token", Message: "the token is not valid"}

// Static accepts one configured token, a backend token of the default channel: the
// local stack's PARLEY_TOKEN.
type Static struct{ hash [32]byte }

// NewStatic returns an authenticator for the token plain.
func NewStatic(plain string) *Static { return &Static{hash: sha256.Sum256([]byte(plain))} }

// Authenticate compares digests in constant time.
func (s *Static) Authenticate(ctx context.Context, plain string) (message.Token, error) {
	got := sha256.Sum256([]byte(plain))
	if subtle.ConstantTimeCompare(got[:], s.hash[:]) != 1 {
		return message.Token{}, errUnknown
	}
	return message.Token{Hash: hex.EncodeToString(got[:]), Name: "PARLEY_TOKEN", Channel: message.DefaultChannel, Scope: message.ScopeBackend}, nil
}

// Lookup finds a stored token by hash.
type Lookup interface {
	LookupToken(ctx context.Context, hash string) (message.Token, bool, error)
}

// Table accepts the tokens stored in a table. Valid tokens are remembered for TTL, so
// a warm function reads the table about once a minute per token, not once a message;
// a revoked token stops working within TTL.
type Table struct {
	lookup Lookup
	now    func() time.Time
	valid  *ttlmap.Map[message.Token] // by hash
}

// NewTable returns a table authenticator caching valid tokens for ttl.
func NewTable(lookup Lookup, ttl time.Duration) *Table {
	return &Table{lookup: lookup, now: time.Now, valid: ttlmap.New[message.Token](ttl)}
}

// Authenticate looks the token's hash up, through the cache.
func (t *Table) Authenticate(ctx context.Context, plain string) (message.Token, error) {
	h := Hash(plain)
	now := t.now()
	if tok, fresh, _ := t.valid.Get(h, now); fresh {
		return tok, nil
	}
	tok, found, err := t.lookup.LookupToken(ctx, h)
	if err != nil {
		return message.Token{}, err
	}
	// The key lookup matched the hash; compare again in constant time so a store that
	// matched loosely could never let a different token through.
	if !found || subtle.ConstantTimeCompare([]byte(tok.Hash), []byte(h)) != 1 {
		return message.Token{}, errUnknown
	}
	t.valid.Put(h, tok, now)
	return tok, nil
}

// Authenticator checks a token: Static, Table, or Either of them.
type Authenticator interface {
	Authenticate(ctx context.Context, plain string) (message.Token, error)
}

// Either accepts a token any of its authenticators accepts, asked in order: the local
// stack's PARLEY_TOKEN, then the tokens made for its channels.
type Either []Authenticator

// Authenticate implements Authenticator. A failure to tell (a store error) is
// returned only when no authenticator accepted the token.
func (e Either) Authenticate(ctx context.Context, plain string) (message.Token, error) {
	var failure error
	for _, a := range e {
		t, err := a.Authenticate(ctx, plain)
		if err == nil {
			return t, nil
		}
		if message.KindOf(err) != message.Unauthorized {
			failure = err
		}
	}
	if failure != nil {
		return message.Token{}, failure
	}
	return message.Token{}, errUnknown
}
