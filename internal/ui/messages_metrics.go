package ui

// TypeMetrics is the message type of MetricsMessage.
const TypeMetrics = "metrics"

// MetricsMessage reports one destination of the Prometheus metrics of a
// backup or audit run: the file written for node_exporter's textfile
// collector (--metrics-file), or the push to a Pushgateway
// (--metrics-push). A failed push, and any failed delivery of a backup's
// metrics, is a warning that does not change the exit status; audit fails
// when its --metrics-file cannot be written.
type MetricsMessage struct {
	// Command is "backup" or "audit".
	Command string `json:"command"`
	// Target is "file" or "pushgateway".
	Target string `json:"target"`
	// File is the metrics file (target file).
	File string `json:"file,omitempty"`
	// URL is the Pushgateway's URL (target pushgateway).
	URL string `json:"url,omitempty"`
	// Job and Instance are the grouping labels of the push: the push
	// replaced every metric of that group.
	Job      string `json:"job,omitempty"`
	Instance string `json:"instance,omitempty"`
	// OK is true when the metrics were written or pushed.
	OK bool `json:"ok"`
	// Warning says why they were not.
	Warning string `json:"warning,omitempty"`
}

// MessageType implements Message.
func (MetricsMessage) MessageType() string { return TypeMetrics }
