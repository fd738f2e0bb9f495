// Package plan is the capacity-planning calculator: from a user population and its busy-hour
// behaviour it derives the load a deployment must carry (session establishment rate,
// concurrent sessions by Little's law, MQTT connections) and, against measured capacity,
// how many connector and broker instances carry it. The same formulas run in the HTML
// report's inline script (Script); a test keeps the two in step.
package plan

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Inputs describe the population to serve in its busy hour.
type Inputs struct {
	Users           float64       `json:"users"`            // user population (subscribers)
	BHCA            float64       `json:"bhca"`             // busy-hour call attempts per user of the population
	Hold            time.Duration `json:"-"`                // mean call duration (holding time)
	HoldS           float64       `json:"hold_s"`           // Hold in seconds, for JSON and the script
	RegisteredShare float64       `json:"registered_share"` // share of users registered (connected) in the busy hour, 0..1
	Headroom        float64       `json:"headroom"`         // factor >= 1 applied to the load before sizing (1.5 = 50% spare)
}

// Capacity is what one instance was measured to sustain within the SLO. Zero means not
// measured: the instances it would size are not computed.
type Capacity struct {
	// SessionRate: calls/s (session establishments) one connector with one broker sustained.
	SessionRate float64 `json:"session_rate"`
	// ConnectorRate and BrokerRate: calls/s per instance of each. The capacity search loads a
	// connector and a broker together and cannot tell which one limits, so both default to
	// SessionRate (conservative: neither is assumed to do better than the pair).
	ConnectorRate float64 `json:"connector_rate"`
	BrokerRate    float64 `json:"broker_rate"`
	// Connections: concurrent registered endpoints (MQTT connections) one broker held.
	Connections float64 `json:"connections"`
	// RegistrationRate: registrations/s one broker (with its connector) absorbed.
	RegistrationRate float64 `json:"registration_rate"`
	// TestedHoldS: the mean call duration of the run that measured SessionRate, seconds; it
	// bounds the concurrent sessions the measurement vouches for (SessionRate x TestedHoldS).
	TestedHoldS float64 `json:"tested_hold_s,omitempty"`
	// Sources say where each figure comes from (capacity.json path, knee bound, SLO).
	Sources []string `json:"sources,omitempty"`
}

// Result is the plan.
type Result struct {
	Inputs   Inputs   `json:"inputs"`
	Capacity Capacity `json:"capacity"`

	AttemptsPerHour float64 `json:"attempts_per_hour"` // users x bhca
	SessionRate     float64 `json:"session_rate"`      // calls/s in the busy hour: attempts per hour / 3600
	// ConcurrentSessions is Little's law: L = lambda x W, sessions/s times mean holding time.
	ConcurrentSessions float64 `json:"concurrent_sessions"`
	Connections        float64 `json:"connections"` // users x registered share: one MQTT connection per registered endpoint

	// With headroom: what the deployment is sized for.
	DesignSessionRate        float64 `json:"design_session_rate"`
	DesignConcurrentSessions float64 `json:"design_concurrent_sessions"`
	DesignConnections        float64 `json:"design_connections"`

	// Instances (0: the capacity figure needed was not measured).
	ConnectorInstances     int `json:"connector_instances"`
	BrokerInstancesByRate  int `json:"broker_instances_by_rate"`
	BrokerInstancesByConns int `json:"broker_instances_by_connections"`
	BrokerInstances        int `json:"broker_instances"` // the larger of the two
	// ReregistrationS: seconds for all registered endpoints to register again after every
	// broker restarts at once, spread over BrokerInstances (0: not measured).
	ReregistrationS float64 `json:"reregistration_s"`

	Notes []string `json:"notes,omitempty"` // caveats a planner must read
}

