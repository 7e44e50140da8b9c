// Command infra is the CDK app that deploys Parley: run it through the CDK CLI from this
// directory (`npx cdk synth -c responseEndpointUrl=https://…`). It is its own module so
// that the Lambda functions never pull the CDK library.
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/parley-chat/parley/infra/deploy"
)

func main() {
	err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "parley infra:", err)
	}
	closeJSII()
	if err != nil {
		os.Exit(1)
	}
}

func run() error {
	app := awscdk.NewApp(nil)
	root, err := findRepoRoot()
	if err != nil {
		return err
	}
	cfg, err := deploy.LoadConfig(func(key string) any { return app.Node().TryGetContext(jsii.String(key)) }, root)
	if err != nil {
		return err
	}
	NewParleyStack(app, cfg, root)
	app.Synth(nil)
	return nil
}

// closeJSII stops the jsii runtime's node process, last thing before exit. It silences
// stderr first: jsii-runtime-go v1.138.0 waits for that process from two goroutines at
// once, and the loser prints "Runtime process exited abnormally: waitid: no child
// processes" after a successful synth.
func closeJSII() {
	if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
		os.Stderr = null
	}
	jsii.Close()
}
