package envvar

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestReader(t *testing.T) {
	env := map[string]string{"D": "2m", "BAD_D": "soon", "FAR_D": "48h", "N": "7", "BAD_N": "x", "BIG_N": "101", "F": "0.5", "BAD_F": "3", "S": "v"}
	r := New(func(k string) string { return env[k] })
	if got := r.Duration("D", time.Second, 0, time.Hour); got != 2*time.Minute {
		t.Errorf("D = %s", got)
	}
	if got := r.Duration("UNSET", time.Second, 0, time.Hour); got != time.Second {
		t.Errorf("default = %s", got)
	}
	if got := r.Int("N", 1, 0, 10); got != 7 {
		t.Errorf("N = %d", got)
	}
	if got := r.Float("F", 0, 2); got == nil || *got != 0.5 {
		t.Errorf("F = %v", got)
	}
	if r.Float("UNSET", 0, 1) != nil || r.String("S", "d") != "v" || r.String("UNSET", "d") != "d" {
		t.Error("String/Float defaults")
	}
	if r.Err() != nil {
		t.Fatalf("no problem yet, got %v", r.Err())
	}
	r.Duration("BAD_D", 0, 0, time.Hour)
	r.Duration("FAR_D", 0, 0, time.Hour)
	r.Int("BAD_N", 0, 0, 10)
	r.Int("BIG_N", 0, 0, 100)
	r.Float("BAD_F", 0, 2)
	r.Required("MISSING")
	r.Check(errors.New("custom problem"))
	err := r.Err()
	for _, want := range []string{"BAD_D", "FAR_D", "BAD_N", "BIG_N", "BAD_F", "MISSING is not set", "custom problem"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}
