package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
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
	files    []assetFile
}

// assetFile is a file of the deploying machine copied into a function's package, next
// to bootstrap (the rules bot's intents).
type assetFile struct {
	name   string // in the package: /var/task/<name> on Lambda
	source string // absolute path
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
	for _, f := range b.files {
		if err := copyFile(f.source, filepath.Join(*outputDir, f.name)); err != nil {
			panic(fmt.Errorf("copy %s into the function package: %w", f.source, err))
		}
	}
	return jsii.Bool(true)
}

// copyFile writes the content of src to dst, readable by everyone: Lambda runs the
// function as a user who owns none of the package's files.
func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		return err
	}
	return os.Chmod(dst, 0o644) // whatever the umask
}

// fingerprint identifies the files' names and contents, for CDK's bundling cache.
func fingerprint(files []assetFile) (string, error) {
	h := sha256.New()
	for _, f := range files {
		data, err := os.ReadFile(f.source)
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(h, "%s %x\n", f.name, sum)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// functionCode is the Lambda asset for one function package: the built binary, and
// the given files next to it.
//
// The asset hash is that of the package (OUTPUT), so a change anywhere in the source
// that does not change the binary does not redeploy, a changed file does, and the source
// tree (node_modules, .git, cdk.out) is never hashed. The excludes cover the one case
// where CDK fingerprints the source anyway: stacks it skips bundling for.
func functionCode(repoRoot, pkg string, files ...assetFile) awslambda.Code {
	env := map[string]*string{"CGO_ENABLED": jsii.String("0"), "GOOS": jsii.String("linux"), "GOARCH": jsii.String("arm64")}
	if len(files) > 0 {
		// CDK reuses a bundle within one process when the bundling options are equal
		// (its cache key); the files' fingerprint keeps packages with other files apart.
		sum, err := fingerprint(files)
		if err != nil {
			panic(fmt.Errorf("function package %s: %w", pkg, err))
		}
		env["PARLEY_PACKAGE_FILES"] = jsii.String(sum)
	}
	return awslambda.Code_FromAsset(jsii.String(repoRoot), &awss3assets.AssetOptions{
		AssetHashType: awscdk.AssetHashType_OUTPUT,
		Exclude:       jsii.Strings(".git", "**/node_modules", "**/cdk.out", ".build", "bin"),
		Bundling: &awscdk.BundlingOptions{
			// Never pulled: goBuild always bundles. The command documents what runs
			// and keeps the two functions' bundling options (CDK's cache key) apart.
			Image:       awscdk.DockerImage_FromRegistry(jsii.String("none")),
			Command:     jsii.Strings(append([]string{"go"}, buildArgs(pkg, "/asset-output")...)...),
			Environment: &env,
			Local:       &goBuild{repoRoot: repoRoot, pkg: pkg, files: files},
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
