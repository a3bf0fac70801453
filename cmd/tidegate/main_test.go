package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func execute(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := rootCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestHelpGuidesANewUser(t *testing.T) {
	out, err := execute(t, "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tidegate validate -c", "tidegate run -c", "/metrics", "Available Commands"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help does not mention %q:\n%s", want, out)
		}
	}
}

func TestValidateOfflineExamples(t *testing.T) {
	t.Setenv("PG_PASSWORD", "x")
	t.Setenv("ES_PASSWORD", "x")
	t.Setenv("OS_PASSWORD", "x")
	files, _ := filepath.Glob("../../examples/*.yaml")
	if len(files) == 0 {
		t.Fatal("no examples")
	}
	for _, f := range files {
		if out, err := execute(t, "validate", "--offline", "-c", f); err != nil {
			t.Errorf("%s: %v\n%s", f, err, out)
		}
	}
}

func TestValidateReportsFileAndLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	bad := "sources:\n  - name: shop\n    postgres:\n      dsn: postgres://u:secretpw@h/db\n      tabels: [public.orders]\n"
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := execute(t, "validate", "-c", path)
	if err == nil {
		t.Fatal("validate accepted a broken file")
	}
	msg := err.Error()
	if !strings.Contains(msg, "bad.yaml:5:7") || !strings.Contains(msg, `did you mean "tables"`) {
		t.Fatalf("error does not name file:line and the fix: %s", msg)
	}
	if strings.Contains(msg, "secretpw") {
		t.Fatalf("error leaks the password: %s", msg)
	}
}
