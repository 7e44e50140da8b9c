package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/awslabs/goformation/v7/cloudformation/apigatewayv2"
	"github.com/awslabs/goformation/v7/cloudformation/cloudwatch"
	"github.com/awslabs/goformation/v7/cloudformation/dynamodb"
	"github.com/awslabs/goformation/v7/cloudformation/iam"
	"github.com/awslabs/goformation/v7/cloudformation/lambda"
	"github.com/awslabs/goformation/v7/cloudformation/logs"
	"github.com/awslabs/goformation/v7/cloudformation/secretsmanager"
	"github.com/awslabs/goformation/v7/cloudformation/sqs"
	"github.com/awslabs/goformation/v7/intrinsics"
)

// system is what a deploy depends on, read from either template: the synthesized CDK
// template or the SAM template.yaml. Resources are named the way both templates share:
// a CDK construct path below the stack (DeliveryQueue, InboundFunction) is a SAM logical
// id. References become "ref:<name>" and "getatt:<name>.<attribute>".
type system struct {
	Functions map[string]*function
	Tables    map[string]table
	Queues    map[string]queue
	Secrets   map[string]secret
	Alarms    map[string]alarm
	// Dashboards are the CloudWatch dashboards: the name, and the body as parsed JSON
	// (widgets, metrics, labels, layout), so that the two templates' formatting does
	// not matter and everything else does.
	Dashboards map[string]dashboard
	Outputs    []string
}

type dashboard struct {
	Name string
	Body any
}

type function struct {
	Runtime       string
	Architectures []string
	Handler       string
	MemorySize    int
	Timeout       int
	Environment   map[string]string
	LogFormat     string
	LogRetention  int // days
	// Tracing is the X-Ray mode: Active or PassThrough, Lambda's default, which is
	// what a function without TracingConfig gets.
	Tracing string
	// ManagedPolicies are the names of the AWS managed policies on the role.
	ManagedPolicies []string
	// Permissions maps each resource to the sorted actions allowed on it.
	Permissions map[string][]string
	// Routes are the HTTP API routes that reach the function; SAM's catch-all pair
	// (ANY / and ANY /{proxy+}) is written as CDK's "$default".
	Routes               []string
	PayloadFormatVersion string
	Queues               []eventSource
}

type eventSource struct {
	Queue                 string
	BatchSize             int
	MaximumConcurrency    int
	FunctionResponseTypes []string
}

type table struct {
	Keys           []string // "pk S HASH"
	BillingMode    string
	TimeToLive     string
	PointInTime    bool
	DeletionPolicy string
}

type queue struct {
	Fifo                      bool
	ContentBasedDeduplication bool
	DeduplicationScope        string // messageGroup and
	FifoThroughputLimit       string // perMessageGroupId: high-throughput FIFO
	RetentionSeconds          int
	VisibilityTimeout         int
	DeadLetterTarget          string
	MaxReceiveCount           int
}

type secret struct {
	PasswordLength     int
	ExcludePunctuation bool
}

type alarm struct {
	Namespace, Metric, Statistic, Dimension, Comparison, TreatMissingData string
	Period, EvaluationPeriods                                             int
	Threshold                                                             float64
	Actions                                                               string // on alarm; on OK
}

// rawTemplate is a template after intrinsic functions are processed.
type rawTemplate struct {
	Resources map[string]json.RawMessage
	Outputs   map[string]json.RawMessage
}

type resourceHead struct {
	Type     string
	Metadata map[string]any
}

// processorOptions resolves parameters (to their defaults, or params) and mappings with
// goformation, and turns references to resources into names (see system).
func processorOptions(params map[string]any) *intrinsics.ProcessorOptions {
	return &intrinsics.ProcessorOptions{
		IntrinsicHandlerOverrides: map[string]intrinsics.IntrinsicHandler{
			"Ref":        refHandler,
			"Fn::GetAtt": getAttHandler,
			"Fn::Sub":    subHandler,
		},
		ParameterOverrides: params,
		EvaluateConditions: true,
	}
}

