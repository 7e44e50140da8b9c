package channel

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/testkit/fakeclock"
)

// store is a channel store that counts its reads and fails when told.
type store struct {
	mu       sync.Mutex
	channels map[string]message.Channel
	err      error
	reads    int
}

func (s *store) GetChannel(ctx context.Context, id string) (message.Channel, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.err != nil {
		return message.Channel{}, false, s.err
	}
	c, ok := s.channels[id]
	return c, ok, nil
}

func (s *store) put(c message.Channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.channels[c.ID] = c
}

func (s *store) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.channels, id)
}

func (s *store) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

func (s *store) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

var (
	start    = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	settings = delivery.Settings{Policy: delivery.DefaultPolicy, SendTimeout: 7 * time.Second, BotTimeout: 20 * time.Second}
)

func spec(id string, updated time.Time) message.Channel {
	return message.Channel{ID: id, Name: id, ResponseURL: "https://" + id + ".example/hook", SigningSecrets: "whsec_cmVnaXN0cnktdGVzdC1zaWduaW5nLWtleS0wMTIzNDU2Nzg5",
		Bot: message.BotSpec{Kind: "echo"}, CreatedAt: start, UpdatedAt: updated}
}

func newRegistry(t *testing.T, channels ...message.Channel) (*Registry, *store, *fakeclock.Clock, *delivery.Channel) {
	t.Helper()
	st := &store{channels: map[string]message.Channel{}}
	for _, c := range channels {
		st.put(c)
	}
	clk := fakeclock.New(start)
	def := &delivery.Channel{ID: message.DefaultChannel}
	r := NewRegistry(def, st, Builder{Settings: settings})
	r.now = clk.Now
	return r, st, clk, def
}

// get asks for a channel and checks how many store reads that made in all.
func get(t *testing.T, r *Registry, st *store, id string, wantReads int) *delivery.Channel {
	t.Helper()
	ch, err := r.Channel(context.Background(), id)
	if err != nil {
		t.Fatalf("Channel %s: %v", id, err)
	}
	if ch == nil || ch.ID != id {
		t.Fatalf("Channel %s: got %+v", id, ch)
	}
	if got := st.count(); got != wantReads {
		t.Errorf("Channel %s: got %d store reads in all, want %d", id, got, wantReads)
	}
	return ch
}

func TestDefaultChannelIsNotRead(t *testing.T) {
	r, st, _, def := newRegistry(t)
	for range 3 {
		if got := get(t, r, st, message.DefaultChannel, 0); got != def {
			t.Errorf("got %p, want the default channel %p", got, def)
		}
	}
	// Without a store, the default channel is the only one.
	alone := NewRegistry(def, nil, Builder{Settings: settings})
	if got, err := alone.Channel(context.Background(), message.DefaultChannel); err != nil || got != def {
		t.Errorf("without a store: got %p, %v; want the default channel", got, err)
	}
	if _, err := alone.Channel(context.Background(), "ch_a"); !errors.Is(err, delivery.ErrNoChannel) {
		t.Errorf("another channel without a store: got %v, want ErrNoChannel", err)
	}
}

func TestChannelIsCached(t *testing.T) {
	r, st, clk, _ := newRegistry(t, spec("ch_a", start), spec("ch_b", start))
	first := get(t, r, st, "ch_a", 1)
	if got := get(t, r, st, "ch_a", 1); got != first {
		t.Errorf("second call: got another build, want the cached one")
	}
	clk.Advance(CacheTTL - time.Nanosecond)
	if got := get(t, r, st, "ch_a", 1); got != first {
		t.Errorf("just before the TTL: got another build, want the cached one")
	}
	// Each channel is cached on its own.
	b := get(t, r, st, "ch_b", 2)
	if b == first {
		t.Errorf("ch_b is ch_a's build")
	}
}

func TestUpdateTakesEffectAfterTheTTL(t *testing.T) {
	r, st, clk, _ := newRegistry(t, spec("ch_a", start))
	first := get(t, r, st, "ch_a", 1)
	if first.Policy != settings.Policy {
		t.Fatalf("policy: got %+v, want the deployment's", first.Policy)
	}
	updated := spec("ch_a", start.Add(time.Second))
	updated.Retry = &message.RetrySpec{MinDelay: message.Duration(time.Second), MaxDelay: message.Duration(time.Minute), MaxAttempts: 3}
	st.put(updated)

	clk.Advance(CacheTTL / 2)
	if got := get(t, r, st, "ch_a", 1); got != first {
		t.Errorf("within the TTL: got the update, want the cached channel")
	}
	clk.Advance(CacheTTL / 2)
	got := get(t, r, st, "ch_a", 2)
	if got == first || got.Policy.MaxAttempts != 3 {
		t.Errorf("after the TTL: got max attempts %d, want the update's 3", got.Policy.MaxAttempts)
	}
	// The new build is cached for a TTL again.
	clk.Advance(CacheTTL - time.Nanosecond)
	if again := get(t, r, st, "ch_a", 2); again != got {
		t.Errorf("after the update, within the TTL: got another build")
	}
}

