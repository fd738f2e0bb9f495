#!/usr/bin/env bash
# rtcomm identity rules for RabbitMQ 3.10 (MQTT plugin) as topic permissions, for the
# topic path /rtcomm/ and the connector user "connector". See docs/SECURITY.md.
# Run by hand against RabbitMQ 3.10.8 on 2026-12-02 (results in docs/SECURITY.md);
# not run in CI. Usage: NODE=rabbit@host ./setup.sh (passwords below are TEST values).
# rabbitmq.conf needs: mqtt.allow_anonymous = false, web_mqtt.ws_path = /mqtt
set -euo pipefail
R="rabbitmqctl -q ${NODE:+-n $NODE}"

# The default guest user can log in with a known password: remove it.
$R delete_user guest || true

# The connector: everything under the path.
$R add_user connector test-connector-secret
$R set_permissions -p / connector '.*' '.*' '.*'
$R set_topic_permissions -p / connector amq.topic '^\.rtcomm\..*' '^\.rtcomm\..*'

# Endpoints. The MQTT plugin turns / into . in routing keys: /rtcomm/alice/bob is
# .rtcomm.alice.bob. WRITE: two levels ending in the user's ID, except under event
# (ID-005, ID-009), and replies to a connector's session topic. READ: own inbox,
# presence, events.
for u in alice bob mallory operator; do
  $R add_user "$u" "test-$u-secret"
  $R set_permissions -p / "$u" '^mqtt-subscription-.*' '^(amq\.topic|mqtt-subscription-.*)$' '^(amq\.topic|mqtt-subscription-.*)$'
  $R set_topic_permissions -p / "$u" amq.topic \
    '^\.rtcomm\.(?!event\.)[^.]+\.{username}$|^\.rtcomm\.connector\.[^.]+\.{username}$' \
    '^\.rtcomm\.{username}(\..*)?$|^\.rtcomm\.(sphere|event)\..*$'
done
