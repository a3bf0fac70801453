package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A secret never appears in an error or in the printed configuration,
// whether it came from the environment, a file or the file itself.
func TestSecretsNeverInErrors(t *testing.T) {
	const (
		envSecret  = "env-S3cret-value"
		fileSecret = "file-S3cret-value"
		litSecret  = "lit-S3cret-value"
	)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte(fileSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"PG_PASSWORD": envSecret,
		"ES_PASSWORD": envSecret,
		"TOKEN":       envSecret,
		"PG_DSN":      "postgres://repl:" + envSecret + "@db:port/shop",
		"ANYTHING":    envSecret, // a name that does not look secret
	}
	cases := map[string]string{
		"dsn bad port env":          edited(set(7, `      dsn: "postgres://repl:${PG_PASSWORD}@db:port/shop"`)),
		"dsn bad port file":         edited(set(7, `      dsn: "postgres://repl:${file:secret}@db:port/shop"`)),
		"dsn whole from env":        edited(set(7, `      dsn: ${PG_DSN}`)),
		"dsn bad port literal":      edited(set(7, `      dsn: "postgres://repl:`+litSecret+`@db:port/shop"`)),
		"dsn bad query literal":     edited(set(7, `      dsn: "postgres://repl@db/shop?password=`+litSecret+`&sslmode=bogus"`)),
		"dsn kv literal":            edited(set(7, `      dsn: "host=db password=`+litSecret+` sslmode=bogus"`)),
		"dsn kv literal quoted":     edited(set(7, `      dsn: "host=db password='`+litSecret+`' port=x"`)),
		"dsn kv no equals":          edited(set(7, `      dsn: "host=db password= `+litSecret+` port=x"`)),
		"dsn kv env":                edited(set(7, `      dsn: "host=db password=${PG_PASSWORD} port=x"`)),
		"es url bad port literal":   edited(set(12, `      urls: ["http://elastic:`+litSecret+`@es:port"]`)),
		"es url bad port env":       edited(set(12, `      urls: ["http://elastic:${ES_PASSWORD}@es:port"]`)),
		"es url bad scheme literal": edited(set(12, `      urls: ["ftp://elastic:`+litSecret+`@es"]`)),
		"bus url bad literal":       edited(set(1, `bus: {url: "http://`+litSecret+`@nats:4222"}`)),
		"bus url bad port literal":  edited(set(1, `bus: {url: "nats://u:`+litSecret+`@nats:port"}`)),
		"admin token in listen":     edited(set(2, `admin: {listen: "${TOKEN}"}`)),
		"secret in an int":          edited(insert(18, `    batch_max_events: ${ANYTHING}`)),
		"secret in a table":         edited(set(8, `      tables: ["${ANYTHING}."]`)),
		"secret in an index":        edited(set(13, `      index: "{${ANYTHING}}"`)),
		"secret in a level":         edited(set(3, `log: {level: "${ANYTHING}"}`)),
		"secret in a name":          edited(set(5, `  - name: "${ANYTHING}"`)),
		"secret in a source ref":    edited(set(16, `    source: "${ANYTHING}"`)),
		"file secret in a table":    edited(set(8, `      tables: ["${file:secret}."]`)),
	}
	for name, yaml := range cases {
		t.Run(name, func(t *testing.T) {
			cfg, err := Parse(filepath.Join(dir, "t.yaml"), []byte(yaml), envOf(vars))
			if err == nil {
				t.Fatalf("want an error, got a valid config:\n%s", cfg)
			}
			for _, s := range []string{envSecret, fileSecret, litSecret} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error shows a secret:\n%v", err)
				}
			}
		})
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	const secret = "S3cret-value"
	yaml := edited(
		set(1, `bus: {url: "nats://`+secret+`@n1:4222,nats://u:`+secret+`@n2:4222"}`),
		set(2, `admin: {listen: ":7070", token: `+secret+`}`),
		set(7, `      dsn: "postgres://repl:`+secret+`@db/shop?sslpassword=`+secret+`"`),
		set(12, `      urls: ["https://elastic:`+secret+`@es:9200"]`),
		insert(13, `      password: `+secret),
		insert(13, `      username: elastic`),
	)
	cfg, err := parse(t, yaml, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{cfg.String(), cfg.Redacted().String(), (*cfg).String()} {
		if strings.Contains(out, secret) {
			t.Errorf("printed configuration shows a secret:\n%s", out)
		}
	}
	if cfg.Admin.Token != secret || cfg.Sinks[0].Elasticsearch.Password != secret {
		t.Error("Redacted or String modified the configuration")
	}
}
