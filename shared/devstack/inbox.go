package devstack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/parley-chat/parley/shared/webhook"
)

// inbox is the default Response Endpoint of the local stack: it prints each delivery,
// checks its signature and answers 200, so `make run` shows the whole round trip.
type inbox struct {
	out     io.Writer
	secrets [][]byte
	mu      sync.Mutex
}

func (ib *inbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	sig := "signature ok"
	if err := webhook.Verify(ib.secrets, r.Header, body, 5*time.Minute, time.Now()); err != nil {
		sig = "signature INVALID: " + err.Error()
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, body, "  ", "  ") != nil {
		pretty.Reset()
		pretty.Write(body)
	}
	ib.mu.Lock()
	fmt.Fprintf(ib.out, "← delivery %s/%s in reply to %q · webhook-id %s · %s\n  %s\n",
		r.Header.Get("Parley-Reply-Index"), r.Header.Get("Parley-Reply-Count"), r.Header.Get("Parley-In-Reply-To"),
		r.Header.Get("webhook-id"), sig, pretty.String())
	ib.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}