// decodeTemplate processes a template's intrinsic functions and decodes the result.
func decodeTemplate(data []byte, yaml bool, opts *intrinsics.ProcessorOptions, into any) error {
	var out []byte
	var err error
	if yaml {
		out, err = intrinsics.ProcessYAML(data, opts)
	} else {
		out, err = intrinsics.ProcessJSON(data, opts)
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(out, into)
}

func processTemplate(data []byte, yaml bool, params map[string]any) (rawTemplate, error) {
	var t rawTemplate
	return t, decodeTemplate(data, yaml, processorOptions(params), &t)
}

func refHandler(_ string, input any, template any) any {
	name, ok := input.(string)
	if !ok {
		return nil
	}
	switch name {
	case "AWS::Partition":
		return "aws"
	case "AWS::URLSuffix":
		return "amazonaws.com"
	}
	tmpl, _ := template.(map[string]any)
	if params, ok := tmpl["Parameters"].(map[string]any); ok {
		if _, ok := params[name]; ok {
			return intrinsics.Ref("Ref", name, template)
		}
	}
	if strings.HasPrefix(name, "AWS::") {
		return intrinsics.Ref("Ref", name, template)
	}
	return "ref:" + resourceName(tmpl, name)
}

func getAttHandler(_ string, input any, template any) any {
	var parts []string
	switch v := input.(type) {
	case string:
		parts = strings.SplitN(v, ".", 2)
	case []any:
		for _, p := range v {
			parts = append(parts, fmt.Sprint(p))
		}
	}
	if len(parts) != 2 {
		return nil
	}
	tmpl, _ := template.(map[string]any)
	return "getatt:" + resourceName(tmpl, parts[0]) + "." + parts[1]
}

var subVariable = regexp.MustCompile(`\$\{([0-9A-Za-z:.]+)\}`)

// subHandler resolves Fn::Sub's variables as Ref and Fn::GetAtt are resolved here
// (goformation's own Fn::Sub knows no AWS::Partition, and names no resources), so that
// a SAM !Sub and the Fn::Join CDK writes for the same ARN read the same.
func subHandler(_ string, input any, template any) any {
	src, ok := input.(string)
	if !ok {
		return nil // the two-argument form is not used
	}
	return subVariable.ReplaceAllStringFunc(src, func(v string) string {
		name := v[2 : len(v)-1]
		var resolved any
		if strings.Contains(name, ".") && !strings.HasPrefix(name, "AWS::") {
			resolved = getAttHandler("Fn::GetAtt", name, template)
		} else {
			resolved = refHandler("Ref", name, template)
		}
		if resolved == nil {
			return ""
		}
		return fmt.Sprint(resolved)
	})
}

// resourceName is the construct path below the stack for a CDK resource, else the
// logical id.
func resourceName(template map[string]any, id string) string {
	resources, _ := template["Resources"].(map[string]any)
	r, _ := resources[id].(map[string]any)
	md, _ := r["Metadata"].(map[string]any)
	if path, ok := md["aws:cdk:path"].(string); ok {
		_, below, _ := strings.Cut(path, "/")
		return strings.TrimSuffix(below, "/Resource")
	}
	return id
}

// samFunction is AWS::Serverless::Function as far as we use it. goformation's own type
// lacks LoggingConfig and the SQS event's FunctionResponseTypes and ScalingConfig, and
// rejects templates that use them.
type samFunction struct {
	Metadata   map[string]any
	Properties struct {
		CodeUri       any
		Runtime       string
		Architectures []string
		Handler       string
		MemorySize    int
		Timeout       int
		Role          string
		Tracing       string
		LoggingConfig struct{ LogFormat, LogGroup string }
		// A variable set to !If [..., !Ref AWS::NoValue] is null when the condition is
		// false: CloudFormation leaves it out, and so does loadSystem. A Ref to a Number
		// parameter is a number here (its default, from YAML); CloudFormation passes
		// every parameter as text, so envValue turns it back into that.
		Environment struct{ Variables map[string]any }
		Events      map[string]samEvent
	}
}

// loadSystem reads a processed template into a system.
func loadSystem(t rawTemplate) (*system, error) {
	s := &system{
		Functions:  map[string]*function{},
		Tables:     map[string]table{},
		Queues:     map[string]queue{},
		Secrets:    map[string]secret{},
		Alarms:     map[string]alarm{},
		Dashboards: map[string]dashboard{},
	}
	for name, raw := range t.Outputs {
		// goformation replaces an output that has a Condition by the condition's value,
		// as a resource: false means not there.
		if strings.TrimSpace(string(raw)) == "false" {
			continue
		}
		s.Outputs = append(s.Outputs, name)
	}
	sort.Strings(s.Outputs)

	// The first pass decodes each resource with its goformation type (or samFunction),
	// under the name other resources use for it.
	var (
		names        = map[string]string{} // logical id -> name
		roles        = map[string]iam.Role{}
		policies     []iam.Policy
		logGroups    = map[string]logs.LogGroup{}
		routes       []apigatewayv2.Route
		integrations = map[string]apigatewayv2.Integration{}
		mappings     []lambda.EventSourceMapping
		cfnFunctions = map[string]lambda.Function{}
		samFunctions = map[string]samFunction{}
	)
	ids := make([]string, 0, len(t.Resources))
	for id := range t.Resources {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		raw := t.Resources[id]
		if b := strings.TrimSpace(string(raw)); b == "true" || b == "false" {
			// goformation replaces a resource that has a Condition by the condition's
			// value: false means not created; true (not in the compared setups) loses it.
			continue
		}
		var head resourceHead
		if err := json.Unmarshal(raw, &head); err != nil {
			return nil, fmt.Errorf("resource %s: %w", id, err)
		}
		name := id
		if path, ok := head.Metadata["aws:cdk:path"].(string); ok {
			_, below, _ := strings.Cut(path, "/")
			name = strings.TrimSuffix(below, "/Resource")
		}
		names[id] = name
		raw, err := withoutTags(raw)
		if err != nil {
			return nil, fmt.Errorf("resource %s: %w", id, err)
		}
		decode := func(v any) { err = json.Unmarshal(raw, v) }
		switch head.Type {
		case "AWS::Serverless::Function":
			var f samFunction
			decode(&f)
			samFunctions[name] = f
		case "AWS::Lambda::Function":
			var f lambda.Function
			decode(&f)
			cfnFunctions[name] = f
		case "AWS::IAM::Role":
			var r iam.Role
			decode(&r)
			roles[name] = r
		case "AWS::IAM::Policy":
			var p iam.Policy
			decode(&p)
			policies = append(policies, p)
		case "AWS::Logs::LogGroup":
			var l logs.LogGroup
			decode(&l)
			logGroups[name] = l
		case "AWS::ApiGatewayV2::Route":
			var r apigatewayv2.Route
			decode(&r)
			routes = append(routes, r)
		case "AWS::ApiGatewayV2::Integration":
			var i apigatewayv2.Integration
			decode(&i)
			integrations[name] = i
		case "AWS::Lambda::EventSourceMapping":
			var m lambda.EventSourceMapping
			decode(&m)
			mappings = append(mappings, m)
		case "AWS::DynamoDB::Table":
			var tb dynamodb.Table
			decode(&tb)
			s.Tables[name] = readTable(tb)
		case "AWS::SQS::Queue":
			var q sqs.Queue
			decode(&q)
			if err == nil {
				s.Queues[name], err = readQueue(q)
			}
		case "AWS::SecretsManager::Secret":
			var sc secretsmanager.Secret
			decode(&sc)
			if g := sc.GenerateSecretString; g != nil {
				s.Secrets[name] = secret{PasswordLength: deref(g.PasswordLength), ExcludePunctuation: deref(g.ExcludePunctuation)}
			} else {
				s.Secrets[name] = secret{}
			}
		case "AWS::CloudWatch::Alarm":
			var a cloudwatch.Alarm
			decode(&a)
			s.Alarms[name] = readAlarm(a)
		case "AWS::CloudWatch::Dashboard":
			var d cloudwatch.Dashboard
			decode(&d)
			s.Dashboards[name] = readDashboard(d)
		}
		if err != nil {
			return nil, fmt.Errorf("resource %s (%s): %w", id, head.Type, err)
		}
	}

	role := func(f *function, roleRef string) {
		roleName, ok := strings.CutPrefix(roleRef, "getatt:")
		roleName, ok2 := strings.CutSuffix(roleName, ".Arn")
		if !ok || !ok2 {
			f.Permissions = map[string][]string{"unknown role " + roleRef: nil}
			return
		}
		r := roles[roleName]
		for _, arn := range r.ManagedPolicyArns {
			f.ManagedPolicies = append(f.ManagedPolicies, arn[strings.LastIndex(arn, "/")+1:])
		}
		sort.Strings(f.ManagedPolicies)
		f.Permissions = map[string][]string{}
		for _, p := range r.Policies {
			addStatements(f.Permissions, p.PolicyDocument)
		}
		for _, p := range policies {
			if slices.Contains(p.Roles, "ref:"+roleName) {
				addStatements(f.Permissions, p.PolicyDocument)
			}
		}
		for res, actions := range f.Permissions {
			sort.Strings(actions)
			f.Permissions[res] = slices.Compact(actions)
		}
	}
	logRetention := func(group string) int {
		name, _ := strings.CutPrefix(group, "ref:")
		return deref(logGroups[name].RetentionInDays)
	}

	for name, cf := range cfnFunctions {
		f := &function{
			Runtime: deref(cf.Runtime), Architectures: cf.Architectures, Handler: deref(cf.Handler),
			MemorySize: deref(cf.MemorySize), Timeout: deref(cf.Timeout),
		}
		if cf.Environment != nil {
			f.Environment = cf.Environment.Variables
		}
		f.Tracing = tracingMode(cf.TracingConfig)
		if lc := cf.LoggingConfig; lc != nil {
			f.LogFormat = deref(lc.LogFormat)
			f.LogRetention = logRetention(deref(lc.LogGroup))
		}
		role(f, cf.Role)
		for _, r := range routes {
			integration := integrations[strings.TrimPrefix(deref(r.Target), "integrations/ref:")]
			if deref(integration.IntegrationUri) == "getatt:"+name+".Arn" {
				f.Routes = append(f.Routes, r.RouteKey)
				f.PayloadFormatVersion = deref(integration.PayloadFormatVersion)
			}
		}
		for _, m := range mappings {
			if m.FunctionName == "ref:"+name {
				es := eventSource{Queue: deref(m.EventSourceArn), BatchSize: deref(m.BatchSize), FunctionResponseTypes: m.FunctionResponseTypes}
				if m.ScalingConfig != nil {
					es.MaximumConcurrency = deref(m.ScalingConfig.MaximumConcurrency)
				}
				f.Queues = append(f.Queues, es)
			}
		}
		s.Functions[name] = f
	}

	for name, sf := range samFunctions {
		p := sf.Properties
		f := &function{
			Runtime: p.Runtime, Architectures: p.Architectures, Handler: p.Handler,
			MemorySize: p.MemorySize, Timeout: p.Timeout, Environment: map[string]string{},
			LogFormat: p.LoggingConfig.LogFormat, LogRetention: logRetention(p.LoggingConfig.LogGroup),
			Tracing: cmp.Or(p.Tracing, "PassThrough"),
		}
		for k, v := range p.Environment.Variables {
			// Empty is unset, to the functions (template.yaml's variables for sam local).
			if v != nil && envValue(v) != "" {
				f.Environment[k] = envValue(v)
			}
		}
		role(f, p.Role)
		for _, e := range sortedEvents(sf) {
			switch e.Type {
			case "HttpApi":
				f.Routes = append(f.Routes, strings.TrimSpace(e.Properties.Method+" "+e.Properties.Path))
				f.PayloadFormatVersion = e.Properties.PayloadFormatVersion
			case "SQS":
				f.Queues = append(f.Queues, eventSource{
					Queue: e.Properties.Queue, BatchSize: e.Properties.BatchSize,
					MaximumConcurrency:    e.Properties.ScalingConfig.MaximumConcurrency,
					FunctionResponseTypes: e.Properties.FunctionResponseTypes,
				})
			default:
				f.Routes = append(f.Routes, "unexpected event type "+e.Type)
			}
		}
		sort.Strings(f.Routes)
		if slices.Equal(f.Routes, []string{"ANY /", "ANY /{proxy+}"}) {
			f.Routes = []string{"$default"}
		}
		s.Functions[name] = f
	}
	return s, nil
}

// withoutTags drops a resource's Tags: they are not compared, and goformation v7.14.9
// does not know them on every resource type CDK tags (AWS::Lambda::EventSourceMapping).
func withoutTags(raw json.RawMessage) (json.RawMessage, error) {
	var r map[string]json.RawMessage
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	var props map[string]json.RawMessage
	if len(r["Properties"]) == 0 {
		return raw, nil
	}
	if err := json.Unmarshal(r["Properties"], &props); err != nil {
		return nil, err
	}
	if _, ok := props["Tags"]; !ok {
		return raw, nil
	}
	delete(props, "Tags")
	p, err := json.Marshal(props)
	if err != nil {
		return nil, err
	}
	r["Properties"] = p
	return json.Marshal(r)
}

type samEvent struct {
	Type       string
	Properties struct {
		Path, Method, PayloadFormatVersion string
		Queue                              string
		BatchSize                          int
		FunctionResponseTypes              []string
		ScalingConfig                      struct{ MaximumConcurrency int }
	}
}

func sortedEvents(f samFunction) []samEvent {
	names := make([]string, 0, len(f.Properties.Events))
	for n := range f.Properties.Events {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]samEvent, 0, len(names))
	for _, n := range names {
		out = append(out, f.Properties.Events[n])
	}
	return out
}

