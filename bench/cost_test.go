package bench

import (
	"math"
	"testing"
	"time"
)

// The cost model against a hand calculation: one HTTP request, one inbound invocation
// of 10 ms and a tenth of a delivery invocation of 20 ms at 256 MB, 4 WRU, 1 RRU, one
// SQS request and 0.2 by the event source mapping.
func TestCost(t *testing.T) {
	u := Usage{HTTPRequests: 1, InboundInvocations: 1, DeliveryInvocations: 0.1,
		InboundBilled: 10 * time.Millisecond, DeliveryBilled: 20 * time.Millisecond, MemoryMB: 256,
		WRU: 4, RRU: 1, SQSRequests: 1, ESMRequests: 0.2}
	lines := Cost(u)
	// 1.00 + 0.20 + 0.02 + (0.01 s·0.25 GB + 0.1·0.02 s·0.25 GB)·13.3334 + 4·0.625 + 0.125 + 0.5 + 0.1
	want := 1.00 + 0.20 + 0.02 + (0.0025+0.0005)*13.3334 + 2.5 + 0.125 + 0.5 + 0.1
	if got := Total(lines); math.Abs(got-want) > 1e-9 {
		for _, l := range lines {
			t.Logf("%-60s %8.4f %s  $%.4f", l.Item, l.PerMsg, l.Unit, l.Dollars)
		}
		t.Errorf("total = $%.6f per million, want $%.6f", got, want)
	}
}

func TestBilled(t *testing.T) {
	for _, c := range []struct{ in, want time.Duration }{
		{0, 0}, {time.Microsecond, time.Millisecond}, {time.Millisecond, time.Millisecond}, {1500 * time.Microsecond, 2 * time.Millisecond},
	} {
		if got := Billed(c.in); got != c.want {
			t.Errorf("Billed(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestStats(t *testing.T) {
	if got := Median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("Median odd = %g", got)
	}
	if got := Median([]float64{4, 1, 2, 3}); got != 2.5 {
		t.Errorf("Median even = %g", got)
	}
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[i] = time.Duration(100-i) * time.Millisecond
	}
	if p50, p99 := Percentile(ds, 50), Percentile(ds, 99); p50 != 50*time.Millisecond || p99 != 99*time.Millisecond {
		t.Errorf("p50 = %s, p99 = %s; want 50ms, 99ms", p50, p99)
	}
	if Percentile(nil, 50) != 0 || Median(nil) != 0 {
		t.Error("empty input")
	}
}
