package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"

	"gopkg.in/yaml.v3"
)

// LoadAdmin reads only the admin section of the configuration file at path
// (${...} interpolation applies to that section only). Clients of a
// running tidegate, such as `tidegate dlq`, need its address and token,
// not the credentials of every source and sink.
func LoadAdmin(path string) (Admin, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Admin{}, fmt.Errorf("reading the configuration file: %w", err)
	}
	return ParseAdmin(path, data, os.LookupEnv)
}

// ParseAdmin is LoadAdmin on data (see Parse for path and env). The
// default listen address applies; the rest of the file is checked for
// syntax only.
func ParseAdmin(path string, data []byte, env func(string) (string, bool)) (Admin, error) {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	root, probs := parseYAML(path, data)
	if len(probs) > 0 {
		return Admin{}, probs.err()
	}
	d := newDecoder(path, &interpolator{env: env, dir: filepath.Dir(path)})
	var a Admin
	if root != nil && root.Kind == yaml.MappingNode {
		for _, e := range d.entries(root, "", 0) {
			if e.key.Value == "admin" {
				d.recordPos("admin", e.key, e.value)
				d.decode(e.value, reflect.ValueOf(&a).Elem(), "admin", "admin", 1)
			}
		}
	}
	if err := d.probs.err(); err != nil {
		return Admin{}, err
	}
	if a.Listen == "" {
		a.Listen = DefaultAdminListen
	}
	return a, nil
}
