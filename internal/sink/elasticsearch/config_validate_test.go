package elasticsearch

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	valid := func() Config { return Config{URLs: []string{"http://127.0.0.1:9200"}} }
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error; "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no urls", func(c *Config) { c.URLs = nil }, "urls: at least one URL"},
		{"bad scheme", func(c *Config) { c.URLs = []string{"127.0.0.1:9200"} }, "urls[0]"},
		{"password not shown", func(c *Config) { c.URLs = []string{"ftp://u:s3cret@h"} }, "urls[0]"},
		{"api key and password", func(c *Config) { c.APIKey, c.Username, c.Password = "k", "u", "p" }, "api_key"},
		{"unknown placeholder", func(c *Config) { c.Index = "{source}-{tabel}" }, "{tabel}"},
		{"unclosed placeholder", func(c *Config) { c.Index = "{table" }, "unclosed"},
		{"bytes too small", func(c *Config) { c.BulkMaxBytes = 10 }, "bulk_max_bytes"},
		{"negative actions", func(c *Config) { c.BulkMaxActions = -1 }, "bulk_max_actions"},
		{"concurrency", func(c *Config) { c.Concurrency = 1000 }, "concurrency"},
		{"retry bounds", func(c *Config) { c.RetryInitial, c.RetryMax = time.Minute, time.Second }, "retry_max"},
		{"truncate", func(c *Config) { c.Truncate = "drop" }, "truncate"},
		{"mappings not JSON", func(c *Config) { c.Mappings = map[string]any{"x": func() {}} }, "mappings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				c.SetDefaults()
				if err := c.Validate(); err != nil {
					t.Fatalf("defaults are invalid: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

func TestSetDefaults(t *testing.T) {
	var c Config
	c.SetDefaults()
	if c.Index != DefaultIndex || c.BulkMaxBytes != DefaultBulkMaxBytes || c.BulkMaxActions != DefaultBulkMaxActions ||
		c.Concurrency != DefaultConcurrency || c.RequestTimeout != DefaultRequestTimeout ||
		c.RetryInitial != DefaultRetryInitial || c.RetryMax != DefaultRetryMax || c.Truncate != TruncateDelete {
		t.Errorf("defaults not applied: %+v", c)
	}
}

func FuzzValidateIndexTemplate(f *testing.F) {
	for _, s := range []string{DefaultIndex, "{table", "x}", "{a}{b}", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tmpl string) {
		if validateIndexTemplate(tmpl) != nil {
			return
		}
		// A valid template renders without braces.
		got := renderIndexTemplate(tmpl, originKey{"s", "d", "sc", "t"})
		if strings.ContainsAny(got, "{}") {
			t.Fatalf("valid template %q renders %q", tmpl, got)
		}
	})
}
