package main

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/parley-chat/parley/shared/settings"
)

// llmKeyARN is how the synthesized template names the LLM key secret
// "parley/openai" (a partial ARN: no random suffix), before and after the test's
// reading of intrinsic functions (system_test.go).
var (
	llmKeyARNJoin = map[string]any{"Fn::Join": []any{"", []any{
		"arn:", ref("AWS::Partition"), ":secretsmanager:", ref("AWS::Region"), ":", ref("AWS::AccountId"), ":secret:parley/openai",
	}}}
	llmKeyARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:parley/openai"
)

// botContexts are the bot configurations the tests synthesize, next to the default (echo).
func botContexts(t *testing.T) map[string]given {
	return map[string]given{
		"rules":             {settings.Bot: "rules"},
		"rules with a file": {settings.Bot: "rules", settings.RulesFile: "infra/testdata/rules.json"},
		"http":              {settings.Bot: "http", settings.HTTPBotURL: "https://rasa.example.com/webhooks/rest/webhook"},
		"llm":               {settings.Bot: "llm", settings.LLMModel: "gpt-4o-mini", settings.LLMAPIKeySecretName: "parley/openai"},
		"llm with every setting": {
			settings.Bot: "llm", settings.LLMProvider: "anthropic", settings.LLMBaseURL: "https://llm.example.com/v1", settings.LLMModel: "claude-x",
			settings.LLMSystemPrompt: "You are Parley's demo bot. Answer in one sentence.", settings.LLMTemperature: "0.7",
			settings.LLMMaxTokens: "1024", settings.LLMHistory: "20", settings.LLMAPIKeySecretName: "parley/openai", settings.BotTimeout: "300s",
		},
	}
}

// TestBots checks, for each bot, the delivery function's whole environment and both
// functions' exact permissions: the bot runs in the delivery function, each bot adds its
// own settings there and, for llm only, the permission to read its key; the rest of the
// delivery function's permissions (the history Query, the channels' keys) do not
// depend on the default channel's bot, and the inbound function is the same whatever
// the bot.
func TestBots(t *testing.T) {
	base := func(bot string) map[string]string {
		return map[string]string{
			"PARLEY_TABLE_NAME": "ref:Table", "PARLEY_RESPONSE_ENDPOINT_URL": testEndpoint, "PARLEY_SIGNING_SECRET_ARN": "ref:SigningSecret",
			"PARLEY_QUEUE_URL": "ref:DeliveryQueue", "PARLEY_DEAD_LETTER_QUEUE_URL": "ref:DeadLetterQueue",
			"PARLEY_RETRY_MIN_DELAY": "5s", "PARLEY_RETRY_MAX_DELAY": "12h", "PARLEY_MAX_ATTEMPTS": "11", "PARLEY_DELIVERY_TIMEOUT": "10s",
			"PARLEY_BOT": bot, "PARLEY_BOT_TIMEOUT": "30s", "PARLEY_HISTORY_TTL": "720h",
			"PARLEY_HOLD_LIMIT": "1h", "PARLEY_DISABLE_AFTER_FAILURES": "20", "PARLEY_DISABLE_AFTER": "24h", "PARLEY_ENDPOINT_RATE_LIMIT": "0",
		}
	}
	with := func(env map[string]string, extra map[string]string) map[string]string {
		maps.Copy(env, extra)
		return env
	}
	llmPerms := with2(deliveryPermissions, map[string][]string{
		llmKeyARN + "-??????": {"secretsmanager:GetSecretValue"},
	})
	want := map[string]struct {
		env     map[string]string
		perms   map[string][]string
		timeout int
	}{
		"rules":             {base("rules"), deliveryPermissions, 110},
		"rules with a file": {with(base("rules"), map[string]string{"PARLEY_RULES_FILE": "/var/task/rules.json"}), deliveryPermissions, 110},
		"http":              {with(base("http"), map[string]string{"PARLEY_HTTP_BOT_URL": "https://rasa.example.com/webhooks/rest/webhook"}), deliveryPermissions, 110},
		// The declared defaults of the llm settings that have one; the others unset.
		"llm": {with(base("llm"), map[string]string{
			"PARLEY_LLM_MODEL": "gpt-4o-mini", "PARLEY_LLM_API_KEY_SECRET_ARN": llmKeyARN,
			"PARLEY_LLM_MAX_TOKENS": "512", "PARLEY_LLM_HISTORY": "10",
		}), llmPerms, 110},
		"llm with every setting": {with(base("llm"), map[string]string{
			"PARLEY_LLM_PROVIDER": "anthropic", "PARLEY_LLM_BASE_URL": "https://llm.example.com/v1", "PARLEY_LLM_MODEL": "claude-x",
			"PARLEY_LLM_SYSTEM_PROMPT": "You are Parley's demo bot. Answer in one sentence.", "PARLEY_LLM_TEMPERATURE": "0.7",
			"PARLEY_LLM_MAX_TOKENS": "1024", "PARLEY_LLM_HISTORY": "20", "PARLEY_LLM_API_KEY_SECRET_ARN": llmKeyARN,
			"PARLEY_BOT_TIMEOUT": "300s",
		}), llmPerms, 380},
	}
	inboundEnv := map[string]string{"PARLEY_TABLE_NAME": "ref:Table", "PARLEY_QUEUE_URL": "ref:DeliveryQueue", "PARLEY_RECORD_TTL": "360h", "PARLEY_HISTORY_TTL": "720h"}
	for name, context := range botContexts(t) {
		t.Run(name, func(t *testing.T) {
			s := synth(t, context, false)
			sys := cdkSystem(t, s)
			in, out := sys.Functions["InboundFunction"], sys.Functions["DeliveryFunction"]
			for _, d := range diff("delivery environment", out.Environment, want[name].env) {
				t.Error(d)
			}
			for _, d := range diff("delivery permissions", out.Permissions, want[name].perms) {
				t.Error(d)
			}
			if out.Timeout != want[name].timeout {
				t.Errorf("delivery timeout: got %d s, want %d", out.Timeout, want[name].timeout)
			}
			for _, d := range diff("inbound environment", in.Environment, inboundEnv) {
				t.Error(d)
			}
			for _, d := range diff("inbound permissions", in.Permissions, inboundPermissions) {
				t.Error(d)
			}
			// The imported secret is no resource of the stack.
			check(t, "resources", func() {
				s.template.ResourceCountIs(jsii.String("AWS::SecretsManager::Secret"), jsii.Number(1))
				s.template.ResourceCountIs(jsii.String("AWS::IAM::Policy"), jsii.Number(2))
			})
		})
	}
}

