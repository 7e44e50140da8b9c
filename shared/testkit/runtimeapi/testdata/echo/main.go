// Command echo is a tiny Lambda function for the runtimeapi tests: it answers with
// what the runtime told it, fails when asked to, and panics when asked to.
package main

import (
	"context"
	"errors"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type event struct {
	Say   string `json:"say"`
	Fail  bool   `json:"fail"`
	Panic bool   `json:"panic"`
}

type answer struct {
	Say         string `json:"say"`
	RequestID   string `json:"requestId"`
	FunctionARN string `json:"functionArn"`
	DeadlineMs  int64  `json:"deadlineMs"`
	TraceID     string `json:"traceId"`
	Env         string `json:"env"`
}

func main() {
	if os.Getenv("ECHO_EXIT") != "" {
		os.Stderr.WriteString("echo: ECHO_EXIT is set\n")
		os.Exit(3)
	}
	lambda.Start(func(ctx context.Context, ev event) (answer, error) {
		if ev.Fail {
			return answer{}, errors.New("asked to fail")
		}
		if ev.Panic {
			panic("asked to panic")
		}
		lc, _ := lambdacontext.FromContext(ctx)
		dl, _ := ctx.Deadline()
		return answer{Say: ev.Say, RequestID: lc.AwsRequestID, FunctionARN: lc.InvokedFunctionArn,
			DeadlineMs: dl.UnixMilli(), TraceID: os.Getenv("_X_AMZN_TRACE_ID"), Env: os.Getenv("ECHO_VAR")}, nil
	})
}
