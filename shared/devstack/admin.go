package devstack

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/parley-chat/parley/shared/inbound"
)

// AdminPrefix is where the local stack serves what `parley dlq` needs, so the
// operator tools work the same against it as against AWS.
const AdminPrefix = "/_parley/dlq"

// admin serves the dead-letter queue: GET lists, POST .../redrive moves back. It takes
// the same bearer token as the API.
type admin struct {
	queue queue
	auth  inbound.Authenticator
}

func (a *admin) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+AdminPrefix, a.guard(func(w http.ResponseWriter, r *http.Request) {
		msgs, err := a.queue.DeadLetters(r.Context(), limit(r))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, map[string]any{"deadLetters": msgs})
	}))
	mux.HandleFunc("POST "+AdminPrefix+"/redrive", a.guard(func(w http.ResponseWriter, r *http.Request) {
		n, err := a.queue.Redrive(r.Context(), limit(r))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, map[string]int{"redriven": n})
	}))
}

func (a *admin) guard(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "bearer") || !authenticated(r.Context(), a.auth, tok) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"code":"invalid_token","message":"the token is not valid"}}`))
			return
		}
		next(w, r)
	}
}

func limit(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("max"))
	if err != nil || n <= 0 {
		return 100
	}
	return n
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func authenticated(ctx context.Context, auth inbound.Authenticator, tok string) bool {
	_, err := auth.Authenticate(context.WithoutCancel(ctx), tok)
	return err == nil
}
