package webhook

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 250_000_000, time.UTC) // not on a whole second
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"7", 7 * time.Second},
		{" 7 ", 7 * time.Second},
		{"43199", 43199 * time.Second},
		{"43200", MaxRetryAfter},
		{"99999999999999999999999", MaxRetryAfter}, // does not fit an int64
		{"-5", 0},
		{"+5", 0},
		{"1.5", 0},
		{"7s", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second}, // 89.75s rounded up
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), MaxRetryAfter},
		{"Friday, 02-Jan-26 03:05:35 GMT", 90 * time.Second}, // RFC 850, obsolete but still to be accepted
		{"yesterday", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q): got %v, want %v", tt.in, got, tt.want)
		}
	}
}
