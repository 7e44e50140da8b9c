// Package reliability tries to break Parley and counts what it lost or duplicated:
// a duplicate storm on DynamoDB Local, a chaotic receiver, processes killed at random
// under load, emulators restarted in the middle of a run, security checks on logs,
// stored tokens and signatures. Each scenario prints what it sent, what arrived and
// what was lost or duplicated, and fails on any loss or on a message delivered twice
// under different ids.
//
// The scenarios build only with the reliability tag, under `make test-reliability`
// (PARLEY_RELIABILITY=full, or
// short for CI); with the variable set, an emulator that cannot start fails them.
package reliability
