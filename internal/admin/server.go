// Package admin serves tidegate's admin address: Prometheus metrics,
// health, profiles, and the admin API (AdminService of
// proto/tidegate/v1/admin.proto, served by connect-go as gRPC and
// HTTP/JSON), which the tidegate CLI is a client of. It owns the API's
// authentication (bearer token) and the mapping of bus operations to RPCs.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tidegate/tidegate/internal/admin/adminpb/adminpbconnect"
)

// Health reports whether the process is healthy; nil means healthy.
type Health func() error

// Server is the admin HTTP server. It owns one serving goroutine, stopped by Close.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
	once sync.Once
}

// Options configure the admin server.
type Options struct {
	// Addr to listen on (admin.listen).
	Addr string
	// Token (admin.token): when set, every call except /metrics and
	// /healthz needs "Authorization: Bearer <Token>". Without it the
	// server refuses to start on an address other hosts can reach.
	Token    string
	Registry *prometheus.Registry
	Health   Health
	Logger   *slog.Logger
	// DeadLetters and Pipelines back the admin API; with DeadLetters nil
	// the API is not served.
	DeadLetters DeadLetters
	Pipelines   []Pipeline
}

// maxRequestBytes bounds an API request.
const maxRequestBytes = 4 << 20

// Start listens on o.Addr and serves /metrics, /healthz, /debug/pprof/ and
// the admin API (AdminService, proto/tidegate/v1/admin.proto) as gRPC,
// gRPC-Web and Connect (HTTP/JSON), over HTTP/1.1 and cleartext HTTP/2.
func Start(o Options) (*Server, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := checkExposure(o.Addr, o.Token); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	// Metrics and health stay open: scrapers and probes carry no token.
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := o.Health(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	guarded := http.NewServeMux()
	// Profiles, for performance work (docs/performance.md).
	guarded.HandleFunc("GET /debug/pprof/", pprof.Index)
	guarded.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	guarded.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	if o.DeadLetters != nil {
		path, h := adminpbconnect.NewAdminServiceHandler(newAPI(o.DeadLetters, o.Pipelines, log),
			connect.WithReadMaxBytes(maxRequestBytes))
		guarded.Handle(path, h)
	}
	if o.Token != "" {
		mux.Handle("/", requireToken(o.Token, guarded))
	} else {
		mux.Handle("/", guarded)
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("listening on admin address %s (admin.listen): %w", o.Addr, err)
	}
	// gRPC needs HTTP/2; without TLS that is HTTP/2 with prior knowledge (h2c).
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	s := &Server{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, Protocols: &protocols},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server stopped", "error", err)
		}
	}()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server and waits for it. Idempotent.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = s.srv.Shutdown(ctx)
		<-s.done
	})
	return err
}
