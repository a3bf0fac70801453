package elasticsearch

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Defaults applied by SetDefaults (and stated on the Config fields).
const (
	DefaultIndex          = "{source}.{schema}.{table}"
	DefaultBulkMaxBytes   = 5 << 20
	DefaultBulkMaxActions = 5000
	DefaultConcurrency    = 2
	DefaultRequestTimeout = 60 * time.Second
	DefaultRetryInitial   = 200 * time.Millisecond
	DefaultRetryMax       = 30 * time.Second
	DefaultTruncate       = TruncateDelete
)

// Values of Config.Truncate.
const (
	TruncateDelete = "delete"
	TruncateIgnore = "ignore"
)

// Upper bounds that catch unit mistakes (bytes given in KiB, a concurrency
// meant for another system) rather than limits of Elasticsearch itself.
const (
	maxBulkMaxBytes = 1 << 30
	maxConcurrency  = 256
)

// SetDefaults fills every zero field with its default.
func (c *Config) SetDefaults() {
	if c.Index == "" {
		c.Index = DefaultIndex
	}
	if c.BulkMaxBytes == 0 {
		c.BulkMaxBytes = DefaultBulkMaxBytes
	}
	if c.BulkMaxActions == 0 {
		c.BulkMaxActions = DefaultBulkMaxActions
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.RetryInitial == 0 {
		c.RetryInitial = DefaultRetryInitial
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.Truncate == "" {
		c.Truncate = DefaultTruncate
	}
}

// Validate reports every invalid field, each with what is wrong and how to
// fix it. Zero values are valid: they mean "use the default".
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}

	if len(c.URLs) == 0 {
		bad("urls", "at least one URL is required, e.g. [http://127.0.0.1:9200]")
	}
	for i, raw := range c.URLs {
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // url.Error repeats the raw URL, password included
			}
			bad(fmt.Sprintf("urls[%d]", i), "cannot parse %q: %v", redactURL(raw), err)
		case u.Scheme != "http" && u.Scheme != "https":
			bad(fmt.Sprintf("urls[%d]", i), "%q must start with http:// or https://", redactURL(raw))
		case u.Host == "":
			bad(fmt.Sprintf("urls[%d]", i), "%q has no host; write it as http://host:9200", redactURL(raw))
		}
	}
	if c.APIKey != "" && (c.Username != "" || c.Password != "") {
		bad("api_key", "set either api_key or username/password, not both")
	}
	if c.Password != "" && c.Username == "" {
		bad("username", "password is set but username is empty")
	}
	if err := validateIndexTemplate(c.Index); err != nil {
		bad("index", "%v", err)
	}
	if _, err := json.Marshal(c.IndexSettings); err != nil {
		bad("index_settings", "cannot be rendered as JSON: %v", err)
	}
	if _, err := json.Marshal(c.Mappings); err != nil {
		bad("mappings", "cannot be rendered as JSON: %v", err)
	}
	if c.BulkMaxBytes < 0 || c.BulkMaxBytes > maxBulkMaxBytes {
		bad("bulk_max_bytes", "%d is out of range: use 1 KiB..1 GiB, below the cluster's http.max_content_length (default 100mb); 0 means %d", c.BulkMaxBytes, DefaultBulkMaxBytes)
	} else if c.BulkMaxBytes > 0 && c.BulkMaxBytes < 1024 {
		bad("bulk_max_bytes", "%d is too small (it is in bytes): use at least 1024", c.BulkMaxBytes)
	}
	if c.BulkMaxActions < 0 {
		bad("bulk_max_actions", "%d must be positive (0 means %d)", c.BulkMaxActions, DefaultBulkMaxActions)
	}
	if c.Concurrency < 0 || c.Concurrency > maxConcurrency {
		bad("concurrency", "%d is out of range: use 1..%d (0 means %d)", c.Concurrency, maxConcurrency, DefaultConcurrency)
	}
	if c.RequestTimeout < 0 {
		bad("request_timeout", "%s must be positive, e.g. 60s", c.RequestTimeout)
	}
	if c.RetryInitial < 0 {
		bad("retry_initial", "%s must be positive, e.g. 200ms", c.RetryInitial)
	}
	if c.RetryMax < 0 {
		bad("retry_max", "%s must be positive, e.g. 30s", c.RetryMax)
	}
	initial, maxDelay := c.RetryInitial, c.RetryMax
	if initial == 0 {
		initial = DefaultRetryInitial
	}
	if maxDelay == 0 {
		maxDelay = DefaultRetryMax
	}
	if initial > 0 && maxDelay > 0 && maxDelay < initial {
		bad("retry_max", "%s is below retry_initial %s: raise retry_max or lower retry_initial", maxDelay, initial)
	}
	switch c.Truncate {
	case "", TruncateDelete, TruncateIgnore:
	default:
		bad("truncate", "%q is not supported: use %q or %q", c.Truncate, TruncateDelete, TruncateIgnore)
	}
	return errors.Join(errs...)
}

// validateIndexTemplate checks that every {placeholder} is known.
func validateIndexTemplate(tmpl string) error {
	rest := tmpl
	for {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			if strings.IndexByte(rest, '}') >= 0 {
				return fmt.Errorf("%q has a '}' without '{'", tmpl)
			}
			return nil
		}
		if strings.IndexByte(rest[:open], '}') >= 0 {
			return fmt.Errorf("%q has a '}' without '{'", tmpl)
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return fmt.Errorf("%q has an unclosed '{'", tmpl)
		}
		name := rest[open+1 : open+end]
		switch name {
		case "source", "database", "schema", "table":
		default:
			return fmt.Errorf("%q uses unknown placeholder {%s}: use {source}, {database}, {schema} or {table}", tmpl, name)
		}
		rest = rest[open+end+1:]
	}
}

// redactURL hides the password of a URL with credentials.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if i := strings.LastIndexByte(raw, '@'); i >= 0 {
			return "<redacted>@" + raw[i+1:]
		}
		return raw
	}
	return u.Redacted()
}
