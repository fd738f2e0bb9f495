// Package framework is what every conformance scenario runs on (as Kubernetes'
// test/e2e/framework): the target declaration and Open, Env and its isolation, parties, inboxes
// and matchers, checks (Check, That, ...) and preconditions, the message validator, traces, and
// the run with its verdicts, bundle and coverage. The area specs (the sibling packages) import
// it; package scenarios links them all (scenarios/README.md).
package framework
