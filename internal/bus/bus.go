package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config configures the connection to the bus.
type Config struct {
	// URL is "embedded" or a comma-separated list of nats:// URLs.
	URL string
	// DataDir is where the embedded server stores its data (data_dir/bus).
	DataDir string
	// SyncAlways makes the embedded server fsync every write. Without it data
	// survives a killed process (the OS page cache holds it) but not a power
	// loss of the machine.
	SyncAlways bool
	Logger     *slog.Logger
}

// Bus is a connection to JetStream (and the embedded server when it owns one).
type Bus struct {
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	log *slog.Logger
}

// Open starts the embedded server (when cfg.URL is "embedded") and connects.
func Open(ctx context.Context, cfg Config) (*Bus, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	b := &Bus{log: log}
	var err error
	if cfg.URL == "" || cfg.URL == "embedded" {
		b.srv, err = startEmbedded(cfg)
		if err != nil {
			return nil, err
		}
		b.nc, err = nats.Connect("", nats.InProcessServer(b.srv), nats.Name("tidegate"), nats.MaxReconnects(-1))
	} else {
		b.nc, err = nats.Connect(cfg.URL, nats.Name("tidegate"), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second))
	}
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("connecting to the bus at %s: %w", redactURL(cfg.URL), err)
	}
	b.js, err = jetstream.New(b.nc, jetstream.WithPublishAsyncMaxPending(4*maxPendingMessages))
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("opening JetStream: %w", err)
	}
	if _, err := b.js.AccountInfo(ctx); err != nil {
		b.Close()
		return nil, fmt.Errorf("checking JetStream on %s (is JetStream enabled on the server?): %w", redactURL(cfg.URL), err)
	}
	return b, nil
}

func startEmbedded(cfg Config) (*server.Server, error) {
	dir := filepath.Join(cfg.DataDir, "bus")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the bus directory %s: %w", dir, err)
	}
	opts := &server.Options{
		ServerName:         "tidegate",
		DontListen:         true,
		JetStream:          true,
		StoreDir:           dir,
		NoSigs:             true,
		NoLog:              true,
		SyncAlways:         cfg.SyncAlways,
		JetStreamMaxMemory: 64 << 20,
		MaxPayload:         MaxMessageBytes,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("configuring the embedded bus: %w", err)
	}
	go srv.Start() // owned by srv: Shutdown stops it
	if !srv.ReadyForConnections(60 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("the embedded bus did not start within 60s (data in %s; is another tidegate using it?)", dir)
	}
	return srv, nil
}

// JetStream returns the JetStream handle.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Close drains the connection and stops the embedded server. Idempotent.
func (b *Bus) Close() error {
	var err error
	if b.nc != nil {
		if !b.nc.IsClosed() {
			b.nc.Close()
		}
	}
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
	return err
}

// Token turns a name into a valid NATS subject token / stream name part.
func Token(s string) string {
	var sb strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			sb.WriteRune(r)
		default:
			sb.WriteByte('_')
		}
	}
	if sb.Len() == 0 {
		return "_"
	}
	return sb.String()
}

func redactURL(u string) string {
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			return u[:j+3] + "****" + u[i:]
		}
	}
	return u
}

// IsNotFound reports whether err says a stream, consumer or key is missing.
func IsNotFound(err error) bool {
	return errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrBucketNotFound)
}

// MaxMessageBytes is the largest message of a pipeline stream (the
// embedded server's payload limit too): a single event cannot be larger.
const MaxMessageBytes = 8 << 20
