// Package loadgen is the open-loop load generator's measurement core, independent of MQTT.
//
// The pipeline: a Pacer (ConstantPacer, PoissonPacer) says when calls are due; Run starts each
// call on its own goroutine at its intended time, never waiting for earlier ones, and counts
// late starts when the generator itself falls behind; the call records into a
// metrics.Recorder (latency from the intended start and from the actual send, outcomes,
// message counters); a results.Writer turns the recorder into a results directory while the
// run goes and a Summary at the end, judged against slo thresholds. Progress prints a live
// line on a terminal, and Shard splits endpoints and rate among several generators whose
// results results.Merge adds up exactly.
//
// Only main exits; every blocking call takes a context.
package loadgen
