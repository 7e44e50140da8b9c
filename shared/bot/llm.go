package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/shared/message"
)

// DefaultHistory is how many earlier messages of the conversation the llm bot sends.
const DefaultHistory = 10

// LLMConfig configures the llm bot.
type LLMConfig struct {
	// Provider is "openai" — any OpenAI-compatible chat completions API: OpenAI, Groq,
	// Hugging Face endpoints, vLLM, Ollama — or "anthropic" (the Messages API).
	Provider     string
	BaseURL      string // default https://api.openai.com/v1 or https://api.anthropic.com
	Model        string
	APIKey       string
	SystemPrompt string
	Temperature  *float64 // nil: the provider's default
	MaxTokens    int      // default 512
	History      int      // earlier messages sent along; 0: none
}

// LLM answers with a language model, one text message per turn.
type LLM struct {
	cfg     LLMConfig
	history HistoryReader
	client  *http.Client
}

// NewLLM checks cfg and returns the bot. history may be nil.
func NewLLM(cfg LLMConfig, history HistoryReader, client *http.Client) (*LLM, error) {
	if cfg.Provider == "" {
		cfg.Provider = "openai"
	}
	var errs []error
	switch cfg.Provider {
	case "openai":
		if cfg.BaseURL == "" {
			cfg.BaseURL = "https://api.openai.com/v1"
		}
	case "anthropic":
		if cfg.BaseURL == "" {
			cfg.BaseURL = "https://api.anthropic.com"
		}
	default:
		errs = append(errs, fmt.Errorf("llm provider %q (PARLEY_LLM_PROVIDER): want openai or anthropic", cfg.Provider))
	}
	if u, err := url.Parse(cfg.BaseURL); cfg.BaseURL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		errs = append(errs, fmt.Errorf("llm base URL (PARLEY_LLM_BASE_URL): want an absolute http or https URL"))
	}
	if cfg.Model == "" {
		errs = append(errs, errors.New("llm model is required (PARLEY_LLM_MODEL)"))
	}
	if cfg.MaxTokens == 0 {
		cfg.MaxTokens = 512
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if client == nil {
		// No timeout of its own: the turn's deadline bounds each call.
		client = &http.Client{}
	}
	return &LLM{cfg: cfg, history: history, client: client}, nil
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Reply implements Bot.
func (b *LLM) Reply(ctx context.Context, turn message.Turn) ([]message.Reply, error) {
	msgs, err := b.conversation(ctx, turn)
	if err != nil {
		return nil, err
	}
	var text string
	if b.cfg.Provider == "anthropic" {
		text, err = b.anthropic(ctx, msgs)
	} else {
		text, err = b.openai(ctx, msgs)
	}
	if err != nil {
		return nil, err
	}
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, fmt.Errorf("%s: the model answered with no text", b.cfg.Provider)
	}
	payload, _ := message.Marshal(map[string]string{"text": text})
	return []message.Reply{{Type: "text", Payload: payload}}, nil
}

// conversation is the history, oldest first, then the user's message, with
// consecutive messages of one role merged: Anthropic requires turns to alternate and
// to start with the user, and it costs OpenAI nothing.
func (b *LLM) conversation(ctx context.Context, turn message.Turn) ([]chatMessage, error) {
	var entries []message.Entry
	if b.history != nil && b.cfg.History > 0 {
		var err error
		if entries, err = b.history.RecentHistory(ctx, turn.Channel, turn.ConversationRef, b.cfg.History); err != nil {
			return nil, fmt.Errorf("read history: %w", err)
		}
	}
	var msgs []chatMessage
	add := func(role, content string) {
		if n := len(msgs); n > 0 && msgs[n-1].Role == role {
			msgs[n-1].Content += "\n\n" + content
			return
		}
		msgs = append(msgs, chatMessage{role, content})
	}
	for _, e := range entries {
		if e.Direction == message.Outgoing {
			if len(msgs) == 0 {
				continue // a conversation starts with the user
			}
			add("assistant", e.Text())
		} else {
			add("user", e.Text())
		}
	}
	add("user", turn.Message.Text)
	return msgs, nil
}

