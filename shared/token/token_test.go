package token

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/message"
)

func TestGenerate(t *testing.T) {
	now := time.Date(2026, 11, 23, 1, 2, 3, 0, time.FixedZone("x", 3600))
	a, ta := Generate("ci", now)
	b, _ := Generate("ci", now)
	if a == b || !strings.HasPrefix(a, Prefix) || len(a) != len(Prefix)+43 {
		t.Errorf("tokens %q, %q: want distinct %s + 43 characters", a, b, Prefix)
	}
	if ta.Hash != Hash(a) || len(ta.Hash) != 64 || strings.Contains(ta.Hash, a) || ta.Name != "ci" || !ta.CreatedAt.Equal(now) || ta.CreatedAt.Location() != time.UTC {
		t.Errorf("stored form = %+v", ta)
	}
	if ta.ID() != ta.Hash[:12] {
		t.Errorf("ID = %s", ta.ID())
	}
}

func TestStatic(t *testing.T) {
	s := NewStatic("dev-token")
	if _, err := s.Authenticate(context.Background(), "dev-token"); err != nil {
		t.Errorf("the token: %v", err)
	}
	for _, bad := range []string{"", "dev-toke", "dev-token ", "DEV-TOKEN"} {
		if _, err := s.Authenticate(context.Background(), bad); message.KindOf(err) != message.Unauthorized {
			t.Errorf("%q: %v, want unauthorized", bad, err)
		}
	}
}

type lookup struct {
	tokens map[string]message.Token
	calls  int
	err    error
}

func (l *lookup) LookupToken(ctx context.Context, hash string) (message.Token, bool, error) {
	l.calls++
	if l.err != nil {
		return message.Token{}, false, l.err
	}
	t, ok := l.tokens[hash]
	return t, ok, nil
}

func TestTableCachesValidTokens(t *testing.T) {
	plain, tok := Generate("backend", time.Now())
	l := &lookup{tokens: map[string]message.Token{tok.Hash: tok}}
	tb := NewTable(l, time.Minute)
	now := time.Now()
	tb.now = func() time.Time { return now }
	for range 3 {
		if _, err := tb.Authenticate(context.Background(), plain); err != nil {
			t.Fatal(err)
		}
	}
	if l.calls != 1 {
		t.Errorf("%d lookups for 3 requests within a minute, want 1", l.calls)
	}
	delete(l.tokens, tok.Hash) // revoked
	if _, err := tb.Authenticate(context.Background(), plain); err != nil {
		t.Errorf("within the cache minute: %v", err)
	}
	now = now.Add(61 * time.Second)
	if _, err := tb.Authenticate(context.Background(), plain); message.KindOf(err) != message.Unauthorized {
		t.Errorf("revoked, after the cache minute: %v, want unauthorized", err)
	}
	if _, err := tb.Authenticate(context.Background(), "prly_unknown"); message.KindOf(err) != message.Unauthorized {
		t.Errorf("unknown: %v", err)
	}
	l.err = errors.New("dynamodb down")
	if _, err := tb.Authenticate(context.Background(), "prly_other"); err == nil || message.KindOf(err) == message.Unauthorized {
		t.Errorf("store failure = %v, want an error that is not 'unauthorized'", err)
	}
}

func TestEitherAcceptsWhatAnyAccepts(t *testing.T) {
	store := &lookup{tokens: map[string]message.Token{}}
	plain, stored := Generate("backend", time.Now())
	stored.Channel, stored.Scope = "ch_a", message.ScopeBot
	store.tokens[stored.Hash] = stored
	e := Either{NewStatic("dev-token"), NewTable(store, time.Minute)}
	if tok, err := e.Authenticate(context.Background(), "dev-token"); err != nil || tok.Channel != message.DefaultChannel || tok.Scope != message.ScopeBackend {
		t.Errorf("the static token = %+v, %v; want the default channel's backend token", tok, err)
	}
	if tok, err := e.Authenticate(context.Background(), plain); err != nil || tok.Channel != "ch_a" || tok.Scope != message.ScopeBot {
		t.Errorf("a stored token = %+v, %v; want its channel and scope", tok, err)
	}
	if _, err := e.Authenticate(context.Background(), "nope"); message.KindOf(err) != message.Unauthorized {
		t.Errorf("an unknown token = %v, want unauthorized", err)
	}
	store.err = errors.New("dynamodb down")
	if _, err := e.Authenticate(context.Background(), "nope"); err == nil || message.KindOf(err) == message.Unauthorized {
		t.Errorf("with the store down = %v, want the store's error, not unauthorized", err)
	}
	if _, err := e.Authenticate(context.Background(), "dev-token"); err != nil {
		t.Errorf("with the store down the static token = %v, want accepted", err)
	}
}
