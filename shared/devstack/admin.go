package devstack

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/admin"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/message"
)

// Paths of the local stack's operator API: what `parley dlq`, `parley channel` and
// `parley token` do against AWS, they do here with --local.
const (
	AdminPrefix     = "/_parley/dlq" // dead letters, with an API token: the token's channel's
	ChannelsPrefix  = "/_parley/admin/channels"
	TokensPrefix    = "/_parley/admin/tokens"
	EndpointsPrefix = "/_parley/admin/endpoints"
)

// operator serves the dead-letter queue to API tokens (each sees its channel's) and
// channels and tokens to the admin token.
type operator struct {
	queue      queue
	auth       inbound.Authenticator
	service    *admin.Service
	adminToken string
}

func (o *operator) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+AdminPrefix, o.apiToken(func(w http.ResponseWriter, r *http.Request, tok message.Token) {
		msgs, err := o.queue.DeadLetters(r.Context(), limit(r))
		if err != nil {
			writeError(w, err)
			return
		}
		mine := []events.SQSMessage{}
		for _, m := range msgs {
			if channelOf(m) == tok.Channel {
				mine = append(mine, m)
			}
		}
		writeJSON(w, map[string]any{"deadLetters": mine})
	}))
	mux.HandleFunc("POST "+AdminPrefix+"/redrive", o.apiToken(func(w http.ResponseWriter, r *http.Request, tok message.Token) {
		n, err := o.queue.RedriveMatching(r.Context(), limit(r), func(m events.SQSMessage) bool { return channelOf(m) == tok.Channel })
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, map[string]int{"redriven": n})
	}))

	mux.HandleFunc("GET "+ChannelsPrefix, o.adminOnly(func(w http.ResponseWriter, r *http.Request) {
		list, err := o.service.Channels(r.Context())
		respond(w, map[string]any{"channels": list}, err)
	}))
	mux.HandleFunc("POST "+ChannelsPrefix, o.adminOnly(func(w http.ResponseWriter, r *http.Request) {
		var c message.Channel
		if !readJSON(w, r, &c) {
			return
		}
		created, err := o.service.CreateChannel(r.Context(), c)
		respond(w, created, err)
	}))
	mux.HandleFunc("GET "+ChannelsPrefix+"/{id}", o.adminOnly(func(w http.ResponseWriter, r *http.Request) {
		c, err := o.service.Channel(r.Context(), r.PathValue("id"))
		respond(w, c, err)
	}))
	mux.HandleFunc("PATCH "+ChannelsPrefix+"/{id}", o.adminOnly(func(w http.ResponseWriter, r *http.Request) {
		var p admin.Patch
		if !readJSON(w, r, &p) {
			return
		}
		u, err := o.service.UpdateChannel(r.Context(), r.PathValue("id"), p)
		respond(w, u, err)
	}))
	mux.HandleFunc("DELETE "+ChannelsPrefix+"/{id}", o.adminOnly(func(w http.ResponseWriter, r *http.Request) {
		n, err := o.service.DeleteChannel(r.Context(), r.PathValue("id"))
		respond(w, map[string]int{"tokensRevoked": n}, err)
	}))
	mux.HandleFunc("GET "+TokensPrefix, o.adminOnly(func(w http.ResponseWriter, r *http.Request) {
		toks, err := o.service.Tokens(r.Context(), r.URL.Query().Get("channel"))
		respond(w, map[string]any{"tokens": TokenViews(toks)}, err)
	}))
	mux.HandleFunc("POST "+TokensPrefix, o.adminOnly(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Channel, Name, Scope string }
		if !readJSON(w, r, &req) {
			return
		}
		plain, t, err := o.service.CreateToken(r.Context(), req.Channel, req.Name, req.Scope)
		respond(w, NewToken{ID: t.ID(), Token: plain, Scope: t.Scope, Channel: t.Channel}, err)
	}))
	mux.HandleFunc("GET "+EndpointsPrefix+"/{channel}", o.adminOnly(func(w http.ResponseWriter, r *http.Request) {
		h, err := o.service.EndpointStatus(r.Context(), r.PathValue("channel"))
		respond(w, h, err)
	}))
	mux.HandleFunc("POST "+EndpointsPrefix+"/{channel}/enable", o.adminOnly(func(w http.ResponseWriter, r *http.Request) {
		h, err := o.service.EnableEndpoint(r.Context(), r.PathValue("channel"))
		respond(w, h, err)
	}))
	mux.HandleFunc("DELETE "+TokensPrefix+"/{id}", o.adminOnly(func(w http.ResponseWriter, r *http.Request) {
		n, err := o.service.RevokeToken(r.Context(), r.PathValue("id"))
		respond(w, map[string]int{"revoked": n}, err)
	}))
}

// NewToken is a token just made: shown once.
type NewToken struct {
	ID      string `json:"id"`
	Token   string `json:"token"`
	Scope   string `json:"scope"`
	Channel string `json:"channel"`
}

// TokenView is a token as it is listed: never the token itself.
type TokenView struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Channel   string `json:"channel"`
	Scope     string `json:"scope"`
	CreatedAt string `json:"createdAt"`
}

func TokenViews(toks []message.Token) []TokenView {
	out := make([]TokenView, len(toks))
	for i, t := range toks {
		ch, scope := t.Channel, t.Scope
		if ch == "" {
			ch = message.DefaultChannel
		}
		if scope == "" {
			scope = message.ScopeBackend
		}
		out[i] = TokenView{ID: t.ID(), Name: t.Name, Channel: ch, Scope: scope, CreatedAt: t.CreatedAt.Format("2006-01-02T15:04:05Z")}
	}
	return out
}

// channelOf is the channel of a dead letter: its job's.
func channelOf(m events.SQSMessage) string {
	j, err := message.DecodeJob([]byte(m.Body))
	if err != nil {
		return ""
	}
	return j.Channel
}

func (o *operator) apiToken(next func(http.ResponseWriter, *http.Request, message.Token)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		scheme, plain, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		tok, err := o.auth.Authenticate(context.WithoutCancel(r.Context()), strings.TrimSpace(plain))
		if !strings.EqualFold(scheme, "bearer") || err != nil {
			writeStatus(w, http.StatusUnauthorized, "invalid_token", "the token is not valid")
			return
		}
		if tok.Channel == "" {
			tok.Channel = message.DefaultChannel
		}
		next(w, r, tok)
	}
}

func (o *operator) adminOnly(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		scheme, plain, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "bearer") || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(plain)), []byte(o.adminToken)) != 1 {
			writeStatus(w, http.StatusUnauthorized, "invalid_admin_token", "send Authorization: bearer $PARLEY_ADMIN_TOKEN (printed when the local stack starts)")
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

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 2<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeStatus(w, http.StatusBadRequest, "invalid_json", "the body is not the JSON this endpoint takes: "+err.Error())
		return false
	}
	return true
}

func respond(w http.ResponseWriter, v any, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, v)
}

func writeError(w http.ResponseWriter, err error) {
	var e *message.Error
	switch {
	case errors.Is(err, message.ErrNotFound):
		writeStatus(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, message.ErrExists):
		writeStatus(w, http.StatusConflict, "exists", err.Error())
	case errors.Is(err, admin.ErrDefault):
		writeStatus(w, http.StatusConflict, "default_channel", err.Error())
	case errors.As(err, &e) && e.Kind == message.Invalid:
		writeStatus(w, http.StatusBadRequest, e.Code, e.Message)
	default:
		writeStatus(w, http.StatusBadRequest, "rejected", err.Error())
	}
}

func writeStatus(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
