// Package scenarios is the Rtcomm conformance suite as a library: it links every area's specs
// (the packages below scenarios/, each registering its Ginkgo Describes at init) and re-exports
// the framework's entry points (target declaration, Open, Run, verdicts, bundle) that the
// certify command, the faulty targets and the reports use. The framework itself is
// scenarios/framework; README.md describes the layout.
package scenarios

import (
	"context"
	"log/slog"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"

	"github.com/rtcomm-harness/rtcomm-harness/reference/connector"
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

// The framework's types a caller of the suite needs (aliases: the same types).
type (
	Mode               = framework.Mode
	Profile            = framework.Profile
	Feature            = framework.Feature
	Duration           = framework.Duration
	BrokerURLs         = framework.BrokerURLs
	Identity           = framework.Identity
	Secure             = framework.Secure
	SchemeRoute        = framework.SchemeRoute
	Limits             = framework.Limits
	Timeouts           = framework.Timeouts
	Topology           = framework.Topology
	Declaration        = framework.Declaration
	Overrides          = framework.Overrides
	ConnectorParams    = framework.ConnectorParams
	ConnectorFunc      = framework.ConnectorFunc
	Target             = framework.Target
	RunOptions         = framework.RunOptions
	Result             = framework.Result
	Verdict            = framework.Verdict
	Verdicts           = framework.Verdicts
	Summary            = framework.Summary
	RequirementVerdict = framework.RequirementVerdict
	FailureEvidence    = framework.FailureEvidence
	CoverageReport     = framework.CoverageReport
)

// The framework's constants (target modes, profiles, features, RTCOMM_* variables, bundle files, verdicts).
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
	SuiteName            = framework.SuiteName
	VerdictsFormat       = framework.VerdictsFormat
	VerdictPass          = framework.VerdictPass
	VerdictFail          = framework.VerdictFail
	VerdictNotClaimed    = framework.VerdictNotClaimed
	VerdictNotApplicable = framework.VerdictNotApplicable
	VerdictNotTested     = framework.VerdictNotTested
)

// ParseTopology is framework.ParseTopology.
func ParseTopology(s string) (Topology, error) { return framework.ParseTopology(s) }

// EmbeddedDeclaration is framework.EmbeddedDeclaration.
func EmbeddedDeclaration() Declaration { return framework.EmbeddedDeclaration() }

// LoadDeclaration is framework.LoadDeclaration.
func LoadDeclaration(path string) (Declaration, error) { return framework.LoadDeclaration(path) }

// ParseDeclaration is framework.ParseDeclaration.
func ParseDeclaration(b []byte) (Declaration, error) { return framework.ParseDeclaration(b) }

// OverridesFromEnv is framework.OverridesFromEnv.
func OverridesFromEnv(getenv func(string) string) Overrides {
	return framework.OverridesFromEnv(getenv)
}

// ResolveDeclaration is framework.ResolveDeclaration.
func ResolveDeclaration(path string, o Overrides) (Declaration, error) {
	return framework.ResolveDeclaration(path, o)
}

// Open is framework.Open.
func Open(ctx context.Context, d Declaration, log *slog.Logger) (*Target, error) {
	return framework.Open(ctx, d, log)
}

// Run is framework.Run.
func Run(t ginkgo.GinkgoTestingT, o RunOptions) (*Result, error) { return framework.Run(t, o) }

// WriteBundle is framework.WriteBundle.
func WriteBundle(dir string, r types.Report, v *Verdicts, d Declaration) error {
	return framework.WriteBundle(dir, r, v, d)
}

// ReadVerdicts is framework.ReadVerdicts.
func ReadVerdicts(path string) (*Verdicts, error) { return framework.ReadVerdicts(path) }

// ComputeVerdicts is framework.ComputeVerdicts.
func ComputeVerdicts(r types.Report, d Declaration) *Verdicts { return framework.ComputeVerdicts(r, d) }

// ReferenceConnector is framework.ReferenceConnector.
func ReferenceConnector(ctx context.Context, p ConnectorParams) (func(), error) {
	return framework.ReferenceConnector(ctx, p)
}

// ReferenceConfig is framework.ReferenceConfig.
func ReferenceConfig(p ConnectorParams) connector.Config { return framework.ReferenceConfig(p) }

// Coverage is framework.Coverage.
func Coverage() CoverageReport { return framework.Coverage() }
