package dynamo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/testkit/emulator"
)

// A GDPR erasure leaves nothing of the conversation or the user in the table: these
// tests read every item of it, every attribute, nested ones included, and look for
// the conversation's partition, the user's ids and what they wrote.

// gdpr is a table with a store on it, and what the erasure must leave alone.
type gdpr struct {
	client *dynamodb.Client
	table  string
	s      *dynamo.Store
	now    time.Time
	at     time.Time // the time of the next message
	kept   []string  // "pk sk" of the items that must stay
}

func newGDPR(t *testing.T) *gdpr {
	client := emulator.DynamoDB(t).DynamoDBClient()
	table := newTable(t, client)
	now := time.Now().UTC().Truncate(time.Second)
	return &gdpr{client: client, table: table, s: dynamo.New(client, table), now: now, at: now.Add(-time.Hour)}
}

// say makes userID say text in a conversation of channel, as the inbound side
// accepts it, and, when run, as the delivery side answers it with an echo of it.
func (g *gdpr) say(t *testing.T, channel, conversationID, userID, text string, run bool) (message.Turn, message.Record) {
	t.Helper()
	ctx := context.Background()
	in := message.Inbound{UserID: userID, MessageID: fmt.Sprintf("m-%d", g.at.UnixMilli()), ConversationID: conversationID,
		Type: "text", Text: text, Payload: json.RawMessage(`{"text":"` + text + `"}`)}
	turn := message.NewTurn(channel, in)
	g.at = g.at.Add(time.Second + 17*time.Millisecond)
	rec := message.Record{Key: turn.Key(), RequestHash: in.Hash(), UserRef: turn.UserRef, UserID: userID,
		CreatedAt: g.at, ExpiresAt: g.now.Add(15 * 24 * time.Hour)}
	if _, accepted, err := g.s.Accept(ctx, rec, g.now); err != nil || !accepted {
		t.Fatalf("Accept %q: got accepted %v, err %v", text, accepted, err)
	}
	if !run {
		return turn, rec
	}
	x := message.Answer(turn, rec.CreatedAt, []message.Reply{{Type: "text", Payload: in.Payload}}, rec.CreatedAt.Add(300*time.Millisecond))
	x.Owner, x.ExpiresAt = "sqs-"+text, g.now.Add(30*24*time.Hour)
	if _, stored, err := g.s.PutExchange(ctx, x); err != nil || !stored {
		t.Fatalf("PutExchange %q: got stored %v, err %v", text, stored, err)
	}
	return turn, rec
}