func readTable(tb dynamodb.Table) table {
	types := map[string]string{}
	for _, a := range tb.AttributeDefinitions {
		types[a.AttributeName] = a.AttributeType
	}
	out := table{BillingMode: deref(tb.BillingMode), DeletionPolicy: string(tb.AWSCloudFormationDeletionPolicy)}
	for _, k := range tb.KeySchema {
		out.Keys = append(out.Keys, k.AttributeName+" "+types[k.AttributeName]+" "+k.KeyType)
	}
	if ttl := tb.TimeToLiveSpecification; ttl != nil && ttl.Enabled {
		out.TimeToLive = deref(ttl.AttributeName)
	}
	if p := tb.PointInTimeRecoverySpecification; p != nil {
		out.PointInTime = deref(p.PointInTimeRecoveryEnabled)
	}
	return out
}

func readQueue(q sqs.Queue) (queue, error) {
	out := queue{
		Fifo: deref(q.FifoQueue), ContentBasedDeduplication: deref(q.ContentBasedDeduplication),
		DeduplicationScope: deref(q.DeduplicationScope), FifoThroughputLimit: deref(q.FifoThroughputLimit),
		RetentionSeconds: deref(q.MessageRetentionPeriod), VisibilityTimeout: deref(q.VisibilityTimeout),
	}
	if q.RedrivePolicy != nil {
		rp, ok := q.RedrivePolicy.(map[string]any)
		if !ok {
			return out, fmt.Errorf("RedrivePolicy is %T, want an object", q.RedrivePolicy)
		}
		out.DeadLetterTarget = fmt.Sprint(rp["deadLetterTargetArn"])
		n, ok := rp["maxReceiveCount"].(float64)
		if !ok {
			return out, fmt.Errorf("maxReceiveCount is %#v, want a number", rp["maxReceiveCount"])
		}
		out.MaxReceiveCount = int(n)
	}
	return out, nil
}

