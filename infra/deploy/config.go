package deploy

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/settings"
)

// The rules file's place in the delivery function's package: /var/task is the unpacked
// package on Lambda.
const (
	RulesFileInPackage = "rules.json"
	RulesFileOnLambda  = "/var/task/" + RulesFileInPackage
	maxRulesFileBytes  = 1 << 20
)

// Config is a deployment's settings, read from CDK context (`cdk synth -c key=value`
// or cdk.json) and checked: a bad value fails `cdk synth` instead of a deploy or,
// worse, a running system.
type Config struct {
	Stage string
	Bot   string
	// Timing is the delivery side's, derived from the bot timeout.
	Timing Timing
	// RulesFile is the rules bot's file on this machine, absolute, which the stack copies
	// into the delivery function's package; "" for the built-in example rules.
	RulesFile string
	// values are the settings' values as the functions read them: the text given
	// (numbers in canonical form), or the declared default; absent when unset. A bot's
	// settings are there only with that bot.
	values map[*settings.Setting]string
}

// StackName is the CloudFormation stack name for the configured stage.
func (c Config) StackName() string { return "Parley-" + c.Stage }

// Value is s's value as the functions read it, "" when unset.
func (c Config) Value(s *settings.Setting) string { return c.values[s] }

// Duration is s's value, a duration (0 when unset).
func (c Config) Duration(s *settings.Setting) time.Duration {
	d, _ := time.ParseDuration(c.values[s])
	return d
}

// Int is s's value, a whole number (0 when unset).
func (c Config) Int(s *settings.Setting) int {
	n, _ := strconv.Atoi(c.values[s])
	return n
}

// Float is s's value, a number (0 when unset).
func (c Config) Float(s *settings.Setting) float64 {
	f, _ := strconv.ParseFloat(c.values[s], 64)
	return f
}

// Number is s's value as the number its SAM parameter holds: a duration in the
// parameter's unit (an alarm's threshold in seconds), or the number.
func (c Config) Number(s *settings.Setting) float64 {
	if s.Kind == settings.Duration {
		unit := Unit(parameterName(s))
		if unit == 0 {
			panic("deploy: " + s.Context + " has no unit")
		}
		return float64(c.Duration(s)) / float64(unit)
	}
	return c.Float(s)
}

// Timing is the delivery side's timing, derived from the bot timeout.
type Timing struct {
	FunctionTimeout   time.Duration // the delivery function's
	VisibilityTimeout time.Duration // the delivery queue's
}

// DeliveryTiming is the timing the functions' own rule gives (delivery.FunctionTimeout
// and VisibilityTimeout) for the bot timeout taken up to a whole second: Lambda and SQS
// take whole seconds.
func DeliveryTiming(botTimeout time.Duration) Timing {
	bot := (botTimeout + time.Second - 1).Truncate(time.Second)
	return Timing{FunctionTimeout: delivery.FunctionTimeout(bot), VisibilityTimeout: delivery.VisibilityTimeout(bot)}
}

// LoadConfig reads and checks the settings. lookup returns a context value or nil;
// repoRoot is the repository root, which a relative rulesFile is resolved against.
// Every problem is reported at once, each naming its context key.
func LoadConfig(lookup func(key string) any, repoRoot string) (Config, error) {
	var errs []error
	fail := func(s *settings.Setting, format string, args ...any) {
		errs = append(errs, fmt.Errorf("context %q: "+format, append([]any{s.Context}, args...)...))
	}
	text := func(s *settings.Setting) string {
		switch v := lookup(s.Context).(type) {
		case nil:
			return ""
		case float64: // a number in cdk.json
			return strconv.FormatFloat(v, 'f', -1, 64)
		default:
			return strings.TrimSpace(fmt.Sprint(v))
		}
	}

	c := Config{values: map[*settings.Setting]string{}}
	c.Bot = cmp.Or(text(settings.Bot), settings.Bot.Default)
	for _, s := range Settings {
		v := text(s)
		if s.Bot != "" && s.Bot != c.Bot {
			// Given for another bot, it would do nothing: refused. (With no valid bot,
			// only the bot is reported.)
			if v != "" && isBot(c.Bot) {
				fail(s, "is only used with bot=%s, and bot is %s", s.Bot, c.Bot)
			}
			continue
		}
		if v == "" {
			v = s.Default
		}
		if v == "" {
			if why, ok := required[s]; ok && s.Bot == "" {
				fail(s, "required: %s", why)
			} else if ok {
				fail(s, "required with bot=%s: %s", s.Bot, why)
			}
			continue
		}
		v, err := check(s, v)
		if err != nil {
			fail(s, "%v", err)
			continue
		}
		c.values[s] = v
	}

	c.Stage = c.values[settings.Stage]
	if path := c.values[settings.RulesFile]; path != "" {
		if !filepath.IsAbs(path) {
			path = filepath.Join(repoRoot, path)
		}
		if err := checkRulesFile(path); err != nil {
			fail(settings.RulesFile, "%v (a JSON rules file; a relative path is relative to the repository root)", err)
		}
		c.RulesFile, c.values[settings.RulesFile] = path, RulesFileOnLambda
	}
	if _, ok := c.values[settings.BotTimeout]; ok {
		c.Timing = DeliveryTiming(c.Duration(settings.BotTimeout))
	}

	// The rules between settings are the functions' own: the retry budget and the hold
	// limit against the queue's retention. Checked once each setting is valid alone.
	if !slices.ContainsFunc(deliveryInputs, func(s *settings.Setting) bool { _, ok := c.values[s]; return !ok }) {
		if err := c.DeliverySettings().Validate(); err != nil {
			// The function's message names variables: say which keys they are.
			var keys []string
			for _, s := range deliveryInputs {
				if regexp.MustCompile(`\b` + s.Env + `\b`).MatchString(err.Error()) {
					keys = append(keys, s.Context)
				}
			}
			errs = append(errs, fmt.Errorf("context %s together: %w", strings.Join(keys, ", "), err))
		}
	}

	if len(errs) > 0 {
		return Config{}, fmt.Errorf("invalid configuration:\n%w", errors.Join(errs...))
	}
	return c, nil
}