// fail notes failed delivery attempts on a record, as a receiver that is down makes.
func (g *gdpr) fail(t *testing.T, rec message.Record) {
	t.Helper()
	ctx := context.Background()
	for range 2 {
		if _, err := g.s.Failed(ctx, rec.Key, 0, 0, g.now); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.s.TakeOver(ctx, rec.Key, rec.CreatedAt, "sqs-redriven"); err != nil {
		t.Fatal(err)
	}
}

// push sends a bot message into a conversation, as POST .../messages does.
func (g *gdpr) push(t *testing.T, to message.Turn, text string) {
	t.Helper()
	ctx := context.Background()
	ref := message.PushRef(to.Channel, to.Message.ConversationID, "idem-"+text)
	g.at = g.at.Add(time.Second)
	key := message.Key{Channel: to.Channel, ConversationRef: to.ConversationRef, Ref: ref}
	rec := message.Record{Key: key, RequestHash: "push", UserRef: to.UserRef, UserID: to.Message.UserID, CreatedAt: g.at, ExpiresAt: g.now.Add(15 * 24 * time.Hour)}
	if _, accepted, err := g.s.Accept(ctx, rec, g.now); err != nil || !accepted {
		t.Fatalf("Accept push: got accepted %v, err %v", accepted, err)
	}
	x := message.Exchange{Key: key, CreatedAt: g.at, ConversationID: to.Message.ConversationID, UserID: to.Message.UserID, Owner: "sqs-push",
		ExpiresAt: g.now.Add(30 * 24 * time.Hour), Entries: []message.Entry{{ID: ref, Direction: message.Outgoing, Type: "text",
			Payload: json.RawMessage(`{"text":"` + text + `"}`), UserID: to.Message.UserID, CreatedAt: g.at}}}
	if _, stored, err := g.s.PutExchange(ctx, x); err != nil || !stored {
		t.Fatalf("PutExchange push: got stored %v, err %v", stored, err)
	}
}

// others writes what an erasure must not touch — a channel, a token, another user's
// conversation of the channel, and the same user and conversation ids in another
// channel — and notes their items as kept.
func (g *gdpr) others(t *testing.T, channel, userID, conversationID string) {
	t.Helper()
	ctx := context.Background()
	if err := g.s.PutChannel(ctx, message.Channel{ID: channel, Name: channel, ResponseURL: "https://example.com/" + channel,
		Bot: message.BotSpec{Kind: "echo"}, CreatedAt: g.now, UpdatedAt: g.now}, true); err != nil {
		t.Fatal(err)
	}
	if err := g.s.PutToken(ctx, message.Token{Hash: strings.Repeat("c0", 32), Name: "backend", Channel: channel, CreatedAt: g.now}); err != nil {
		t.Fatal(err)
	}
	g.say(t, channel, "conv-of-bob", "bob", "bob-talks-of-weather", true)
	g.say(t, "globex", conversationID, userID, "same-ids-elsewhere", true)
	g.say(t, "globex", conversationID, userID, "same-ids-elsewhere-pending", false)
	for _, item := range g.scan(t) {
		g.kept = append(g.kept, key(item))
	}
}

func (g *gdpr) scan(t *testing.T) []map[string]types.AttributeValue {
	t.Helper()
	var items []map[string]types.AttributeValue
	p := dynamodb.NewScanPaginator(g.client, &dynamodb.ScanInput{TableName: &g.table, ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, page.Items...)
	}
	return items
}

func key(item map[string]types.AttributeValue) string {
	return text(item["pk"]) + " " + text(item["sk"])
}

// text is everything an attribute value holds, nested values included.
func text(v types.AttributeValue) string {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return v.Value
	case *types.AttributeValueMemberN:
		return v.Value
	case *types.AttributeValueMemberB:
		return string(v.Value)
	case *types.AttributeValueMemberBOOL:
		return fmt.Sprint(v.Value)
	case *types.AttributeValueMemberSS:
		return strings.Join(v.Value, " ")
	case *types.AttributeValueMemberNS:
		return strings.Join(v.Value, " ")
	case *types.AttributeValueMemberBS:
		var parts []string
		for _, b := range v.Value {
			parts = append(parts, string(b))
		}
		return strings.Join(parts, " ")
	case *types.AttributeValueMemberL:
		var parts []string
		for _, e := range v.Value {
			parts = append(parts, text(e))
		}
		return strings.Join(parts, " ")
	case *types.AttributeValueMemberM:
		var parts []string
		for k, e := range v.Value {
			parts = append(parts, k, text(e))
		}
		return strings.Join(parts, " ")
	}
	return ""
}

// trace is something that must not stay. Raw ids (userId, conversationId) may stay in
// other channels, which may use the same ones.
type trace struct {
	what, value string
	raw         bool
}

// traces lists the items that mention anything of traces, with what they mention and
// where.
func (g *gdpr) traces(t *testing.T, channel string, traces []trace) map[string][]string {
	t.Helper()
	found := map[string][]string{}
	for _, item := range g.scan(t) {
		elsewhere := !strings.HasPrefix(text(item["pk"]), "c#"+channel+"#")
		for name, v := range item {
			for _, tr := range traces {
				if tr.raw && elsewhere {
					continue
				}
				if m := fmt.Sprintf("%s in %s", tr.what, name); strings.Contains(text(v), tr.value) && !slices.Contains(found[key(item)], m) {
					found[key(item)] = append(found[key(item)], m)
				}
			}
		}
	}
	return found
}

