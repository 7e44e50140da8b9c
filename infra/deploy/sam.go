package deploy

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/parley-chat/parley/shared/settings"
)

// The SAM template's skeleton: the resources' structure. Every name, value, list and
// rule in it comes from this package and shared/settings.
//
//go:embed sam.yaml.tmpl
var samSkeleton string

// SAMTemplate is ../template.yaml: the deployment as a SAM template, its settings as
// parameters.
func SAMTemplate() ([]byte, error) {
	tmpl, err := template.New("template.yaml").Option("missingkey=error").Parse(samSkeleton)
	if err != nil {
		return nil, err
	}
	data := map[string]any{
		"Parameters": SAMParameters(), "Timing": samTiming(), "Conditions": samConditions(), "Rules": samRules(),
		"PartitionKey": PartitionKey, "SortKey": SortKey, "TTLAttribute": TTLAttribute,
		"RetentionSeconds": int(Retention.Seconds()), "MaxReceives": MaxReceives,
		"SigningSecretDescription": yamlText(SigningSecretDescription), "SigningSecretLength": SigningSecretLength,
		"LogRetentionDays": LogRetentionDays, "BatchSize": BatchSize,
		"Functions": samFunctions(), "Inbound": samFunction(&Inbound), "Delivery": samFunction(&Delivery),
		"Alarms": samAlarms(), "DashboardBody": indent(8, DashboardBody(samSubRef, samSubValue)), "Outputs": samOutputs(),
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// parameterName is how the SAM template names a setting.
func parameterName(s *settings.Setting) string {
	name, _ := Parameter(s)
	return name
}

type samTimingRow struct {
	Bot                  string
	Function, Visibility int
}

func samTiming() []samTimingRow {
	var out []samTimingRow
	for _, v := range Choices[settings.BotTimeout] {
		t := DeliveryTiming(time.Duration(mustInt(v)) * time.Second)
		out = append(out, samTimingRow{v, int(t.FunctionTimeout.Seconds()), int(t.VisibilityTimeout.Seconds())})
	}
	return out
}

type samCondition struct{ Name, Expr string }

// condition is the SAM condition a variable or a statement depends on, "" for none.
func envCondition(e EnvVar) string {
	switch {
	case e.Optional():
		return "Has" + parameterName(e.Setting)
	case e.Setting.Bot != "":
		return "Is" + botTitle(e.Setting.Bot) + "Bot"
	}
	return ""
}

func statementCondition(st Statement) string {
	switch {
	case st.Tracing:
		return "TracingActive"
	case st.Bot != "":
		return "Is" + botTitle(st.Bot) + "Bot"
	}
	return ""
}

// samConditions: one for each bot something depends on, then one for each optional
// variable.
func samConditions() []samCondition {
	botUsed := map[string]bool{}
	var has []samCondition
	for _, f := range Functions {
		for _, e := range f.Environment() {
			bot := e.Setting.Bot
			if e.Optional() {
				p := parameterName(e.Setting)
				expr := `!Not [!Equals [!Ref ` + p + `, ""]]`
				if bot != "" {
					expr = `!And [!Equals [!Ref Bot, ` + bot + `], ` + expr + `]`
				}
				has = append(has, samCondition{envCondition(e), expr})
			} else if bot != "" {
				botUsed[bot] = true
			}
		}
		for _, st := range f.Statements {
			if st.Bot != "" {
				botUsed[st.Bot] = true
			}
		}
	}
	var out []samCondition
	for _, bot := range bots {
		if botUsed[bot] {
			out = append(out, samCondition{"Is" + botTitle(bot) + "Bot", "!Equals [!Ref Bot, " + bot + "]"})
		}
	}
	return append(out, has...)
}

type samRule struct {
	Name, Bot string
	Needs     []string // parameters
}

func samRules() []samRule {
	var out []samRule
	for _, bot := range bots {
		r := samRule{Name: botTitle(bot) + "BotNeedsItsSettings", Bot: bot}
		for _, s := range Settings {
			if s.Bot == bot && isRequired(s) {
				r.Needs = append(r.Needs, parameterName(s))
			}
		}
		if len(r.Needs) > 0 {
			out = append(out, r)
		}
	}
	return out
}

type samFunctionData struct {
	ID, Logs, PolicyName, Statements string
	Properties, Common, Timeout      string
}

func samFunctions() []samFunctionData {
	var out []samFunctionData
	for _, f := range Functions {
		out = append(out, samFunction(f))
	}
	return out
}

func samFunction(f *Function) samFunctionData {
	d := samFunctionData{ID: f.ID, Logs: f.Logs, PolicyName: "parley-" + strings.ToLower(strings.TrimSuffix(f.ID, "Function")),
		Timeout: strconv.Itoa(int(f.Timeout.Seconds()))}
	var st []string
	for _, s := range f.Statements {
		st = append(st, statementYAML(s))
	}
	d.Statements = strings.Join(st, "\n")
	d.Properties = strings.Join([]string{
		"      CodeUri: .",
		"      Runtime: " + Runtime,
		"      Architectures: [" + Architecture + "]",
		"      Handler: " + Handler,
		"      Description: " + yamlLong(f.Description, 8),
		"      MemorySize: " + strconv.Itoa(f.MemoryMB),
	}, "\n")
	common := []string{
		"      Role: !GetAtt " + f.ID + "Role.Arn",
		"      Tracing: !If [TracingActive, Active, PassThrough]",
		"      LoggingConfig:",
		"        LogFormat: JSON",
		"        LogGroup: !Ref " + f.Logs,
		"      Environment:",
		"        Variables:",
	}
	for _, e := range f.Environment() {
		value := samEnvValue(e)
		if c := envCondition(e); c != "" {
			value = "!If [" + c + ", " + value + ", !Ref AWS::NoValue]"
		}
		common = append(common, "          "+e.Setting.Env+": "+value)
	}
	for _, v := range LocalEndpoints {
		common = append(common, "          "+v+`: "" # for sam local: make local-aws`)
	}
	d.Common = strings.Join(common, "\n")
	return d
}

// samEnvValue is a variable's value: a resource, or the parameter, in the unit the
// function reads.
func samEnvValue(e EnvVar) string {
	if e.Resource != 0 {
		return samRef(e.Resource)
	}
	if p := parameterName(e.Setting); Unit(p) == 0 {
		return "!Ref " + p
	}
	return `!Sub "` + samSubText(e.Setting) + `"`
}

// statementYAML is one statement of a role's policy, indented for its place.
func statementYAML(st Statement) string {
	var lines []string
	if st.Why != "" {
		lines = append(lines, comment(14, st.Why)...)
	}
	body := []string{"Effect: Allow"}
	if len(st.Actions) == 1 {
		body = append(body, "Action: "+st.Actions[0])
	} else {
		body = append(body, "Action:")
		for _, a := range st.Actions {
			body = append(body, "  - "+a)
		}
	}
	body = append(body, "Resource: "+samRef(st.Resource))
	item := func(pad string) {
		for i, l := range body {
			if i == 0 {
				lines = append(lines, pad+"- "+l)
			} else {
				lines = append(lines, pad+"  "+l)
			}
		}
	}
	if c := statementCondition(st); c != "" {
		lines = append(lines, strings.Repeat(" ", 14)+"- !If", strings.Repeat(" ", 16)+"- "+c)
		item(strings.Repeat(" ", 16))
		lines = append(lines, strings.Repeat(" ", 16)+"- !Ref AWS::NoValue")
	} else {
		item(strings.Repeat(" ", 14))
	}
	return strings.Join(lines, "\n")
}

// samRef is a reference as a YAML value.
func samRef(r Ref) string {
	arn := func(resource string) string {
		return `!Sub "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:` + resource + `"`
	}
	llmKey := "${" + parameterName(settings.LLMAPIKeySecretName) + "}"
	switch r {
	case TableName:
		return "!Ref Table"
	case TableArn:
		return "!GetAtt Table.Arn"
	case QueueURL:
		return "!Ref DeliveryQueue"
	case QueueArn:
		return "!GetAtt DeliveryQueue.Arn"
	case QueueName:
		return "!GetAtt DeliveryQueue.QueueName"
	case DeadLetterQueueURL:
		return "!Ref DeadLetterQueue"
	case DeadLetterQueueArn:
		return "!GetAtt DeadLetterQueue.Arn"
	case DeadLetterQueueName:
		return "!GetAtt DeadLetterQueue.QueueName"
	case SigningSecretArn:
		return "!Ref SigningSecret"
	case LLMKeyArn:
		return arn(llmKey)
	case LLMKeyArns:
		return arn(llmKey + "-??????")
	case ChannelKeysArn:
		return arn(ChannelKeySecrets)
	case InboundFunctionName:
		return "!Ref " + Inbound.ID
	case DeliveryFunctionName:
		return "!Ref " + Delivery.ID
	case WebhookURL:
		return `!Sub "https://${ServerlessHttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"`
	case AlarmTopicArn:
		return "!Ref AlarmTopic"
	case Anything:
		return `"*"`
	}
	panic(fmt.Sprintf("deploy: no SAM reference for %d", r))
}

// samSubRef is a reference inside the dashboard's Fn::Sub.
func samSubRef(r Ref) string {
	switch r {
	case QueueName:
		return "${DeliveryQueue.QueueName}"
	case DeadLetterQueueName:
		return "${DeadLetterQueue.QueueName}"
	case InboundFunctionName:
		return "${" + Inbound.ID + "}"
	case DeliveryFunctionName:
		return "${" + Delivery.ID + "}"
	case Region:
		return "${AWS::Region}"
	}
	panic(fmt.Sprintf("deploy: no SAM substitution for %d", r))
}

func samSubValue(s *settings.Setting) string { return "${" + parameterName(s) + "}" }

// samSubText is a setting's value in an Fn::Sub text, as the function reads it.
func samSubText(s *settings.Setting) string {
	p := parameterName(s)
	return "${" + p + "}" + map[time.Duration]string{time.Second: "s", time.Hour: "h"}[Unit(p)]
}

type samAlarm struct {
	ID, Description, Namespace, MetricName, Dimension, Of, Statistic string
	Period                                                           int
	Threshold                                                        string
}

func samAlarms() []samAlarm {
	var out []samAlarm
	for _, a := range Alarms {
		m := a.Metric
		of := MetricsService
		if m.Of != 0 {
			of = samRef(m.Of)
		}
		threshold := strconv.FormatFloat(a.Threshold, 'f', -1, 64)
		if a.ThresholdFrom != nil {
			threshold = "!Ref " + parameterName(a.ThresholdFrom)
		}
		description := yamlLong(a.Description(samSubText), 8)
		if strings.Contains(description, "${") {
			description = "!Sub " + description
		}
		out = append(out, samAlarm{ID: a.ID, Description: description,
			Namespace: m.Namespace, MetricName: m.Name, Dimension: m.Dimension, Of: of, Statistic: m.Statistic,
			Period: int(a.Period.Seconds()), Threshold: threshold})
	}
	return out
}

type samOutput struct{ ID, Condition, Description, Value string }

func samOutputs() []samOutput {
	var out []samOutput
	for _, o := range Outputs {
		out = append(out, samOutput{o.ID, "", yamlText(o.Description), samRef(o.Value)})
	}
	o := AlarmTopicOutput
	return append(out, samOutput{o.ID, "HasAlarmEmail", yamlText(o.Description), samRef(o.Value)})
}

// YAML text.

var plainYAML = regexp.MustCompile(`^[A-Za-z0-9/][A-Za-z0-9 ./_<>()',;=+-]*$`)

// yamlText writes s as a YAML scalar: plain when that reads back as the same string,
// else double-quoted (JSON's escapes are YAML's).
func yamlText(s string) string {
	_, numErr := strconv.ParseFloat(s, 64)
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~":
	default:
		if plainYAML.MatchString(s) && numErr != nil && !strings.HasSuffix(s, " ") {
			return s
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// yamlLong writes a long text folded (>-) into lines of at most 90 columns at indent.
func yamlLong(s string, indent int) string {
	if len(s) <= 70 || strings.ContainsAny(s, "\n\t") {
		return yamlText(s)
	}
	pad := strings.Repeat(" ", indent)
	return ">-\n" + pad + strings.Join(wrap(s, 90-indent), "\n"+pad)
}

// comment writes s as comment lines at indent, at most 90 columns.
func comment(indent int, s string) []string {
	var out []string
	for _, l := range wrap(s, 90-indent-2) {
		out = append(out, strings.Repeat(" ", indent)+"# "+l)
	}
	return out
}

// wrap breaks s into lines of at most width, at spaces.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	return append(lines, line)
}

func flowList(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = yamlText(v)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

func indent(n int, s string) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}
