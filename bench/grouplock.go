package bench

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"
)

// groupLocks give the emulator SQS FIFO's group semantics, for Proxy.GroupLock. The
// proxy sees every send, receive, delete and visibility change, so it knows each
// group's messages in the order they were sent and which of them are in flight. A
// receive's answer is filtered: a group's message is handed out only when nothing of
// the group is in flight and it is the group's oldest message not yet deleted (with
// the ones after it, in order, in the same answer). A message of a group in flight is
// kept back — made invisible until the group is due back, and visible again as soon as
// the group is free; any other message not handed out is made visible again at once.
// Messages kept back are received again: their ApproximateReceiveCount grows, as it
// does when SQS times a receive out. Kept back or not, the proxy never lets a group's
// later message pass an earlier one: it does not rely on the emulator's timing.
//
// A receive whose caller went away (a process killed) still counts: the proxy runs
// its calls to the emulator to the end, as SQS keeps a message in flight whether or
// not anyone read the answer.
type groupLocks struct {
	sendMu sync.Mutex // held across a send and its noting
	mu     sync.Mutex
	// Per group (queue URL and MessageGroupId): the messages sent and not yet
	// deleted, oldest first; those in flight, by receipt handle; those kept back.
	waiting map[string][]string
	held    map[string]map[string]heldMsg
	parked  map[string][]string // receipt handles
	// By receipt handle: the group and the message.
	receipts map[string]receiptOf
	// deleted are the messages deleted lately: a send's answer may reach the proxy
	// after its message was received and deleted, and must not wait in line then.
	deleted    map[string]time.Time
	visibility map[string]time.Duration // queue URL -> its visibility timeout
}

type heldMsg struct {
	id    string
	until time.Time // by the proxy's clock, a moment after the emulator's
}

type receiptOf struct{ group, id string }

func groupKey(queueURL, group string) string { return queueURL + "\x00" + group }

// reset forgets everything: the proxy points at another emulator, which holds none of
// these messages.
func (g *groupLocks) reset() {
	g.mu.Lock()
	g.waiting, g.held, g.parked, g.receipts, g.deleted = nil, nil, nil, nil, nil
	g.mu.Unlock()
}

func (g *groupLocks) init() {
	if g.waiting == nil {
		g.waiting, g.held, g.parked = map[string][]string{}, map[string]map[string]heldMsg{}, map[string][]string{}
		g.receipts, g.deleted = map[string]receiptOf{}, map[string]time.Time{}
	}
}

// inFlight reports whether group has a message in flight at now, forgetting those whose
// visibility ran out; called with mu held.
func (g *groupLocks) inFlight(group string, now time.Time) bool {
	for receipt, h := range g.held[group] {
		if !now.Before(h.until) {
			delete(g.held[group], receipt)
			delete(g.receipts, receipt)
		}
	}
	if len(g.held[group]) == 0 {
		delete(g.held, group)
		return false
	}
	return true
}

// sent notes the messages a send put in the queue; called after the emulator answered.
func (p *Proxy) sent(op string, body, out []byte) {
	type entry struct {
		ID             string `json:"Id"`
		MessageGroupID string `json:"MessageGroupId"`
	}
	var in struct {
		QueueURL string `json:"QueueUrl"`
		entry
		Entries []entry `json:"Entries"`
	}
	var res struct {
		MessageID  string `json:"MessageId"`
		Successful []struct {
			ID        string `json:"Id"`
			MessageID string `json:"MessageId"`
		} `json:"Successful"`
	}
	if json.Unmarshal(body, &in) != nil || json.Unmarshal(out, &res) != nil {
		return
	}
	type sentMsg struct{ group, id string }
	var msgs []sentMsg
	if op == "AmazonSQS.SendMessage" {
		msgs = append(msgs, sentMsg{in.MessageGroupID, res.MessageID})
	} else {
		for _, e := range in.Entries {
			for _, s := range res.Successful {
				if s.ID == e.ID {
					msgs = append(msgs, sentMsg{e.MessageGroupID, s.MessageID})
				}
			}
		}
	}
	g := &p.locks
	g.mu.Lock()
	defer g.mu.Unlock()
	g.init()
	for _, m := range msgs {
		if m.group == "" || m.id == "" {
			continue
		}
		k := groupKey(in.QueueURL, m.group)
		// A copy dropped by deduplication answers with the first one's id.
		if _, gone := g.deleted[m.id]; !gone && !slices.Contains(g.waiting[k], m.id) {
			g.waiting[k] = append(g.waiting[k], m.id)
		}
	}
}