// Validate checks the inputs are usable; each error names the input.
func (in Inputs) Validate() error {
	bad := func(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) }
	var errs []error
	if bad(in.Users) || in.Users <= 0 {
		errs = append(errs, fmt.Errorf("users %g: must be > 0", in.Users))
	}
	if bad(in.BHCA) || in.BHCA < 0 {
		errs = append(errs, fmt.Errorf("bhca %g: must be >= 0", in.BHCA))
	}
	if in.Hold < 0 {
		errs = append(errs, fmt.Errorf("hold %s: must be >= 0", in.Hold))
	}
	if bad(in.RegisteredShare) || in.RegisteredShare < 0 || in.RegisteredShare > 1 {
		errs = append(errs, fmt.Errorf("registered share %g: must be between 0 and 1", in.RegisteredShare))
	}
	if bad(in.Headroom) || in.Headroom < 1 {
		errs = append(errs, fmt.Errorf("headroom %g: must be >= 1 (1.5 = 50%% spare)", in.Headroom))
	}
	return errors.Join(errs...)
}

// Compute works out the plan. Capacity figures that are zero leave their instance counts at
// zero with a note.
func Compute(in Inputs, c Capacity) (*Result, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	in.HoldS = in.Hold.Seconds()
	if c.ConnectorRate == 0 {
		c.ConnectorRate = c.SessionRate
	}
	if c.BrokerRate == 0 {
		c.BrokerRate = c.SessionRate
	}
	r := &Result{Inputs: in, Capacity: c}
	r.AttemptsPerHour = in.Users * in.BHCA
	r.SessionRate = r.AttemptsPerHour / 3600
	r.ConcurrentSessions = r.SessionRate * in.HoldS
	r.Connections = in.Users * in.RegisteredShare
	r.DesignSessionRate = r.SessionRate * in.Headroom
	r.DesignConcurrentSessions = r.ConcurrentSessions * in.Headroom
	r.DesignConnections = r.Connections * in.Headroom

	r.ConnectorInstances = instances(r.DesignSessionRate, c.ConnectorRate)
	r.BrokerInstancesByRate = instances(r.DesignSessionRate, c.BrokerRate)
	r.BrokerInstancesByConns = instances(r.DesignConnections, c.Connections)
	r.BrokerInstances = max(r.BrokerInstancesByRate, r.BrokerInstancesByConns)
	if c.RegistrationRate > 0 && r.BrokerInstances > 0 {
		r.ReregistrationS = r.Connections / (c.RegistrationRate * float64(r.BrokerInstances))
	}

	if c.ConnectorRate <= 0 {
		r.Notes = append(r.Notes, "no measured session establishment rate: run `rtcomm-harness capacity` (mode calls) and pass --capacity DIR, or --connector-rate")
	}
	if c.Connections <= 0 {
		r.Notes = append(r.Notes, "broker instances sized by call rate only: the connections one broker holds were not measured (capacity mode endpoints, or --broker-connections)")
	}
	if c.TestedHoldS > 0 && r.ConnectorInstances > 0 {
		perInstance := r.DesignConcurrentSessions / float64(r.ConnectorInstances)
		tested := c.SessionRate * c.TestedHoldS
		if perInstance > tested {
			r.Notes = append(r.Notes, fmt.Sprintf("each connector would hold %.0f concurrent sessions, more than the %.0f the capacity run held "+
				"(%.4g calls/s x %.4gs hold): re-measure with the planned hold time before trusting the instance count",
				perInstance, tested, c.SessionRate, c.TestedHoldS))
		}
	}
	if in.Headroom == 1 {
		r.Notes = append(r.Notes, "headroom 1: no spare capacity for peaks above the busy-hour average, failures or upgrades")
	}
	return r, nil
}

// instances is ceil(load/per), 0 when per is unknown, at least 1 for any load.
func instances(load, per float64) int {
	if per <= 0 || math.IsNaN(per) || math.IsInf(per, 0) {
		return 0
	}
	n := math.Ceil(load/per - 1e-9) // 1e-9: 100/50 is 2, not 3 after float noise
	return max(1, int(n))
}
