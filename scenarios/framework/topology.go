package framework

// Connector topologies (Declaration.Topology): the harness runs the reference
// connector as one in-path connector, as replicas in one shared group, or
// route-only. A route-only connector forwards START_SESSION with the caller's
// fromTopic, so the parties then talk directly: requirements about what a
// connector does in the session path do not apply to it.

// skipUnlessInPath makes a scenario not applicable when the harness runs the
// reference connector route-only (declared topology); why says what the
// scenario needs of a connector in the path.
func skipUnlessInPath(e *Env, why string) {
	if routeOnly(e) {
		NotApplicable("route-only topology: " + why)
	}
}

// skipIfDirect makes a scenario not applicable when the peers address each other
// directly (any route-only connector, declared or not): peerTopic is where the
// sender's messages go, peerAddress the receiver's own address. What one endpoint
// publishes to another's inbox passes no connector, which can judge none of it.
func skipIfDirect(peerTopic, peerAddress, why string) {
	if peerTopic == peerAddress {
		NotApplicable("the peers talk directly (route-only connector): " + why)
	}
}

// routeOnly reports whether the harness runs the reference connector route-only.
func routeOnly(e *Env) bool { return e.Target.HarnessRunsConnector() && e.Decl.Topology.RouteOnly }