func TestUnchangedChannelIsNotRebuilt(t *testing.T) {
	r, st, clk, _ := newRegistry(t, spec("ch_a", start))
	first := get(t, r, st, "ch_a", 1)
	for i := range 3 {
		clk.Advance(CacheTTL)
		if got := get(t, r, st, "ch_a", 2+i); got != first {
			t.Errorf("after TTL %d: got a new build of an unchanged channel, want the cached one", i+1)
		}
	}
	// The read renewed the cache: no read until a TTL has passed again.
	clk.Advance(CacheTTL - time.Nanosecond)
	get(t, r, st, "ch_a", 4)
}

func TestDeletedChannel(t *testing.T) {
	r, st, clk, _ := newRegistry(t, spec("ch_a", start))
	first := get(t, r, st, "ch_a", 1)
	st.remove("ch_a")
	if got := get(t, r, st, "ch_a", 1); got != first {
		t.Errorf("deleted, within the TTL: got another, want the cached one")
	}
	clk.Advance(CacheTTL)
	if _, err := r.Channel(context.Background(), "ch_a"); !errors.Is(err, delivery.ErrNoChannel) {
		t.Fatalf("deleted, after the TTL: got %v, want ErrNoChannel", err)
	}
	// Made again with the same settings and time: built again, not the old build.
	st.put(spec("ch_a", start))
	if got := get(t, r, st, "ch_a", 3); got == first {
		t.Errorf("made again: got the deleted channel's build")
	}
	if _, err := r.Channel(context.Background(), "ch_never"); !errors.Is(err, delivery.ErrNoChannel) {
		t.Errorf("a channel that never was: got %v, want ErrNoChannel", err)
	}
}

func TestStoreFailure(t *testing.T) {
	r, st, clk, _ := newRegistry(t, spec("ch_a", start), spec("ch_b", start))
	first := get(t, r, st, "ch_a", 1)
	down := errors.New("dynamodb: throttled")
	st.fail(down)
	clk.Advance(CacheTTL)
	if got := get(t, r, st, "ch_a", 2); got != first {
		t.Errorf("store down, cached channel: got another, want the cached one")
	}
	if _, err := r.Channel(context.Background(), "ch_b"); !errors.Is(err, down) || errors.Is(err, delivery.ErrNoChannel) {
		t.Errorf("store down, channel never read: got %v, want the store's error", err)
	}
	st.fail(nil)
	if got := get(t, r, st, "ch_a", 4); got != first {
		t.Errorf("store back: got a new build of an unchanged channel")
	}
	get(t, r, st, "ch_b", 5)
}

func TestBadChannel(t *testing.T) {
	noIntents := spec("ch_rules", start)
	noIntents.Bot = message.BotSpec{Kind: "rules", Rules: []byte(`{"intents": []}`)}
	unknownField := spec("ch_rules2", start)
	unknownField.Bot = message.BotSpec{Kind: "rules", Rules: []byte(`{"intents": [{"name": "x", "keywords": ["x"], "answer": "y"}]}`)}
	secret := spec("ch_llm", start)
	secret.Bot = message.BotSpec{Kind: "llm", LLM: &message.LLMSpec{Model: "m", APIKeySecret: "acme-llm-key"}}
	provider := spec("ch_llm2", start)
	provider.Bot = message.BotSpec{Kind: "llm", LLM: &message.LLMSpec{Model: "m", Provider: "acme-ai"}}
	url := spec("ch_url", start)
	url.ResponseURL = "localhost:9000"
	badSecret := spec("ch_secret", start)
	badSecret.SigningSecrets = "whsec_***"
	retry := spec("ch_retry", start)
	retry.Retry = &message.RetrySpec{MinDelay: message.Duration(time.Hour), MaxDelay: message.Duration(12 * time.Hour), MaxAttempts: 40}

	for _, c := range []struct {
		ch    message.Channel
		field string
	}{
		{noIntents, "bot.rules"},
		{unknownField, "bot.rules"},
		{secret, "bot.llm.apiKeySecret"},
		{provider, "bot.llm"},
		{url, "responseUrl"},
		{badSecret, "signingSecrets"},
		{retry, "retry"},
	} {
		t.Run(c.ch.ID, func(t *testing.T) {
			r, st, _, _ := newRegistry(t, c.ch)
			_, err := r.Channel(context.Background(), c.ch.ID)
			if err == nil || !strings.Contains(err.Error(), c.ch.ID) || !strings.Contains(err.Error(), c.field+":") {
				t.Fatalf("got %v, want an error naming channel %s and field %s", err, c.ch.ID, c.field)
			}
			if errors.Is(err, delivery.ErrNoChannel) {
				t.Errorf("got ErrNoChannel for a channel that exists")
			}
			// Fixed, it is built at once: a failed build is not cached.
			st.put(spec(c.ch.ID, start.Add(time.Second)))
			get(t, r, st, c.ch.ID, 2)
		})
	}
}

// Jobs of many conversations ask for channels at once.
func TestConcurrentCallers(t *testing.T) {
	r, st, clk, _ := newRegistry(t, spec("ch_a", start), spec("ch_b", start))
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := []string{"ch_a", "ch_b", message.DefaultChannel}[i%3]
			if i%50 == 0 {
				clk.Advance(CacheTTL)
			}
			ch, err := r.Channel(context.Background(), id)
			if err == nil && ch.ID != id {
				err = errors.New("got channel " + ch.ID + " for " + id)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := st.count(); n < 2 {
		t.Errorf("got %d store reads, want at least one per channel", n)
	}
}
