package main

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/parley-chat/parley/infra/deploy"
	"github.com/parley-chat/parley/shared/settings"
)

// quietNode silences jsii's banners about the Node version on the build machines (Node 20
// is end-of-life for jsii; Debian has nothing newer). They are not failures.
var quietNode = map[string]string{
	"JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION":  "1",
	"JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION":    "1",
	"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
}

func TestMain(m *testing.M) {
	// jsii reads the environment when the CDK packages initialize, before TestMain, so
	// setting these here would be too late: run the tests again in a child that has them.
	var missing []string
	for k, v := range quietNode {
		if os.Getenv(k) == "" {
			missing = append(missing, k+"="+v)
		}
	}
	if len(missing) > 0 {
		jsii.Close() // the runtime was set up but never started: removes its temp files
		cmd := exec.Command(os.Args[0], os.Args[1:]...)
		cmd.Env = append(os.Environ(), missing...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			os.Exit(exit.ExitCode())
		case err != nil:
			fmt.Fprintln(os.Stderr, "run tests with the Node warnings silenced:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}

	code := m.Run()
	if defaultStack != nil {
		os.RemoveAll(defaultStack.outdir)
	}
	closeJSII()
	os.Exit(code)
}

// testEndpoint is the Response Endpoint URL every test stack is synthesized with.
const testEndpoint = "https://example.com/hook"

// synthesized is one stack synthesized in memory, as the assertions library sees it and
// as plain JSON.
type synthesized struct {
	cfg      deploy.Config
	stack    awscdk.Stack
	template assertions.Template
	json     map[string]any
	outdir   string
}

// given is CDK context by setting, as the tests write it.
type given map[*settings.Setting]any

// synth builds the stack for the given context, on top of responseEndpointUrl=testEndpoint.
// bundle=false skips building the functions (CDK's own switch for that), for tests that
// only look at the template.
func synth(t *testing.T, context given, bundle bool) *synthesized {
	t.Helper()
	return synthIn(t, t.TempDir(), context, bundle)
}

func synthIn(t *testing.T, outdir string, context given, bundle bool) *synthesized {
	t.Helper()
	// As the CLI does: cdk.json's context (the feature flags), and resources carry
	// their construct path, which the tests go by.
	var cdkJSON struct{ Context map[string]any }
	readJSON(t, "cdk.json", &cdkJSON)
	ctx := map[string]any{
		settings.ResponseEndpointURL.Context: testEndpoint,
		"aws:cdk:enable-path-metadata":       true,
		"aws:cdk:enable-asset-metadata":      true,
	}
	maps.Copy(ctx, cdkJSON.Context)
	for s, v := range context {
		ctx[s.Context] = v
	}
	if !bundle {
		ctx["aws:cdk:bundling-stacks"] = []any{}
	}
	app := awscdk.NewApp(&awscdk.AppProps{Context: &ctx, Outdir: jsii.String(outdir)})
	cfg, err := deploy.LoadConfig(func(key string) any { return app.Node().TryGetContext(jsii.String(key)) }, repoRoot(t))
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	stack := NewParleyStack(app, cfg, repoRoot(t))
	tmpl := assertions.Template_FromStack(stack, nil)
	return &synthesized{cfg: cfg, stack: stack, template: tmpl, json: *tmpl.ToJSON(), outdir: outdir}
}

var defaultStack *synthesized

// defaultSynth is the stack with every setting at its default, bundled for real; synthesized
// once and shared, as it takes a few seconds.
func defaultSynth(t *testing.T) *synthesized {
	t.Helper()
	if defaultStack == nil {
		outdir, err := os.MkdirTemp("", "parley-infra-test-") // removed by TestMain
		if err != nil {
			t.Fatal(err)
		}
		defaultStack = synthIn(t, outdir, nil, true)
	}
	return defaultStack
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := findRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// check runs one assertions-library check; those report a mismatch by panicking.
func check(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: %v", what, r)
		}
	}()
	f()
}

// resources returns the template's resources of one type by logical id.
func (s *synthesized) resources(typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range s.json["Resources"].(map[string]any) {
		res := r.(map[string]any)
		if res["Type"] == typ {
			out[id] = res
		}
	}
	return out
}

// id returns the logical id of the resource at a construct path below the stack, such
// as "DeliveryQueue" or "InboundFunction/ServiceRole".
func (s *synthesized) id(t *testing.T, path string) string {
	t.Helper()
	want := s.cfg.StackName() + "/" + path + "/Resource"
	for id, r := range s.json["Resources"].(map[string]any) {
		md, _ := r.(map[string]any)["Metadata"].(map[string]any)
		if md["aws:cdk:path"] == want {
			return id
		}
	}
	t.Fatalf("no resource at %s", want)
	return ""
}

func ref(id string) map[string]any          { return map[string]any{"Ref": id} }
func getAtt(id, attr string) map[string]any { return map[string]any{"Fn::GetAtt": []any{id, attr}} }
