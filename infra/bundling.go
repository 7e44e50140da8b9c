package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3assets"
	"github.com/aws/jsii-runtime-go"
)

// buildEnv is added to the environment of every function build: a static Linux arm64
// binary, whatever the host.
var buildEnv = []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"}

// buildArgs is the `go build` command line for one function, writing outDir/bootstrap.
// The same command is in the root Makefile's build-<Function> targets used by SAM.
func buildArgs(pkg, outDir string) []string {
	return []string{"build", "-tags", "lambda.norpc", "-trimpath", "-ldflags", "-s -w",
		"-o", filepath.Join(outDir, "bootstrap"), pkg}
}

// goBuild bundles one function on the host with the local Go toolchain, so a fresh clone
// deploys with Go and Node only; CDK's Docker fallback is never used.
type goBuild struct {
	repoRoot string // the main module, where `go build` runs
	pkg      string // the function's package, relative to repoRoot: ./functions/inbound
}

// TryBundle implements awscdk.ILocalBundling. It never reports "could not bundle": that
// would make CDK fall back to Docker, which fails with a less useful message.
func (b *goBuild) TryBundle(outputDir *string, _ *awscdk.BundlingOptions) *bool {
	cmd := exec.Command("go", buildArgs(b.pkg, *outputDir)...)
	cmd.Dir = b.repoRoot
	cmd.Env = append(os.Environ(), buildEnv...)
	// The compiler's messages go into the error, which the CDK CLI shows.
	out, err := cmd.CombinedOutput()
	if err != nil {
		panic(fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(cmd.Args[1:], " "), b.repoRoot, err, bytes.TrimSpace(out)))
	}
	os.Stderr.Write(out) // warnings, if any: stdout of a CDK app is not a log
	return jsii.Bool(true)
}

// functionCode is the Lambda asset for one function package.
//
// The asset hash is that of the built binary (OUTPUT), so a change anywhere in the
// source that does not change the binary does not redeploy, and the source tree
// (node_modules, .git, cdk.out) is never hashed. The excludes cover the one case where
// CDK fingerprints the source anyway: stacks it skips bundling for.
func functionCode(repoRoot, pkg string) awslambda.Code {
	return awslambda.Code_FromAsset(jsii.String(repoRoot), &awss3assets.AssetOptions{
		AssetHashType: awscdk.AssetHashType_OUTPUT,
		Exclude:       jsii.Strings(".git", "**/node_modules", "**/cdk.out", ".build", "bin"),
		Bundling: &awscdk.BundlingOptions{
			// Never pulled: goBuild always bundles. The command documents what runs
			// and keeps the two functions' bundling options (CDK's cache key) apart.
			Image:       awscdk.DockerImage_FromRegistry(jsii.String("none")),
			Command:     jsii.Strings(append([]string{"go"}, buildArgs(pkg, "/asset-output")...)...),
			Environment: &map[string]*string{"CGO_ENABLED": jsii.String("0"), "GOOS": jsii.String("linux"), "GOARCH": jsii.String("arm64")},
			Local:       &goBuild{repoRoot: repoRoot, pkg: pkg},
		},
	})
}

// findRepoRoot returns the directory holding the functions' module: the parent of infra/,
// where both `cdk` (cdk.json) and `go test` run.
func findRepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	root := filepath.Dir(wd)
	for _, p := range []string{"go.mod", "functions/inbound", "functions/delivery"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			return "", errors.New("run the CDK app from the repository's infra/ directory: " + err.Error())
		}
	}
	return root, nil
}
