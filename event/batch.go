package event

// Expand copies the batch's shared fields (see Batch.shared) into each of
// its events and clears them from the batch, so that every event stands
// alone. Events share the Origin and SchemaRef messages: treat them as
// read-only. A batch without shared fields is left as it is.
func (b *Batch) Expand() {
	sh := b.GetShared()
	if sh == nil {
		return
	}
	for _, ev := range b.Events {
		ev.Origin, ev.Schema = sh.Origin, sh.Schema
		ev.Version, ev.Position = sh.Version, sh.Position
		ev.CommitTimeUs, ev.TxId = sh.CommitTimeUs, sh.TxId
	}
	b.Shared = nil
}
