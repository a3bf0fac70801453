// Package config loads, validates and documents the tidegate configuration
// file.
//
// Load (or Parse) reads one YAML or JSON file: it expands ${NAME},
// ${NAME:-default} and ${file:/path} in values, decodes it strictly (an
// unknown key is an error that lists the valid keys), applies SetDefaults and
// runs Validate. Every problem comes back at once as Problems, each with
// file:line:column, the field path and how to fix it, and never a secret.
//
// The JSON Schema (JSONSchema, docs/config.schema.json) and the key reference
// of docs/configuration.md are generated from the structs and their doc
// comments; TestSchemaUpToDate fails when they are stale.
//
// Sources and sinks validate their own settings (their Validate methods return
// *field.Error values); this package adds the positions and the checks that
// span several parts of the file (names, references, one pipeline per source).
package config

//go:generate go test -run TestSchemaUpToDate -update .
