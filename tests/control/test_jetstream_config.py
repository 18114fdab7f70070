"""control.toml [source] kind = "jetstream": its keys are checked and pick the JetStream source."""

import pytest

from control.config import parse_config
from control.source import JetStreamSource, MqttSource, open_source
from edge.errors import ConfigError


def test_jetstream_keys_pick_the_jetstream_source():
    cfg = parse_config({"source": {"kind": "jetstream", "servers": ["nats://10.0.0.1:4222", "tls://10.0.0.2:4222"],
                                   "stream": "mine-a", "durable": "cr-mine-a", "ack_wait_s": 5}})
    assert (cfg.source.stream, cfg.source.durable, cfg.source.ack_wait_s) == ("mine-a", "cr-mine-a", 5.0)
    assert isinstance(open_source(cfg), JetStreamSource)
    assert isinstance(open_source(parse_config({})), MqttSource)  # the one-machine default is unchanged


@pytest.mark.parametrize("source, says", [
    ({"kind": "jetstream"}, "[source] servers = [] is not allowed"),
    ({"kind": "jetstream", "servers": ["10.0.0.1:4222"]}, "[source] servers = ['10.0.0.1:4222'] is not allowed"),
    ({"kind": "jetstream", "servers": "nats://a:4222"}, "[source] servers must be a list"),
    ({"kind": "jetstream", "servers": ["nats://a:4222"], "stream": "a.b"}, "[source] stream = 'a.b' is not allowed"),
    ({"kind": "jetstream", "servers": ["nats://a:4222"], "ack_wait_s": 0}, "[source] ack_wait_s = 0 is not allowed"),
    ({"kind": "kafka"}, "[source] kind = 'kafka' is not allowed; allowed: 'mqtt', 'jetstream'"),
])
def test_bad_jetstream_settings_name_the_key(source, says):
    with pytest.raises(ConfigError) as exc:
        parse_config({"source": source})
    assert says in str(exc.value)
