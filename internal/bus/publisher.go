package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/semaphore"
)

// PublisherConfig bounds a publisher.
type PublisherConfig struct {
	Pipeline string
	// MaxInflightBytes published but not yet acknowledged by the bus
	// (counted by buffer capacity: what the messages hold in memory).
	MaxInflightBytes int64
	// MaxStreamBytes: when the stream holds more, Publish waits for sinks to
	// consume (backpressure to the source).
	MaxStreamBytes int64
	// OnDurable is called, in order, with each position passed to Mark once
	// every message published before that Mark is stored by the bus.
	OnDurable func(position any)
	// Stored, when set, is called with a message's data once the bus has
	// stored it: the publisher no longer uses the buffer, which the caller
	// may reuse.
	Stored func(data []byte)
	// OnStored, when set, is called with Stored() each time the bus has
	// stored a message (from the publisher's goroutine: it must not
	// block).
	OnStored func(stored uint64)
	Logger   *slog.Logger
}

// Publisher publishes events asynchronously, keeps their order, and reports
// positions as durable only when everything before them is stored. It owns
// one goroutine, stopped by Close. It may be used by several goroutines:
// each one's messages keep their order, and a Mark covers every Publish
// that returned before Mark was called, by any goroutine.
type Publisher struct {
	b   *Bus
	cfg PublisherConfig
	sem *semaphore.Weighted
	// slots bounds the number of unacknowledged messages below the client's
	// own async limit, so PublishMsgAsync never stalls.
	slots chan struct{}

	queue  chan pending
	done   chan struct{}
	cancel context.CancelFunc

	mu           sync.Mutex
	err          error
	lastFullWarn time.Time

	sinceCheck atomic.Int64
	closeOnce  sync.Once

	// published and stored count messages: sent to the bus, and stored by
	// it (in the order they were sent).
	published, stored atomic.Uint64
}

// Published is the number of messages published so far.
func (p *Publisher) Published() uint64 { return p.published.Load() }

// Stored is the number of messages the bus has stored so far, in the
// order they were sent. Once it reaches a value Published returned, that
// many messages are stored: with one publishing goroutine, everything it
// published before that call (with several, the count may include one of
// theirs still in flight instead).
func (p *Publisher) Stored() uint64 { return p.stored.Load() }

// maxPendingMessages bounds unacknowledged messages per publisher; the
// JetStream client is opened with a higher async limit (see Open).
const maxPendingMessages = 16384

type pending struct {
	fut  jetstream.PubAckFuture
	size int64
	mark any
	// flush, when set, is closed once everything before it is durable.
	flush chan struct{}
}

// ErrPublisherClosed is returned by Publish and Mark after Close.
var ErrPublisherClosed = errors.New("publisher closed")

// NewPublisher starts a publisher on the pipeline stream.
func (b *Bus) NewPublisher(cfg PublisherConfig) *Publisher {
	if cfg.MaxInflightBytes <= 0 {
		cfg.MaxInflightBytes = 32 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Publisher{
		b:      b,
		cfg:    cfg,
		sem:    semaphore.NewWeighted(cfg.MaxInflightBytes),
		slots:  make(chan struct{}, maxPendingMessages),
		queue:  make(chan pending, 8192),
		done:   make(chan struct{}),
		cancel: cancel,
	}
	go p.ackLoop(ctx)
	return p
}

// Err returns the first publish failure, if any. After a failure the
// publisher refuses new messages: its owner must restart from the last
// durable position.
func (p *Publisher) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *Publisher) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
}

// HeaderEvents on a pipeline-stream message is the number of events in its
// event.Batch, so a consumer can size its batches without decoding.
const HeaderEvents = "Tidegate-Events"

// Publish sends one message; a non-empty id is its de-duplication id. It blocks while too many bytes are in flight or
// the stream is full (backpressure), until ctx is done.
func (p *Publisher) Publish(ctx context.Context, subject, id string, data []byte) error {
	return p.publish(ctx, &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}, id)
}

// PublishBatch publishes an encoded event.Batch of n events.
func (p *Publisher) PublishBatch(ctx context.Context, subject, id string, data []byte, n int) error {
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{HeaderEvents: []string{strconv.Itoa(n)}}}
	return p.publish(ctx, msg, id)
}