func (b *LLM) openai(ctx context.Context, msgs []chatMessage) (string, error) {
	if b.cfg.SystemPrompt != "" {
		msgs = append([]chatMessage{{"system", b.cfg.SystemPrompt}}, msgs...)
	}
	req := map[string]any{"model": b.cfg.Model, "messages": msgs, "max_tokens": b.cfg.MaxTokens}
	if b.cfg.Temperature != nil {
		req["temperature"] = *b.cfg.Temperature
	}
	headers := map[string]string{}
	if b.cfg.APIKey != "" {
		headers["Authorization"] = "Bearer " + b.cfg.APIKey
	}
	var res struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := b.post(ctx, b.cfg.BaseURL+"/chat/completions", headers, req, &res); err != nil {
		return "", err
	}
	if len(res.Choices) == 0 {
		return "", errors.New("openai: no choices in the answer")
	}
	return res.Choices[0].Message.Content, nil
}

func (b *LLM) anthropic(ctx context.Context, msgs []chatMessage) (string, error) {
	req := map[string]any{"model": b.cfg.Model, "messages": msgs, "max_tokens": b.cfg.MaxTokens}
	if b.cfg.SystemPrompt != "" {
		req["system"] = b.cfg.SystemPrompt
	}
	if b.cfg.Temperature != nil {
		req["temperature"] = min(*b.cfg.Temperature, 1) // Anthropic's range is 0–1
	}
	headers := map[string]string{"x-api-key": b.cfg.APIKey, "anthropic-version": "2023-06-01"}
	var res struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := b.post(ctx, b.cfg.BaseURL+"/v1/messages", headers, req, &res); err != nil {
		return "", err
	}
	var parts []string
	for _, c := range res.Content {
		if c.Type == "text" {
			parts = append(parts, c.Text)
		}
	}
	return strings.Join(parts, ""), nil
}

// post sends one JSON request and decodes a 2xx answer into out. Rate limits and
// overload (429, 503, 529) are a BotBusyError, so the caller is told to come back;
// other failures are plain errors. Errors never carry the key or the messages.
func (b *LLM) post(ctx context.Context, url string, headers map[string]string, body, out any) error {
	return postJSON(ctx, b.client, b.cfg.Provider, url, headers, body, out)
}

func postJSON(ctx context.Context, client *http.Client, who, url string, headers map[string]string, body, out any) error {
	buf, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(buf))
	if err != nil {
		return fmt.Errorf("%s: %w", who, err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", who, ctx.Err())
		}
		return fmt.Errorf("%s: request failed: %s", who, errorClass(err))
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s: read answer: %w", who, err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		err := fmt.Errorf("%s: HTTP %d%s", who, res.StatusCode, providerErrorType(data))
		switch res.StatusCode {
		case http.StatusTooManyRequests, http.StatusServiceUnavailable, 529:
			return &message.BotBusyError{RetryAfter: retryAfter(res.Header.Get("Retry-After")), Err: err}
		}
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: the answer is not the expected JSON: %w", who, err)
	}
	return nil
}

// providerErrorType picks the error type or code out of a provider's error body —
// never its message, which may quote the conversation.
func providerErrorType(body []byte) string {
	var e struct {
		Error struct {
			Type string `json:"type"`
			Code any    `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	switch {
	case e.Error.Type != "":
		return " (" + e.Error.Type + ")"
	case e.Error.Code != nil:
		return fmt.Sprintf(" (%v)", e.Error.Code)
	}
	return ""
}

func errorClass(err error) string {
	s := err.Error()
	for _, k := range []string{"connection refused", "no such host", "connection reset", "timeout", "EOF", "certificate"} {
		if strings.Contains(s, k) {
			return k
		}
	}
	return "network error"
}

func retryAfter(v string) time.Duration {
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
		return time.Duration(min(n, 3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
