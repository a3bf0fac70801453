// Package postgres is the PostgreSQL source: publication and replication
// slot management, a consistent chunked parallel snapshot read through the
// slot's exported snapshot (resumable chunk by chunk), then pgoutput
// streaming from the slot, confirming positions only once the bus holds
// everything before them.
//
// Versions (the per-row ordering number every sink uses to refuse stale
// writes): a streamed change carries the LSN of its transaction's commit
// record; a snapshot row carries the slot's confirmed position at the time
// the snapshot started. Streaming resumes from that same position after the
// snapshot, so every change the snapshot might have missed (or seen
// half-way, the classic boundary trap) is streamed again with a higher
// version and wins. See docs/guarantees.md.
package postgres