// checkKept checks that every item noted as kept is still there.
func (g *gdpr) checkKept(t *testing.T) {
	t.Helper()
	var now []string
	for _, item := range g.scan(t) {
		now = append(now, key(item))
	}
	for _, k := range g.kept {
		if !slices.Contains(now, k) {
			t.Errorf("item %s of another user, conversation or channel is gone", k)
		}
	}
	if len(g.kept) < 7 {
		t.Fatalf("only %d items to keep: the test writes too little", len(g.kept))
	}
}

// conversationTraces are what must not stay of a conversation of userID in channel.
func conversationTraces(channel, conversationID, userID string, texts ...string) []trace {
	ref := message.ConversationRef(channel, conversationID)
	out := []trace{
		{what: "the conversation ref", value: ref},
		{what: "the user ref", value: message.UserRef(channel, userID)},
		{what: "the userId", value: userID, raw: true},
		{what: "the conversationId", value: conversationID, raw: true},
	}
	for _, s := range texts {
		out = append(out, trace{what: fmt.Sprintf("text %q", s), value: s})
	}
	return out
}

// tombstoneOnly checks that the only items left with traces are tombstones of the
// pending messages, keys only.
func (g *gdpr) tombstoneOnly(t *testing.T, found map[string][]string, pending ...message.Record) {
	t.Helper()
	want := map[string]bool{}
	for _, rec := range pending {
		want["c#"+rec.Channel+"#"+rec.ConversationRef+" "+sk(rec.CreatedAt, rec.Ref)] = true
	}
	for k, what := range found {
		if !want[k] {
			t.Errorf("item %s stays, with %s", k, strings.Join(what, ", "))
		}
	}
	for k := range want {
		if _, ok := found[k]; !ok {
			t.Errorf("no tombstone %s", k)
		}
	}
	for _, item := range g.scan(t) {
		if !want[key(item)] {
			continue
		}
		var names []string
		for name := range item {
			names = append(names, name)
		}
		slices.Sort(names)
		if got := strings.Join(names, " "); got != "expiresAt pk sk t" {
			t.Errorf("tombstone %s: got attributes %s, want only expiresAt pk sk t", key(item), got)
		}
		for _, tr := range found[key(item)] {
			if !strings.HasSuffix(tr, " in pk") {
				t.Errorf("tombstone %s: %s; want the conversation in its key only", key(item), tr)
			}
		}
	}
}

func TestEraseConversationLeavesNothing(t *testing.T) {
	ctx := context.Background()
	g := newGDPR(t)
	const channel, conv, user = "acme", "conv-7c1e-erase-me", "alice-2f9b-erase-me"
	g.others(t, channel, user, conv)

	first, _ := g.say(t, channel, conv, user, "alice-first-words", true)
	_, rec := g.say(t, channel, conv, user, "alice-failing-delivery", true)
	g.fail(t, rec)
	g.push(t, first, "agent-pushed-words")
	_, last := g.say(t, channel, conv, user, "alice-last-words", true)
	traces := conversationTraces(channel, conv, user, "alice-first-words", "alice-failing-delivery", "agent-pushed-words", "alice-last-words")
	if found := g.traces(t, channel, traces); len(found) < 8 {
		t.Fatalf("before the erasure, %d items mention the conversation, want 8 (4 records, 4 exchanges): %v", len(found), found)
	}

	erased, err := g.s.EraseConversation(ctx, channel, first.ConversationRef)
	if err != nil {
		t.Fatal(err)
	}
	if want := (message.Erased{Conversations: 1, Messages: 7}); erased != want {
		t.Errorf("EraseConversation: got %+v, want %+v", erased, want)
	}
	g.tombstoneOnly(t, g.traces(t, channel, traces))
	g.checkKept(t)
	if _, recFound, _, xFound, err := g.s.Load(ctx, last.Key, last.CreatedAt); err != nil || recFound || xFound {
		t.Errorf("Load of the last message: got record %v, exchange %v, err %v; want neither", recFound, xFound, err)
	}
}

