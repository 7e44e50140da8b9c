package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of the Standard Webhooks specification, and Parley's own extras.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"

	HeaderInReplyTo  = "Parley-In-Reply-To"
	HeaderReplyIndex = "Parley-Reply-Index"
	HeaderReplyCount = "Parley-Reply-Count"
)

// secretPrefix marks a symmetric secret in the Standard Webhooks format.
const secretPrefix = "whsec_"

// DefaultTolerance is how far webhook-timestamp may be from the receiver's clock,
// either way, as in the reference libraries.
const DefaultTolerance = 5 * time.Minute

// Errors returned by Verify, for errors.Is. Their messages never contain a secret.
var (
	ErrMissingHeader = errors.New("missing webhook header")
	ErrTimestamp     = errors.New("webhook-timestamp outside the tolerance")
	ErrSignature     = errors.New("no matching webhook signature")
)

// ParseSecrets parses signing secrets: one or more, space-separated, each
// "whsec_<base64>". The prefix may be left out, and padded or unpadded base64 is
// accepted, so a secret copied from another Standard Webhooks sender works as is.
// An empty string gives nil, nil. Errors name the position of the bad secret, never
// its value: they end up in logs.
func ParseSecrets(s string) ([][]byte, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, nil
	}
	keys := make([][]byte, 0, len(fields))
	for i, f := range fields {
		enc := strings.TrimPrefix(f, secretPrefix)
		if enc == "" {
			return nil, fmt.Errorf("signing secret %d of %d: empty after the %s prefix", i+1, len(fields), secretPrefix)
		}
		key, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			key, err = base64.RawStdEncoding.DecodeString(enc)
		}
		if err != nil {
			// The decoder's error is left out: it quotes an offset into the secret.
			return nil, fmt.Errorf("signing secret %d of %d: not %s followed by base64", i+1, len(fields), secretPrefix)
		}
		if len(key) == 0 {
			return nil, fmt.Errorf("signing secret %d of %d: decodes to no bytes", i+1, len(fields))
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// Signer signs webhooks with one or more keys. Several keys are for rotation: the
// receiver accepts the message if any one signature matches a secret it knows, so
// the new secret can be added on both sides before the old one is removed.
type Signer struct {
	keys [][]byte
}

// NewSigner parses secrets as ParseSecrets does. It returns a nil *Signer and a nil
// error when secrets is empty: signing is optional.
func NewSigner(secrets string) (*Signer, error) {
	keys, err := ParseSecrets(secrets)
	if err != nil || keys == nil {
		return nil, err
	}
	for i, k := range keys {
		if len(k) < MinKeyBytes {
			return nil, fmt.Errorf("signing secret %d of %d: a key of %d bytes is too weak to sign with; use at least %d random bytes (e.g. whsec_$(openssl rand -base64 32))",
				i+1, len(keys), len(k), MinKeyBytes)
		}
	}
	return &Signer{keys: keys}, nil
}

// MinKeyBytes is the shortest key Parley signs with: 24 random bytes, 192 bits. A
// receiver may verify with any key (Verify does not ask).
const MinKeyBytes = 24

// Sign returns the webhook-signature header value: "v1,<base64 HMAC-SHA256>" of
// id + "." + Unix seconds + "." + body, once per key, space-separated. A nil Signer
// gives "".
func (s *Signer) Sign(id string, ts time.Time, body []byte) string {
	if s == nil {
		return ""
	}
	sigs := make([]string, 0, len(s.keys))
	for _, k := range s.keys {
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac(k, id, ts.Unix(), body)))
	}
	return strings.Join(sigs, " ")
}

func mac(key []byte, id string, unix int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(nil, unix, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify is the receiver's side: it checks the webhook-id, webhook-timestamp and
// webhook-signature headers of h against body. The timestamp must be within
// tolerance of now, either way (tolerance <= 0 means DefaultTolerance); any one "v1,"
// signature matching any one secret passes, so rotation needs no coordination.
// Signatures are compared in constant time. body must be the raw bytes received, not
// re-encoded JSON.
func Verify(secrets [][]byte, h http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	if len(secrets) == 0 {
		return errors.New("verify webhook: no signing secrets")
	}
	id, ts, sig := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	for _, hv := range []struct{ name, value string }{{HeaderID, id}, {HeaderTimestamp, ts}, {HeaderSignature, sig}} {
		if hv.value == "" {
			return fmt.Errorf("%w: %s", ErrMissingHeader, hv.name)
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	// The signature covers the header's text: only the plain decimal spelling ("+1",
	// "01" are not) signs the same bytes as the number it stands for.
	if err != nil || strconv.FormatInt(unix, 10) != ts {
		return fmt.Errorf("%w: %s is not Unix seconds", ErrTimestamp, HeaderTimestamp)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	// Compare in whole seconds: a hostile value is far outside what time.Time and
	// Duration arithmetic handle without saturating.
	n, tol := now.Unix(), int64(tolerance/time.Second)
	if unix < n-tol {
		return fmt.Errorf("%w: too old", ErrTimestamp)
	}
	if unix > n+tol {
		return fmt.Errorf("%w: in the future", ErrTimestamp)
	}
	// Compare the base64 text, not decoded bytes: the decoder would also accept
	// other spellings of the same bytes, and a signature has exactly one.
	want := make([][]byte, len(secrets))
	for i, k := range secrets {
		want[i] = []byte(base64.StdEncoding.EncodeToString(mac(k, id, unix, body)))
	}
	// Entries are separated by single spaces (the spec's delimiter), nothing else: a
	// signature with a stray tab or newline is not the signature.
	for _, entry := range strings.Split(sig, " ") {
		version, got, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue // other schemes (v1a) and garbage are not ours to judge
		}
		for _, w := range want {
			if hmac.Equal([]byte(got), w) {
				return nil
			}
		}
	}
	return ErrSignature
}
