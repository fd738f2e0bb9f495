package connector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// metrics are the connector's Prometheus instruments. Two connectors cannot
// share one Registerer unlabelled: wrap it (prometheus.WrapRegistererWith) per replica.
type metrics struct {
	routed   [numMethods]prometheus.Counter // children bound once: no label lookup per message
	failures *prometheus.CounterVec
	routing  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, c *Connector) (*metrics, error) {
	registrations := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rtcomm_registrations",
		Help: "Endpoint registrations (endpoint ID + appContext) in the registry.",
	}, func() float64 { return float64(c.registrations()) })
	active := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rtcomm_sessions_active",
		Help: "Sessions tracked by this connector (any state).",
	}, func() float64 {
		c.mu.Lock()
		defer c.mu.Unlock()
		return float64(len(c.sess.byID))
	})
	routed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rtcomm_messages_routed_total",
		Help: "Messages forwarded between endpoints, by method.",
	}, []string{"method"})
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rtcomm_failures_total",
		Help: "Requests answered FAILURE, dropped bad input and failed sessions, by reason code.",
	}, []string{"reason"})
	routing := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "rtcomm_routing_seconds",
		Help:    "Time from receiving a message to publishing it onward.",
		Buckets: prometheus.ExponentialBuckets(10e-6, 2, 18), // 10µs .. 1.3s
	})
	dropped := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "rtcomm_messages_dropped_total",
		Help: "Inbound messages dropped without any reply (bad input, over a limit, unanswerable).",
	}, func() float64 { return float64(c.dropped.Load()) })
	panics := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "rtcomm_handler_panics_total",
		Help: "Panics recovered while handling an inbound message (bugs; the message is dropped).",
	}, func() float64 { return float64(c.panics.Load()) })
	forwarded := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "rtcomm_messages_forwarded_total",
		Help: "In-session messages handed on from the general connector topic: to the replica holding the session, or (route-only) to the callee.",
	}, func() float64 { return float64(c.forwarded.Load()) })
	replicaEnded := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "rtcomm_replica_sessions_ended_total",
		Help: "Sessions of a vanished replica that this replica ended (both parties told).",
	}, func() float64 { return float64(c.replicaEnded.Load()) })
	for _, col := range []prometheus.Collector{registrations, active, routed, failures, routing, dropped, panics, forwarded, replicaEnded} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	m := &metrics{failures: failures, routing: routing}
	for i := range min(numMethods, len(spec.Methods)) {
		m.routed[i] = routed.WithLabelValues(string(spec.Methods[i]))
	}
	return m, nil
}