// envValue is an environment variable's value as the function sees it: text. Anything
// but a string or a number (an unresolved intrinsic function, say) keeps a form that
// no CDK value has, so it shows up in a comparison.
func envValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprintf("unreadable value %#v", v)
	}
}

func readAlarm(a cloudwatch.Alarm) alarm {
	out := alarm{
		Namespace: deref(a.Namespace), Metric: deref(a.MetricName), Statistic: deref(a.Statistic),
		Comparison: a.ComparisonOperator, TreatMissingData: deref(a.TreatMissingData),
		Period: deref(a.Period), EvaluationPeriods: a.EvaluationPeriods, Threshold: deref(a.Threshold),
	}
	for _, d := range a.Dimensions {
		out.Dimension += d.Name + "=" + d.Value + " "
	}
	out.Dimension = strings.TrimSpace(out.Dimension)
	if len(a.AlarmActions)+len(a.OKActions) > 0 {
		out.Actions = fmt.Sprint(a.AlarmActions, "; ", a.OKActions)
	}
	return out
}

// tracingMode is a function's X-Ray mode; without TracingConfig, Lambda's default.
func tracingMode(tc *lambda.Function_TracingConfig) string {
	if tc == nil {
		return "PassThrough"
	}
	return cmp.Or(deref(tc.Mode), "PassThrough")
}

