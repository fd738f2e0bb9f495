// Package scenarios is the Rtcomm conformance suite as a library: it links every area's specs
// (the packages below scenarios/, each registering its Ginkgo Describes at init) and re-exports
// the framework's entry points (target declaration, Open, Run, verdicts, bundle file names)
// that the certify command, the faulty targets and the watch tests use. The framework itself is
// scenarios/framework; README.md describes the layout.
package scenarios

import (
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/framework"
	"github.com/rtcomm-harness/rtcomm-harness/scenarios/security"

	// The area specs: each registers its Describes in the suite when linked.
	_ "github.com/rtcomm-harness/rtcomm-harness/scenarios/broker"
	_ "github.com/rtcomm-harness/rtcomm-harness/scenarios/events"
	_ "github.com/rtcomm-harness/rtcomm-harness/scenarios/format"
	_ "github.com/rtcomm-harness/rtcomm-harness/scenarios/ice"
	_ "github.com/rtcomm-harness/rtcomm-harness/scenarios/identity"
	_ "github.com/rtcomm-harness/rtcomm-harness/scenarios/messages"
	_ "github.com/rtcomm-harness/rtcomm-harness/scenarios/queues"
	_ "github.com/rtcomm-harness/rtcomm-harness/scenarios/referral"
	_ "github.com/rtcomm-harness/rtcomm-harness/scenarios/registration"
	_ "github.com/rtcomm-harness/rtcomm-harness/scenarios/robustness"
	_ "github.com/rtcomm-harness/rtcomm-harness/scenarios/rtcommjs"
	_ "github.com/rtcomm-harness/rtcomm-harness/scenarios/schemes"
	_ "github.com/rtcomm-harness/rtcomm-harness/scenarios/servicequery"
	_ "github.com/rtcomm-harness/rtcomm-harness/scenarios/sessions"
)

// LabelSecurity labels the scenarios of the secured listener (scenarios/security).
const LabelSecurity = security.LabelSecurity

// The framework's names that the certify command, the faulty targets and the watch tests use
// (aliases: the same types, constants and functions); everything else is in
// scenarios/framework.
type (
	Mode               = framework.Mode
	Profile            = framework.Profile
	Feature            = framework.Feature
	Duration           = framework.Duration
	Identity           = framework.Identity
	Topology           = framework.Topology
	Declaration        = framework.Declaration
	Overrides          = framework.Overrides
	ConnectorParams    = framework.ConnectorParams
	Target             = framework.Target
	RunOptions         = framework.RunOptions
	Verdict            = framework.Verdict
	Verdicts           = framework.Verdicts
	RequirementVerdict = framework.RequirementVerdict
)

// The framework's constants: every value of the enumerations above, the RTCOMM_* variables and
// the bundle's file names.
const (
	ModeEmbedded         = framework.ModeEmbedded
	ModeBroker           = framework.ModeBroker
	ModeConnector        = framework.ModeConnector
	ProfileStrict        = framework.ProfileStrict
	ProfileClient        = framework.ProfileClient
	FeatureWebSocket     = framework.FeatureWebSocket
	FeatureSecure        = framework.FeatureSecure
	FeatureQueues        = framework.FeatureQueues
	Feature3PCC          = framework.Feature3PCC
	FeatureEvents        = framework.FeatureEvents
	FeatureSchemes       = framework.FeatureSchemes
	FeatureSharedSubs    = framework.FeatureSharedSubs
	VerdictPass          = framework.VerdictPass
	VerdictFail          = framework.VerdictFail
	VerdictNotClaimed    = framework.VerdictNotClaimed
	VerdictNotApplicable = framework.VerdictNotApplicable
	VerdictNotTested     = framework.VerdictNotTested
	EnvTarget            = framework.EnvTarget
	EnvMode              = framework.EnvMode
	EnvBrokerTCP         = framework.EnvBrokerTCP
	EnvBrokerWS          = framework.EnvBrokerWS
	EnvTopicPath         = framework.EnvTopicPath
	EnvProfile           = framework.EnvProfile
	EnvUsername          = framework.EnvUsername
	EnvPassword          = framework.EnvPassword
	EnvTopology          = framework.EnvTopology
	BundleVerdicts       = framework.BundleVerdicts
	BundleJUnit          = framework.BundleJUnit
	BundleJSON           = framework.BundleJSON
	BundleTarget         = framework.BundleTarget
)

// The framework's functions (declaration, target, run, verdicts, reference connector,
// coverage), documented there.
var (
	ParseTopology       = framework.ParseTopology
	EmbeddedDeclaration = framework.EmbeddedDeclaration
	LoadDeclaration     = framework.LoadDeclaration
	ParseDeclaration    = framework.ParseDeclaration
	OverridesFromEnv    = framework.OverridesFromEnv
	ResolveDeclaration  = framework.ResolveDeclaration
	Open                = framework.Open
	Run                 = framework.Run
	ReadVerdicts        = framework.ReadVerdicts
	ReferenceConnector  = framework.ReferenceConnector
	ReferenceConfig     = framework.ReferenceConfig
	Coverage            = framework.Coverage
)
