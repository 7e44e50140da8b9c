// Package bench measures Parley: microbenchmarks of the handlers; end-to-end throughput
// and latency on the local stack and on DynamoDB Local with local-aws-sqs, against a
// floor program (bench/floor) doing only the unavoidable work of the design — per
// message one conditional write and one send, per turn one write and one POST per
// reply, deletes in batches — with the CPU time each process spent per message; the
// POST's latency with a bot that takes 2 s; the AWS calls and write units per message
// counted on the real adapters by function (bench/awscount); the cost per million
// messages at list prices; and the Lambda bootstraps' size and init time.
//
// `make bench` runs it all and writes BENCHMARKS.md; see bench/rules.mk. The
// reliability scenarios are in bench/reliability (`make test-reliability`). Proxy
// stands between the code under test and local-aws-sqs: it makes long polls answer as
// SQS does and, for the reliability scenarios, adds the FIFO group lock the emulator
// lacks.
package bench
