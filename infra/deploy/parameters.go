package deploy

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/settings"
)

// SAMParameter is one parameter of the SAM template: a setting, with the constraints
// CloudFormation checks before a deploy.
type SAMParameter struct {
	Name    string
	Setting *settings.Setting // the deploy setting it gives
	Type    string            // String or Number
	// Default is nil for a parameter without one (CloudFormation asks for it).
	Default        *string
	AllowedValues  []string
	AllowedPattern string
	MinValue       string
	MaxValue       string
	MaxLength      int
	Allowed        string // what the constraints allow, for people
	Description    string
}

// SAMParameters are the settings SAM offers: types, defaults and bounds from the
// declarations (in the parameter's unit), the deployment's patterns and lengths, and
// choices where CloudFormation could not check the functions' rules otherwise.
func SAMParameters() []SAMParameter {
	var out []SAMParameter
	for _, s := range Settings {
		if name, decl := Parameter(s); name != "" {
			out = append(out, samParameter(s, decl, name))
		}
	}
	return out
}

func samParameter(s, decl *settings.Setting, name string) SAMParameter {
	p := SAMParameter{Name: name, Setting: s, Type: "String"}
	unit := Unit(name)
	unitName := map[time.Duration]string{time.Second: "s", time.Hour: "h"}[unit]
	// A setting every deployment needs has no default: CloudFormation asks for it. A
	// bot's required ones are empty by default, and the template's Rules ask for them.
	globallyRequired := isRequired(s) && s.Bot == ""
	mayBeEmpty := decl.Default == "" && !globallyRequired
	def := decl.Default
	var notes []string
	switch {
	case Choices[s] != nil:
		def = inUnit(decl.Default, unit)
		if !slices.Contains(Choices[s], def) {
			panic(fmt.Sprintf("deploy: %s's default %s is not one of its choices %v", name, def, Choices[s]))
		}
		p.AllowedValues = Choices[s]
		notes = append(notes, "One of the values CloudFormation can check (it has no arithmetic).")
	case decl.Kind == settings.Duration && unit != 0:
		p.Type, def = "Number", inUnit(decl.Default, unit)
		p.MinValue = strconv.Itoa(int(math.Ceil(float64(mustDuration(decl.Min)) / float64(unit))))
		p.MaxValue = strconv.Itoa(int(mustDuration(decl.Max) / unit))
	case decl.Kind == settings.Duration:
		p.AllowedPattern = `^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
		p.Allowed = fmt.Sprintf("a Go duration, %s–%s", decl.Min, decl.Max)
		notes = append(notes, fmt.Sprintf("A Go duration from %s to %s.", decl.Min, decl.Max))
	case decl.Kind == settings.Int && s == settings.MaxAttempts:
		p.Type, p.MinValue, p.MaxValue = "Number", decl.Min, strconv.Itoa(MaxAttemptsForChoices())
		notes = append(notes, fmt.Sprintf("At most %d here: with every choice of the delay and hold limit parameters, the attempts fit in the queue's retention (the CDK app checks the sum itself, and allows up to %s).",
			MaxAttemptsForChoices(), decl.Max))
	case decl.Kind == settings.Int || decl.Kind == settings.Float && def != "":
		p.Type, p.MinValue, p.MaxValue = "Number", decl.Min, decl.Max
	case decl.Kind == settings.Float:
		p.AllowedPattern = decimalPattern(decl.Min, decl.Max)
		p.Allowed = fmt.Sprintf("empty, or a number %s–%s", decl.Min, decl.Max)
		notes = append(notes, fmt.Sprintf("A number from %s to %s.", decl.Min, decl.Max))
	case len(decl.Values) > 0:
		p.AllowedValues = decl.Values
		if mayBeEmpty {
			p.AllowedValues = append([]string{""}, decl.Values...)
		}
	default: // String, URL
		switch {
		case decl.Kind == settings.URL:
			p.AllowedPattern, p.Allowed = `^https?://[^/?#@\s]+([/?#]\S*)?$`, "an absolute http(s) URL"
		case patterns[decl].re != nil:
			p.AllowedPattern, p.Allowed = patterns[decl].re.String(), patterns[decl].want
		}
		if p.AllowedPattern != "" && mayBeEmpty {
			p.AllowedPattern = "^(" + strings.TrimSuffix(strings.TrimPrefix(p.AllowedPattern, "^"), "$") + ")?$"
			p.Allowed = "empty, or " + p.Allowed
		}
		if n, ok := maxLengths[decl]; ok {
			p.MaxLength, p.Allowed = n, fmt.Sprintf("at most %d bytes", n)
		}
	}
	if !globallyRequired {
		p.Default = &def
	}
	switch {
	case p.AllowedValues != nil:
		p.Allowed = "`" + strings.Join(p.AllowedValues, "`, `") + "`"
		p.Allowed = strings.ReplaceAll(p.Allowed, "``", "(empty)")
	case p.MinValue != "":
		p.Allowed = p.MinValue + "–" + p.MaxValue
	case p.Allowed == "":
		p.Allowed = "any text"
	}

	// The declarations say which bot a setting is for, and that it is required.
	p.Description = decl.Description + "."
	if globallyRequired {
		p.Description = "Required: " + p.Description
	}
	if unit != 0 {
		p.Description += " In " + map[string]string{"s": "seconds", "h": "hours"}[unitName] + "."
	}
	p.Description = strings.Join(append([]string{p.Description}, notes...), " ")
	if s.Context != "" {
		p.Description += " (CDK: " + s.Context + ")"
	}
	return p
}