// readDashboard parses a dashboard's body. A body that is not JSON (an intrinsic
// function left unresolved, a typo in template.yaml) is kept as its text, with the
// error, so that it shows up in a comparison.
func readDashboard(d cloudwatch.Dashboard) dashboard {
	out := dashboard{Name: deref(d.DashboardName)}
	var body any
	if err := json.Unmarshal([]byte(d.DashboardBody), &body); err != nil {
		out.Body = fmt.Sprintf("unreadable body (%v): %s", err, d.DashboardBody)
		return out
	}
	out.Body = body
	return out
}

// addStatements adds a policy document's Allow statements to perms. Anything it does not
// expect (Deny, NotAction, conditions, wildcards) is recorded under a key that no
// expected permission set contains, so it shows up in a comparison.
func addStatements(perms map[string][]string, doc any) {
	d, _ := doc.(map[string]any)
	stmts, ok := d["Statement"].([]any)
	if !ok {
		perms[fmt.Sprintf("unreadable policy document %v", doc)] = nil
		return
	}
	for _, st := range stmts {
		if st == nil {
			continue // !If [..., !Ref AWS::NoValue] with a false condition: no statement
		}
		m, _ := st.(map[string]any)
		var extra []string
		for k := range m {
			if k != "Effect" && k != "Action" && k != "Resource" && k != "Sid" {
				extra = append(extra, k)
			}
		}
		if m["Effect"] != "Allow" || len(extra) > 0 {
			perms[fmt.Sprintf("unexpected statement %v", m)] = nil
			continue
		}
		for _, res := range strings1(m["Resource"]) {
			perms[res] = append(perms[res], strings1(m["Action"])...)
		}
	}
}

