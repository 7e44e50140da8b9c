package settings

import (
	"fmt"
	"strings"
)

// Table renders the settings part reads as the README's Markdown table.
func Table(part Part) string {
	var b strings.Builder
	b.WriteString("| variable | meaning | default |\n|---|---|---|\n")
	for _, s := range All {
		if s.Env == "" || !s.Reads(part) || s.Env == SigningSecretARN.Env || s.Env == LLMAPIKeySecretARN.Env {
			continue
		}
		def := "`" + s.Default + "`"
		switch {
		case s.Default == "":
			def = ""
		case s.Kind == Duration || s.Kind == Int || s.Kind == Float:
			if s.Min != "" && s.Max != "" {
				def += fmt.Sprintf(" (%s–%s)", s.Min, s.Max)
			}
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", s.Env, s.Description, def)
	}
	return b.String()
}
