"""What the commands do to a running mesh, beside the operator's reconcile.

`inventory` (what `istio-operator status` shows), `dataplane` (`dataplane-upgrade`),
`access` (`remote-access`) and `rbac`, the permissions the operator needs, derived from
what the renderer produces, what the reconcile owns and what these commands read and
write. They use `reconcile`, `render` and `kube`; the cli calls them; the controller
never does (the operator itself neither restarts workloads nor grants access).
"""
