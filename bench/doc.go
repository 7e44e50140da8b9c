// Package bench measures Parley: microbenchmarks of the handlers, end-to-end
// throughput and latency on the local stack and on DynamoDB Local with local-aws-sqs,
// against a floor program (bench/floor) doing only the unavoidable work, the AWS calls
// per message counted on the real adapters (shared/awscount), the cost per million
// messages at list prices, and the Lambda bootstraps' size and init time.
//
// `make bench` runs it all and writes BENCHMARKS.md; see bench/rules.mk. The
// reliability scenarios are in bench/reliability (`make test-reliability`).
package bench
