package framework

// Connector topologies (Declaration.Topology): the harness runs the reference
// connector as one in-path connector, as replicas in one shared group, or
// route-only. A route-only connector forwards START_SESSION with the caller's
// fromTopic, so the parties then talk directly: requirements about what a
// connector does in the session path do not apply to it.

// SkipUnlessInPath makes a scenario not applicable when the harness runs the
// reference connector route-only (declared topology); why says what the
// scenario needs of a connector in the path.
func SkipUnlessInPath(e *Env, why string) {
	if RouteOnly(e) {
		NotApplicable("route-only topology: " + why)
	}
}

// SkipIfDirect makes a scenario not applicable when the peers address each other
// directly (any route-only connector, declared or not): peerTopic is where the
// sender's messages go, peerAddress the receiver's own address. What one endpoint
// publishes to another's inbox passes no connector, which can judge none of it.
func SkipIfDirect(peerTopic, peerAddress, why string) {
	if peerTopic == peerAddress {
		NotApplicable("the peers talk directly (route-only connector): " + why)
	}
}

// RouteOnly reports whether the harness runs the reference connector route-only.
func RouteOnly(e *Env) bool { return e.Target.HarnessRunsConnector() && e.Decl.Topology.RouteOnly }