func TestEraseConversationWithAPendingMessageLeavesOnlyItsTombstone(t *testing.T) {
	ctx := context.Background()
	g := newGDPR(t)
	const channel, conv, user = "acme", "conv-88aa-erase-me", "alice-6d0c-erase-me"
	g.others(t, channel, user, conv)

	first, _ := g.say(t, channel, conv, user, "alice-answered-words", true)
	pendingTurn, pending := g.say(t, channel, conv, user, "alice-pending-words", false)
	traces := conversationTraces(channel, conv, user, "alice-answered-words", "alice-pending-words")

	erased, err := g.s.EraseConversation(ctx, channel, first.ConversationRef)
	if err != nil {
		t.Fatal(err)
	}
	if want := (message.Erased{Conversations: 1, Messages: 2, Pending: 1}); erased != want {
		t.Errorf("EraseConversation: got %+v, want %+v", erased, want)
	}
	g.tombstoneOnly(t, g.traces(t, channel, traces), pending)
	g.checkKept(t)

	// The pending job runs: its exchange is refused, and delivery drops the tombstone.
	x := message.Answer(pendingTurn, pending.CreatedAt, []message.Reply{{Type: "text", Payload: pendingTurn.Message.Payload}}, g.now)
	x.Owner, x.ExpiresAt = "sqs-late", g.now.Add(30*24*time.Hour)
	existing, stored, err := g.s.PutExchange(ctx, x)
	if err != nil || stored || !existing.Tombstone {
		t.Fatalf("PutExchange of the pending job: got stored %v, tombstone %v, err %v; want the tombstone", stored, existing.Tombstone, err)
	}
	g.tombstoneOnly(t, g.traces(t, channel, traces), pending)
	if err := g.s.DropTombstone(ctx, existing); err != nil {
		t.Fatal(err)
	}
	g.tombstoneOnly(t, g.traces(t, channel, traces))
	g.checkKept(t)
}

func TestEraseUserLeavesNothing(t *testing.T) {
	ctx := context.Background()
	g := newGDPR(t)
	const channel, user = "acme", "alice-90e1-erase-me"
	g.others(t, channel, user, "conv-alone-erase-me")

	// A conversation of her own, one bob started and she joined, one waiting.
	alone, _ := g.say(t, channel, "conv-alone-erase-me", user, "alice-alone-words", true)
	g.push(t, alone, "agent-to-alice-words")
	g.say(t, channel, "conv-joined-erase-me", "bob", "bob-in-joined-words", true)
	g.say(t, channel, "conv-joined-erase-me", user, "alice-joined-words", true)
	_, pending := g.say(t, channel, "conv-waiting-erase-me", user, "alice-waiting-words", false)
	var traces []trace
	for _, conv := range []string{"conv-alone-erase-me", "conv-joined-erase-me", "conv-waiting-erase-me"} {
		traces = append(traces, conversationTraces(channel, conv, user)...)
	}
	for _, s := range []string{"alice-alone-words", "agent-to-alice-words", "bob-in-joined-words", "alice-joined-words", "alice-waiting-words"} {
		traces = append(traces, trace{what: fmt.Sprintf("text %q", s), value: s})
	}

	erased, err := g.s.EraseUser(ctx, channel, message.UserRef(channel, user))
	if err != nil {
		t.Fatal(err)
	}
	if want := (message.Erased{Conversations: 3, Messages: 2 + 1 + 2 + 2, Pending: 1}); erased != want {
		t.Errorf("EraseUser: got %+v, want %+v", erased, want)
	}
	g.tombstoneOnly(t, g.traces(t, channel, traces), pending)
	g.checkKept(t)
	if err := g.s.DropTombstone(ctx, message.Exchange{Key: pending.Key, CreatedAt: pending.CreatedAt}); err != nil {
		t.Fatal(err)
	}
	g.tombstoneOnly(t, g.traces(t, channel, traces))
	g.checkKept(t)
}
