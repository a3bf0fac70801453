package config

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestSchemaUpToDate checks that the files generated from the Go structs
// are current; -update rewrites them.
func TestSchemaUpToDate(t *testing.T) {
	docs := parseDocs(t)
	doc := func(k string) string { return docs[k] }

	t.Run("descriptions", func(t *testing.T) {
		want, err := docsGoSource(docs)
		if err != nil {
			t.Fatal(err)
		}
		checkGenerated(t, docsGenFile, want)
	})
	t.Run("schema", func(t *testing.T) {
		want, err := jsonSchema(doc)
		if err != nil {
			t.Fatal(err)
		}
		checkGenerated(t, schemaFile, want)
	})
	t.Run("reference", func(t *testing.T) {
		cur, err := os.ReadFile(referenceFile)
		if err != nil {
			t.Fatal(err)
		}
		before, rest, ok1 := strings.Cut(string(cur), refBegin)
		_, after, ok2 := strings.Cut(rest, refEnd)
		if !ok1 || !ok2 {
			t.Fatalf("%s lacks the markers %q and %q", referenceFile, refBegin, refEnd)
		}
		want := before + refBegin + "\n\n" + referenceMarkdown(docs) + refEnd + after
		checkGenerated(t, referenceFile, []byte(want))
	})
}

func checkGenerated(t *testing.T, path string, want []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date; run: go test ./internal/config -run TestSchemaUpToDate -update", path)
	}
}

// The compiled-in descriptions match the comments (run after -update).
func TestJSONSchemaUsesCompiledDocs(t *testing.T) {
	got, err := JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(got, &v); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	if v["$schema"] == nil || v["properties"] == nil {
		t.Fatalf("schema lacks $schema or properties")
	}
	docs := parseDocs(t)
	want, err := jsonSchema(func(k string) string { return docs[k] })
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("JSONSchema differs from the schema built from the comments; run the -update command of TestSchemaUpToDate")
	}
}

// JSON property names and YAML keys must agree: the schema describes the
// YAML file with the json tags.
func TestJSONAndYAMLNamesAgree(t *testing.T) {
	for _, typ := range structTypes() {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			j, _ := jsonName(f)
			y, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if j != y && !(j == "" && y == "-") {
				t.Errorf("%s.%s: json name %q differs from yaml key %q", typeKey(typ), f.Name, j, y)
			}
		}
	}
}

func TestFieldRulesNameFields(t *testing.T) {
	known := map[string]bool{}
	for _, typ := range structTypes() {
		for i := range typ.NumField() {
			known[typeKey(typ)+"."+typ.Field(i).Name] = true
		}
	}
	for k := range fieldRules() {
		if !known[k] {
			t.Errorf("fieldRules has %q, which is not a configuration field", k)
		}
	}
}

func TestDefaultValues(t *testing.T) {
	d := defaultValues()
	for key, want := range map[string]any{
		"config.Config.DataDir":               "./data",
		"config.Bus.MaxBytes":                 "1GiB",
		"config.Bus.DuplicateWindow":          "1m",
		"elasticsearch.Config.BulkMaxBytes":   "5MiB",
		"elasticsearch.Config.RequestTimeout": "1m",
		"postgres.Config.HeartbeatInterval":   "30s",
		"config.Pipeline.BatchMaxEvents":      5000,
	} {
		if !reflect.DeepEqual(d[key], want) {
			t.Errorf("default of %s = %#v, want %#v", key, d[key], want)
		}
	}
	if _, ok := d["postgres.Config.Slot"]; ok {
		t.Error("the slot default depends on the pipeline and must not be listed")
	}
}
