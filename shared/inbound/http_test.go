package inbound

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// rawExchange writes a request by hand and reads the first response, so the test sees
// exactly what a client would: a 100 Continue or not, an answer or a reset.
func rawExchange(t *testing.T, addr, head string, body io.Reader) (*http.Response, []string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	if body != nil {
		go func() { _, _ = io.Copy(conn, body) }()
	}
	r := bufio.NewReader(conn)
	var interim []string
	for {
		res, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("reading the answer: %v (a reset instead of an answer?)", err)
		}
		if res.StatusCode == 100 {
			interim = append(interim, res.Status)
			continue
		}
		b, _ := io.ReadAll(res.Body)
		res.Body = io.NopCloser(strings.NewReader(string(b)))
		return res, interim
	}
}

func TestServeHTTPChecksTheTokenAndSizeBeforeTheBody(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	cases := []struct {
		name, auth string
		length     int
		status     int
		code       string
	}{
		{"bad token, Expect: 100-continue", "bearer nope", 100, 401, "invalid_token"},
		{"no token, Expect: 100-continue", "", 100, 401, "missing_token"},
		{"oversized Content-Length, Expect: 100-continue", "bearer " + testToken, 10 << 20, 413, "body_too_large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			head := fmt.Sprintf("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n", tc.length)
			if tc.auth != "" {
				head += "Authorization: " + tc.auth + "\r\n"
			}
			res, interim := rawExchange(t, addr, head+"\r\n", nil) // the body is never sent
			if len(interim) != 0 {
				t.Errorf("the server said %v: the client was told to send a body that is refused", interim)
			}
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			b, _ := io.ReadAll(res.Body)
			if !strings.Contains(string(b), `"code":"`+tc.code+`"`) {
				t.Errorf("body %s, want code %s", b, tc.code)
			}
		})
	}

	t.Run("a body of several MB without Expect gets the 413 JSON, not a reset", func(t *testing.T) {
		const size = 8 << 20
		head := fmt.Sprintf("POST / HTTP/1.1\r\nHost: x\r\nAuthorization: bearer %s\r\nContent-Length: %d\r\n\r\n", testToken, size)
		res, _ := rawExchange(t, addr, head, strings.NewReader(strings.Repeat("a", size)))
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 413 || !strings.Contains(string(b), "body_too_large") {
			t.Errorf("got %d %s, want 413 body_too_large", res.StatusCode, b)
		}
	})

	t.Run("a chunked body over the limit", func(t *testing.T) {
		req, _ := http.NewRequest("POST", srv.URL+"/", io.MultiReader(strings.NewReader(`{"text":"`), strings.NewReader(strings.Repeat("a", 100<<10))))
		req.Header.Set("Authorization", "bearer "+testToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != 413 {
			t.Errorf("status %d, want 413", res.StatusCode)
		}
	})

	t.Run("a good request still works", func(t *testing.T) {
		req, _ := http.NewRequest("POST", srv.URL+"/", strings.NewReader(hello))
		req.Header.Set("Authorization", "bearer "+testToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" {
			t.Errorf("status %d %s", res.StatusCode, res.Header.Get("Content-Type"))
		}
	})
	if records, _ := f.store.Records(); records != 1 {
		t.Errorf("%d records, want only the good request's", records)
	}
}
