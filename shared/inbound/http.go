package inbound

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/message"
)

// ServeHTTP runs the handler behind net/http, as API Gateway would run it: the request
// becomes the same events.APIGatewayV2HTTPRequest the Lambda receives.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Read one byte past the limit, so an oversized body is answered 413 without
	// reading all of it.
	body, err := io.ReadAll(io.LimitReader(r.Body, message.MaxBodyBytes+1))
	if err != nil {
		http.Error(w, `{"error":{"code":"bad_request","message":"the request body could not be read"}}`, http.StatusBadRequest)
		return
	}
	res, _ := h.Handle(r.Context(), ToEvent(r, body))
	for k, v := range res.Headers {
		w.Header().Set(k, v)
	}
	w.WriteHeader(res.StatusCode)
	_, _ = io.WriteString(w, res.Body)
}

// ToEvent converts an HTTP request, its body already read, to the HTTP API payload 2.0
// event. Header names are lowercased and repeated headers joined with commas, as API
// Gateway does.
func ToEvent(r *http.Request, body []byte) events.APIGatewayV2HTTPRequest {
	headers := make(map[string]string, len(r.Header))
	for k, vs := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	return events.APIGatewayV2HTTPRequest{
		Version:        "2.0",
		RouteKey:       "$default",
		RawPath:        r.URL.EscapedPath(),
		RawQueryString: r.URL.RawQuery,
		Headers:        headers,
		Body:           string(body),
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: hex.EncodeToString(id[:]),
			Stage:     "$default",
			TimeEpoch: time.Now().UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method:    r.Method,
				Path:      r.URL.Path,
				Protocol:  r.Proto,
				SourceIP:  r.RemoteAddr,
				UserAgent: r.UserAgent(),
			},
		},
	}
}
