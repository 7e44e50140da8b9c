// Package deploy is Parley's deployment, said once: the settings it takes (shared/settings'
// declarations, and the few only the deployment has), how it checks them, and its
// resources — sizes, permissions, environments, alarms, dashboard, outputs. The CDK app
// (infra/) builds its stack from it with constructs; cmd/samtemplate writes
// ../template.yaml from it. Neither copies a name, a default, a bound or a rule of the
// functions: those come from the main module.
package deploy

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/shared/settings"
)

// Settings only the deployment has: the thresholds of two alarms. Declared with
// shared/settings' type, so that they are read, checked and offered as the others are.
var (
	OldestMessageAgeAlarm = &settings.Setting{Kind: settings.Duration, Default: "1h", Min: "1m", Max: "336h", Parts: settings.Deploy,
		Context: "oldestMessageAgeAlarm", Parameter: "OldestMessageAgeAlarmSeconds",
		Description: "the DeliveryQueueOldestMessage alarm fires when a turn has waited this long in the delivery queue"}
	FailedAttemptsAlarm = &settings.Setting{Kind: settings.Int, Default: "100", Min: "1", Max: "1000000", Parts: settings.Deploy,
		Context: "failedAttemptsAlarm", Parameter: "FailedAttemptsAlarmThreshold",
		Description: "the FailedAttemptsHigh alarm fires when more delivery attempts than this failed in 5 minutes"}
)

// What SAM takes where it cannot take a setting as CDK does. The stage: shared/settings
// gives it no parameter name (only a deployment names itself). The rules file: `sam
// build` cannot copy a file into the function's package, so the user copies it there
// and says where.
var (
	stageParameter = "Stage"
	RulesFilePath  = &settings.Setting{Kind: settings.String, Parts: settings.Deploy, Parameter: "RulesFilePath", Bot: "rules",
		Description: "the rules file's path in the delivery function's package, such as /var/task/rules.json: after sam build, copy your file to .aws-sam/build/DeliveryFunction/rules.json; empty: the built-in example rules"}
)

// Settings are the settings a deployment takes: every declared setting with a CDK
// context key, in shared/settings' order, then the deployment's own.
var Settings = func() []*settings.Setting {
	var out []*settings.Setting
	for _, s := range settings.All {
		if s.Context != "" {
			out = append(out, s)
		}
	}
	return append(out, OldestMessageAgeAlarm, FailedAttemptsAlarm)
}()

// Parameter is the SAM parameter that gives s's value, "" when SAM does not offer s,
// with the declaration that describes the parameter (s itself, or RulesFilePath).
func Parameter(s *settings.Setting) (string, *settings.Setting) {
	switch {
	case s == settings.Stage:
		return stageParameter, s
	case s == settings.RulesFile:
		return RulesFilePath.Parameter, RulesFilePath
	}
	return s.Parameter, s
}

// required are the settings without a default that a deployment cannot do without,
// with what to give; a bot's only with that bot.
var required = map[*settings.Setting]string{
	settings.ResponseEndpointURL: "the absolute http(s) URL the delivery function POSTs bot messages to (pass it with -c responseEndpointUrl=https://your.host/path)",
	settings.HTTPBotURL:          "the absolute http(s) URL of the bot service's Rasa REST webhook",
	settings.LLMModel:            "the model name, such as gpt-4o-mini",
	settings.LLMAPIKeySecretName: "the name of an existing Secrets Manager secret holding the API key",
}

// isRequired says whether a deployment needs s given (with its bot, for a bot's setting).
func isRequired(s *settings.Setting) bool { _, ok := required[s]; return ok }

// optional says whether s may be left empty: it has no default and is not required.
// Its variable is then set only when given.
func optional(s *settings.Setting) bool { return s.Default == "" && !isRequired(s) }

// Checks only the deployment makes, beyond a setting's kind and bounds: names AWS
// constrains, the size of what goes into the function's environment. SAM gets the
// patterns as AllowedPattern and the lengths as MaxLength.
var (
	patterns = map[*settings.Setting]struct {
		re   *regexp.Regexp
		want string
	}{
		settings.Stage: {regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,31}$`), "1-32 letters, digits or dashes, starting with a letter or digit"},
		// Secrets Manager's characters for secret names.
		settings.LLMAPIKeySecretName: {regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]{1,512}$`), "a secret name (1-512 letters, digits and /_+=.@-)"},
		RulesFilePath:                {regexp.MustCompile(`^/\S*$`), "an absolute path"},
	}
	maxLengths = map[*settings.Setting]int{
		// Well under Lambda's 4 KB for all of a function's variables together.
		settings.LLMSystemPrompt: 2048,
	}
)

// Choices are the values SAM offers, in the parameter's unit, for the settings
// CloudFormation could not otherwise keep right, as it has no arithmetic: the bot
// timeout, whose delivery timing is a mapping (DeliveryTiming), and the parts of the
// retry budget, which must fit in the queue's retention together. Every retry delay
// chosen is at most every maximum delay chosen; the most attempts SAM allows are
// derived (MaxAttemptsForChoices).
var Choices = map[*settings.Setting][]string{
	settings.BotTimeout:    {"10", "30", "60", "120", "180", "300"},
	settings.RetryMinDelay: {"1s", "2s", "5s", "10s", "30s"},
	settings.RetryMaxDelay: {"30s", "1m", "5m", "10m", "30m", "1h", "2h", "3h", "6h", "12h"},
	settings.HoldLimit:     {"0s", "1m", "5m", "15m", "30m", "1h", "2h", "3h", "6h", "12h"},
}

// Unit is the unit of s's SAM parameter, named by its suffix (BotTimeoutSeconds,
// RecordTtlHours); 0: a Go duration's text, or not a duration.
func Unit(parameter string) time.Duration {
	switch {
	case strings.HasSuffix(parameter, "Seconds"):
		return time.Second
	case strings.HasSuffix(parameter, "Hours"):
		return time.Hour
	}
	return 0
}

// bots are the bots the delivery function knows.
var bots = settings.Bot.Values

// botTitle is a bot's name as part of a SAM condition's: llm, IsLlmBot.
func botTitle(bot string) string { return strings.ToUpper(bot[:1]) + bot[1:] }

func mustDuration(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(fmt.Sprintf("deploy: bad duration %q", s))
	}
	return d
}

func mustInt(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(fmt.Sprintf("deploy: bad whole number %q", s))
	}
	return n
}

func mustFloat(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		panic(fmt.Sprintf("deploy: bad number %q", s))
	}
	return f
}

// isBot says whether v is a bot.
func isBot(v string) bool { return slices.Contains(bots, v) }
