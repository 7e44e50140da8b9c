package deploy

import (
	"encoding/json"
	"strings"

	"github.com/parley-chat/parley/shared/settings"
)

// Widget is one graph of the dashboard: 5-minute periods, both axes from 0.
type Widget struct {
	Title      string
	Metrics    []Metric // Metric.Right puts one on the right axis
	LeftLabel  string
	RightLabel string
	// AlarmLine marks a threshold setting's value on the left axis.
	AlarmLine *settings.Setting
}

// Dashboard layout: three rows of three graphs, each a third of CloudWatch's 24 columns.
const (
	WidgetWidth  = 8
	WidgetHeight = 6
)

// Dashboard is what an operator looks at first, Parley-<stage>-<region> (dashboard
// names are per account, not per region): traffic, bot turns, deliveries and their
// failures, the queues, the functions.
var Dashboard = func() [][]Widget {
	latency := func(name, label string) []Metric {
		p50, p99 := parley(name, "p50", label+" p50"), parley(name, "p99", label+" p99")
		p50.Right, p99.Right = true, true
		return []Metric{p50, p99}
	}
	functions := func(name, statistic, suffix string) []Metric {
		return []Metric{
			lambdaMetric(InboundFunctionName, name, statistic, "inbound "+suffix),
			lambdaMetric(DeliveryFunctionName, name, statistic, "delivery "+suffix),
		}
	}
	return [][]Widget{
		{
			{Title: "Inbound: accepted, replayed, pushed", LeftLabel: "messages / 5 min",
				Metrics: []Metric{parley("Accepted", "Sum", "accepted"), parley("Replayed", "Sum", "replayed"), parley("Pushed", "Sum", "pushed")}},
			{Title: "Bot: turns and latency", LeftLabel: "turns / 5 min", RightLabel: "ms",
				Metrics: append([]Metric{parley("Turns", "Sum", "turns")}, latency("BotLatency", "bot latency")...)},
			{Title: "Delivery: delivered and latency", LeftLabel: "messages / 5 min", RightLabel: "ms",
				Metrics: append([]Metric{parley("Delivered", "Sum", "delivered")}, latency("DeliveryLatency", "delivery latency")...)},
		},
		{
			{Title: "Delivery failures", LeftLabel: "per 5 min",
				Metrics: []Metric{parley("FailedAttempts", "Sum", "failed attempts"), parley("DeadLettered", "Sum", "dead-lettered"), parley("EndpointDisabled", "Sum", "endpoints disabled")}},
			{Title: "Queues: messages waiting", LeftLabel: "messages", Metrics: []Metric{
				sqsMetric(QueueName, "ApproximateNumberOfMessagesVisible", "Maximum", "delivery queue"),
				sqsMetric(DeadLetterQueueName, "ApproximateNumberOfMessagesVisible", "Maximum", "dead-letter queue"),
			}},
			{Title: "Delivery queue: oldest message", LeftLabel: "seconds", AlarmLine: OldestMessageAgeAlarm,
				Metrics: []Metric{sqsMetric(QueueName, "ApproximateAgeOfOldestMessage", "Maximum", "oldest message age")}},
		},
		{
			{Title: "Functions: errors and throttles", LeftLabel: "per 5 min",
				Metrics: append(functions("Errors", "Sum", "errors"), functions("Throttles", "Sum", "throttles")...)},
			{Title: "Functions: duration", LeftLabel: "ms",
				Metrics: append(functions("Duration", "p50", "p50"), functions("Duration", "p99", "p99")...)},
			{Title: "Functions: invocations", LeftLabel: "per 5 min", Metrics: functions("Invocations", "Sum", "invocations")},
		},
	}
}()

// DashboardBody is the dashboard's JSON: ref writes a reference (the queue's name, the
// region) and value a threshold setting's value, each as the template has them (SAM:
// "${DeliveryQueue.QueueName}" and "${OldestMessageAgeAlarmSeconds}" in an Fn::Sub; CDK:
// tokens and the number). One widget a line, one metric a line.
func DashboardBody(ref func(Ref) string, value func(*settings.Setting) string) string {
	type axis struct {
		Label     string `json:"label"`
		Min       int    `json:"min"`
		ShowUnits bool   `json:"showUnits"`
	}
	type annotation struct {
		Label string `json:"label"`
		Value string `json:"value"` // alarmValue, replaced after
		YAxis string `json:"yAxis"`
	}
	type properties struct {
		View        string                  `json:"view"`
		Title       string                  `json:"title"`
		Region      string                  `json:"region"`
		Metrics     []json.RawMessage       `json:"metrics"`
		Annotations map[string][]annotation `json:"annotations,omitempty"`
		YAxis       map[string]axis         `json:"yAxis"`
	}
	type widget struct {
		Type       string     `json:"type"`
		Width      int        `json:"width"`
		Height     int        `json:"height"`
		X          int        `json:"x"`
		Y          int        `json:"y"`
		Properties properties `json:"properties"`
	}
	var lines []string
	for row, widgets := range Dashboard {
		for col, w := range widgets {
			p := properties{View: "timeSeries", Title: w.Title, Region: ref(Region),
				YAxis: map[string]axis{"left": {Label: w.LeftLabel}}}
			if w.RightLabel != "" {
				p.YAxis["right"] = axis{Label: w.RightLabel}
			}
			for _, m := range w.Metrics {
				opts := map[string]string{"label": m.Label, "stat": m.Statistic}
				if m.Right {
					opts["yAxis"] = "right"
				}
				dim := MetricsService
				if m.Of != 0 {
					dim = ref(m.Of)
				}
				p.Metrics = append(p.Metrics, mustJSON([]any{m.Namespace, m.Name, m.Dimension, dim, opts}))
			}
			if w.AlarmLine != nil {
				p.Annotations = map[string][]annotation{"horizontal": {{Label: "alarm", Value: alarmValue, YAxis: "left"}}}
			}
			line := string(mustJSON(widget{Type: "metric", Width: WidgetWidth, Height: WidgetHeight, X: col * WidgetWidth, Y: row * WidgetHeight, Properties: p}))
			if w.AlarmLine != nil {
				// A number, which a template may only know at deploy time.
				line = strings.Replace(line, `"`+alarmValue+`"`, value(w.AlarmLine), 1)
			}
			// One metric a line.
			line = strings.Replace(line, `"metrics":[`, "\"metrics\":[\n    ", 1)
			line = strings.ReplaceAll(line, `}],["`, "}],\n    [\"")
			lines = append(lines, "  "+line)
		}
	}
	return "{\"widgets\": [\n" + strings.Join(lines, ",\n") + "\n]}"
}

const alarmValue = "(alarm threshold)"

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