// YAML is the parameter's body in template.yaml.
func (p SAMParameter) YAML() string {
	lines := []string{"    Type: " + p.Type}
	add := func(key, value string) { lines = append(lines, "    "+key+": "+value) }
	if p.Default != nil {
		if p.Type == "Number" {
			add("Default", *p.Default)
		} else {
			add("Default", yamlText(*p.Default))
		}
	}
	if p.AllowedValues != nil {
		add("AllowedValues", flowList(p.AllowedValues))
	}
	if p.AllowedPattern != "" {
		add("AllowedPattern", yamlText(p.AllowedPattern))
	}
	if p.MinValue != "" {
		add("MinValue", p.MinValue)
		add("MaxValue", p.MaxValue)
	}
	if p.MaxLength > 0 {
		add("MaxLength", strconv.Itoa(p.MaxLength))
	}
	add("Description", yamlLong(p.Description, 6))
	return strings.Join(lines, "\n")
}

// ParametersTable is the parameters as infra/README.md's Markdown table.
func ParametersTable() string {
	var b strings.Builder
	b.WriteString("| parameter | default | allowed | context key |\n|---|---|---|---|\n")
	for _, p := range SAMParameters() {
		def := "(required)"
		if p.Default != nil {
			def = "`" + *p.Default + "`"
			if *p.Default == "" {
				def = "(empty)"
			}
		}
		key := "`" + p.Setting.Context + "`"
		if p.Setting == settings.RulesFile {
			key = "`rulesFile` (the file's path in the package)"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", p.Name, def, p.Allowed, key)
	}
	return b.String()
}

// inUnit writes a duration's text in unit, a whole number of it; unit 0 keeps the text.
func inUnit(text string, unit time.Duration) string {
	if unit == 0 {
		return text
	}
	d := mustDuration(text)
	if d%unit != 0 {
		panic(fmt.Sprintf("deploy: %s is not a whole number of %s", text, unit))
	}
	return strconv.Itoa(int(d / unit))
}

// decimalPattern matches a decimal number from min to max, or nothing; only from 0 to
// a whole number below 10, which is what is needed.
func decimalPattern(min, max string) string {
	n, err := strconv.Atoi(max)
	if min != "0" || err != nil || n < 1 || n > 9 {
		panic(fmt.Sprintf("deploy: no pattern for numbers from %s to %s", min, max))
	}
	return fmt.Sprintf(`^([0-%d](\.[0-9]+)?|%d(\.0+)?)?$`, n-1, n)
}

// MaxAttemptsForChoices is the most attempts SAM allows: the largest number that, with
// every choice of the retry delays and the hold limit SAM offers, passes the functions'
// own check (delivery.Settings.Validate); the other settings at their defaults.
func MaxAttemptsForChoices() int {
	valid := func(n int) bool {
		for _, min := range Choices[settings.RetryMinDelay] {
			for _, max := range Choices[settings.RetryMaxDelay] {
				for _, hold := range Choices[settings.HoldLimit] {
					if retryBudget(min, max, hold, n).Validate() != nil {
						return false
					}
				}
			}
		}
		return true
	}
	for n := mustInt(settings.MaxAttempts.Max); n >= mustInt(settings.MaxAttempts.Min); n-- {
		if valid(n) {
			return n
		}
	}
	panic("deploy: no number of attempts fits every choice of the retry budget")
}

// retryBudget is the delivery settings the functions build with the defaults but for
// the retry budget's four parts.
func retryBudget(minDelay, maxDelay, holdLimit string, maxAttempts int) delivery.Settings {
	c := Config{values: map[*settings.Setting]string{}}
	for _, s := range deliveryInputs {
		c.values[s] = s.Default
	}
	c.values[settings.RetryMinDelay], c.values[settings.RetryMaxDelay], c.values[settings.HoldLimit] = minDelay, maxDelay, holdLimit
	c.values[settings.MaxAttempts] = strconv.Itoa(maxAttempts)
	return c.DeliverySettings()
}

// The generated part of infra/README.md: the parameters table between these lines.
const (
	readmeBegin = "<!-- parameters: generated from infra/deploy by make template -->\n"
	readmeEnd   = "<!-- parameters: end -->"
)

// WithParametersTable is readme with its generated parameters table rewritten.
func WithParametersTable(readme []byte) ([]byte, error) {
	s := string(readme)
	i, j := strings.Index(s, readmeBegin), strings.Index(s, readmeEnd)
	if i < 0 || j < i {
		return nil, fmt.Errorf("no generated parameters table between %q and %q", strings.TrimSpace(readmeBegin), readmeEnd)
	}
	return []byte(s[:i+len(readmeBegin)] + ParametersTable() + s[j:]), nil
}
