package webhook_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/webhook"
)

// The published test vector of the Standard Webhooks reference libraries
// (standard-webhooks/standard-webhooks, libraries/go/webhook_test.go, TestWebhookSign).
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// A second secret for rotation tests: 32 bytes, as a sender would generate.
var otherSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("parley rotation test secret 0032"))

// specSign is written from the Standard Webhooks specification alone, not from this
// package: HMAC-SHA256 keyed with the base64-decoded secret (after "whsec_") over
// "{id}.{timestamp}.{body}", base64 (standard alphabet, padded), prefixed "v1,".
func specSign(t *testing.T, secret, id, timestamp string, body []byte) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatalf("test secret: %v", err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + timestamp + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// specVerify is the receiver's check from the specification: one of the
// space-separated entries of webhook-signature equals what secret gives.
func specVerify(t *testing.T, secret string, h http.Header, body []byte) bool {
	t.Helper()
	want := specSign(t, secret, h.Get("webhook-id"), h.Get("webhook-timestamp"), body)
	for _, entry := range strings.Split(h.Get("webhook-signature"), " ") {
		if hmac.Equal([]byte(entry), []byte(want)) {
			return true
		}
	}
	return false
}

func vectorHeader() http.Header {
	h := http.Header{}
	h.Set("webhook-id", vectorID)
	h.Set("webhook-timestamp", strconv.Itoa(vectorTimestamp))
	h.Set("webhook-signature", vectorSignature)
	return h
}

func mustSecrets(t *testing.T, s string) [][]byte {
	t.Helper()
	keys, err := webhook.ParseSecrets(s)
	if err != nil {
		t.Fatalf("ParseSecrets: %v", err)
	}
	return keys
}

func TestSpecTestVector(t *testing.T) {
	// The independent verifier first: if it disagrees with the published answer,
	// every test that relies on it proves nothing.
	if got := specSign(t, vectorSecret, vectorID, strconv.Itoa(vectorTimestamp), []byte(vectorBody)); got != vectorSignature {
		t.Fatalf("independent signer: got %s, want %s", got, vectorSignature)
	}

	s, err := webhook.NewSigner(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Sign(vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorBody)); got != vectorSignature {
		t.Errorf("Sign: got %s, want %s", got, vectorSignature)
	}
	// The prefix is optional, as in the reference libraries.
	s, err = webhook.NewSigner(strings.TrimPrefix(vectorSecret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Sign(vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorBody)); got != vectorSignature {
		t.Errorf("Sign without prefix: got %s, want %s", got, vectorSignature)
	}
	if err := webhook.Verify(mustSecrets(t, vectorSecret), vectorHeader(), []byte(vectorBody), 5*time.Minute, time.Unix(vectorTimestamp, 0)); err != nil {
		t.Errorf("Verify of the published vector: %v", err)
	}
}

func TestSignRotation(t *testing.T) {
	s, err := webhook.NewSigner(vectorSecret + " " + otherSecret)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(vectorTimestamp, 0)
	body := []byte(vectorBody)
	h := vectorHeader()
	h.Set("webhook-signature", s.Sign(vectorID, ts, body))

	if got := strings.Count(h.Get("webhook-signature"), "v1,"); got != 2 {
		t.Fatalf("signatures: got %d in %q, want 2", got, h.Get("webhook-signature"))
	}
	if got, want := strings.Split(h.Get("webhook-signature"), " ")[0], vectorSignature; got != want {
		t.Errorf("first signature: got %s, want %s (the order of the secrets)", got, want)
	}
	for i, secret := range []string{vectorSecret, otherSecret} {
		if !specVerify(t, secret, h, body) {
			t.Errorf("independent verifier: no signature for secret %d", i+1)
		}
		if err := webhook.Verify(mustSecrets(t, secret), h, body, 0, ts); err != nil {
			t.Errorf("Verify with one of the two secrets: %v", err)
		}
	}
	tampered := append(bytes.Clone(body[:len(body)-1]), ' ', '}')
	if specVerify(t, vectorSecret, h, tampered) || specVerify(t, otherSecret, h, tampered) {
		t.Error("independent verifier accepted a tampered body")
	}
	if err := webhook.Verify(mustSecrets(t, vectorSecret+" "+otherSecret), h, tampered, 0, ts); !errors.Is(err, webhook.ErrSignature) {
		t.Errorf("Verify of a tampered body: got %v, want ErrSignature", err)
	}
}

func TestSignNil(t *testing.T) {
	s, err := webhook.NewSigner("  ")
	if s != nil || err != nil {
		t.Fatalf("NewSigner of blanks: got %v, %v, want nil, nil", s, err)
	}
	if got := s.Sign("id", time.Now(), nil); got != "" {
		t.Errorf("nil Signer: got %q, want empty", got)
	}
}

func TestVerify(t *testing.T) {
	at := time.Unix(vectorTimestamp, 0)
	body := []byte(vectorBody)
	with := func(name, value string) http.Header {
		h := vectorHeader()
		if value == "" {
			h.Del(name)
		} else {
			h.Set(name, value)
		}
		return h
	}
	tests := []struct {
		name      string
		secrets   string
		h         http.Header
		body      []byte
		tolerance time.Duration
		now       time.Time
		want      error // nil, a sentinel, or errAny
	}{
		{"valid", vectorSecret, vectorHeader(), body, 5 * time.Minute, at, nil},
		{"valid, second of two secrets", otherSecret + " " + vectorSecret, vectorHeader(), body, 5 * time.Minute, at, nil},
		{"valid among junk entries", vectorSecret, with("webhook-signature", "v1,Zm9v v2,abc ,, v1 "+vectorSignature+" v1a,xyz"), body, 5 * time.Minute, at, nil},
		{"at the edge of the window", vectorSecret, vectorHeader(), body, 5 * time.Minute, at.Add(5 * time.Minute), nil},
		{"zero tolerance means the default", vectorSecret, vectorHeader(), body, 0, at.Add(4 * time.Minute), nil},
		{"old timestamp", vectorSecret, vectorHeader(), body, 5 * time.Minute, at.Add(5*time.Minute + time.Second), webhook.ErrTimestamp},
		{"old timestamp, default tolerance", vectorSecret, vectorHeader(), body, 0, at.Add(10 * time.Minute), webhook.ErrTimestamp},
		{"future timestamp", vectorSecret, vectorHeader(), body, 5 * time.Minute, at.Add(-6 * time.Minute), webhook.ErrTimestamp},
		{"timestamp not a number", vectorSecret, with("webhook-timestamp", "1614265330.5"), body, 5 * time.Minute, at, webhook.ErrTimestamp},
		{"timestamp max int64", vectorSecret, with("webhook-timestamp", "9223372036854775807"), body, 5 * time.Minute, at, webhook.ErrTimestamp},
		{"timestamp min int64", vectorSecret, with("webhook-timestamp", "-9223372036854775808"), body, 5 * time.Minute, at, webhook.ErrTimestamp},
		{"timestamp is signed", vectorSecret, with("webhook-timestamp", strconv.Itoa(vectorTimestamp+1)), body, 5 * time.Minute, at, webhook.ErrSignature},
		{"id is signed", vectorSecret, with("webhook-id", vectorID+"x"), body, 5 * time.Minute, at, webhook.ErrSignature},
		{"tampered body", vectorSecret, vectorHeader(), []byte(`{"test": 2432232315}`), 5 * time.Minute, at, webhook.ErrSignature},
		{"wrong secret", otherSecret, vectorHeader(), body, 5 * time.Minute, at, webhook.ErrSignature},
		{"other scheme only", vectorSecret, with("webhook-signature", "v2,"+strings.TrimPrefix(vectorSignature, "v1,")), body, 5 * time.Minute, at, webhook.ErrSignature},
		{"missing id", vectorSecret, with("webhook-id", ""), body, 5 * time.Minute, at, webhook.ErrMissingHeader},
		{"missing timestamp", vectorSecret, with("webhook-timestamp", ""), body, 5 * time.Minute, at, webhook.ErrMissingHeader},
		{"missing signature", vectorSecret, with("webhook-signature", ""), body, 5 * time.Minute, at, webhook.ErrMissingHeader},
		{"no secrets", "", vectorHeader(), body, 5 * time.Minute, at, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := webhook.Verify(mustSecrets(t, tt.secrets), tt.h, tt.body, tt.tolerance, tt.now)
			switch {
			case tt.want == nil && err != nil:
				t.Errorf("got %v, want nil", err)
			case tt.want == errAny && err == nil:
				t.Error("got nil, want an error")
			case tt.want != nil && tt.want != errAny && !errors.Is(err, tt.want):
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestParseSecrets(t *testing.T) {
	vectorKey, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(vectorSecret, "whsec_"))
	otherKey, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(otherSecret, "whsec_"))
	tenBytes := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9} // base64 "AAECAwQFBgcICQ=="
	tests := []struct {
		name    string
		in      string
		want    [][]byte
		wantErr string // a part of the message; "" for no error
		secret  string // must not appear in the error
	}{
		{name: "empty", in: "", want: nil},
		{name: "blanks", in: " \t ", want: nil},
		{name: "whsec", in: vectorSecret, want: [][]byte{vectorKey}},
		{name: "no prefix", in: strings.TrimPrefix(vectorSecret, "whsec_"), want: [][]byte{vectorKey}},
		{name: "padded", in: "whsec_AAECAwQFBgcICQ==", want: [][]byte{tenBytes}},
		{name: "unpadded", in: "whsec_AAECAwQFBgcICQ", want: [][]byte{tenBytes}},
		{name: "two, any blanks", in: "  " + vectorSecret + " \t" + otherSecret + "\n", want: [][]byte{vectorKey, otherKey}},
		{name: "bad second", in: vectorSecret + " whsec_n0t*base64!", wantErr: "secret 2 of 2", secret: "n0t*base64!"},
		{name: "bad first", in: "hunter2!! " + vectorSecret, wantErr: "secret 1 of 2", secret: "hunter2"},
		{name: "url alphabet", in: "whsec_-_-_", wantErr: "secret 1 of 1", secret: "-_-_"},
		{name: "prefix only", in: "whsec_", wantErr: "secret 1 of 1"},
		{name: "prefix twice", in: "whsec_whsec_AAAA", wantErr: "secret 1 of 1", secret: "whsec_AAAA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := webhook.ParseSecrets(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("got %d keys, want an error", len(got))
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q: want it to say %q", err, tt.wantErr)
				}
				if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
					t.Errorf("error %q quotes the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want no error", err)
			}
			if len(got) != len(tt.want) || (got == nil) != (tt.want == nil) {
				t.Fatalf("got %d keys (nil %v), want %d (nil %v)", len(got), got == nil, len(tt.want), tt.want == nil)
			}
			for i := range got {
				if !bytes.Equal(got[i], tt.want[i]) {
					t.Errorf("key %d: got %x, want %x", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func FuzzParseSecrets(f *testing.F) {
	for _, s := range []string{"", vectorSecret, vectorSecret + " " + otherSecret, "whsec_", "whsec_AAECAwQFBgcICQ", "a b c", "whsec_===="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		keys, err := webhook.ParseSecrets(s)
		if err != nil {
			for _, f := range strings.Fields(s) {
				if f = strings.TrimPrefix(f, "whsec_"); len(f) >= 10 && strings.Contains(err.Error(), f) {
					t.Errorf("error %q quotes a secret", err)
				}
			}
			return
		}
		for i, k := range keys {
			if len(k) == 0 {
				t.Errorf("key %d is empty", i)
			}
		}
		// Whatever parses must sign and verify its own signature — if every key is
		// long enough to sign with; a shorter one is refused, naming no secret.
		if len(keys) == 0 {
			return
		}
		signer, err := webhook.NewSigner(s)
		short := false
		for _, k := range keys {
			short = short || len(k) < webhook.MinKeyBytes
		}
		if short {
			if err == nil || !strings.Contains(err.Error(), "too weak") {
				t.Fatalf("NewSigner with a key under %d bytes = %v, want refused", webhook.MinKeyBytes, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("NewSigner after ParseSecrets succeeded: %v", err)
		}
		now := time.Unix(vectorTimestamp, 0)
		h := http.Header{}
		h.Set("webhook-id", "msg_1")
		h.Set("webhook-timestamp", strconv.Itoa(vectorTimestamp))
		h.Set("webhook-signature", signer.Sign("msg_1", now, []byte(s)))
		if err := webhook.Verify(keys, h, []byte(s), time.Minute, now); err != nil {
			t.Errorf("Verify of own signature: %v", err)
		}
	})
}

func FuzzVerify(f *testing.F) {
	f.Add(vectorID, strconv.Itoa(vectorTimestamp), vectorSignature, []byte(vectorBody), int64(vectorTimestamp))
	f.Add("", "", "", []byte(nil), int64(0))
	f.Add("a.b", "-1", "v1, v1,,,", []byte("x"), int64(-1<<63))
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte, now int64) {
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", sig)
		err := webhook.Verify(mustSecrets(t, vectorSecret), h, body, 5*time.Minute, time.Unix(now, 0))
		if err == nil && !specVerify(t, vectorSecret, h, body) {
			t.Errorf("Verify passed what the independent verifier rejects: id %q ts %q sig %q", id, ts, sig)
		}
	})
}
