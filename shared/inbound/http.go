package inbound

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/parley-chat/parley/shared/message"
)

// maxDiscard is how much of an oversized body is read and thrown away before the 413
// is sent, so a client still sending gets the answer instead of a reset connection.
const maxDiscard = 16 << 20

// ServeHTTP runs the handler behind net/http as API Gateway would run it, with one
// difference a server can make: the route and the token are checked before the body
// is read, so a bad token or an oversized Content-Length is answered at once, and a
// client that sent Expect: 100-continue is never told to go on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	headers := make(map[string]string, len(r.Header))
	for k, vs := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	tooLarge := false
	query, queryErr := url.ParseQuery(r.URL.RawQuery)
	req := &request{
		method: r.Method, path: r.URL.EscapedPath(), query: query, badQuery: queryErr != nil, headers: headers,
		body: func() ([]byte, error) {
			if r.ContentLength > message.MaxBodyBytes {
				tooLarge = true
				return nil, errTooLarge
			}
			body, err := io.ReadAll(io.LimitReader(r.Body, message.MaxBodyBytes+1))
			if err != nil {
				return nil, message.Invalidf("", "unreadable_body", "the request body could not be read")
			}
			if len(body) > message.MaxBodyBytes {
				tooLarge = true
				return nil, errTooLarge
			}
			return body, nil
		},
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	res := h.serve(r.Context(), req, hex.EncodeToString(id[:]))
	for k, v := range res.headers {
		w.Header().Set(k, v)
	}
	if tooLarge {
		w.Header().Set("Connection", "close")
		if r.Header.Get("Expect") == "" {
			// Without Expect the client is sending the body anyway: read it (up to a
			// bound) so it reads our answer rather than a reset.
			_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxDiscard))
		}
	}
	w.WriteHeader(res.status)
	_, _ = w.Write(res.body)
}
