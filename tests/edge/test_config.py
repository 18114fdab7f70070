"""edge.toml: typed defaults, errors naming key, value and allowed values, secrets never shown."""

import pytest

from edge.config import load, parse_config
from edge.errors import ConfigError


def write(tmp_path, text):
    p = tmp_path / "edge.toml"
    p.write_text(text)
    return p


def test_defaults_and_a_minimal_file(tmp_path):
    cfg = load(write(tmp_path, 'site = "mine-a"\n[[boards]]\nport = "/dev/ttyACM0"\n'))
    assert cfg.site == "mine-a" and cfg.boards[0].baudrate == 115200
    assert cfg.mqtt.topic_prefix == "firedamp" and cfg.mqtt.discovery_prefix == "homeassistant"
    assert cfg.history.raw_days == 7 and cfg.history.minute_days >= 90
    assert str(cfg.outbox_path).endswith("outbox.sqlite")


@pytest.mark.parametrize("text, words", [
    ("[mqtt]\nport = 70000\n", ["[mqtt] port", "70000", "1..65535"]),
    ("[mqtt]\nport = \"1883\"\n", ["[mqtt] port", "'1883'", "an integer"]),
    ("log_level = \"loud\"\n", ["log_level", "'loud'", "'debug', 'info', 'warning', 'error'"]),
    ("[mqtt]\nhots = \"x\"\n", ["unknown key [mqtt] hots", "host, port"]),
    ("site = \"a/b\"\n", ["site", "'a/b'", "A-Z a-z 0-9 _ -"]),
    ("[history]\nminute_days = 30\n", ["[history] minute_days", "30", "90..36500"]),
    ("[[boards]]\nbaudrate = 9600\n", ["[boards[0]] port is required"]),
    ("[mqtt]\ntls_required = true\n", ["tls_required", "refusing"]),
    ("[mqtt]\ntls = true\nca_file = \"/nonexistent/ca.crt\"\n", ["ca_file", "no such file"]),
    ("[model\n", ["not valid TOML"]),
    ("[mqtt]\nhost = \"\"\n", ["[mqtt] host = ''", "host name or IP address"]),
    ("[mqtt]\nservers = [\"a:1883\"]\nhost = \"b\"\n", ["[mqtt] give servers, or host and port, not both"]),
    ("[mqtt]\nservers = [\"a:1883\"]\nport = 1884\n", ["[mqtt] give servers, or host and port, not both"]),
    ("[mqtt]\nservers = [\"a:1883\", \"b\"]\n", ["[mqtt] servers[1] = 'b'", '"host:port"']),
    ("[mqtt]\nservers = [\"a:99999\"]\n", ["[mqtt] servers[0] = 'a:99999'", '"host:port"']),
    ("[mqtt]\nservers = [\"a:1883\", \"a:1883\"]\n", ["servers lists a broker twice"]),
    ("[mqtt]\nservers = []\n", ["[mqtt] servers = [] names no broker"]),
    ("[mqtt]\nservers = \"a:1883\"\n", ["[mqtt] servers must be a list, not 'a:1883'", "a list of strings"]),
    ("[mqtt]\nservers = [\"a:1883\", 5]\n", ["[mqtt] servers[1] = 5", "a string in quotes"]),
    ("boards = \"/dev/ttyACM0\"\n", ["boards must be a list of [[boards]] tables"]),
])
def test_errors_name_the_key_the_value_and_what_is_allowed(tmp_path, text, words):
    with pytest.raises(ConfigError) as exc:
        load(write(tmp_path, text))
    for w in words:
        assert w in str(exc.value), (w, str(exc.value))


def test_describe_masks_the_password_and_error_messages_never_show_it():
    cfg = parse_config({"mqtt": {"username": "edge", "password": "s3cret-pw"}})
    lines = "\n".join(cfg.describe())
    assert "mqtt.password = ***" in lines and "s3cret-pw" not in lines
    with pytest.raises(ConfigError) as exc:
        parse_config({"mqtt": {"password": 12345678}})
    assert "12345678" not in str(exc.value)


def test_password_file_is_read_when_needed(tmp_path):
    (tmp_path / "pw").write_text("from-file\n")
    cfg = parse_config({"mqtt": {"username": "u", "password_file": str(tmp_path / "pw")}})
    assert cfg.mqtt_password() == "from-file"
    assert "from-file" not in "\n".join(cfg.describe())


def test_the_shipped_example_config_is_valid(tmp_path):
    from pathlib import Path

    example = (Path(__file__).parents[2] / "deploy" / "edge.toml").read_text()
    (tmp_path / "ca.crt").write_text("x")
    assert '"/etc/firedamp/ca.crt"' in example
    cfg = load(write(tmp_path, example.replace('"/etc/firedamp/ca.crt"', f'"{tmp_path / "ca.crt"}"')))
    assert cfg.boards and cfg.mqtt.tls and cfg.mqtt.tls_required and cfg.mqtt.password_file


def test_several_brokers_are_tried_in_the_order_given_and_host_port_still_work(tmp_path):
    cfg = load(write(tmp_path, '[mqtt]\nservers = ["127.0.0.1:1883", "broker-2.mine:8883", "[fd00::5]:1884"]\n'))
    assert cfg.mqtt.brokers == [("127.0.0.1", 1883), ("broker-2.mine", 8883), ("fd00::5", 1884)]
    assert "mqtt.servers = ['127.0.0.1:1883', 'broker-2.mine:8883', '[fd00::5]:1884']" in cfg.describe()
    assert load(write(tmp_path, '[mqtt]\nhost = "10.0.0.5"\nport = 1884\n')).mqtt.brokers == [("10.0.0.5", 1884)]
    assert load(write(tmp_path, "")).mqtt.brokers == [("localhost", 1883)]