// deliveryInputs are the settings DeliverySettings reads.
var deliveryInputs = []*settings.Setting{settings.RetryMinDelay, settings.RetryMaxDelay, settings.MaxAttempts, settings.HoldLimit,
	settings.DeliveryTimeout, settings.BotTimeout, settings.HistoryTTL, settings.DisableAfterFailures, settings.DisableAfter, settings.EndpointRateLimit}

// DeliverySettings are the delivery side's settings as the delivery function builds
// them from its environment (delivery.ConfigFromEnv).
func (c Config) DeliverySettings() delivery.Settings {
	p := delivery.DefaultPolicy
	p.MinDelay = c.Duration(settings.RetryMinDelay)
	p.MaxDelay = c.Duration(settings.RetryMaxDelay)
	p.MaxAttempts = c.Int(settings.MaxAttempts)
	p.HoldLimit = c.Duration(settings.HoldLimit)
	return delivery.Settings{
		Policy:      p,
		SendTimeout: c.Duration(settings.DeliveryTimeout),
		BotTimeout:  c.Duration(settings.BotTimeout),
		HistoryTTL:  c.Duration(settings.HistoryTTL),
		Disable:     message.DisableRule{Failures: c.Int(settings.DisableAfterFailures), Span: c.Duration(settings.DisableAfter)},
		RateLimit:   c.Float(settings.EndpointRateLimit),
	}
}

// check checks v against s's kind and bounds and the deployment's own rules, and
// returns it in the form the functions read: numbers canonical, the rest as given.
func check(s *settings.Setting, v string) (string, error) {
	switch s.Kind {
	case settings.Duration:
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			return "", fmt.Errorf("%q is not a Go duration such as 10s or 12h", v)
		case d < mustDuration(s.Min) || d > mustDuration(s.Max):
			return "", fmt.Errorf("%s is out of range [%s, %s]", v, s.Min, s.Max)
		}
	case settings.Int:
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			return "", fmt.Errorf("%q is not a whole number", v)
		case n < mustInt(s.Min) || n > mustInt(s.Max):
			return "", fmt.Errorf("%d is out of range [%s, %s]", n, s.Min, s.Max)
		}
		v = strconv.Itoa(n)
	case settings.Float:
		f, err := strconv.ParseFloat(v, 64)
		switch {
		case err != nil || math.IsNaN(f) || math.IsInf(f, 0):
			return "", fmt.Errorf("%q is not a number", v)
		case f < mustFloat(s.Min) || f > mustFloat(s.Max):
			return "", fmt.Errorf("%s is out of range [%s, %s]", v, s.Min, s.Max)
		}
		v = strconv.FormatFloat(f, 'f', -1, 64)
	case settings.URL:
		if err := checkURL(v); err != nil {
			return "", err
		}
	}
	switch s {
	case settings.LLMAPIKeySecretName:
		switch {
		case strings.HasPrefix(v, "arn:"):
			return "", fmt.Errorf("%q is an ARN: give the secret's name", v)
		case secretSuffix.MatchString(v):
			return "", fmt.Errorf("%q ends in a hyphen and six characters, which Secrets Manager can take for an ARN's random suffix: rename the secret", v)
		}
	case settings.AlarmEmail:
		if a, err := mail.ParseAddress(v); err != nil || a.Address != v {
			return "", fmt.Errorf("%q is not an e-mail address", v)
		}
	}
	if len(s.Values) > 0 && !slices.Contains(s.Values, v) {
		return "", fmt.Errorf("%q is not one of %s", v, strings.Join(s.Values, ", "))
	}
	if p, ok := patterns[s]; ok && !p.re.MatchString(v) {
		return "", fmt.Errorf("%q is not %s", v, p.want)
	}
	if n, ok := maxLengths[s]; ok && len(v) > n {
		return "", fmt.Errorf("%d bytes, at most %d (Lambda allows 4 KB of environment in all)", len(v), n)
	}
	return v, nil
}

// secretSuffix: a name ending in a hyphen and six characters looks like a complete
// ARN's random suffix, and Secrets Manager can misread the partial ARN the function is
// given.
var secretSuffix = regexp.MustCompile(`-[A-Za-z0-9/_+=.@]{6}$`)

// checkURL accepts an absolute http(s) URL with a host and no credentials.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q must be an absolute http or https URL", s)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("%q has no host", s)
	}
	if u.User != nil {
		return fmt.Errorf("%q must not carry credentials", s)
	}
	return nil
}

// checkRulesFile checks what synth can: the rules file exists and is a JSON object.
// The delivery function checks its intents when it starts.
func checkRulesFile(path string) error {
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s does not exist", path)
	case err != nil:
		return err
	case !info.Mode().IsRegular():
		return fmt.Errorf("%s is not a file", path)
	case info.Size() > maxRulesFileBytes:
		return fmt.Errorf("%s is %d bytes, more than %d", path, info.Size(), maxRulesFileBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s is not JSON: %v", path, err)
	}
	if _, ok := doc.(map[string]any); !ok {
		return fmt.Errorf("%s is not a JSON object", path)
	}
	return nil
}
