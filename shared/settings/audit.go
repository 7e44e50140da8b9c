package settings

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Audit runs load — a part's configuration reader — with an environment that records
// what it reads, and reports every PARLEY_* variable (and PORT) it read that is not
// declared for part, and every one declared for part that it did not read. env gives
// the values load is run with.
func Audit(part Part, env map[string]string, load func(getenv func(string) string)) []string {
	var mu sync.Mutex
	read := map[string]bool{}
	load(func(k string) string {
		mu.Lock()
		read[k] = true
		mu.Unlock()
		return env[k]
	})
	var problems []string
	for k := range read {
		if !strings.HasPrefix(k, "PARLEY_") && k != "PORT" {
			continue
		}
		s, ok := Lookup(k)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s is read but not declared in shared/settings", k))
		case !s.Reads(part):
			problems = append(problems, fmt.Sprintf("%s is read but not declared for this part", k))
		}
	}
	for _, s := range All {
		if s.Env != "" && s.Reads(part) && !read[s.Env] {
			problems = append(problems, fmt.Sprintf("%s is declared for this part but not read", s.Env))
		}
	}
	sort.Strings(problems)
	return slices.Compact(problems)
}
