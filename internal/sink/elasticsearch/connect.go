package elasticsearch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Flavors reported by Info.
const (
	FlavorElasticsearch = "elasticsearch"
	FlavorOpenSearch    = "opensearch"
)

// Info describes the cluster a Sink writes to.
type Info struct {
	// Flavor is FlavorElasticsearch or FlavorOpenSearch.
	Flavor string
	// Version is the cluster's version number, e.g. "8.19.21".
	Version string
}

// clusterInfo is Info plus the parsed version.
type clusterInfo struct {
	Info
	major, minor int
}

func (c clusterInfo) atLeast(major, minor int) bool {
	return c.major > major || (c.major == major && c.minor >= minor)
}

// connection is a checked connection to a cluster: the HTTP transport the
// official client uses and what the cluster said it is.
type connection struct {
	transport http.RoundTripper
	info      clusterInfo
}

// newTransport builds the HTTP transport from the TLS settings of cfg.
func newTransport(cfg Config) (*http.Transport, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = max(4, 2*cfg.Concurrency)
	// No gzip: bulk responses (filtered to a status per item) would be
	// compressed by the cluster and inflated here for every request, which
	// cost both sides CPU (the sink: a tenth of its time) for a few hundred
	// kilobytes per request.
	t.DisableCompression = true
	if cfg.CACertFile == "" && !cfg.InsecureSkipVerify {
		return t, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify} //nolint:gosec // opt-in, documented
	if cfg.CACertFile != "" {
		pem, err := os.ReadFile(cfg.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("reading ca_cert_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_cert_file %s: no PEM certificate found", cfg.CACertFile)
		}
		tc.RootCAs = pool
	}
	t.TLSClientConfig = tc
	return t, nil
}

// connect asks the cluster what it is (GET /) and checks that it is
// supported. It tries each URL until one answers; only when none does does
// it report each URL's failure.
func connect(ctx context.Context, cfg Config, rt http.RoundTripper) (*connection, error) {
	hc := &http.Client{Transport: rt, Timeout: cfg.RequestTimeout}
	var errs []error
	for _, u := range cfg.URLs {
		info, err := detect(ctx, hc, cfg, u)
		if err == nil {
			if err := checkSupported(cfg, info, u); err != nil {
				return nil, err
			}
			if info.Flavor == FlavorElasticsearch && !info.atLeast(7, 14) {
				// Elasticsearch before 7.14 does not send the
				// X-Elastic-Product header that the go-elasticsearch client
				// checks: we have just checked the product ourselves.
				rt = productHeader{next: rt}
			}
			return &connection{transport: rt, info: info}, nil
		}
		var de *detectError
		if errors.As(err, &de) && de.definitive {
			return nil, err
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// detectError is a failure of detection; definitive ones (the server
// answered but is not usable) stop trying the other URLs.
type detectError struct {
	url        string
	what       string
	hint       string
	definitive bool
	err        error
}

func (e *detectError) Error() string {
	s := fmt.Sprintf("connecting to Elasticsearch/OpenSearch at %s: %s", e.url, e.what)
	if e.hint != "" {
		s += " (" + e.hint + ")"
	}
	return s
}

func (e *detectError) Unwrap() error { return e.err }

// rootResponse is the body of GET /.
type rootResponse struct {
	Version struct {
		Number       string `json:"number"`
		Distribution string `json:"distribution"`
	} `json:"version"`
	Tagline string `json:"tagline"`
}

func detect(ctx context.Context, hc *http.Client, cfg Config, rawURL string) (clusterInfo, error) {
	shown := redactURL(rawURL)
	base := strings.TrimRight(rawURL, "/")
	status, header, body, err := get(ctx, hc, cfg, base+"/")
	if err != nil {
		return clusterInfo{}, transportDetectError(shown, err)
	}
	if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
		// A minimal Elasticsearch distribution without the rest-root module
		// (e.g. the integ-test-zip) has no GET /: ask the node itself.
		if header.Get("X-Elastic-Product") == "Elasticsearch" {
			return detectFromNodes(ctx, hc, cfg, base, shown)
		}
	}
	if err := statusDetectError(shown, "GET /", status, body); err != nil {
		return clusterInfo{}, err
	}
	var root rootResponse
	if err := json.Unmarshal(body, &root); err != nil || root.Version.Number == "" {
		return clusterInfo{}, &detectError{url: shown, definitive: true,
			what: "GET / did not answer with a version: this does not look like Elasticsearch or OpenSearch",
			hint: "check urls: it must point at the cluster's HTTP port (9200 by default)"}
	}
	var info clusterInfo
	switch {
	case root.Version.Distribution == "opensearch":
		info.Flavor = FlavorOpenSearch
	case header.Get("X-Elastic-Product") == "Elasticsearch" || strings.Contains(root.Tagline, "You Know, for Search"):
		info.Flavor = FlavorElasticsearch
	default:
		return clusterInfo{}, &detectError{url: shown, definitive: true,
			what: fmt.Sprintf("the server (tagline %q, distribution %q) is neither Elasticsearch nor OpenSearch", root.Tagline, root.Version.Distribution)}
	}
	info.Version = root.Version.Number
	info.major, info.minor = parseVersion(info.Version)
	return info, nil
}

func detectFromNodes(ctx context.Context, hc *http.Client, cfg Config, base, shown string) (clusterInfo, error) {
	const path = "/_nodes/_local?filter_path=nodes.*.version"
	status, _, body, err := get(ctx, hc, cfg, base+path)
	if err != nil {
		return clusterInfo{}, transportDetectError(shown, err)
	}
	if err := statusDetectError(shown, "GET "+path, status, body); err != nil {
		return clusterInfo{}, err
	}
	var nodes struct {
		Nodes map[string]struct {
			Version string `json:"version"`
		} `json:"nodes"`
	}
	info := clusterInfo{Info: Info{Flavor: FlavorElasticsearch}}
	if json.Unmarshal(body, &nodes) == nil {
		for _, n := range nodes.Nodes {
			info.Version = n.Version
		}
	}
	if info.Version == "" {
		return clusterInfo{}, &detectError{url: shown, definitive: true,
			what: "neither GET / nor GET /_nodes/_local reported a version"}
	}
	info.major, info.minor = parseVersion(info.Version)
	return info, nil
}

func get(ctx context.Context, hc *http.Client, cfg Config, u string) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	switch {
	case cfg.APIKey != "":
		req.Header.Set("Authorization", "ApiKey "+cfg.APIKey)
	case cfg.Username != "" || cfg.Password != "":
		req.SetBasicAuth(cfg.Username, cfg.Password)
	}
	res, err := hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return 0, nil, nil, err
	}
	return res.StatusCode, res.Header, body, nil
}

