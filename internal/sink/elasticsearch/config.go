package elasticsearch

import "time"

// Config configures an Elasticsearch or OpenSearch sink.
type Config struct {
	// URLs of the cluster nodes, e.g. [http://127.0.0.1:9200]. Required.
	URLs []string `yaml:"urls" json:"urls"`
	// Username and Password for basic authentication (optional).
	Username string `yaml:"username" json:"username,omitempty"`
	Password string `yaml:"password" json:"password,omitempty"`
	// APIKey for Elasticsearch API-key authentication (optional; base64 "id:key").
	APIKey string `yaml:"api_key" json:"api_key,omitempty"`
	// CACertFile is a PEM file of CA certificates to trust (optional).
	CACertFile string `yaml:"ca_cert_file" json:"ca_cert_file,omitempty"`
	// InsecureSkipVerify disables TLS certificate verification. Default false.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify" json:"insecure_skip_verify,omitempty"`

	// Index is the index name template. Placeholders: {source}, {database},
	// {schema}, {table}. The result is lowercased and characters Elasticsearch
	// forbids are replaced by '_'. Default "{source}.{schema}.{table}".
	Index string `yaml:"index" json:"index,omitempty"`
	// IndexSettings are applied when tidegate creates an index, e.g.
	// {number_of_shards: 1, refresh_interval: 1s}. Default: cluster defaults.
	IndexSettings map[string]any `yaml:"index_settings" json:"index_settings,omitempty"`
	// Mappings are applied when tidegate creates an index (the "mappings"
	// object of the create-index API). Default: dynamic mapping.
	Mappings map[string]any `yaml:"mappings" json:"mappings,omitempty"`

	// BulkMaxBytes caps the body of one bulk request. Default 5 MiB.
	BulkMaxBytes int `yaml:"bulk_max_bytes" json:"bulk_max_bytes,omitempty"`
	// BulkMaxActions caps the operations in one bulk request. Default 5000.
	BulkMaxActions int `yaml:"bulk_max_actions" json:"bulk_max_actions,omitempty"`
	// Concurrency is the number of bulk requests in flight. Operations on one
	// document always go to the same request, so order per document holds.
	// Default 2.
	Concurrency int `yaml:"concurrency" json:"concurrency,omitempty"`
	// RequestTimeout bounds one HTTP request. Default 60s.
	RequestTimeout time.Duration `yaml:"request_timeout" json:"request_timeout,omitempty"`
	// RetryInitial and RetryMax bound the exponential backoff between retries
	// of retryable failures (429, 5xx, timeouts, connection errors). Retries
	// go on until they succeed or tidegate stops. Defaults 200ms and 30s.
	RetryInitial time.Duration `yaml:"retry_initial" json:"retry_initial,omitempty"`
	RetryMax     time.Duration `yaml:"retry_max" json:"retry_max,omitempty"`
	// Truncate says what a source TRUNCATE does: "delete" removes every
	// document of the table's index that is not newer than the truncate
	// (version-guarded bulk deletes of what a scroll finds), "ignore" counts
	// and skips it. Default "delete".
	Truncate string `yaml:"truncate" json:"truncate,omitempty"`
}
