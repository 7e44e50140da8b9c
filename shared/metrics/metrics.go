// Package metrics turns log lines into CloudWatch metrics with the Embedded Metric
// Format: a JSON log line that carries an "_aws" block is read by CloudWatch Logs as
// metric values, with no API call from the function. The functions' existing lines
// carry the block; nothing extra is written.
package metrics

import (
	"log/slog"
	"time"
)

// Namespace is where Parley's metrics are.
const Namespace = "Parley"

// Units.
const (
	Count        = "Count"
	Milliseconds = "Milliseconds"
)

// Value is one metric value.
type Value struct {
	Name  string
	Unit  string
	Value float64
}

// One counts one event.
func One(name string) Value { return Value{name, Count, 1} }

// Millis is a duration in milliseconds.
func Millis(name string, d time.Duration) Value {
	return Value{name, Milliseconds, float64(d.Microseconds()) / 1000}
}

// Recorder adds the metric block to log lines when it is on: in Lambda, where
// CloudWatch reads it. The local stack leaves it off; its lines stay readable.
type Recorder struct{ On bool }

// Attrs returns the attributes that make a log line carry values: the "_aws" block
// and each value under its name. Metrics have no dimensions beyond the service, so
// their number — and cost — does not grow with channels; the channel is a property
// of the line, for CloudWatch Logs Insights.
func (r Recorder) Attrs(now time.Time, values ...Value) []slog.Attr {
	if !r.On || len(values) == 0 {
		return nil
	}
	defs := make([]map[string]string, len(values))
	attrs := make([]slog.Attr, 0, len(values)+2)
	for i, v := range values {
		defs[i] = map[string]string{"Name": v.Name, "Unit": v.Unit}
		attrs = append(attrs, slog.Float64(v.Name, v.Value))
	}
	attrs = append(attrs, slog.String("Service", "parley"), slog.Group("_aws",
		slog.Int64("Timestamp", now.UnixMilli()),
		slog.Any("CloudWatchMetrics", []map[string]any{{
			"Namespace": Namespace, "Dimensions": [][]string{{"Service"}}, "Metrics": defs,
		}}),
	))
	return attrs
}
