package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/parley-chat/parley/shared/message"
)

// Rasa forwards each turn to a bot service speaking Rasa's REST channel:
// POST {sender, message} answered by a list of {recipient_id, text, image, buttons,
// custom}. Buttons become a choice; a custom payload that is a Parley message
// ({"type": ..., "payload": {...}}) passes through unchanged.
type Rasa struct {
	url    string
	client *http.Client
}

// NewRasa returns the bot for the service's REST webhook URL (for Rasa,
// http://host:5005/webhooks/rest/webhook).
func NewRasa(rawURL string, client *http.Client) (*Rasa, error) {
	u, err := url.Parse(rawURL)
	if rawURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("http bot: PARLEY_HTTP_BOT_URL must be an absolute http or https URL")
	}
	if client == nil {
		client = &http.Client{}
	}
	return &Rasa{url: rawURL, client: client}, nil
}

type rasaMessage struct {
	Text    string `json:"text"`
	Image   string `json:"image"`
	Buttons []struct {
		Title   string `json:"title"`
		Payload string `json:"payload"`
	} `json:"buttons"`
	Custom json.RawMessage `json:"custom"`
}

// Reply implements Bot.
func (b *Rasa) Reply(ctx context.Context, turn message.Turn) ([]message.Reply, error) {
	in := turn.Message
	req := map[string]any{
		// Rasa keeps one tracker per sender: the conversation is the sender.
		"sender":  in.ConversationID,
		"message": in.Text,
		"metadata": map[string]any{
			"userId": in.UserID, "messageId": in.MessageID, "type": in.Type, "payload": in.Payload,
		},
	}
	var answer []rasaMessage
	if err := postJSON(ctx, b.client, "http bot", b.url, nil, req, &answer); err != nil {
		return nil, err
	}
	var out []message.Reply
	for i, m := range answer {
		replies, err := fromRasa(m)
		if err != nil {
			return nil, fmt.Errorf("http bot: message %d: %w", i+1, err)
		}
		out = append(out, replies...)
	}
	return out, nil
}

func fromRasa(m rasaMessage) ([]message.Reply, error) {
	var out []message.Reply
	add := func(typ string, payload any) {
		b, _ := message.Marshal(payload)
		out = append(out, message.Reply{Type: typ, Payload: b})
	}
	switch {
	case len(m.Buttons) > 0:
		text := m.Text
		if text == "" {
			text = "Choose one:"
		}
		options := make([]map[string]string, 0, len(m.Buttons))
		for _, btn := range m.Buttons {
			options = append(options, map[string]string{"label": btn.Title, "value": btn.Payload})
		}
		add("choice", map[string]any{"text": text, "options": options})
	case m.Text != "":
		add("text", map[string]string{"text": m.Text})
	}
	if m.Image != "" {
		add("image", map[string]string{"imageUrl": m.Image})
	}
	if len(m.Custom) > 0 && string(m.Custom) != "null" {
		var c message.Reply
		if err := json.Unmarshal(m.Custom, &c); err != nil || !message.KnownType(c.Type) || len(c.Payload) == 0 {
			return nil, errors.New(`custom payload is not a message: want {"type": <a message type>, "payload": {...}}`)
		}
		out = append(out, c)
	}
	return out, nil
}
