// Package broker is the embedded MQTT broker of the reference target: mochi-mqtt v2
// with the listeners, limits and access rules rtcomm needs.
//
// It serves MQTT 3.1 (MQIsdp, level 3), 3.1.1 and 5 over TCP (optionally TLS) and over
// WebSocket at ws://host:port/mqtt (optionally wss), with retained messages, last wills,
// wildcards, shared subscriptions ($share/<group>/<filter>) and, in secure mode,
// authentication plus per-client ACLs that enforce rtcomm's identity rule.
//
// Interop workarounds (each is a real finding; see NOTES.md beside this file):
//
//   - WebSocket subprotocol. rtcomm.js (Paho JS 1.0.x) asks for the subprotocol
//     "mqttv3.1" and browsers abort the connection unless the server echoes it. mochi's
//     own WebSocket listener offers only "mqtt", so this package has its own listener
//     (gorilla/websocket) at path /mqtt offering both "mqtt" and "mqttv3.1".
//
//   - Empty will payloads. rtcomm's unregister model is a Last Will with an empty,
//     retained payload on the endpoint's sphere topic. mochi v2.7.9's
//     packets.ConnectValidate refuses a CONNECT whose will flag is set and whose will
//     message is zero bytes long (ErrProtocolViolationWillFlagNoPayload), reading
//     MQTT-3.1.2-9 as "non-empty" where it only says "present". A hook's OnPacketRead,
//     which mochi runs on the decoded CONNECT before validating it, swaps the empty will
//     payload for a private per-broker sentinel; OnWill swaps it back when the will
//     fires, so the retained registration is cleared and subscribers get an empty
//     PUBLISH. No CONNECT bytes are rewritten, so the MQTT 3.1, 3.1.1 and 5 layouts
//     (v5 will properties included) are all handled by mochi's own decoder.
//
//   - Empty passwords. For the same reason mochi refuses a password flag with a
//     zero-length password (legal in MQTT 3.1.1); the same hook clears the flag.
//
//   - Retained expiry. mochi's default MaximumMessageExpiryInterval (24 h) silently
//     deletes every retained message after a day, which would drop long-lived presence
//     DOCUMENTs; this broker sets it to about 68 years.
//
//   - Clean shutdown. mochi waits in Close for every accepted connection, including ones
//     that never send CONNECT, and has no CONNECT timeout; its per-listener client
//     shutdown (Clients.GetByListener) takes a read lock recursively and can deadlock
//     against a client disconnecting at the same moment. Our listeners track their
//     connections, give each 10 s to send CONNECT, end their clients' sessions
//     themselves, and close leftovers on Close.
//
// Against authenticated attackers (docs/SECURITY.md): in secure mode client IDs are bound to
// users (clientid.go, hooks.go); in both modes topic length, levels and subscriptions per
// client are limited before any topic-tree work, and retained messages are kept within
// quotas, in secure mode only on presence topics (limits.go).
//
// Known limitation: a retained message published at the moment a matching
// subscription is made can reach that subscriber twice (live, and from the retained
// store with the retain flag set). See NOTES.md.
package broker