// lockGroups filters a receive's answer; see groupLocks.
func (p *Proxy) lockGroups(r *http.Request, target string, reqBody, out []byte) []byte {
	var in struct {
		QueueURL          string `json:"QueueUrl"`
		VisibilityTimeout int    `json:"VisibilityTimeout"`
	}
	var ro receiveOut
	if json.Unmarshal(reqBody, &in) != nil || len(bytes.TrimSpace(out)) == 0 || json.Unmarshal(out, &ro) != nil || len(ro.Messages) == 0 {
		return out
	}
	visibility := time.Duration(in.VisibilityTimeout) * time.Second
	if visibility <= 0 {
		visibility = p.queueVisibility(r, target, in.QueueURL)
	}
	now := time.Now()
	g := &p.locks
	// Every change of visibility below is made before the lock is let go: another
	// call in between would find the emulator in a state the lock does not describe.
	g.mu.Lock()
	defer g.mu.Unlock()
	g.init()
	type msg struct {
		MessageID     string            `json:"MessageId"`
		ReceiptHandle string            `json:"ReceiptHandle"`
		Attributes    map[string]string `json:"Attributes"`
	}
	msgs := make([]msg, len(ro.Messages))
	for i, raw := range ro.Messages {
		_ = json.Unmarshal(raw, &msgs[i])
		// A message in flight handed out again: its visibility ran out by the
		// emulator's clock, a moment before the proxy's.
		k := groupKey(in.QueueURL, msgs[i].Attributes["MessageGroupId"])
		for receipt, h := range g.held[k] {
			if h.id == msgs[i].MessageID {
				delete(g.held[k], receipt)
				delete(g.receipts, receipt)
			}
		}
	}
	busy := map[string]bool{} // the group was in flight before this receive
	handed := map[string]int{}
	blocked := map[string]bool{}
	var kept []json.RawMessage
	for i, m := range msgs {
		group := m.Attributes["MessageGroupId"]
		if group == "" || m.ReceiptHandle == "" {
			kept = append(kept, ro.Messages[i])
			continue
		}
		k := groupKey(in.QueueURL, group)
		b, seen := busy[k]
		if !seen {
			b = g.inFlight(k, now)
			busy[k] = b
			if !b {
				p.unpark(r, target, in.QueueURL, k)
			}
		}
		if b {
			// Kept back until the group is due back, or until it is free (release).
			var until time.Time
			for _, h := range g.held[k] {
				if h.until.After(until) {
					until = h.until
				}
			}
			p.changeVisibility(r, target, in.QueueURL, m.ReceiptHandle, until.Sub(now))
			g.parked[k] = append(g.parked[k], m.ReceiptHandle)
			continue
		}
		// Free: handed out if it is the group's next message.
		waiting := g.waiting[k]
		next := handed[k] < len(waiting) && waiting[handed[k]] == m.MessageID
		if blocked[k] || (len(waiting) > 0 && !next) {
			blocked[k] = true
			p.changeVisibility(r, target, in.QueueURL, m.ReceiptHandle, 0)
			continue
		}
		handed[k]++
		if g.held[k] == nil {
			g.held[k] = map[string]heldMsg{}
		}
		g.held[k][m.ReceiptHandle] = heldMsg{m.MessageID, now.Add(visibility)}
		g.receipts[m.ReceiptHandle] = receiptOf{k, m.MessageID}
		kept = append(kept, ro.Messages[i])
	}
	if len(kept) == len(ro.Messages) {
		return out
	}
	b, _ := json.Marshal(receiveOut{Messages: kept})
	return b
}

// unpark makes a free group's messages kept back visible; called with mu held.
func (p *Proxy) unpark(r *http.Request, target, queueURL, k string) {
	for _, receipt := range p.locks.parked[k] {
		p.changeVisibility(r, target, queueURL, receipt, 0)
	}
	delete(p.locks.parked, k)
}

// release notes deletes and visibility changes: a deleted message leaves its group's
// line; a group with nothing in flight any more is free, and what it kept back is
// made visible.
func (p *Proxy) release(r *http.Request, target, op string, body []byte) {
	type entry struct {
		ReceiptHandle     string `json:"ReceiptHandle"`
		VisibilityTimeout *int   `json:"VisibilityTimeout"`
	}
	var in struct {
		QueueURL string `json:"QueueUrl"`
		entry
		Entries []entry `json:"Entries"`
	}
	deleted := false
	switch op {
	case "AmazonSQS.DeleteMessage", "AmazonSQS.ChangeMessageVisibility":
		if json.Unmarshal(body, &in) != nil {
			return
		}
		in.Entries = []entry{in.entry}
		deleted = op == "AmazonSQS.DeleteMessage"
	case "AmazonSQS.DeleteMessageBatch", "AmazonSQS.ChangeMessageVisibilityBatch":
		if json.Unmarshal(body, &in) != nil {
			return
		}
		deleted = op == "AmazonSQS.DeleteMessageBatch"
	default:
		return
	}
	now := time.Now()
	locks := &p.locks
	locks.mu.Lock()
	defer locks.mu.Unlock()
	locks.init()
	for id, at := range locks.deleted {
		if now.Sub(at) > time.Minute {
			delete(locks.deleted, id)
		}
	}
	for _, e := range in.Entries {
		of, ok := locks.receipts[e.ReceiptHandle]
		if !ok {
			continue
		}
		k := of.group
		if !deleted && e.VisibilityTimeout != nil && *e.VisibilityTimeout > 0 {
			h := locks.held[k][e.ReceiptHandle]
			h.until = now.Add(time.Duration(*e.VisibilityTimeout) * time.Second)
			locks.held[k][e.ReceiptHandle] = h
			continue
		}
		delete(locks.held[k], e.ReceiptHandle)
		delete(locks.receipts, e.ReceiptHandle)
		if deleted {
			locks.waiting[k] = slices.DeleteFunc(locks.waiting[k], func(id string) bool { return id == of.id })
			if len(locks.waiting[k]) == 0 {
				delete(locks.waiting, k)
			}
			locks.deleted[of.id] = now
		}
		if !locks.inFlight(k, now) {
			p.unpark(r, target, in.QueueURL, k)
		}
	}
}

// queueVisibility is a queue's visibility timeout, asked once.
func (p *Proxy) queueVisibility(r *http.Request, target, queueURL string) time.Duration {
	locks := &p.locks
	locks.mu.Lock()
	v, ok := locks.visibility[queueURL]
	locks.mu.Unlock()
	if ok {
		return v
	}
	v = p.askVisibility(r, target, queueURL)
	locks.mu.Lock()
	if locks.visibility == nil {
		locks.visibility = map[string]time.Duration{}
	}
	locks.visibility[queueURL] = v
	locks.mu.Unlock()
	return v
}
