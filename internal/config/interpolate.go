package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// maxSecretFileBytes bounds what ${file:...} reads.
const maxSecretFileBytes = 1 << 20

// interpolator expands ${NAME}, ${NAME:-default}, ${file:/path} and the $${
// escape in scalar values.
type interpolator struct {
	env func(string) (string, bool)
	dir string // directory of the configuration file: base of relative ${file:...} paths
}

// substitution is one ${...} expression and what it expanded to.
type substitution struct {
	expr   string // "${PG_PASSWORD}"
	value  string
	secret bool // from a file or a variable whose name looks like a secret
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// secretNameParts mark variables whose values are scrubbed from every error
// message, not only from those about the field they were used in.
var secretNameParts = []string{"PASS", "SECRET", "TOKEN", "KEY", "CRED", "AUTH", "PWD"}

// expand returns s with every expression replaced. changed reports whether s
// held an expression or an escape (so the original text differs from the
// value). Error messages name the variable or the path, never a value.
func (in *interpolator) expand(s string) (out string, subs []substitution, changed bool, err error) {
	if !strings.Contains(s, "${") {
		return s, nil, false, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		if i > 0 && s[i-1] == '$' { // $${ is a literal ${
			b.WriteString(s[:i-1] + "${")
			s = s[i+2:]
			changed = true
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", nil, false, errors.New("unterminated ${; close it with } or write $${ for a literal ${")
		}
		expr := s[i : i+end+1]
		body := expr[2 : len(expr)-1]
		s = s[i+end+1:]
		sub, err := in.resolve(expr, body)
		if err != nil {
			return "", nil, false, err
		}
		b.WriteString(sub.value)
		subs = append(subs, sub)
		changed = true
	}
	return b.String(), subs, changed, nil
}

func (in *interpolator) resolve(expr, body string) (substitution, error) {
	if strings.Contains(body, "${") {
		return substitution{}, fmt.Errorf("nested ${ in %s is not supported; use a single ${NAME} or ${NAME:-literal default}", expr)
	}
	if path, ok := strings.CutPrefix(body, "file:"); ok {
		v, err := in.readFile(strings.TrimSpace(path))
		if err != nil {
			return substitution{}, err
		}
		return substitution{expr: expr, value: v, secret: true}, nil
	}
	name, def, hasDef := strings.Cut(body, ":-")
	if !envName.MatchString(name) {
		return substitution{}, fmt.Errorf("%s: %q is not a variable name; use letters, digits and _ (e.g. ${PG_PASSWORD}), ${file:/path} or $${ for a literal ${", expr, name)
	}
	v, ok := in.env(name)
	switch {
	case hasDef && (!ok || v == ""):
		v = def
	case !ok:
		return substitution{}, fmt.Errorf("%s: environment variable %s is not set; set it or give a default with ${%s:-default}", expr, name, name)
	}
	secret := false
	upper := strings.ToUpper(name)
	for _, part := range secretNameParts {
		if strings.Contains(upper, part) {
			secret = true
			break
		}
	}
	return substitution{expr: expr, value: v, secret: secret}, nil
}

// readFile returns a secret file's content without its trailing newlines.
// Errors name the path, never the content.
func (in *interpolator) readFile(path string) (string, error) {
	if path == "" {
		return "", errors.New("${file:} needs a path, e.g. ${file:/run/secrets/pg_password}")
	}
	full := path
	if !filepath.IsAbs(full) {
		full = filepath.Join(in.dir, full)
	}
	// Only regular files: a FIFO or a device (/dev/stdin) would block or
	// never end.
	if st, err := os.Stat(full); err == nil && !st.Mode().IsRegular() {
		return "", fmt.Errorf("secret file %q is not a regular file; point ${file:...} at a file holding only the secret", full)
	}
	f, err := os.Open(full)
	if err != nil {
		return "", fmt.Errorf("reading secret file %q: %s; check the path (relative paths start at the configuration file's directory)", full, fileErrReason(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading secret file %q: %s", full, fileErrReason(err))
	}
	if len(data) > maxSecretFileBytes {
		return "", fmt.Errorf("secret file %q is larger than 1MiB; point ${file:...} at a file holding only the secret", full)
	}
	return strings.TrimRight(string(data), "\r\n"), nil
}

func fileErrReason(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
