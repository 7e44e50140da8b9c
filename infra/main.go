// Command infra is the CDK app that deploys Parley: run it through the CDK CLI from this
// directory (`npx cdk synth -c responseEndpointUrl=https://…`). It is its own module so
// that the Lambda functions never pull the CDK library.
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
)

func main() {
	if err := run(); err != nil {
		jsii.Close()
		fmt.Fprintln(os.Stderr, "parley infra:", err)
		os.Exit(1)
	}
	jsii.Close()
}

func run() error {
	app := awscdk.NewApp(nil)
	cfg, err := LoadConfig(func(key string) any { return app.Node().TryGetContext(jsii.String(key)) })
	if err != nil {
		return err
	}
	root, err := findRepoRoot()
	if err != nil {
		return err
	}
	NewParleyStack(app, cfg, root)
	app.Synth(nil)
	return nil
}
