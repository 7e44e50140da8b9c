package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// offlineEnv is added to every CDK CLI run: no AWS account, no network, nothing sent.
var offlineEnv = []string{
	"CDK_DISABLE_VERSION_CHECK=true",
	"CDK_DISABLE_CLI_TELEMETRY=true",
	"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=", "AWS_PROFILE=",
	"AWS_CONFIG_FILE=" + os.DevNull, "AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
	"AWS_EC2_METADATA_DISABLED=true",
}

// ensureCLI installs the CDK CLI pinned in package-lock.json when infra/node_modules
// lacks it (a fresh clone): the test uses the pinned CLI, never one on PATH.
func ensureCLI(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join("node_modules", ".bin", "cdk")); err == nil {
		return
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci (installs the pinned CDK CLI): %v\n%s", err, out)
	}
}

// runCDK runs the pinned CDK CLI in infra/, as a user does.
func runCDK(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ensureCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npx", append([]string{"--no-install", "cdk"}, args...)...)
	cmd.Env = append(os.Environ(), offlineEnv...)
	for k, v := range quietNode {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// TestPinnedCLI: package.json pins one exact CLI version, the lock file has it, and it
// is the one that runs.
func TestPinnedCLI(t *testing.T) {
	var pkg struct{ DevDependencies map[string]string }
	readJSON(t, "package.json", &pkg)
	var lock struct {
		Packages map[string]struct{ Version string }
	}
	readJSON(t, "package-lock.json", &lock)
	want := pkg.DevDependencies["aws-cdk"]
	if want == "" || strings.ContainsAny(want, "^~<>=* ") {
		t.Fatalf("package.json: aws-cdk %q is not an exact version", want)
	}
	if got := lock.Packages["node_modules/aws-cdk"].Version; got != want {
		t.Errorf("package-lock.json: aws-cdk %s, package.json %s", got, want)
	}
	stdout, stderr, err := runCDK(t, "--version")
	if err != nil || !strings.HasPrefix(stdout, want+" ") {
		t.Errorf("cdk --version: got %q (%v, %s), want %s", stdout, err, stderr, want)
	}
}

func TestCDKSynth(t *testing.T) {
	out := t.TempDir()
	stdout, stderr, err := runCDK(t, "synth", "--no-notices", "-o", out, "-c", "responseEndpointUrl="+testEndpoint)
	if err != nil {
		t.Fatalf("cdk synth: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "Type: AWS::Lambda::EventSourceMapping") {
		t.Errorf("cdk synth printed no template:\n%s", stdout)
	}
	// "feature flags are not configured": cdk.json sets every recommended flag.
	for _, noise := range []string{"end-of-life", "exited abnormally", "Error", "feature flags"} {
		if strings.Contains(stderr, noise) {
			t.Errorf("cdk synth stderr has %q:\n%s", noise, stderr)
		}
	}

	// The cloud assembly: one stack, its template, two bundled file assets.
	var manifest struct {
		Version   string
		Artifacts map[string]struct {
			Type       string
			Properties struct{ TemplateFile string }
		}
	}
	readJSON(t, filepath.Join(out, "manifest.json"), &manifest)
	stack := manifest.Artifacts["Parley-dev"]
	if manifest.Version == "" || stack.Type != "aws:cloudformation:stack" || stack.Properties.TemplateFile != "Parley-dev.template.json" {
		t.Fatalf("manifest: got version %q, Parley-dev %+v", manifest.Version, stack)
	}
	var assets struct {
		Files map[string]struct {
			Source struct{ Path, Packaging string }
		}
	}
	readJSON(t, filepath.Join(out, "Parley-dev.assets.json"), &assets)
	zips := 0
	for _, f := range assets.Files {
		if f.Source.Packaging == "zip" {
			zips++
			if _, err := os.Stat(filepath.Join(out, f.Source.Path, "bootstrap")); err != nil {
				t.Errorf("asset %s: %v", f.Source.Path, err)
			}
		}
	}
	if zips != 2 {
		t.Errorf("zip assets: got %d, want 2 (the functions)", zips)
	}

	// The template the CLI wrote is the one the other tests check.
	data, err := os.ReadFile(filepath.Join(out, stack.Properties.TemplateFile))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := processTemplate(data, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	sys, err := loadSystem(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diff("cdk synth", sys, cdkSystem(t, defaultSynth(t))) {
		t.Error(d)
	}
}

func TestCDKSynthRejectsBadConfig(t *testing.T) {
	_, stderr, err := runCDK(t, "synth", "--no-notices", "-o", t.TempDir(), "-c", "deliveryTimeout=45s", "-c", "maxAttempts=0",
		"-c", "bot=rules", "-c", "rulesFile=no/such/rules.json", "-c", "recordTtl=168h", "-c", "botTimeout=10m", "-c", "maxConcurrency=1",
		"-c", "holdLimit=200h", "-c", "tracing=on")
	if err == nil {
		t.Fatal("cdk synth without responseEndpointUrl succeeded")
	}
	for _, want := range []string{
		`context "responseEndpointUrl": required`,
		`context "deliveryTimeout": 45s is out of range [1ms, 30s]`,
		`context "maxAttempts": 0 is out of range [1, 100]`,
		`context "recordTtl": 168h is out of range [360h, 8760h]`,
		`context "botTimeout": 10m is out of range [1ms, 5m]`,
		`context "maxConcurrency": 1 is out of range [2, 1000]`,
		`context "holdLimit": 200h is out of range [0s, 168h]`,
		`context "tracing": "on" is not one of passthrough, active`,
		`context "rulesFile": ` + filepath.Join(filepath.Dir(mustGetwd(t)), "no/such/rules.json") + " does not exist",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// TestCDKSynthRulesFile: with bot=rules and a rules file given relative to the
// repository root, the cloud assembly the CLI writes has the file in the delivery
// function's package, where the bot runs.
func TestCDKSynthRulesFile(t *testing.T) {
	out := t.TempDir()
	_, stderr, err := runCDK(t, "synth", "--no-notices", "-q", "-o", out, "-c", "responseEndpointUrl="+testEndpoint,
		"-c", "bot=rules", "-c", "rulesFile=infra/testdata/rules.json")
	if err != nil {
		t.Fatalf("cdk synth: %v\n%s", err, stderr)
	}
	var tmpl struct {
		Resources map[string]struct {
			Type       string
			Metadata   map[string]any
			Properties struct {
				Environment struct{ Variables map[string]any }
			}
		}
	}
	readJSON(t, filepath.Join(out, "Parley-dev.template.json"), &tmpl)
	want, err := os.ReadFile(filepath.Join("testdata", "rules.json"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for id, r := range tmpl.Resources {
		if r.Type != "AWS::Lambda::Function" || r.Metadata["aws:cdk:path"] != "Parley-dev/DeliveryFunction/Resource" {
			continue
		}
		found = true
		if got := r.Properties.Environment.Variables["PARLEY_RULES_FILE"]; got != "/var/task/rules.json" {
			t.Errorf("%s PARLEY_RULES_FILE: got %v", id, got)
		}
		asset := filepath.Join(out, fmt.Sprint(r.Metadata["aws:asset:path"]))
		got, err := os.ReadFile(filepath.Join(asset, "rules.json"))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s/rules.json: got %q (%v), want testdata/rules.json", asset, got, err)
		}
		if _, err := os.Stat(filepath.Join(asset, "bootstrap")); err != nil {
			t.Error(err)
		}
	}
	if !found {
		t.Error("no delivery function in the template")
	}
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

func readJSON(t *testing.T, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
