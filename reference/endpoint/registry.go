package endpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/rtcomm-harness/rtcomm-harness/reference/mqttc"
	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// AddressField chooses the DOCUMENT field that carries the address topic.
type AddressField int

const (
	// AddressTopicField sends addressTopic, as rtcomm.js does (default).
	AddressTopicField AddressField = iota
	// TopicField sends topic, as the written spec's table says.
	TopicField
	// BothFields sends both.
	BothFields
)

type registerOptions struct {
	state, alias string
	userDefines  json.RawMessage
	field        AddressField
	strict       bool
}

// RegisterOption adjusts the DOCUMENT Register publishes.
type RegisterOption func(*registerOptions)

// WithState sets state (default "available").
func WithState(s string) RegisterOption { return func(o *registerOptions) { o.state = s } }

// WithAlias sets alias (default "").
func WithAlias(a string) RegisterOption { return func(o *registerOptions) { o.alias = a } }

// WithUserDefines sets userDefines (a JSON array; default []).
func WithUserDefines(raw json.RawMessage) RegisterOption {
	return func(o *registerOptions) { o.userDefines = raw }
}

// WithAddressField chooses addressTopic (rtcomm.js), topic (written spec) or both.
func WithAddressField(f AddressField) RegisterOption { return func(o *registerOptions) { o.field = f } }

// WithStrictDocument is the written spec's DOCUMENT: topic instead of addressTopic,
// and no fromTopic (rtcomm.js sends fromTopic: null).
func WithStrictDocument() RegisterOption {
	return func(o *registerOptions) { o.field, o.strict = TopicField, true }
}

// document is the DOCUMENT as rtcomm.js writes it: spec.Message cannot express the
// explicit "fromTopic": null.
type document struct {
	Method       spec.Method     `json:"method"`
	RtcommVer    string          `json:"rtcommVer"`
	FromTopic    *string         `json:"fromTopic"`
	Type         string          `json:"type"`
	AppContext   string          `json:"appContext"`
	AddressTopic string          `json:"addressTopic,omitempty"`
	Topic        string          `json:"topic,omitempty"`
	State        string          `json:"state"`
	Alias        *string         `json:"alias"` // rtcomm.js: null unless set
	UserDefines  json.RawMessage `json:"userDefines"`
}

type strictDocument struct {
	Method      spec.Method     `json:"method"`
	RtcommVer   string          `json:"rtcommVer"`
	Type        string          `json:"type"`
	AppContext  string          `json:"appContext"`
	Topic       string          `json:"topic"`
	State       string          `json:"state"`
	Alias       string          `json:"alias"`
	UserDefines json.RawMessage `json:"userDefines"`
}

// Register publishes the endpoint's DOCUMENT, retained, on its presence topic
// (<path>sphere/<id>, or <path>sphere/<group>/<id> with Config.PresenceGroup).
func (e *Endpoint) Register(ctx context.Context, opts ...RegisterOption) error {
	o := registerOptions{state: "available", userDefines: json.RawMessage("[]")}
	for _, f := range opts {
		f(&o)
	}
	var (
		b   []byte
		err error
	)
	if o.strict {
		b, err = json.Marshal(strictDocument{Method: spec.MethodDocument, RtcommVer: spec.Version,
			Type: spec.DocEndpoint, AppContext: e.cfg.AppContext, Topic: e.addr,
			State: o.state, Alias: o.alias, UserDefines: o.userDefines})
	} else {
		d := document{Method: spec.MethodDocument, RtcommVer: spec.Version, Type: spec.DocEndpoint,
			AppContext: e.cfg.AppContext, State: o.state, Alias: &o.alias, UserDefines: o.userDefines}
		if e.cfg.Shape == ShapeRtcommJS && o.alias == "" {
			d.Alias = nil // EndpointConnection.js createPresenceDocument: the template's null
		}
		if o.field != TopicField {
			d.AddressTopic = e.addr
		}
		if o.field != AddressTopicField {
			d.Topic = e.addr
		}
		b, err = json.Marshal(d)
	}
	if err != nil {
		return fmt.Errorf("register %s: %w", e.cfg.ID, err)
	}
	if e.isClosed() {
		return fmt.Errorf("register %s: %w", e.cfg.ID, ErrClosed)
	}
	if err := e.client.Publish(ctx, e.sphere, e.cfg.QoS, true, b); err != nil {
		return fmt.Errorf("register %s: %w", e.cfg.ID, err)
	}
	e.mu.Lock()
	e.replaced = false
	e.doc = b
	e.mu.Unlock()
	return nil
}

