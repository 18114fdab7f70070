"""The private 3-node NATS cluster of the tests: the product's launcher (control/natscluster.py), used by the
`nats_cluster` fixture in tests/conftest.py. See that module for how to use it."""

from control.natscluster import MISSING, NATS_SERVER, NatsCluster, NatsNode, mqtt_probe  # noqa: F401
