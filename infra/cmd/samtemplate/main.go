// Command samtemplate writes the SAM template, ../template.yaml from infra/, and the
// table of its parameters in README.md, from the deployment's definition (infra/deploy),
// which the CDK app deploys too: `make template`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/parley-chat/parley/infra/deploy"
)

func main() {
	out := flag.String("o", "../template.yaml", "where to write the template")
	readme := flag.String("readme", "README.md", "the README whose parameters table to rewrite; empty: none")
	flag.Parse()
	if err := run(*out, *readme); err != nil {
		fmt.Fprintln(os.Stderr, "samtemplate:", err)
		os.Exit(1)
	}
}

func run(out, readme string) error {
	data, err := deploy.SAMTemplate()
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, data, 0o644); err != nil {
		return err
	}
	if readme == "" {
		return nil
	}
	doc, err := os.ReadFile(readme)
	if err != nil {
		return err
	}
	if doc, err = deploy.WithParametersTable(doc); err != nil {
		return fmt.Errorf("%s: %w", readme, err)
	}
	return os.WriteFile(readme, doc, 0o644)
}
