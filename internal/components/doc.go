// Package components turns a loaded config.hcl into what each component
// takes: the VIP list (address, service port, interface), the dataplane's
// desired state and the cluster's config. It is the one place that reads
// the config on their behalf: cluster and dataplane do not import the
// config package.
package components