// strings1 reads a policy field that is either one string or a list of them.
func strings1(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			out = append(out, fmt.Sprint(e))
		}
		return out
	}
	return []string{fmt.Sprint(v)}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// diff lists the differences between two values as "path: got X, want Y", walking
// structs, maps and slices.
func diff(path string, got, want any) []string {
	return diffValues(path, reflect.ValueOf(got), reflect.ValueOf(want))
}

func diffValues(path string, got, want reflect.Value) []string {
	if !got.IsValid() || !want.IsValid() {
		if got.IsValid() != want.IsValid() {
			return []string{fmt.Sprintf("%s: got %v, want %v", path, fmtValue(got), fmtValue(want))}
		}
		return nil
	}
	if got.Type() != want.Type() {
		return []string{fmt.Sprintf("%s: got %v, want %v", path, fmtValue(got), fmtValue(want))}
	}
	switch got.Kind() {
	case reflect.Interface:
		// A decoded JSON value (a dashboard body): compare what it holds.
		if got.IsNil() || want.IsNil() {
			if got.IsNil() != want.IsNil() {
				return []string{fmt.Sprintf("%s: got %v, want %v", path, fmtValue(got), fmtValue(want))}
			}
			return nil
		}
		return diffValues(path, got.Elem(), want.Elem())
	case reflect.Slice:
		// JSON arrays element by element, so that a difference names its widget and
		// metric; typed lists (actions, routes) as a whole, below.
		if got.Type().Elem().Kind() != reflect.Interface {
			break
		}
		var out []string
		for i := 0; i < max(got.Len(), want.Len()); i++ {
			p := fmt.Sprintf("%s[%d]", path, i)
			switch {
			case i >= got.Len():
				out = append(out, fmt.Sprintf("%s: missing, want %v", p, fmtValue(want.Index(i))))
			case i >= want.Len():
				out = append(out, fmt.Sprintf("%s: got %v, want none", p, fmtValue(got.Index(i))))
			default:
				out = append(out, diffValues(p, got.Index(i), want.Index(i))...)
			}
		}
		return out
	case reflect.Pointer:
		if got.IsNil() || want.IsNil() {
			if got.IsNil() != want.IsNil() {
				return []string{fmt.Sprintf("%s: got %v, want %v", path, fmtValue(got), fmtValue(want))}
			}
			return nil
		}
		return diffValues(path, got.Elem(), want.Elem())
	case reflect.Struct:
		var out []string
		for i := 0; i < got.NumField(); i++ {
			out = append(out, diffValues(path+"."+got.Type().Field(i).Name, got.Field(i), want.Field(i))...)
		}
		return out
	case reflect.Map:
		keys := map[string]reflect.Value{}
		for _, k := range got.MapKeys() {
			keys[fmt.Sprint(k.Interface())] = k
		}
		for _, k := range want.MapKeys() {
			keys[fmt.Sprint(k.Interface())] = k
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		var out []string
		for _, k := range sorted {
			g, w := got.MapIndex(keys[k]), want.MapIndex(keys[k])
			switch {
			case !g.IsValid():
				out = append(out, fmt.Sprintf("%s[%s]: missing, want %v", path, k, fmtValue(w)))
			case !w.IsValid():
				out = append(out, fmt.Sprintf("%s[%s]: got %v, want none", path, k, fmtValue(g)))
			default:
				out = append(out, diffValues(path+"["+k+"]", g, w)...)
			}
		}
		return out
	}
	if !reflect.DeepEqual(got.Interface(), want.Interface()) {
		return []string{fmt.Sprintf("%s: got %v, want %v", path, fmtValue(got), fmtValue(want))}
	}
	return nil
}

func fmtValue(v reflect.Value) string {
	if !v.IsValid() {
		return "nothing"
	}
	if v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	return fmt.Sprintf("%#v", v.Interface())
}
