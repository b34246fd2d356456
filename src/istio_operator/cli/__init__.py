"""The istio-operator command."""
