package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/rtcomm-harness/rtcomm-harness/reference/broker"
	"github.com/rtcomm-harness/rtcomm-harness/reference/connector"
	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// serveOptions are the flags of `serve`.
type serveOptions struct {
	brokerURL        string // external broker; empty = embedded
	tcpAddr          string
	wsAddr           string
	httpAddr         string
	topicPath        string
	iceURLs          []string
	routeOnly        bool
	answerTimeout    time.Duration
	noEvents         bool
	noCallControl    bool
	queues           []string
	queueGroup       string
	queueShare       string
	schemes          []string
	sharedGroup      string
	maxPayload       int
	maxPendingWrites int
	secure           bool
	credentials      string
	connectorUser    string
	username         string
	password         string
	tlsCert          string
	tlsKey           string
	tlsCA            string
	callControllers  []string
	clientIDs        string
	maxTopicLength   int
	maxTopicLevels   int
	check            bool   // run the passive checker in the broker (watch.Hook)
	checkOut         string // its bundle directory
	checkProfile     string
	checkSLO         string
	retainedQuota    int
	// Connector limits: 0 takes the connector's default, negative switches a limit off.
	ratePerClient float64
	rateBurst     int
	maxSessPerEP  int
	maxRegsPerEP  int
	maxRegs       int
	maxDepth      int
	maxStringLen  int
	cpuProfile    string
	memProfile    string
	connLink      string // embedded broker: "in-process" or "socket"
}

