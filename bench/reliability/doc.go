// Package reliability tries to break Parley and counts what it lost or duplicated:
// a duplicate storm on DynamoDB Local and local-aws-sqs, a chaotic receiver, a receiver
// flapping 404/500/200 for two minutes, an endpoint disabled by a 410 for five minutes
// and enabled again by the operator, the split local stack's processes killed at
// random under load, emulators restarted in the middle of a run, crashes injected at
// every step of accepting and running a turn, and security checks on logs, stored
// tokens and signatures. Each scenario prints what it sent, what arrived and what was
// lost, duplicated or reordered, and fails on any loss, on a bot message delivered
// under two webhook ids or with two bodies, and, where the queue keeps FIFO order (the
// embedded queue, or local-aws-sqs behind the group-locking bench.Proxy), on a
// conversation's replies out of order.
//
// The scenarios build only with the reliability tag, under `make test-reliability`
// (PARLEY_RELIABILITY=full, or short for CI); with the variable set, an emulator that
// cannot start fails them. PARLEY_RELIABILITY_LOGS keeps the processes' logs.
package reliability