func (p *Publisher) publish(ctx context.Context, msg *nats.Msg, id string) error {
	subject, data := msg.Subject, msg.Data
	if err := p.Err(); err != nil {
		return err
	}
	// What the message holds until it is stored: its buffer, which the
	// caller may take back only then (PublisherConfig.Stored).
	size := int64(cap(data) + len(subject) + len(id) + 64)
	if size > p.cfg.MaxInflightBytes {
		size = p.cfg.MaxInflightBytes
	}
	if err := p.waitForRoom(ctx, size); err != nil {
		return err
	}
	if err := p.sem.Acquire(ctx, size); err != nil {
		return err
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		p.sem.Release(size)
		return ctx.Err()
	}
	var opts []jetstream.PublishOpt
	if id != "" {
		opts = append(opts, jetstream.WithMsgID(id))
	}
	fut, err := p.b.js.PublishMsgAsync(msg, opts...)
	if err != nil {
		p.release(size)
		err = fmt.Errorf("publishing to %s: %w", subject, err)
		p.fail(err)
		return err
	}
	if err := p.enqueue(ctx, pending{fut: fut, size: size}); err != nil {
		return err
	}
	p.published.Add(1)
	return nil
}

// Mark records a position: OnDurable(position) is called once every message
// published before this call is stored.
func (p *Publisher) Mark(ctx context.Context, position any) error {
	if err := p.Err(); err != nil {
		return err
	}
	return p.enqueue(ctx, pending{mark: position})
}

// Flush waits until everything published so far is durable.
func (p *Publisher) Flush(ctx context.Context) error {
	ch := make(chan struct{})
	if err := p.enqueue(ctx, pending{flush: ch}); err != nil {
		return err
	}
	select {
	case <-ch:
		return p.Err()
	case <-p.done:
		if err := p.Err(); err != nil {
			return err
		}
		return ErrPublisherClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Publisher) enqueue(ctx context.Context, it pending) error {
	select {
	case p.queue <- it:
		return nil
	case <-p.done:
		if it.fut != nil {
			p.release(it.size)
		}
		return ErrPublisherClosed
	case <-ctx.Done():
		if it.fut != nil {
			p.release(it.size)
		}
		return ctx.Err()
	}
}

// waitForRoom checks the stream's size every few MiB and waits while it is
// above MaxStreamBytes.
// roomCheckBytes is how many bytes the publisher sends between two looks at
// the stream's size.
func roomCheckBytes(maxStream int64) int64 { return min(4<<20, max(maxStream/16, 1)) }

func (p *Publisher) waitForRoom(ctx context.Context, size int64) error {
	if p.cfg.MaxStreamBytes <= 0 {
		return nil
	}
	if p.sinceCheck.Add(size) < roomCheckBytes(p.cfg.MaxStreamBytes) {
		return nil
	}
	p.sinceCheck.Store(0)
	for {
		used, err := p.b.StreamBytes(ctx, p.cfg.Pipeline)
		if err != nil {
			return fmt.Errorf("checking the size of stream %s: %w", StreamName(p.cfg.Pipeline), err)
		}
		if int64(used) < p.cfg.MaxStreamBytes {
			return nil
		}
		p.mu.Lock()
		warn := time.Since(p.lastFullWarn) > 30*time.Second
		if warn {
			p.lastFullWarn = time.Now()
		}
		p.mu.Unlock()
		if warn {
			p.cfg.Logger.Warn("bus stream is full: waiting for sinks to consume (raise bus.max_bytes or check the sinks)",
				"pipeline", p.cfg.Pipeline, "stream_bytes", used, "max_bytes", p.cfg.MaxStreamBytes)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (p *Publisher) ackLoop(ctx context.Context) {
	defer close(p.done)
	for {
		var it pending
		select {
		case <-ctx.Done():
			return
		case it = <-p.queue:
		}
		switch {
		case it.fut != nil:
			select {
			case <-it.fut.Ok():
				if p.cfg.Stored != nil {
					p.cfg.Stored(it.fut.Msg().Data)
				}
				if n := p.stored.Add(1); p.cfg.OnStored != nil {
					p.cfg.OnStored(n)
				}
			case err := <-it.fut.Err():
				p.fail(fmt.Errorf("storing message %q on %s in the bus: %w", it.fut.Msg().Header.Get(jetstream.MsgIDHeader), it.fut.Msg().Subject, err))
			case <-ctx.Done():
				return
			}
			p.release(it.size)
		case it.flush != nil:
			close(it.flush)
		default:
			if p.Err() == nil && p.cfg.OnDurable != nil {
				p.cfg.OnDurable(it.mark)
			}
		}
	}
}

func (p *Publisher) release(size int64) {
	p.sem.Release(size)
	<-p.slots
}

// Close stops the publisher without waiting for outstanding acknowledgements
// (their positions are simply not reported durable). Idempotent.
func (p *Publisher) Close() {
	p.closeOnce.Do(func() {
		p.cancel()
		<-p.done
	})
}