func newServeCmd(g *globalFlags) *cobra.Command {
	o := serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the reference target: embedded MQTT broker + reference rtcomm connector",
		Long: `Run the reference rtcomm target until Ctrl-C (SIGINT) or SIGTERM.

By default it starts an embedded MQTT broker (TCP and WebSocket at /mqtt, loopback)
and the reference connector attached to it. With --broker, it runs only the
connector, attached to an external broker (mosquitto, RabbitMQ, ...).

It prints the addresses it serves on. /metrics (Prometheus) and /healthz are on
--http.`,
		Example: `  rtcomm-harness serve
  rtcomm-harness serve --tcp 127.0.0.1:0 --ws off
  rtcomm-harness serve --broker tcp://127.0.0.1:1883 --topic-path /rtcomm/
  rtcomm-harness serve --secure --credentials creds.txt --connector-user connector
  rtcomm-harness serve --secure --credentials creds.txt --tls-cert cert.pem --tls-key key.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			return runServe(cmd.Context(), o, cmd.OutOrStdout(), log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.brokerURL, "broker", "", "external broker URL (tcp://, ssl://, ws://, wss://); empty runs the embedded broker")
	f.StringVar(&o.tcpAddr, "tcp", "127.0.0.1:1883", "embedded broker TCP listen address (port 0 = random, \"off\" disables)")
	f.StringVar(&o.wsAddr, "ws", "127.0.0.1:8083", "embedded broker WebSocket listen address, path /mqtt (\"off\" disables)")
	f.StringVar(&o.httpAddr, "http", "127.0.0.1:9464", "metrics and health HTTP address (\"off\" disables)")
	f.StringVar(&o.topicPath, "topic-path", "/rtcomm/", "rtcomm topic path (root of every topic)")
	f.StringSliceVar(&o.iceURLs, "ice-url", nil, "ICE server URL advertised in the service query answer (repeatable; default a public STUN server)")
	f.BoolVar(&o.routeOnly, "route-only", false, "forward START_SESSION untouched and stay out of the session path (the caller's later messages to the connector topic still reach the callee)")
	f.DurationVar(&o.answerTimeout, "answer-timeout", 30*time.Second, "reap sessions not answered within this time")
	f.BoolVar(&o.noEvents, "no-events", false, "do not publish RTCOMM_EVENT_FIRED events")
	f.BoolVar(&o.noCallControl, "no-call-control", false, "do not serve 3PCC_PLACE_CALL")
	f.StringSliceVar(&o.queues, "queue", nil, "call-queue endpoint ID served through a shared subscription (repeatable)")
	f.StringVar(&o.queueGroup, "queue-group", connector.DefaultQueueGroup, "shared-subscription group of queue agents")
	f.StringVar(&o.queueShare, "queue-share-syntax", connector.DefaultQueueShare,
		"the broker's shared-subscription prefix, {group} standing for --queue-group: queues are advertised as <prefix><path><queue>/#, "+
			"which agents subscribe to as given (MessageSight: '$SharedSubscription/{group}/'; 'none': a plain filter, for brokers without shared subscriptions: every agent gets every call)")
	f.StringSliceVar(&o.schemes, "scheme", nil, "scheme route SCHEME=TOPIC, e.g. sip=/rtcomm/sipgw (repeatable)")
	f.StringVar(&o.sharedGroup, "shared-group", "", "run as one of several replicas: share routing topics in this group; a message for another replica's session is forwarded to it, and a replica that dies has its sessions ended by the others")
	f.IntVar(&o.maxPayload, "max-payload", 1<<20, "embedded broker: largest PUBLISH payload in bytes")
	f.IntVar(&o.maxPendingWrites, "max-pending-writes", broker.DefaultMaxPendingWrites,
		"embedded broker: most deliveries queued per client for its socket (16 .. 1048576); the queue grows on demand, "+
			"so more costs memory only while a subscriber has a backlog; fewer drops deliveries (counted, not retried) when a subscriber falls behind")
	f.BoolVar(&o.secure, "secure", false, "embedded broker: require authentication and enforce identity ACLs")
	f.StringVar(&o.credentials, "credentials", "", "embedded broker secure mode: credentials file (user:password per line)")
	f.StringVar(&o.connectorUser, "connector-user", "connector", "identity the connector authenticates as (may do everything in secure mode)")
	f.StringVar(&o.username, "username", "", "connector's MQTT username for an external broker")
	f.StringVar(&o.password, "password", "", "connector's MQTT password for an external broker")
	f.StringVar(&o.tlsCert, "tls-cert", "", "embedded broker: TLS certificate file (enables ssl:// and wss://)")
	f.StringVar(&o.tlsKey, "tls-key", "", "embedded broker: TLS key file")
	f.BoolVar(&o.check, "check", false, "embedded broker: judge every inbound publish against the catalog, with the client that sent it; findings in the log and /metrics, a verdict bundle on Ctrl-C (docs/CHECK.md)")
	f.StringVar(&o.checkOut, "check-out", "", "with --check: bundle directory (default results/check-<UTC time>)")
	f.StringVar(&o.checkProfile, "check-profile", string(spec.ProfileClient), "with --check: profile the clients are held to (client or strict)")
	f.StringVar(&o.checkSLO, "check-slo", "", "with --check: 'violations<=N'; exit 1 when breached")
	f.Float64Var(&o.ratePerClient, "rate-per-client", 0, fmt.Sprintf("connector: inbound messages/s one sender ID may sustain (0 = default %d, -1 = no limit)", connector.DefaultRatePerClient))
	f.IntVar(&o.rateBurst, "rate-burst", 0, fmt.Sprintf("connector: burst allowed above --rate-per-client (0 = default %d)", connector.DefaultRateBurst))
	f.IntVar(&o.maxSessPerEP, "max-sessions-per-endpoint", 0, fmt.Sprintf("connector: sessions one endpoint ID may take part in (0 = default %d, -1 = no limit)", connector.DefaultMaxSessionsPerEndpoint))
	f.IntVar(&o.maxRegsPerEP, "max-registrations-per-endpoint", 0, fmt.Sprintf("connector: appContexts one endpoint ID may register (0 = default %d, -1 = no limit)", connector.DefaultMaxRegistrationsPerEndpoint))
	f.IntVar(&o.maxRegs, "max-registrations", 0, fmt.Sprintf("connector: registry size (0 = default %d, -1 = no limit)", connector.DefaultMaxRegistrations))
	f.IntVar(&o.maxDepth, "max-json-depth", 0, fmt.Sprintf("connector: JSON nesting depth of an inbound message (0 = default %d)", spec.DefaultMaxDepth))
	f.IntVar(&o.maxStringLen, "max-string-len", 0, fmt.Sprintf("connector: longest string in an inbound message, SDP included (0 = default %d bytes)", spec.DefaultMaxStringLen))
	f.StringSliceVar(&o.callControllers, "call-controllers", nil, "endpoint IDs allowed to place third-party calls (3PCC_PLACE_CALL), comma-separated; "+
		"without it anyone may in open mode and, in secure mode, only users with the role call-controller in --credentials")
	f.StringVar(&o.clientIDs, "client-ids", string(broker.ClientIDsBound), "embedded broker secure mode: client-ID rule; \"bound\": an ID naming a user "+
		"(<user>, <user>:<suffix>, <topic path><user>) is that user's, any other ID (rtcomm.js's random ones) is held by the user whose session has it; "+
		"\"user\": every client ID must name the connecting user")
	f.IntVar(&o.maxTopicLength, "max-topic-length", broker.DefaultMaxTopicLength, "embedded broker: longest topic name or filter in bytes (PUBLISH, SUBSCRIBE, wills)")
	f.IntVar(&o.maxTopicLevels, "max-topic-levels", broker.DefaultMaxTopicLevels, "embedded broker: most levels in a topic name or filter")
	f.IntVar(&o.retainedQuota, "retained-quota", broker.DefaultRetainedQuota, "embedded broker: retained payload bytes one client (secure mode: one user) may hold; "+
		"in secure mode retained messages are kept only on presence topics")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile from start to shutdown to this file (go tool pprof)")
	f.StringVar(&o.memProfile, "memprofile", "", "at shutdown, write a heap profile (allocations since start and live objects at the last GC) to this file")
	f.StringVar(&o.connLink, "connector-link", linkInProcess, "embedded broker: how the connector reaches it; \"in-process\": "+
		"as an MQTT client inside the broker's process, no socket (same client ID, credentials, ACLs and hooks; the default), "+
		"\"socket\": over the broker's TCP (or WebSocket) listener like any client. With --broker or --shared-group it is always a socket")
	f.StringVar(&o.tlsCA, "tls-ca", "", "external broker (ssl://, wss://): CA certificate file (PEM) the connector trusts instead of the system roots")
	return cmd
}

// parseSchemes turns SCHEME=TOPIC flags into routes.
func parseSchemes(in []string) ([]connector.SchemeRoute, error) {
	var out []connector.SchemeRoute
	for _, s := range in {
		scheme, topic, ok := strings.Cut(s, "=")
		if !ok || scheme == "" || topic == "" {
			return nil, fmt.Errorf("--scheme %q: want SCHEME=TOPIC, e.g. sip=/rtcomm/sipgw", s)
		}
		out = append(out, connector.SchemeRoute{Scheme: scheme, Topic: topic})
	}
	return out, nil
}

// runServe runs broker + connector until ctx ends; it prints the addresses to out.
func runServe(ctx context.Context, o serveOptions, out io.Writer, log *slog.Logger) error {
	schemes, err := parseSchemes(o.schemes)
	if err != nil {
		return err
	}
	switch o.connLink {
	case "":
		o.connLink = linkInProcess // the flag's default (callers that build serveOptions directly)
	case linkInProcess, linkSocket:
	default:
		return fmt.Errorf("--connector-link %q: want %q or %q", o.connLink, linkInProcess, linkSocket)
	}
	stopProfiles, err := startServeProfiles(o.cpuProfile, o.memProfile)
	if err != nil {
		return err
	}
	defer stopProfiles(log)
	cfg := connector.DefaultConfig()
	cfg.TopicPath = o.topicPath
	if len(o.iceURLs) > 0 {
		cfg.ICEURLs = o.iceURLs
	}
	cfg.RouteOnly = o.routeOnly
	cfg.AnswerTimeout = o.answerTimeout
	cfg.Events = !o.noEvents
	cfg.CallControl = !o.noCallControl
	cfg.Queues = o.queues
	cfg.QueueGroup, cfg.QueueShare = o.queueGroup, o.queueShare
	cfg.Schemes = schemes
	cfg.SharedGroup = o.sharedGroup
	cfg.CallControllers = o.callControllers
	cfg.RatePerClient, cfg.RateBurst = o.ratePerClient, o.rateBurst
	cfg.MaxSessionsPerEndpoint, cfg.MaxRegistrationsPerEndpoint, cfg.MaxRegistrations = o.maxSessPerEP, o.maxRegsPerEP, o.maxRegs
	cfg.Limits.MaxDepth, cfg.Limits.MaxStringLen = o.maxDepth, o.maxStringLen
	cfg.Logger = log
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Registerer = reg

	if o.brokerURL != "" && (o.secure || o.credentials != "" || o.tlsCert != "" || o.tlsKey != "") {
		// The external broker enforces its own ACLs (docs/SECURITY.md): silently
		// ignoring these flags would suggest a protection that is not there.
		return errors.New("--secure, --credentials, --tls-cert and --tls-key configure the embedded broker; with --broker use --username, --password and --tls-ca")
	}
	var b *broker.Broker
	var chk *serveCheck
	if o.check {
		if o.brokerURL != "" {
			return errors.New("--check runs inside the embedded broker; to watch an external broker run 'rtcomm-harness check --broker URL'")
		}
		if chk, err = newServeCheck(o, reg, log); err != nil {
			return err
		}
	}
	if o.brokerURL == "" {
		bc := broker.Config{
			TCPAddr: o.tcpAddr, WSAddr: o.wsAddr, MaxPayload: o.maxPayload, MaxPendingWrites: o.maxPendingWrites,
			TopicPath:      o.topicPath,
			MaxTopicLength: o.maxTopicLength, MaxTopicLevels: o.maxTopicLevels, RetainedQuota: o.retainedQuota,
			TLSCertFile: o.tlsCert, TLSKeyFile: o.tlsKey, Logger: log.With("component", "broker"),
		}
		if chk != nil {
			bc.Hooks = append(bc.Hooks, chk.hook)
		}
		if o.secure {
			if o.credentials == "" {
				return errors.New("--secure needs --credentials FILE (user:password per line, including the connector's)")
			}
			file, err := broker.LoadCredentialsFile(o.credentials)
			if err != nil {
				return err
			}
			creds := file.Users
			if _, ok := creds[o.connectorUser]; !ok {
				return fmt.Errorf("--connector-user %q has no entry in %s", o.connectorUser, o.credentials)
			}
			rule, err := broker.ParseClientIDRule(o.clientIDs)
			if err != nil {
				return fmt.Errorf("--client-ids: %w", err)
			}
			bc.Secure, bc.Credentials, bc.ConnectorUser, bc.ClientIDs = true, creds, o.connectorUser, rule
			cfg.Username, cfg.Password = o.connectorUser, creds[o.connectorUser]
			// The connector's client ID names its user, so no other user can take it (or
			// its session topic) over, whichever client-ID rule is in force. ID-012
			cfg.ClientID = o.connectorUser + ":" + mqttc.RandomClientID("")
			cfg.Secure = true // ID-013 ID-014 ID-015
			cfg.CallControllers = append(cfg.CallControllers, file.Roles[broker.RoleCallController]...)
			if chk != nil {
				chk.hook.Broker.SetCallControllers(cfg.CallControllers) // ID-015
			}
		}
		b, err = broker.Start(ctx, bc)
		if err != nil {
			return err
		}
		defer b.Close()
		if o.tcpAddr != "off" {
			cfg.BrokerURL = b.TCPURL()
		} else {
			cfg.BrokerURL = b.WSURL()
		}
		if o.tlsCert != "" {
			if cfg.TLSConfig, err = pinnedTLS(o.tlsCert, o.tlsKey); err != nil {
				return err
			}
		}
	} else {
		cfg.BrokerURL = o.brokerURL
		cfg.Username, cfg.Password = o.username, o.password
		if o.tlsCA != "" {
			if cfg.TLSConfig, err = caTLS(o.tlsCA); err != nil {
				return err
			}
		}
	}
	if b != nil && o.sharedGroup == "" && o.connLink == linkInProcess {
		cfg.Dial = connector.InProcess(b)
	}
	cfg.Logger = log.With("component", "connector")
	if chk != nil {
		if cfg.ClientID == "" {
			cfg.ClientID = mqttc.RandomClientID("rtcconn-")
		}
		chk.connector(cfg.ClientID)
	}

	conn, err := connector.New(cfg)
	if err != nil {
		return err
	}
	if err := conn.Start(ctx); err != nil {
		return fmt.Errorf("connector: %w", err)
	}
	defer conn.Close()

	var httpURL string
	if o.httpAddr != "off" {
		srv, addr, err := startOps(o.httpAddr, reg, conn)
		if err != nil {
			return err
		}
		httpURL = "http://" + addr
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}

	if b != nil {
		if o.tcpAddr != "off" {
			fmt.Fprintf(out, "mqtt tcp:        %s\n", b.TCPURL())
		}
		if o.wsAddr != "off" {
			fmt.Fprintf(out, "mqtt websocket:  %s\n", b.WSURL())
		}
	} else {
		fmt.Fprintf(out, "broker:          %s (external)\n", cfg.BrokerURL)
	}
	fmt.Fprintf(out, "topic path:      %s\n", conn.Topics().Path)
	if httpURL != "" {
		fmt.Fprintf(out, "metrics:         %s/metrics\nhealth:          %s/healthz\n", httpURL, httpURL)
	}
	fmt.Fprintln(out, "serving; Ctrl-C to stop")

	<-ctx.Done()
	log.Info("shutting down")
	if chk != nil {
		return chk.finish(out, b, log)
	}
	return nil
}

// Values of serve --connector-link.
const (
	linkInProcess = "in-process"
	linkSocket    = "socket"
)

// pinnedTLS is the connector's TLS configuration for the embedded broker: it trusts
// exactly the certificate the broker serves. The connector dials the loopback address
// the broker is bound to, which a certificate issued for the public host name does not
// name, so ordinary host-name verification would fail; pinning the served certificate
// is at least as strict.
func pinnedTLS(certFile, keyFile string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS key pair %s, %s: %w", certFile, keyFile, err)
	}
	leaf := pair.Certificate[0]
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is done by VerifyConnection below (pinning), not by host name.
		InsecureSkipVerify: true, //nolint:gosec // the peer certificate is pinned
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, leaf) {
				return errors.New("embedded broker presented a certificate other than " + certFile)
			}
			return nil
		},
	}, nil
}

// caTLS trusts the CA certificates in a PEM file (an external broker with a private CA).
func caTLS(caFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--tls-ca %s: no PEM certificate found", caFile)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, nil
}

// startOps serves /metrics and /healthz.
func startOps(addr string, reg *prometheus.Registry, conn *connector.Connector) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("metrics listener %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := conn.Healthy(); err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, ln.Addr().String(), nil
}

// startServeProfiles starts the CPU profile and returns what writes both profiles at
// shutdown (make perf profiles the reference in its own process with them).
func startServeProfiles(cpuFile, memFile string) (func(*slog.Logger), error) {
	var cpu *os.File
	if cpuFile != "" {
		f, err := os.Create(cpuFile)
		if err != nil {
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		cpu = f
	}
	return func(log *slog.Logger) {
		if cpu != nil {
			pprof.StopCPUProfile()
			cpu.Close()
		}
		if memFile == "" {
			return
		}
		f, err := os.Create(memFile)
		if err == nil {
			err = pprof.Lookup("allocs").WriteTo(f, 0)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			log.Warn("--memprofile", "err", err)
		}
	}, nil
}