// Unregister clears the registration: an empty retained message on the presence topic.
func (e *Endpoint) Unregister(ctx context.Context) error {
	e.mu.Lock()
	e.doc = nil
	e.mu.Unlock()
	if err := e.client.Publish(ctx, e.sphere, e.cfg.QoS, true, nil); err != nil {
		return fmt.Errorf("unregister %s: %w", e.cfg.ID, err)
	}
	return nil
}

// ServiceQuery sends SERVICE_QUERY to <path>management/<id> and waits (at most
// QueryTimeout, like rtcomm.js's 5 s transaction) for the RESPONSE with its transID. A
// successful answer's connector topic becomes the ConnectorTopic. An answer without
// RTCOMM_CONNECTOR_SERVICE returns the services with ErrNoConnectorService (rtcomm.js
// gives up). Any later answer to the same query shows up in Errors() as
// ErrMultipleConnectors and in Stats().MultipleConnectors.
func (e *Endpoint) ServiceQuery(ctx context.Context) (map[string]spec.Service, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.QueryTimeout)
	defer cancel()
	transID := uuid.NewString()
	ch := make(chan *spec.Message, 1)
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, fmt.Errorf("service query %s: %w", e.cfg.ID, ErrClosed)
	}
	if e.queries == nil {
		e.queries = make(map[string]chan *spec.Message)
	}
	e.queries[transID] = ch
	e.mu.Unlock()
	forget := func() {
		e.mu.Lock()
		delete(e.queries, transID)
		e.mu.Unlock()
	}
	q := &spec.Message{Method: spec.MethodServiceQuery, FromTopic: e.addr, TransID: transID}
	if err := e.publish(ctx, spec.Join(e.topics.Management(), e.cfg.ID), q); err != nil {
		forget()
		return nil, fmt.Errorf("service query %s: %w", e.cfg.ID, err)
	}
	var r *spec.Message
	select {
	case r = <-ch:
		if r == nil {
			err := e.Err()
			if err == nil { // Config.Reconnect: the connection was lost, the endpoint lives on
				err = ErrConnectionLost
			}
			return nil, fmt.Errorf("service query %s: %w", e.cfg.ID, err)
		}
	case <-ctx.Done():
		forget()
		err := ctx.Err()
		if errors.Is(err, context.DeadlineExceeded) {
			err = ErrTimeout
		}
		return nil, fmt.Errorf("service query %s: no answer: %w", e.cfg.ID, err)
	}
	if r.Result != spec.ResultSuccess {
		return r.Services, fmt.Errorf("service query %s: %w", e.cfg.ID, &Rejected{Reason: r.Reason})
	}
	cs, ok := r.Services[spec.ServiceConnector]
	if !ok {
		return r.Services, fmt.Errorf("service query %s: %w", e.cfg.ID, ErrNoConnectorService)
	}
	if cs.Topic != "" {
		e.mu.Lock()
		e.connector = e.topics.Resolve(cs.Topic)
		e.mu.Unlock()
	}
	return r.Services, nil
}

// Lookup reads an endpoint's retained DOCUMENT from presence (what Direct calls use).
// It waits up to LookupTimeout for the retained message; ErrNotRegistered if none came.
func (e *Endpoint) Lookup(ctx context.Context, id string) (*spec.Message, error) {
	if err := spec.ValidateEndpointID(id); err != nil {
		return nil, fmt.Errorf("lookup: %w", err)
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, e.cfg.LookupTimeout)
	defer cancel()
	e.lookupMu.Lock()
	defer e.lookupMu.Unlock()
	topic := e.topics.Sphere(id)
	got := make(chan *spec.Message, 1)
	err := e.client.Subscribe(ctx, topic, e.cfg.QoS, func(m mqttc.Message) {
		if len(m.Payload) == 0 {
			return
		}
		d, _ := spec.Decode(m.Payload)
		if d == nil || d.Method != spec.MethodDocument || d.Address() == "" {
			return
		}
		select {
		case got <- d:
		default:
		}
	})
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", id, err)
	}
	defer func() {
		uctx, ucancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ucancel()
		_ = e.client.Unsubscribe(uctx, topic)
	}()
	select {
	case d := <-got:
		return d, nil
	case <-ctx.Done():
		if err := parent.Err(); err != nil {
			return nil, fmt.Errorf("lookup %s: %w", id, err)
		}
		return nil, fmt.Errorf("lookup %s: no DOCUMENT within %s: %w", id, e.cfg.LookupTimeout, ErrNotRegistered)
	}
}
