package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// StateBucket is the KV bucket for checkpoints and snapshot progress.
const StateBucket = "tg_state"

// State is a small typed wrapper over the state KV bucket.
type State struct{ kv jetstream.KeyValue }

// State opens (creating if needed) the state bucket.
func (b *Bus) State(ctx context.Context) (*State, error) {
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      StateBucket,
		Description: "tidegate checkpoints and snapshot progress",
		History:     1,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("opening KV bucket %s: %w", StateBucket, err)
	}
	return &State{kv: kv}, nil
}

// Get decodes the JSON value at key into v. It returns false when the key is absent.
func (s *State) Get(ctx context.Context, key string, v any) (bool, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading state %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return false, fmt.Errorf("decoding state %s: %w", key, err)
	}
	return true, nil
}

// Put stores v as JSON at key (durably: it returns once the bus has it).
func (s *State) Put(ctx context.Context, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding state %s: %w", key, err)
	}
	if _, err := s.kv.Put(ctx, key, data); err != nil {
		return fmt.Errorf("writing state %s: %w", key, err)
	}
	return nil
}

// Delete removes key (absent keys are fine).
func (s *State) Delete(ctx context.Context, key string) error {
	if err := s.kv.Purge(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("deleting state %s: %w", key, err)
	}
	return nil
}

// DeleteMatching removes every key matching filter, a KV key pattern with
// NATS wildcards (e.g. "schema.shop.>"), and returns how many it removed.
func (s *State) DeleteMatching(ctx context.Context, filter string) (int, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return 0, fmt.Errorf("listing state keys %s: %w", filter, err)
	}
	var keys []string
	for k := range lister.Keys() { // closed (and the watcher stopped) once all are listed
		keys = append(keys, k)
	}
	for _, k := range keys {
		if err := s.Delete(ctx, k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}
