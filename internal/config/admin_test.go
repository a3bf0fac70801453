package config

import (
	"strings"
	"testing"
)

// The admin section is read alone: secrets of sources and sinks need not
// be set, the token is interpolated, defaults apply, errors say where.
func TestParseAdmin(t *testing.T) {
	withSecrets := edited(
		set(2, `admin: {listen: "0.0.0.0:7171", token: "${TIDEGATE_TOKEN}"}`),
		set(7, `      dsn: postgres://repl:${PG_PASSWORD}@db:5432/shop`),
	)
	a, err := ParseAdmin("t.yaml", []byte(withSecrets), envOf(map[string]string{"TIDEGATE_TOKEN": "tok"}))
	if err != nil {
		t.Fatalf("ParseAdmin with PG_PASSWORD unset: %v", err)
	}
	if a.Listen != "0.0.0.0:7171" || a.Token != "tok" {
		t.Errorf("admin = %+v", a)
	}

	a, err = ParseAdmin("t.yaml", []byte(edited(set(2, `# no admin section`))), nil)
	if err != nil || a.Listen != DefaultAdminListen || a.Token != "" {
		t.Errorf("without an admin section: %+v, %v; want the default listen address", a, err)
	}

	_, err = ParseAdmin("t.yaml", []byte(edited(set(2, `admin: {listen: x, token: "${MISSING_TOKEN}"}`))), nil)
	if err == nil || !strings.Contains(err.Error(), "t.yaml:2:") || !strings.Contains(err.Error(), "admin.token") ||
		!strings.Contains(err.Error(), "MISSING_TOKEN") {
		t.Errorf("unset token variable: %v, want a problem at t.yaml:2 naming admin.token and the variable", err)
	}
	_, err = ParseAdmin("t.yaml", []byte(edited(set(2, `admin: {lisen: x}`))), nil)
	if err == nil || !strings.Contains(err.Error(), `did you mean "listen"`) {
		t.Errorf("misspelt key: %v", err)
	}
}
