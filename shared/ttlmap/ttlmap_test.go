package ttlmap_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/ttlmap"
)

func TestMap(t *testing.T) {
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	m := ttlmap.New[string](time.Minute)
	if _, fresh, found := m.Get("a", start); fresh || found {
		t.Fatalf("empty map: fresh %v, found %v", fresh, found)
	}
	m.Put("a", "one", start)
	for _, c := range []struct {
		at           time.Duration
		fresh, found bool
	}{{0, true, true}, {time.Minute - time.Nanosecond, true, true}, {time.Minute, false, true}, {time.Hour, false, true}} {
		v, fresh, found := m.Get("a", start.Add(c.at))
		if v != "one" || fresh != c.fresh || found != c.found {
			t.Errorf("at +%s: %q fresh %v found %v, want \"one\" %v %v", c.at, v, fresh, found, c.fresh, c.found)
		}
	}
	m.Put("a", "two", start.Add(time.Hour))
	if v, fresh, _ := m.Get("a", start.Add(time.Hour)); v != "two" || !fresh {
		t.Errorf("after a new Put: %q fresh %v", v, fresh)
	}
	m.Delete("a")
	if _, _, found := m.Get("a", start); found {
		t.Error("found after Delete")
	}
}

func TestMapIsBounded(t *testing.T) {
	now := time.Now()
	m := ttlmap.New[int](time.Minute)
	for i := range ttlmap.MaxEntries {
		m.Put(strconv.Itoa(i), i, now)
	}
	m.Put("one more", 1, now)
	if _, _, found := m.Get("0", now); found {
		t.Error("an old entry survived past MaxEntries: the map is not bounded")
	}
	if _, fresh, _ := m.Get("one more", now); !fresh {
		t.Error("the newest entry is missing")
	}
}
