// Package monitoring is the monitoring that ships with epconsole: the
// Prometheus alert rules (epconsole-alerts.yml), their promtool unit tests
// (epconsole-alerts_test.yml) and the Grafana dashboard
// (epconsole-dashboard.json) in this directory. It holds no code; its
// tests keep the files in step with the metrics the daemon exports
// (status.MetricNames) and with docs/metrics.md, and run
// `promtool check rules` and `promtool test rules` on them.
package monitoring