// transportDetectError explains a failed connection with a hint.
func transportDetectError(shown string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // url.Error repeats the URL, which may hold a password
	}
	de := &detectError{url: shown, what: err.Error(), err: err}
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		de.hint = "nothing listens there: is the cluster running, and are host and port in urls right?"
	case errors.As(err, &dnsErr):
		de.hint = "the host name does not resolve: check urls"
	case errors.As(err, &certErr), errors.As(err, &unknownCA):
		de.hint = "the server's TLS certificate is not trusted: set ca_cert_file to the cluster's CA certificate (insecure_skip_verify: true only for tests)"
	case errors.As(err, &hostErr):
		de.hint = "the server's TLS certificate is for another host name: use that name in urls"
	case errors.As(err, &recordErr):
		de.hint = "the server speaks plain HTTP: use http:// in urls"
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
		de.hint = "the server closed the connection: if it uses TLS, use https:// in urls"
	case isTimeout(err):
		de.hint = "no answer within request_timeout: check the address, firewalls and the cluster's health"
	}
	return de
}

// statusDetectError explains a non-2xx answer to a detection request.
func statusDetectError(shown, req string, status int, body []byte) error {
	if status >= 200 && status < 300 {
		return nil
	}
	de := &detectError{url: shown, definitive: true,
		what: fmt.Sprintf("%s answered HTTP %d: %s", req, status, parseError(body).String())}
	switch status {
	case http.StatusUnauthorized:
		de.what = fmt.Sprintf("authentication failed (HTTP 401 on %s)", req)
		de.hint = "check username/password or api_key; the password is not shown here"
	case http.StatusForbidden:
		de.what = fmt.Sprintf("permission denied (HTTP 403 on %s): %s", req, parseError(body).String())
		de.hint = "the user needs the cluster privilege \"monitor\", plus \"create_index\", \"index\", \"delete\", \"read\" and \"view_index_metadata\" on the sink's indexes"
	default:
		de.definitive = status < 500 // a 5xx may be one sick node
	}
	return de
}

// checkSupported rejects versions the sink does not support.
func checkSupported(cfg Config, info clusterInfo, rawURL string) error {
	shown := redactURL(rawURL)
	switch info.Flavor {
	case FlavorElasticsearch:
		if !info.atLeast(7, 10) {
			return &detectError{url: shown, definitive: true,
				what: fmt.Sprintf("Elasticsearch %s is not supported", info.Version),
				hint: "tidegate needs Elasticsearch 7.10 or later, or OpenSearch 1.0 or later"}
		}
	case FlavorOpenSearch:
		if !info.atLeast(1, 0) {
			return &detectError{url: shown, definitive: true,
				what: fmt.Sprintf("OpenSearch %s is not supported", info.Version),
				hint: "tidegate needs OpenSearch 1.0 or later"}
		}
		if cfg.APIKey != "" {
			return &detectError{url: shown, definitive: true,
				what: "api_key is an Elasticsearch feature and OpenSearch does not support it",
				hint: "use username and password"}
		}
	}
	return nil
}

// parseVersion reads the major and minor numbers of "8.19.21",
// "9.0.0-SNAPSHOT" or "3.0.0-alpha1"; unparsable parts are 0.
func parseVersion(v string) (major, minor int) {
	parts := strings.SplitN(v, ".", 3)
	num := func(s string) int {
		end := 0
		for end < len(s) && s[end] >= '0' && s[end] <= '9' {
			end++
		}
		n, _ := strconv.Atoi(s[:end])
		return n
	}
	if len(parts) > 0 {
		major = num(parts[0])
	}
	if len(parts) > 1 {
		minor = num(parts[1])
	}
	return major, minor
}

// productHeader adds the X-Elastic-Product header that Elasticsearch 7.14+
// sends, for older versions whose product was checked by connect.
type productHeader struct{ next http.RoundTripper }

func (p productHeader) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := p.next.RoundTrip(req)
	if err == nil && res.Header.Get("X-Elastic-Product") == "" {
		res.Header.Set("X-Elastic-Product", "Elasticsearch")
	}
	return res, err
}

// CloseIdleConnections forwards to the wrapped transport.
func (p productHeader) CloseIdleConnections() {
	if c, ok := p.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
