// Package storetest is the contract every store must meet: the embedded one and the
// DynamoDB adapter on DynamoDB Local run the same tests, so the local stack behaves as
// the deployed one does.
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/admin"
	"github.com/parley-chat/parley/shared/bot"
	"github.com/parley-chat/parley/shared/channel"
	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/message"
)

// Store is what the contract covers: everything the inbound and delivery functions,
// the llm bot, the channel registry and the operator's commands ask of a store.
type Store interface {
	inbound.Store
	delivery.Store
	bot.HistoryReader
	admin.Store
	channel.Store
	LookupToken(ctx context.Context, hash string) (message.Token, bool, error)
}

// Run runs the contract against the stores open makes, a fresh one per test. The
// tests run in parallel, and each uses keys of its own.
func Run(t *testing.T, open func(t *testing.T) Store) {
	for _, c := range []struct {
		name string
		test func(t *testing.T, s Store)
	}{
		{"Accept", testAccept},
		{"AcceptConcurrently", testAcceptConcurrently},
		{"Exchanged", testExchanged},
		{"PutExchange", testPutExchange},
		{"Load", testLoad},
		{"Failed", testFailed},
		{"Progress", testProgress},
		{"TakeOver", testTakeOver},
		{"DropTombstone", testDropTombstone},
		{"HistoryPage", testHistoryPage},
		{"HistoryCursors", testHistoryCursors},
		{"Tokens", testTokens},
		{"Channels", testChannels},
		{"ChannelList", testChannelList},
		{"Isolation", testIsolation},
		{"ConversationUser", testConversationUser},
		{"EraseConversation", testEraseConversation},
		{"EraseUser", testEraseUser},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.test(t, open(t))
		})
	}
}

// now is whole seconds, as DynamoDB keeps expiry times; the times a record and an
// exchange keep to the millisecond are now plus some milliseconds.
var (
	now  = time.Now().UTC().Truncate(time.Second)
	keep = now.Add(30 * 24 * time.Hour) // the expiry of what must still be there
)

var seq atomic.Int64

// newTurn is a text message of a conversation and a message id of its own.
func newTurn(channel, text string) message.Turn {
	n := seq.Add(1)
	in := message.Inbound{
		UserID: fmt.Sprintf("user-%d", n), MessageID: fmt.Sprintf("m-%d", n), ConversationID: fmt.Sprintf("conv-%d", n),
		Type: "text", Text: text, Payload: json.RawMessage(`{"text":` + quote(text) + `}`),
	}
	return message.NewTurn(channel, in)
}

// inConversation is a new message of turn's conversation, from the same user.
func inConversation(turn message.Turn, text string) message.Turn {
	in := turn.Message
	in.MessageID = fmt.Sprintf("m-%d", seq.Add(1))
	in.Text, in.Payload = text, json.RawMessage(`{"text":`+quote(text)+`}`)
	return message.NewTurn(turn.Channel, in)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// newRecord is the record the inbound side writes for turn at createdAt.
func newRecord(turn message.Turn, createdAt, expiresAt time.Time) message.Record {
	return message.Record{Key: turn.Key(), RequestHash: turn.Message.Hash(), UserRef: turn.UserRef, UserID: turn.Message.UserID,
		CreatedAt: createdAt, ExpiresAt: expiresAt}
}

// answer is the exchange of turn answered with replies text bot messages.
func answer(turn message.Turn, createdAt time.Time, replies int, owner string) message.Exchange {
	var rs []message.Reply
	for i := range replies {
		rs = append(rs, message.Reply{Type: "text", Payload: json.RawMessage(fmt.Sprintf(`{"text":"answer %d to %s"}`, i+1, turn.Message.MessageID))})
	}
	x := message.Answer(turn, createdAt, rs, createdAt.Add(1500*time.Millisecond))
	x.Owner, x.ExpiresAt = owner, keep
	return x
}

// tombstone is what erasing a conversation leaves for a job still in the queue.
func tombstone(key message.Key, createdAt time.Time) message.Exchange {
	return message.Exchange{Key: key, CreatedAt: createdAt, Tombstone: true, ExpiresAt: keep}
}

// rich is an exchange whose entries use every field, with payloads a careless
// encoding would change: escapes, HTML characters, non-ASCII text, nesting.
func rich(turn message.Turn, createdAt time.Time, owner string) message.Exchange {
	in := turn.Message
	in.Type, in.Text = "choice", `Pick <one> & "go"`
	in.Payload = json.RawMessage(`{"options":[{"label":"Oui ✓","value":"y"},{"label":"Nein","value":"n"}],"text":"Pick <one> \u0026 \"go\" 🚀"}`)
	turn.Message = in
	at := createdAt.Add(2345 * time.Millisecond)
	x := message.Exchange{
		Key: turn.Key(), CreatedAt: createdAt, ConversationID: in.ConversationID, UserID: in.UserID, Owner: owner, ExpiresAt: keep,
		Entries: []message.Entry{
			{ID: turn.MessageRef, Direction: message.Incoming, Type: in.Type, Payload: in.Payload, UserID: in.UserID, MessageID: in.MessageID, CreatedAt: createdAt},
			{ID: message.ReplyRef(turn.Channel, in.ConversationID, in.MessageID, 0), Direction: message.Outgoing, Type: "image",
				Payload: json.RawMessage(`{"imageUrl":"https://example.com/a.png?x=1&y=2","title":"日本"}`), UserID: in.UserID, InReplyTo: in.MessageID, CreatedAt: at},
			{ID: message.ReplyRef(turn.Channel, in.ConversationID, in.MessageID, 1), Direction: message.Outgoing, Type: "location",
				Payload: json.RawMessage(`{"latitude":-33.8688,"longitude":151.2093,"text":"\\path\n"}`), UserID: "someone-else", InReplyTo: in.MessageID, CreatedAt: at.Add(time.Millisecond)},
		},
	}
	return x
}
