"""istio-operator: installs, configures and upgrades Istio control planes across clusters."""

__version__ = "0.1.0"
