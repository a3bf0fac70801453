// Package bus owns tidegate's durable bus: NATS JetStream, embedded in the
// process by default (data under data_dir/bus) or an external cluster.
//
// Layout, for a pipeline P and a sink S:
//   - stream TG_<P>, subjects tg.<P>.ev.<schema>.<table>: the pipeline's
//     events, one message per event, Nats-Msg-Id = event id (de-duplication),
//     limits retention, trimmed by the pipeline (Trim: a message goes once
//     every sink consumer acknowledged it);
//   - durable consumer S on TG_<P>: the sink's own position (fan-out);
//   - stream TG_DLQ_<P>, subjects tg.dlq.<P>.<S>: events a sink rejected,
//     with the error in headers;
//   - KV bucket tg_state: checkpoints and snapshot progress.
package bus
