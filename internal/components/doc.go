// Package components turns a loaded config.hcl into what each component
// takes: the VIP list (address, service port, interface), the dataplane's
// desired state. It is the one place that reads
// the config on their behalf; the components themselves do not import the
// config package.
package components