func with2(a, b map[string][]string) map[string][]string {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

// TestLLMKeyPolicy checks the template itself for the llm bot: the secret is read by
// its partial ARN and granted on the complete ones (the name, "-" and six characters),
// with GetSecretValue alone (grantRead would add DescribeSecret), next to the secrets
// every bot reads.
func TestLLMKeyPolicy(t *testing.T) {
	s := synth(t, botContexts(t)["llm"], false)
	table := getAtt(s.id(t, "Table"), "Arn")
	check(t, "delivery policy", func() {
		s.template.HasResourceProperties(jsii.String("AWS::IAM::Policy"), map[string]any{
			"Roles": []any{ref(s.id(t, "DeliveryFunction/ServiceRole"))},
			// Merged by resource and action, sorted (@aws-cdk/aws-iam:minimizePolicies).
			"PolicyDocument": map[string]any{"Statement": []any{
				map[string]any{"Effect": "Allow", "Action": assertions.Match_ArrayWith(&[]any{"sqs:ReceiveMessage"}), "Resource": getAtt(s.id(t, "DeliveryQueue"), "Arn")},
				map[string]any{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": getAtt(s.id(t, "DeadLetterQueue"), "Arn")},
				map[string]any{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": []any{
					channelKeysARNJoin,
					map[string]any{"Fn::Join": []any{"", []any{
						"arn:", ref("AWS::Partition"), ":secretsmanager:", ref("AWS::Region"), ":", ref("AWS::AccountId"), ":secret:parley/openai-??????",
					}}},
					ref(s.id(t, "SigningSecret")),
				}},
				map[string]any{"Effect": "Allow", "Action": assertions.Match_ArrayWith(&[]any{"dynamodb:BatchGetItem", "dynamodb:Query"}), "Resource": table},
			}},
		})
	})
	check(t, "inbound policy unchanged", func() {
		s.template.HasResourceProperties(jsii.String("AWS::IAM::Policy"), map[string]any{
			"Roles": []any{ref(s.id(t, "InboundFunction/ServiceRole"))},
			"PolicyDocument": map[string]any{"Statement": []any{
				map[string]any{"Effect": "Allow", "Action": []any{"dynamodb:BatchWriteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:Scan"}, "Resource": table},
				map[string]any{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": getAtt(s.id(t, "DeliveryQueue"), "Arn")},
			}},
		})
	})
	check(t, "key ARN", func() {
		s.template.HasResource(jsii.String("AWS::Lambda::Function"), map[string]any{
			"Metadata": map[string]any{"aws:cdk:path": "Parley-dev/DeliveryFunction/Resource"},
			"Properties": map[string]any{
				"Environment": map[string]any{"Variables": map[string]any{"PARLEY_LLM_API_KEY_SECRET_ARN": llmKeyARNJoin}},
			},
		})
	})
}

// TestRulesFileInAsset synthesizes the stack with a rules file, bundled for real, and
// looks at the cloud assembly: the file is in the delivery function's package as
// rules.json, readable on Lambda, and a new content gives a new asset.
func TestRulesFileInAsset(t *testing.T) {
	dir := t.TempDir()
	writeRules := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	first := `{"fallback": [{"type": "text", "payload": {"text": "first"}}]}`
	second := `{"fallback": [{"type": "text", "payload": {"text": "second"}}]}`

	type assets struct{ inbound, delivery string }
	synthAssets := func(context given) (assets, *synthesized) {
		s := synth(t, context, true)
		var a assets
		for name, into := range map[string]*string{"InboundFunction": &a.inbound, "DeliveryFunction": &a.delivery} {
			md := s.resources("AWS::Lambda::Function")[s.id(t, name)]["Metadata"].(map[string]any)
			*into = filepath.Join(s.outdir, md["aws:asset:path"].(string))
		}
		return a, s
	}
	files := func(dir string) []string {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}

	a1, s1 := synthAssets(given{settings.Bot: "rules", settings.RulesFile: writeRules("one.json", first)})
	if got := files(a1.delivery); !slices.Equal(got, []string{"bootstrap", "rules.json"}) {
		t.Fatalf("delivery asset %s holds %v, want bootstrap and rules.json", a1.delivery, got)
	}
	data, err := os.ReadFile(filepath.Join(a1.delivery, "rules.json"))
	if err != nil || string(data) != first {
		t.Errorf("rules.json in the asset: got %q (%v), want %q", data, err, first)
	}
	if info, err := os.Stat(filepath.Join(a1.delivery, "rules.json")); err != nil || info.Mode().Perm() != 0o644 {
		t.Errorf("rules.json mode: got %v (%v), want -rw-r--r-- (the source was 0600)", info.Mode(), err)
	}
	if got := files(a1.inbound); !slices.Equal(got, []string{"bootstrap"}) {
		t.Errorf("inbound asset holds %v, want just bootstrap", got)
	}
	if env := cdkSystem(t, s1).Functions["DeliveryFunction"].Environment; env["PARLEY_RULES_FILE"] != "/var/task/rules.json" {
		t.Errorf("PARLEY_RULES_FILE: got %q, want /var/task/rules.json", env["PARLEY_RULES_FILE"])
	}

	// Another content: another asset for the delivery function only.
	a2, _ := synthAssets(given{settings.Bot: "rules", settings.RulesFile: writeRules("two.json", second)})
	if filepath.Base(a2.delivery) == filepath.Base(a1.delivery) {
		t.Errorf("delivery asset %s did not change with the rules file", filepath.Base(a2.delivery))
	}
	if data, _ := os.ReadFile(filepath.Join(a2.delivery, "rules.json")); string(data) != second {
		t.Errorf("rules.json after the change: got %q, want %q", data, second)
	}
	if filepath.Base(a2.inbound) != filepath.Base(a1.inbound) {
		t.Errorf("inbound asset changed with the rules file: %s, %s", filepath.Base(a1.inbound), filepath.Base(a2.inbound))
	}

	// Without a file: nothing copied, the same package as the echo bot's.
	a3, s3 := synthAssets(given{settings.Bot: "rules"})
	if got := files(a3.delivery); !slices.Equal(got, []string{"bootstrap"}) {
		t.Errorf("delivery asset without rulesFile holds %v, want just bootstrap", got)
	}
	if _, ok := cdkSystem(t, s3).Functions["DeliveryFunction"].Environment["PARLEY_RULES_FILE"]; ok {
		t.Error("PARLEY_RULES_FILE is set without rulesFile")
	}
	def := defaultSynth(t)
	md := def.resources("AWS::Lambda::Function")[def.id(t, "DeliveryFunction")]["Metadata"].(map[string]any)
	if filepath.Base(a3.delivery) != md["aws:asset:path"] {
		t.Errorf("delivery asset without rulesFile: got %s, want the default %s", filepath.Base(a3.delivery), md["aws:asset:path"])
	}
}
