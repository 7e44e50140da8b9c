package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/admin"
	"github.com/parley-chat/parley/shared/devstack"
	"github.com/parley-chat/parley/shared/message"
)

// localStack is a running local stack's operator API: what the commands do to AWS,
// over HTTP, authenticated with the admin token (channels, tokens) or an API token
// (the dead letters of its channel).
type localStack struct{ base, token string }

func (l *localStack) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, l.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+l.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("local stack: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string }
		}
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("local stack: %s", e.Error.Message)
		}
		return fmt.Errorf("local stack: %s: %s", res.Status, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(res.Body).Decode(out)
}

func (l *localStack) CreateChannel(ctx context.Context, c message.Channel) (admin.Created, error) {
	var out admin.Created
	return out, l.do(ctx, "POST", devstack.ChannelsPrefix, c, &out)
}

func (l *localStack) UpdateChannel(ctx context.Context, id string, p admin.Patch) (admin.Updated, error) {
	var out admin.Updated
	return out, l.do(ctx, "PATCH", devstack.ChannelsPrefix+"/"+url.PathEscape(id), p, &out)
}

func (l *localStack) DeleteChannel(ctx context.Context, id string) (int, error) {
	var out struct{ TokensRevoked int }
	return out.TokensRevoked, l.do(ctx, "DELETE", devstack.ChannelsPrefix+"/"+url.PathEscape(id), nil, &out)
}

func (l *localStack) Channels(ctx context.Context) ([]message.Channel, error) {
	var out struct{ Channels []message.Channel }
	return out.Channels, l.do(ctx, "GET", devstack.ChannelsPrefix, nil, &out)
}

func (l *localStack) Channel(ctx context.Context, id string) (message.Channel, error) {
	var out message.Channel
	return out, l.do(ctx, "GET", devstack.ChannelsPrefix+"/"+url.PathEscape(id), nil, &out)
}

func (l *localStack) CreateToken(ctx context.Context, channel, name, scope string) (string, message.Token, error) {
	var out devstack.NewToken
	err := l.do(ctx, "POST", devstack.TokensPrefix, map[string]string{"channel": channel, "name": name, "scope": scope}, &out)
	// Only the id is known here; the hash stays with the stack.
	return out.Token, message.Token{Hash: out.ID, Name: name, Channel: out.Channel, Scope: out.Scope}, err
}

func (l *localStack) Tokens(ctx context.Context, channel string) ([]message.Token, error) {
	var out struct{ Tokens []devstack.TokenView }
	if err := l.do(ctx, "GET", devstack.TokensPrefix+"?channel="+url.QueryEscape(channel), nil, &out); err != nil {
		return nil, err
	}
	toks := make([]message.Token, len(out.Tokens))
	for i, v := range out.Tokens {
		toks[i] = message.Token{Hash: v.ID, Name: v.Name, Channel: v.Channel, Scope: v.Scope}
		toks[i].CreatedAt, _ = parseTime(v.CreatedAt)
	}
	return toks, nil
}

func (l *localStack) RevokeToken(ctx context.Context, id string) (int, error) {
	var out struct{ Revoked int }
	return out.Revoked, l.do(ctx, "DELETE", devstack.TokensPrefix+"/"+url.PathEscape(id), nil, &out)
}

func (l *localStack) EndpointStatus(ctx context.Context, channel string) (message.Health, error) {
	var out message.Health
	return out, l.do(ctx, "GET", devstack.EndpointsPrefix+"/"+url.PathEscape(channel), nil, &out)
}

func (l *localStack) EnableEndpoint(ctx context.Context, channel string) (message.Health, error) {
	var out message.Health
	return out, l.do(ctx, "POST", devstack.EndpointsPrefix+"/"+url.PathEscape(channel)+"/enable", nil, &out)
}

func (l *localStack) DeadLetters(ctx context.Context, limit int) ([]events.SQSMessage, error) {
	var out struct {
		DeadLetters []events.SQSMessage `json:"deadLetters"`
	}
	err := l.do(ctx, "GET", fmt.Sprintf("%s?max=%d", devstack.AdminPrefix, limit), nil, &out)
	return out.DeadLetters, err
}

func (l *localStack) RedriveMatching(ctx context.Context, limit int, match func(events.SQSMessage) bool) (int, error) {
	var out struct{ Redriven int }
	err := l.do(ctx, "POST", fmt.Sprintf("%s/redrive?max=%d", devstack.AdminPrefix, limit), nil, &out)
	return out.Redriven, err
}
