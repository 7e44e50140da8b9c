package inbound

import (
	"encoding/json"
	"testing"
)

// FuzzHandle: any request gets a JSON answer with a status the contract lists, and a
// rejected request leaves nothing stored or queued.
func FuzzHandle(f *testing.F) {
	f.Add(hello, "Bearer "+testToken, "POST", "/", false)
	f.Add(`{"userId":"u","messageId":"m","conversationId":"c","type":"card","text":"t","payload":{"title":"T","actions":[{"action":"url","label":"l","value":"v"}]}}`, "bearer "+testToken, "POST", "/", false)
	f.Add(`eyJ1c2VySWQiOiJ1In0=`, "Bearer "+testToken, "POST", "/", true)
	f.Add(`{`, "", "GET", "/x", false)
	f.Add(`{"userId":"\u0000"}`, "Basic abc", "POST", "/prod", false)
	allowed := map[int]bool{200: true, 400: true, 401: true, 404: true, 405: true, 409: true, 413: true}
	f.Add(`{"userId":"u","messageId":"x\ud800","conversationId":"c","type":"text","text":"t"}`, "Bearer "+testToken, "POST", "/", false)
	f.Fuzz(func(t *testing.T, body, auth, method, path string, b64 bool) {
		fx := newFixture(t)
		req := post(body)
		req.Headers["authorization"] = auth
		req.RequestContext.HTTP.Method = method
		req.RawPath = path
		req.IsBase64Encoded = b64
		res, err := fx.h.Handle(t.Context(), req)
		if err != nil {
			t.Fatalf("Handle error: %v", err)
		}
		if !allowed[res.StatusCode] || !json.Valid([]byte(res.Body)) {
			t.Fatalf("answer %d %q", res.StatusCode, res.Body)
		}
		if res.StatusCode != 200 {
			if records, exchanges := fx.store.Records(); records+exchanges != 0 {
				t.Fatalf("a %d left a record behind", res.StatusCode)
			}
			if q, fl, d := fx.queue.Stats(); q+fl+d != 0 {
				t.Fatalf("a %d left messages queued", res.StatusCode)
			}
		}
	})
}
