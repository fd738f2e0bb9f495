package watch

// What a secured broker and its connector DID about identity beyond single publishes
// (broker.go judges those, ID-005/008/009/014): session take-overs by client ID (ID-010,
// ID-012) and persistent sessions resumed by another user (ID-011), broker_sessions.go;
// retained messages kept outside presence or over the per-user quota (ID-016),
// broker_retainpolicy.go; the connector acting on registrations of another's inbox (ID-013)
// or on 3PCC requests it must refuse or complete with the wrong session (ID-015),
// broker_deputy.go. Every judgement needs SetSecure; all run under Broker.mu.

// identityState is the Broker's model for these rules (Broker.ident).
type identityState struct {
	sessionModel
	retainModel
	deputyModel
}

// identityKept bounds each map of the model: beyond it new entries are not judged rather
// than old live ones forgotten.
const identityKept = 1 << 16

func (s *identityState) init() {
	if s.sessions != nil {
		return
	}
	s.sessions, s.claims, s.takeovers = map[string]*heldSession{}, map[any]*sessionClaim{}, map[any]*sessionClaim{}
	s.retained, s.perUser = map[string]retainedBy{}, map[string]int{}
	s.badRegs, s.badAddrs, s.ownAddrs = map[string]map[string]Observation{}, map[string]Observation{}, map[string]bool{}
	s.pccs, s.referred = map[string]*pccRequest{}, map[string]*pccRequest{}
}
